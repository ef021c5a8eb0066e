"""The SPON adapter through the engine's commands: ``graphfem train`` (and an
exact resume after a SIGKILL mid-epoch), ``graphfem predict`` on an unseen
mesh with the problem's options (Dirichlet values exact, unused options
refused in one line), ``graphfem evaluate`` against an FE-matrix computation
done here, and the example configurations for all three data families."""
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

import graphfem
from graphfem.checkpoint import read_tensors
from graphfem.cli import main
from graphfem.datasets import spon as spon_data
from graphfem.datasets.generate import generate
from graphfem.families.spon import case_options
from graphfem.meshes import FESpace, Mesh, read
from graphfem.meshes.errors import InputError
from graphfem.training.config import load_config
from graphfem.training.trainer import FAULT_ENV, train

torch.set_num_threads(1)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _cli(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the ``graphfem`` command line, run in this process."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def poisson(tmp_path_factory):
    path = tmp_path_factory.mktemp("spon_family") / "poisson.h5"
    spon_data.generate("spon-poisson", 10, path, resolution=1, seed=3)
    return path


def _config(folder: Path, data: Path, name: str, out: str) -> Path:
    cfg = {"model": {"name": name, "latent": 8, "layers": 3, "levels": 0 if name == "spon" else 1},
           "data": {"path": str(data), "batch_size": 2, "val_fraction": 0.2, "test_fraction": 0.2},
           "optim": {"epochs": 2, "warmup_steps": 2, "lr": 3e-3},
           "run": {"out": str(folder / out), "checkpoint_every": 2, "threads": 1, "progress": False,
                   "device": "cpu"}}
    path = folder / f"{out}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _weights(run: Path) -> dict:
    return {k: v for k, v in read_tensors(run / "state.safetensors")[0].items() if k.startswith("model.")}


def _unseen_lshape() -> Mesh:
    """The 21-node L-shape with its interior nodes moved at random (no other test uses it)."""
    mesh = spon_data.coarse_mesh("lshape-fixed")
    points = mesh.points.copy()
    interior = np.setdiff1d(np.arange(mesh.n_points), mesh.boundary_nodes())
    points[interior] += np.random.default_rng(5).uniform(-0.08, 0.08, (interior.size, 2))
    return Mesh(points, mesh.cell_type, mesh.cells, tags=mesh.tags)


@pytest.mark.parametrize("name", ["spon", "spon_mg"])
def test_train_resume_predict_through_the_cli(tmp_path, capsys, poisson, name):
    full, killed = _config(tmp_path, poisson, name, "full"), _config(tmp_path, poisson, name, "killed")
    code, out, err = _cli(capsys, "train", full)
    assert code == 0, err
    assert "test_rel_l2" in json.loads(out.strip().splitlines()[-1])
    # 6 training samples / batch 2 = 3 steps per epoch: step 5 is mid-epoch 1, after the save at step 4
    r = subprocess.run([sys.executable, "-m", "graphfem", "train", str(killed)], env={**ENV, FAULT_ENV: "5"},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, r.stderr  # SIGKILL
    state = read_tensors(tmp_path / "killed" / "state.safetensors")[1]
    assert (state["epoch"], state["batch"], state["step"]) == (1, 1, 4)
    code, _, err = _cli(capsys, "train", killed, "--resume")
    assert code == 0, err
    wf, wk = _weights(tmp_path / "full"), _weights(tmp_path / "killed")
    assert wf.keys() == wk.keys() and all(torch.equal(wf[k], wk[k]) for k in wf)
    lines = lambda run: [ln for ln in (tmp_path / run / "metrics.jsonl").read_text().splitlines()  # noqa: E731
                         if "time_s" not in ln]
    assert lines("full") == lines("killed")

    model = tmp_path / "full" / "model.safetensors"
    _unseen_lshape().write(tmp_path / "unseen.msh")
    code, _, err = _cli(capsys, "predict", model, tmp_path / "unseen.msh", "-o", tmp_path / "u.vtu", "--kappa",
                        "1+x*x", "--source", "sin(pi*x)*y", "--dirichlet", "boundary=0.3+x*y")
    assert code == 0, err
    out = read(tmp_path / "u.vtu")
    assert out.n_points == 21  # on the given mesh (the model ran on its refinement at the trained size)
    u, x = out.point_data["u"], out.points
    boundary = out.boundary_nodes()
    assert np.isfinite(u).all() and np.ptp(np.delete(u, boundary)) > 0
    assert np.array_equal(u[boundary], 0.3 + x[boundary, 0] * x[boundary, 1])
    flag, value = ("--robin", "boundary=1,0") if name == "spon" else ("--order", "1")
    code, _, err = _cli(capsys, "predict", model, tmp_path / "unseen.msh", "-o", tmp_path / "refused.vtu", flag,
                        value)
    assert code == 1 and not (tmp_path / "refused.vtu").exists()
    assert len(err.strip().splitlines()) == 1 and f"{flag}: the SPON model" in err, err


def test_evaluate_equals_an_fe_matrix_computation(tmp_path, capsys, poisson):
    cfg = _config(tmp_path, poisson, "spon_mg", "run")
    train(load_config(cfg), source=str(cfg))
    model = tmp_path / "run" / "model.safetensors"
    code, out, err = _cli(capsys, "evaluate", model, poisson, "--json", "--compare-fe")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["samples"] == 10 and stats["fe_vs_stored_max"] < 1e-12 and stats["fe_s_mean"] > 0
    s = graphfem.load(model)
    with h5py.File(poisson, "r") as h5:
        stored = [h5[f"sim_{i:06d}/dofs/u"][()] for i in range(10)]
    for record, reference, error in zip(spon_data.read(poisson), stored, stats["errors"]):
        prediction = s.prediction(record.mesh, **case_options(record))
        M = FESpace(prediction.mesh, 1).mass()  # P1: the nodal values are the coefficients
        e = prediction.fields["u"] - reference
        assert abs(np.sqrt(e @ (M @ e) / (reference @ (M @ reference))) - error) < 1e-9 * error


def test_refuses_other_data_naming_the_models_that_can(tmp_path):
    generate("poisson", 3, tmp_path / "plain.h5", seed=0, progress=False)
    cfg = _config(tmp_path, tmp_path / "plain.h5", "spon_mg", "run")
    with pytest.raises(InputError, match="spon_mg cannot train on poisson data; models that can: meshgraphnet"):
        train(load_config(cfg))
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def family_files(tmp_path_factory, poisson):
    d = tmp_path_factory.mktemp("spon_families")
    spon_data.generate("spon-hyperelastic", 5, d / "hyper.h5", resolution=1, seed=0)
    spon_data.generate("spon-flow", 3, d / "flow.h5", resolution=1, seed=0)
    return {"spon_poisson": poisson, "spon_mg_poisson": poisson, "spon_hyperelastic": d / "hyper.h5",
            "spon_flow": d / "flow.h5"}


#: per example config: the mesh to predict on, the problem options, an option the model does not use
CASES = {
    "spon_poisson": (lambda: spon_data.coarse_mesh("lshape-fixed").refined(), {"source": "x", "dirichlet": ["boundary=0"]},
                     {"robin": ["boundary=1,0"]}),
    "spon_mg_poisson": (lambda: spon_data.coarse_mesh("lshape-fixed"), {"kappa": "2"}, {"solver": "direct"}),
    "spon_hyperelastic": (lambda: spon_data.coarse_mesh("plate"), {"traction": ["right=0.1,0.01"],
                                                                   "body_force": "0,-0.02", "E": "1"},
                          {"dirichlet": ["left=0"]}),
    "spon_flow": (lambda: spon_data.flow_coarse_mesh({"centre": [0.22, 0.19], "radius": 0.045}),
                  {"inflow": ["inlet=0.3"]}, {"obstacle": "cylinder"}),
}


@pytest.mark.parametrize("example", sorted(CASES))
def test_example_configs_train_and_predict(tmp_path, family_files, example):
    config = load_config(EXAMPLES / f"{example}.yaml", [
        f"data.path={family_files[example]}", f"run.out={tmp_path / 'run'}", "run.progress=false", "run.device=cpu",
        "optim.epochs=1", "model.latent=8", "data.batch_size=2"])
    final = train(config, source=example)
    assert np.isfinite(next(v for k, v in final.items() if k.startswith("test_rel_")))
    s = graphfem.load(tmp_path / "run" / "model.safetensors")
    mesh, options, unused = CASES[example]
    prediction = s.prediction(mesh(), **options)
    (field, values), = prediction.fields.items()
    assert field == spon_data.FIELDS[s.problem["data_family"]] and np.isfinite(values).all()
    assert prediction.units[field] in ("1", "m", "m/s") and values.shape[0] == prediction.mesh.n_points
    if example == "spon_hyperelastic":  # clamped: exactly zero on the fixed edge
        assert np.all(values[prediction.mesh.tag_nodes("left")] == 0.0)
    if example == "spon_flow":  # no slip exactly
        assert np.all(values[prediction.mesh.tag_nodes("cylinder")] == 0.0)
    flag = "--" + next(iter(unused)).replace("_", "-")
    with pytest.raises(InputError, match=f"{flag}: the SPON model"):
        s.predict(mesh(), **options, **unused)


def _shuffled(mesh: Mesh, seed: int) -> Mesh:
    """``mesh`` with its nodes in a random order (facet tags follow): a file no refinement wrote."""
    from graphfem.meshes import Tag

    perm = np.random.default_rng(seed).permutation(mesh.n_points)
    new = np.argsort(perm)
    tags = {n: Tag(n, t.kind, new[t.indices]) for n, t in mesh.tags.items() if t.kind == "facet"}
    return Mesh(mesh.points[perm], mesh.cell_type, new[mesh.cells], tags=tags)


def test_a_finer_mesh_is_served_on_the_trained_levels_through_the_cli(tmp_path, capsys):
    """A perforated plate (no other test uses it): SPON-MG trained one refinement
    above its coarse mesh predicts on a mesh two refinements above, given as a
    shuffled file, by finding the trained levels below it: the CLI output is
    the trained-level CLI output prolonged exactly, on the given nodes, with
    the Dirichlet values exact."""
    from graphfem.operators.spon import prolongation

    data = tmp_path / "plate.h5"
    code, _, err = _cli(capsys, "generate", "spon-poisson", "-n", "6", "--geometry", "perforated-fixed",
                        "--resolution", "1", "-o", data)
    assert code == 0, err
    code, _, err = _cli(capsys, "train", _config(tmp_path, data, "spon_mg", "run"))
    assert code == 0, err
    coarse = spon_data.coarse_mesh("perforated-fixed")
    trained, finer = coarse.refined(1), _shuffled(coarse.refined(2), seed=8)
    trained.write(tmp_path / "trained.msh")
    finer.write(tmp_path / "finer.msh")
    options = ["--kappa", "1+0.5*y", "--source", "cos(2*x)", "--dirichlet", "boundary=0.2*x-y*y"]
    model = tmp_path / "run" / "model.safetensors"
    warned = {}
    for name in ("trained", "finer"):
        code, _, err = _cli(capsys, "predict", model, tmp_path / f"{name}.msh", "-o", tmp_path / f"u_{name}.vtu",
                            *options)
        assert code == 0 and "not a uniform refinement" not in err, err
        warned[name] = err
    assert warned["finer"] == warned["trained"]  # the same case on the trained levels, for the domain of validity too
    u_trained, out = read(tmp_path / "u_trained.vtu").point_data["u"], read(tmp_path / "u_finer.vtu")
    assert out.n_points == finer.n_points and np.allclose(out.points, finer.points)
    x, boundary = out.points, out.boundary_nodes()
    assert np.array_equal(out.point_data["u"][boundary], 0.2 * x[boundary, 0] - x[boundary, 1] ** 2)
    prolonged = prolongation(FESpace(trained, 1), FESpace(finer, 1)) @ u_trained
    interior = np.setdiff1d(np.arange(finer.n_points), boundary)
    assert np.allclose(out.point_data["u"][interior], prolonged[interior], rtol=0, atol=1e-6)
    # a finer mesh that is no refinement is served with a warning, never silently
    points = finer.points.copy()
    points[interior] += np.random.default_rng(1).uniform(-0.003, 0.003, (interior.size, 2))
    Mesh(points, finer.cell_type, finer.cells, tags=finer.tags).write(tmp_path / "moved.msh")
    code, _, err = _cli(capsys, "predict", model, tmp_path / "moved.msh", "-o", tmp_path / "u_moved.vtu", *options)
    assert code == 0 and "not a uniform refinement" in err, err


@pytest.mark.parametrize("geometry", ["random:mixed", "lshape-fixed", "square"])
def test_geometry_names_are_one_vocabulary(tmp_path, capsys, geometry):
    """Random families and fixed shapes have the same names for every generator;
    a name a generator does not take is one line listing those it does."""
    out = tmp_path / "x.h5"
    code, _, err = _cli(capsys, "generate", "spon-hyperelastic", "-n", "1", "--geometry", geometry, "-o", out)
    assert code == 1 and not out.exists() and len(err.strip().splitlines()) == 1, err
    assert f"--geometry {geometry}: spon-hyperelastic takes plate" in err and "mixed (" in err
