"""Conversion between :class:`Mesh` and scikit-fem meshes, tags included."""
from __future__ import annotations

import numpy as np

from .errors import MeshError
from .mesh import FE_CELL_TYPES, Mesh, Tag


def match_rows(table: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index into ``table`` of each row of ``queries`` (rows compared as sets).

    Shapes: table (f, c), queries (q, c) -> (q,) int64, -1 where a query row
    is not in the table.
    """
    table = np.sort(np.asarray(table), axis=1)
    queries = np.sort(np.asarray(queries), axis=1)
    if queries.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    both = np.concatenate([table, queries])
    _, inverse = np.unique(both, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    lookup = np.full(inverse.max() + 1, -1, dtype=np.int64)
    lookup[inverse[: len(table)]] = np.arange(len(table))
    return lookup[inverse[len(table):]]


def to_skfem(mesh: Mesh):
    """The scikit-fem mesh of ``mesh``; facet tags become ``boundaries`` and
    cell tags ``subdomains``. Node tags are not representable in scikit-fem
    and stay on the :class:`Mesh`."""
    import meshio
    from skfem.io.meshio import from_meshio

    if mesh.cell_type not in FE_CELL_TYPES:
        raise MeshError(f"no finite-element mesh for {mesh.cell_type} cells", mesh.source)
    if mesh.tdim != mesh.dim:
        raise MeshError(f"{mesh.cell_type} cells in {mesh.dim}D space: surface and line meshes in higher "
                        "dimensions are not supported by the FE solvers", mesh.source)
    unused = mesh.unused_nodes
    if unused.size:
        raise MeshError(f"{unused.size} node(s) are used by no cell (first: {unused[0]}); "
                        "call mesh.cleaned() to drop them", mesh.source)
    m = from_meshio(meshio.Mesh(mesh.points, [(mesh.cell_type, mesh.cells)]))
    facets = m.facets.T
    boundaries, subdomains = {}, {}
    for tag in mesh.tags.values():
        if tag.kind == "facet":
            if tag.indices.shape[1] != facets.shape[1]:
                raise MeshError(f"facet tag {tag.name!r} has {tag.indices.shape[1]} corners per facet, "
                                f"the mesh's facets have {facets.shape[1]}", mesh.source)
            index = match_rows(facets, tag.indices)
            if (index < 0).any():
                raise MeshError(f"facet tag {tag.name!r}: {int((index < 0).sum())} facet(s) are not "
                                "facets of the mesh", mesh.source)
            boundaries[tag.name] = index
        elif tag.kind == "cell":
            subdomains[tag.name] = tag.indices
    from dataclasses import replace

    return replace(m, _boundaries=boundaries or None, _subdomains=subdomains or None)


def from_skfem(m, source: str | None = None) -> Mesh:
    """A :class:`Mesh` from a scikit-fem mesh, with its boundaries as facet
    tags and subdomains as cell tags."""
    from skfem.io.meshio import to_meshio

    mio = to_meshio(m)
    cell_type, cells = mio.cells[0].type, mio.cells[0].data
    points = np.asarray(mio.points)[:, : m.p.shape[0]]
    tags = {}
    for name, index in (m.boundaries or {}).items():
        tags[name] = Tag(name, "facet", m.facets[:, np.asarray(index)].T)
    for name, index in (m.subdomains or {}).items():
        tags[name] = Tag(name, "cell", np.asarray(index))
    return Mesh(points, cell_type, cells, tags=tags, source=source)
