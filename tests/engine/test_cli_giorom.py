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
