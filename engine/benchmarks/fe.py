"""``graphfem bench fe``: the cost of graphfem's layer over scikit-fem.

For P1 Poisson (−Δu = 1, u = 0 on the boundary) on unit-square triangle
meshes from about 2k to about 1M cells, measured in one run:

* ``graphfem / skfem``: :func:`graphfem.physics.poisson` (FESpace, assembly,
  condensation, solve, nodal values) against the same solve written directly
  in scikit-fem (``Basis``, ``asm``, ``condense``) with the same linear solver
  (the one graphfem's ``auto`` picked at that size). Target ≤ 1.1.
* ``to_graph / assembly``: :func:`graphfem.meshes.to_graph` against one
  stiffness assembly on the same mesh. Target ≤ 1.

Each timing is the minimum over ``repeat`` runs (half as many above 131k
cells); the graphfem and scikit-fem solves alternate, so that a change of
machine load affects both.
"""
from __future__ import annotations

import time

import numpy as np

from . import machine


def _timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def _best(function, repeat: int) -> tuple[float, object]:
    """Minimum time over ``repeat`` calls, and the last result."""
    times, results = zip(*(_timed(function) for _ in range(repeat)))
    return min(times), results[-1]


def _skfem_poisson(points: np.ndarray, cells: np.ndarray, method: str) -> np.ndarray:
    """−Δu = 1 on the unit square, u = 0 on ∂Ω, written directly in scikit-fem
    from the same node and cell arrays, with the same linear solver."""
    import skfem
    from skfem.models.poisson import laplace, unit_load

    from graphfem.physics.linear_solvers import LinearSolver

    basis = skfem.Basis(skfem.MeshTri(points.T, cells.T), skfem.ElementTriP1())
    A = laplace.assemble(basis)
    b = unit_load.assemble(basis)
    A_II, b_I, x, I = skfem.condense(A, b, D=basis.get_dofs())
    x[I] = LinearSolver(A_II, method=method).solve(b_I)
    return x


def _graphfem_poisson(mesh):
    """The same solve through graphfem, from a :class:`Mesh` with tags."""
    from graphfem.physics import poisson

    return poisson(mesh, kappa=1.0, f=1.0)


def run(max_cells: int = 1_000_000, repeat: int = 3) -> str:
    """Run the benchmark and return the table as text."""
    import logging

    import skfem
    from skfem.models.poisson import laplace

    from graphfem.meshes import Mesh, to_graph

    logging.getLogger("skfem").setLevel(logging.WARNING)
    sizes = [n for n in (32, 64, 128, 256, 512, 708) if 2 * n * n <= max_cells * 1.01] or [32]
    to_graph(Mesh.rectangle(2, 2))  # import torch before timing
    rows = []
    for n in sizes:
        reps = repeat if n <= 256 else max(1, repeat // 2)
        mesh = Mesh.rectangle(n, n)
        t_graphfem = t_skfem = np.inf
        for _ in range(reps):  # interleaved, so that a change of machine load hits both sides
            t, solution = _timed(lambda: _graphfem_poisson(mesh))
            t_graphfem = min(t_graphfem, t)
            method = solution.info["method"]
            t, x = _timed(lambda: _skfem_poisson(mesh.points, mesh.cells, method))
            t_skfem = min(t_skfem, t)
        # the same problem on the same nodes: the solutions must agree
        difference = abs(float(solution.dofs["u"].max()) - float(x.max()))
        basis = skfem.Basis(skfem.MeshTri(mesh.points.T, mesh.cells.T), skfem.ElementTriP1())
        t_graph, _ = _best(lambda: to_graph(mesh), reps)
        t_assembly, _ = _best(lambda: laplace.assemble(basis), reps)
        rows.append((2 * n * n, (n + 1) ** 2, method, t_graphfem, t_skfem, t_graph, t_assembly, difference))
    lines = [
        f"graphfem bench fe: P1 Poisson on the unit square ({machine()})",
        f"{'cells':>9} {'dofs':>9} {'solver':>7} {'graphfem s':>11} {'skfem s':>9} {'ratio':>6} "
        f"{'to_graph s':>11} {'assembly s':>11} {'ratio':>6} {'|max u - max u_skfem|':>22}",
    ]
    for cells, dofs, method, tg, ts, tgr, ta, diff in rows:
        lines.append(f"{cells:>9} {dofs:>9} {method:>7} {tg:>11.4f} {ts:>9.4f} {tg / ts:>6.2f} "
                     f"{tgr:>11.4f} {ta:>11.4f} {tgr / ta:>6.2f} {diff:>22.1e}")
    lines.append("targets: graphfem / skfem <= 1.1, to_graph / assembly <= 1")
    return "\n".join(lines)
