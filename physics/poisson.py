"""Poisson / diffusion: −∇·(κ ∇u) = f with Dirichlet, Neumann and Robin conditions."""
from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp

from graphfem.meshes import FESpace, Mesh
from graphfem.meshes.errors import InputError

from .coefficients import Scalar, at_points, at_quadrature, constant, guess_dofs, is_constant, scalar_node_dofs
from .linear_solvers import solve_linear, solver_option
from .problem import (Features, NoLaw, Option, Problem, Solution, Superposition, Transformed, moved_mesh,
                      register_problem)


def make_space(mesh: Mesh | FESpace, order: int | None = None, vector: bool = False) -> FESpace:
    """``mesh`` as a space: an :class:`FESpace` is used as it is (so repeated
    solves reuse its cached matrices), a :class:`Mesh` gets a new one."""
    if isinstance(mesh, FESpace):
        if (order is not None and order != mesh.order) or mesh.vector != vector:
            raise InputError(f"the given space is {mesh!r}; asked for P{order}{' vector' if vector else ''}")
        return mesh
    return FESpace(mesh, order=order, vector=vector)


def facet_basis(space: FESpace, tag: str, vector: bool = False):
    """The scikit-fem ``FacetBasis`` on the facets of ``tag`` (which must be a facet tag)."""
    import skfem

    kind = space.mesh.tag(tag).kind
    if kind != "facet":
        raise InputError(f"boundary condition on {kind} tag {tag!r}: Neumann, Robin and traction conditions "
                         "need a facet tag", space.mesh.source)
    element = space.basis.elem if vector else space.scalar_basis.elem
    # the facet rule integrates products of two order-p functions with one degree to spare
    return skfem.FacetBasis(space.skfem_mesh, element, facets=space.facets_of(tag),
                            intorder=2 * space.order + 1)


def diffusion_matrix(space: FESpace, kappa: Scalar) -> sp.csr_matrix:
    """K_ij = ∫ κ ∇φ_i · ∇φ_j dx (n_dofs, n_dofs); a constant κ reuses the space's cached stiffness."""
    from skfem import BilinearForm
    from skfem.helpers import dot, grad

    if is_constant(kappa):
        k = constant(kappa, "kappa")
        if k <= 0:
            raise InputError(f"kappa must be positive, got {k}")
        return space.stiffness() * k if k != 1.0 else space.stiffness()
    kq = at_quadrature(kappa, space, space.basis, "kappa")
    if kq.min() <= 0:
        raise InputError(f"kappa must be positive, its minimum is {kq.min():g}")
    return BilinearForm(lambda u, v, w: w["k"] * dot(grad(u), grad(v))).assemble(space.basis, k=kq).tocsr()


def load_vector(space: FESpace, f: Scalar) -> np.ndarray:
    """b_i = ∫ f φ_i dx (n_dofs,)."""
    from skfem import LinearForm

    if is_constant(f):
        value = constant(f, "f")
        if value == 0.0:
            return np.zeros(space.n_dofs)
        return LinearForm(lambda v, w: v).assemble(space.basis) * value
    fq = at_quadrature(f, space, space.basis, "f")
    return LinearForm(lambda v, w: w["f"] * v).assemble(space.basis, f=fq)


def boundary_terms(space: FESpace, neumann: Mapping[str, Scalar] | None,
                   robin: Mapping[str, tuple[Scalar, Scalar]] | None) -> tuple[sp.csr_matrix | None, np.ndarray]:
    """Natural boundary terms: R_ij = Σ_Robin ∫ α φ_i φ_j ds and
    r_i = Σ_Neumann ∫ g φ_i ds + Σ_Robin ∫ g φ_i ds. R is ``None`` without Robin tags."""
    from skfem import BilinearForm, LinearForm

    r = np.zeros(space.n_dofs)
    R = None
    flux = LinearForm(lambda v, w: w["g"] * v)
    for tag, g in (neumann or {}).items():
        fb = facet_basis(space, tag)
        r += flux.assemble(fb, g=at_quadrature(g, space, fb, f"Neumann flux on {tag!r}"))
    for tag, condition in (robin or {}).items():
        try:
            alpha, g = condition
        except (TypeError, ValueError):
            raise InputError(f"Robin condition on {tag!r} must be a pair (alpha, g)") from None
        fb = facet_basis(space, tag)
        aq = at_quadrature(alpha, space, fb, f"Robin alpha on {tag!r}")
        if np.min(aq) < 0:
            raise InputError(f"Robin alpha on {tag!r} must be non-negative")
        term = BilinearForm(lambda u, v, w: w["a"] * u * v).assemble(fb, a=aq)
        R = term if R is None else R + term
        r += flux.assemble(fb, g=at_quadrature(g, space, fb, f"Robin g on {tag!r}"))
    return (None if R is None else R.tocsr()), r


def dirichlet_dofs(space: FESpace, dirichlet: Mapping[str, Scalar] | None) -> tuple[np.ndarray, np.ndarray]:
    """Fixed dofs and their values, (k,) and (k,): ``u = value`` on each tag
    (a constant or a callable of the dof locations x (dim, k)); where tags
    overlap, the later one wins."""
    if not dirichlet:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    values = np.zeros(space.n_dofs)
    fixed = np.zeros(space.n_dofs, dtype=bool)
    for tag, value in dirichlet.items():
        dofs = space.dofs_on(tag)
        x = space.dof_coordinates[dofs].T
        values[dofs] = at_points(value, x, f"Dirichlet value on {tag!r}")
        fixed[dofs] = True
    D = np.flatnonzero(fixed)
    return D, values[D]


def boundary_conditions(space: FESpace, dirichlet, neumann, robin, allow_pure_neumann: bool = False):
    """Dirichlet dofs/values with the default u = 0 on the whole boundary
    when no condition at all is given; a pure Neumann problem is refused
    unless ``allow_pure_neumann``."""
    if not dirichlet and not neumann and not robin:
        D = space.boundary_dofs()
        return D, np.zeros(D.size)
    if not dirichlet and not robin and not allow_pure_neumann:
        raise InputError("only Neumann conditions: the solution is not unique; add a Dirichlet or Robin "
                         "condition", space.mesh.source)
    return dirichlet_dofs(space, dirichlet)


def nodal_values(space: FESpace, x: np.ndarray) -> np.ndarray:
    """Values of a scalar dof vector at the mesh nodes (n_points,)."""
    return x[scalar_node_dofs(space)]


def poisson(mesh: Mesh | FESpace, kappa: Scalar = 1.0, f: Scalar = 1.0, *,
            dirichlet: Mapping[str, Scalar] | None = None, neumann: Mapping[str, Scalar] | None = None,
            robin: Mapping[str, tuple[Scalar, Scalar]] | None = None, order: int | None = None,
            solver: str = "auto", rtol: float = 1e-10, unit: str = "1",
            initial: np.ndarray | None = None) -> Solution:
    r"""Solve −∇·(κ ∇u) = f in Ω with conditions on tagged boundaries.

    Weak form, with V the Lagrange space of ``order`` and Γ_D the Dirichlet facets:
    find u ∈ V, u = u_D on Γ_D, such that for all v ∈ V with v = 0 on Γ_D

        ∫ κ ∇u·∇v dx + Σ_R ∫ α u v ds = ∫ f v dx + Σ_N ∫ g v ds + Σ_R ∫ g v ds.

    Args:
        mesh: a :class:`Mesh`, or an :class:`FESpace` to reuse (its cached
            stiffness is used when κ is constant).
        kappa: conductivity κ > 0: number, callable κ(x) with x (dim, ...),
            point field (n_points,) or cell field (n_cells,).
        f: source, same forms as κ.
        dirichlet: tag -> u_D, a number or a callable of x (dim, k).
        neumann: tag -> flux g = κ ∂u/∂n (outward normal), number/callable/field.
        robin: tag -> (α, g) for κ ∂u/∂n + α u = g.
        order: 1 or 2; default the mesh's order (P1 on linear, P2 on quadratic cells).
        solver: ``"auto"``, ``"direct"``, ``"amg"`` or ``"cg"`` (see
            :mod:`graphfem.physics.linear_solvers`).
        rtol: relative residual of the iterative solvers.
        unit: unit of u, stored in ``Solution.units``.
        initial: (n_dofs,) the iterative solvers' starting guess (a surrogate's
            prediction, :meth:`Problem.refine`); they still stop at ``rtol``.

    With no condition at all, u = 0 on the whole boundary; otherwise the
    boundary left without a condition is insulated (κ ∂u/∂n = 0).

    Returns:
        :class:`Solution` with ``dofs["u"]`` (n_dofs,), ``fields["u"]``
        (n_points,) at the mesh nodes, ``units = {"u": unit}`` and ``info``
        (linear solver method, iterations, residual, timings).

    Raises:
        MeshError: an unknown tag (the message lists the known tags).
        InputError: non-finite or non-positive coefficients, a non-facet tag
            for a natural condition, a pure Neumann problem.
    """
    start = time.perf_counter()
    space = make_space(mesh, order)
    A = diffusion_matrix(space, kappa)
    b = load_vector(space, f)
    R, r = boundary_terms(space, neumann, robin)
    if R is not None:
        A = A + R
    if neumann or robin:
        b = b + r
    D, values = boundary_conditions(space, dirichlet, neumann, robin)
    assembled = time.perf_counter()
    u, info = solve_linear(A, b, D, values, method=solver, rtol=rtol, dim=space.mesh.dim, x0=initial)
    info["assemble_s"] = assembled - start
    info["total_s"] = time.perf_counter() - start
    return Solution(space, {"u": u}, {"u": nodal_values(space, u)}, {"u": unit}, info)


def iterative_solver(method: str) -> str:
    """The linear solver a refinement runs: ``amg`` for ``auto``; ``direct`` is refused
    (a factorisation has no use for a starting guess)."""
    if method == "direct":
        raise InputError("--refine starts an iterative solver from the prediction; --solver direct has no use "
                         "for it (take --solver iterative, amg or cg)")
    return "amg" if method == "auto" else method


def _robin_pairs(raw, mesh: Mesh, option) -> dict:
    """``TAG=ALPHA,G`` pairs (or {tag: (alpha, g)}) -> {tag: (alpha, g)}."""
    from .options import tag_values

    return {t: (float(v[0]), float(v[1])) for t, v in tag_values(raw, option.cli_flag, mesh, components=2).items()}


ORDER = Option("order", "integer", None, "Polynomial order 1 or 2 (default: P1 on linear, P2 on quadratic cells).",
               role="setting", choices=("1", "2"))
SOLVER = solver_option()


def essential_nodes(mesh: Mesh, params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(n, 1) mask and values of u at the mesh nodes that :func:`boundary_conditions` fixes for parsed
    ``params`` (``order``, ``dirichlet``, ``neumann``, ``robin``; u = 0 on the whole boundary when no
    condition is given), as the solver imposes them."""
    space = make_space(mesh, params.get("order"))
    D, values = boundary_conditions(space, params.get("dirichlet"), params.get("neumann"), params.get("robin"))
    fixed = np.zeros(space.n_dofs, dtype=bool)
    value = np.zeros(space.n_dofs)
    fixed[D], value[D] = True, values
    nodes = scalar_node_dofs(space)
    return fixed[nodes][:, None], value[nodes][:, None]


@register_problem
class Poisson(Problem):
    """−∇·(κ∇u) = f with Dirichlet, Neumann and Robin conditions by tag; :func:`poisson`.

    Data sets (:meth:`sample`): random 2D domains of
    :func:`graphfem.physics.geometries.random_domain`, two materials, a random
    source and Dirichlet values on tagged boundary parts
    (:func:`graphfem.physics.poisson_encoding.sample_poisson`). Model inputs
    (:meth:`features`): the dimensionless encoding of
    :mod:`graphfem.physics.poisson_encoding`.
    """

    name = "poisson"
    fields = {"u": "1"}
    resolution_range = True
    summary = "steady diffusion -div(kappa grad u) = f"
    options = (
        Option("kappa", "field", 1.0, "Conductivity: number, mesh field or expression in x, y, z (default 1)."),
        Option("source", "field", 1.0, "Source f: number, mesh field or expression (default 1)."),
        Option("dirichlet", "tag-values", None, "TAG=VALUE: u = VALUE on the tag (repeatable)."),
        Option("neumann", "tag-values", None, "TAG=VALUE: flux kappa du/dn = VALUE on the tag."),
        Option("robin", "tag-vectors", None, "TAG=ALPHA,G: kappa du/dn + ALPHA u = G on the tag.", components=2,
               parse=_robin_pairs),
        ORDER,
        SOLVER,
    )
    geometries = ("mixed", "deformed", "perforated", "polygon", "lshape")
    dimensionless = True

    def kwargs(self, params):
        out = super().kwargs(params)
        out["f"] = out.pop("source", 1.0)
        return out

    def solve(self, mesh: Mesh | FESpace, **params) -> Solution:
        return poisson(mesh, **params)

    def refine(self, mesh: Mesh, raw, guess) -> Solution:
        """Preconditioned CG (AMG unless ``--solver cg``) from the guess, to the usual tolerance."""
        kwargs = self.kwargs(self.parse(mesh, raw))
        kwargs["solver"] = iterative_solver(kwargs.get("solver", "auto"))
        space = make_space(mesh, kwargs.pop("order", None))
        return poisson(space, initial=guess_dofs(space, guess["u"]), **kwargs)

    def essential(self, mesh: Mesh, raw):
        """The Dirichlet nodes and values of :func:`boundary_conditions` (u = 0 on the whole
        boundary when no condition is given): :func:`essential_nodes`."""
        return essential_nodes(mesh, self.parse(mesh, raw))

    def scaled(self, mesh: Mesh, raw, factor: float) -> Transformed:
        r"""x ↦ c x with the same u: ∇ scales by 1/c, so −∇·(κ∇u) = f needs f/c², a flux
        κ ∂u/∂n = g needs g/c and κ ∂u/∂n + α u = g needs (α/c, g/c); κ and the Dirichlet
        values are unchanged, and so is u."""
        mesh, options = self.portable(mesh, raw)
        c = float(factor)
        options["source"] = options.get("source", 1.0) / c ** 2
        if options.get("neumann"):
            options["neumann"] = {t: v / c for t, v in options["neumann"].items()}
        if options.get("robin"):
            options["robin"] = {t: (a / c, g / c) for t, (a, g) in options["robin"].items()}
        return Transformed(moved_mesh(mesh, c * mesh.points), options)

    def superposed(self, mesh: Mesh, raw) -> Superposition:
        r"""For a fixed κ the problem is linear in its data (g on the Dirichlet tags, f, the
        Neumann flux h, the Robin g): u = u(g, 0, 0) + u(0, f, h), both parts on the same
        Dirichlet set (and Robin α). Without a Dirichlet tag (u = 0 on the whole boundary) the
        first part is zero: :class:`NoLaw`."""
        mesh, options = self.portable(mesh, raw)
        dirichlet = options.get("dirichlet")
        if not dirichlet:
            raise NoLaw("no --dirichlet: u = 0 on the whole boundary, so there is one data part only")
        boundary = {k: v for k, v in options.items() if k != "neumann"}
        boundary["source"] = 0.0
        if options.get("robin"):
            boundary["robin"] = {t: (a, 0.0) for t, (a, _) in options["robin"].items()}
        interior = {**options, "dirichlet": {t: 0.0 for t in dirichlet}}
        return Superposition(mesh, options, [boundary, interior], ("u",), ["dirichlet values", "source and fluxes"])

    def rotated(self, mesh: Mesh, raw, rotation: np.ndarray) -> Transformed:
        """x ↦ R x: κ and f are scalar fields carried with the nodes; u is unchanged."""
        mesh, options = self.portable(mesh, raw)
        return Transformed(moved_mesh(mesh, mesh.points @ np.asarray(rotation).T), options)

    def sample(self, rng: np.random.Generator, geometry: str | None = None,
               resolution: int | tuple[int, int] | None = None):
        """A random domain (:func:`graphfem.physics.geometries.random_domain`) with random κ, f and
        Dirichlet values; ``resolution``: mesh size h = 1/resolution of the domain's largest side
        (default: h uniform in [0.055, 0.1]), e.g. to cover finer meshes than the default data, or a
        range ``(low, high)``: resolution log-uniform in [low, high] per sample, so that one data set
        spans mesh sizes h from 1/high to 1/low."""
        from .geometries import drawn_mesh_size, random_domain
        from .poisson_encoding import sample_poisson

        mesh = random_domain(self.geometry(geometry), rng, drawn_mesh_size(rng, resolution))
        case = sample_poisson(mesh, rng)
        return mesh, {"kappa": case.kappa, "source": case.source, "dirichlet": dict(case.dirichlet), "order": 1}

    def features(self, mesh: Mesh, params) -> Features:
        from .poisson_encoding import POISSON_FEATURES, poisson_case, poisson_features, poisson_parts

        if params.get("robin"):
            raise InputError("--robin: the surrogate was trained with Dirichlet and zero-flux boundaries only",
                             mesh.source)
        case = poisson_case(mesh, kappa=params.get("kappa", 1.0), source=params.get("source", 1.0),
                            dirichlet=params.get("dirichlet"), neumann=params.get("neumann"))
        x, scale, mask, values = poisson_features(mesh, case)
        return Features(x, list(POISSON_FEATURES), np.array([scale]), mask[:, None], values[:, None],
                        parts=poisson_parts(mesh, case))
