"""The shared linear solve: condensation, automatic choice, logging, failures."""
import logging

import numpy as np
import pytest
import scipy.sparse as sp

from graphfem.meshes import FESpace, GraphfemError, InputError, Mesh
from graphfem.physics import LinearSolver, choose_method, poisson, solve_linear
from graphfem.physics.coefficients import scalar_node_dofs


def laplacian_1d(n):
    """(n, n) SPD tridiagonal [−1, 2, −1]."""
    return sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]).tocsr()


def test_choice_by_size_and_dimension():
    assert choose_method(50_000, dim=2) == "direct"
    assert choose_method(500_000, dim=2) == "amg"
    assert choose_method(50_000, dim=3) == "amg"
    assert choose_method(10, "cg") == "cg"
    assert choose_method(100, direct_max_dofs=99) == "amg"
    with pytest.raises(InputError, match="unknown linear solver"):
        choose_method(10, "lu")


@pytest.mark.parametrize("method", ["direct", "amg", "cg"])
def test_condensed_solve_matches_exact(method):
    # −u'' = 0 on a chain with u(0) = 1, u(end) = 3: linear values.
    n = 401
    x, info = solve_linear(laplacian_1d(n), np.zeros(n), D=np.array([0, n - 1]), x_D=np.array([1.0, 3.0]),
                           method=method, rtol=1e-12)
    assert np.allclose(x, np.linspace(1, 3, n), atol=1e-8)
    assert info["method"] == method and info["n"] == n - 2
    assert info["residual"] < 1e-10
    assert (info["iterations"] > 0) == (method != "direct")


def test_auto_switches_to_amg_and_logs(caplog):
    mesh = Mesh.unit_square(24)
    with caplog.at_level(logging.INFO, logger="graphfem.physics"):
        x, info = solve_linear(FESpace(mesh).stiffness(), np.ones(mesh.n_points),
                               D=FESpace(mesh).boundary_dofs(), direct_max_dofs=100)
    assert info["method"] == "amg" and info["iterations"] < 30
    assert "AMG-preconditioned CG" in caplog.text and "iterations" in caplog.text


def test_solvers_agree_on_poisson():
    mesh = Mesh.unit_square(20)
    direct = poisson(mesh, solver="direct")
    for method in ("amg", "cg"):
        other = poisson(mesh, solver=method, rtol=1e-12)
        assert other.info["method"] == method and other.info["iterations"] > 0
        assert np.allclose(other.fields["u"], direct.fields["u"], atol=1e-10)


def test_non_convergence_is_a_graphfem_error():
    with pytest.raises(GraphfemError, match=r"did not converge: 3 iterations, relative residual"):
        solve_linear(laplacian_1d(500), np.ones(500), method="cg", maxiter=3)


def test_factorised_solver_reused():
    A = laplacian_1d(50) + sp.eye(50)
    solver = LinearSolver(A, method="direct", factorize=True)
    for seed in range(3):
        b = np.random.default_rng(seed).normal(size=50)
        assert np.allclose(A @ solver.solve(b), b)
    assert "direct" in solver.describe()


@pytest.mark.parametrize("mesh, order", [(Mesh.unit_square(3), 1), (Mesh.unit_square(3), 2),
                                         (Mesh.unit_square(3, cell="quad"), 1), (Mesh.unit_square(3, cell="quad"), 2),
                                         (Mesh.unit_square(3, order=2), 2), (Mesh.box(2), 2),
                                         (Mesh.box(2), 1)])
def test_nodal_fast_path_matches_fespace(mesh, order):
    # The solvers read nodal values through scikit-fem's vertex dof numbering;
    # it must agree with FESpace.to_nodes (which matches dof locations).
    space = FESpace(mesh, order=order)
    u = np.random.default_rng(0).normal(size=space.n_dofs)
    assert np.array_equal(u[scalar_node_dofs(space)], space.to_nodes(u))
