"""Conversion between :class:`Mesh` and scikit-fem meshes, tags included."""
from __future__ import annotations

import numpy as np

from .errors import MeshError
from .mesh import FE_CELL_TYPES, Mesh, Tag


def row_keys(rows: np.ndarray, n: int) -> np.ndarray:
    """One int64 key per row of node indices, equal for rows that hold the
    same set of nodes. Shapes: rows (f, c) with entries < n -> (f,).

    Rows are sorted, then read as base-n numbers; when n**c would overflow
    int64, the keys are the rows' ranks among the unique rows instead.
    """
    rows = np.sort(np.asarray(rows, dtype=np.int64).reshape(len(rows), -1), axis=1)
    c = rows.shape[1]
    if c == 0:
        return np.zeros(len(rows), dtype=np.int64)
    if float(n) ** c < 2.0 ** 62:
        keys = rows[:, 0].copy()
        for j in range(1, c):
            keys = keys * n + rows[:, j]
        return keys
    _, inverse = np.unique(rows, axis=0, return_inverse=True)
    return inverse.ravel().astype(np.int64)


def match_rows(table: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index into ``table`` of each row of ``queries`` (rows compared as sets).

    Shapes: table (f, c), queries (q, c) -> (q,) int64, -1 where a query row
    is not in the table.
    """
    table = np.asarray(table, dtype=np.int64)
    queries = np.asarray(queries, dtype=np.int64)
    if len(queries) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(table) == 0:
        return np.full(len(queries), -1, dtype=np.int64)
    n = int(max(table.max(), queries.max())) + 1
    keys = row_keys(np.concatenate([table, queries.reshape(len(queries), -1)]), n)
    table_keys, query_keys = keys[: len(table)], keys[len(table):]
    order = np.argsort(table_keys, kind="stable")
    sorted_keys = table_keys[order]
    position = np.clip(np.searchsorted(sorted_keys, query_keys), 0, len(sorted_keys) - 1)
    found = sorted_keys[position] == query_keys
    return np.where(found, order[position], -1)


def _direct_type(cell_type: str):
    """The scikit-fem mesh class whose node order is meshio's, or ``None``."""
    import skfem

    return {"line": skfem.MeshLine1, "triangle": skfem.MeshTri1, "quad": skfem.MeshQuad1,
            "tetra": skfem.MeshTet1}.get(cell_type)


def to_skfem(mesh: Mesh, with_tags: bool = True):
    """The scikit-fem mesh of ``mesh``; with ``with_tags``, facet tags become
    ``boundaries`` and cell tags ``subdomains`` (node tags are not
    representable in scikit-fem and stay on the :class:`Mesh`)."""
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
    direct = _direct_type(mesh.cell_type)
    if direct is not None:  # skfem's node order is meshio's: build it directly
        m = direct(np.ascontiguousarray(mesh.points.T), np.ascontiguousarray(mesh.cells.T))
    else:  # hexahedra and quadratic cells need scikit-fem's reordering
        m = from_meshio(meshio.Mesh(mesh.points, [(mesh.cell_type, mesh.cells)]))
    if not with_tags:
        return m
    return _with_tags(m, mesh)


def _with_tags(m, mesh: Mesh):
    facets = m.facets.T
    boundaries, subdomains = {}, {}
    for tag in mesh.tags.values():
        if tag.kind == "facet":
            if tag.indices.shape[1] != facets.shape[1]:
                raise MeshError(f"facet tag {tag.name!r} has {tag.indices.shape[1]} corners per facet, "
                                f"the mesh's facets have {facets.shape[1]}", mesh.source)
            boundaries[tag.name] = facet_indices(m, mesh, tag.name)
        elif tag.kind == "cell":
            subdomains[tag.name] = tag.indices
    from dataclasses import replace

    return replace(m, _boundaries=boundaries or None, _subdomains=subdomains or None)


def facet_indices(m, mesh: Mesh, name: str) -> np.ndarray:
    """scikit-fem facet indices (into ``m.facets``) of the facet tag ``name``."""
    tag = mesh.tag(name)
    if tag.kind != "facet":
        raise MeshError(f"tag {name!r} is a {tag.kind} tag, not a facet tag", mesh.source)
    facets = m.facets.T
    if tag.size and tag.indices.shape[1] != facets.shape[1]:
        raise MeshError(f"facet tag {name!r} has {tag.indices.shape[1]} corners per facet, "
                        f"the mesh's facets have {facets.shape[1]}", mesh.source)
    index = match_rows(facets, tag.indices)
    if (index < 0).any():
        raise MeshError(f"facet tag {name!r}: {int((index < 0).sum())} facet(s) are not facets of the mesh",
                        mesh.source)
    return index


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
