"""Parametric Burgers u_t + z1 u u_x - z0 u_xx = 0: the u-scaled solve against the time-rescaled one,
the torch residual against a hand-derived one, and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graphfem.meshes import Mesh
from graphfem.meshes.errors import InputError
from graphfem.physics.parametric_burgers import initial_state, parametric_burgers, residual
from graphfem.physics.problem import get_problem
from graphfem.physics.transport import burgers

torch.set_num_threads(1)


def test_the_scaled_solve_equals_the_time_rescaled_burgers_solve():
    """u(x, t; z0, z1) = U(x, z1 t) with U_s + U U_x = (z0/z1) U_xx: an independent path through
    the project's Burgers solver (another viscosity, time step and end time)."""
    mesh = Mesh.interval(80, 0.0, 1.0)
    z0, z1, w = 0.03, 0.6, 1.4
    got = parametric_burgers(mesh, z0, z1, w, t_end=0.5, dt=0.01)
    ref = burgers(mesh, z0 / z1, initial=lambda x: initial_state(x[0], w)[None], t_end=z1 * 0.5, dt=z1 * 0.01)
    np.testing.assert_allclose(got.trajectory.fields["u"], ref.trajectory.fields["u"], atol=1e-9)
    assert got.trajectory.fields["u"][:, [0, -1]].max() == 0.0


def test_torch_residual_matches_the_hand_derivation():
    x = torch.rand(2, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    t = torch.rand(2, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    z = torch.tensor([[0.05, 0.7], [0.02, 0.9]], dtype=torch.float64)
    u = torch.sin(math.pi * x) * torch.exp(-t)
    want = -u + z[:, 1:] * u * math.pi * torch.cos(math.pi * x) * torch.exp(-t) + z[:, :1] * math.pi ** 2 * u
    torch.testing.assert_close(residual(x, t, u, z), want, atol=1e-12, rtol=0)


def test_bad_input_is_one_line():
    problem = get_problem("parametric-burgers")
    mesh = Mesh.interval(10, 0.0, 1.0)
    for raw, words in (({"viscosity": "-1"}, "--viscosity must be positive"), ({}, "--viscosity is required"),
                       ({"viscosity": "0.1", "save_every": "0"}, "--save-every")):
        with pytest.raises(InputError, match=words) as err:
            problem.parse(mesh, raw)
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="lives on"):
        problem.parse(Mesh.interval(10, -1.0, 1.0), {"viscosity": "0.1"})
    with pytest.raises(InputError, match="whole interval"):
        problem.run(Mesh.interval(10, 0.0, 0.5), {"viscosity": "0.1"})
