"""GIOROM CLI: generate-mpm -> giorom-train -> rollout writes a PVD series of point clouds; bad input is one line."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from graphfem.cli.giorom import register
from graphfem.meshes import PointCloud
from graphfem.meshes.errors import GraphfemError


@pytest.fixture(scope="module")
def app():
    a = typer.Typer()
    register(a)
    return a


def test_generate_train_rollout(app, tmp_path):
    torch.set_num_threads(1)
    run = CliRunner().invoke
    data, model = tmp_path / "w.h5", tmp_path / "m.safetensors"
    r = run(app, ["generate-mpm", "--material", "water", "-n", "2", "--frames", "10", "-o", str(data),
                  "--device", "cpu"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = run(app, ["giorom-train", str(data), "-o", str(model), "--steps", "5", "--field-steps", "3",
                  "--sparse", "0.3", "--hidden", "16"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    initial = tmp_path / "body.vtu"
    pts = np.stack(np.meshgrid(np.linspace(0.3, 0.5, 12), np.linspace(0.2, 0.4, 12)), -1).reshape(-1, 2)
    PointCloud(pts).write(initial)
    query = tmp_path / "q.vtu"
    PointCloud(pts[::3] + 0.003).write(query)
    out = tmp_path / "traj.pvd"
    r = run(app, ["rollout", str(model), str(initial), "-o", str(out), "--steps", "4", "--material", "water",
                  "--query", str(query), "--velocity", "0.5,0"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    files = [d.get("file") for d in ET.parse(out).getroot().iter("DataSet")]
    assert len(files) == 4 + 6
    import meshio

    last = meshio.read(tmp_path / files[-1])
    assert last.points.shape == (len(pts[::3]), 3) and np.isfinite(last.points).all()
    with pytest.raises(GraphfemError, match="material"):
        run(app, ["rollout", str(model), str(initial), "-o", str(out), "--material", "honey"],
            catch_exceptions=False)


@pytest.mark.slow
def test_sand_example_runs(tmp_path):
    """examples/giorom_sand.py end to end (minutes): a finite dense rollout, a falling loss and the PNG."""
    import runpy
    from pathlib import Path

    main = runpy.run_path(str(Path(__file__).resolve().parents[2] / "examples" / "giorom_sand.py"))["main"]
    result = main(tmp_path, frames=24, steps=150)
    assert np.isfinite(result["rollout_mse"]) and result["last_loss"] < result["first_loss"]
    assert (tmp_path / "giorom_sand.png").stat().st_size > 10_000
