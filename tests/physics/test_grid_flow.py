"""MAC solver (Ghia et al. 1982 cavity, exact projection) and the torch residuals."""
import numpy as np
import pytest
import torch

from graphfem.meshes import Grid, InputError
from graphfem.physics.grid import (MacGeometry, Side, burgers_residual, cavity_sides, channel_sides, darcy_grid,
                                   darcy_residual, lid_driven_cavity, mac_divergence, mac_momentum_residual,
                                   navier_stokes_mac, vertical_centreline_u)
from graphfem.physics.transport import burgers
from graphfem.meshes import Mesh

# Ghia, Ghia & Shin (1982), Table I, Re = 100: u along the vertical centreline
GHIA_Y = np.array([0.9766, 0.9531, 0.8516, 0.7344, 0.6172, 0.5, 0.4531, 0.2813, 0.1719, 0.1016, 0.0625])
GHIA_U = np.array([0.84123, 0.68717, 0.23151, 0.00332, -0.13641, -0.20581, -0.21090, -0.15662, -0.10150,
                   -0.06434, -0.04192])


def test_cavity_re100_matches_ghia():
    state = lid_driven_cavity(32, re=100, steady_tol=1e-5)
    u = vertical_centreline_u(state, GHIA_Y)
    assert np.abs(u - GHIA_U).max() < 0.01  # of the lid speed; measured 0.0021
    assert u.min() == pytest.approx(-0.2109, rel=0.03)  # measured −0.2089
    assert state.info["max_divergence"] < 1e-10


def torch_state(*arrays, grad=False):
    return [torch.tensor(a, requires_grad=grad) for a in arrays]


def test_channel_with_obstacle_is_divergence_free_and_zeroes_its_residual():
    grid = Grid((40, 16), (0.0, 0.0), (2.5, 1.0))
    mask = np.zeros(grid.shape, dtype=bool)
    mask[8:11, 6:10] = True
    y = (np.arange(16) + 0.5) / 16
    sides = channel_sides(4 * y * (1 - y))
    final, saved = navier_stokes_mac(grid, 0.02, sides, mask, t_end=1.0, save_every=1)
    geometry = MacGeometry(grid, sides, mask)
    old, new = saved[-2], saved[-1]
    assert np.abs(geometry.divergence(new.u, new.v)).max() < 1e-10
    assert np.all(new.u[8:12, 6:10] == 0) and np.all(new.v[8:11, 6:11] == 0)  # faces of solid cells
    # outflow carries what comes in
    assert new.u[-1].sum() == pytest.approx(new.u[0].sum(), rel=1e-10)
    u, v, p = torch_state(new.u, new.v, new.p, grad=True)
    ru, rv = mac_momentum_residual(u, v, p, *torch_state(old.u, old.v), final.info["dt"], 0.02, geometry)
    assert ru.abs().max() < 1e-10 and rv.abs().max() < 1e-10
    assert mac_divergence(u, v, geometry).abs().max() < 1e-10
    # NeuralStagger's midpoint residual is not zero for the explicit step, and gradients reach every input
    ru, rv = mac_momentum_residual(u, v, p, *torch_state(old.u, old.v), final.info["dt"], 0.02, geometry, theta=0.5)
    ((ru ** 2).sum() + (rv ** 2).sum()).backward()
    assert u.grad.abs().max() > 0 and v.grad.abs().max() > 0 and p.grad.abs().max() > 0
    assert torch.isfinite(u.grad).all()


def test_cavity_residual_batched_and_float32():
    grid = Grid((16, 16))
    final, saved = navier_stokes_mac(grid, 0.01, cavity_sides(1.0), t_end=0.05, save_every=1)
    geometry = MacGeometry(grid, cavity_sides(1.0))
    old, new = saved[-2], saved[-1]
    batch = [torch.tensor(np.stack([a, a]), dtype=torch.float32) for a in (new.u, new.v, new.p, old.u, old.v)]
    ru, rv = mac_momentum_residual(*batch, final.info["dt"], 0.01, geometry)
    assert ru.shape == (2, 17, 16) and rv.shape == (2, 16, 17)
    assert ru.abs().max() < 1e-3 * (1 / final.info["dt"])  # float32 round-off relative to 1/dt


def test_darcy_grid_residual_is_zero_at_the_solution_and_differentiable():
    grid = Grid((20, 20))
    a = np.where(np.random.default_rng(0).random(grid.shape) > 0.5, 10.0, 5.0)
    u = darcy_grid(a, 10.0, grid)
    ut, at = torch_state(u, a, grad=True)
    r = darcy_residual(ut, at, 10.0, grid)
    assert r.abs().max() < 1e-10
    (r ** 2).sum().backward()
    assert at.grad is not None and torch.isfinite(ut.grad).all()
    assert darcy_residual(ut.detach() + 0.1, at.detach(), 10.0, grid).abs().max() > 1


def test_burgers_residual_matches_the_fe_step():
    n, nu, dt = 40, 0.02, 0.01
    mesh = Mesh.interval(n)
    sol = burgers(mesh, nu, initial=lambda x: np.sin(np.pi * x[0]), t_end=2 * dt, dt=dt, tol=1e-13)
    states = sol.trajectory.fields["u"]
    u, u_old = torch_state(states[2], states[1], grad=True)
    r = burgers_residual(u, u_old, dt, nu, 1.0 / n)
    assert r.shape == (n - 1,) and r.abs().max() < 1e-9
    r.pow(2).sum().backward()
    assert u.grad is not None


def test_mac_input_errors():
    with pytest.raises(InputError):
        MacGeometry(Grid((8, 8)), {"left": Side("inflow", 1.0)})
    with pytest.raises(InputError):
        MacGeometry(Grid((8, 8)), cavity_sides(), mask=np.ones((8, 8), dtype=bool))
