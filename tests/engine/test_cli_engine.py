"""The engine commands through a test app built with register(app)."""

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from graphfem.checkpoint import save
from graphfem.cli.engine import register
from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError
from graphfem.operators.meshgraphnet import MeshGraphNet, MeshGraphNetConfig
from graphfem.physics.poisson_encoding import POISSON_FEATURES

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture(scope="module")
def files(tmp_path_factory, shared_meshes):
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    meta = {"normalisation": {"x_mean": [0.0] * 8, "x_std": [1.0] * 8, "y_mean": [0.0], "y_std": [1.0]},
            "problem": {"name": "poisson", "dim": 2, "cell_types": ["triangle"], "fields": ["u"],
                        "features": list(POISSON_FEATURES), "options": ["kappa", "source", "dirichlet", "neumann"]}}
    save(d / "m.safetensors", MeshGraphNet(MeshGraphNetConfig(in_node=8, latent=8, layers=2)), meta)
    (d / "sq.msh").write_bytes((shared_meshes / "skfem_square.msh").read_bytes())  # tags left, right, top
    Mesh.box(2).write(d / "box.msh")
    return d


def test_generate_then_evaluate_with_fe(app, files):
    r = CliRunner().invoke(app, ["generate", "poisson", "-n", "3", "-o", str(files / "d.h5"), "--seed", "2"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["evaluate", str(files / "m.safetensors"), str(files / "d.h5"), "--compare-fe",
                                 "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "3 samples" in r.output and "FE solve" in r.output and "matches the stored solution" in r.output


def test_predict_writes_vtu_with_solve_options(app, files):
    out = files / "p.vtu"
    r = CliRunner().invoke(app, ["predict", str(files / "m.safetensors"), str(files / "sq.msh"), "-o", str(out),
                                 "--kappa", "2", "--source", "sin(pi*x)", "--dirichlet", "left=1",
                                 "--dirichlet", "right=0", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    u = Mesh.read(out).point_data["u"]
    assert u.shape == (109,) and np.isfinite(u).all()


@pytest.mark.parametrize("mesh, args, message", [
    ("box.msh", [], "trained on 2D meshes, this mesh is 3D"),
    ("sq.msh", ["--dirichlet", "nowhere=1"], "unknown tag 'nowhere'"),
    ("sq.msh", ["--neumann", "top=2"], "zero flux on non-Dirichlet boundaries only"),
    ("sq.msh", ["--kappa", "-1"], "kappa must be finite and positive"),
])
def test_predict_refuses_what_the_model_was_not_trained_for(app, files, mesh, args, message):
    out = files / "refused.vtu"
    r = CliRunner().invoke(app, ["predict", str(files / "m.safetensors"), str(files / mesh), "-o", str(out),
                                 "--device", "cpu", *args])
    assert isinstance(r.exception, GraphfemError) and message in str(r.exception)
    assert "\n" not in str(r.exception) and not out.exists()
