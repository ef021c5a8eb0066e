"""Neo-Hookean plane strain: small-strain limit and quadratic Newton convergence."""
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
