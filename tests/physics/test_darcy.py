"""Darcy: manufactured solution across a permeability jump, flux conservation, two-phase random media."""
import numpy as np
import pytest

from graphfem.meshes import InputError, Mesh
from graphfem.physics.darcy import (boundary_flux, darcy, gaussian_random_field, interface_flux,
                                    two_phase_coefficient)
from graphfem.physics.generators import darcy_two_phase

A_LEFT, A_RIGHT = 1.0, 10.0


def exact(x, a):
    # u = sin(2πx) sin(πy)/a: continuous (0 at x = 1/2) with continuous flux a ∂u/∂x across x = 1/2
    return np.sin(2 * np.pi * x[0]) * np.sin(np.pi * x[1]) / a


def source(x):
    return 5 * np.pi ** 2 * np.sin(2 * np.pi * x[0]) * np.sin(np.pi * x[1])


def solve(n):
    mesh = Mesh.unit_square(n)
    left = mesh.points[mesh.corner_cells].mean(axis=1)[:, 0] < 0.5
    a = np.where(left, A_LEFT, A_RIGHT)
    return darcy(mesh, a, source, order=1), a, left


def l2_error(solution, a):
    basis = solution.space.basis
    x = np.asarray(basis.global_coordinates())
    uh = np.asarray(basis.interpolate(solution.dofs["u"]))
    return float(np.sqrt(((uh - exact(x, a[:, None])) ** 2 * basis.dx).sum()))


def test_piecewise_manufactured_solution_converges_at_rate_two():
    errors = [l2_error(*solve(n)[:2]) for n in (8, 16, 32)]
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert errors[-1] < 2.5e-3
    assert rates.min() > 1.9  # measured 1.95, 1.99


def test_flux_across_the_jump_agrees_from_both_sides_and_converges():
    # exact flux of q = −a∇u through x = 1/2 (left to right): ∫ 2π sin(πy) dy = 4
    previous = None
    for n in (8, 16, 32):
        solution, a, left = solve(n)
        q_left, q_right = interface_flux(solution, a, source, left)
        assert q_left == pytest.approx(q_right, rel=1e-12)  # local conservation, to round-off
        error = abs(q_left - 4.0)
        if previous is not None:
            assert error < previous / 3.5  # second order: 0.033, 0.0079, 0.0019
        previous = error
    assert error < 2.5e-3
    g_left, g_right = interface_flux(solution, a, source, left, method="gradient")
    assert g_left == pytest.approx(4.0, rel=0.02) and g_right == pytest.approx(4.0, rel=0.02)


def test_total_outflow_equals_the_source_integral_for_a_two_phase_medium():
    mesh = Mesh.unit_square(24)
    a, _ = two_phase_coefficient(np.random.default_rng(5), mesh)
    solution = darcy(mesh, a, 10.0)
    assert solution.info["outflow"] == pytest.approx(10.0, rel=1e-10)  # ∫ f = 10 on the unit square
    assert boundary_flux(solution, a, 10.0) == pytest.approx(10.0, rel=1e-10)
    # the phase boundary, wherever the random field puts it: both sides' fluxes agree
    q1, q2 = interface_flux(solution, a, 10.0, a == 10.0)
    assert abs(q1 - q2) < 1e-10 * 10.0


def test_random_field_is_seeded_and_two_phase_generator_is_reproducible():
    g1 = gaussian_random_field(np.random.default_rng(1), (29, 29))
    g2 = gaussian_random_field(np.random.default_rng(1), (29, 29))
    g3 = gaussian_random_field(np.random.default_rng(2), (29, 29))
    assert np.array_equal(g1, g2) and not np.allclose(g1, g3)
    assert abs(g1.mean()) < 1e-12 and g1.std() == pytest.approx(1.0)
    s1 = darcy_two_phase(np.random.default_rng([7, 0]), 12)
    s2 = darcy_two_phase(np.random.default_rng([7, 0]), 12)
    assert np.array_equal(s1["inputs"]["a"], s2["inputs"]["a"]) and np.array_equal(s1["outputs"]["u"],
                                                                                   s2["outputs"]["u"])
    assert set(np.unique(s1["inputs"]["a"])) == {5.0, 10.0}
    assert set(np.unique(s1["inputs"]["a_grid"])) == {5.0, 10.0}
    assert s1["outputs"]["u"].min() >= -1e-12 and s1["outputs"]["u"].max() > 0  # f > 0, u = 0 on the boundary
    with pytest.raises(InputError):
        gaussian_random_field(np.random.default_rng(0), (29, 29), alpha=-1)
