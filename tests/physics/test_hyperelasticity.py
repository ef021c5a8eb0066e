"""Neo-Hookean plane strain: small-strain limit, quadratic Newton convergence, and the energy its line
search descends (whose gradient must be the residual)."""
from __future__ import annotations

import numpy as np
import pytest

from graphfem.meshes import FESpace, Mesh
from graphfem.physics.elasticity import elasticity
from graphfem.physics.hyperelasticity import neo_hookean, tangent_at_rest


@pytest.fixture(scope="module")
def plate() -> Mesh:
    return Mesh.rectangle(12, 6, 0.0, 1.0, 0.0, 0.5)


@pytest.mark.parametrize("order", [1, 2])
def test_tangent_at_rest_is_linear_elasticity(plate, order):
    from skfem import BilinearForm
    from skfem.helpers import ddot, sym_grad, trace

    from graphfem.physics.elasticity import lame

    space = FESpace(plate, order=order, vector=True)
    lam, mu = lame(3.0, 0.3, 2, "strain")
    K_lin = BilinearForm(lambda u, v, w: 2 * mu * ddot(sym_grad(u), sym_grad(v))
                         + lam * trace(sym_grad(u)) * trace(sym_grad(v))).assemble(space.basis)
    diff = (tangent_at_rest(space, E=3.0, nu=0.3) - K_lin).tocsr()
    assert abs(diff).max() <= 1e-12 * abs(K_lin).max()


@pytest.mark.parametrize("order", [1, 2])
def test_small_strain_limit_is_linear_elasticity(plate, order):
    space = FESpace(plate, order=order, vector=True)
    gaps = []
    for eps in (1e-4, 1e-6):
        load = {"fixed": ["left"], "traction": {"right": [eps, -2 * eps]}, "body_force": [0.0, -eps]}
        u_nh = neo_hookean(space, E=2.0, nu=0.3, steps=1, **load).dofs["displacement"]
        u_lin = elasticity(space, E=2.0, nu=0.3, plane="strain", **load).dofs["displacement"]
        gaps.append(np.abs(u_nh - u_lin).max() / np.abs(u_lin).max())
    # the gap is the geometric + material nonlinearity, O(strain): it falls with the load
    assert gaps[1] < 3e-5 and gaps[1] < 0.02 * gaps[0], gaps


def test_newton_converges_quadratically(plate):
    sol = neo_hookean(plate, E=1.0, nu=0.3, fixed=["left"], traction={"right": [0.05, -0.03]}, steps=2,
                      order=2, tol=1e-12)
    for history in sol.info["residuals"]:
        print(" ".join(f"{r:.2e}" for r in history))
        r = np.asarray(history)
        assert r[-1] <= 1e-11  # tol, or the stress round-off floor just above it
        # asymptotic rate: r_{k+1} <= C r_k^2 on the last steps above round-off
        tail = [(a, b) for a, b in zip(r[:-1], r[1:]) if a < 1e-2 and b > 1e-12]  # above the round-off floor
        assert tail, history
        assert all(b <= 50 * a * a for a, b in tail), history
    u = sol.fields["displacement"]
    assert u[:, 1].min() < -0.02  # the plate bends down under the downward traction


def test_stored_energy_is_the_potential_of_the_piola_stress(plate):
    """d/dε ∫W(F(u + εv)) at ε = 0 equals ∫P(F(u)) : ∇v (central differences, 1e-7 relative): the line
    search's energy and Newton's residual are one functional and its gradient."""
    from skfem import Functional, LinearForm
    from skfem.helpers import grad

    from graphfem.physics.elasticity import lame
    from graphfem.physics.hyperelasticity import _kinematics, piola, stored_energy

    space = FESpace(plate, order=2, vector=True)
    lam, mu = lame(1.3, 0.35, 2, "strain")
    rng = np.random.default_rng(3)
    x, y = space.basis.doflocs  # every dof's location: a smooth field of both components, strains ~ 0.2
    u = 0.1 * np.sin(2 * x) * np.cos(3 * y) + 0.05 * x ** 2
    v = rng.standard_normal(space.n_dofs)

    def energy(w):
        F, _, lnJ = _kinematics(space, w)
        return Functional(lambda q: q["W"]).assemble(space.basis, W=stored_energy(F, lnJ, lam, mu))

    F, FinvT, lnJ = _kinematics(space, u)
    force = LinearForm(lambda t, q: np.einsum("ij...,ij...->...", q["P"], grad(t))).assemble(
        space.basis, P=piola(F, FinvT, lnJ, lam, mu))
    eps = 1e-6
    derivative = (energy(u + eps * v) - energy(u - eps * v)) / (2 * eps)
    assert derivative == pytest.approx(float(force @ v), rel=1e-7)


def test_newton_from_a_rough_guess_converges_by_its_line_search(plate):
    """A guess with a node-to-node roughness (as a surrogate's, here 15 % of the rms displacement per dof)
    squeezes elements to det F ≈ 0.2: the full Newton step from it inverts elements or climbs the energy,
    the line search shortens it, and Newton reaches the load-stepped solution at the full load without
    starting over. A guess that already inverts an element starts over from u = 0 with load steps."""
    load = {"E": 0.9, "nu": 0.3, "fixed": ["left"], "traction": {"right": [0.1, -0.02]}, "body_force": [0.0, -0.03]}
    reference = neo_hookean(plate, steps=4, tol=1e-12, **load)
    u = reference.dofs["displacement"]
    clamped = np.abs(reference.space.basis.doflocs[0]) < 1e-12  # doflocs: one location per dof
    noise = np.random.default_rng(0).standard_normal(u.size) * ~clamped
    rms = np.linalg.norm(u) / np.sqrt(u.size)
    refined = neo_hookean(plate, initial=u + 0.15 * rms * noise, tol=1e-12, **load)
    assert refined.info["initial_failed"] is False and refined.info["load_factors"] == [1.0]
    assert refined.info["shortened_steps"] >= 1
    assert refined.info["residuals"][0][0] > 5  # the guess's residual: several times the load
    assert np.abs(refined.dofs["displacement"] - u).max() <= 1e-9 * np.abs(u).max()
    inverted = neo_hookean(plate, initial=u + 0.3 * rms * noise, tol=1e-12, **load)
    assert inverted.info["initial_failed"] is True
    assert np.abs(inverted.dofs["displacement"] - u).max() <= 1e-9 * np.abs(u).max()


def test_distance_features_are_the_distances_to_supports_and_loads():
    """On the rectangle [0, 2] x [0, 1] (a structured grid, so every row has a node on each side) the
    hyperelastic inputs ``fix:distance`` and ``traction:distance`` clamped on ``left`` and pulled on ``right``
    are x/L and (2 - x)/L, L = 2; a quarter turn, a shift and a scaling of the mesh (which keep L the largest
    side) leave them unchanged."""
    from graphfem.physics.problem import get_problem, moved_mesh

    problem = get_problem("hyperelastic")
    mesh = Mesh.rectangle(8, 4, 0.0, 2.0, 0.0, 1.0)
    raw = {"E": 1.0, "nu": 0.3, "fix": ["left"], "traction": {"right": [0.05, 0.0]}}
    features = problem.features(mesh, problem.parse(mesh, raw))
    columns = [features.names.index(n) for n in ("fix:distance", "traction:distance")]
    x = mesh.points[:, 0]
    np.testing.assert_allclose(features.x[:, columns], np.stack([x / 2, (2 - x) / 2], axis=1), atol=1e-15)
    moved = moved_mesh(mesh, 3e-4 * mesh.points @ np.array([[0.0, -1.0], [1.0, 0.0]]).T + 5.0)
    again = problem.features(moved, problem.parse(moved, raw))
    np.testing.assert_allclose(again.x[:, columns], features.x[:, columns], atol=1e-12)


def test_load_magnitude_is_the_parts_resultants_in_norm_and_factors_the_loads_out():
    """On the rectangle [0, 2] x [0, 1] pulled by t on ``right`` (length 1) under a body force b
    (area 2), λ = (|t| · 1 + |b| · 2)/(E L), L = 2, by hand. Multiplying every load by 3 multiplies λ
    and the output scale L λ by 3 and leaves every other input as it was; the layout of checkpoints
    from before λ (``by_load=False``) keeps the loads over E and the scale L."""
    from graphfem.physics.problem import get_problem

    problem = get_problem("hyperelastic")
    mesh = Mesh.rectangle(8, 4, 0.0, 2.0, 0.0, 1.0)
    t, b, E = np.array([0.06, -0.08]), np.array([0.0, -0.03]), 1.25
    raw = {"E": E, "nu": 0.3, "fix": ["left"], "traction": {"right": list(t)}, "body_force": list(b)}
    features = problem.features(mesh, problem.parse(mesh, raw))
    column = features.names.index("load:magnitude")
    lam = (np.linalg.norm(t) * 1.0 + np.linalg.norm(b) * 2.0) / (E * 2.0)
    np.testing.assert_allclose(features.x[:, column], lam, rtol=1e-12)
    np.testing.assert_allclose(features.scale, [2.0 * lam, 2.0 * lam], rtol=1e-12)
    right = mesh.tag_nodes("right")
    traction = [features.names.index(f"traction[{k}]") for k in range(2)]
    np.testing.assert_allclose(features.x[right][:, traction], np.tile(t / (E * lam), (right.size, 1)), rtol=1e-12)

    tripled = {**raw, "traction": {"right": list(3 * t)}, "body_force": list(3 * b)}
    again = problem.features(mesh, problem.parse(mesh, tripled))
    np.testing.assert_allclose(again.scale, 3 * features.scale, rtol=1e-12)
    others = [k for k in range(len(features.names)) if k != column]
    np.testing.assert_allclose(again.x[:, others], features.x[:, others], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(again.x[:, column], 3 * lam, rtol=1e-12)

    before = problem.features(mesh, problem.parse(mesh, raw), by_load=False)
    assert "load:magnitude" not in before.names
    np.testing.assert_allclose(before.scale, [2.0, 2.0])
    np.testing.assert_allclose(before.x[right][:, traction], np.tile(t / E, (right.size, 1)), rtol=1e-12)
    assert problem.features_in(mesh, problem.parse(mesh, raw), before.names).names == before.names


def test_an_unloaded_body_has_load_magnitude_one():
    """No traction and no body force: λ = 1 (the output scale L), not a division by zero."""
    from graphfem.physics.problem import get_problem

    problem = get_problem("hyperelastic")
    mesh = Mesh.rectangle(4, 2, 0.0, 1.0, 0.0, 0.5)
    features = problem.features(mesh, problem.parse(mesh, {"E": 1.0, "nu": 0.3, "fix": ["left"]}))
    assert np.all(features.x[:, features.names.index("load:magnitude")] == 1.0)
    np.testing.assert_array_equal(features.scale, [1.0, 1.0])
    assert np.all(np.isfinite(features.x))
