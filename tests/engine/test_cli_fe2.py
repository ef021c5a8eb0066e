"""``graphfem fe2`` / ``rve-mesh`` through their typer commands with a checkpoint of
``graphfem train``, the checkpoint round trip, and the FE² example (slow)."""
from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from graphfem.cli.fe2 import load_model, register
from graphfem.datasets.generate import generate
from graphfem.families.equino import train_config
from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError
from graphfem.physics.fe2 import plate_with_hole
from graphfem.training.trainer import train

REPO = Path(__file__).resolve().parents[2]
torch.set_num_threads(1)


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
    folder = tmp_path_factory.mktemp("fe2")
    generate("rve", 10, folder / "rve.h5", geometry="disc", resolution=4, progress=False)
    for name in ("equino", "rve_blackbox"):
        train(train_config(str(folder / "rve.h5"), str(folder / name), name, rank=4, collocation=16,
                           adam_steps=50, lbfgs_iterations=20))
    return folder


def test_checkpoint_round_trip(trained):
    model, meta = load_model(trained / "equino" / "model.safetensors")
    again, _ = load_model(trained / "equino" / "model.safetensors")
    e = np.array([[0.01, -0.02, 0.005]])
    np.testing.assert_array_equal(again.predict(e)["sigma_nn"], model.predict(e)["sigma_nn"])
    assert meta["model"] == "equino" and meta["config"]["rank_u"] == 4 and meta["problem"]["rve"]["dofs"] == 130
    (trained / "bad.safetensors").write_bytes(b"\x80\x04not a checkpoint")
    with pytest.raises(GraphfemError, match="bad.safetensors"):
        load_model(trained / "bad.safetensors")


def test_fe2_commands(app, trained, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["rve-mesh", "-o", str(tmp_path / "rve.vtu"), "--resolution", "4"])
    assert res.exit_code == 0, res.output
    plate_with_hole(2, 2).write(tmp_path / "plate.vtu")
    common = [str(tmp_path / "plate.vtu"), "--rve", str(tmp_path / "rve.vtu"), "--micro-at", "1"]
    model_path = trained / "equino" / "model.safetensors"
    res = runner.invoke(app, ["fe2", *common, "--model", str(model_path), "-o", str(tmp_path / "ol.vtu")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["fe2", *common, "--reference", "-o", str(tmp_path / "ref.vtu")])
    assert res.exit_code == 0, res.output
    # the files hold what the library computes (accuracy is tested in tests/operators)
    from graphfem.cli.fe2 import read_rve, run_fe2, with_sides

    cell, macro = read_rve(tmp_path / "rve.vtu"), with_sides(Mesh.read(tmp_path / "plate.vtu"))
    for name, model in (("ol.vtu", load_model(model_path)[0]), ("ref.vtu", None)):
        sol, _ = run_fe2(macro, cell, model, micro_at=[1])
        written = Mesh.read(tmp_path / name).point_data["displacement"][:, :2]
        np.testing.assert_allclose(written, sol.displacement(), rtol=1e-12, atol=1e-15)
    for name in ("ol_micro_1.vtu", "ref_micro_1.vtu"):
        micro = Mesh.read(tmp_path / name)
        assert {"sigma_xx", "sigma_yy", "sigma_xy", "phase"} <= set(micro.cell_data)
    res = runner.invoke(app, ["fe2", *common, "-o", str(tmp_path / "x.vtu")])
    assert isinstance(res.exception, GraphfemError) and not (tmp_path / "x.vtu").exists()
    # the black box is a macro material only: FE-OL runs, micro fields are refused in one line
    bb = trained / "rve_blackbox" / "model.safetensors"
    res = runner.invoke(app, ["fe2", *common[:3], "--model", str(bb), "-o", str(tmp_path / "bb.vtu")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["fe2", *common, "--model", str(bb), "-o", str(tmp_path / "bb2.vtu")])
    assert "no micro fields" in str(res.exception) and not (tmp_path / "bb2.vtu").exists()
    # an RVE other than the training one is refused in one line, naming the RVE file
    res = runner.invoke(app, ["rve-mesh", "-o", str(tmp_path / "other.vtu"), "--resolution", "4", "--preset", "rve1"])
    res = runner.invoke(app, ["fe2", str(tmp_path / "plate.vtu"), "--rve", str(tmp_path / "other.vtu"), "--model",
                              str(model_path), "-o", str(tmp_path / "y.vtu")])
    message = str(res.exception)
    assert "inclusions differ" in message and "other.vtu" in message and "\n" not in message


@pytest.mark.slow
def test_example_meets_the_macro_targets(tmp_path):
    """The example's own case (two inclusions of its own, a bending cantilever that no other test
    uses, held out from training): σ̂(0) = 0 exactly; EquiNO's σ̂ at the FE² macro points within
    2 % of the FE homogenised stress (median; every point within 3 %), and the FE-OL macro cell
    stresses within 2 % of FE²'s, with the macro strains well inside the training box."""
    report = runpy.run_path(str(REPO / "examples" / "equino_fe2.py"))["main"](tmp_path)
    assert (tmp_path / "equino_fe2.png").exists()
    assert report["stress_hat_at_zero"] == [0.0, 0.0, 0.0]
    assert report["macro_strain_max"] < 0.02
    assert report["stress_hat_median"] < 0.02 and report["stress_hat_max"] < 0.03, report
    assert report["stress_difference"] < 0.02 and report["displacement_difference"] < 0.01, report
