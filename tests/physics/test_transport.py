"""Advection–diffusion (travelling Gaussian, SUPG at high Péclet) and Burgers (Cole–Hopf) against exact answers."""
import numpy as np
import pytest

from graphfem.meshes import GraphfemError, InputError, Mesh
from graphfem.physics.transport import advection_diffusion, burgers, burgers_cole_hopf, travelling_gaussian


def test_cole_hopf_reference_starts_from_the_initial_condition():
    x = np.linspace(0, 1, 41)
    assert np.abs(burgers_cole_hopf(x, 1e-6, 0.005) - np.sin(np.pi * x)).max() < 1e-4


def test_burgers_1d_converges_to_cole_hopf():
    # u0 = sin(πx), ν = 0.01, t = 0.5 (a steepening front), Crank–Nicolson + Newton, Δt ∝ h
    nu, errors = 0.01, []
    for n in (50, 100, 200):
        mesh = Mesh.interval(n)
        sol = burgers(mesh, nu, initial=lambda x: np.sin(np.pi * x[0]), t_end=0.5, dt=1.0 / n)
        errors.append(np.abs(sol.fields["u"] - burgers_cole_hopf(mesh.points[:, 0], 0.5, nu)).max())
        assert max(sol.info["iterations"]) <= 5
    assert errors[0] / errors[1] > 3.3 and errors[1] / errors[2] > 3.6  # measured 0.026, 0.0076, 0.0019
    assert errors[-1] < 2.5e-3


def test_picard_agrees_with_newton():
    mesh = Mesh.interval(60)
    kw = dict(initial=lambda x: np.sin(np.pi * x[0]), t_end=0.2, dt=0.02)
    newton = burgers(mesh, 0.05, **kw)
    picard = burgers(mesh, 0.05, method="picard", **kw)
    assert np.abs(newton.fields["u"] - picard.fields["u"]).max() < 1e-8
    assert max(picard.info["iterations"]) > max(newton.info["iterations"])


def test_burgers_2d_product_solution_with_moving_boundary_values():
    # u = (U(x, t), U(y, t)) with U the 1D Cole–Hopf solution solves the 2D vector Burgers equation
    nu = 0.05

    def exact(x, t):
        return np.stack([burgers_cole_hopf(x[0], t, nu), burgers_cole_hopf(x[1], t, nu)])

    mesh = Mesh.unit_square(8)
    sol = burgers(mesh, nu, initial=lambda x: exact(x, 0.0), t_end=0.3, dt=0.3 / 16,
                  dirichlet={"boundary": exact}, order=2)
    assert sol.fields["u"].shape == (mesh.n_points, 2)
    assert np.abs(sol.fields["u"] - exact(mesh.points.T, 0.3).T).max() < 4e-3  # measured 2.0e-3


def test_travelling_gaussian_1d_converges():
    b, k, errors = (1.0,), 0.01, []
    for n in (100, 200, 400):
        mesh = Mesh.interval(n, -1.0, 3.0)
        sol = advection_diffusion(mesh, b, k, initial=lambda x: travelling_gaussian(x, 0, b, k, (0.0,), 0.1),
                                  t_end=1.0, dt=2.0 / n, stabilization="none")
        errors.append(np.abs(sol.fields["u"] - travelling_gaussian(mesh.points.T, 1.0, b, k, (0.0,), 0.1)).max())
    assert errors[0] / errors[1] > 3.5 and errors[1] / errors[2] > 3.5  # Crank–Nicolson, P1: second order
    assert errors[-1] < 5e-4


def test_travelling_gaussian_2d_with_supg():
    b, k = (1.0, 0.5), 0.005
    errors = []
    for n in (32, 64):
        mesh = Mesh.rectangle(n, n, -0.5, 1.5, -0.5, 1.5)
        sol = advection_diffusion(mesh, b, k, initial=lambda x: travelling_gaussian(x, 0, b, k, (0.0, 0.0), 0.1),
                                  t_end=0.5, dt=1.0 / n)
        assert sol.info["stabilization"] == "supg" and sol.info["peclet_max"] > 1
        errors.append(np.abs(sol.fields["u"] - travelling_gaussian(mesh.points.T, 0.5, b, k, (0, 0), 0.1)).max())
        assert sol.trajectory.n_steps == n // 2 + 1
    assert errors[1] < errors[0] / 2.5 and errors[1] < 0.025  # measured 0.048, 0.017 (peak 0.67)


def test_supg_is_nodally_exact_in_1d_where_galerkin_oscillates():
    mesh = Mesh.interval(20)
    x, eps = mesh.points[:, 0], 0.005  # cell Péclet number 5
    exact = (np.exp((x - 1) / eps) - np.exp(-1 / eps)) / (1 - np.exp(-1 / eps))
    kw = dict(dirichlet={"left": 0.0, "right": 1.0})
    galerkin = advection_diffusion(mesh, (1.0,), eps, stabilization="none", **kw).fields["u"]
    supg = advection_diffusion(mesh, (1.0,), eps, **kw)
    assert supg.info["stabilization"] == "supg"
    assert galerkin.min() < -0.5  # measured −0.67
    assert np.abs(supg.fields["u"] - exact).max() < 1e-12


def test_supg_removes_the_outflow_layer_oscillations_in_2d():
    # b = (1, 0), κ = 1e-3, f = 1, u = 0 on the boundary: 0 <= u <= x (maximum principle), Pe_K = 25
    mesh = Mesh.unit_square(20)
    x = mesh.points[:, 0]
    galerkin = advection_diffusion(mesh, (1.0, 0.0), 1e-3, f=1.0, stabilization="none").fields["u"]
    supg = advection_diffusion(mesh, (1.0, 0.0), 1e-3, f=1.0).fields["u"]
    assert galerkin.min() < -0.3 and (galerkin - x).max() > 1.0  # measured −0.68, 1.87
    assert supg.min() > -1e-12 and (supg - x).max() < 0.05  # measured 0.0, 0.040


def test_bad_input_raises_one_line_errors():
    mesh = Mesh.interval(10)
    with pytest.raises(InputError):
        advection_diffusion(mesh, (1.0,), 1.0, stabilization="magic")
    with pytest.raises(InputError):
        burgers(mesh, -1.0, initial=0.0, t_end=1.0, dt=0.1)
    with pytest.raises(GraphfemError, match="did not converge"):
        burgers(mesh, 0.01, initial=lambda x: 50 * np.sin(np.pi * x[0]), t_end=0.1, dt=0.1, max_iter=1)
