"""NeuralStagger through the engine as a user runs it: ``graphfem generate mac-channel``,
``graphfem train`` (no labels: the pool and the fine loss), ``graphfem predict`` on a channel mesh
of our own (a PVD series of velocity and pressure; the grid coarsened by 2 runs one sub-solver),
``graphfem evaluate`` against the MAC solver, and bad input: one line, non-zero exit, no file."""
from __future__ import annotations

import contextlib
import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from graphfem.meshes import Grid, read_series
from graphfem.physics.mac_channel import Domain, channel_grid_mesh

torch.set_num_threads(1)

BOX = ((0.0, 0.0), (2.0, 1.0))


def _cli(*args, check: bool = True) -> subprocess.CompletedProcess:
    from graphfem import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    run = subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
    if check:
        assert run.returncode == 0, run.stdout + run.stderr
    return run


def _channel(path: Path, shape: tuple[int, int]) -> Path:
    """A channel with a 2-cell-high block of our own (not a random_domain draw)."""
    grid = Grid(shape, *BOX)
    solid = np.zeros(shape, dtype=bool)
    nx, ny = shape
    solid[nx // 4: nx // 4 + max(1, nx // 16), ny // 2 - 1: ny // 2 + 1] = True
    channel_grid_mesh(grid, solid).write(path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ns")
    data = root / "data.h5"
    _cli("generate", "mac-channel", "-n", 5, "-o", data, "--resolution", 8, "--seed", 2)
    config = root / "train.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "neuralstagger", "s_h": 2, "s_w": 2, "width": 4, "levels": 1, "pool": 8, "visits": 2},
        "data": {"path": str(data), "batch_size": 4, "val_fraction": 0.2, "test_fraction": 0.2},
        "optim": {"epochs": 3, "lr": 1e-3},
        "run": {"out": str(root / "run"), "threads": 1, "progress": False}}))
    _cli("train", config)
    return root, data, root / "run" / "model.safetensors"


OPTIONS = ["--inflow", "left=1.0", "--outflow", "right", "--no-slip", "bottom", "--no-slip", "top", "--no-slip",
           "obstacle", "--nu", "0.02", "--t-end", "0.25", "--dt", "0.025"]


def test_predict_writes_a_series_on_the_grid_and_on_its_coarsening(trained, tmp_path):
    _, _, model = trained
    for shape in ((16, 8), (8, 4)):
        mesh = _channel(tmp_path / f"c{shape[0]}.msh", shape)
        out = tmp_path / f"p{shape[0]}.pvd"
        run = _cli("predict", model, mesh, "-o", out, "--device", "cpu", *OPTIONS, "--save-every", "2",
                   *(["--strict"] if shape == (8, 4) else []))  # hard ranges: --strict holds
        assert "velocity" in run.stdout
        m, times, fields = read_series(out)
        assert np.allclose(times, 0.05 * np.arange(6))
        assert fields["velocity"].shape[:2] == (6, m.n_points) and np.isfinite(fields["velocity"]).all()
        assert np.isfinite(fields["pressure"]).all()
        inflow = m.points[:, 0] < 1e-9
        y = m.points[inflow, 1]
        # the parabolic inflow is exact at the first frame's inflow nodes (mean of the faces around a node)
        assert np.all(fields["velocity"][0, inflow, 0] <= 1.0 + 1e-9) and fields["velocity"][0, inflow, 0].max() > 0.5
        assert y.size == shape[1] + 1


def test_evaluate_against_the_mac_solver(trained):
    _, data, model = trained
    run = _cli("evaluate", model, data, "--json", "--compare-fe", "--device", "cpu", "--limit", "2")
    import json

    stats = json.loads(run.stdout)
    assert stats["samples"] == 2 and np.isfinite(stats["rel_l2_mean"]) and stats["fe_vs_stored_max"] < 1e-8


@pytest.mark.parametrize("case", ["grid", "setting", "unknown", "dt", "nu", "sides", "corrupt"])
def test_bad_input_is_one_line_with_no_file(trained, tmp_path, case):
    root, _, model = trained
    mesh = _channel(tmp_path / "c.msh", (16, 8))
    options = list(OPTIONS)
    expect = {"grid": "coarsening of it", "setting": "--obstacle", "unknown": "No such option", "dt": "--dt",
              "nu": "training range", "sides": "--outflow", "corrupt": "model.safetensors"}[case]
    if case == "grid":
        mesh = _channel(tmp_path / "g.msh", (12, 8))
    elif case == "setting":
        options += ["--obstacle", "obstacle"]
    elif case == "unknown":
        options += ["--kappa", "1"]
    elif case == "dt":
        options[options.index("--dt") + 1] = "0.05"
    elif case == "nu":
        options[options.index("--nu") + 1] = "0.5"
    elif case == "sides":
        options[options.index("--outflow") + 1] = "top"
    elif case == "corrupt":
        bad = tmp_path / "model.safetensors"
        bad.write_bytes(model.read_bytes()[:2000])
        model = bad
    out = tmp_path / "p.pvd"
    run = _cli("predict", model, mesh, "-o", out, "--device", "cpu", *options, check=False)
    assert run.returncode != 0 and expect in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not out.exists()


def test_generate_refuses_an_odd_resolution(tmp_path):
    run = _cli("generate", "mac-channel", "-n", 1, "-o", tmp_path / "d.h5", "--resolution", 7, check=False)
    assert run.returncode != 0 and "--resolution" in run.stderr and not (tmp_path / "d.h5").exists()


def test_a_model_config_against_the_data_grid_is_refused(trained, tmp_path):
    _, data, _ = trained
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "neuralstagger", "s_h": 3, "width": 4, "levels": 1},
        "data": {"path": str(data), "batch_size": 2}, "optim": {"epochs": 1},
        "run": {"out": str(tmp_path / "run"), "threads": 1, "progress": False}}))
    run = _cli("train", config, check=False)
    assert run.returncode != 0 and "does not split" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_pool_follows_the_rng_and_rollouts_are_written_back(trained):
    from graphfem.datasets.simulations import SimulationData
    from graphfem.families import families

    _, data, _ = trained
    family = families()["neuralstagger"]
    torch.manual_seed(0)
    setup = family.setup(SimulationData(data), {"train": [0, 1, 2], "val": [3], "test": [4]},
                         {"name": "neuralstagger", "width": 4, "levels": 1, "pool": 4, "visits": 1}, "test")
    b1 = family.collate(setup, [0, 1, 1], np.random.default_rng(5), "cpu", torch.float32)
    assert len(b1["domains"]) == 2                                       # a slot twice in a batch is stepped once
    before = setup.state["pool"][0]["A"].copy()
    family.loss(setup.model, b1).backward()
    assert setup.state["pool"][0]["A"] is not before                      # the prediction was written back
    again = family.setup(SimulationData(data), {"train": [0], "val": [], "test": []},
                         {"name": "neuralstagger", "width": 4, "levels": 1, "pool": 4, "visits": 1}, "test")
    b2 = family.collate(again, [0, 1, 1], np.random.default_rng(5), "cpu", torch.float32)
    assert all(np.array_equal(d1.solid, d2.solid) and d1.nu == d2.nu for d1, d2 in zip(b1["domains"], b2["domains"]))


def test_a_short_label_free_training_steps_and_rolls_out(tmp_path):
    """About 100 Adam steps on the fine loss: the one-step error against the MAC solver is bounded and a
    20-step rollout of a channel of our own stays finite."""
    from graphfem.checkpoint import load_model
    from graphfem.families.neuralstagger import NeuralStaggerFamily, rollout
    from graphfem.meshes import Grid

    data = tmp_path / "d.h5"
    _cli("generate", "mac-channel", "-n", 3, "-o", data, "--resolution", 8, "--seed", 11)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "neuralstagger", "s_h": 2, "s_w": 2, "width": 8, "levels": 1, "pool": 16, "visits": 2},
        "data": {"path": str(data), "batch_size": 4, "val_fraction": 0.0, "test_fraction": 0.34},
        "optim": {"epochs": 8, "lr": 2e-3, "clip_norm": 1.0},
        "run": {"out": str(tmp_path / "run"), "threads": 1, "progress": False}}))
    _cli("train", config)
    model, _ = load_model(tmp_path / "run" / "model.safetensors")
    from graphfem.datasets.simulations import SimulationData
    from graphfem.families.neuralstagger import _grid, domain_of

    d = SimulationData(data)
    s = d.sample(2)
    errors = NeuralStaggerFamily.errors(model, {"domain": domain_of(s, _grid(s, data)), "a": s.fields["a"],
                                                "p": s.fields["p"]}, "cpu")
    assert errors["one_step_rel_l2"] < 0.05 and errors["rollout_rel_l2"] < 0.5, errors
    grid = Grid((16, 8), *BOX)
    solid = np.zeros((16, 8), dtype=bool)
    solid[5:7, 2:4] = True
    domain = Domain(grid, solid, 1.0, 0.02)
    A, p = rollout(model, domain, domain.start()[None], np.zeros((1, 16, 8)), 20, "cpu")
    assert A.shape == (21, 16, 8) and np.isfinite(A).all() and np.isfinite(p).all()
