"""The immutable :class:`Mesh` value and its tags.

A mesh holds one block of volume cells (meshio's cell-type names), node
coordinates, named tags and fields. Mixed meshes are made conforming simplex
meshes by :mod:`graphfem.meshes.conform` before they reach this class, so
every finite-element space sees a single element type.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal, Mapping

import numpy as np

from .errors import MeshError


@dataclass(frozen=True)
class CellType:
    """Reference data of one meshio cell type.

    ``facets`` lists, for each facet, the local indices of its corner nodes.
    """

    name: str
    tdim: int
    n_nodes: int
    n_corners: int
    order: int
    facets: tuple[tuple[int, ...], ...]


_LINE_FACETS = ((0,), (1,))
_TRI_FACETS = ((0, 1), (1, 2), (2, 0))
_QUAD_FACETS = ((0, 1), (1, 2), (2, 3), (3, 0))
_TET_FACETS = ((0, 1, 2), (0, 1, 3), (1, 2, 3), (0, 2, 3))
_HEX_FACETS = ((0, 1, 2, 3), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7))
_WEDGE_FACETS = ((0, 1, 2), (3, 4, 5), (0, 1, 4, 3), (1, 2, 5, 4), (2, 0, 3, 5))

CELL_TYPES: Mapping[str, CellType] = MappingProxyType({
    c.name: c for c in (
        CellType("vertex", 0, 1, 1, 1, ()),
        CellType("line", 1, 2, 2, 1, _LINE_FACETS),
        CellType("line3", 1, 3, 2, 2, _LINE_FACETS),
        CellType("triangle", 2, 3, 3, 1, _TRI_FACETS),
        CellType("triangle6", 2, 6, 3, 2, _TRI_FACETS),
        CellType("quad", 2, 4, 4, 1, _QUAD_FACETS),
        CellType("quad8", 2, 8, 4, 2, _QUAD_FACETS),
        CellType("quad9", 2, 9, 4, 2, _QUAD_FACETS),
        CellType("tetra", 3, 4, 4, 1, _TET_FACETS),
        CellType("tetra10", 3, 10, 4, 2, _TET_FACETS),
        CellType("hexahedron", 3, 8, 8, 1, _HEX_FACETS),
        CellType("hexahedron27", 3, 27, 8, 2, _HEX_FACETS),
        CellType("wedge", 3, 6, 6, 1, _WEDGE_FACETS),
    )
})

#: Cell types a finite-element space can be built on.
FE_CELL_TYPES = ("line", "triangle", "triangle6", "quad", "quad9", "tetra", "tetra10", "hexahedron", "wedge")

TagKind = Literal["node", "facet", "cell"]


@dataclass(frozen=True, eq=False)
class Tag:
    """A named set of mesh entities.

    Attributes:
        name: the tag's name (a gmsh physical group, an Abaqus/Exodus set).
        kind: ``"node"`` (indices (k,) into ``points``), ``"facet"`` (corner
            node indices (k, n_facet_corners) of each facet, in any order) or
            ``"cell"`` (indices (k,) into ``cells``).
        indices: the int64 array described above.
    """

    name: str
    kind: TagKind
    indices: np.ndarray

    def __post_init__(self) -> None:
        if self.kind not in ("node", "facet", "cell"):
            raise MeshError(f"tag {self.name!r} has unknown kind {self.kind!r}")
        indices = np.asarray(self.indices)
        if indices.size and not np.issubdtype(indices.dtype, np.integer):
            raise MeshError(f"tag {self.name!r} has non-integer indices")
        indices = indices.astype(np.int64)
        if self.kind == "facet":
            indices = indices.reshape(len(indices), -1) if indices.size else indices.reshape(0, max(
                indices.shape[1] if indices.ndim == 2 else 1, 1))
        else:
            indices = indices.reshape(-1)
        indices.setflags(write=False)
        object.__setattr__(self, "indices", indices)

    @property
    def size(self) -> int:
        """Number of entities in the set."""
        return int(self.indices.shape[0])


def _frozen(a: np.ndarray, dtype) -> np.ndarray:
    a = np.array(a, dtype=dtype, copy=True)
    a.setflags(write=False)
    return a


def simplex_measure(points: np.ndarray, simplices: np.ndarray) -> np.ndarray:
    """Signed measure of simplices (length, area, volume); unsigned when the
    simplex dimension is below the space dimension.

    Shapes: points (n, d), simplices (m, k + 1) -> (m,).
    """
    corners = points[simplices]
    edges = corners[:, 1:] - corners[:, :1]  # (m, k, d)
    k = edges.shape[1]
    factorial = float(np.prod(np.arange(1, k + 1)))
    if edges.shape[2] == k:
        return np.linalg.det(edges) / factorial
    gram = np.einsum("mid,mjd->mij", edges, edges)
    return np.sqrt(np.clip(np.linalg.det(gram), 0.0, None)) / factorial


#: Splits of linear cells into corner simplices, used for measures and quality.
_CORNER_SIMPLICES = {
    "line": ((0, 1),),
    "triangle": ((0, 1, 2),),
    "quad": ((0, 1, 2), (0, 2, 3), (0, 1, 3), (1, 2, 3)),
    "tetra": ((0, 1, 2, 3),),
    "hexahedron": ((0, 1, 3, 4), (1, 2, 3, 6), (1, 4, 5, 6), (3, 4, 6, 7), (1, 3, 4, 6)),
    "wedge": ((0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5)),
}


def _cell_measures(points: np.ndarray, corners: np.ndarray, cell_type: str) -> np.ndarray:
    """Absolute measure of each cell, from its corner simplices. For quads
    the two diagonal splits are averaged, which is exact for planar quads."""
    parts = _CORNER_SIMPLICES[_linear(cell_type)]
    total = sum(np.abs(simplex_measure(points, corners[:, list(p)])) for p in parts)
    return total / 2.0 if cell_type in ("quad", "quad8", "quad9") else total


#: For each quadratic cell type, its non-corner nodes (in meshio/VTK order) as the corners they sit between:
#: the linear (bilinear on quads) interpolant of the corner values there is the mean over those corners.
_NODES_BETWEEN_CORNERS: Mapping[str, tuple[tuple[int, ...], ...]] = MappingProxyType({
    "line3": ((0, 1),),
    "triangle6": ((0, 1), (1, 2), (2, 0)),
    "quad8": ((0, 1), (1, 2), (2, 3), (3, 0)),
    "quad9": ((0, 1), (1, 2), (2, 3), (3, 0), (0, 1, 2, 3)),
    "tetra10": ((0, 1), (1, 2), (0, 2), (0, 3), (1, 3), (2, 3)),
})


def _linear(cell_type: str) -> str:
    return {"line3": "line", "triangle6": "triangle", "quad8": "quad", "quad9": "quad",
            "tetra10": "tetra", "hexahedron27": "hexahedron"}.get(cell_type, cell_type)


@dataclass(frozen=True, eq=False)
class Mesh:
    """An unstructured mesh: one block of cells, named tags and fields.

    Attributes:
        points: (n, dim) float64 node coordinates, dim in {1, 2, 3}.
        cell_type: meshio cell-type name, e.g. ``"triangle"``, ``"tetra10"``.
        cells: (m, k) int64 node indices of each cell, meshio/VTK ordering.
        tags: name -> :class:`Tag` (node sets, facet sets, cell sets).
        point_data: name -> (n, ...) array.
        cell_data: name -> (m, ...) array.
        source: the file the mesh came from, used in error messages.

    The constructor validates: finite coordinates, indices in range, no
    repeated node in a cell, no cell of (near) zero measure, tag indices in
    range, fields of matching length. Unused nodes are allowed here but
    reported by :attr:`unused_nodes`; finite-element spaces refuse them.
    """

    points: np.ndarray
    cell_type: str
    cells: np.ndarray
    tags: Mapping[str, Tag] = field(default_factory=dict)
    point_data: Mapping[str, np.ndarray] = field(default_factory=dict)
    cell_data: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        src = self.source
        points = np.asarray(self.points)
        if points.ndim == 1:
            points = points[:, None]
        if points.ndim != 2 or points.shape[1] not in (1, 2, 3) or points.shape[0] == 0:
            raise MeshError(f"points must have shape (n, 1|2|3), got {points.shape}", src)
        if not np.issubdtype(points.dtype, np.number) or np.issubdtype(points.dtype, np.complexfloating):
            raise MeshError("points are not real numbers", src)
        bad = np.flatnonzero(~np.isfinite(points).all(axis=1))
        if bad.size:
            raise MeshError(f"non-finite coordinates at {bad.size} node(s), first node {bad[0]}", src)
        if self.cell_type not in CELL_TYPES or self.cell_type == "vertex":
            raise MeshError(f"unsupported cell type {self.cell_type!r}", src)
        ctype = CELL_TYPES[self.cell_type]
        cells = np.asarray(self.cells)
        if cells.size and not np.issubdtype(cells.dtype, np.integer):
            if not (np.issubdtype(cells.dtype, np.floating) or cells.dtype == bool) \
                    or not np.all(np.isfinite(cells)) or not np.all(cells == np.round(cells)):
                raise MeshError("cell connectivity is not integer", src)
        cells = cells.reshape(-1, ctype.n_nodes) if cells.ndim == 1 and cells.size % ctype.n_nodes == 0 else cells
        if cells.ndim != 2 or cells.shape[1] != ctype.n_nodes or cells.shape[0] == 0:
            raise MeshError(f"{self.cell_type} cells must have shape (m, {ctype.n_nodes}), got {cells.shape}", src)
        cells = cells.astype(np.int64)
        n = points.shape[0]
        out = np.flatnonzero((cells < 0).any(axis=1) | (cells >= n).any(axis=1))
        if out.size:
            raise MeshError(f"cell {out[0]} refers to a node outside 0..{n - 1} ({out.size} such cells)", src)
        srt = np.sort(cells, axis=1)
        rep = np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))
        if rep.size:
            raise MeshError(f"degenerate cell {rep[0]}: a node repeats ({rep.size} such cells)", src)
        if ctype.tdim == points.shape[1] or ctype.tdim < points.shape[1]:
            measure = _cell_measures(points, cells[:, :ctype.n_corners], _linear(self.cell_type))
            scale = np.ptp(points, axis=0).max() or 1.0
            flat = np.flatnonzero(measure <= 1e-13 * scale ** ctype.tdim)
            if flat.size:
                raise MeshError(f"degenerate cell {flat[0]}: zero measure ({flat.size} such cells)", src)
        object.__setattr__(self, "points", _frozen(points, np.float64))
        object.__setattr__(self, "cells", _frozen(cells, np.int64))
        object.__setattr__(self, "tags", MappingProxyType(self._checked_tags(dict(self.tags))))
        object.__setattr__(self, "point_data", MappingProxyType(self._checked_fields(self.point_data, n, "point")))
        object.__setattr__(self, "cell_data", MappingProxyType(
            self._checked_fields(self.cell_data, cells.shape[0], "cell")))

    def _checked_tags(self, tags: dict) -> dict[str, Tag]:
        n, m = self.points.shape[0], np.shape(self.cells)[0]
        checked = {}
        for name, tag in tags.items():
            if not isinstance(tag, Tag):
                raise MeshError(f"tag {name!r} is not a Tag", self.source)
            limit = m if tag.kind == "cell" else n
            if tag.indices.size and (tag.indices.min() < 0 or tag.indices.max() >= limit):
                raise MeshError(f"tag {name!r} refers to a {'cell' if tag.kind == 'cell' else 'node'} "
                                f"outside 0..{limit - 1}", self.source)
            if tag.kind == "facet" and tag.size and tag.indices.shape[1] > max(
                    (len(f) for f in CELL_TYPES[self.cell_type].facets), default=1):
                raise MeshError(f"facet tag {name!r} has {tag.indices.shape[1]} nodes per facet", self.source)
            checked[str(name)] = tag
        return checked

    def _checked_fields(self, fields: Mapping[str, np.ndarray], length: int, where: str) -> dict:
        checked = {}
        for name, values in fields.items():
            values = np.asarray(values)
            if values.shape[:1] != (length,):
                raise MeshError(f"{where} field {name!r} has {values.shape[:1]} values, expected {length}",
                                self.source)
            checked[str(name)] = values
        return checked

    def __reduce__(self):
        """Pickle support (for worker processes): the read-only mappings travel as dicts."""
        return (Mesh, (self.points, self.cell_type, self.cells, dict(self.tags), dict(self.point_data),
                       dict(self.cell_data), self.source))

    # ------------------------------------------------------------------ basic facts
    @property
    def dim(self) -> int:
        """Geometric dimension (columns of ``points``)."""
        return int(self.points.shape[1])

    @property
    def tdim(self) -> int:
        """Topological dimension of the cells."""
        return CELL_TYPES[self.cell_type].tdim

    @property
    def order(self) -> int:
        """Geometric order of the cells: 1 for linear, 2 for quadratic."""
        return CELL_TYPES[self.cell_type].order

    @property
    def n_points(self) -> int:
        return int(self.points.shape[0])

    @property
    def n_cells(self) -> int:
        return int(self.cells.shape[0])

    @property
    def corner_cells(self) -> np.ndarray:
        """(m, n_corners) corner (vertex) nodes of each cell."""
        return self.cells[:, :CELL_TYPES[self.cell_type].n_corners]

    @property
    def corner_nodes(self) -> np.ndarray:
        """(k,) sorted indices of the nodes that are a corner of some cell (all nodes of a linear mesh)."""
        return np.unique(self.corner_cells)

    @property
    def linear_cell_type(self) -> str:
        """The linear counterpart of the cell type (``triangle6`` -> ``triangle``; itself if linear)."""
        return _linear(self.cell_type)

    @property
    def unused_nodes(self) -> np.ndarray:
        """Indices of nodes that no cell uses."""
        used = np.zeros(self.n_points, dtype=bool)
        used[self.cells.ravel()] = True
        return np.flatnonzero(~used)

    @property
    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) corners, each (dim,)."""
        return self.points.min(axis=0), self.points.max(axis=0)

    def cell_measures(self) -> np.ndarray:
        """(m,) absolute length/area/volume of each cell (straight-sided)."""
        return _cell_measures(self.points, self.corner_cells, _linear(self.cell_type))

    def cell_sizes(self) -> np.ndarray:
        """(m,) local mesh size h: the longest corner-to-corner edge of each cell."""
        corners = self.points[self.corner_cells]
        diff = corners[:, :, None, :] - corners[:, None, :, :]
        return np.sqrt((diff ** 2).sum(-1)).max(axis=(1, 2))

    def quality(self) -> np.ndarray:
        """(m,) shape quality in (0, 1], 1 for the regular simplex/square/cube.

        For each corner simplex S of a cell, q(S) = c_d |S| / (mean squared edge
        length)^(d/2) with c_d chosen so the regular simplex has q = 1 (mean
        ratio); a cell's quality is the minimum over its corner simplices,
        normalised by that of the reference cell's split.
        """
        lin = _linear(self.cell_type)
        if self.tdim == 0 or self.tdim == 1:
            return np.ones(self.n_cells)
        parts = _CORNER_SIMPLICES[lin]
        d = self.tdim

        def ratio(pts, simplices):
            vol = np.abs(simplex_measure(pts, simplices))
            c = pts[simplices]
            e = [(c[:, i] - c[:, j]) for i in range(d + 1) for j in range(i + 1, d + 1)]
            mean_sq = np.mean([np.sum(x * x, axis=-1) for x in e], axis=0)
            regular = {2: np.sqrt(3) / 4, 3: 1 / (6 * np.sqrt(2))}[d]
            return vol / (regular * mean_sq ** (d / 2))

        q = np.min([ratio(self.points, self.corner_cells[:, list(p)]) for p in parts], axis=0)
        ref_pts = {"triangle": np.array([[0, 0], [1, 0], [0.5, np.sqrt(3) / 2]]),
                   "quad": np.array([[0, 0], [1, 0], [1, 1], [0, 1.0]]),
                   "tetra": np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1.0]]),
                   "hexahedron": np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0],
                                           [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1.0]]),
                   "wedge": np.array([[0, 0, 0], [1, 0, 0], [0.5, np.sqrt(3) / 2, 0],
                                      [0, 0, 1], [1, 0, 1], [0.5, np.sqrt(3) / 2, 1.0]])}[lin]
        ref_cells = np.arange(len(ref_pts))[None]
        best = np.min([ratio(ref_pts, ref_cells[:, list(p)]) for p in parts])
        return np.clip(q / best, 0.0, 1.0)

    # ------------------------------------------------------------------ facets
    def facets(self) -> tuple[np.ndarray, np.ndarray]:
        """Unique facets of the mesh.

        Returns:
            facets: (f, c) sorted corner node indices of each unique facet
                (c = 1, 2 or 3; quad facets of hexes have c = 4),
            count: (f,) number of cells sharing the facet (1 on the boundary).
        """
        local = CELL_TYPES[self.cell_type].facets
        sizes = {len(f) for f in local}
        if len(sizes) != 1:
            raise MeshError(f"facets of mixed size in {self.cell_type} cells; split the mesh first", self.source)
        from .skfem_bridge import row_keys

        all_facets = np.concatenate([np.sort(self.cells[:, list(f)], axis=1) for f in local])
        _, first, count = np.unique(row_keys(all_facets, self.n_points), return_index=True, return_counts=True)
        return all_facets[first], count

    def boundary_facets(self) -> np.ndarray:
        """(b, c) sorted corner nodes of the facets on the boundary."""
        facets, count = self.facets()
        return facets[count == 1]

    def outward_normals(self, facets: np.ndarray) -> np.ndarray:
        """(f, 2) outward normals of boundary facets (f, k) of a planar mesh (their first two nodes
        are their corners), each as long as its facet: the tangent turned a quarter, pointing away
        from the centroid of the one cell the facet bounds. For the tags a facet option names."""
        if self.dim != 2 or self.tdim != 2:
            raise MeshError(f"outward normals are for planar meshes, not {self.dim}D {self.cell_type}", self.source)
        n, corners = self.n_points, self.corner_cells
        local = CELL_TYPES[self.linear_cell_type].facets
        ends = [np.concatenate([corners[:, f[k]] for f in local]) for k in (0, 1)]
        keys = np.minimum(*ends) * n + np.maximum(*ends)  # every cell edge, then the cell it belongs to
        cell = np.tile(np.arange(self.n_cells), len(local))
        facets = np.asarray(facets, dtype=np.int64)[:, :2]
        wanted = facets.min(axis=1) * n + facets.max(axis=1)
        order = np.argsort(keys, kind="stable")
        found = np.minimum(np.searchsorted(keys[order], wanted), len(keys) - 1)
        if not np.array_equal(keys[order][found], wanted):
            raise MeshError("a facet is no edge of any cell", self.source)
        tangent = self.points[facets[:, 1]] - self.points[facets[:, 0]]
        normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
        away = self.points[facets].mean(axis=1) - self.points[corners[cell[order[found]]]].mean(axis=1)
        return np.where((np.einsum("ij,ij->i", normal, away) < 0)[:, None], -normal, normal)

    def boundary_nodes(self) -> np.ndarray:
        """Indices of all nodes on the boundary (corner and higher-order nodes)."""
        from .fespace import facet_nodes  # local import: fespace imports this module

        return facet_nodes(self, self.boundary_facets())

    def tag_nodes(self, name: str) -> np.ndarray:
        """Node indices of a tag of any kind (for facet tags: all facet nodes,
        higher-order nodes included)."""
        tag = self.tag(name)
        if tag.kind == "node":
            return np.unique(tag.indices)
        if tag.kind == "cell":
            return np.unique(self.cells[tag.indices])
        from .fespace import facet_nodes

        return facet_nodes(self, tag.indices)

    def tag(self, name: str) -> Tag:
        """The tag called ``name``. A name that is no tag of the mesh may be
        ``boundary`` (every boundary facet) or a condition in the coordinates,
        ``"x<1e-9"``, selecting the boundary facets whose corners all satisfy
        it (see :mod:`graphfem.meshes.selection`). Otherwise a one-line error
        lists the known tags."""
        if name in self.tags:
            return self.tags[name]
        from .selection import derived_tag

        derived = derived_tag(self, str(name))
        if derived is not None:
            return derived
        known = ", ".join(f"{t.name} ({t.kind})" for t in self.tags.values()) or "none"
        raise MeshError(f"unknown tag {name!r}; this mesh has: {known}; or select boundary facets by a condition "
                        "such as \"x<1e-9\"", self.source)

    # ------------------------------------------------------------------ new values
    def with_tags(self, **tags: Tag) -> "Mesh":
        """A copy with extra (or replaced) tags."""
        return replace(self, tags={**self.tags, **tags})

    def with_point_data(self, **fields: np.ndarray) -> "Mesh":
        """A copy with extra point fields."""
        return replace(self, point_data={**self.point_data, **fields})

    def with_boundary_tags(self, **predicates) -> "Mesh":
        """A copy with facet tags from predicates on facet midpoints.

        ``mesh.with_boundary_tags(left=lambda x: np.isclose(x[:, 0], 0))``
        tags every boundary facet whose midpoint x (k, dim) satisfies it.
        """
        bnd = self.boundary_facets()
        mid = self.points[bnd].mean(axis=1)
        new = {name: Tag(name, "facet", bnd[np.asarray(pred(mid), dtype=bool)]) for name, pred in predicates.items()}
        return self.with_tags(**new)

    def linear_submesh(self) -> tuple["Mesh", np.ndarray]:
        """The straight-sided linear mesh of the corner nodes (``triangle6`` -> ``triangle``,
        ``tetra10`` -> ``tetra``, ...) and the (k,) indices of its nodes in this mesh.

        Facet and cell tags carry over (facets by their corners), node tags keep their corner nodes,
        point fields are restricted to the corners; a linear mesh is returned as it is."""
        if self.order == 1:
            return self, np.arange(self.n_points)
        if self.cell_type not in _NODES_BETWEEN_CORNERS:
            raise MeshError(f"{self.cell_type} cells have no linear sub-mesh here", self.source)
        ctype = CELL_TYPES[self.cell_type]
        corners = self.corner_nodes
        new_index = np.full(self.n_points, -1, dtype=np.int64)
        new_index[corners] = np.arange(corners.size)
        tags = {}
        for name, tag in self.tags.items():
            if tag.kind == "cell":
                tags[name] = tag
            elif tag.kind == "node":
                kept = new_index[tag.indices]
                tags[name] = Tag(name, "node", kept[kept >= 0])
            else:
                n_facet_corners = max(len(f) for f in ctype.facets)
                tags[name] = Tag(name, "facet", new_index[tag.indices[:, :n_facet_corners]])
        sub = Mesh(self.points[corners], self.linear_cell_type, new_index[self.corner_cells], tags,
                   {k: np.asarray(v)[corners] for k, v in self.point_data.items()}, dict(self.cell_data),
                   self.source)
        return sub, corners

    def quadratic(self) -> "Mesh":
        """The quadratic mesh of these straight-sided linear cells (``triangle`` -> ``triangle6``, ``quad``
        -> ``quad9``, ``tetra`` -> ``tetra10``; through scikit-fem), with a node at the middle of every edge
        (and face, for quads); the corner nodes keep their indices, tags and point fields, so that
        :meth:`linear_submesh` gives this mesh back. A quadratic mesh is returned as it is."""
        import skfem

        from .skfem_bridge import to_skfem

        if self.order == 2:
            return self
        elevate = {"triangle": skfem.MeshTri2, "quad": skfem.MeshQuad2, "tetra": skfem.MeshTet2}
        if self.cell_type not in elevate or self.point_data:
            what = "point fields" if self.cell_type in elevate else f"{self.cell_type} cells"
            raise MeshError(f"no quadratic mesh of a mesh with {what} here", self.source)
        q = Mesh.from_skfem(elevate[self.cell_type].from_mesh(to_skfem(self, with_tags=False)), self.source)
        # cells may be re-oriented, not renumbered; scikit-fem recomputes the corners' coordinates, to round-off
        scale = float(np.abs(self.points).max()) or 1.0
        if not (np.allclose(q.points[:self.n_points], self.points, rtol=0.0, atol=1e-12 * scale)
                and np.array_equal(np.sort(q.corner_cells, axis=1), np.sort(self.cells, axis=1))):
            raise MeshError("scikit-fem renumbered the corner nodes of the quadratic mesh", self.source)
        points = np.concatenate([self.points, q.points[self.n_points:]])  # the corners exactly as given
        return replace(q, points=points, tags=dict(self.tags), cell_data=dict(self.cell_data))

    def from_corners(self, values: np.ndarray) -> np.ndarray:
        """(n_points, ...) values on this mesh from (k, ...) values at its corner nodes (in the order of
        :meth:`linear_submesh`): the linear interpolant, the mean of the corners a mid-side node lies
        between (exact at the nodes for fields linear on straight-sided cells)."""
        values = np.asarray(values)
        if self.order == 1:
            return values
        out = np.zeros((self.n_points,) + values.shape[1:], dtype=np.result_type(values, float))
        out[self.corner_nodes] = values
        for local, between in enumerate(_NODES_BETWEEN_CORNERS[self.cell_type], start=CELL_TYPES[
                self.cell_type].n_corners):
            out[self.cells[:, local]] = np.mean([out[self.cells[:, c]] for c in between], axis=0)
        return out

    def cleaned(self) -> "Mesh":
        """A copy without unused nodes (node tags and point fields follow)."""
        unused = self.unused_nodes
        if unused.size == 0:
            return self
        keep = np.ones(self.n_points, dtype=bool)
        keep[unused] = False
        new_index = np.cumsum(keep) - 1
        tags = {}
        for name, tag in self.tags.items():
            if tag.kind == "cell":
                tags[name] = tag
                continue
            idx = tag.indices
            ok = keep[idx] if tag.kind == "node" else keep[idx].all(axis=1)
            if not ok.all():
                warn(f"{self.source or 'mesh'}: tag {name!r} lost {int((~ok).sum())} of {len(ok)} entries "
                     "on nodes used by no cell")
            tags[name] = Tag(name, tag.kind, new_index[idx[ok]])
        return replace(self, points=self.points[keep], cells=new_index[self.cells], tags=tags,
                       point_data={k: np.asarray(v)[keep] for k, v in self.point_data.items()})

    def refined(self, times: int = 1) -> "Mesh":
        """Uniformly refined copy (through scikit-fem); facet and cell tags follow."""
        from .skfem_bridge import from_skfem, to_skfem

        mesh = self
        for _ in range(times):
            fine = from_skfem(to_skfem(mesh).refined(), source=self.source)
            lost = {n: t for n, t in mesh.tags.items() if n not in fine.tags}
            if lost:  # scikit-fem drops named boundaries and subdomains of some meshes (tets, hexes)
                fine = fine.with_tags(**_refined_tags(mesh, fine, lost))
            mesh = fine
        return mesh

    # ------------------------------------------------------------------ conversions
    def to_skfem(self):
        """The scikit-fem mesh, with facet tags as ``boundaries`` and cell tags as
        ``subdomains``."""
        from .skfem_bridge import to_skfem

        return to_skfem(self)

    @classmethod
    def from_skfem(cls, m, source: str | None = None) -> "Mesh":
        """A :class:`Mesh` from a scikit-fem mesh, keeping its boundaries and subdomains."""
        from .skfem_bridge import from_skfem

        return from_skfem(m, source=source)

    @classmethod
    def read(cls, path, **kwargs) -> "Mesh":
        """Read any meshio format, with tags (see :func:`graphfem.meshes.io.read`)."""
        from .io import read

        return read(path, **kwargs)

    def write(self, path, point_data: Mapping[str, np.ndarray] | None = None,
              cell_data: Mapping[str, np.ndarray] | None = None,
              units: Mapping[str, str] | None = None, file_format: str | None = None) -> None:
        """Write to VTU/XDMF/any meshio format, atomically (see :func:`graphfem.meshes.io.write`)."""
        from .io import write

        write(path, self, point_data=point_data, cell_data=cell_data, units=units, file_format=file_format)

    # ------------------------------------------------------------------ generators
    @classmethod
    def interval(cls, n: int = 10, a: float = 0.0, b: float = 1.0) -> "Mesh":
        """Uniform 1D mesh of (a, b) with n cells; facet tags ``left``, ``right`` and ``boundary``."""
        x = np.linspace(a, b, n + 1)
        cells = np.stack([np.arange(n), np.arange(1, n + 1)], axis=1)
        return cls(x[:, None], "line", cells, tags={
            "left": Tag("left", "facet", [[0]]), "right": Tag("right", "facet", [[n]]),
            "boundary": Tag("boundary", "facet", [[0], [n]])})

    @classmethod
    def rectangle(cls, nx: int = 8, ny: int | None = None, x0: float = 0.0, x1: float = 1.0,
                  y0: float = 0.0, y1: float = 1.0, cell: str = "triangle", order: int = 1) -> "Mesh":
        """Structured mesh of [x0, x1] x [y0, y1] with facet tags ``left``,
        ``right``, ``bottom``, ``top`` (and ``boundary``).

        Args:
            nx, ny: cells per side (ny defaults to nx).
            cell: ``"triangle"`` or ``"quad"``.
            order: 1, or 2 for an isoparametric quadratic mesh.
        """
        import skfem

        ny = nx if ny is None else ny
        xs, ys = np.linspace(x0, x1, nx + 1), np.linspace(y0, y1, ny + 1)
        if cell == "triangle":
            m = skfem.MeshTri.init_tensor(xs, ys)
        elif cell == "quad":
            m = skfem.MeshQuad.init_tensor(xs, ys)
        else:
            raise MeshError(f"cell must be 'triangle' or 'quad', got {cell!r}")
        if order == 2:
            m = skfem.MeshTri2.from_mesh(m) if cell == "triangle" else skfem.MeshQuad2.from_mesh(m)
        tol = 1e-12 * max(x1 - x0, y1 - y0)
        return cls.from_skfem(m).with_boundary_tags(
            left=lambda x: np.abs(x[:, 0] - x0) < tol, right=lambda x: np.abs(x[:, 0] - x1) < tol,
            bottom=lambda x: np.abs(x[:, 1] - y0) < tol, top=lambda x: np.abs(x[:, 1] - y1) < tol,
            boundary=lambda x: np.ones(len(x), dtype=bool))

    @classmethod
    def unit_square(cls, n: int = 8, cell: str = "triangle", order: int = 1) -> "Mesh":
        """:meth:`rectangle` on the unit square with n cells per side."""
        return cls.rectangle(n, n, cell=cell, order=order)

    @classmethod
    def box(cls, n: int = 4, lower=(0.0, 0.0, 0.0), upper=(1.0, 1.0, 1.0), cell: str = "tetra") -> "Mesh":
        """Structured mesh of a box with facet tags ``xmin``, ``xmax``, ``ymin``,
        ``ymax``, ``zmin``, ``zmax``, ``boundary``."""
        import skfem

        axes = [np.linspace(lo, hi, n + 1) for lo, hi in zip(lower, upper)]
        if cell == "tetra":
            m = skfem.MeshTet.init_tensor(*axes)
        elif cell == "hexahedron":
            m = skfem.MeshHex.init_tensor(*axes)
        else:
            raise MeshError(f"cell must be 'tetra' or 'hexahedron', got {cell!r}")
        tol = 1e-12 * max(np.subtract(upper, lower))
        preds = {}
        for axis, name in enumerate("xyz"):
            preds[f"{name}min"] = (lambda a, v: lambda x: np.abs(x[:, a] - v) < tol)(axis, lower[axis])
            preds[f"{name}max"] = (lambda a, v: lambda x: np.abs(x[:, a] - v) < tol)(axis, upper[axis])
        preds["boundary"] = lambda x: np.ones(len(x), dtype=bool)
        return cls.from_skfem(m).with_boundary_tags(**preds)

    def __repr__(self) -> str:
        tags = ", ".join(f"{t.name}:{t.kind}[{t.size}]" for t in self.tags.values())
        return (f"Mesh({self.n_points} points in {self.dim}D, {self.n_cells} {self.cell_type}"
                f"{', tags ' + tags if tags else ''})")


def _refined_tags(coarse: "Mesh", fine: "Mesh", tags: Mapping[str, Tag]) -> dict[str, Tag]:
    """Tags of ``coarse`` carried to its uniform refinement ``fine``.

    Every fine node sits at a coarse vertex, edge midpoint, face centre or
    cell centre; its *origin* is the set of coarse vertices of every such
    entity it sits on. A fine facet (cell) is a child of the coarse facet
    (cell) whose vertex set is the union of its nodes' origins.
    """
    from itertools import combinations

    from scipy.spatial import cKDTree

    corners = coarse.corner_cells
    k = corners.shape[1]
    subsets = ([(i,) for i in range(k)] + list(combinations(range(k), 2))
               + [f for f in CELL_TYPES[coarse.cell_type].facets if len(f) > 2] + [tuple(range(k))])
    members = [corners[:, list(sub)] for sub in subsets]
    centres = np.concatenate([coarse.points[m].mean(axis=1) for m in members])
    entity = [m for block in members for m in block]
    scale = float(np.ptp(coarse.points, axis=0).max()) or 1.0
    hits = cKDTree(centres).query_ball_point(fine.points, 1e-10 * scale)
    origin = [frozenset(int(v) for j in near for v in entity[j]) for near in hits]

    def parents(rows: np.ndarray) -> list[frozenset]:
        return [frozenset().union(*(origin[i] for i in row)) for row in rows]

    out = {}
    fine_facets = fine.facets()[0]
    for name, tag in tags.items():
        if tag.kind == "node":  # coarse nodes keep their numbers in the refinement
            out[name] = tag
        elif tag.kind == "facet":
            wanted = {frozenset(f.tolist()) for f in tag.indices}
            nodes = set(np.unique(tag.indices).tolist())
            near = np.array([o <= nodes for o in origin], dtype=bool)
            candidates = fine_facets[near[fine_facets].all(axis=1)]
            keep = np.array([u in wanted for u in parents(candidates)], dtype=bool)
            out[name] = Tag(name, "facet", candidates[keep] if len(candidates) else candidates)
        else:
            wanted = {frozenset(c.tolist()) for c in corners[tag.indices]}
            keep = [u in wanted for u in parents(fine.corner_cells)]
            out[name] = Tag(name, "cell", np.flatnonzero(keep))
    return out


def warn(message: str) -> None:
    """Report a mesh problem that was repaired (shown once per call site)."""
    warnings.warn(message, MeshWarning, stacklevel=3)


class MeshWarning(UserWarning):
    """A mesh was repaired or lost information on the way in (split cells,
    removed nodes, dropped side sets)."""
