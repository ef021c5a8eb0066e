"""The DFG flow-around-a-cylinder channel (Schäfer & Turek 1996), meshed without gmsh.

Domain: the channel [0, L] × [0, H] minus the disc of radius r about (cx, cy);
the benchmark values are L = 2.2, H = 0.41, (cx, cy) = (0.2, 0.2), r = 0.05.

The mesh is block-structured, so the test suite does not depend on the
optional gmsh extra:

* an O-grid in the box [bx0, bx0 + H] × [0, H] around the cylinder: ``n_around``
  nodes on the circle (the front and back points (cx ∓ r, cy) among them), joined by straight lines to as many nodes spread
  uniformly along the box sides (corner to corner), with geometrically graded
  rings whose first and last layers are about as thick as the cells are wide;
* a structured block upstream of the box (when the box does not touch the
  inlet) and one downstream, whose columns widen geometrically from the box's
  cell size up to ``max_stretch`` times it;
* every quadrilateral is cut along its shorter diagonal.

With ``order=2`` the mesh is isoparametric (``triangle6``): the mid-side node
of each edge on the cylinder sits on the circle, so P2 velocity sees the
curved boundary with O(h³) geometric error instead of the O(h²) of a polygon
(which otherwise dominates the drag and lift errors).

Facet tags: ``inlet`` (x = 0), ``outlet`` (x = L), ``walls`` (y = 0 and y = H),
``cylinder``.
"""
from __future__ import annotations

import numpy as np

from graphfem.meshes import Mesh, Tag
from graphfem.meshes.errors import InputError

#: The DFG 2D benchmark geometry.
DFG = {"length": 2.2, "height": 0.41, "centre": (0.2, 0.2), "radius": 0.05}


def _graded(total: float, first: float, last: float) -> np.ndarray:
    """Increasing cumulative fractions s_0 = 0 < ... < s_n = 1 of ``total``
    whose steps grow geometrically from about ``first`` to about ``last``."""
    best = None
    for n in range(1, 400):
        q = (last / first) ** (1.0 / max(n - 1, 1)) if n > 1 else 1.0
        length = first * n if abs(q - 1) < 1e-12 else first * (q ** n - 1) / (q - 1)
        if best is None or abs(np.log(length / total)) < best[0]:
            best = (abs(np.log(length / total)), n, q)
    _, n, q = best
    steps = first * q ** np.arange(n)
    s = np.concatenate([[0.0], np.cumsum(steps)])
    return s / s[-1]


def _columns(start: float, stop: float, h0: float, h_max: float, growth: float = 1.08) -> np.ndarray:
    """Abscissae from ``start`` to ``stop``: steps start at h0 and grow by
    ``growth`` per column up to h_max (then stay), last one stretched to fit."""
    xs, h = [start], h0
    while xs[-1] + 0.5 * h < stop:
        xs.append(xs[-1] + h)
        h = min(h * growth, h_max)
    xs[-1] = stop
    xs = np.array(xs)
    return np.linspace(start, stop, 2) if len(xs) < 2 else xs


def _split_quads(points: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """Triangles (2q, 3), counter-clockwise, cutting each quad (q, 4) along its shorter diagonal."""
    p = points[quads]
    d02 = np.linalg.norm(p[:, 2] - p[:, 0], axis=1)
    d13 = np.linalg.norm(p[:, 3] - p[:, 1], axis=1)
    a = np.where((d02 <= d13)[:, None], quads[:, [0, 1, 2]], quads[:, [0, 1, 3]])
    b = np.where((d02 <= d13)[:, None], quads[:, [0, 2, 3]], quads[:, [1, 2, 3]])
    tri = np.concatenate([a, b])
    e1, e2 = points[tri[:, 1]] - points[tri[:, 0]], points[tri[:, 2]] - points[tri[:, 0]]
    clockwise = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] < 0
    tri[clockwise] = tri[clockwise][:, [0, 2, 1]]
    return tri


def channel_mesh(n_around: int = 64, order: int = 2, length: float = DFG["length"],
                 height: float = DFG["height"], centre: tuple[float, float] = DFG["centre"],
                 radius: float = DFG["radius"], max_stretch: float = 2.5) -> Mesh:
    """The channel [0, length] × [0, height] with a circular hole, tagged
    ``inlet``, ``outlet``, ``walls`` and ``cylinder``.

    Args:
        n_around: cells around the cylinder (a multiple of 8, at least 16); it
            sets every other size: about ``n_around**2 / 1.4`` triangles for
            the DFG geometry (64 -> ~3k, 128 -> ~12k).
        order: 1 for straight ``triangle`` cells, 2 for isoparametric
            ``triangle6`` cells with the cylinder's edges on the circle.
        length, height, centre, radius: the geometry (DFG values by default).
        max_stretch: the downstream cells widen up to this multiple of the box's cell size.

    Raises:
        InputError: a cylinder too close to the walls or the inlet, a bad size.
    """
    n = int(n_around)
    if n < 16 or n % 8:
        raise InputError(f"n_around must be a multiple of 8 and at least 16, got {n_around}")
    if order not in (1, 2):
        raise InputError(f"order must be 1 or 2, got {order}")
    cx, cy = map(float, centre)
    H, L, r = float(height), float(length), float(radius)
    bx0 = max(0.0, cx - H / 2)
    bx1 = bx0 + H
    clearance = min(cx - r - bx0, bx1 - cx - r, cy - r, H - cy - r)
    if r <= 0 or clearance < 0.5 * r or bx1 >= L:
        raise InputError(f"cylinder of radius {r} at ({cx}, {cy}) does not fit the O-grid box "
                         f"[{bx0:g}, {bx1:g}] x [0, {H:g}] with clearance r/2 (or the channel is too short)")
    m = n // 4
    # box boundary, counter-clockwise from the bottom-right corner: right, top, left, bottom sides
    corners = np.array([[bx1, 0.0], [bx1, H], [bx0, H], [bx0, 0.0]])
    t = np.arange(m) / m
    outer = np.concatenate([corners[k] + t[:, None] * (corners[(k + 1) % 4] - corners[k]) for k in range(4)])
    angles = np.unwrap(np.arctan2(corners[:, 1] - cy, corners[:, 0] - cx))
    angles = np.concatenate([angles, [angles[0] + 2 * np.pi]])
    # each side's angles run piecewise linearly through the axis direction at its middle node, so the
    # front and back stagnation points (cx ± r, cy) are nodes: pressure probes there need no search
    axis = np.array([0.0, 0.5, 1.0, 1.5]) * np.pi  # angles[0] (bottom-right corner) lies in (-pi/2, 0)
    half = np.arange(m // 2) / (m // 2)
    theta = np.concatenate([np.concatenate([angles[k] + half * (axis[k] - angles[k]),
                                            axis[k] + half * (angles[k + 1] - axis[k])]) for k in range(4)])
    inner = np.stack([cx + r * np.cos(theta), cy + r * np.sin(theta)], axis=1)
    h_around, h_box = 2 * np.pi * r / n, H / m
    distance = np.linalg.norm(outer - inner, axis=1).mean()
    s = _graded(distance, 0.8 * h_around, h_box)
    rings = len(s) - 1
    ogrid = inner[None] + s[:, None, None] * (outer - inner)[None]  # (rings + 1, n, 2)
    points = [ogrid.reshape(-1, 2)]
    idx = np.arange((rings + 1) * n).reshape(rings + 1, n)
    quads = [np.stack([idx[:-1], np.roll(idx[:-1], -1, axis=1), np.roll(idx[1:], -1, axis=1), idx[1:]],
                      axis=-1).reshape(-1, 4)]
    count = (rings + 1) * n
    ys = np.linspace(0.0, H, m + 1)

    def block(xs: np.ndarray, left: np.ndarray | None, right: np.ndarray | None) -> None:
        """A structured block over columns xs, reusing the given box nodes (m + 1,) at either end."""
        nonlocal count
        ids = np.empty((len(xs), m + 1), dtype=np.int64)
        new_cols = [j for j in range(len(xs)) if not (j == 0 and left is not None)
                    and not (j == len(xs) - 1 and right is not None)]
        fresh = np.stack(np.meshgrid(xs[new_cols], ys, indexing="ij"), axis=-1).reshape(-1, 2)
        ids[new_cols] = count + np.arange(len(fresh)).reshape(len(new_cols), m + 1)
        count += len(fresh)
        points.append(fresh)
        if left is not None:
            ids[0] = left
        if right is not None:
            ids[-1] = right
        quads.append(np.stack([ids[:-1, :-1], ids[1:, :-1], ids[1:, 1:], ids[:-1, 1:]], axis=-1).reshape(-1, 4))

    ring = idx[-1]
    right_side = np.append(ring[:m], ring[m])                        # bottom-right -> top-right
    left_side = np.append(ring[2 * m:3 * m], ring[3 * m])[::-1]      # bottom-left -> top-left
    if bx0 > 0:
        block(_columns(0.0, bx0, h_box, h_box), None, left_side)
    block(_columns(bx1, L, h_box, max_stretch * h_box), right_side, None)
    points = np.concatenate(points)
    triangles = _split_quads(points, np.concatenate(quads))
    mesh = Mesh(points, "triangle", triangles)
    if order == 2:
        mesh = _quadratic(mesh, (cx, cy), r)
    tol = 1e-9 * L
    return mesh.with_boundary_tags(
        inlet=lambda x: np.abs(x[:, 0]) < tol, outlet=lambda x: np.abs(x[:, 0] - L) < tol,
        walls=lambda x: (np.abs(x[:, 1]) < tol) | (np.abs(x[:, 1] - H) < tol),
        cylinder=lambda x: np.hypot(x[:, 0] - cx, x[:, 1] - cy) < r + 0.25 * clearance)


def _quadratic(mesh: Mesh, centre: tuple[float, float], radius: float) -> Mesh:
    """``triangle6`` cells from ``triangle`` cells; mid-side nodes of edges
    whose ends lie on the circle are moved onto it."""
    tri = mesh.cells
    local = ((0, 1), (1, 2), (2, 0))  # meshio triangle6: nodes 3, 4, 5 on these edges
    edges = np.concatenate([np.sort(tri[:, list(e)], axis=1) for e in local])
    unique, inverse = np.unique(edges, axis=0, return_inverse=True)
    p = mesh.points
    mid = p[unique].mean(axis=1)
    c = np.asarray(centre)
    on_circle = (np.abs(np.hypot(*(p[unique[:, 0]] - c).T) - radius) < 1e-9) & \
                (np.abs(np.hypot(*(p[unique[:, 1]] - c).T) - radius) < 1e-9)
    d = mid[on_circle] - c
    mid[on_circle] = c + radius * d / np.linalg.norm(d, axis=1, keepdims=True)
    mids = mesh.n_points + inverse.reshape(3, -1).T
    return Mesh(np.concatenate([p, mid]), "triangle6", np.concatenate([tri, mids], axis=1))


def dfg_mesh(n_around: int = 64, order: int = 2) -> Mesh:
    """The DFG 2D benchmark channel (2.2 × 0.41, cylinder r = 0.05 at (0.2, 0.2))."""
    return channel_mesh(n_around, order=order, **DFG)
