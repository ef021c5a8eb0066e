r"""Periodic RVE homogenisation: small strain, quasi-static, 2D plane strain.

The micro problem on a rectangular cell Ω (|Ω| its area) loaded by a macro
strain ε̂ = (ε̂_xx, ε̂_yy, γ̂_xy) (engineering shear, Voigt order) is

    u(x) = Ê (x − x_c) + ũ(x),   Ê = [[ε̂_xx, γ̂/2], [γ̂/2, ε̂_yy]],
    ũ periodic, ũ(corner) = 0,   ∫_Ω σ(ε(u)) : ε(v) dΩ = 0  for every periodic v,

with the homogenised stress and tangent

    σ̂ = (1/|Ω|) ∫_Ω σ dΩ,        Ĉ = ∂σ̂/∂ε̂ (3 × 3, Voigt, engineering shear).

Discretisation: serendipity quadratic quadrilaterals (8 dofs per component,
scikit-fem ``ElementQuadS2``, 3 × 3 Gauss points) on ``"quad"`` meshes, or P2
triangles (6-point rule) on ``"triangle"`` / ``"triangle6"`` meshes.
Periodicity is imposed by condensation: every dof on the right (top) side is
the same unknown as its image on the left (bottom) side, u_full = T a, and
the bottom-left corner is pinned (it removes the rigid translation; rotation
is already excluded by periodicity). Newton's method with the consistent
tangent solves T^T f_int(Ê, a) = 0. The homogenised tangent is the
consistent linearisation (static condensation of the fluctuation):

    Ĉ = (1/|Ω|) (Σ_ip w C_ip − L^T K^{-1} L),   L = T^T B^T (w C) I_3,

with K = T^T B^T (w C) B T the reduced tangent stiffness at the solution.

Vectors are Voigt: strains (ε_xx, ε_yy, γ_xy), stresses (σ_xx, σ_yy, σ_xy),
so σ·ε is the work density and B maps dofs to (ε_xx, ε_yy, γ_xy).

Materials (Eivazi et al., EquiNO, 2025), all of the form

    σ = K tr(ε) I + g(‖dev ε‖) dev ε,   g(s) = α/(β + s) + 2G,

with the full plane-strain deviator (ε_zz = 0, so dev ε has the zz entry
−tr ε/3 and ‖dev ε‖² = d_xx² + d_yy² + d_zz² + 2 d_xy²; the reference code
omits d_zz):

* matrix: K = 4.78e3, α = 50, β = 0.06, G = 0 (nonlinear elastic);
* inclusions: K = 4.345e4, G = 2.992e4, α = 0 (linear elastic).

Both derive from the stored energy W = K tr²/2 + α (s − β ln(1 + s/β)) + G s².
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl

from graphfem.meshes import Mesh, Tag
from graphfem.meshes.errors import GraphfemError, InputError, MeshError, OptionValueError

from .problem import Option, Problem, Solution, register_problem

# ---------------------------------------------------------------------------- materials


@dataclass(frozen=True)
class Material:
    """σ = K tr ε I + (α/(β + ‖dev ε‖) + 2G) dev ε (plane strain, full deviator)."""

    K: float
    alpha: float = 0.0
    beta: float = 1.0
    G: float = 0.0

    def as_array(self) -> np.ndarray:
        """(4,) the parameters (K, α, β, G)."""
        return np.array([self.K, self.alpha, self.beta, self.G], dtype=float)


#: nonlinear elastic matrix of the EquiNO paper
MATRIX = Material(K=4.78e3, alpha=50.0, beta=0.06)
#: linear elastic inclusions of the EquiNO paper
INCLUSION = Material(K=4.345e4, G=2.992e4)

#: ∂(d_xx, d_yy, d_xy)/∂(ε_xx, ε_yy, γ_xy) for the plane-strain deviator
_DEV = np.array([[2 / 3, -1 / 3, 0.0], [-1 / 3, 2 / 3, 0.0], [0.0, 0.0, 0.5]])


def deviator(eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plane-strain deviator of Voigt strains.

    Shapes: eps (..., 3) -> d (..., 3) = (d_xx, d_yy, d_xy) (tensor shear),
    s (...,) = ‖dev ε‖ including d_zz = −tr ε / 3.
    """
    tr = eps[..., 0] + eps[..., 1]
    d = np.stack([eps[..., 0] - tr / 3, eps[..., 1] - tr / 3, 0.5 * eps[..., 2]], axis=-1)
    s = np.sqrt(d[..., 0] ** 2 + d[..., 1] ** 2 + (tr / 3) ** 2 + 2 * d[..., 2] ** 2)
    return d, s


def stress(eps: np.ndarray, params: np.ndarray) -> np.ndarray:
    """σ(ε) in Voigt form. Shapes: eps (N, 3), params (N, 4) of (K, α, β, G) -> (N, 3)."""
    return stress_tangent(eps, params, tangent=False)[0]


def stress_tangent(eps: np.ndarray, params: np.ndarray, tangent: bool = True
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    r"""Stress and consistent tangent C = ∂σ/∂ε (Voigt, engineering shear).

    With t = tr ε, d = dev ε, s = ‖d‖, g(s) = α/(β+s) + 2G:

        σ = K t [1, 1, 0] + g(s) d,
        C = K [1,1,0]⊗[1,1,0] + g(s) P + g'(s)/s  d⊗d,   P = ∂d/∂ε,

    since ∂s/∂(ε_xx, ε_yy, γ_xy) = (d_xx, d_yy, d_xy)/s (d is traceless).

    Shapes: eps (N, 3), params (N, 4) -> σ (N, 3), C (N, 3, 3) or ``None``.
    """
    K, alpha, beta, G = params[:, 0], params[:, 1], params[:, 2], params[:, 3]
    d, s = deviator(eps)
    tr = eps[:, 0] + eps[:, 1]
    g = alpha / (beta + s) + 2 * G
    sig = g[:, None] * d
    sig[:, :2] += (K * tr)[:, None]
    if not tangent:
        return sig, None
    gp_over_s = -alpha / ((beta + s) ** 2 * np.maximum(s, 1e-300))
    C = g[:, None, None] * _DEV + gp_over_s[:, None, None] * d[:, :, None] * d[:, None, :]
    C[:, :2, :2] += K[:, None, None]
    return sig, C


def energy_density(eps: np.ndarray, params: np.ndarray) -> np.ndarray:
    """W(ε) = K tr²/2 + α (s − β ln(1 + s/β)) + G s², with σ = ∂W/∂ε. Shapes (N, 3) -> (N,)."""
    K, alpha, beta, G = params.T
    _, s = deviator(eps)
    tr = eps[:, 0] + eps[:, 1]
    return 0.5 * K * tr ** 2 + alpha * (s - beta * np.log1p(s / beta)) + G * s ** 2


# ---------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Inclusion:
    """An elliptic inclusion: centre (cx, cy), semi-axes (a, b), rotation ``angle`` (radians).

    Membership is periodic: a point is inside when it is inside any of the
    images of the ellipse shifted by the cell's lattice vectors, so an
    inclusion centred at a corner shows as four quarter-ellipses.
    """

    center: tuple[float, float]
    a: float
    b: float | None = None
    angle: float = 0.0

    @property
    def area(self) -> float:
        return float(np.pi * self.a * (self.a if self.b is None else self.b))

    def contains(self, x: np.ndarray, period: Sequence[float] = (1.0, 1.0)) -> np.ndarray:
        """(k,) bool: points x (k, 2) inside the inclusion or a periodic image."""
        b = self.a if self.b is None else self.b
        c, s = np.cos(self.angle), np.sin(self.angle)
        inside = np.zeros(len(x), dtype=bool)
        for i in (-1, 0, 1):
            for j in (-1, 0, 1):
                rel = x - (np.asarray(self.center) + (i * period[0], j * period[1]))
                xi = c * rel[:, 0] + s * rel[:, 1]
                eta = -s * rel[:, 0] + c * rel[:, 1]
                inside |= (xi / self.a) ** 2 + (eta / b) ** 2 <= 1.0
        return inside


#: RVEs after the paper's three (matched inclusion area fractions 0.550, 0.193, 0.133)
PRESETS: dict[str, tuple[Inclusion, ...]] = {
    "rve1": (Inclusion((0.0, 0.0), float(np.sqrt(0.55 / (2 * np.pi)))),
             Inclusion((0.5, 0.5), float(np.sqrt(0.55 / (2 * np.pi))))),
    "rve2": (Inclusion((0.0, 0.0), 0.35, 0.193 / (np.pi * 0.35), np.pi / 6),),
    "rve3": (Inclusion((-0.22, -0.2), 0.14), Inclusion((0.22, -0.12), 0.11), Inclusion((0.02, 0.24), 0.10)),
    "disc": (Inclusion((0.0, 0.0), 0.3),),
}


def rve_mesh(n: int = 16, inclusions: Iterable[Inclusion] | str = "disc", size: float = 1.0) -> Mesh:
    """Structured n × n quad mesh of [−size/2, size/2]² with cell tags
    ``inclusion`` / ``matrix`` (by cell centroid, periodic membership) and
    facet tags ``left``, ``right``, ``bottom``, ``top``.

    Args:
        n: cells per side.
        inclusions: :class:`Inclusion` values in a unit cell (scaled by
            ``size``) or the name of a preset in :data:`PRESETS`.
        size: side length.
    """
    if isinstance(inclusions, str):
        if inclusions not in PRESETS:
            raise InputError(f"unknown RVE preset {inclusions!r}; choose one of {', '.join(PRESETS)}")
        inclusions = PRESETS[inclusions]
    if n < 2:
        raise InputError(f"an RVE mesh needs at least 2 cells per side, got {n}")
    base = Mesh.rectangle(n, n, -size / 2, size / 2, -size / 2, size / 2, cell="quad")
    centroid = base.points[base.cells].mean(axis=1) / size
    inside = np.zeros(base.n_cells, dtype=bool)
    for inc in inclusions:
        inside |= inc.contains(centroid)
    return base.with_tags(inclusion=Tag("inclusion", "cell", np.flatnonzero(inside)),
                          matrix=Tag("matrix", "cell", np.flatnonzero(~inside)))


# ---------------------------------------------------------------------------- strain operator


class StrainOperator:
    """Voigt strains at the quadrature points of a vector H1 basis.

    Attributes:
        Be: (m, q, 3, n_e) element B matrices: ε_v(x_eq) = Be[e, q] u[edofs[:, e]].
        Ne: (m, q, 2, n_e) element shape-function values (u at the points).
        edofs: (n_e, m) element dofs.
        w: (m·q,) quadrature weights times Jacobians (flattened, cell-major).
        x: (m·q, 2) quadrature point coordinates.
        n_dofs: number of global dofs.

    Quadrature-point arrays are flattened cell-major: index e·q + j.
    """

    def __init__(self, basis):
        grads = [basis.basis[k][0].grad for k in range(basis.Nbfun)]  # each (2, 2, m, q)
        vals = [basis.basis[k][0].value for k in range(basis.Nbfun)]  # each (2, m, q)
        g = np.stack(grads, axis=-1)  # (2, 2, m, q, n_e): g[i, j] = ∂u_i/∂x_j
        self.Be = np.stack([g[0, 0], g[1, 1], g[0, 1] + g[1, 0]], axis=2)  # (m, q, 3, n_e)
        self.Ne = np.moveaxis(np.stack(vals, axis=-1), 0, 2)  # (m, q, 2, n_e)
        self.edofs = np.asarray(basis.element_dofs)
        self.n_cells, self.n_qp = self.Be.shape[:2]
        self.w = np.asarray(basis.dx).reshape(-1)
        self.x = np.asarray(basis.global_coordinates().value).reshape(2, -1).T
        self.n_dofs = int(basis.N)

    @property
    def n_points(self) -> int:
        return self.n_cells * self.n_qp

    def strain(self, u: np.ndarray) -> np.ndarray:
        """(N, 3) Voigt strain of the dof vector u (n_dofs,) (or (n_dofs, k) -> (N, 3, k))."""
        ue = u[self.edofs]  # (n_e, m[, k])
        out = np.einsum("mqie,em...->mqi...", self.Be, ue)
        return out.reshape((self.n_points, 3) + out.shape[3:])

    def values(self, u: np.ndarray) -> np.ndarray:
        """(N, 2) displacement at the quadrature points."""
        out = np.einsum("mqie,em->mqi", self.Ne, u[self.edofs])
        return out.reshape(self.n_points, 2)

    def matrix(self) -> sp.csr_matrix:
        """Sparse B (3N, n_dofs) with rows (ip, component): ε_v = (B u).reshape(N, 3)."""
        m, q, _, ne = self.Be.shape
        rows = np.broadcast_to(np.arange(3 * m * q).reshape(m, q, 3, 1), (m, q, 3, ne))
        cols = np.broadcast_to(self.edofs.T[:, None, None, :], (m, q, 3, ne))
        return sp.csr_matrix((self.Be.ravel(), (rows.ravel(), cols.ravel())), shape=(3 * m * q, self.n_dofs))

    def force(self, sigma: np.ndarray, dofmap: np.ndarray | None = None, n: int | None = None) -> np.ndarray:
        """Internal force f = Σ_ip B^T σ w, assembled into ``dofmap[dof]`` (−1 drops the dof).

        Shapes: sigma (N, 3) or (N, 3, k) -> (n,) or (n, k).
        """
        sig = sigma.reshape((self.n_cells, self.n_qp) + sigma.shape[1:]) * self.w.reshape(
            self.n_cells, self.n_qp, *([1] * (sigma.ndim - 1)))
        fe = np.einsum("mqie,mqi...->em...", self.Be, sig)  # (n_e, m[, k])
        dofs = self.edofs if dofmap is None else dofmap[self.edofs]
        n = self.n_dofs if n is None else n
        keep = (dofs >= 0).ravel()
        out = np.zeros((n,) + sigma.shape[2:])
        np.add.at(out, dofs.ravel()[keep], fe.reshape((-1,) + sigma.shape[2:])[keep])
        return out

    def stiffness(self, C: np.ndarray, dofmap: np.ndarray | None = None, n: int | None = None) -> sp.csr_matrix:
        """K = Σ_ip B^T C B w, assembled into ``dofmap`` (−1 drops). C (N, 3, 3) -> (n, n) CSR."""
        Cw = C.reshape(self.n_cells, self.n_qp, 3, 3) * self.w.reshape(self.n_cells, self.n_qp, 1, 1)
        Ke = np.einsum("mqia,mqij,mqjb->mab", self.Be, Cw, self.Be)
        dofs = (self.edofs if dofmap is None else dofmap[self.edofs]).T  # (m, n_e)
        n = self.n_dofs if n is None else n
        rows = np.broadcast_to(dofs[:, :, None], Ke.shape).ravel()
        cols = np.broadcast_to(dofs[:, None, :], Ke.shape).ravel()
        keep = (rows >= 0) & (cols >= 0)
        return sp.csr_matrix((Ke.ravel()[keep], (rows[keep], cols[keep])), shape=(n, n))


def vector_basis(mesh: Mesh):
    """scikit-fem basis of the RVE's space: serendipity S2 on quads, P2 on triangles, 3 × 3 / 6-point rules."""
    import skfem

    from graphfem.meshes.skfem_bridge import to_skfem

    if mesh.dim != 2:
        raise MeshError(f"an RVE must be 2D, got {mesh.dim}D", mesh.source)
    if mesh.cell_type == "quad":
        element = skfem.ElementQuadS2()
    elif mesh.cell_type in ("triangle", "triangle6"):
        element = skfem.ElementTriP2()
    else:
        raise MeshError(f"RVE meshes must be quad, triangle or triangle6, got {mesh.cell_type}", mesh.source)
    return skfem.Basis(to_skfem(mesh, with_tags=False), skfem.ElementVector(element), intorder=4)


def _dof_components(basis) -> np.ndarray:
    comp = np.full(basis.N, -1)
    for name in ("nodal_dofs", "facet_dofs", "edge_dofs", "interior_dofs"):
        dofs = getattr(basis, name, None)
        if dofs is not None and np.size(dofs):
            for c in range(dofs.shape[0]):
                comp[np.asarray(dofs[c]).ravel()] = c
    return comp


def periodic_map(points: np.ndarray, component: np.ndarray, boundary: np.ndarray, tol: float = 1e-8,
                 source: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Master dof of every dof under periodicity of the bounding box.

    A dof on the right (top) side is the same unknown as the dof of the same
    component at x − L_x (y − L_y); corners all map to the bottom-left one.

    Args:
        points: (n, 2) dof locations; component: (n,) component index.
        boundary: indices of the dofs on the mesh boundary.
        tol: matching tolerance relative to the cell size.

    Returns:
        master (n,), the lower corner (2,), the cell lengths (2,).

    Raises:
        MeshError: the boundary is not the bounding box, or a boundary dof
        has no periodic image on the opposite side.
    """
    from scipy.spatial import cKDTree

    lo, hi = points.min(axis=0), points.max(axis=0)
    length = hi - lo
    atol = tol * float(length.max())
    on_lo = np.abs(points - lo) <= atol  # (n, 2)
    on_hi = np.abs(points - hi) <= atol
    bnd = np.asarray(boundary)
    off = bnd[~(on_lo[bnd] | on_hi[bnd]).any(axis=1)]
    if off.size:
        raise MeshError(f"the RVE boundary is not its bounding box: boundary node at {points[off[0]].tolist()} "
                        f"lies on no side of [{lo[0]:g}, {hi[0]:g}] x [{lo[1]:g}, {hi[1]:g}]", source)
    key = np.concatenate([points, 10 * length.max() * component[:, None]], axis=1)
    tree = cKDTree(key)

    def find(targets: np.ndarray, which: np.ndarray, side: str) -> np.ndarray:
        dist, idx = tree.query(targets)
        bad = np.flatnonzero(dist > atol)
        if bad.size:
            p = points[which[bad[0]]]
            raise MeshError(f"periodic boundaries do not match: node at ({p[0]:.6g}, {p[1]:.6g}) on the {side} "
                            f"side has no image on the opposite side ({bad.size} such dofs)", source)
        return idx

    # every dof on a side must have a partner on the opposite side (both directions)
    for axis, names in ((0, ("left", "right")), (1, ("bottom", "top"))):
        shift = np.zeros(2)
        shift[axis] = length[axis]
        for sign, mask, name in ((1, on_lo[:, axis], names[0]), (-1, on_hi[:, axis], names[1])):
            which = np.flatnonzero(mask)
            find(key[which] + np.append(sign * shift, 0.0), which, name)
    image = points.copy()
    image[on_hi[:, 0], 0] -= length[0]
    image[on_hi[:, 1], 1] -= length[1]
    moved = np.flatnonzero(on_hi.any(axis=1))
    master = np.arange(len(points))
    master[moved] = find(np.concatenate([image[moved], key[moved, 2:]], axis=1), moved, "right or top")
    return master, lo, length


# ---------------------------------------------------------------------------- the RVE


@dataclass(eq=False)
class RVESolution:
    """One converged micro solve.

    Attributes:
        strain: (3,) macro strain ε̂ (engineering shear).
        a: (n_red,) reduced fluctuation unknowns; ``fluctuation`` (n_dofs,) = T a.
        u: (n_dofs,) total displacement Ê (x − x_c) + ũ.
        eps, sigma: (N, 3) Voigt strain and stress at the quadrature points.
        stress: (3,) σ̂; tangent: (3, 3) Ĉ (consistent, by static condensation).
        residuals: ‖T^T f_int‖ per Newton iteration (first entry: the initial guess).
        iterations: Newton iterations.
    """

    strain: np.ndarray
    a: np.ndarray
    fluctuation: np.ndarray
    u: np.ndarray
    eps: np.ndarray
    sigma: np.ndarray
    stress: np.ndarray
    tangent: np.ndarray | None
    residuals: list[float] = field(default_factory=list)
    iterations: int = 0


class RVE:
    """A periodic representative volume element: mesh, phases, FE operators, solver.

    Args:
        mesh: a 2D ``quad``, ``triangle`` or ``triangle6`` mesh of a rectangle
            whose opposite sides have matching nodes.
        inclusion_tags: cell tags of the inclusion phase (the rest is matrix).
        matrix, inclusion: the two :class:`Material` values.

    Attributes:
        op: the :class:`StrainOperator`; N = ``op.n_points`` quadrature points.
        params: (N, 4) material parameters at the quadrature points.
        phase: (N,) 1 in the inclusions, 0 in the matrix.
        master, dofmap: periodic master dof and reduced index (−1: pinned) per dof.
        T: (n_dofs, n_red) periodic condensation matrix, ũ = T a.
        volume: |Ω|; center: x_c.
    """

    def __init__(self, mesh: Mesh, inclusion_tags: Sequence[str] = ("inclusion",),
                 matrix: Material = MATRIX, inclusion: Material = INCLUSION):
        self.mesh = mesh
        self.basis = vector_basis(mesh)
        self.op = StrainOperator(self.basis)
        cell_phase = np.zeros(mesh.n_cells, dtype=np.int64)
        for name in inclusion_tags:
            tag = mesh.tag(name)
            if tag.kind != "cell":
                raise MeshError(f"inclusion tag {name!r} is a {tag.kind} tag; a cell tag is needed", mesh.source)
            cell_phase[tag.indices] = 1
        self.cell_phase = cell_phase
        self.phase = np.repeat(cell_phase, self.op.n_qp)
        self.params = np.where(self.phase[:, None] == 1, inclusion.as_array(), matrix.as_array())
        self.materials = (matrix, inclusion)
        locs = np.asarray(self.basis.doflocs).T
        self.dof_points = locs
        self.component = _dof_components(self.basis)
        master, lo, length = periodic_map(locs, self.component, np.unique(self.basis.get_dofs().flatten()),
                                          source=mesh.source)
        self.master = master
        self.lower, self.length = lo, length
        self.center = lo + length / 2
        pinned = np.flatnonzero(np.all(np.abs(locs - lo) <= 1e-8 * length.max(), axis=1))
        is_master = master == np.arange(len(master))
        is_master[pinned] = False
        red = np.full(len(master), -1)
        red[is_master] = np.arange(int(is_master.sum()))
        self.dofmap = red[master]
        self.n_red = int(is_master.sum())
        rows = np.flatnonzero(self.dofmap >= 0)
        self.T = sp.csr_matrix((np.ones(rows.size), (rows, self.dofmap[rows])), shape=(len(master), self.n_red))
        self.volume = float(self.op.w.sum())
        self.pinned = pinned

    # ------------------------------------------------------------ kinematics
    @property
    def n_dofs(self) -> int:
        return self.op.n_dofs

    @property
    def n_points(self) -> int:
        return self.op.n_points

    def affine(self, strain: np.ndarray) -> np.ndarray:
        """(n_dofs,) Ê (x − x_c) at the dofs. Shapes: strain (3,) or (B, 3) -> (n_dofs,) / (B, n_dofs)."""
        strain = np.asarray(strain, dtype=float)
        E = strain[..., [0, 2, 2, 1]] * np.array([1.0, 0.5, 0.5, 1.0])  # Exx, Exy, Eyx, Eyy
        rel = self.dof_points - self.center
        comp = self.component
        ux = E[..., 0:1] * rel[:, 0] + E[..., 1:2] * rel[:, 1]
        uy = E[..., 2:3] * rel[:, 0] + E[..., 3:4] * rel[:, 1]
        return np.where(comp == 0, ux, uy)

    def equilibrium_residual(self, sigma: np.ndarray) -> np.ndarray:
        """T^T Σ_ip B^T σ w: the discrete periodic equilibrium residual of a stress
        field at the quadrature points. Shapes: (N, 3) -> (n_red,), (N, 3, k) -> (n_red, k)."""
        return self.op.force(sigma, self.dofmap, self.n_red)

    def homogenise(self, sigma: np.ndarray) -> np.ndarray:
        """σ̂ = (1/|Ω|) Σ_ip σ w. Shapes: (N, 3) -> (3,)."""
        return np.einsum("n,n...->...", self.op.w, sigma) / self.volume

    # ------------------------------------------------------------ solve
    def solve(self, strain: Sequence[float], a0: np.ndarray | None = None, rtol: float = 1e-10,
              atol: float = 1e-12, maxiter: int = 25, tangent: bool = True) -> RVESolution:
        """Newton solve of the micro problem for the macro strain ε̂ (3,).

        Converged when ‖R‖ ≤ max(rtol ‖R_0‖, atol · σ_scale · √|Ω|) with R the
        reduced residual of the affine guess (or ``a0``) and σ_scale the
        matrix bulk modulus times ‖ε̂‖. Raises :class:`GraphfemError` after
        ``maxiter`` iterations.
        """
        strain = np.asarray(strain, dtype=float).reshape(3)
        eps0 = np.broadcast_to(strain, (self.n_points, 3))
        a = np.zeros(self.n_red) if a0 is None else np.array(a0, dtype=float)
        scale = self.materials[0].K * max(float(np.abs(strain).max()), 1e-12) * np.sqrt(self.volume)
        residuals: list[float] = []
        it = 0
        while True:
            eps = eps0 + self.op.strain(self.T @ a)
            sig, C = stress_tangent(eps, self.params)
            R = self.equilibrium_residual(sig)
            residuals.append(float(np.linalg.norm(R)))
            if residuals[-1] <= max(rtol * residuals[0], atol * scale):
                break
            if it >= maxiter:
                raise GraphfemError(f"RVE Newton did not converge in {maxiter} iterations for strain "
                                    f"{strain.tolist()}: residual {residuals[-1]:.3e} (initial {residuals[0]:.3e})",
                                    self.mesh.source)
            Kred = self.op.stiffness(C, self.dofmap, self.n_red)
            a = a - spl.spsolve(Kred.tocsc(), R)
            it += 1
        return self.solution_of(strain, a, tangent, residuals, it)

    def solution_of(self, strain: Sequence[float], a: np.ndarray, tangent: bool = True,
                    residuals: Sequence[float] = (), iterations: int = 0) -> RVESolution:
        """The :class:`RVESolution` of the reduced fluctuation ``a`` (n_red,) at the macro strain ε̂ (3,):
        ε = ε̂ + B T a, σ = σ(ε), σ̂ and (with ``tangent``) Ĉ, with no solve. A stored
        converged state (a data set's fluctuation dofs, see :meth:`reduced`) gives back its
        solve's stresses exactly."""
        strain = np.asarray(strain, dtype=float).reshape(3)
        fluct = self.T @ a
        eps = np.broadcast_to(strain, (self.n_points, 3)) + self.op.strain(fluct)
        sig, C = stress_tangent(eps, self.params, tangent)
        Chat = self._tangent(C) if tangent else None
        return RVESolution(strain, a, fluct, self.affine(strain) + fluct, eps, sig, self.homogenise(sig), Chat,
                           list(residuals), iterations)

    def reduced(self, fluctuation: np.ndarray) -> np.ndarray:
        """(n_red,) the reduced unknowns a of a periodic fluctuation (n_dofs,) with ũ = T a.

        Raises:
            InputError: ``fluctuation`` has the wrong size, is not periodic or not zero at the pinned corner.
        """
        f = np.asarray(fluctuation, dtype=float).reshape(-1)
        if f.size != self.n_dofs:
            raise InputError(f"a fluctuation of {f.size} dofs for an RVE with {self.n_dofs}", self.mesh.source)
        a = np.zeros(self.n_red)
        free = self.dofmap >= 0
        a[self.dofmap[free]] = f[free]
        if np.abs(self.T @ a - f).max(initial=0.0) > 1e-12 * max(np.abs(f).max(initial=0.0), 1e-300):
            raise InputError("the fluctuation is not periodic with a pinned corner on this RVE", self.mesh.source)
        return a

    def _tangent(self, C: np.ndarray) -> np.ndarray:
        """Ĉ = (Σ w C − L^T K^{-1} L)/|Ω| at the converged state (static condensation)."""
        Kred = self.op.stiffness(C, self.dofmap, self.n_red)
        L = self.op.force(C, self.dofmap, self.n_red)  # (n_red, 3): column j = T^T B^T (w C e_j)
        X = spl.splu(Kred.tocsc()).solve(L)
        avg = np.einsum("n,nij->ij", self.op.w, C)
        return (avg - L.T @ X) / self.volume

    def solve_many(self, strains: np.ndarray, **kwargs) -> list[RVESolution]:
        """Solve for each row of ``strains`` (B, 3)."""
        return [self.solve(s, **kwargs) for s in np.asarray(strains, dtype=float).reshape(-1, 3)]

    # ------------------------------------------------------------ output
    @cached_property
    def node_dofs(self) -> np.ndarray:
        """(n_points, 2) the dof of each component at each mesh node (every node carries one)."""
        from scipy.spatial import cKDTree

        out = np.full((self.mesh.n_points, 2), -1)
        tree = cKDTree(self.mesh.points)
        for c in (0, 1):
            dofs = np.flatnonzero(self.component == c)
            dist, idx = tree.query(self.dof_points[dofs])
            hit = dist <= 1e-10 * float(self.length.max())
            out[idx[hit], c] = dofs[hit]
        if (out < 0).any():
            raise MeshError(f"{int((out < 0).any(axis=1).sum())} mesh node(s) carry no dof of the RVE space",
                            self.mesh.source)
        return out

    def nodal(self, u: np.ndarray) -> np.ndarray:
        """(n_points, 2) the values of a dof vector (n_dofs,) at the mesh nodes."""
        return np.asarray(u)[self.node_dofs]

    @cached_property
    def _projection(self) -> tuple[sp.csr_matrix, Any, np.ndarray]:
        """(Φ (N, n_s), LU of M = Φᵀ W Φ, (n_points,) column of each node) of the scalar space
        (the x-component dofs of the vector basis)."""
        xdofs = np.flatnonzero(self.component == 0)
        column = np.full(self.n_dofs, -1)
        column[xdofs] = np.arange(xdofs.size)
        m, q, _, ne = self.op.Ne.shape
        rows = np.broadcast_to(np.arange(m * q).reshape(m, q, 1), (m, q, ne))
        cols = np.broadcast_to(column[self.op.edofs.T][:, None, :], (m, q, ne))
        keep = cols >= 0
        Phi = sp.csr_matrix((self.op.Ne[:, :, 0, :][keep], (rows[keep], cols[keep])), shape=(m * q, xdofs.size))
        M = (Phi.T @ sp.diags(self.op.w) @ Phi).tocsc()
        return Phi, spl.splu(M), column[self.node_dofs[:, 0]]

    def nodal_stress(self, sigma: np.ndarray) -> np.ndarray:
        """(n_points, 3) the L2(Ω) projection of a quadrature-point stress (N, 3) onto the scalar
        FE space of the RVE, at the mesh nodes: s = M⁻¹ Σ_ip φ(x_ip) σ(x_ip) w_ip. Constants are
        in the space, so the projection keeps σ̂ exactly."""
        Phi, lu, at_nodes = self._projection
        return lu.solve(Phi.T @ (self.op.w[:, None] * np.asarray(sigma, dtype=float)))[at_nodes]

    def fields(self, u: np.ndarray, sigma: np.ndarray, strain: Sequence[float]) -> dict[str, np.ndarray]:
        """The nodal output fields of :class:`RVEProblem` from a total displacement (n_dofs,), a
        quadrature-point stress (N, 3) and the macro strain (3,)."""
        s = self.nodal_stress(sigma)
        return {"displacement": self.nodal(u), "fluctuation": self.nodal(u - self.affine(strain)),
                "sigma_xx": s[:, 0], "sigma_yy": s[:, 1], "sigma_xy": s[:, 2]}

    def cell_average(self, values: np.ndarray) -> np.ndarray:
        """(m, c) quadrature-weighted cell means of point values (N, c)."""
        w = self.op.w.reshape(self.op.n_cells, self.op.n_qp)
        v = values.reshape(self.op.n_cells, self.op.n_qp, -1)
        return np.einsum("mq,mqc->mc", w, v) / w.sum(axis=1)[:, None]

    def write(self, path, u: np.ndarray, sigma: np.ndarray, extra_cell: dict | None = None) -> None:
        """VTU of the RVE: nodal displacement (and fluctuation if given as ``u``), cell-mean
        stress components, von-Mises-like norm and phase."""
        s = self.cell_average(sigma)
        cell = {"sigma_xx": s[:, 0], "sigma_yy": s[:, 1], "sigma_xy": s[:, 2],
                "phase": self.cell_phase.astype(float), **(extra_cell or {})}
        self.mesh.write(path, point_data={"displacement": self.nodal(u)}, cell_data=cell)


# ---------------------------------------------------------------------------- the registered problem
#: the half-width of the box [−a, a]³ the sampler draws macro strains from (the EquiNO paper's)
STRAIN_RANGE = 0.04


def _numbers(raw: Any, count: int, option: Option, form: str) -> np.ndarray:
    """``count`` finite numbers from ``"a,b,..."`` or a sequence; one line naming the flag and ``form`` otherwise."""
    parts = raw.split(",") if isinstance(raw, str) else list(np.ravel(np.asarray(raw, dtype=object)))
    try:
        values = np.array([float(v) for v in parts])
    except (TypeError, ValueError):
        values = np.array([])
    if values.size != count or not np.isfinite(values).all():
        raise OptionValueError(f"{option.cli_flag}: expected {count} finite comma-separated numbers {form}, got {raw!r}")
    return values


def _strain(raw: Any, mesh: Mesh, option: Option) -> np.ndarray:
    """``--strain EXX,EYY,GXY`` (or three numbers) -> (3,) Voigt strain, engineering shear."""
    return _numbers(raw, 3, option, "EXX,EYY,GXY")


def _material(raw: Any, mesh: Mesh, option: Option) -> np.ndarray:
    """``--matrix K,ALPHA,BETA,G`` -> (4,) parameters of a :class:`Material` (K > 0, β > 0, α, G ≥ 0)."""
    values = _numbers(raw, 4, option, "K,ALPHA,BETA,G")
    K, alpha, beta, G = values
    if K <= 0 or beta <= 0 or alpha < 0 or G < 0:
        raise InputError(f"{option.cli_flag}: need K > 0, BETA > 0, ALPHA >= 0 and G >= 0, got {raw!r}")
    return values


def _preset_or_file(geometry: str, resolution: int | None) -> Mesh:
    if geometry in PRESETS:
        return rve_mesh(8 if resolution is None else resolution, geometry)
    if not Path(geometry).is_file():
        from .geometries import check_geometry

        check_geometry(geometry, tuple(PRESETS) + ("a mesh file",), "rve")
    if resolution is not None:
        raise InputError("rve: --resolution sizes the presets; a mesh file has its own")
    from graphfem.meshes import read

    return read(geometry)


@register_problem
class RVEProblem(Problem):
    """The periodic RVE homogenisation problem of this module as a registered problem.

    Options: the macro strain ε̂ (required), the cell tag(s) of the inclusions,
    and the two materials. Outputs at the mesh nodes: the total displacement
    u = Ê (x − x_c) + ũ, the periodic fluctuation ũ, and the stress components
    as the L2 projection of the quadrature-point stress onto the scalar FE
    space (:meth:`RVE.nodal_stress`). Data sets also keep the fluctuation's
    dofs (:attr:`stored_dofs`), from which :meth:`RVE.solution_of` gives back the
    quadrature-point stresses, σ̂ and Ĉ of every snapshot exactly.

    :meth:`sample`: one mesh per geometry (a preset of :data:`PRESETS` on an
    n × n mesh, n = ``resolution``, default 8, or a mesh file), the same for
    every sample, and a uniform random macro strain in [−0.04, 0.04]³.

    Units: those of the default materials, MPa for stresses, and the mesh's
    length unit (taken as mm) for displacements.
    """

    name = "rve"
    summary = "periodic RVE homogenisation (plane strain, nonlinear elastic matrix, elastic inclusions)"
    fields = {"displacement": "mm", "fluctuation": "mm", "sigma_xx": "MPa", "sigma_yy": "MPa", "sigma_xy": "MPa"}
    vector_fields = ("displacement", "fluctuation")
    dims = (2,)
    #: the ``Solution.dofs`` entries data sets keep (under ``dofs/``): the FE fluctuation, all S2 dofs
    stored_dofs = ("fluctuation",)
    options = (
        Option("strain", "vector", None, "Macro strain EXX,EYY,GXY (engineering shear gamma_xy = 2 eps_xy).",
               required=True, parse=_strain),
        Option("inclusion_tag", "tags", ("inclusion",), "Cell tag of the inclusions (repeatable; default "
               "inclusion)."),
        Option("matrix", "vector", tuple(MATRIX.as_array().tolist()), "Matrix law K,ALPHA,BETA,G (default "
               "4780,50,0.06,0).", parse=_material),
        Option("inclusion", "vector", tuple(INCLUSION.as_array().tolist()), "Inclusion law K,ALPHA,BETA,G (default "
               "43450,0,1,29920).", parse=_material),
        Option("rtol", "number", 1e-12, "Newton tolerance relative to the initial residual (default 1e-12).",
               role="setting"),
    )

    def solve(self, mesh: Mesh, strain: Sequence[float], inclusion_tag: Sequence[str] = ("inclusion",),
              matrix: Sequence[float] = MATRIX.as_array(), inclusion: Sequence[float] = INCLUSION.as_array(),
              rtol: float = 1e-12) -> Solution:
        """The RVE Newton solve; the :class:`Solution` has ``space`` the :class:`RVE` (its mesh and S2
        basis), ``dofs`` ``fluctuation`` and ``displacement`` (n_dofs,), the nodal ``fields`` and
        ``info`` with ``stress`` σ̂ (3,), ``tangent`` Ĉ (3, 3), Newton ``iterations`` and ``residuals``."""
        start = time.perf_counter()
        cell = RVE(mesh, tuple(inclusion_tag), Material(*matrix), Material(*inclusion))
        sol = cell.solve(strain, rtol=rtol)
        info = {"stress": sol.stress, "tangent": sol.tangent, "iterations": sol.iterations,
                "residuals": sol.residuals, "total_s": time.perf_counter() - start}
        return Solution(cell, {"fluctuation": sol.fluctuation, "displacement": sol.u},
                        cell.fields(sol.u, sol.sigma, sol.strain), dict(self.fields), info)

    def report(self, solution: Solution) -> list[str]:
        i = solution.info
        s = ", ".join(f"{v:.6g}" for v in i["stress"])
        return [f"Newton: {i['iterations']} iterations, residual {i['residuals'][-1]:.2e}; "
                f"homogenised stress (s_xx, s_yy, s_xy) = ({s}) MPa"]

    def sample(self, rng: np.random.Generator, geometry: str | None = None,
               resolution: int | None = None) -> tuple[Mesh, dict[str, Any]]:
        mesh = _preset_or_file(geometry or "disc", resolution)
        return mesh, {"strain": rng.uniform(-STRAIN_RANGE, STRAIN_RANGE, 3).tolist()}


def lhs_strains(n: int, amplitude: float = 0.04, seed: int = 0) -> np.ndarray:
    """(n, 3) Latin-hypercube macro strains in [−amplitude, amplitude]³."""
    rng = np.random.default_rng(seed)
    cut = (np.arange(n)[:, None] + rng.random((n, 3))) / n
    for j in range(3):
        cut[:, j] = cut[rng.permutation(n), j]
    return amplitude * (2 * cut - 1)


def radial_strains(n: int, amplitude: float = 0.04, seed: int = 0) -> np.ndarray:
    """(n, 3) macro strains in the box [−a, a]³ stratified in magnitude and direction: a Latin
    hypercube (u₁, u₂, u₃) in [0, 1)³ mapped to ε̂ = u₁ a d / ‖d‖_∞, with d = (√(1 − z²) cos φ,
    √(1 − z²) sin φ, z), z = 2u₂ − 1, φ = 2π u₃ a uniform direction. Along every ray the strains
    are uniform from 0 to the box boundary, so there are as many strains within a quarter of
    the way as in the last quarter, where the box's Latin hypercube (:func:`lhs_strains`) has
    1/64 of its points in the cube of half-width a/4."""
    rng = np.random.default_rng(seed)
    cut = (np.arange(n)[:, None] + rng.random((n, 3))) / n
    for j in range(3):
        cut[:, j] = cut[rng.permutation(n), j]
    z, phi = 2 * cut[:, 1] - 1, 2 * np.pi * cut[:, 2]
    rho = np.sqrt(1 - z ** 2)
    d = np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)
    return amplitude * cut[:, :1] * d / np.abs(d).max(axis=1, keepdims=True)


def timed_solves(rve: RVE, strains: np.ndarray, **kwargs) -> tuple[list[RVESolution], float]:
    """The solves of :meth:`RVE.solve_many` and their wall time in seconds."""
    start = time.perf_counter()
    sols = rve.solve_many(strains, **kwargs)
    return sols, time.perf_counter() - start


__all__ = ["INCLUSION", "MATRIX", "PRESETS", "RVE", "STRAIN_RANGE", "Inclusion", "Material", "RVEProblem",
           "RVESolution", "StrainOperator",
           "deviator", "energy_density", "lhs_strains", "periodic_map", "radial_strains", "rve_mesh", "stress", "stress_tangent",
           "vector_basis"]
