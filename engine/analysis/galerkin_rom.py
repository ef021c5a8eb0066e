"""Galerkin reduced-order models for linear, affinely parametrised FE problems.

A problem is ``A(mu) u = b(mu)`` with homogeneous Dirichlet conditions on the
dofs ``D`` and affine decompositions

    A(mu) = sum_q theta_q(mu) A_q,        b(mu) = sum_r phi_r(mu) b_r,

assembled once with scikit-fem (P1 elements). Two problems ship here:

* ``poisson``: ``-div(kappa grad u) = f`` in Omega, ``u = 0`` on the boundary,
  ``kappa = kappa_q`` on region q (a box grid of the bounding box, by cell
  centroid). Parameters ``mu = (kappa_1 .. kappa_Q, f)``.
* ``elasticity``: small-strain isotropic elasticity, Young's modulus ``E_q`` on
  region q, fixed Poisson ratio ``nu``, clamped where ``x = x_min``, body force
  ``(0, -g)``. Parameters ``mu = (E_1 .. E_Q, g)``.

The Galerkin ROM on a basis ``Phi`` (n, N) (optionally shifted by a centre
``ubar``) solves ``Phi^T A(mu) Phi a = Phi^T (b(mu) - A(mu) ubar)`` with the
reduced affine terms precomputed, then lifts ``u = ubar + Phi a``. Rows of Phi
on Dirichlet dofs are zeroed, so the ROM satisfies the boundary conditions.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import skfem
from skfem.helpers import dot, grad
from skfem.models.elasticity import lame_parameters, linear_elasticity

from graphfem.analysis.fe_meshes import element_for, skfem_mesh
from graphfem.analysis.rom import InputClassifier
from graphfem.meshes.errors import InputError

__all__ = ["skfem_mesh", "region_labels", "AffineProblem", "poisson_problem", "elasticity_problem",
           "build_problem", "GalerkinROM", "LocalGalerkinROM", "relative_error", "time_call"]

def region_labels(m: skfem.Mesh, regions) -> np.ndarray:
    """Region index (n_cells,) of each cell: a ``regions[0] x regions[1] (x regions[2])`` box grid
    over the bounding box, by cell centroid, numbered with x fastest."""
    regions = [int(r) for r in regions]
    c = m.p[:, m.t].mean(axis=1)                      # (dim, n_cells)
    lo, hi = m.p.min(axis=1), m.p.max(axis=1)
    lab = np.zeros(m.t.shape[1], dtype=int)
    stride = 1
    for d, r in enumerate(regions[: m.p.shape[0]]):
        i = np.clip(((c[d] - lo[d]) / max(hi[d] - lo[d], 1e-300) * r).astype(int), 0, r - 1)
        lab += stride * i
        stride *= r
    return lab


@dataclass
class AffineProblem:
    """``A(mu) = sum_q mu[a_index[q]] A_q``, ``b(mu) = sum_r mu[b_index[r]] b_r``, Dirichlet dofs ``D``.

    ``M`` is the mass matrix of the solution space (for errors), ``basis`` the skfem basis.
    """
    name: str
    basis: skfem.CellBasis
    A_q: list
    b_r: list
    a_index: list
    b_index: list
    D: np.ndarray
    M: sp.csr_matrix
    param_names: list
    config: dict
    free: np.ndarray = field(init=False)
    _Aff: list = field(init=False, repr=False)

    def __post_init__(self):
        self.free = np.setdiff1d(np.arange(self.basis.N), self.D)
        self._Aff = [A[self.free][:, self.free].tocsc() for A in self.A_q]
        self._bf = [b[self.free] for b in self.b_r]

    @property
    def n_dofs(self) -> int:
        return int(self.basis.N)

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    def check(self, mu) -> np.ndarray:
        mu = np.asarray(mu, dtype=float).ravel()
        if mu.size != self.n_params:
            raise InputError(f"{self.name} needs {self.n_params} parameters ({', '.join(self.param_names)}), got {mu.size}")
        if np.any(mu[self.a_index] <= 0):
            raise InputError(f"{self.name}: coefficients {', '.join(self.param_names[i] for i in self.a_index)} must be positive")
        return mu

    def operator(self, mu) -> sp.csr_matrix:
        """Full ``A(mu)`` (no boundary conditions), shape (n, n)."""
        mu = self.check(mu)
        return sum(mu[i] * A for i, A in zip(self.a_index, self.A_q))

    def rhs(self, mu) -> np.ndarray:
        mu = self.check(mu)
        return sum(mu[i] * b for i, b in zip(self.b_index, self.b_r))

    def solve(self, mu) -> np.ndarray:
        """Full FE solution (n,): sum the preassembled free-dof operators, sparse direct solve."""
        mu = self.check(mu)
        A = sum(mu[i] * A for i, A in zip(self.a_index, self._Aff))
        b = sum(mu[i] * b for i, b in zip(self.b_index, self._bf))
        u = np.zeros(self.n_dofs)
        u[self.free] = spla.spsolve(A.tocsc(), b)
        return u

    def snapshots(self, params: np.ndarray) -> np.ndarray:
        """Full solutions for each row of ``params`` (n_s, n_params): shape (n_dofs, n_s)."""
        return np.column_stack([self.solve(mu) for mu in np.atleast_2d(params)])

    def nodal(self, u: np.ndarray) -> np.ndarray:
        """Values at mesh nodes: (n_nodes,) for scalar, (n_nodes, dim) for vector problems."""
        nd = self.basis.nodal_dofs
        return u[nd[0]] if nd.shape[0] == 1 else u[nd].T


def _mass(basis) -> sp.csr_matrix:
    if basis.elem.__class__.__name__ == "ElementVector":
        form = skfem.BilinearForm(lambda u, v, w: dot(u, v))
    else:
        form = skfem.BilinearForm(lambda u, v, w: u * v)
    return form.assemble(basis).tocsr()


def poisson_problem(mesh, regions=(2, 2)) -> AffineProblem:
    """Poisson with piecewise-constant kappa on a box grid of regions; mu = (kappa_1..kappa_Q, f)."""
    m = skfem_mesh(mesh)
    elem = element_for(m)
    basis = skfem.Basis(m, elem)
    lab = region_labels(m, regions)
    Q = int(np.prod(regions[: m.p.shape[0]]))
    lap = skfem.BilinearForm(lambda u, v, w: dot(grad(u), grad(v)))
    A_q = []
    for q in range(Q):
        cells = np.flatnonzero(lab == q)
        A_q.append(lap.assemble(skfem.Basis(m, elem, elements=cells)).tocsr() if cells.size
                   else sp.csr_matrix((basis.N, basis.N)))
    b = skfem.LinearForm(lambda v, w: v).assemble(basis)
    names = [f"kappa_{q + 1}" for q in range(Q)] + ["f"]
    return AffineProblem("poisson", basis, A_q, [b], list(range(Q)), [Q], basis.get_dofs().all(),
                         _mass(basis), names, {"problem": "poisson", "regions": [int(r) for r in regions]})


def elasticity_problem(mesh, regions=(2, 1), nu: float = 0.3) -> AffineProblem:
    """Linear elasticity, E_q per region, clamped at x = x_min, body force (0, -g) (last axis down);
    mu = (E_1..E_Q, g)."""
    m = skfem_mesh(mesh)
    if m.p.shape[0] < 2:
        raise InputError("elasticity needs a 2-D or 3-D mesh")
    if not 0 <= nu < 0.5:
        raise InputError(f"Poisson ratio nu={nu} must lie in [0, 0.5)")
    e = skfem.ElementVector(element_for(m))
    basis = skfem.Basis(m, e)
    lab = region_labels(m, regions)
    Q = int(np.prod(regions[: m.p.shape[0]]))
    form = linear_elasticity(*lame_parameters(1.0, nu))
    A_q = []
    for q in range(Q):
        cells = np.flatnonzero(lab == q)
        A_q.append(form.assemble(skfem.Basis(m, e, elements=cells)).tocsr() if cells.size
                   else sp.csr_matrix((basis.N, basis.N)))
    dim = m.p.shape[0]
    down = np.zeros(dim)
    down[-1] = -1.0
    b = skfem.LinearForm(lambda v, w: sum(down[i] * v[i] for i in range(dim))).assemble(basis)
    xmin = m.p[0].min()
    D = basis.get_dofs(lambda x: np.isclose(x[0], xmin)).all()
    if D.size == 0:
        raise InputError("elasticity: no nodes on the clamped side x = x_min")
    names = [f"E_{q + 1}" for q in range(Q)] + ["g"]
    return AffineProblem("elasticity", basis, A_q, [b], list(range(Q)), [Q], D, _mass(basis), names,
                         {"problem": "elasticity", "regions": [int(r) for r in regions], "nu": float(nu)})


def build_problem(mesh, config: dict) -> AffineProblem:
    """Problem from a JSON-able config ``{"problem": "poisson"|"elasticity", "regions": [..], "nu": ..}``."""
    kind = config.get("problem")
    regions = tuple(config.get("regions", (2, 2) if kind == "poisson" else (2, 1)))
    if kind == "poisson":
        return poisson_problem(mesh, regions)
    if kind == "elasticity":
        return elasticity_problem(mesh, regions, float(config.get("nu", 0.3)))
    raise InputError(f"unknown problem {kind!r} (poisson or elasticity)")


class GalerkinROM:
    """Galerkin projection of an :class:`AffineProblem` onto ``ubar + span(Phi)``.

    Offline: ``A_q^r = Phi^T A_q Phi`` (N, N), ``b_r^r = Phi^T b_r``, ``c_q = Phi^T A_q ubar``.
    Online: ``sum_q theta_q A_q^r a = sum_r phi_r b_r^r - sum_q theta_q c_q``, cost O(Q N^2 + N^3).
    """

    def __init__(self, problem: AffineProblem, Phi: np.ndarray, mean: np.ndarray | None = None):
        Phi = np.array(Phi, dtype=float, copy=True)
        if Phi.ndim != 2 or Phi.shape[0] != problem.n_dofs:
            raise InputError(f"basis has {Phi.shape[0] if Phi.ndim == 2 else '?'} rows, the problem has {problem.n_dofs} dofs")
        Phi[problem.D] = 0.0
        self.problem, self.Phi = problem, Phi
        self.mean = None if mean is None else np.asarray(mean, dtype=float)
        self.Ar = [Phi.T @ (A @ Phi) for A in problem.A_q]
        self.br = [Phi.T @ b for b in problem.b_r]
        self.cr = None if self.mean is None else [Phi.T @ (A @ self.mean) for A in problem.A_q]

    @property
    def n_modes(self) -> int:
        return self.Phi.shape[1]

    def truncated(self, n: int) -> "GalerkinROM":
        """The ROM on the first ``n`` modes, sliced from the reduced operators (no reassembly)."""
        new = object.__new__(GalerkinROM)
        new.problem, new.Phi, new.mean = self.problem, self.Phi[:, :n], self.mean
        new.Ar = [A[:n, :n] for A in self.Ar]
        new.br = [b[:n] for b in self.br]
        new.cr = None if self.cr is None else [c[:n] for c in self.cr]
        return new

    def reduced(self, mu) -> np.ndarray:
        mu = self.problem.check(mu)
        p = self.problem
        A = sum(mu[i] * Ar for i, Ar in zip(p.a_index, self.Ar))
        b = sum(mu[i] * br for i, br in zip(p.b_index, self.br))
        if self.cr is not None:
            b = b - sum(mu[i] * c for i, c in zip(p.a_index, self.cr))
        return np.linalg.solve(A, b)

    def solve(self, mu) -> np.ndarray:
        """Lifted ROM solution (n,)."""
        u = self.Phi @ self.reduced(mu)
        return u if self.mean is None else u + self.mean

    def residual(self, mu, u: np.ndarray | None = None) -> float:
        """Relative residual ``||A(mu) u - b(mu)||_2 / ||b(mu)||_2`` on the free dofs."""
        u = self.solve(mu) if u is None else u
        p = self.problem
        r = (p.operator(mu) @ u - p.rhs(mu))[p.free]
        return float(np.linalg.norm(r) / max(np.linalg.norm(p.rhs(mu)[p.free]), 1e-300))


class LocalGalerkinROM:
    """One Galerkin ROM per cluster; a new case picks its cluster by the input k-NN classifier
    (``select="classifier"``) or by the smallest full residual (``select="residual"``)."""

    def __init__(self, problem: AffineProblem, bases: list, classifier: InputClassifier | None = None):
        self.roms = [GalerkinROM(problem, Phi, mean) for Phi, mean in bases]
        self.classifier = classifier

    def select(self, mu, how: str = "classifier") -> int:
        if how == "classifier" and self.classifier is not None:
            return int(self.classifier.predict(np.asarray(mu, dtype=float))[0])
        if how in ("classifier", "residual"):
            return int(np.argmin([r.residual(mu) for r in self.roms]))
        raise InputError(f"unknown cluster selection {how!r} (classifier or residual)")

    def solve(self, mu, how: str = "classifier", cluster: int | None = None) -> tuple[np.ndarray, int]:
        k = self.select(mu, how) if cluster is None else cluster
        return self.roms[k].solve(mu), k


def relative_error(problem: AffineProblem, u_ref: np.ndarray, u: np.ndarray) -> float:
    """``||u - u_ref||_M / ||u_ref||_M`` (L2 relative error)."""
    d = u - u_ref
    return float(np.sqrt((d @ (problem.M @ d)) / (u_ref @ (problem.M @ u_ref))))


def time_call(fn, *args, repeat: int = 5) -> float:
    """Best-of-``repeat`` wall time of ``fn(*args)`` in seconds."""
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t)
    return best
