"""Linear elasticity: −∇·σ(u) = b, σ = 2μ ε(u) + λ tr ε(u) I, in 2D (plane stress/strain) and 3D."""
from __future__ import annotations

import time
import warnings
from typing import Any, Iterable, Mapping

import numpy as np

from graphfem.meshes import FESpace, Mesh
from graphfem.meshes.mesh import simplex_measure
from graphfem.meshes.errors import InputError, OptionValueError

from .coefficients import Scalar, Vector, at_points, at_quadrature, guess_dofs, scalar_node_dofs, vector_at_quadrature
from .linear_solvers import LinearSolver, solve_linear
from .poisson import ORDER, SOLVER, facet_basis, make_space
from .problem import (Features, NoLaw, Option, Problem, Solution, Superposition, Transformed, moved_mesh,
                      register_problem)

_AXES = {"x": 0, "y": 1, "z": 2}


def lame(E, nu, dim: int, plane: str) -> tuple:
    """(λ, μ) from Young's modulus and Poisson's ratio; in 2D plane stress
    λ is replaced by λ* = 2λμ / (λ + 2μ) = Eν / (1 − ν²)."""
    mu = E / (2 * (1 + nu))
    lam = E * nu / ((1 + nu) * (1 - 2 * nu))
    if dim == 2 and plane == "stress":
        lam = 2 * lam * mu / (lam + 2 * mu)
    return lam, mu


def rigid_body_modes(space: FESpace) -> np.ndarray:
    """(n_dofs, 3 in 2D | 6 in 3D) translations and rotations on the interleaved
    dofs: the near-null space given to smoothed-aggregation AMG."""
    x = space.dof_coordinates
    dim = space.n_components
    comp = np.arange(space.n_dofs) % dim
    modes = [(comp == c).astype(float) for c in range(dim)]
    for i, j in ((0, 1), (1, 2), (0, 2))[: 1 if dim == 2 else 3]:
        # rotation in the (i, j) plane: u_i = −x_j, u_j = x_i
        modes.append(np.where(comp == i, -x[:, j], 0.0) + np.where(comp == j, x[:, i], 0.0))
    return np.stack(modes, axis=1)


def held_components(fixed, dim: int) -> dict[str, tuple[int, ...]]:
    """{tag: the components held at zero there} from the ``fixed`` argument of
    :func:`elasticity`: a tag or a list of tags (every component), or a mapping
    tag -> component: an index 0..dim−1, axis letters (``"x"``, ``"y"``, ``"z"`` or
    several, ``"xy"``) or ``None`` (every component)."""
    if isinstance(fixed, str):
        fixed = [fixed]
    return _held(fixed.items() if isinstance(fixed, Mapping) else [(tag, None) for tag in (fixed or ())], dim)


def _held(items: Iterable[tuple[str, Any]], dim: int) -> dict[str, tuple[int, ...]]:
    """:func:`held_components` of (tag, component) pairs; a tag named twice holds both."""
    out: dict[str, tuple[int, ...]] = {}
    for tag, component in items:
        if component is None:
            held = tuple(range(dim))
        elif isinstance(component, str):
            if not component or any(c not in _AXES or _AXES[c] >= dim for c in component):
                raise InputError(f"fixed component {component!r} on {tag!r}: use one or more of {'xyz'[:dim]}")
            held = tuple(_AXES[c] for c in component)
        else:
            if not 0 <= int(component) < dim:
                raise InputError(f"fixed component {component} on {tag!r}: use 0..{dim - 1}")
            held = (int(component),)
        out[str(tag)] = tuple(sorted(set(out.get(str(tag), ())) | set(held)))
    return out


def _fixed_dofs(space: FESpace, fixed, displacement) -> tuple[np.ndarray, np.ndarray]:
    """Constrained dofs and their values: ``fixed`` (zero, :func:`held_components`) and
    ``displacement`` (prescribed)."""
    dim = space.n_components
    values = np.zeros(space.n_dofs)
    mask = np.zeros(space.n_dofs, dtype=bool)
    for tag, components in held_components(fixed, dim).items():
        for component in components:
            dofs = space.dofs_on(tag, component=component)
            values[dofs] = 0.0
            mask[dofs] = True
    for tag, value in (displacement or {}).items():
        dofs = space.dofs_on(tag)
        nodes = dofs[dofs % dim == 0]
        x = space.dof_coordinates[nodes].T
        u = at_points(value, x, f"displacement on {tag!r}", components=dim)
        for c in range(dim):
            values[nodes + c] = u[c]
        mask[dofs] = True
    D = np.flatnonzero(mask)
    return D, values[D]


#: the rigid motions of :func:`rigid_body_modes`, in its order
_MOTIONS = {2: ("a translation along x", "a translation along y", "a rotation in the x-y plane"),
            3: ("a translation along x", "a translation along y", "a translation along z", "a rotation about z",
                "a rotation about x", "a rotation about y")}


def supports(space: FESpace, fixed, displacement) -> tuple[np.ndarray, np.ndarray]:
    """The constrained dofs and their values (see :func:`elasticity`); an
    InputError when they leave a rigid motion free: nothing fixed, or supports by
    component that do not stop every translation and rotation (``--fix left:x``
    alone lets the body slide along y). A motion m is free when the rigid-body
    modes restricted to the constrained dofs, R_D (|D|, 3 | 6), have m in their
    null space (columns scaled to unit norm, singular value ≤ 1e-10 of the largest)."""
    D, values = _fixed_dofs(space, fixed, displacement)
    if D.size == 0:
        raise InputError("no fixed or displaced tag: the displacement is defined only up to a rigid motion",
                         space.mesh.source)
    modes = rigid_body_modes(space)
    held = modes[D] / np.maximum(np.linalg.norm(modes, axis=0), 1e-300)
    _, sv, vt = np.linalg.svd(held, full_matrices=True)
    sv = np.concatenate([sv, np.zeros(held.shape[1] - sv.size)])
    if sv[-1] <= 1e-10 * sv[0]:
        motion = _MOTIONS[space.n_components][int(np.argmax(np.abs(vt[-1])))]
        raise InputError(f"the supports leave {motion} free, so the displacement is not unique: add a support "
                         "that stops it (--fix TAG:c for some components, --fix TAG for all)", space.mesh.source)
    return D, values


def external_load(space: FESpace, traction: Mapping[str, Vector] | None, body_force: Vector | None) -> np.ndarray:
    """Dead-load vector f_i = ∫ b · φ_i dx + Σ_tags ∫ t · φ_i ds (n_dofs,)."""
    from skfem import LinearForm
    from skfem.helpers import dot

    f = np.zeros(space.n_dofs)
    load = LinearForm(lambda v, w: dot(w["t"], v))
    if body_force is not None:
        f += load.assemble(space.basis, t=vector_at_quadrature(body_force, space, space.basis, "body force"))
    for tag, t in (traction or {}).items():
        fb = facet_basis(space, tag, vector=True)
        f += load.assemble(fb, t=vector_at_quadrature(t, space, fb, f"traction on {tag!r}"))
    return f


def load_resultant(mesh: Mesh, traction: Mapping[str, Vector] | None, body_force: Vector | None) -> np.ndarray:
    """The resultant R = Σ_tags ∫ t ds + ∫ b dx (dim,) of :func:`external_load` (its components summed: the P1
    basis is a partition of unity). Constant t and b on straight facets: t |Γ_tag| + b |Ω| from the facet and
    cell measures, exactly and without an FE space; otherwise the assembled load vector, summed."""
    def constant(value) -> np.ndarray | None:
        if value is None or callable(value):
            return None
        a = np.asarray(value)
        return a.astype(float) if a.dtype.kind in "iuf" and a.shape == (mesh.dim,) else None

    tags = {name: mesh.tag(name) for name in (traction or {})}
    straight = all(t.kind == "facet" and t.indices.shape[1] == mesh.dim for t in tags.values()) and mesh.order == 1
    loads = [constant(t) for t in (traction or {}).values()]
    body = constant(body_force)
    if not straight or any(t is None for t in loads) or (body_force is not None and body is None):
        return external_load(make_space(mesh, 1, vector=True), traction, body_force).reshape(-1, mesh.dim).sum(0)
    R = np.zeros(mesh.dim) if body is None else body * mesh.cell_measures().sum()
    for t, tag in zip(loads, tags.values()):
        R = R + t * simplex_measure(mesh.points, tag.indices).sum()
    return R


def stress_at_quadrature(space: FESpace, u: np.ndarray, lam, mu, plane: str) -> np.ndarray:
    """(3, 3, n_cells, n_qp) Cauchy stress σ = 2μ ε + λ tr ε I at the quadrature
    points; in 2D σ_zz = λ tr ε (plane strain) or 0 (plane stress)."""
    from skfem.helpers import sym_grad

    eps = np.asarray(sym_grad(space.basis.interpolate(u)))  # (dim, dim, n_cells, n_qp)
    dim = eps.shape[0]
    tr = np.trace(eps)
    sigma = 2 * mu * eps + lam * tr * np.eye(dim)[:, :, None, None]
    if dim == 3:
        return sigma
    full = np.zeros((3, 3) + tr.shape)
    full[:2, :2] = sigma
    full[2, 2] = lam * tr if plane == "strain" else 0.0
    return full


def von_mises(sigma: np.ndarray) -> np.ndarray:
    """√(3/2 s:s) with s the deviator of σ; σ of shape (3, 3, ...)."""
    s = sigma - np.trace(sigma) / 3 * np.eye(3).reshape((3, 3) + (1,) * (sigma.ndim - 2))
    return np.sqrt(1.5 * np.einsum("ij...,ij...->...", s, s))


def l2_project(space: FESpace, values: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """Scalar L2 projection of quadrature-point values (..., n_cells, n_qp):
    p ∈ V_h (scalar, same order) with ∫ p φ = ∫ values φ for all φ, for every
    leading index; returns (..., n_dofs). The mass matrix is assembled once;
    Jacobi-preconditioned CG solves each component."""
    from skfem import BilinearForm, LinearForm

    basis = space.scalar_basis
    M = BilinearForm(lambda u, v, w: u * v).assemble(basis).tocsr()
    solver = LinearSolver(M, method="cg", rtol=rtol)
    load = LinearForm(lambda v, w: w["s"] * v)
    flat = values.reshape((-1,) + values.shape[-2:])
    projected = [solver.solve(load.assemble(basis, s=component)) for component in flat]
    return np.asarray(projected).reshape(values.shape[:-2] + (basis.N,))


def elasticity(mesh: Mesh | FESpace, E: Scalar = 1.0, nu: Scalar = 0.3, *, plane: str = "stress",
               fixed: Iterable[str] | Mapping[str, int | str | None] = (),
               displacement: Mapping[str, Vector] | None = None,
               traction: Mapping[str, Vector] | None = None, body_force: Vector | None = None,
               order: int | None = None, solver: str = "auto", rtol: float = 1e-10,
               units: Mapping[str, str] | None = None, initial: np.ndarray | None = None) -> Solution:
    r"""Small-strain linear elasticity.

    Find u ∈ V^dim with u = 0 on the fixed tags (or the given displacement)
    such that for all admissible v

        ∫ σ(u) : ε(v) dx = ∫ b · v dx + Σ_tags ∫ t · v ds,

    ε(u) = (∇u + ∇uᵀ)/2, σ = 2μ ε + λ tr(ε) I, μ = E / (2(1 + ν)),
    λ = Eν / ((1 + ν)(1 − 2ν)); 2D plane stress uses λ* = Eν / (1 − ν²)
    (σ_zz = 0), plane strain the 3D λ (ε_zz = 0). Thickness 1 in 2D.

    Args:
        mesh: a 2D or 3D :class:`Mesh`, or a vector :class:`FESpace` to reuse.
        E: Young's modulus > 0; number, callable E(x), point or cell field.
        nu: Poisson's ratio in (−1, 1/2); same forms as E.
        plane: ``"stress"`` or ``"strain"`` (2D only).
        fixed: tags with u = 0: a list (all components) or a mapping tag ->
            component (0..dim−1, ``"x"``/``"y"``/``"z"``, or ``None`` for all).
        displacement: tag -> prescribed displacement, a vector or a callable
            of x (dim, k) returning (dim, k).
        traction: tag -> surface traction t (force per area), a vector or a
            callable of x returning (dim, ...).
        body_force: b (force per volume), a vector or a callable.
        order: 1 or 2 (default: the mesh's order).
        solver, rtol: linear solver (``"auto"`` uses AMG with rigid-body modes
            above the direct-solve size).
        units: override of ``{"displacement": "m", "von_mises": "Pa"}``.
        initial: (n_dofs,) the iterative solvers' starting guess (:meth:`Problem.refine`).

    Returns:
        :class:`Solution` with ``dofs["displacement"]`` (n_dofs,) interleaved
        per node, ``fields["displacement"]`` (n_points, dim) and
        ``fields["von_mises"]`` (n_points,): the von Mises stress computed at
        the quadrature points and L2-projected onto the scalar space of the same
        order, then read at the nodes.
    """
    start = time.perf_counter()
    from skfem import BilinearForm
    from skfem.helpers import ddot, sym_grad, trace

    space = make_space(mesh, order, vector=True)
    dim = space.mesh.dim
    if dim not in (2, 3):
        raise InputError(f"elasticity needs a 2D or 3D mesh, got {dim}D", space.mesh.source)
    if plane not in ("stress", "strain"):
        raise InputError(f"plane must be 'stress' or 'strain', got {plane!r}")
    Eq = at_quadrature(E, space, space.scalar_basis, "E")
    nuq = at_quadrature(nu, space, space.scalar_basis, "nu")
    if np.min(Eq) <= 0 or np.min(nuq) <= -1 or np.max(nuq) >= 0.5:
        raise InputError("need E > 0 and −1 < nu < 1/2")
    lam, mu = lame(Eq, nuq, dim, plane)

    @BilinearForm
    def stiffness(u, v, w):
        eu = sym_grad(u)
        return 2 * w["mu"] * ddot(eu, sym_grad(v)) + w["lam"] * trace(eu) * trace(sym_grad(v))

    A = stiffness.assemble(space.basis, mu=mu, lam=lam).tocsr()
    b = external_load(space, traction, body_force)
    D, values = supports(space, fixed, displacement)
    if not np.any(b) and not np.any(values):
        warnings.warn("elasticity with no load: no traction, body force or nonzero displacement (or all zero), so "
                      "the displacement and stress are zero everywhere", stacklevel=2)
    assembled = time.perf_counter()
    u, info = solve_linear(A, b, D, values, method=solver, rtol=rtol, near_nullspace=rigid_body_modes(space),
                           dim=dim, x0=initial)
    # project the stress, then take von Mises of the projected tensor: nonnegative
    # by construction, where projecting von Mises itself undershoots below zero
    vm = von_mises(l2_project(space, stress_at_quadrature(space, u, lam, mu, plane)))
    info.update(assemble_s=assembled - start, total_s=time.perf_counter() - start,
                plane=plane if dim == 2 else None, von_mises="of the L2-projected stress tensor")
    nodes = scalar_node_dofs(space)
    fields = {"displacement": u.reshape(-1, dim)[nodes], "von_mises": vm[nodes]}
    unit = {"displacement": "m", "von_mises": "Pa", **(units or {})}
    return Solution(space, {"displacement": u, "von_mises": vm}, fields, unit, info)


def parse_fix(raw, mesh: Mesh, option: Option) -> dict[str, str]:
    """``--fix`` values, ``["left", "bottom:y"]`` (or a mapping tag -> component, as
    :func:`elasticity` takes ``fixed``) -> {tag: the axis letters held at zero}, here
    ``{"left": "xy", "bottom": "y"}``: ``TAG`` holds every component, ``TAG:c`` the
    components c (``x``, ``y``, ``z`` or several, ``xy``); a tag given twice holds both.
    A malformed component is an :class:`OptionValueError`, a tag the mesh lacks or a
    component beyond its dimension an :class:`InputError`, one line each."""
    flag, dim = option.cli_flag, mesh.dim
    if isinstance(raw, Mapping):
        items = [(str(tag), component) for tag, component in raw.items()]
    else:
        items = []
        for spec in [raw] if isinstance(raw, str) else list(raw):
            spec = str(spec)
            tag, colon, component = spec.rpartition(":")
            if not colon or spec in mesh.tags:
                items.append((spec, None))
                continue
            if not tag or not component or set(component) - set("xyz"):
                raise OptionValueError(f"{flag} {spec!r}: expected TAG or TAG:c, c one or more of x, y, z "
                                       "(TAG alone holds every component)")
            if set(component) - set("xyz"[:dim]):
                raise InputError(f"{flag} {spec!r}: the mesh is {dim}D, its components are {', '.join('xyz'[:dim])}",
                                 mesh.source)
            items.append((tag, component))
    for tag, _ in items:
        mesh.tag(tag)  # a tag the mesh lacks: one line naming those it has
    return {tag: "".join("xyz"[c] for c in held) for tag, held in _held(items, dim).items()}


#: the options of the elastic solids, linear (:class:`Elasticity`) and neo-Hookean
YOUNGS_MODULUS = Option("E", "number", help="Young's modulus E > 0.", required=True)
POISSONS_RATIO = Option("nu", "number", help="Poisson's ratio nu in (-1, 1/2).", required=True)
FIX = Option("fix", "tags", help="TAG or TAG:c with zero displacement, c one or more of x, y, z (repeatable): TAG "
             "holds every component, TAG:c those named (a roller: --fix bottom:y --fix left:x); enough to hold "
             "the body in place", required=True, parse=parse_fix, metavar="TAG[:x|y|z]")
TRACTION = Option("traction", "tag-vectors", help="TAG=tx,ty[,tz]: surface traction (force per area) on the tag.")
BODY_FORCE = Option("body_force", "vector", help="fx,fy[,fz]: body force per volume.")


def elastic_essential(problem: Problem, mesh: Mesh, raw) -> tuple[np.ndarray, np.ndarray]:
    """(n, c) mask and values of the stacked outputs of an elastic ``problem`` that its
    solver fixes: the displacement components each ``fix`` tag holds (zero)."""
    params = problem.parse(mesh, raw)
    space = make_space(mesh, params.get("order"), vector=True)
    D, values = _fixed_dofs(space, params.get("fix"), None)
    fixed, value = np.zeros(space.n_dofs, dtype=bool), np.zeros(space.n_dofs)
    fixed[D], value[D] = True, values
    nodes = scalar_node_dofs(space)
    c = problem.output_channels(mesh)
    mask, out = np.zeros((mesh.n_points, c), dtype=bool), np.zeros((mesh.n_points, c))
    mask[:, :mesh.dim] = fixed.reshape(-1, mesh.dim)[nodes]
    out[:, :mesh.dim] = value.reshape(-1, mesh.dim)[nodes]
    return mask, out


def support_features(mesh: Mesh, x: np.ndarray, names: list[str], fix) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The generic features ``x`` (n, F) with ``names`` of an elastic problem, plus one
    column per component after ``fix:mask``: ``fix[k]`` is 1 on the nodes of the tags that
    hold u_k = 0 (``--fix TAG`` all k, ``--fix TAG:c`` those of c). Returns (x (n, F + dim),
    names, held (n, dim) bool: the node components fixed at zero)."""
    held = np.zeros((mesh.n_points, mesh.dim), dtype=bool)
    for tag, components in held_components(fix, mesh.dim).items():
        held[np.ix_(mesh.tag_nodes(tag), components)] = True
    at = names.index("fix:mask") + 1
    x = np.concatenate([x[:, :at], held.astype(float), x[:, at:]], axis=1)
    return x, names[:at] + [f"fix[{k}]" for k in range(mesh.dim)] + names[at:], held


def tag_distance(mesh: Mesh, tags: Iterable[str]) -> np.ndarray:
    """(n,) Euclidean distance of every node to the nearest node of the facet ``tags`` (zeros without
    tags). Invariant under translations and rotations and proportional to scale: divided by the
    extent L it tells a node how far it lies from a support or a load, which message passing
    would need as many steps as the mesh is edges across to find out."""
    from scipy.spatial import cKDTree

    nodes = np.unique(np.concatenate([mesh.tag_nodes(t) for t in tags] or [np.zeros(0, int)]))
    if nodes.size == 0:
        return np.zeros(mesh.n_points)
    return cKDTree(mesh.points[nodes]).query(mesh.points)[0]


#: input columns later versions added to the elastic layouts, that an earlier checkpoint lacks: the
#: supports by component (``fix[k]``) and hyperelastic's distances to the supports and loads
LATER_COLUMNS = ("fix[0]", "fix[1]", "fix[2]", "fix:distance", "traction:distance")


def elastic_layout(problem: Problem, mesh: Mesh, params, names, out: Features | None = None) -> Features:
    r"""The features of an elastic ``problem`` in the layout ``names`` of a checkpoint. Layout 1,
    of checkpoints written before supports by component, has ``fix:mask`` and no ``fix[k]``
    columns; layout 2 adds them (:func:`support_features`); layout 3 (this version, hyperelastic)
    adds the distances to the supports and the loads. An earlier model gets its own columns
    (those of :data:`LATER_COLUMNS` it lacks are left out); a layout-1 model is refused in one line
    a support of some components only, which it never saw. ``out``: the problem's features of the
    case when they are not ``problem.features(mesh, params)``."""
    out = problem.features(mesh, params) if out is None else out
    keep = [k for k, name in enumerate(out.names) if name in names or name not in LATER_COLUMNS]
    if [out.names[k] for k in keep] != list(names) or len(keep) == len(out.names):
        return out  # this version's layout, or none the problem writes (the caller names the mismatch)
    partial = [f"{tag}:{''.join('xyz'[k] for k in held)}"
               for tag, held in held_components(params.get("fix"), mesh.dim).items() if len(held) < mesh.dim]
    if partial and "fix[0]" not in names:
        raise InputError(f"--fix {partial[0]}: the model was trained before supports by component (its inputs have "
                         "fix:mask, no fix[k]); give whole tags (--fix TAG) or retrain it with this version",
                         mesh.source)
    return Features(out.x[:, keep], [out.names[k] for k in keep], out.scale, out.dirichlet, out.dirichlet_values,
                    case=out.case)


def elastic_scaled(problem: Problem, mesh: Mesh, raw, factor: float) -> Transformed:
    r"""x ↦ c x of an elastic ``problem`` (−∇·σ = b, σn = t, σ a function of the strain or
    of F = I + ∇u): with u ↦ c u(x/c) the strain and F are unchanged, so σ (P) is too, the
    tractions stay and ∇·σ scales by 1/c, so the body force becomes b/c; E, ν stay. The
    displacement is multiplied by c, stresses by 1: the dimensionless groups t/E and
    b L/E are those of the original."""
    mesh, options = problem.portable(mesh, raw)
    c = float(factor)
    if options.get("body_force") is not None:
        options["body_force"] = np.asarray(options["body_force"], dtype=float) / c
    return Transformed(moved_mesh(mesh, c * mesh.points), options, {"displacement": c})


def mean_outward_normal(mesh: Mesh, weights: Mapping[str, float]) -> np.ndarray | None:
    """(2,) Σ_t w_t Σ_f n_f / Σ_t w_t Σ_f |n_f| over the facets f of the tags t of a planar mesh, n_f the
    outward normal as long as the facet (:meth:`Mesh.outward_normals`): the mean outward unit normal, each
    facet weighted by its length and its tag's weight; (0, 0) for no tags, None where a tag is a node or
    cell tag (no facets, no normals)."""
    tags = {name: mesh.tag(name) for name in weights}
    if any(tag.kind != "facet" for tag in tags.values()):
        return None
    total, weight = np.zeros(2), 0.0
    for name, tag in tags.items():
        normals = mesh.outward_normals(tag.indices)
        total += weights[name] * normals.sum(axis=0)
        weight += weights[name] * float(np.linalg.norm(normals, axis=1).sum())
    return total / weight if weight > 0 else total


def loaded_sides(mesh: Mesh, params) -> dict[str, float]:
    """Where a planar elastic case is held and loaded, for the domain of validity
    (:attr:`Features.case`): the :func:`mean_outward_normal` of the supported facets and of the
    loaded ones (weighted by |t|), (0, 0) where there are none. The inputs say how far each node is
    from the supports and the loads, not which side of the body these are on: a model of plates
    clamped on the left and pulled on the right has never seen a traction on the top. Nothing in
    3D or on node or cell tags."""
    if mesh.dim != 2 or mesh.tdim != 2:
        return {}
    sides = {"supported": {tag: 1.0 for tag in held_components(params.get("fix"), 2)},
             "loaded": {tag: float(np.linalg.norm(t)) for tag, t in (params.get("traction") or {}).items()}}
    out = {}
    for what, weights in sides.items():
        mean = mean_outward_normal(mesh, weights)
        if mean is None:
            return {}
        out.update({f"mean outward normal of the {what} facets, {axis}": float(v) for axis, v in zip("xy", mean)})
    return out


def support_frame(mesh: Mesh, fixed) -> np.ndarray | None:
    r"""The frame of a planar elastic case (:meth:`Problem.frame`): the rotation R (2, 2) that turns
    n̄, the :func:`mean_outward_normal` of the supported facets, to −x, the side the generated plates
    are clamped on. None in 3D (a normal leaves the turn about it free), where a support is a node or
    cell tag or holds only some components (those do not turn with the mesh), and where the normals
    cancel, |n̄| < ½ (supports around the body: no side to turn)."""
    held = held_components(fixed, mesh.dim)
    if mesh.dim != 2 or mesh.tdim != 2 or not held or any(len(c) < mesh.dim for c in held.values()):
        return None
    mean = mean_outward_normal(mesh, {tag: 1.0 for tag in held})
    if mean is None or np.linalg.norm(mean) < 0.5:
        return None
    turn = np.pi - np.arctan2(mean[1], mean[0])
    return np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])


def elastic_rotated(problem: Problem, mesh: Mesh, raw, rotation: np.ndarray) -> Transformed:
    """x ↦ R x of an isotropic elastic ``problem``: tractions and the body force turn by R,
    and so does the displacement; the von Mises stress is a scalar and stays. A support of some
    components only holds them along the mesh's axes, which do not turn: :class:`NoLaw`."""
    mesh, options = problem.portable(mesh, raw)
    partial = [tag for tag, held in held_components(options.get("fix"), mesh.dim).items() if len(held) < mesh.dim]
    if partial:
        raise NoLaw(f"--fix {partial[0]}:{options['fix'][partial[0]]} holds a component along the mesh's axes, "
                    "which do not turn with the mesh: no rotation law for this case")
    R = np.asarray(rotation, dtype=float)
    if options.get("traction"):
        options["traction"] = {t: R @ np.asarray(v, dtype=float) for t, v in options["traction"].items()}
    if options.get("body_force") is not None:
        options["body_force"] = R @ np.asarray(options["body_force"], dtype=float)
    return Transformed(moved_mesh(mesh, mesh.points @ R.T), options, rotation=R,
                       vector_fields=tuple(problem.vector_fields))


@register_problem
class Elasticity(Problem):
    r"""Small-strain linear elasticity −∇·σ(u) = b, σ = 2μ ε(u) + λ tr ε(u) I; :func:`elasticity`.

    Options: E and ν (giving λ, μ; in 2D plane stress or plane strain), the
    supports (u = 0 on a tag, or some of its components: ``--fix bottom:y``), surface tractions t by tag (σn = t) and a
    constant body force b; the rest of the boundary is traction-free.

    Data sets (:meth:`sample`): geometry ``"2d"``, a random domain of
    :func:`graphfem.physics.geometries.random_domain` (deformed, perforated or
    L-shaped) fixed on the left, loaded on the right; ``"3d"``, a box of
    tetrahedra (4 to 6 cells a side, extents [1, 2] × [0.4, 1]²) fixed at
    x = 0, loaded at x = x_max. The load is a random traction on the loaded
    side, a random body force, or both (components uniform in [−0.1, 0.1]);
    E is log-uniform in [1/3, 3], ν uniform in [0.2, 0.4].
    """

    name = "elasticity"
    fields = {"displacement": "m", "von_mises": "Pa"}
    vector_fields = ("displacement",)
    dims = (2, 3)
    summary = "small-strain linear elasticity -div sigma(u) = b"
    options = (
        YOUNGS_MODULUS,
        POISSONS_RATIO,
        Option("plane_stress", "flag", True, "2D model: plane stress (sigma_zz = 0, the default) or plane strain "
               "(eps_zz = 0).", flag="--plane-stress/--plane-strain"),
        FIX,
        TRACTION,
        BODY_FORCE,
        ORDER,
        SOLVER,
    )
    geometries = ("2d", "3d")
    dimensionless = True

    def kwargs(self, params):
        out = super().kwargs(params)
        out["plane"] = "stress" if out.pop("plane_stress") else "strain"
        out["fixed"] = out.pop("fix")
        return out

    def solve(self, mesh: Mesh | FESpace, **params) -> Solution:
        return elasticity(mesh, **params)

    def refine(self, mesh: Mesh, raw, guess) -> Solution:
        """AMG-preconditioned CG (rigid-body near-null space) from the guessed displacement."""
        from .poisson import iterative_solver

        kwargs = self.kwargs(self.parse(mesh, raw))
        kwargs["solver"] = iterative_solver(kwargs.get("solver", "auto"))
        space = make_space(mesh, kwargs.pop("order", None), vector=True)
        return elasticity(space, initial=guess_dofs(space, guess["displacement"]), **kwargs)

    def features(self, mesh: Mesh, params) -> Features:
        """The generic encoding made dimensionless by linearity and the elastic scaling law.

        With L the largest bounding-box side and the load scale
        q = max(max_t |t|, |b| L) (tractions t, body force b), the
        displacement is u = (q L / E) ũ(x/L; t/q, b L/q, ν) and the stress
        σ = q σ̃: the model sees the loads divided by q, no E (it only scales
        u), and predicts ũ and σ̃, which :attr:`Features.scale` multiplies back.
        """
        lo, hi = mesh.bounding_box
        L = float(np.max(hi - lo))
        traction = {t: np.asarray(v, dtype=float) for t, v in (params.get("traction") or {}).items()}
        body = np.zeros(mesh.dim) if params.get("body_force") is None else np.asarray(params["body_force"], float)
        q = max([float(np.linalg.norm(v)) for v in traction.values()] + [float(np.linalg.norm(body)) * L, 1e-300])
        scaled = {**params, "E": 1.0, "traction": {t: v / q for t, v in traction.items()} or None,
                  "body_force": body * L / q}
        out = super().features(mesh, scaled)
        keep = [k for k, name in enumerate(out.names) if name != "E"]
        u_scale = q * L / float(params["E"])
        x, names, held = support_features(mesh, out.x[:, keep], [out.names[k] for k in keep], params.get("fix"))
        fixed = np.zeros((mesh.n_points, mesh.dim + 1), dtype=bool)
        fixed[:, :mesh.dim] = held  # u_k = 0 there, exactly
        return Features(x, names, np.array([u_scale] * mesh.dim + [q]), fixed, np.zeros(fixed.shape),
                        case=loaded_sides(mesh, params))

    def features_in(self, mesh: Mesh, params, names) -> Features:
        return elastic_layout(self, mesh, params, names)

    def essential(self, mesh: Mesh, raw):
        return elastic_essential(self, mesh, raw)

    def scaled(self, mesh: Mesh, raw, factor: float) -> Transformed:
        return elastic_scaled(self, mesh, raw, factor)

    def rotated(self, mesh: Mesh, raw, rotation: np.ndarray) -> Transformed:
        return elastic_rotated(self, mesh, raw, rotation)

    def frame(self, mesh: Mesh, raw) -> np.ndarray | None:
        return support_frame(mesh, self.parse(mesh, raw).get("fix"))

    def superposed(self, mesh: Mesh, raw) -> Superposition:
        """For fixed E, ν and supports the displacement is linear in the loads: the sum over
        the traction of each tag alone and the body force alone (von Mises is not linear)."""
        mesh, options = self.portable(mesh, raw)
        base = {k: v for k, v in options.items() if k not in ("traction", "body_force")}
        traction = options.get("traction") or {}
        parts = [{**base, "traction": {tag: value}} for tag, value in traction.items()]
        names = [f"traction on {tag}" for tag in traction]
        if options.get("body_force") is not None:
            parts.append({**base, "body_force": options["body_force"]})
            names.append("body force")
        if len(parts) < 2:
            raise NoLaw("one load only: nothing to superpose")
        return Superposition(mesh, options, parts, ("displacement",), names)

    def sample(self, rng: np.random.Generator, geometry: str | None = None):
        geometry = self.geometry(geometry)
        if geometry == "2d":
            from .geometries import LEFT_RIGHT_FAMILIES, random_domain

            mesh = random_domain(LEFT_RIGHT_FAMILIES[int(rng.integers(len(LEFT_RIGHT_FAMILIES)))], rng)
            fixed, loaded = "left", "right"
        else:
            n = int(rng.integers(4, 7))
            mesh = Mesh.box(n, upper=(float(rng.uniform(1.0, 2.0)), *rng.uniform(0.4, 1.0, 2)), cell="tetra")
            fixed, loaded = "xmin", "xmax"
        raw = {"E": float(10 ** rng.uniform(-0.5, 0.5)), "nu": float(rng.uniform(0.2, 0.4)), "fix": [fixed],
               "order": 1}
        if mesh.dim == 2:
            raw["plane_stress"] = bool(rng.random() < 0.5)
        load = int(rng.integers(3))  # 0: traction, 1: body force, 2: both
        if load != 1:
            raw["traction"] = {loaded: rng.uniform(-0.1, 0.1, mesh.dim).tolist()}
        if load != 0:
            raw["body_force"] = rng.uniform(-0.1, 0.1, mesh.dim).tolist()
        return mesh, raw
