"""GIOROM: symmetries of the stepper, training and rollout on tiny MPM data,
neighbourhoods, and the neural field against scipy griddata."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from graphfem.families.giorom import mpm_dataset, train_field, train_stepper
from graphfem.meshes import Mesh
from graphfem.operators import get_model
from graphfem.operators.checks import assert_permutation_equivariant
from graphfem.operators.giorom import GIOROM, GIOROMConfig, NeuralField, NeuralFieldConfig, sample_particles

W = 5


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def water():
    torch.set_num_threads(1)
    trajs, attrs = mpm_dataset("water", 2, frames=16, seed=3, device="cpu")
    cfg = dict(radius=0.12, wall_lower=attrs["wall_lower"], wall_upper=attrs["wall_upper"], hidden=32, grid=6,
               gno_radius=0.13, layers_in=1, layers_out=1, noise_std=1e-4)
    return trajs, cfg


def _model(seed=0):
    torch.manual_seed(seed)
    m = GIOROM(GIOROMConfig(hidden=32, grid=6, gno_radius=0.13, radius=0.15, layers_in=1, layers_out=1))
    m.set_normalisation([0, -1e-3], [3e-3, 3e-3], [0, -1e-3], [1e-3, 1e-3])
    return m.eval()


def _history(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(0.3, 0.7, (n, 2))
    v = rng.normal(0, 3e-3, (n, 2))
    return np.stack([x0 + k * v + 1e-4 * rng.normal(size=(n, 2)) for k in range(W + 1)])


def test_registered():
    assert get_model("giorom") is GIOROM
    assert get_model("giorom-field") is NeuralField


def test_translation_invariance():
    """Shifting particles and walls (hence the latent grid) leaves â unchanged."""
    m, xs = _model(), _history()
    mat = np.full(xs.shape[1], 3)
    shift = np.array([0.173, -0.051])
    with torch.no_grad():
        a = m(m.graph([xs], [mat]))
        b = m(m.graph([xs + shift], [mat], shift=shift))
    assert torch.allclose(a, b, atol=2e-4)
    assert a.abs().max() > 1e-2


def test_relabelling_equivariance():
    m, xs = _model(), _history()
    n = xs.shape[1]

    def net(x, edge_index, edge_attr):
        hist = x[:, :-1].reshape(n, W + 1, 2).transpose(0, 1).numpy()
        return m(m.graph([hist], [x[:, -1].long().numpy()]))

    feats = torch.cat([torch.as_tensor(xs).transpose(0, 1).reshape(n, -1), torch.full((n, 1), 2.0)], dim=1)
    assert_permutation_equivariant(net, feats, torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, 1), atol=1e-4)


def test_every_particle_reaches_the_grid_and_has_neighbours():
    m, xs = _model(), _history()
    g = m.graph([xs], [np.zeros(xs.shape[1], dtype=int)])
    assert np.bincount(g.grid_pairs[0].numpy(), minlength=xs.shape[1]).min() >= 1
    assert np.bincount(g.edges[1].numpy(), minlength=xs.shape[1]).min() >= 1  # self loops at least


def test_one_step_loss_decreases_and_rollout_stays_finite(water):
    trajs, cfg = water
    model, losses = train_stepper(trajs, cfg, sparse=0.3, steps=120, lr=3e-3, batch=2, seed=0)
    assert np.mean(losses[-20:]) < 0.7 * np.mean(losses[:20])
    x = trajs[0].fields["x"]
    s = model.subsets[0]
    out = model.rollout(x[: W + 1, s], trajs[0].domain.point_data["material"][s], 10)
    assert out.shape == (10, len(s), 2) and np.isfinite(out).all()
    assert cfg["wall_lower"] - 0.05 < out.min() and out.max() < cfg["wall_upper"] + 0.05  # stays in the box


def test_no_empty_neighbourhood_inside_the_hull():
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 1, (3000, 2))
    s = sample_particles(X, 60)
    from scipy.spatial import Delaunay

    inside = Delaunay(X[s]).find_simplex(X) >= 0
    field = NeuralField(NeuralFieldConfig(radius=0.05))
    op = field.operator(X[s], X[inside])
    assert op.counts.min() >= 1
    assert np.allclose(np.asarray(op.base.sum(axis=1)).ravel(), 1.0)
    with torch.no_grad():
        u = op(np.ones((1, len(s), 2)))
    assert torch.isfinite(u).all() and torch.allclose(u, torch.ones_like(u), atol=1e-5)


def _elastic_bodies():
    """Held-out deformations: P1 elastodynamics on a disk (545 nodes), clamped
    at the bottom, random smooth initial velocities, 10 frames each."""
    from skfem import MeshTri

    from graphfem.physics.elastodynamics import elastodynamics

    mesh = Mesh.from_skfem(MeshTri.init_circle(4)).with_boundary_tags(bottom=lambda x: x[:, 1] < -0.9)
    out = []
    for seed in range(8):
        k = np.random.default_rng(seed).normal(size=(2, 3))

        def v0(x, k=k):
            return 0.3 * np.stack([np.sin(x @ k[0, :2] + k[0, 2]), np.cos(x @ k[1, :2] + k[1, 2])], axis=1)

        tr = elastodynamics(mesh, 10, 0.02, E=50.0, nu=0.3, gravity=1.0, fixed=["bottom"], v0=v0)
        out.append(tr.fields["displacement"][1:])
    return mesh.points, out


def test_neural_field_beats_griddata_on_held_out_deformations():
    """Displacement rel-L2 over all 545 nodes from 80 FPS particles: the
    trained field (linear base + learned kernel correction) must be at least
    5 % below scipy griddata linear (nearest outside the hull) on 2 held-out
    trajectories. With the correction at zero it equals griddata."""
    from scipy.interpolate import griddata

    X, U = _elastic_bodies()
    s = sample_particles(X, 80)
    field, _ = train_field([X] * 6, U[:6], [s] * 6, dict(base="linear", radius=0.35, hidden=32), steps=200)
    untrained = NeuralField(NeuralFieldConfig(base="linear", radius=0.35, hidden=32)).operator(X[s], X)
    op = field.operator(X[s], X)
    err_field = err_grid = norm = 0.0
    for Uh in U[6:]:
        lin = np.stack([np.stack([griddata(X[s], u[s][:, c], X) for c in range(2)], 1) for u in Uh])
        near = np.stack([np.stack([griddata(X[s], u[s][:, c], X, method="nearest") for c in range(2)], 1)
                         for u in Uh])
        grid = np.where(np.isnan(lin), near, lin)
        with torch.no_grad():
            pred = op(Uh[:, s]).double().numpy()
            base = untrained(Uh[:, s]).double().numpy()
        assert np.allclose(base, grid, atol=1e-6)
        err_field += ((pred - Uh) ** 2).sum()
        err_grid += ((grid - Uh) ** 2).sum()
        norm += (Uh ** 2).sum()
    rel_field, rel_grid = np.sqrt(err_field / norm), np.sqrt(err_grid / norm)
    assert rel_field <= 0.95 * rel_grid, (rel_field, rel_grid)


def test_splat_option_runs():
    rng = np.random.default_rng(2)
    X = rng.uniform(0.1, 0.9, (500, 2))
    s = sample_particles(X, 50)
    op = NeuralField(NeuralFieldConfig(decoder="splat", splat_grid=16)).operator(X[s], X)
    with torch.no_grad():
        u = op(np.tile(X[s][None] * 0.01, (3, 1, 1)))
    assert u.shape == (3, 500, 2) and torch.isfinite(u).all()


def test_frozen_matrix_equals_the_kernel_integral():
    rng = np.random.default_rng(4)
    X = rng.uniform(0, 1, (400, 2))
    s = sample_particles(X, 40)
    field = NeuralField(NeuralFieldConfig(radius=0.2))
    torch.nn.init.normal_(field.kernel[-1].weight, std=0.3)
    op = field.operator(X[s], X)
    U = rng.normal(size=(3, 40, 2))
    with torch.no_grad():
        direct = op(U).double().numpy()
    assert np.allclose(op.freeze().apply(U), direct, atol=1e-5)
    assert np.abs(direct - op.base @ U[0]).max() > 1e-3  # the correction is active
