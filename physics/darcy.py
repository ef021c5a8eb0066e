"""Darcy flow −∇·(a∇u) = f, its fluxes, and two-phase random permeabilities.

The solve is :func:`graphfem.physics.poisson` with κ = a (a number, a
callable a(x), a point field or a cell field: a piecewise-constant two-phase
medium is a cell field). What Darcy adds is the flux q = −a∇u:

* :func:`flux_residuals`: the variationally consistent nodal fluxes
  R_i = ∫_ω a∇u_h·∇φ_i − f φ_i dx over a set of cells ω. Summed over the
  nodes of a boundary Γ of ω they give ∫_Γ a ∂u/∂n ds, with the locally
  conservative property of the FE solution: at every free node the
  residuals of the two sides of an interface cancel exactly.
* :func:`boundary_flux` and :func:`interface_flux`: net flux of q out of the
  domain (through a tag) and across an internal interface, by that residual
  method or by integrating the element gradients (``method="gradient"``,
  whose two one-sided values differ by O(h) on P1).

Two-phase media (DGNO's Darcy benchmark): :func:`gaussian_random_field`
samples a zero-mean Gaussian field with covariance (−Δ + τ²)^(−α) on a
periodic vertex grid by FFT, and :func:`two_phase_coefficient` thresholds it
at 0 into a ∈ {a_low, a_high} and carries it to the cells of a mesh.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from graphfem.meshes import FESpace, Mesh
from graphfem.meshes.errors import InputError

from .coefficients import Scalar, at_quadrature
from .poisson import ORDER, SOLVER, essential_nodes, poisson
from .problem import Option, Problem, Solution, register_problem


def darcy(mesh: Mesh | FESpace, a: Scalar = 1.0, f: Scalar = 10.0, *,
          dirichlet: Mapping[str, Scalar] | None = None, neumann: Mapping[str, Scalar] | None = None,
          order: int | None = None, solver: str = "auto", rtol: float = 1e-10, unit: str = "1") -> Solution:
    """Solve −∇·(a∇u) = f with u = u_D on Dirichlet tags and a ∂u/∂n = g on Neumann tags.

    Args:
        mesh: a :class:`Mesh` or a scalar :class:`FESpace` to reuse.
        a: permeability a > 0: number, callable a(x) with x (dim, ...), point
            field (n_points,) or cell field (n_cells,) (piecewise constant).
        f: source, same forms as ``a`` (default 10, the two-phase benchmark's).
        dirichlet: tag -> u_D (number or callable of x (dim, k)); with no
            condition at all u = 0 on the whole boundary.
        neumann: tag -> flux g = a ∂u/∂n (outward normal).
        order, solver, rtol, unit: as in :func:`~graphfem.physics.poisson.poisson`.

    Returns:
        :class:`Solution` with ``fields["u"]`` (n_points,) and, in ``info``,
        the linear solver's facts and ``outflow``: the net flux of
        q = −a∇u out of the whole boundary (equal to ∫f + ∫g by the residual method).
    """
    solution = poisson(mesh, kappa=a, f=f, dirichlet=dirichlet, neumann=neumann, order=order, solver=solver,
                       rtol=rtol, unit=unit)
    if not neumann:
        solution.info["outflow"] = boundary_flux(solution, a, f)
    return solution


def flux_residuals(space: FESpace, u: np.ndarray, a: Scalar, f: Scalar,
                   cells: np.ndarray | None = None) -> np.ndarray:
    """Nodal flux residuals R_i = ∫_ω (a∇u·∇φ_i − f φ_i) dx over the cells ω (n_dofs,).

    With u the FE solution, R_i = 0 at free dofs, and for a region ω with
    boundary Γ, Σ_{i on Γ} R_i ≈ ∫_Γ a ∂u/∂n ds (n the outward normal of ω).

    Args:
        space: the scalar space of ``u``.
        u: (n_dofs,) dof vector.
        a, f: coefficient and source as in :func:`darcy`.
        cells: indices of the cells of ω (default: all).
    """
    from skfem import Basis, BilinearForm, LinearForm
    from skfem.helpers import dot, grad

    basis = space.basis
    if cells is not None:
        cells = np.asarray(cells, dtype=np.int64)
        basis = Basis(space.skfem_mesh, space.basis.elem, quadrature=space.basis.quadrature, elements=cells)
    aq = at_quadrature(a, space, basis, "a")
    fq = at_quadrature(f, space, basis, "f")
    K = BilinearForm(lambda p, q, w: w["a"] * dot(grad(p), grad(q))).assemble(basis, a=aq)
    b = LinearForm(lambda q, w: w["f"] * q).assemble(basis, f=fq)
    return K @ u - b


def boundary_flux(solution: Solution, a: Scalar, f: Scalar, tag: str | None = None) -> float:
    """Net flux of q = −a∇u out of the boundary (or through the facet tag
    ``tag``) by the residual method: −Σ_{i on the boundary} R_i.

    Over the whole boundary of a problem without Neumann data this equals
    ∫_Ω f dx to round-off (the discrete conservation law)."""
    space = solution.space
    R = flux_residuals(space, solution.dofs["u"], a, f)
    dofs = space.boundary_dofs() if tag is None else space.dofs_on(tag)
    return float(-R[dofs].sum())


def interface_nodes(space: FESpace, inside: np.ndarray) -> np.ndarray:
    """Dofs shared by the cells ``inside`` (bool (n_cells,)) and the other cells, minus boundary dofs."""
    dofs = space.basis.element_dofs
    shared = np.intersect1d(np.unique(dofs[:, inside]), np.unique(dofs[:, ~inside]))
    return np.setdiff1d(shared, space.boundary_dofs())


def interface_flux(solution: Solution, a: Scalar, f: Scalar, inside: np.ndarray,
                   method: str = "residual") -> tuple[float, float]:
    """Net flux of q = −a∇u across the interface Γ from the region ω = ``inside``
    to the rest, computed once from each side: (Q_ω, Q_rest).

    ``"residual"``: Q_ω = −Σ_{i∈Γ} R^ω_i and Q_rest = Σ_{i∈Γ} R^rest_i, the nodal
    flux residuals of each side (:func:`flux_residuals`) over Γ's free nodes;
    they agree to round-off (local conservation of the FE solution).
    ``"gradient"``: Q_s = ∫_Γ −a_s ∇u_s·n_ω ds with the element gradients of
    side s; they agree up to the O(h) jump of the P1 normal flux.

    Γ must not end on a Neumann boundary for the residual method (its end
    nodes on the Dirichlet boundary are left out, where they carry O(h)·q).

    Args:
        solution: a :func:`darcy` solution.
        a, f: its permeability and source.
        inside: (n_cells,) bool, the cells of ω.
        method: ``"residual"`` or ``"gradient"``.
    """
    space = solution.space
    inside = np.asarray(inside, dtype=bool)
    if inside.shape != (space.mesh.n_cells,) or inside.all() or not inside.any():
        raise InputError(f"inside must be a bool mask of {space.mesh.n_cells} cells with both values")
    u = solution.dofs["u"]
    if method == "residual":
        gamma = interface_nodes(space, inside)
        r_in = flux_residuals(space, u, a, f, np.flatnonzero(inside))
        r_out = flux_residuals(space, u, a, f, np.flatnonzero(~inside))
        return float(-r_in[gamma].sum()), float(r_out[gamma].sum())
    if method != "gradient":
        raise InputError(f"unknown flux method {method!r}; choose residual or gradient")
    return _gradient_interface_flux(space, u, a, inside)


def _gradient_interface_flux(space: FESpace, u: np.ndarray, a: Scalar, inside: np.ndarray) -> tuple[float, float]:
    from skfem import InteriorFacetBasis

    m = space.skfem_mesh
    f2t = m.f2t
    interior = f2t[1] >= 0
    facets = np.flatnonzero(interior & (inside[f2t[0]] != inside[np.where(interior, f2t[1], 0)]))
    if facets.size == 0:
        raise InputError("the region has no interior interface")
    flux = {True: 0.0, False: 0.0}
    for side in (0, 1):
        fb = InteriorFacetBasis(m, space.basis.elem, facets=facets, side=side, intorder=2 * space.order)
        cells = f2t[side, facets]
        grad_u = np.asarray(fb.interpolate(u).grad)  # (dim, nf, nq)
        normal = np.asarray(fb.normals)
        centre = m.p[:, m.t[:, cells]].mean(axis=1)
        mid = np.asarray(fb.global_coordinates()).mean(axis=2)
        outward = np.sign(((mid - centre) * normal.mean(axis=2)).sum(axis=0))  # +1 where n points out of the cell
        aq = at_quadrature(a, space, fb, "a")
        aq = np.broadcast_to(aq, grad_u.shape[1:])
        # q·n_cell integrated per facet, then oriented out of ω
        qn = -(aq * (grad_u * normal).sum(axis=0) * outward[:, None] * fb.dx).sum(axis=1)
        is_in = inside[cells]
        flux[True] += float(qn[is_in].sum())
        flux[False] += float(-qn[~is_in].sum())
    return flux[True], flux[False]


def darcy_velocity(solution: Solution, a: Scalar) -> np.ndarray:
    """Cell averages of the Darcy flux q = −a∇u, (n_cells, dim)."""
    space = solution.space
    basis = space.basis
    grad_u = np.asarray(basis.interpolate(solution.dofs["u"]).grad)  # (dim, m, nq)
    aq = np.broadcast_to(at_quadrature(a, space, basis, "a"), grad_u.shape[1:])
    w = np.asarray(basis.dx)
    return (-(aq * grad_u * w).sum(axis=2) / w.sum(axis=1)).T


# ------------------------------------------------------------------ random two-phase media
def gaussian_random_field(rng: np.random.Generator, shape: tuple[int, ...], alpha: float = 2.0,
                          tau: float = 3.0, length: float = 1.0, k_max: int | None = None) -> np.ndarray:
    """A zero-mean Gaussian random field on a periodic grid, by FFT.

    The covariance operator is C = (−Δ + τ²)^(−α) on the periodic box of side
    ``length``: white noise ξ on the grid is filtered in Fourier space by
    sqrt(λ_k), λ_k = (4π²|k|²/L² + τ²)^(−α), and the mean (k = 0) mode is
    removed, so that thresholding at 0 gives two phases of similar volume.
    Larger α or smaller τ give smoother, larger inclusions. The values are
    scaled to unit standard deviation over the grid.

    Args:
        rng: the random generator (the field is a deterministic function of its state).
        shape: grid points per axis, e.g. (29, 29).
        alpha, tau: smoothness and inverse length scale (> 0).
        length: side of the periodic box.
        k_max: if given, the field is band-limited: every mode with a wavenumber index
            |k_i| > k_max on some axis is removed (k_max < n/(2s) keeps the field resolved on
            every s-fold sub-lattice).

    Returns:
        (*shape,) float64 values.
    """
    if alpha <= 0 or tau <= 0 or length <= 0:
        raise InputError(f"alpha, tau and length must be positive, got {alpha}, {tau}, {length}")
    shape = tuple(int(s) for s in shape)
    if min(shape) < 2:
        raise InputError(f"the grid needs at least 2 points per axis, got {shape}")
    white = rng.standard_normal(shape)
    k2 = np.zeros(shape[:-1] + (shape[-1] // 2 + 1,))
    band = np.ones_like(k2)
    for axis, n in enumerate(shape):
        k = np.fft.rfftfreq(n, 1.0 / n) if axis == len(shape) - 1 else np.fft.fftfreq(n, 1.0 / n)
        k = k.reshape([-1 if i == axis else 1 for i in range(len(shape))])
        k2 = k2 + k ** 2
        if k_max is not None:
            band = band * (np.abs(k) <= k_max)
    spectrum = (4 * np.pi ** 2 * k2 / length ** 2 + tau ** 2) ** (-alpha / 2) * band
    spectrum.flat[0] = 0.0
    axes = list(range(len(shape)))
    field = np.fft.irfftn(np.fft.rfftn(white, axes=axes) * spectrum, s=shape, axes=axes)
    std = field.std()
    return field / std if std > 0 else field


def grid_lookup(values: np.ndarray, points: np.ndarray, lower=(0.0, 0.0), upper=(1.0, 1.0),
                method: str = "nearest") -> np.ndarray:
    """Values of a vertex-grid field at points.

    Args:
        values: (n_0, ..., n_{d-1}) values at the vertices of a uniform grid
            spanning [lower, upper] (both ends included), axis i along x_i.
        points: (k, d) query points inside the box.
        method: ``"nearest"`` (nearest vertex: keeps two-phase values) or ``"linear"``.

    Returns:
        (k,) values.
    """
    from scipy.interpolate import RegularGridInterpolator

    axes = [np.linspace(lo, hi, n) for lo, hi, n in zip(lower, upper, values.shape)]
    return RegularGridInterpolator(axes, values, method=method, bounds_error=False,
                                   fill_value=None)(np.asarray(points, dtype=float))


def two_phase_coefficient(rng: np.random.Generator, mesh: Mesh, grid_points: int = 29,
                          values: tuple[float, float] = (5.0, 10.0), alpha: float = 2.0, tau: float = 3.0,
                          interpolation: str = "nearest") -> tuple[np.ndarray, np.ndarray]:
    """A two-phase permeability from a thresholded Gaussian random field.

    g is drawn by :func:`gaussian_random_field` on a ``grid_points``² vertex
    grid spanning the mesh's bounding box; the phase is a_high where g ≥ 0,
    a_low elsewhere. ``"nearest"`` gives each cell the phase of the grid
    vertex nearest its centroid (DGNO's lookup: the input *is* the grid);
    ``"linear"`` thresholds the bilinear interpolant of g at the centroid.

    Returns:
        (a_cells (n_cells,), a_grid (grid_points, grid_points)) with values in ``values``.
    """
    lo, hi = (float(v) for v in values)
    if not (0 < lo and 0 < hi):
        raise InputError(f"permeabilities must be positive, got {values}")
    if interpolation not in ("nearest", "linear"):
        raise InputError(f"interpolation must be nearest or linear, got {interpolation!r}")
    g = gaussian_random_field(rng, (grid_points,) * mesh.dim, alpha=alpha, tau=tau)
    lower, upper = mesh.bounding_box
    centroids = mesh.points[mesh.corner_cells].mean(axis=1)
    a_grid = np.where(g >= 0, hi, lo)
    if interpolation == "nearest":
        a_cells = grid_lookup(a_grid, centroids, lower, upper, "nearest")
    else:
        a_cells = np.where(grid_lookup(g, centroids, lower, upper, "linear") >= 0, hi, lo)
    return np.asarray(a_cells, dtype=float), a_grid


@register_problem
class Darcy(Problem):
    r"""Darcy flow −∇·(a∇u) = f with the flux q = −a∇u; :func:`darcy`.

    Options: the permeability a, ``--kappa`` like every problem's coefficient
    of −∇·(κ∇u) (``--a``, its earlier name, still reads with a warning, and
    data sets and checkpoints that store ``a`` still load), and the source f
    (numbers, mesh fields (a cell field is a piecewise-constant medium) or
    expressions), Dirichlet values and fluxes a ∂u/∂n by tag (none at all:
    u = 0 on the boundary).

    Data sets (:meth:`sample`): geometry ``"square"`` (default: the unit
    square, 12 to 20 cells a side) or a random domain of
    :func:`graphfem.physics.geometries.random_domain`, with the two-phase
    medium a ∈ {5, 10} of :func:`two_phase_coefficient` as a cell field,
    f = 10 and u = 0 on the boundary (DGNO's Darcy benchmark).
    """

    name = "darcy"
    fields = {"u": "1"}
    summary = "Darcy flow -div(a grad u) = f"
    options = (
        Option("kappa", "field", 1.0, "Permeability a (the kappa of -div(kappa grad u)): number, point/cell field of "
               "the mesh or expression (default 1); --a is its deprecated name.", aliases=("a",)),
        Option("source", "field", 10.0, "Source f: number, mesh field or expression (default 10)."),
        Option("dirichlet", "tag-values", None, "TAG=VALUE: u = VALUE on the tag (repeatable); with no boundary "
               "option u = 0 on the whole boundary."),
        Option("neumann", "tag-values", None, "TAG=VALUE: flux a du/dn = VALUE on the tag."),
        ORDER,
        SOLVER,
    )
    geometries = ("square", "mixed", "deformed", "perforated", "polygon", "lshape")

    def kwargs(self, params):
        out = super().kwargs(params)
        out["f"] = out.pop("source")
        out["a"] = out.pop("kappa", 1.0)
        return out

    def solve(self, mesh: Mesh | FESpace, **params) -> Solution:
        return darcy(mesh, **params)

    def essential(self, mesh: Mesh, raw):
        """The Dirichlet nodes and values the solver imposes (u = 0 on the whole boundary when no
        condition is given): :func:`graphfem.physics.poisson.essential_nodes`."""
        return essential_nodes(mesh, self.parse(mesh, raw))

    def report(self, solution: Solution) -> list[str]:
        """The net outflow (when known) and the linear solver."""
        lines = [f"net outflow of q = -a grad u: {solution.info['outflow']:.6g}"] if "outflow" in solution.info else []
        return lines + super().report(solution)

    def sample(self, rng: np.random.Generator, geometry: str | None = None, resolution: int | None = None):
        """``resolution``: cells a side of the square (``--resolution 28``: the 29 × 29 vertex grid of DGNO)."""
        geometry = self.geometry(geometry)
        if resolution is not None and (geometry != "square" or resolution < 2):
            raise InputError(f"--resolution {resolution}: cells a side (>= 2) of the square geometry only")
        if geometry == "square":
            mesh = Mesh.rectangle(int(resolution) if resolution else int(rng.integers(12, 21)))
        else:
            from .geometries import random_domain

            mesh = random_domain(geometry, rng)
        a, _ = two_phase_coefficient(rng, mesh)
        return mesh, {"kappa": a, "source": 10.0, "order": 1}


__all__ = ["Darcy", "boundary_flux", "darcy", "darcy_velocity", "flux_residuals", "gaussian_random_field",
           "grid_lookup", "interface_flux", "interface_nodes", "two_phase_coefficient"]
