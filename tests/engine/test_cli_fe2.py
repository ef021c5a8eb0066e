"""``graphfem fe2`` / ``fe2-train`` / ``rve-mesh`` through their typer commands, the
checkpoint round trip, and the FE² example (slow)."""
from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from graphfem.checkpoint import save
from graphfem.cli.fe2 import load_model, register, train_equino
from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError
from graphfem.physics.fe2 import plate_with_hole
from graphfem.physics.rve import RVE, rve_mesh

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def root() -> None:
        pass

    return app


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("fe2")
    cell = RVE(rve_mesh(4, "disc"))
    model, prov = train_equino(cell, n_snapshots=8, n_collocation=16, rank=4, adam_steps=50, lbfgs_steps=20)
    save(folder / "m.safetensors", model, {"provenance": prov})
    return folder, cell, model


def test_checkpoint_round_trip(trained):
    folder, cell, model = trained
    loaded, meta = load_model(folder / "m.safetensors")
    e = np.array([[0.01, -0.02, 0.005]])
    np.testing.assert_array_equal(loaded.predict(e)["sigma_nn"], model.predict(e)["sigma_nn"])
    assert meta["model"] == "equino" and meta["provenance"]["rank"] == 4
    (folder / "bad.safetensors").write_bytes(b"\x80\x04not a checkpoint")
    with pytest.raises(GraphfemError, match="bad.safetensors"):
        load_model(folder / "bad.safetensors")


def test_fe2_commands(app, trained, tmp_path):
    folder, _, _ = trained
    runner = CliRunner()
    res = runner.invoke(app, ["rve-mesh", "-o", str(tmp_path / "rve.vtu"), "-n", "4"])
    assert res.exit_code == 0, res.output
    plate_with_hole(2, 2).write(tmp_path / "plate.vtu")
    common = [str(tmp_path / "plate.vtu"), "--rve", str(tmp_path / "rve.vtu"), "--micro-at", "1"]
    res = runner.invoke(app, ["fe2", *common, "--model", str(folder / "m.safetensors"), "-o", str(tmp_path / "ol.vtu")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["fe2", *common, "--reference", "-o", str(tmp_path / "ref.vtu")])
    assert res.exit_code == 0, res.output
    # the files hold what the library computes (accuracy is tested in tests/operators)
    from graphfem.cli.fe2 import read_rve, run_fe2, with_sides

    cell, macro = read_rve(tmp_path / "rve.vtu"), with_sides(Mesh.read(tmp_path / "plate.vtu"))
    for name, model in (("ol.vtu", load_model(folder / "m.safetensors")[0]), ("ref.vtu", None)):
        sol, _ = run_fe2(macro, cell, model, micro_at=[1])
        written = Mesh.read(tmp_path / name).point_data["displacement"][:, :2]
        np.testing.assert_allclose(written, sol.displacement(), rtol=1e-12, atol=1e-15)
    for name in ("ol_micro_1.vtu", "ref_micro_1.vtu"):
        micro = Mesh.read(tmp_path / name)
        assert {"sigma_xx", "sigma_yy", "sigma_xy", "phase"} <= set(micro.cell_data)
    res = runner.invoke(app, ["fe2", *common, "-o", str(tmp_path / "x.vtu")])
    assert isinstance(res.exception, GraphfemError) and not (tmp_path / "x.vtu").exists()


@pytest.mark.slow
def test_example_runs(tmp_path):
    report = runpy.run_path(str(REPO / "examples" / "equino_fe2.py"))["main"](tmp_path)
    assert (tmp_path / "equino_fe2.png").exists() and report["displacement_difference"] < 0.05
