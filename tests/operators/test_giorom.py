"""GIOROM models: symmetries of the stepper, neighbourhoods, the integrator,
and the untrained neural field against scipy griddata (training through the
engine: tests/engine/test_family_giorom.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from graphfem.operators import get_model
from graphfem.operators.checks import assert_permutation_equivariant
from graphfem.operators.giorom import GIOROM, GIOROMConfig, NeuralField, NeuralFieldConfig, sample_particles

W = 5


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


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


def test_true_accelerations_reproduce_the_trajectory():
    """Integrator round trip in float64: a rollout whose accelerations are the
    true a^t = x^{t+1} − 2x^t + x^{t−1} reproduces the trajectory to round-off."""
    rng = np.random.default_rng(3)
    x0, v0 = rng.uniform(0.3, 0.7, (40, 2)), rng.normal(0, 3e-3, (40, 2))
    t = np.arange(W + 12)[:, None, None]
    traj = x0 + v0 * t + 1e-3 * np.sin(0.3 * t + x0)  # a smooth motion
    m = _model().double()
    true = iter(np.diff(traj, 2, axis=0)[W - 1:])
    m.acceleration = lambda g: torch.as_tensor(next(true))
    out = m.rollout(traj[:W + 1], np.zeros(40, dtype=int), 11)
    assert np.abs(out - traj[W + 1:]).max() < 1e-14


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


def test_untrained_field_equals_griddata():
    """With the correction at zero the field is scipy griddata linear (nearest outside the hull)."""
    from scipy.interpolate import griddata

    rng = np.random.default_rng(5)
    X = rng.uniform(0, 1, (600, 2))
    s = sample_particles(X, 50)
    U = np.sin(3 * X[s])[None] * 0.01
    op = NeuralField(NeuralFieldConfig(base="linear", radius=0.2, hidden=16)).operator(X[s], X)
    lin = np.stack([griddata(X[s], U[0][:, c], X) for c in range(2)], 1)
    near = np.stack([griddata(X[s], U[0][:, c], X, method="nearest") for c in range(2)], 1)
    with torch.no_grad():
        u = op(U).double().numpy()[0]
    assert np.allclose(u, np.where(np.isnan(lin), near, lin), atol=1e-6)
    assert np.allclose(op.reconstruct(U)[0], u, atol=1e-6)


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
