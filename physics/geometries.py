"""Random 2D domains for surrogate training sets, meshed without gmsh.

Every domain is an outer polygon minus circular holes. It is meshed by a
Delaunay triangulation (scipy) of points spaced h along the boundary and a
jittered grid of spacing h inside, keeping the triangles whose centroid lies
in the domain; the result is unstructured, like a gmsh mesh.

Families:
    ``deformed``: a rectangle whose sides are smooth random curves;
    ``perforated``: a rectangle with one to three circular holes (none where no hole of radius
    ≥ 1.5 h fits two cells from the sides: about 4 % of plates at resolutions 9..24);
    ``polygon``: a random star-shaped polygon (five to nine vertices);
    ``lshape``: an L-shaped domain with a random notch.

Facet tags: ``left``, ``right``, ``bottom``, ``top`` split the outer boundary
by the dominant direction of the outward normal; ``hole`` holds the hole
boundaries (perforated plates only).
"""
from __future__ import annotations

import numpy as np

from graphfem.meshes import Mesh, Tag
from graphfem.meshes.errors import InputError

FAMILIES = ("deformed", "perforated", "polygon", "lshape")
#: the families whose every domain has the facet tags ``left`` and ``right`` (a random polygon may
#: have no side facing right), which the elastic problems clamp and load
LEFT_RIGHT_FAMILIES = ("deformed", "perforated", "lshape")
#: the one ``--geometry`` vocabulary of every generator: a random family is
#: drawn anew for every sample; a fixed shape is the same in every sample
GEOMETRIES = {
    "mixed": "a random domain of a random family, per sample",
    "deformed": "a rectangle with smooth random sides",
    "perforated": "a rectangle with one to three random circular holes",
    "polygon": "a random star-shaped polygon",
    "lshape": "an L-shaped domain with a random notch",
    "lshape-fixed": "the fixed L-shape [-1, 1]^2 minus a quadrant",
    "perforated-fixed": "the fixed unit square with a central hole of radius 0.2",
    "plate": "the fixed 1 x 0.5 plate",
    "channel": "the DFG channel with a random cylinder",
    "interval": "the interval [-1, 1]",
    "square": "the unit square",
    "2d": "a random 2D domain of a random family with left and right sides (elasticity, hyperelastic)",
    "3d": "a random 3D box (elasticity)",
    "disc": "a periodic cell with one central disc (rve)",
    "rve1": "the EquiNO paper's RVE 1, two circular fibres (rve)",
    "rve2": "the EquiNO paper's RVE 2, one elliptic inclusion (rve)",
    "rve3": "the EquiNO paper's RVE 3, three discs (rve)",
    "column": "a granular column (particles)",
    "mixed-3d": "a random 3D particle body",
    "column-3d": "a 3D granular column (particles)",
}


def check_geometry(name: str, accepted: tuple[str, ...], what: str) -> None:
    """Refuse in one line a ``--geometry`` that ``what`` does not take (naming those it does)."""
    if name not in accepted:
        listed = ", ".join(f"{g} ({GEOMETRIES[g]})" if g in GEOMETRIES else g for g in accepted)
        raise InputError(f"--geometry {name}: {what} takes {listed}")


def random_domain(family: str, rng: np.random.Generator, h: float | None = None) -> Mesh:
    """A random mesh of the given family, scaled to fit [0, 1]^2.

    Args:
        family: one of :data:`FAMILIES`, or ``"mixed"`` for a random one.
        rng: the random generator (the only source of randomness).
        h: target mesh size; default uniform in [0.055, 0.1]: meshes of 50 to
            400 nodes (median 160), 12 to 27 edges across (median 17), so
            that a MeshGraphNet of 15 message-passing steps sees most of the
            domain from every node (the former [0.04, 0.075] gave 11 to 34).
    """
    check_geometry(family, FAMILIES + ("mixed",), "a random domain")
    if family == "mixed":
        family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    h = float(rng.uniform(0.055, 0.1)) if h is None else float(h)
    holes = np.zeros((0, 3))
    if family == "deformed":
        outer = _deformed_rectangle(rng, h)
    elif family == "perforated":
        w, hgt = rng.uniform(0.8, 1.0), rng.uniform(0.6, 1.0)
        outer = _resample(np.array([[0, 0], [w, 0], [w, hgt], [0, hgt]]), h)
        holes = _holes(rng, w, hgt, int(rng.integers(1, 4)), h)
    elif family == "polygon":
        k = int(rng.integers(5, 10))
        theta = np.sort(rng.uniform(0, 2 * np.pi, k) + np.arange(k) * 0.3) % (2 * np.pi)
        theta = np.sort(theta)
        radius = rng.uniform(0.3, 0.5, k)
        vertices = np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1) + 0.5
        h *= float(np.ptp(vertices, axis=0).max())  # h relative to the polygon's extent, as for the others
        outer = _resample(vertices, h)
    else:
        cx, cy = rng.uniform(0.35, 0.7, 2)
        outer = _resample(np.array([[0, 0], [1, 0], [1, cy], [cx, cy], [cx, 1], [0, 1]]), h)
    return mesh_domain(outer, holes, h, rng)


def drawn_mesh_size(rng: np.random.Generator, resolution: int | tuple[int, int] | None) -> float | None:
    """The target mesh size h = 1/N of a random domain (:func:`random_domain`) for ``--resolution``:
    None for the family's default; N cells across the largest side; or a range ``(low, high)``, N
    log-uniform in [low, high] per sample, so that one data set spans mesh sizes 1/high to 1/low.
    Only a range draws from ``rng``, so a data set made with one N keeps its samples. N must lie in
    5..400 (one-line :class:`InputError` otherwise)."""
    if resolution is None:
        return None
    low, high = resolution if isinstance(resolution, tuple) else (resolution, resolution)
    shown = ":".join(map(str, resolution)) if isinstance(resolution, tuple) else str(resolution)
    if not (5 <= low <= 400 and 5 <= high <= 400):
        raise InputError(f"--resolution {shown}: cells across the largest side must lie in 5..400")
    if low > high:
        raise InputError(f"--resolution {shown}: a range is LOW:HIGH, the low end first")
    if isinstance(resolution, tuple):
        return 1.0 / float(np.exp(rng.uniform(np.log(low), np.log(high))))
    return 1.0 / resolution


def _deformed_rectangle(rng: np.random.Generator, h: float) -> np.ndarray:
    w, hgt = rng.uniform(0.7, 1.0), rng.uniform(0.6, 1.0)
    square = _resample(np.array([[0, 0], [w, 0], [w, hgt], [0, hgt]]), h / 2)
    x, y = square[:, 0], square[:, 1]
    dx = np.zeros_like(x)
    dy = np.zeros_like(y)
    for k in (1, 2):  # smooth map x -> x + d(x), |∇d| < 0.5 keeps it one-to-one
        a = rng.uniform(-0.06, 0.06, 4) / k
        phase = rng.uniform(0, 2 * np.pi, 4)
        dx += a[0] * np.sin(k * np.pi * y / hgt + phase[0]) + a[1] * np.sin(k * np.pi * x / w + phase[1])
        dy += a[2] * np.sin(k * np.pi * x / w + phase[2]) + a[3] * np.sin(k * np.pi * y / hgt + phase[3])
    return _resample(np.stack([x + dx, y + dy], axis=1), h)


def _holes(rng: np.random.Generator, w: float, hgt: float, count: int, h: float) -> np.ndarray:
    """(k, 3) circles (cx, cy, r) inside the rectangle, apart from its sides and each other."""
    holes: list[tuple[float, float, float]] = []
    for _ in range(50 * count):
        if len(holes) == count:
            break
        r = rng.uniform(max(0.06, 1.5 * h), max(0.17, 1.5 * h + 0.02))
        if min(w, hgt) <= 2 * (r + 2 * h):
            continue
        c = rng.uniform([r + 2 * h, r + 2 * h], [w - r - 2 * h, hgt - r - 2 * h])
        if all(np.hypot(*(c - (x, y))) > r + q + 3 * h for x, y, q in holes):
            holes.append((c[0], c[1], r))
    return np.array(holes).reshape(-1, 3)


def _resample(vertices: np.ndarray, h: float) -> np.ndarray:
    """Points spaced about h along the closed polyline through ``vertices``,
    every vertex kept (so corners stay sharp)."""
    points = []
    for a, b in zip(vertices, np.roll(vertices, -1, axis=0)):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / h)))
        t = np.arange(n)[:, None] / n
        points.append(a + t * (b - a))
    return np.concatenate(points)


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule point-in-polygon test, (k, 2) -> (k,) bool."""
    from matplotlib.path import Path

    return Path(polygon).contains_points(points)


def mesh_domain(outer: np.ndarray, holes: np.ndarray, h: float, rng: np.random.Generator) -> Mesh:
    """Triangulate the polygon ``outer`` (k, 2, boundary points spaced ≈ h)
    minus the circles ``holes`` (c, 3); the result is scaled into [0, 1]^2
    and tagged (see the module docstring)."""
    from scipy.spatial import Delaunay, cKDTree

    boundary = [outer]
    for cx, cy, r in holes:
        n = max(8, int(np.ceil(2 * np.pi * r / h)))
        t = 2 * np.pi * np.arange(n) / n
        boundary.append(np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1))
    boundary_pts = np.concatenate(boundary)
    lo, hi = outer.min(axis=0), outer.max(axis=0)
    xs = np.arange(lo[0] + h / 2, hi[0], h)
    ys = np.arange(lo[1] + h / 2, hi[1], h * np.sqrt(3) / 2)
    grid = np.array([(x + (h / 2 if j % 2 else 0.0), y) for j, y in enumerate(ys) for x in xs])
    grid = grid + rng.uniform(-0.15 * h, 0.15 * h, grid.shape)
    keep = _inside_polygon(grid, outer) & _outside_holes(grid, holes, 0.0)
    dist, _ = cKDTree(boundary_pts).query(grid)
    interior = grid[keep & (dist > 0.6 * h)]
    points = np.concatenate([boundary_pts, interior])
    tri = Delaunay(points).simplices
    centroid = points[tri].mean(axis=1)
    inside = _inside_polygon(centroid, outer) & _outside_holes(centroid, holes, 0.0)
    tri = tri[inside]
    e1, e2 = points[tri[:, 1]] - points[tri[:, 0]], points[tri[:, 2]] - points[tri[:, 0]]
    area = 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    tri = np.where(area[:, None] < 0, tri[:, [0, 2, 1]], tri)
    tri = tri[np.abs(area) > 1e-3 * h * h]
    scale = float((points.max(axis=0) - points.min(axis=0)).max())
    points = (points - points.min(axis=0)) / scale
    mesh = Mesh(points, "triangle", tri).cleaned()
    return tag_boundary(mesh, holes.shape[0] > 0)


def _outside_holes(points: np.ndarray, holes: np.ndarray, margin: float) -> np.ndarray:
    ok = np.ones(len(points), dtype=bool)
    for cx, cy, r in holes:
        ok &= np.hypot(points[:, 0] - cx, points[:, 1] - cy) > r + margin
    return ok


def tag_boundary(mesh: Mesh, has_holes: bool = False) -> Mesh:
    """A triangle mesh with facet tags ``left``, ``right``, ``bottom``, ``top`` by the dominant direction of
    each boundary facet's outward normal; with holes, the boundary components other than the outer one (the
    one with the largest extent) are ``hole``."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    facets = mesh.boundary_facets()
    normal = mesh.outward_normals(facets)
    mid = mesh.points[facets].mean(axis=1)
    is_hole = np.zeros(len(facets), dtype=bool)
    if has_holes:
        n = mesh.n_points
        graph = sp.coo_matrix((np.ones(len(facets)), (facets[:, 0], facets[:, 1])), shape=(n, n))
        _, label = connected_components(graph, directed=False)
        comp = label[facets[:, 0]]
        extent = {c: np.ptp(mid[comp == c], axis=0).max() for c in np.unique(comp)}
        outer = max(extent, key=extent.get)
        is_hole = comp != outer
    side = np.where(np.abs(normal[:, 0]) >= np.abs(normal[:, 1]),
                    np.where(normal[:, 0] < 0, 0, 1), np.where(normal[:, 1] < 0, 2, 3))
    tags = {}
    for k, name in enumerate(("left", "right", "bottom", "top")):
        sel = (side == k) & ~is_hole
        if sel.any():
            tags[name] = Tag(name, "facet", facets[sel])
    if is_hole.any():
        tags["hole"] = Tag("hole", "facet", facets[is_hole])
    return mesh.with_tags(**tags)


__all__ = ["FAMILIES", "drawn_mesh_size", "mesh_domain", "random_domain", "tag_boundary"]
