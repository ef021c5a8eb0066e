"""Coefficients (κ, f, E, boundary data) evaluated where the forms need them.

A scalar coefficient may be given as

* a number;
* a callable ``c(x)`` with x of shape (dim, ...) as in scikit-fem, returning
  an array broadcastable to x's trailing shape;
* a point field: an array (n_points,) of values at the mesh nodes,
  interpolated with the mesh's own (geometric) Lagrange element;
* a cell field: an array (n_cells,), piecewise constant. When n_points equals
  n_cells the array is read as a point field.

Vector coefficients (tractions, body forces) are a sequence of dim numbers or
a callable returning (dim, ...) values. Non-finite values raise
:class:`~graphfem.meshes.errors.InputError`.
"""
from __future__ import annotations

import numbers
from typing import Callable, Sequence, Union

import numpy as np

from graphfem.meshes import FESpace
from graphfem.meshes.errors import InputError

Scalar = Union[float, Callable[[np.ndarray], np.ndarray], np.ndarray]
Vector = Union[Sequence[float], Callable[[np.ndarray], np.ndarray]]


def is_constant(value) -> bool:
    """True for a plain number (which lets solvers reuse cached matrices)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) or (
        isinstance(value, np.ndarray) and value.ndim == 0)


def constant(value, name: str) -> float:
    """A finite float, or an :class:`InputError` naming ``name``."""
    v = float(value)
    if not np.isfinite(v):
        raise InputError(f"{name} is not finite ({v})")
    return v


def at_quadrature(value: Scalar, space: FESpace, basis, name: str) -> float | np.ndarray:
    """``value`` at the quadrature points of ``basis`` (a cell or facet basis
    of ``space``'s mesh): a float for constants, else an array (n_elements, n_qp)."""
    if is_constant(value):
        return constant(value, name)
    if callable(value):
        x = np.asarray(basis.global_coordinates())
        out = np.broadcast_to(np.asarray(value(x), dtype=float), x.shape[1:])
    else:
        out = _field_at_quadrature(np.asarray(value, dtype=float), space, basis, name)
    _check_finite(out, name)
    return np.ascontiguousarray(out)


def vector_at_quadrature(value: Vector, space: FESpace, basis, name: str) -> np.ndarray:
    """A vector coefficient at the quadrature points: (dim, n_elements, n_qp)."""
    dim = space.mesh.dim
    x = np.asarray(basis.global_coordinates())
    if callable(value):
        out = np.asarray(value(x), dtype=float)
        if out.shape[:1] != (dim,):
            raise InputError(f"{name} must return {dim} components, got shape {out.shape}")
        out = np.broadcast_to(out.reshape((dim,) + out.shape[1:]), x.shape)
    else:
        v = np.asarray(value, dtype=float).reshape(-1)
        if v.shape != (dim,):
            raise InputError(f"{name} must have {dim} components, got {v.size}")
        out = np.broadcast_to(v[:, None, None], x.shape)
    _check_finite(out, name)
    return np.ascontiguousarray(out)


def at_points(value, x: np.ndarray, name: str, components: int | None = None) -> np.ndarray:
    """A constant or callable evaluated at points x (dim, k): (k,), or
    (components, k) for vector values (Dirichlet data at dof locations)."""
    k = x.shape[1]
    shape = (k,) if components is None else (components, k)
    if callable(value):
        out = np.asarray(value(x), dtype=float)
    else:
        out = np.asarray(value, dtype=float)
        if components is not None:
            out = out.reshape(-1)
            if out.size != components:
                raise InputError(f"{name} must have {components} components, got {out.size}")
            out = out[:, None]
    try:
        out = np.broadcast_to(out, shape)
    except ValueError:
        raise InputError(f"{name} has shape {np.shape(out)}, expected {shape}") from None
    _check_finite(out, name)
    return out


def nodal_dofs(space: FESpace, values: np.ndarray, name: str) -> np.ndarray:
    """Dof vector in ``space`` (scalar) of a point field given at the mesh nodes:
    exact on P1 and isoparametric P2 spaces; on P2-over-linear meshes the P1
    interpolant of the nodal values."""
    values = np.asarray(values, dtype=float).reshape(-1)
    if values.shape != (space.mesh.n_points,):
        raise InputError(f"{name} has {values.size} values, the mesh {space.mesh.n_points} nodes")
    _check_finite(values, name)
    if space.mesh.order == space.order:
        u = np.zeros(space.scalar_basis.N)
        u[scalar_node_dofs(space)] = values
        return u
    # P2 on a linear mesh: vertex dofs take the values, edge/face dofs the
    # mean of their vertices (the P1 interpolant, exact for the P1 field).
    p1 = space.scalar_basis.with_element(space.skfem_mesh.elem())
    return p1.probes(space.scalar_basis.doflocs) @ values


def scalar_node_dofs(space: FESpace) -> np.ndarray:
    """(n_points,) the scalar dof at each mesh node (every node carries one
    when the space's order equals the mesh's order, and on linear meshes)."""
    if space.mesh.order == 1:
        # scikit-fem keeps the node order of a linear mesh and numbers the
        # vertex dofs first, so the nodal dofs are the node indices.
        return space.scalar_basis.nodal_dofs[0]
    return space.node_dofs()[:, 0] // space.n_components


def _field_at_quadrature(values: np.ndarray, space: FESpace, basis, name: str) -> np.ndarray:
    mesh = space.mesh
    if values.ndim != 1 or values.shape[0] not in (mesh.n_points, mesh.n_cells):
        raise InputError(f"{name} must be a number, a callable, or an array of {mesh.n_points} point "
                         f"or {mesh.n_cells} cell values; got shape {values.shape}")
    _check_finite(values, name)
    if values.shape[0] == mesh.n_points:
        geometric = basis.with_element(space.skfem_mesh.elem())
        dofs = np.zeros(geometric.N)
        if mesh.order == 1:
            dofs[:] = values
        else:
            dofs[scalar_node_dofs(space)] = values
        return np.asarray(geometric.interpolate(dofs))
    cells = getattr(basis, "tind", None)
    cell_values = values if cells is None else values[cells]
    return np.broadcast_to(cell_values[:, None], np.asarray(basis.global_coordinates()).shape[1:])


def _check_finite(values: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise InputError(f"{name} has {int(bad.sum())} non-finite value(s)")


def guess_dofs(space: FESpace, nodal: np.ndarray, what: str = "--refine") -> np.ndarray:
    """(n_dofs,) the dof vector of a space whose dofs all sit at mesh nodes (P1 on linear cells, the
    isoparametric P2 of quadratic cells) with nodal values ``nodal`` ((n_points,) scalar, (n_points, dim)
    vector; vector dofs interleave the components). P2 on linear cells is refused: its mid-side dofs
    have no nodal value to start from."""
    if space.order != space.mesh.order:
        raise InputError(f"{what}: the guess is a nodal field and P{space.order} on {space.mesh.cell_type} "
                         f"cells has dofs at no node; refine with --order {space.mesh.order}", space.mesh.source)
    values = np.asarray(nodal, dtype=float).reshape(space.mesh.n_points, -1)
    if values.shape[1] != space.n_components:
        raise InputError(f"{what}: the guess has {values.shape[1]} components per node, the space "
                         f"{space.n_components}", space.mesh.source)
    return space.from_nodes(values)

