r"""Macro-scale plane-strain FE solver for FE² and FE-OL.

Small-strain quasi-static equilibrium on the macro domain,

    find u with u = ū on Γ_D:   ∫_Ω σ̂(ε(u)) : ε(v) dΩ = 0   for all v, v = 0 on Γ_D,

where the constitutive response comes from a *material callback*

    material(ε̂ (N, 3)) -> (σ̂ (N, 3), Ĉ (N, 3, 3))

called once per Newton iteration with the Voigt strains (engineering
shear) at **all** N macro quadrature points. For FE² the callback solves one
periodic RVE problem per point (:class:`RVEMaterial`, warm-started from the
previous converged fluctuation); for FE-OL it is one batched surrogate call.
Newton's method uses Ĉ as the tangent: K = Σ_ip Bᵀ Ĉ B w. The prescribed
displacement is applied in ``steps`` equal increments, each with a tangent
predictor: the increment Δū on Γ_D is carried into the free dofs by the
tangent of the last converged state (of ε = 0 in the first step),

    Δu_F = −K_FF⁻¹ K_FD Δū,

so that Newton starts from the strains of a linearised solve, not from the
strains of a single layer of cells next to Γ_D (for a surrogate those lie
far outside its training strains, and its Newton iteration can wander off).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import scipy.sparse.linalg as spl

from graphfem.meshes import FESpace, Mesh
from graphfem.meshes.errors import GraphfemError, InputError, MeshError

from .rve import RVE, RVESolution, StrainOperator

Material = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

_AXES = {"x": 0, "y": 1}


def plate_with_hole(n_radial: int = 3, n_angular: int = 3, radius: float = 0.3, length: float = 1.0,
                    grading: float = 1.5) -> Mesh:
    """Quarter of a square plate [0, L]² with a central hole of radius a, as a
    structured quad mesh (2 n_angular × n_radial cells).

    Facet tags: ``hole``, ``left`` (x = 0), ``bottom`` (y = 0), ``right``
    (x = L), ``top`` (y = L). Radial spacing grows by ``grading`` outwards.
    """
    if not 0 < radius < length:
        raise InputError(f"need 0 < radius < length, got radius {radius}, length {length}")
    t = np.cumsum(np.r_[0.0, grading ** np.arange(n_radial)])
    t /= t[-1]
    k = np.arange(2 * n_angular + 1)
    s = np.where(k <= n_angular, k / n_angular, (k - n_angular) / n_angular)
    theta = np.where(k <= n_angular, s, 1 + s) * np.pi / 4
    outer = np.where((k <= n_angular)[:, None], np.stack([np.full_like(s, length), length * s], 1),
                     np.stack([length * (1 - s), np.full_like(s, length)], 1))
    inner = radius * np.stack([np.cos(theta), np.sin(theta)], 1)
    pts = inner[None] + t[:, None, None] * (outer - inner)[None]  # (n_r+1, n_k, 2)
    nk = len(k)
    idx = np.arange(pts.shape[0] * nk).reshape(pts.shape[0], nk)
    cells = np.stack([idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]], -1).reshape(-1, 4)
    tol = 1e-9 * length
    return Mesh(pts.reshape(-1, 2), "quad", cells).with_boundary_tags(
        hole=lambda x: np.hypot(x[:, 0], x[:, 1]) <= radius + tol, left=lambda x: np.abs(x[:, 0]) < tol,
        bottom=lambda x: np.abs(x[:, 1]) < tol, right=lambda x: np.abs(x[:, 0] - length) < tol,
        top=lambda x: np.abs(x[:, 1] - length) < tol)


@dataclass(eq=False)
class MacroSolution:
    """Result of a macro solve.

    Attributes:
        space: the macro vector :class:`FESpace`; op: its :class:`StrainOperator`.
        u: (n_dofs,) displacement; eps, sigma: (N, 3) at the quadrature points.
        newton: per load step, the list of relative residuals.
        material_calls: number of batched material evaluations.
        material_s, total_s: wall time in the material callback and in total.
    """

    space: FESpace
    op: StrainOperator
    u: np.ndarray
    eps: np.ndarray
    sigma: np.ndarray
    newton: list[list[float]] = field(default_factory=list)
    material_calls: int = 0
    material_s: float = 0.0
    total_s: float = 0.0

    def displacement(self) -> np.ndarray:
        """(n_points, 2) displacement at the mesh nodes."""
        return self.space.to_nodes(self.u)

    def cell_stress(self) -> np.ndarray:
        """(m, 3) quadrature-weighted cell means of σ̂."""
        m, q = self.op.n_cells, self.op.n_qp
        w = self.op.w.reshape(m, q)
        return np.einsum("mq,mqc->mc", w, self.sigma.reshape(m, q, 3)) / w.sum(1)[:, None]

    def write(self, path) -> None:
        """VTU with nodal ``displacement`` and cell-mean ``sigma_xx``, ``sigma_yy``, ``sigma_xy``."""
        s = self.cell_stress()
        self.space.mesh.write(path, point_data={"displacement": self.displacement()},
                              cell_data={"sigma_xx": s[:, 0], "sigma_yy": s[:, 1], "sigma_xy": s[:, 2]})


def _constraints(space: FESpace, fixed: Mapping[str, str | int | None],
                 displacement: Mapping[str, tuple[str | int, float]]) -> tuple[np.ndarray, np.ndarray]:
    values = np.zeros(space.n_dofs)
    mask = np.zeros(space.n_dofs, dtype=bool)

    def component(c, tag):
        if c is None:
            return None
        c = _AXES.get(c, c) if isinstance(c, str) else c
        if c not in (0, 1):
            raise InputError(f"component on {tag!r} must be x, y, 0 or 1, got {c!r}")
        return int(c)

    for tag, c in fixed.items():
        mask[space.dofs_on(tag, component=component(c, tag))] = True
    for tag, (c, value) in displacement.items():
        dofs = space.dofs_on(tag, component=component(c, tag))
        values[dofs] = float(value)
        mask[dofs] = True
    D = np.flatnonzero(mask)
    if D.size == 0:
        raise InputError("no fixed or displaced boundary: the macro displacement is undetermined",
                         space.mesh.source)
    return D, values[D]


def solve_macro(mesh: Mesh, material: Material, *, fixed: Mapping[str, str | int | None] = (),
                displacement: Mapping[str, tuple[str | int, float]] | None = None, steps: int = 1,
                rtol: float = 1e-8, maxiter: int = 20) -> MacroSolution:
    """Nonlinear macro solve with Newton's method and the callback's tangent.

    Args:
        mesh: 2D macro mesh (linear or quadratic cells, P1/P2 by its order).
        material: ``ε̂ (N, 3) -> (σ̂ (N, 3), Ĉ (N, 3, 3))`` for all N quadrature points at once.
        fixed: tag -> component (``"x"``, ``"y"``, 0, 1, or ``None`` for both) held at zero.
        displacement: tag -> (component, value) prescribed displacement (final value).
        steps: load increments.
        rtol: converged when ‖R_free‖ ≤ rtol ‖f_int‖ (all dofs, reactions included).
        maxiter: Newton iterations per step before a :class:`GraphfemError`.
    """
    start = time.perf_counter()
    if mesh.dim != 2:
        raise MeshError(f"the macro solver is 2D plane strain, got a {mesh.dim}D mesh", mesh.source)
    space = FESpace(mesh, vector=True)
    op = StrainOperator(space.basis)
    D, uD = _constraints(space, dict(fixed), dict(displacement or {}))
    free = np.setdiff1d(np.arange(space.n_dofs), D)
    dofmap = np.full(space.n_dofs, -1)
    dofmap[free] = np.arange(free.size)
    u = np.zeros(space.n_dofs)
    history: list[list[float]] = []
    eps = op.strain(u)
    t0 = time.perf_counter()
    sig, C = material(eps)  # the unstrained state: the first predictor's tangent
    mat_s, calls = time.perf_counter() - t0, 1
    for step in range(1, steps + 1):
        du = np.zeros(space.n_dofs)
        du[D] = uD / steps
        K_all = op.stiffness(np.asarray(C))
        u[D] = uD * step / steps
        u[free] -= spl.spsolve(K_all[free][:, free].tocsc(), K_all[free] @ du)
        res: list[float] = []
        for it in range(maxiter + 1):
            eps = op.strain(u)
            t0 = time.perf_counter()
            sig, C = material(eps)
            mat_s += time.perf_counter() - t0
            calls += 1
            f = op.force(np.asarray(sig))
            R = f[free]
            rel = float(np.linalg.norm(R) / max(np.linalg.norm(f), 1e-300))
            res.append(rel)
            if rel <= rtol:
                break
            if it == maxiter:
                raise GraphfemError(f"macro Newton did not converge in {maxiter} iterations at load step {step}: "
                                    f"relative residual {rel:.3e}", mesh.source)
            K = op.stiffness(np.asarray(C), dofmap, free.size)
            u[free] -= spl.spsolve(K.tocsc(), R)
        history.append(res)
    return MacroSolution(space, op, u, eps, np.asarray(sig), history, calls, mat_s, time.perf_counter() - start)


class RVEMaterial:
    """The FE² material: a nested periodic RVE Newton solve at every macro point.

    Each call solves ``len(strains)`` micro problems (warm-started from the
    last converged fluctuation of the same point) and returns σ̂ and the
    condensed tangent Ĉ. ``keep`` lists macro point indices whose last micro
    solutions are stored in :attr:`kept` (for writing micro fields).
    """

    def __init__(self, rve: RVE, keep: Sequence[int] = (), rtol: float = 1e-10):
        self.rve = rve
        self.keep = set(int(k) for k in keep)
        self.rtol = rtol
        self.state: dict[int, np.ndarray] = {}
        self.kept: dict[int, RVESolution] = {}
        self.micro_solves = 0

    def __call__(self, strains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        strains = np.asarray(strains, dtype=float)
        sig = np.zeros((len(strains), 3))
        C = np.zeros((len(strains), 3, 3))
        for i, e in enumerate(strains):
            sol = self.rve.solve(e, a0=self.state.get(i), rtol=self.rtol)
            self.state[i] = sol.a
            sig[i], C[i] = sol.stress, sol.tangent
            if i in self.keep:
                self.kept[i] = sol
        self.micro_solves += len(strains)
        return sig, C


__all__ = ["MacroSolution", "RVEMaterial", "plate_with_hole", "solve_macro"]
