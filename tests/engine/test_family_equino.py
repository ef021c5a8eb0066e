"""EquiNO and its two baselines through the one engine, as a user runs them:
``graphfem generate rve`` on an RVE mesh file of this test's own, ``graphfem
train`` (a kill mid-run, in the Adam or the L-BFGS phase, then ``--resume``
ends with bit-identical weights), ``graphfem predict`` through the general
command (checked against ``graphfem solve rve`` at the same strain), and bad
input (one line, exit 1, no file)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from graphfem.checkpoint import read_tensors
from graphfem.cli import main
from graphfem.families.equino import train_config
from graphfem.meshes import read
from graphfem.meshes.errors import GraphfemError
from graphfem.physics.rve import RVE, Inclusion, rve_mesh
from graphfem.training.config import load_config, to_dict
from graphfem.training.trainer import FAULT_ENV, train

torch.set_num_threads(1)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
REPO = Path(__file__).resolve().parents[2]
STRAIN = "0.01,0,0.005"
#: model -> (recipe, global step of the kill, its phase): in L-BFGS for equino (after 200 Adam steps), in
#: Adam for the baselines; states are saved every 2 steps, so the resumed run redoes one step
MODELS = {"equino": (dict(rank=6, collocation=32, adam_steps=200, lbfgs_iterations=60), 203, 1),
          "rve_blackbox": (dict(adam_steps=8, lbfgs_iterations=4, max_iter=2), 5, 0),
          "rve_vpionet": (dict(collocation=32, adam_steps=200, lbfgs_iterations=40), 5, 0)}


def cli(*args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphfem: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """An RVE no other test uses (an inclined off-centre ellipse, 5 x 5 cells) and 10 FE snapshots on it."""
    d = tmp_path_factory.mktemp("equino")
    rve_mesh(5, [Inclusion((0.1, -0.05), 0.3, 0.18, 0.4)]).write(d / "cell.vtu")
    assert main(["generate", "rve", "-n", "10", "--geometry", str(d / "cell.vtu"), "-o", str(d / "rve.h5")]) == 0
    return d


def _config(folder: Path, model: str, run: str) -> Path:
    recipe = MODELS[model][0]
    cfg = to_dict(train_config(str(folder / "rve.h5"), str(folder / run), model, checkpoint_every=2, **recipe))
    path = folder / f"{run}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def runs(folder):
    """The uninterrupted run of each model (``graphfem train`` in this process)."""
    for model in MODELS:
        assert main(["train", str(_config(folder, model, model))]) == 0
    return folder


def _weights(path: Path) -> dict:
    tensors = read_tensors(path)[0]
    return {k: v for k, v in tensors.items() if k.startswith("model.")} if path.name == "state.safetensors" \
        else tensors


@pytest.mark.parametrize("model, name", [("equino", "equino"), ("rve_blackbox", "equino_blackbox"),
                                         ("rve_vpionet", "equino_vpionet")])
def test_example_configs_are_the_two_phase_recipe(model, name, tmp_path):
    config = load_config(REPO / "examples" / f"{name}.yaml")
    adam, lbfgs = config.optim.phase_list()
    assert (adam.optimizer, adam.dtype, lbfgs.optimizer, lbfgs.dtype) == ("adam", "float64", "lbfgs", "float64")
    assert main(["generate", "rve", "-n", "24", "--resolution", "2", "-o", str(tmp_path / "rve.h5")]) == 0
    built = train_config(str(tmp_path / "rve.h5"), "runs", model, test_fraction=0.1)
    assert to_dict(config)["optim"]["phases"] == to_dict(built)["optim"]["phases"]
    assert {k: v for k, v in config.model.items() if k in built.model} == built.model


@pytest.mark.parametrize("model", sorted(MODELS))
def test_killed_and_resumed_run_matches_the_uninterrupted_one(runs, model):
    config = _config(runs, model, f"{model}-killed")
    _, kill_at, phase = MODELS[model]
    proc = subprocess.run([sys.executable, "-m", "graphfem", "train", str(config)], env={**ENV, FAULT_ENV: str(kill_at)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr  # SIGKILL
    state = read_tensors(runs / f"{model}-killed" / "state.safetensors")[1]
    assert (state["step"], state["phase"]) == (kill_at - 1, phase)
    assert main(["train", str(config), "--resume"]) == 0
    for name in ("state.safetensors", "model.safetensors"):
        full, resumed = _weights(runs / model / name), _weights(runs / f"{model}-killed" / name)
        assert full.keys() == resumed.keys() and all(torch.equal(full[k], resumed[k]) for k in full)
    lines = lambda run: [ln for ln in (runs / run / "metrics.jsonl").read_text().splitlines() if "time_s" not in ln]
    assert lines(model) == lines(f"{model}-killed")


@pytest.mark.parametrize("model", ["equino", "rve_vpionet"])
def test_predict_writes_the_micro_fields_of_the_fe_solve(runs, model, capsys, tmp_path):
    ckpt, mesh = runs / model / "model.safetensors", runs / "cell.vtu"
    code, out, err = cli("predict", ckpt, mesh, "-o", tmp_path / "micro.vtu", "--strain", STRAIN, "--device", "cpu",
                         capsys=capsys)
    assert code == 0, err
    assert cli("solve", "rve", mesh, "-o", tmp_path / "fe.vtu", "--strain", STRAIN, capsys=capsys)[0] == 0
    nn, fe = read(tmp_path / "micro.vtu").point_data, read(tmp_path / "fe.vtu").point_data
    names = ("displacement", "fluctuation", "sigma_xx", "sigma_yy", "sigma_xy")
    assert all(np.isfinite(nn[k]).all() and nn[k].shape == fe[k].shape for k in names)
    s_nn, s_fe = (np.stack([f[k] for k in names[2:]], 1) for f in (nn, fe))
    # small budgets: EquiNO is within 8 % of FE here; VPIONet, weakly equilibrated, within 34 %
    assert np.linalg.norm(s_nn - s_fe) < {"equino": 0.15, "rve_vpionet": 0.5}[model] * np.linalg.norm(s_fe)
    # the written stress is the projection of the model's quadrature-point stress, which (for EquiNO)
    # is in discrete periodic equilibrium on the RVE, as the FE stress at the same strain is
    import graphfem

    cell = RVE(read(mesh))
    surrogate = graphfem.load(ckpt)
    strain = np.array([[0.01, 0.0, 0.005]])
    sigma = surrogate.model.predict(strain)["sigma_nn" if model == "equino" else "sigma_law"][0]
    np.testing.assert_allclose(s_nn, cell.nodal_stress(sigma), rtol=1e-10, atol=1e-8 * np.abs(s_fe).max())
    sol = cell.solve(strain[0], rtol=1e-12)
    scale = np.linalg.norm(cell.op.force(np.abs(sol.sigma)))  # the size of the element forces
    if model == "equino":
        assert np.linalg.norm(cell.equilibrium_residual(sigma)) < 1e-10 * scale
        assert np.linalg.norm(cell.equilibrium_residual(sol.sigma)) < 1e-8 * scale
    assert np.linalg.norm(cell.homogenise(sigma) - sol.stress) < 0.1 * np.linalg.norm(sol.stress)


def test_evaluate_on_the_data_set(runs, capsys):
    code, out, err = cli("evaluate", runs / "equino" / "model.safetensors", runs / "rve.h5", "--compare-fe",
                         "--device", "cpu", "--json", capsys=capsys)
    assert code == 0, err
    stats = json.loads(out)
    assert stats["samples"] == 10 and stats["rel_l2_median"] < 0.2 and stats["fe_vs_stored_max"] < 1e-8


def test_a_strain_outside_the_training_strains_warns_and_strict_refuses(runs, capsys, tmp_path):
    """Each component outside the checkpoint's strain_range is one warning line naming it; --strict refuses
    with no file; evaluate counts the data set's strains inside/outside the same ranges."""
    ckpt, mesh = runs / "equino" / "model.safetensors", runs / "cell.vtu"
    lo, hi = read_tensors(ckpt)[1]["problem"]["strain_range"]
    far = f"{3 * hi[0]:g},0,{-3 * abs(lo[2]) - 0.01:g}"
    code, _, err = cli("predict", ckpt, mesh, "-o", tmp_path / "in.vtu", "--strain", STRAIN, capsys=capsys)
    assert code == 0 and "domain of validity" not in err
    code, _, err = cli("predict", ckpt, mesh, "-o", tmp_path / "far.vtu", "--strain", far, capsys=capsys)
    assert code == 0 and f"input 'strain[0]' spans [{3 * hi[0]:.4g}, {3 * hi[0]:.4g}], outside the training range " \
        f"[{lo[0]:.4g}, {hi[0]:.4g}]" in err and "'strain[2]'" in err and "'strain[1]'" not in err
    code, _, err = cli("predict", ckpt, mesh, "-o", tmp_path / "strict.vtu", "--strain", far, "--strict",
                       capsys=capsys)
    assert code == 1 and "--strict: input 'strain[0]'" in one_line_error(err)
    assert not (tmp_path / "strict.vtu").exists()
    code, out, _ = cli("evaluate", ckpt, runs / "rve.h5", "--json", capsys=capsys)
    stats = json.loads(out)
    assert code == 0 and stats["inside"]["samples"] + stats["outside"]["samples"] == 10


def _bad_inputs(folder: Path) -> list[tuple[str, list, str]]:
    rve_mesh(5, "rve1").write(folder / "rve1.vtu")  # same nodes, other inclusions
    rve_mesh(4, "disc").write(folder / "small.vtu")
    (folder / "corrupt.safetensors").write_bytes(b"\x00" * 64)
    eq, cell = folder / "equino" / "model.safetensors", folder / "cell.vtu"
    return [(eq, [cell, "--strain", "0.01,0"], "--strain: expected 3 finite comma-separated numbers"),
            (eq, [cell, "--strain", "nan,0,0"], "--strain: expected 3 finite comma-separated numbers"),
            (eq, [cell], "--strain is required"),
            (eq, [folder / "small.vtu", "--strain", STRAIN], "small.vtu: this RVE mesh is not the training RVE"),
            (eq, [folder / "rve1.vtu", "--strain", STRAIN], "rve1.vtu: the inclusions differ from the training RVE"),
            (eq, [cell, "--strain", STRAIN, "--matrix", "5000,50,0.06,0"], "the materials (K, alpha, beta, G) differ"),
            (eq, [cell, "--strain", STRAIN, "--rtol", "1e-6"], "--rtol is a setting of the FE solver"),
            (folder / "corrupt.safetensors", [cell, "--strain", STRAIN], "corrupt.safetensors: not a valid"),
            (folder / "rve_blackbox" / "model.safetensors", [cell, "--strain", STRAIN], "no micro fields")]


def test_bad_input_is_one_line_exit_1_and_no_file(runs, capsys, tmp_path):
    out = tmp_path / "micro.vtu"
    for ckpt, args, message in _bad_inputs(runs):
        code, _, err = cli("predict", ckpt, *args, "-o", out, "--device", "cpu", capsys=capsys)
        malformed = "comma-separated" in message  # a value of the wrong form: a wrong command line
        assert code == (2 if malformed else 1) and message in one_line_error(err), (message, err)
        assert not out.exists()


def test_snapshots_of_two_rves_are_refused(folder, tmp_path):
    mixed = tmp_path / "mixed.h5"
    assert main(["generate", "rve", "-n", "3", "--geometry", "disc", "--resolution", "5", "-o", str(mixed)]) == 0
    with h5py.File(folder / "rve.h5", "r") as src, h5py.File(mixed, "a") as dst:
        src.copy(src["sim_000001"], dst, name="sim_000003")
    config = train_config(str(mixed), str(tmp_path / "run"), "equino", rank=2, collocation=4, adam_steps=1,
                          lbfgs_iterations=0)
    with pytest.raises(GraphfemError, match="'sim_000003' is on another RVE than group 'sim_000000'") as info:
        train(config)
    assert "\n" not in str(info.value) and not (tmp_path / "run").exists()
    config.model["ranks"] = 3
    with pytest.raises(GraphfemError, match="unknown key 'model.ranks'; equino takes: amplitude, collocation"):
        train(config)
