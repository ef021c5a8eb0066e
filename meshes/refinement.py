"""Undoing uniform refinement: the coarse mesh of a red-refined triangle mesh.

Uniform ("red") refinement splits every triangle ABC into four through its
edge midpoints: three corner children (A, m_AB, m_CA), ... and the central
child (m_AB, m_BC, m_CA). :func:`unrefined` finds, from the geometry alone
(any node order, any file format), the mesh whose refinement a given mesh
is, so that a model trained on a hierarchy of nested meshes can rebuild the
same hierarchy below a mesh a user gives:

1. the vertices split into coarse vertices C and edge midpoints M: starting
   from a corner of the boundary (a boundary vertex whose two boundary
   neighbours are not collinear with it, which no midpoint can be), every
   neighbour of a coarse vertex c is a midpoint m, and the vertex at
   2 x_m − x_c is the other end of that coarse edge, hence coarse;
2. every central child (three midpoints p, q, r) gives its parent, whose
   vertices are x_p + x_q − x_r and its two cyclic variants;
3. the candidate is accepted only if its own refinement reproduces the
   given vertices and triangles exactly (up to node and cell order).

A mesh that is not such a refinement gives ``None``.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from .mesh import Mesh


def _neighbours(cells: np.ndarray, n: int) -> list[np.ndarray]:
    """Vertex adjacency lists of a triangle mesh: (n,) arrays of neighbour indices."""
    edges = np.concatenate([cells[:, [0, 1]], cells[:, [1, 2]], cells[:, [2, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    both = np.concatenate([edges, edges[:, ::-1]])
    both = both[np.argsort(both[:, 0], kind="stable")]
    split = np.searchsorted(both[:, 0], np.arange(n + 1))
    return [both[split[i]:split[i + 1], 1] for i in range(n)]


def _corner_seeds(mesh: Mesh, tol: float) -> list[int]:
    """Boundary vertices whose two boundary neighbours are not collinear with them."""
    edges = np.sort(np.concatenate([mesh.cells[:, [0, 1]], mesh.cells[:, [1, 2]], mesh.cells[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    facets = unique[counts == 1]
    seeds = []
    for v in np.unique(facets):
        ends = facets[(facets == v).any(axis=1)].ravel()
        ends = ends[ends != v]
        if ends.size != 2:
            continue
        a, b = mesh.points[ends, :2] - mesh.points[v, :2]
        cross = a[0] * b[1] - a[1] * b[0]
        if abs(cross) > tol * np.linalg.norm(a) * np.linalg.norm(b):
            seeds.append(int(v))
    return seeds


def _classify(points: np.ndarray, neighbours: list[np.ndarray], seed: int, tol: float) -> np.ndarray | None:
    """(n,) bool, True on coarse vertices, by the propagation of the module
    docstring from ``seed``; ``None`` where the geometry contradicts it."""
    n = len(points)
    state = np.zeros(n, dtype=np.int8)  # 0 unknown, 1 coarse, 2 midpoint
    state[seed] = 1
    queue = deque([seed])
    while queue:
        v = queue.popleft()
        if state[v] == 1:
            for m in neighbours[v]:
                if state[m] == 1:
                    return None
                if state[m] == 0:
                    state[m] = 2
                    queue.append(m)
                partner = _partner(points, neighbours, m, v, tol)
                if partner is None or state[partner] == 2:
                    return None
                if state[partner] == 0:
                    state[partner] = 1
                    queue.append(partner)
    return None if np.any(state == 0) else state == 1


def _partner(points, neighbours, m: int, c: int, tol: float) -> int | None:
    """The neighbour of midpoint ``m`` at 2 x_m − x_c, if there is one."""
    target = 2.0 * points[m] - points[c]
    near = neighbours[m]
    d = np.linalg.norm(points[near] - target, axis=1)
    k = int(np.argmin(d))
    return int(near[k]) if d[k] <= tol * np.linalg.norm(points[m] - points[c]) else None


def unrefined(mesh: Mesh) -> Mesh | None:
    """The triangle mesh whose uniform refinement is ``mesh``, or ``None``.

    The coarse mesh's vertices are a subset of the given mesh's, in their
    original order; its tags are those of the given mesh (:func:`_parent_tags`). Only triangle meshes are recognised.
    """
    from scipy.spatial import cKDTree

    if mesh.cell_type != "triangle" or mesh.n_cells % 4 or mesh.n_cells < 4:
        return None
    points = mesh.points[:, :2]
    tol = 1e-8
    neighbours = _neighbours(mesh.cells, mesh.n_points)
    for seed in _corner_seeds(mesh, 1e-6)[:4]:
        coarse = _classify(points, neighbours, seed, tol)
        if coarse is None:
            continue
        candidate = _parents(mesh, coarse, tol)
        if candidate is not None and _refines_to(candidate, mesh, cKDTree(points)):
            return candidate
    return None


def _parents(mesh: Mesh, coarse: np.ndarray, tol: float) -> Mesh | None:
    """The parent triangles of the central children, as a Mesh on the coarse vertices."""
    from scipy.spatial import cKDTree

    central_cells = np.flatnonzero(~coarse[mesh.cells].any(axis=1))
    central = mesh.cells[central_cells]
    if 4 * len(central) != mesh.n_cells:
        return None
    index = np.flatnonzero(coarse)
    x = mesh.points[index, :2]
    p, q, r = (mesh.points[central[:, k], :2] for k in range(3))
    corners = np.stack([p + r - q, p + q - r, q + r - p], axis=1)  # parents of edges pq, qr, rp: A, B, C
    d, j = cKDTree(x).query(corners.reshape(-1, 2))
    h = np.linalg.norm(p - q, axis=1).repeat(3)
    if np.any(d > tol * 2 * h):
        return None
    cells = j.reshape(-1, 3)
    a, b, c = (x[cells[:, k]] for k in range(3))
    flip = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0] < 0
    cells[flip] = cells[flip][:, [0, 2, 1]]
    parent = Mesh(points=mesh.points[index], cell_type="triangle", cells=cells, source=mesh.source)
    return parent.with_tags(**_parent_tags(mesh, parent, index, central_cells))


def _parent_tags(fine: Mesh, parent: Mesh, index: np.ndarray, central_cells: np.ndarray) -> dict:
    """The tags of ``fine`` on its parent mesh: a coarse facet is tagged when
    both its halves are, a coarse cell when its central child is, a coarse
    vertex when it is tagged in ``fine``. ``index`` maps parent vertices to
    fine ones; ``central_cells`` are the fine central children, one per parent cell."""
    from scipy.spatial import cKDTree

    from .mesh import Tag

    coarse_of = np.full(fine.n_points, -1)
    coarse_of[index] = np.arange(index.size)
    facets = np.sort(np.concatenate([parent.cells[:, [0, 1]], parent.cells[:, [1, 2]], parent.cells[:, [2, 0]]]),
                     axis=1)
    facets = np.unique(facets, axis=0)
    _, mid = cKDTree(fine.points[:, :2]).query(parent.points[facets].mean(axis=1)[:, :2])
    halves = [np.sort(np.stack([index[facets[:, k]], mid], axis=1), axis=1) for k in (0, 1)]
    tags = {}
    for name, tag in fine.tags.items():
        if tag.kind == "facet":
            known = {tuple(f) for f in np.sort(np.asarray(tag.indices), axis=1)}
            keep = [all(tuple(h[i]) in known for h in halves) for i in range(len(facets))]
            tags[name] = Tag(name, "facet", facets[np.asarray(keep, dtype=bool)])
        elif tag.kind == "cell":
            tags[name] = Tag(name, "cell", np.flatnonzero(np.isin(central_cells, tag.indices)))
        else:
            nodes = coarse_of[np.asarray(tag.indices)]
            tags[name] = Tag(name, tag.kind, nodes[nodes >= 0])
    return tags


def _refines_to(coarse: Mesh, fine: Mesh, tree) -> bool:
    """Whether the refinement of ``coarse`` has exactly the vertices and triangles of ``fine``."""
    refined = Mesh(points=coarse.points, cell_type="triangle", cells=coarse.cells).refined()
    if refined.n_points != fine.n_points or refined.n_cells != fine.n_cells:
        return False
    d, match = tree.query(refined.points[:, :2])
    scale = float(np.ptp(fine.points[:, :2], axis=0).max())
    if np.any(d > 1e-9 * scale) or np.unique(match).size != fine.n_points:
        return False
    ours = {tuple(c) for c in np.sort(match[refined.cells], axis=1)}
    return ours == {tuple(c) for c in np.sort(fine.cells, axis=1)}


def hierarchy_below(mesh: Mesh, levels: int) -> list[Mesh]:
    """``mesh`` and up to ``levels`` successive unrefinements of it, fine to coarse
    (stops at the first mesh that is not a uniform refinement)."""
    chain = [mesh]
    while len(chain) <= levels:
        coarse = unrefined(chain[-1])
        if coarse is None:
            break
        chain.append(coarse)
    return chain


__all__ = ["hierarchy_below", "unrefined"]
