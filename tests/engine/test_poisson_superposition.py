"""Issue 13, exact where the physics says so: Poisson is linear in its data, u(a g, b f) =
a u(g, 0) + b u(0, f) for a, b ≥ 0, and a MeshGraphNet trained with ``superposition`` (the
default) keeps that law exactly, through ``graphfem predict`` on a mesh of its own."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from graphfem import cli
from graphfem.meshes import Mesh, read
from graphfem.physics.poisson_encoding import poisson_case, poisson_features, poisson_parts

torch.set_num_threads(1)


def _cli(*args) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return cli.main([str(a) for a in args])


def _plate() -> Mesh:
    """A 2 x 1 rectangle of 13 x 7 nodes, its interior nodes moved at random (seed 5)."""
    mesh = Mesh.rectangle(12, 6, 0.0, 2.0, 0.0, 1.0)
    inner = np.setdiff1d(np.arange(mesh.n_points), mesh.boundary_nodes())
    points = mesh.points.copy()
    points[inner] += np.random.default_rng(5).uniform(-0.03, 0.03, (inner.size, 2))
    return Mesh(points, mesh.cell_type, mesh.cells, tags=mesh.tags)


def test_parts_split_the_data_and_keep_the_geometry():
    mesh = _plate()
    case = poisson_case(mesh, kappa=2.0, source=1.0 + mesh.points[:, 0] * mesh.points[:, 1],
                        dirichlet={"left": 1.5, "right": -0.5})
    x, s, _, _ = poisson_features(mesh, case)
    (x_g, r_g), (x_f, r_f) = poisson_parts(mesh, case)
    src, value, blend = 1, 3, 7                                     # POISSON_FEATURES columns
    geometry = [0, 2, 4, 5, 6]
    assert np.array_equal(x_g[:, geometry], x[:, geometry]) and np.array_equal(x_f[:, geometry], x[:, geometry])
    assert not x_g[:, src].any() and not x_f[:, value].any() and not x_f[:, blend].any()
    assert np.allclose(r_g * x_g[:, value], x[:, value]) and np.allclose(r_f * x_f[:, src], x[:, src])
    assert max(r_g, r_f) == pytest.approx(1.0) and np.abs(x_g[:, value]).max() == pytest.approx(1.0)
    none = poisson_parts(mesh, poisson_case(mesh, source=0.0, dirichlet={"left": 1.0}))
    assert none[1][1] == 0.0 and not none[1][0][:, [src, value, blend]].any()


def _train(tmp: Path, superposition: bool) -> Path:
    assert _cli("generate", "poisson", "-n", 8, "-o", tmp / "d.h5", "--seed", 4) == 0
    (tmp / "t.yaml").write_text(yaml.safe_dump({
        "model": {"name": "meshgraphnet", "latent": 8, "layers": 2, "superposition": superposition},
        "data": {"path": str(tmp / "d.h5"), "batch_size": 4, "val_fraction": 0.25, "test_fraction": 0.25},
        "optim": {"epochs": 2, "warmup_steps": 1}, "run": {"out": str(tmp / "run"), "threads": 1, "progress": False}}))
    assert _cli("train", tmp / "t.yaml") == 0
    return tmp / "run" / "model.safetensors"


@pytest.mark.parametrize("superposition", [True, False])
def test_prediction_is_linear_in_each_part_of_the_data(superposition, tmp_path):
    """Exact (float32 round-off) with superposition; a model without it is measurably not linear."""
    model = _train(tmp_path, superposition)
    mesh_file = tmp_path / "plate.msh"
    _plate().write(mesh_file)

    def predict(g: float, f: float) -> np.ndarray:
        out = tmp_path / f"u_{g}_{f}.vtu"
        assert _cli("predict", model, mesh_file, "-o", out, "--kappa", "1+x", "--source", f"{f}*(1+y)",
                    "--dirichlet", f"left={g}", "--dirichlet", f"right={g / 4}") == 0
        return read(out).point_data["u"].ravel()

    u_g, u_f, both, scaled = predict(1.0, 0.0), predict(0.0, 3.0), predict(1.0, 3.0), predict(2.5, 0.6)
    peak = np.abs(both).max()
    deviation = max(np.abs(both - (u_g + u_f)).max(), np.abs(scaled - (2.5 * u_g + 0.2 * u_f)).max()) / peak
    assert deviation < 1e-6 if superposition else deviation > 1e-3, deviation
    assert np.abs(u_f).max() > 0 and np.abs(u_g - u_g.mean()).max() > 0   # neither part is trivial
