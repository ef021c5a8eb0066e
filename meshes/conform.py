"""Conforming splits of mixed meshes into simplices.

Every quadrilateral face is cut along the diagonal through its vertex of
smallest global index. Because two cells sharing a face see the same global
indices, they cut it the same way, so the result is conforming without any
communication between cells (Dompierre, Labbé, Vallet & Camarero, 1999).

* quad -> 2 triangles;
* wedge (prism) -> 3 tetrahedra, after rotating the prism so that its
  smallest vertex is local vertex 0 (no new nodes);
* hexahedron -> 12 tetrahedra around a new node at its centroid (each of the
  six faces is cut by the rule above); the new nodes are appended to the
  points and reported.
"""
from __future__ import annotations

import numpy as np

from .mesh import simplex_measure


def split_quads(quads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split quadrilaterals (m, 4), corners in cyclic order.

    Returns (2m, 3) triangles and (2m,) the parent index of each triangle.
    """
    a, b, c, d = quads.T
    vmin = quads.min(axis=1)
    through_ac = (a == vmin) | (c == vmin)
    t1 = np.where(through_ac[:, None], np.stack([a, b, c], 1), np.stack([a, b, d], 1))
    t2 = np.where(through_ac[:, None], np.stack([a, c, d], 1), np.stack([b, c, d], 1))
    parent = np.arange(len(quads))
    return np.concatenate([t1, t2]), np.concatenate([parent, parent])


# Prism symmetries taking each vertex to local position 0 (bottom 0,1,2, top 3,4,5).
_PRISM_ROTATIONS = np.array([
    [0, 1, 2, 3, 4, 5], [1, 2, 0, 4, 5, 3], [2, 0, 1, 5, 3, 4],
    [3, 5, 4, 0, 2, 1], [4, 3, 5, 1, 0, 2], [5, 4, 3, 2, 1, 0],
])


def split_wedges(wedges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split prisms (m, 6) into (3m, 4) tetrahedra; returns tets and parents."""
    rotated = np.take_along_axis(wedges, _PRISM_ROTATIONS[wedges.argmin(axis=1)], axis=1)
    v = rotated.T
    diag_15 = np.minimum(v[1], v[5]) < np.minimum(v[2], v[4])
    case_a = np.stack([np.stack([v[0], v[1], v[2], v[5]], 1), np.stack([v[0], v[1], v[5], v[4]], 1),
                       np.stack([v[0], v[4], v[5], v[3]], 1)])
    case_b = np.stack([np.stack([v[0], v[1], v[2], v[4]], 1), np.stack([v[0], v[4], v[2], v[5]], 1),
                       np.stack([v[0], v[4], v[5], v[3]], 1)])
    tets = np.where(diag_15[None, :, None], case_a, case_b)
    parent = np.tile(np.arange(len(wedges)), 3)
    return tets.reshape(-1, 4), parent


_HEX_FACES = np.array([[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]])


def split_hexes(hexes: np.ndarray, first_new_node: int) -> tuple[np.ndarray, np.ndarray]:
    """Split hexahedra (m, 8) into (12m, 4) tetrahedra around new centroid
    nodes numbered ``first_new_node + i``; returns tets and parents."""
    m = len(hexes)
    centre = first_new_node + np.arange(m)
    tets, parents = [], []
    for face in _HEX_FACES:
        tris, parent = split_quads(hexes[:, face])
        tets.append(np.concatenate([tris, centre[parent][:, None]], axis=1))
        parents.append(parent)
    return np.concatenate(tets), np.concatenate(parents)


def orient_simplices(points: np.ndarray, simplices: np.ndarray) -> np.ndarray:
    """Swap two nodes of every negatively oriented simplex (full-dimensional only)."""
    if simplices.shape[1] != points.shape[1] + 1:
        return simplices
    neg = simplex_measure(points, simplices) < 0
    out = simplices.copy()
    out[neg, 0], out[neg, 1] = simplices[neg, 1], simplices[neg, 0]
    return out
