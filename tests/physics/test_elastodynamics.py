"""Lumped-mass central-difference elastodynamics: a bar's axial period and the stability guard."""
from __future__ import annotations

import numpy as np
import pytest

from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError
from graphfem.physics.elastodynamics import elastodynamics


def test_fixed_free_bar_period():
    """Bar clamped at x = 0, ν = 0, started in its first axial mode
    u_x = A sin(πx/2L): the tip oscillates with T = 4L/c, c = √(E/ρ)."""
    L, E = 1.0, 1.0e3
    mesh = Mesh.rectangle(40, 2, 0.0, L, 0.0, 0.05)
    period = 4 * L / np.sqrt(E)
    traj = elastodynamics(mesh, 200, 2 * period / 200, E=E, nu=0.0, plane="stress", fixed=["left"],
                          u0=lambda x: np.stack([1e-3 * np.sin(np.pi * x[:, 0] / (2 * L)), 0 * x[:, 0]], 1))
    tip = traj.fields["displacement"][:, np.isclose(mesh.points[:, 0], L), 0].mean(axis=1)
    t = traj.times
    k = np.flatnonzero(np.sign(tip[1:]) != np.sign(tip[:-1]))
    crossings = t[k] - tip[k] * (t[k + 1] - t[k]) / (tip[k + 1] - tip[k])
    assert 2 * np.mean(np.diff(crossings)) == pytest.approx(period, rel=0.01)
    assert np.allclose(traj.fields["x"][0], mesh.points + traj.fields["displacement"][0])


def test_unstable_step_is_refused():
    with pytest.raises(GraphfemError, match="central-difference limit"):
        elastodynamics(Mesh.unit_square(8), 2, 0.1, fixed=["left"], dt=0.05)
