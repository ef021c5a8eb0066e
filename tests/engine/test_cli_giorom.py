"""GIOROM commands: generate mpm (the common layout) -> train the stepper and the
field -> rollout writes a PVD series of point clouds at query points; bad input is one line."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import meshio
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from graphfem.cli import app, main
from graphfem.meshes import PointCloud

torch.set_num_threads(1)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _invoke(*args: str) -> str:
    r = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A water data set by the CLI (2 bodies, the default 40 frames) and a stepper and a field trained on it."""
    d = tmp_path_factory.mktemp("giorom-cli")
    data = d / "water.h5"
    _invoke("generate", "mpm", "--material", "water", "-n", "2", "-o", str(data), "--seed", "4")
    tiny = ["--set", f"data.path={data}", "--set", "data.val_fraction=0", "--set", "run.progress=false",
            "--set", "optim.epochs=1", "--set", "model.hidden=16"]
    _invoke("train", str(EXAMPLES / "giorom_stepper.yaml"), *tiny, "--set", f"run.out={d / 'stepper'}",
            "--set", "model.sparse=0.3")
    _invoke("train", str(EXAMPLES / "giorom_field.yaml"), *tiny, "--set", f"run.out={d / 'field'}")
    return data, d / "stepper" / "model.safetensors", d / "field" / "model.safetensors"


def test_generate_writes_the_common_layout(models):
    data, _, _ = models
    with h5py.File(data) as h5:
        assert h5.attrs["problem"] == "mpm" and sorted(h5) == ["sim_000000", "sim_000001"]
        g = h5["sim_000001"]
        assert "mesh" not in g and not any(k.startswith("traj_") for k in h5)
        x = g["outputs/x"][()]
        assert x.shape[0] == 41 and x.shape[2] == 2 and g["times"].shape == (41,)
        assert (g["inputs/material"][()] == 1).all() and g["inputs/material"].shape == (x.shape[1],)
        params = json.loads(g.attrs["params"])
        assert params["walls"] == [3 / 32, 29 / 32] and params["frame_dt"] == 0.01 and params["material"] == "water"


def test_rollout_with_the_field_at_query_points(models, tmp_path):
    _, stepper, field = models
    pts = np.stack(np.meshgrid(np.linspace(0.3, 0.5, 13), np.linspace(0.2, 0.4, 13)), -1).reshape(-1, 2)
    initial, query = tmp_path / "body.vtu", tmp_path / "q.vtu"
    PointCloud(pts, {"material": np.full(len(pts), 1)}).write(initial)  # the material comes from the file
    PointCloud(pts[::3] + 0.003).write(query)
    out = tmp_path / "traj.pvd"
    report = json.loads(_invoke("rollout", str(stepper), str(initial), "-o", str(out), "--t-end", "0.09",
                                "--field", str(field), "--query", str(query), "--velocity", "0.5,0",
                                "--device", "cpu", "--threads", "1"))
    assert report["frames"] == 10 and report["points"] == len(pts[::3]) and report["particles"] == len(pts)
    assert report["device"] == "cpu" and report["frame_s"] > 0 and report["assemble_s"] <= report["reconstruct_s"]
    files = [d.get("file") for d in ET.parse(out).getroot().iter("DataSet")]
    assert len(files) == 10
    last = meshio.read(tmp_path / files[-1])
    assert last.points.shape == (len(pts[::3]), 3) and np.isfinite(last.points).all()
    assert np.allclose(last.points[:, :2] - (pts[::3] + 0.003), last.point_data["displacement"][:, :2])


@pytest.mark.parametrize("args, message, expected", [  # 2: a value of the wrong form or an unknown flag
    (["--material", "honey"], "--material must be one of", 2),
    (["--field", "STEPPER"], "not a giorom-field checkpoint (model 'giorom')", 1),
    (["--material", "water", "--kappa", "1"], "No such option '--kappa'", 2),
    (["--material", "water", "--threads", "-1"], "--threads must be >= 0", 1),
    (["--material", "water", "--device", "tpu"], "--device must be auto, cpu or cuda", 2),
])
def test_rollout_bad_input_is_one_line(models, tmp_path, capsys, args, message, expected):
    _, stepper, _ = models
    body = tmp_path / "body.vtu"
    PointCloud(np.array([[0.4, 0.4], [0.45, 0.4], [0.4, 0.45]])).write(body)
    out = tmp_path / "no.pvd"
    args = [str(stepper) if a == "STEPPER" else a for a in args]
    code = main(["rollout", str(stepper), str(body), "-o", str(out), "--t-end", "0.1", *args])
    err = capsys.readouterr().err.strip()
    assert code == expected and message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_generate_mpm_needs_a_known_material(tmp_path, capsys):
    assert main(["generate", "mpm", "-n", "1", "-o", str(tmp_path / "x.h5")]) == 1
    assert main(["generate", "mpm", "-n", "1", "-o", str(tmp_path / "x.h5"), "--material", "honey"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "needs --material" in err[0] and "--material must be one of" in err[1]
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_sand_example_runs(tmp_path):
    """examples/giorom_sand.py end to end (minutes): a finite dense rollout, a falling loss and the PNG."""
    import runpy

    main_ = runpy.run_path(str(EXAMPLES / "giorom_sand.py"))["main"]
    result = main_(tmp_path, frames=24, epochs=6)
    assert np.isfinite(result["rollout_mse"]) and result["last_loss"] < result["first_loss"]
    assert (tmp_path / "giorom_sand.png").stat().st_size > 10_000


# ---------------------------------------------------------------- the domain of validity (issue 13)
def _run(*args):
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def _block(path: Path) -> Path:
    """A block of our own, filled (``--spacing 1/64``, the training spacing) with 22 x 17 particles (the size
    of the training bodies), placed between the two training bodies."""
    from graphfem.meshes import Mesh

    Mesh.rectangle(4, 3, 0.3, 0.3 + 22 / 64, 0.27, 0.27 + 17 / 64).write(path)
    return path


def test_validity_predict_warns_outside_and_strict_refuses(models, tmp_path):
    """Inside the stepper's training ranges (water, 374-396 particles, velocities (0.46..0.60, -0.48..-0.13),
    40 frames) predict is silent; a body thrown at 2.5 warns naming velocity[0] and its range; --strict (predict
    and rollout) is one line, exit 1, no file."""
    from graphfem.checkpoint import read_tensors

    _, stepper, _ = models
    meta = read_tensors(stepper)[1]
    assert meta["problem"]["inputs"] == ["initial x[0]", "initial x[1]", "velocity[0]", "velocity[1]",
                                         "particle spacing", "rollout time"]
    assert meta["validity"]["features"]["rollout time"] == pytest.approx([0.06, 0.4])
    body = _block(tmp_path / "block.vtu")
    common = ["--material", "water", "--t-end", "0.2", "--spacing", "0.015625", "--device", "cpu"]
    code, _, err = _run("predict", stepper, body, "-o", tmp_path / "in.pvd", *common, "--velocity", "0.5,-0.3")
    assert code == 0 and (tmp_path / "in.pvd").exists() and "warning" not in err, err
    code, _, err = _run("predict", stepper, body, "-o", tmp_path / "out.pvd", *common, "--velocity", "2.5,-0.3")
    warned = [ln for ln in err.splitlines() if "domain of validity" in ln]
    assert code == 0 and (tmp_path / "out.pvd").exists() and len(warned) == 1, err
    lo, hi = meta["validity"]["features"]["velocity[0]"]
    assert warned[0] == ("graphfem: warning: outside the model's domain of validity: input 'velocity[0]' spans "
                         f"[2.5, 2.5], outside the training range [{lo:.4g}, {hi:.4g}]")
    for command in ("predict", "rollout"):
        out = tmp_path / f"strict-{command}.pvd"
        code, _, err = _run(command, stepper, body, "-o", out, *common, "--velocity", "0.5,-0.3", "--t-end", "0.6",
                            "--strict")
        assert code == 1 and not out.exists() and len(err.strip().splitlines()) == 1, err
        assert "--strict: input 'rollout time' spans [0.06, 0.6], outside the training range [0.06, 0.4]" in err


def test_validity_evaluate_splits_and_old_or_tampered_checkpoints(models, tmp_path):
    """evaluate --json: the training bodies inside, a body of another seed outside; a checkpoint without
    ranges predicts silently and is refused under --strict; a tampered range is refused in one line."""
    from graphfem.checkpoint import read_tensors, save_tensors

    data, stepper, _ = models
    code, out, _ = _run("evaluate", stepper, data, "--json")
    stats = json.loads(out)
    assert code == 0 and (stats["inside"]["samples"], stats["outside"]["samples"]) == (2, 0)
    other = tmp_path / "other.h5"
    _invoke("generate", "mpm", "--material", "water", "-n", "1", "-o", str(other), "--seed", "9", "--t-end", "0.1")
    code, out, _ = _run("evaluate", stepper, other)
    assert code == 0 and "the model's training ranges: inside 0, outside 1" in out, out
    assert "relative L2 error (displacement over every particle and frame)" in out, out
    tensors, meta = read_tensors(stepper)
    body, common = _block(tmp_path / "block.vtu"), ["--material", "water", "--t-end", "0.1", "--velocity", "3,0",
                                                "--spacing", "0.015625"]
    save_tensors(tmp_path / "old.safetensors", tensors, {k: v for k, v in meta.items() if k != "validity"})
    code, _, err = _run("predict", tmp_path / "old.safetensors", body, "-o", tmp_path / "o.pvd", *common)
    assert code == 0 and (tmp_path / "o.pvd").exists() and "warning" not in err, err
    code, _, err = _run("predict", tmp_path / "old.safetensors", body, "-o", tmp_path / "o2.pvd", *common, "--strict")
    assert code == 1 and "stores no training ranges" in err and len(err.strip().splitlines()) == 1, err
    meta["validity"]["features"]["rollout time"] = [0.4, 0.06]
    save_tensors(tmp_path / "bad.safetensors", tensors, meta)
    for command in ("predict", "rollout"):
        out = tmp_path / f"bad-{command}.pvd"
        code, _, err = _run(command, tmp_path / "bad.safetensors", body, "-o", out, *common)
        assert code == 1 and "checkpoint 'validity' must hold" in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
