"""SPON-MG through the engine: the one trainer -> checkpoint -> ``graphfem.load(...).predict``,
``graphfem predict`` and ``graphfem evaluate``, with the exact FE decoder."""
import json

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

import graphfem
from graphfem.cli.engine import register
from graphfem.datasets import spon as spon_data
from graphfem.meshes import FESpace, read
from graphfem.meshes.errors import InputError
from graphfem.training.config import load_config
from graphfem.training.trainer import train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("spon_engine")
    spon_data.generate("spon-poisson", 12, d / "poisson.h5", resolution=1, seed=0)
    (d / "config.yaml").write_text(
        f"model: {{name: spon_mg, latent: 8, layers: 3, levels: 1}}\n"
        f"data: {{path: {d / 'poisson.h5'}, val_fraction: 0.0, test_fraction: 0.25, batch_size: 4}}\n"
        f"optim: {{lr: 0.003, epochs: 2, warmup_steps: 2}}\n"
        f"run: {{out: {d / 'run'}, seed: 0, threads: 1, device: cpu, progress: false}}\n")
    final = train(load_config(d / "config.yaml"), source=str(d / "config.yaml"))
    return d, final


def test_train_writes_spon_mg_checkpoint(run):
    d, final = run
    assert np.isfinite(final["test_rel_l2"]) and final["test_rel_l2_max"] >= final["test_rel_l2"]
    s = graphfem.load(d / "run" / "model.safetensors")
    assert s.family.name == "spon" and s.model.config.levels == 1 and s.meta["model"] == "spon_mg"
    assert len(s.meta["provenance"]["split"]["test"]) == 3
    assert s.problem["name"] == "poisson" and s.problem["data_family"] == "spon-poisson"
    assert (d / "run" / "metrics.jsonl").exists() and (d / "run" / "curves.png").exists()


def test_load_predict_dirichlet_exact(run):
    d, _ = run
    s = graphfem.load(d / "run" / "model.safetensors")
    coarse = spon_data.coarse_mesh("lshape-fixed")  # 21 nodes: 2x coarser than the training meshes
    prediction = s.prediction(coarse, source=lambda x: np.sin(3 * x[0]) * x[1], kappa=2.0,
                              dirichlet={"boundary": 0.7})
    mesh, u = prediction.mesh, prediction.fields["u"]
    assert mesh is coarse and prediction.units == {"u": "1"}  # on the given mesh
    b = FESpace(mesh, 1).dofs_on("boundary")
    assert u.shape == (21,) and np.all(u[b] == 0.7)
    assert np.ptp(np.delete(u, b)) > 0
    with pytest.raises(InputError, match="--robin: the SPON model"):
        s.predict(coarse, robin={"boundary": (1.0, 0.0)})
    with pytest.raises(InputError, match="--neumann: the SPON model takes zero fluxes only"):
        s.predict(coarse, dirichlet={"boundary": 0.0}, neumann={"boundary": 1.0})


def test_cli_predict_and_evaluate(run):
    d, _ = run
    app = typer.Typer()
    register(app)
    spon_data.coarse_mesh("lshape-fixed").write(d / "lshape.msh")
    runner = CliRunner()
    model = str(d / "run" / "model.safetensors")
    r = runner.invoke(app, ["predict", model, str(d / "lshape.msh"), "-o", str(d / "u.vtu"), "--source", "sin(pi*x)",
                            "--dirichlet", "boundary=0.25"])
    assert r.exit_code == 0, r.output
    out = read(d / "u.vtu")
    b = FESpace(spon_data.coarse_mesh("lshape-fixed"), 1).dofs_on("boundary")
    assert out.n_points == 21 and np.all(out.point_data["u"][b] == 0.25)
    # an option of another problem is no flag of poisson; a poisson option the model does not use is refused
    for flags in (["--traction", "right=0.1,0"], ["--solver", "direct"]):
        r = runner.invoke(app, ["predict", model, str(d / "lshape.msh"), "-o", str(d / "v.vtu"), *flags])
        assert r.exit_code != 0 and flags[0] in str(r.exception) and not (d / "v.vtu").exists()
    r = runner.invoke(app, ["evaluate", model, str(d / "poisson.h5"), "--json", "--compare-fe"])
    assert r.exit_code == 0, r.output
    stats = json.loads(r.output)
    assert stats["samples"] == 12 and np.isfinite(stats["rel_l2_mean"]) and stats["fe_vs_stored_max"] < 1e-12
