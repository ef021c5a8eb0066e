"""The one-engine matrix, through the command line as a user runs it: for every
problem ``graphfem solve`` offers, generate 6 samples, train MeshGraphNet for
one epoch, then ``graphfem predict`` on a mesh no sample used, with exactly
the options ``graphfem solve`` takes. The output holds solve's fields, finite,
on that mesh (a PVD series for time-dependent problems). And every data set
``graphfem generate`` offers is either trained on or refused in one line that
names the models that can train on it."""
from __future__ import annotations

import contextlib
import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from graphfem.meshes import Mesh, read, read_series

torch.set_num_threads(1)


def _cli(*args, check: bool = True) -> subprocess.CompletedProcess:
    """``graphfem ARGS`` through the console entry point, in this process (a new
    interpreter per call would cost seconds each); returns code and output."""
    from graphfem import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    run = subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
    if check:
        assert run.returncode == 0, run.stdout + run.stderr
    return run


def _plate(path: Path) -> Path:
    """A 2 x 1 rectangle with jittered interior nodes (tags left, right, bottom, top)."""
    base = Mesh.rectangle(10, 5, 0.0, 2.0, 0.0, 1.0)
    rng = np.random.default_rng(7)
    points = base.points.copy()
    inner = np.setdiff1d(np.arange(base.n_points), base.boundary_nodes())
    points[inner] += rng.uniform(-0.04, 0.04, (len(inner), 2))
    Mesh(points, base.cell_type, base.cells, tags=dict(base.tags)).write(path)
    return path


def _channel(path: Path) -> Path:
    from graphfem.physics.channel import channel_mesh

    channel_mesh(16, order=1, centre=(0.27, 0.19), radius=0.045).write(path)
    return path


def _line(path: Path) -> Path:
    Mesh.interval(40, -1.0, 1.0).write(path)
    return path


def _rve(path: Path) -> Path:
    from graphfem.physics.rve import rve_mesh

    rve_mesh(6, "rve3").write(path)
    return path


def _hyper_plate(path: Path) -> Path:
    Mesh.rectangle(12, 6, 0.0, 1.0, 0.0, 0.5).write(path)
    return path


#: problem -> (mesh builder, solve/predict options, output suffix)
CASES = {
    "poisson": (_plate, ["--kappa", "2", "--source", "sin(pi*x)", "--dirichlet", "left=1", "--dirichlet", "right=0"],
                ".vtu"),
    "elasticity": (_plate, ["--E", "2", "--nu", "0.3", "--fix", "left", "--traction", "right=0.01,-0.02"], ".vtu"),
    "heat": (_plate, ["--t-end", "0.05", "--dt", "0.005", "--initial", "sin(pi*x)*y", "--kappa", "0.5",
                      "--dirichlet", "left=0"], ".pvd"),
    "darcy": (_plate, ["--kappa", "where(x < 1, 5, 10)", "--dirichlet", "left=0", "--dirichlet", "right=0"], ".vtu"),
    "advection-diffusion": (_plate, ["--velocity", "1,0.5", "--kappa", "0.05", "--t-end", "0.2", "--dt", "0.02",
                                     "--initial", "exp(-20*((x-0.5)**2+(y-0.5)**2))"], ".pvd"),
    "burgers": (_line, ["--nu", "0.01", "--initial", "-sin(pi*x)", "--t-end", "0.5", "--dt", "0.01"], ".pvd"),
    "stokes": (_channel, ["--inflow", "inlet=0.2", "--no-slip", "walls", "--no-slip", "cylinder", "--outflow",
                          "outlet", "--nu", "0.005"], ".vtu"),
    "navier-stokes": (_channel, ["--inflow", "inlet=0.2", "--no-slip", "walls", "--no-slip", "cylinder",
                                 "--outflow", "outlet", "--nu", "0.005"], ".vtu"),
    "cylinder-wake": (_channel, ["--u-max", "0.9", "--t-end", "1.0", "--dt", "0.25", "--save-every", "1"], ".pvd"),
    "rve": (_rve, ["--strain", "0.01,0,0.005"], ".vtu"),
    "hyperelastic": (_hyper_plate, ["--E", "1", "--nu", "0.3", "--fix", "left", "--traction", "right=0.08,0"],
                     ".vtu"),
}


#: problems whose surrogate is another family's: MeshGraphNet refuses their data (test_pairings.py) and that
#: family's tests run generate -> train -> predict (mpm: tests/engine/test_family_giorom.py; the
#: random-grid parametric problems: tests/engine/test_family_rgnp.py)
NO_MESH = {"mpm", "nonlinear-poisson", "parametric-burgers", "lid-cavity"}


def test_every_solve_problem_has_a_case():
    from graphfem.cli.solve import solve_app

    offered = {c.name for c in solve_app.registered_commands} - NO_MESH
    assert offered <= set(CASES), f"add a case for {offered - set(CASES)}"


def _fields(path: Path, series: bool) -> tuple[int, dict]:
    if series:
        mesh, times, fields = read_series(path)
        assert len(times) > 2
        return mesh.n_points, {k: v[-1] for k, v in fields.items()}
    mesh = read(path)
    return mesh.n_points, dict(mesh.point_data)


@pytest.mark.parametrize("problem", sorted(CASES))
def test_generate_train_predict_like_solve(problem, tmp_path):
    from graphfem.physics.problem import get_problem

    build, options, suffix = CASES[problem]
    data = tmp_path / "data.h5"
    _cli("generate", problem, "-n", 6, "-o", data, "--seed", 3)
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "meshgraphnet", "latent": 8, "layers": 2},
        "data": {"path": str(data), "batch_size": 2, "val_fraction": 0.2, "test_fraction": 0.2},
        "optim": {"epochs": 1, "warmup_steps": 1},
        "run": {"out": str(tmp_path / "run"), "threads": 1, "progress": False}}))
    _cli("train", config)
    mesh = build(tmp_path / "unseen.msh")
    solved, predicted = tmp_path / f"fe{suffix}", tmp_path / f"nn{suffix}"
    _cli("solve", problem, mesh, "-o", solved, *options)
    _cli("predict", tmp_path / "run" / "model.safetensors", mesh, "-o", predicted, "--device", "cpu", *options)
    n_fe, fe = _fields(solved, suffix == ".pvd")
    n_nn, nn = _fields(predicted, suffix == ".pvd")
    assert n_nn == n_fe == read(mesh).n_points
    expected = set(get_problem(problem).fields)
    assert expected <= set(fe) and expected <= set(nn)
    for name in expected:
        assert nn[name].shape == fe[name].shape and np.isfinite(nn[name]).all()


def test_an_option_the_model_does_not_use_is_refused(tmp_path):
    """A setting of the FE solver, and an option of another problem, each give one line and no file."""
    data = tmp_path / "d.h5"
    _cli("generate", "poisson", "-n", 4, "-o", data)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"model": {"name": "meshgraphnet", "latent": 4, "layers": 1},
                                      "data": {"path": str(data), "batch_size": 2}, "optim": {"epochs": 1},
                                      "run": {"out": str(tmp_path / "run"), "progress": False, "threads": 1}}))
    _cli("train", config)
    mesh = _plate(tmp_path / "p.msh")
    out = tmp_path / "u.vtu"
    for extra, message in ((["--solver", "amg"], "--solver is a setting of the FE solver"),
                           (["--E", "3"], "No such option")):
        run = _cli("predict", tmp_path / "run" / "model.safetensors", mesh, "-o", out, *extra, check=False)
        assert run.returncode != 0 and message in run.stderr and len(run.stderr.strip().splitlines()) == 1
        assert not out.exists()
