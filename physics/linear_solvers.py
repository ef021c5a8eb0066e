"""Sparse linear solves with Dirichlet condensation and an automatic solver choice.

Every FE solver in :mod:`graphfem.physics` ends in ``A x = b`` with some dofs
fixed (``x[D] = x_D``). The fixed dofs are condensed out (scikit-fem's
``condense``): with I the free dofs,

    A_II x_I = b_I − A_ID x_D,

and the reduced system is solved by one of

* ``"direct"``: sparse LU (SuperLU through ``scipy.sparse.linalg``, with the
  minimum-degree ordering of A + Aᵀ, which suits the symmetric FE matrices);
* ``"amg"``: conjugate gradients preconditioned by one V-cycle of pyamg's
  smoothed-aggregation algebraic multigrid (SPD systems; for elasticity the
  rigid-body modes are passed as the near-null space);
* ``"cg"``: conjugate gradients with a Jacobi (diagonal) preconditioner.

``"iterative"`` is ``"amg"`` (the word every problem's ``--solver`` takes for
its Krylov method: :data:`SOLVER_WORDS`, :func:`solver_option`).
``"auto"`` picks ``"direct"`` up to ``direct_max_dofs`` free dofs (100 000 in
1D/2D, 5 000 in 3D, where LU fill-in grows faster) and ``"amg"`` above
(crossovers measured on P1 Poisson on this project's 2-core machine).
The choice, the iteration count and the final relative residual
``||b − A x|| / ||b||`` are logged on the ``graphfem.physics`` logger and
returned in an info dict. An iterative solve that does not reach ``rtol``
raises :class:`~graphfem.meshes.errors.GraphfemError` naming both numbers.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl

from graphfem.meshes.errors import GraphfemError, InputError, OptionValueError

if TYPE_CHECKING:
    from .problem import Option

logger = logging.getLogger("graphfem.physics")

METHODS = ("auto", "direct", "iterative", "amg", "cg")

#: the words of ``--solver``, one vocabulary for every problem: ``auto`` (by size), ``direct`` (sparse LU),
#: ``iterative`` (the problem's Krylov method), ``amg`` (CG with an AMG V-cycle), ``cg`` (Jacobi-CG)
SOLVER_WORDS = ("auto", "direct", "iterative", "amg", "cg")

_ORDERING = "MMD_AT_PLUS_A"

#: Largest number of free dofs solved directly by ``method="auto"``, per dimension.
DIRECT_MAX_DOFS = {1: 100_000, 2: 100_000, 3: 5_000}


def choose_method(n: int, method: str = "auto", dim: int = 2, direct_max_dofs: int | None = None) -> str:
    """The solver used for ``n`` free dofs: ``method`` itself unless it is ``"auto"``."""
    if method not in METHODS:
        raise InputError(f"unknown linear solver {method!r}; choose one of {', '.join(METHODS)}")
    if method != "auto":
        return "amg" if method == "iterative" else method
    limit = DIRECT_MAX_DOFS.get(dim, DIRECT_MAX_DOFS[3]) if direct_max_dofs is None else direct_max_dofs
    return "direct" if n <= limit else "amg"


class LinearSolver:
    """A reusable solver for one SPD (or, with ``"direct"``, any nonsingular)
    matrix: the LU factors or the AMG hierarchy are built once, then
    :meth:`solve` may be called for many right-hand sides (time stepping).

    Args:
        A: (n, n) sparse matrix.
        method: ``"auto"``, ``"direct"``, ``"amg"`` (also ``"iterative"``) or ``"cg"``.
        rtol: relative residual target of the iterative methods.
        maxiter: iteration limit of the iterative methods (default ``max(1000, n // 10)``
            for ``"cg"``, 500 for ``"amg"``).
        near_nullspace: (n, k) near-null-space vectors for smoothed aggregation
            (rigid-body modes for elasticity); ``None`` uses constants.
        dim: spatial dimension, only used by ``"auto"``.
        direct_max_dofs: override of the ``"auto"`` threshold.
        factorize: for ``"direct"``, keep an LU factorisation (``splu``) for
            repeated solves; otherwise every solve calls ``spsolve``.

    Attributes:
        method: the method actually used.
        info: dict with ``method``, ``n``, ``setup_s`` and, after each solve,
            ``iterations``, ``residual``, ``solve_s``.
    """

    def __init__(self, A: sp.spmatrix, method: str = "auto", rtol: float = 1e-10, maxiter: int | None = None,
                 near_nullspace: np.ndarray | None = None, dim: int = 2, direct_max_dofs: int | None = None,
                 factorize: bool = False):
        start = time.perf_counter()
        self.A = A.tocsr()
        n = self.A.shape[0]
        self.method = choose_method(n, method, dim, direct_max_dofs)
        self.rtol = float(rtol)
        self.maxiter = maxiter if maxiter is not None else (500 if self.method == "amg" else max(1000, n // 10))
        self._lu = None
        self._M = None
        if self.method == "direct" and factorize and n:
            self._lu = spl.splu(self.A.tocsc(), permc_spec=_ORDERING)
        elif self.method == "amg" and n:
            import pyamg

            B = None if near_nullspace is None else np.asarray(near_nullspace, dtype=float)
            hierarchy = pyamg.smoothed_aggregation_solver(self.A, B=B, symmetry="hermitian")
            self._M = hierarchy.aspreconditioner(cycle="V")
            self.levels = len(hierarchy.levels)
        elif self.method == "cg" and n:
            diag = self.A.diagonal()
            if np.any(diag <= 0):
                raise GraphfemError("conjugate gradients need a positive diagonal; the matrix is not SPD")
            self._M = sp.diags(1.0 / diag)
        self.info: dict[str, Any] = {"method": self.method, "n": n, "setup_s": time.perf_counter() - start}
        if self.method == "amg" and n:
            self.info["amg_levels"] = self.levels

    def solve(self, b: np.ndarray, x0: np.ndarray | None = None) -> np.ndarray:
        """x with A x = b; records iterations and the relative residual in :attr:`info`."""
        start = time.perf_counter()
        b = np.asarray(b, dtype=float)
        if self.A.shape[0] == 0:
            return np.zeros(0)
        iterations = 0
        if self.method == "direct":
            x = self._lu.solve(b) if self._lu is not None else spl.spsolve(self.A, b, permc_spec=_ORDERING)
        else:
            count = [0]

            def callback(_):
                count[0] += 1

            x, flag = spl.cg(self.A, b, x0=x0, rtol=self.rtol, atol=0.0, maxiter=self.maxiter, M=self._M,
                             callback=callback)
            iterations = count[0]
        bnorm = float(np.linalg.norm(b))
        residual = float(np.linalg.norm(b - self.A @ x)) / (bnorm if bnorm > 0 else 1.0)
        self.info.update(iterations=iterations, residual=residual, solve_s=time.perf_counter() - start)
        if not np.all(np.isfinite(x)):
            raise GraphfemError(f"{self.method} solve produced non-finite values (singular system?)")
        if self.method != "direct" and flag != 0:
            raise GraphfemError(f"{self.method} solver did not converge: {iterations} iterations, relative "
                                f"residual {residual:.3e} > rtol {self.rtol:.1e}")
        return x

    def describe(self) -> str:
        """One line for logs and the CLI, e.g. ``amg-cg: 250000 dofs, 15 iterations, residual 3.1e-11``."""
        return describe(self.info)


def solver_option(honoured: tuple[str, ...] = SOLVER_WORDS, iterative: str = "CG preconditioned by AMG",
                  why: str = "", what: str = "this solver") -> "Option":
    """The ``--solver`` option of a problem, in the one vocabulary :data:`SOLVER_WORDS`.

    Args:
        honoured: the words this problem's solver can honour (``auto`` and ``direct`` among them).
        iterative: what ``iterative`` means for it (in the help).
        why: why the other words cannot be honoured; a word of the vocabulary outside ``honoured`` is
            refused in one line with this reason, naming ``what`` solves and the words it takes.
    """
    from .problem import Option

    def parse(raw, mesh, option) -> str:
        if raw in honoured:
            return raw
        if raw in SOLVER_WORDS:
            raise InputError(f"--solver {raw}: {what} cannot honour it ({why}); it takes "
                             f"{', '.join(honoured[:-1])} or {honoured[-1]}")
        raise OptionValueError(f"--solver must be one of {', '.join(honoured)}, got {raw!r}")

    names = {"auto": "auto (by size)", "direct": "direct (sparse LU)", "iterative": f"iterative ({iterative})",
             "amg": "amg (CG preconditioned by AMG)", "cg": "cg (Jacobi-preconditioned CG)"}
    refused = [w for w in SOLVER_WORDS if w not in honoured]
    text = "Linear solver: " + ", ".join(names[w] for w in honoured) + (
        f"; {' and '.join(refused)} refused ({why})" if refused else "") + "."
    return Option("solver", "choice", "auto", text, role="setting", choices=tuple(honoured), parse=parse)


def describe(info: dict) -> str:
    """One-line summary of a solver info dict."""
    name = {"direct": "direct (sparse LU)", "amg": "AMG-preconditioned CG", "cg": "Jacobi-preconditioned CG"}
    text = f"{name.get(info['method'], info['method'])}: {info['n']} free dofs"
    if info["method"] != "direct":
        text += f", {info.get('iterations', 0)} iterations"
    if "residual" in info:
        text += f", relative residual {info['residual']:.2e}"
    return text


def condense(A: sp.spmatrix, b: np.ndarray, D: np.ndarray | None = None,
             x_D: np.ndarray | float | None = None) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray]:
    """Remove the fixed dofs D (values ``x_D``) from A x = b.

    Shapes: A (n, n), b (n,), D (k,) -> (A_II (n−k, n−k), b_I − A_ID x_D (n−k,),
    x (n,) with x[D] = x_D and zeros elsewhere, I (n−k,)).
    """
    import skfem

    n = A.shape[0]
    x = np.zeros(n)
    if D is None or len(D) == 0:
        return A.tocsr(), np.asarray(b, dtype=float), x, np.arange(n)
    D = np.asarray(D, dtype=np.int64)
    if x_D is not None:
        x[D] = x_D
    A_II, b_I, x, I = skfem.condense(A, np.asarray(b, dtype=float), x=x, D=D)
    return A_II, b_I, x, I


def solve_linear(A: sp.spmatrix, b: np.ndarray, D: np.ndarray | None = None,
                 x_D: np.ndarray | float | None = None, method: str = "auto", rtol: float = 1e-10,
                 maxiter: int | None = None, near_nullspace: np.ndarray | None = None, dim: int = 2,
                 direct_max_dofs: int | None = None, x0: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Solve A x = b with x[D] = x_D by condensation.

    Args:
        A: (n, n) sparse matrix (SPD for ``"amg"`` and ``"cg"``).
        b: (n,) right-hand side.
        D: fixed dofs (k,), or ``None``.
        x_D: their values: (k,) or a scalar (default 0).
        method, rtol, maxiter, dim, direct_max_dofs: see :class:`LinearSolver`.
        near_nullspace: (n, k) vectors on all dofs; restricted to the free dofs here.
        x0: (n,) starting guess of the iterative methods on all dofs (its free
            part is used; the direct method has no use for it).

    Returns:
        x: (n,) the solution, and the solver's info dict (``method``, ``n`` free
        dofs, ``iterations``, ``residual``, ``setup_s``, ``solve_s``).

    Raises:
        GraphfemError: an iterative method did not converge.
    """
    A_II, b_I, x, I = condense(A, b, D, x_D)
    B = None if near_nullspace is None else np.asarray(near_nullspace)[I]
    solver = LinearSolver(A_II, method=method, rtol=rtol, maxiter=maxiter, near_nullspace=B, dim=dim,
                          direct_max_dofs=direct_max_dofs)
    x[I] = solver.solve(b_I, None if x0 is None else np.asarray(x0, dtype=float)[I])
    logger.info("linear solve: %s", solver.describe())
    return x, dict(solver.info)
