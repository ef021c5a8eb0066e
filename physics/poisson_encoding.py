"""Problem definitions as a surrogate sees them: options -> node features,
random parameters for datasets, and the FE reference solve.

Only ``poisson`` for now: −∇·(κ∇u) = f, u = g_t on Dirichlet tags t, zero
flux elsewhere. The encoding uses
the exact symmetries of the problem, so that a model trained on unit-size
domains with O(1) data applies to any size and magnitude:

* length: x' = (x − x_min)/L with L the largest bounding-box side; then
  −∇'·(κ∇'u) = L² f;
* conductivity: κ' = κ/κ_h with κ_h the area-weighted harmonic mean of κ
  (the conductivity of the equivalent homogeneous body in series), and
  f' = L² f/κ_h (u is unchanged);
* linearity: the model predicts u/s from f'/s and g/s, and the prediction
  is multiplied back by s, with s = max(max|g|, ⟨|f'|⟩ D²/2), where ⟨|f'|⟩
  is the area mean of |f'| and D the largest distance (in units of L) from
  a node to the Dirichlet set, at least the largest local mesh size: D²/2
  is the peak of the solution of −u'' = 1 on [0, D], u(0) = 0, u'(D) = 0. On the training data,
  the 95th/5th percentile ratio of rms(u)/s is 5.5 with this s; it was 32
  with s = max(max|g|, max|L² f/κ_max|/8), which left some targets 400x
  smaller than others and the relative error of those samples near 1.

Node features (in this order, :data:`POISSON_FEATURES`): log κ' (mean over
the node's cells), f'/s, Dirichlet flag, g/s (0 off Dirichlet nodes),
boundary flag, local mesh size h/L, distance to the nearest Dirichlet node
/L, and a global blend of the Dirichlet data, Σ_t w_t g_t / Σ_t w_t / s with
w_t = d_t⁻² and d_t the distance to Dirichlet tag t (= g/s on Dirichlet
nodes). The blend carries the boundary data across the whole domain, which
L message-passing steps alone cannot do on meshes more than L hops across.
Edge features: ``[dx, |dx|]/h_i`` from :func:`graphfem.meshes.to_graph`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from graphfem.meshes import Mesh
from graphfem.meshes.errors import InputError

from .options import split_pair

POISSON_FEATURES = ("log_kappa", "source", "dirichlet", "dirichlet_value", "boundary", "h",
                    "dirichlet_distance", "blended_dirichlet_value")


@dataclass
class PoissonCase:
    """One Poisson problem on one mesh.

    Attributes:
        kappa: (m,) conductivity per cell, > 0.
        source: (n,) source f at the nodes.
        dirichlet: tag -> value of u on that tag (later tags win on shared nodes).
    """

    kappa: np.ndarray
    source: np.ndarray
    dirichlet: dict[str, float] = field(default_factory=dict)

    def params(self) -> dict:
        """JSON-friendly summary (the arrays are stored separately)."""
        return {"dirichlet": dict(self.dirichlet), "kappa_range": [float(self.kappa.min()), float(self.kappa.max())]}


# ------------------------------------------------------------------ user options
def parse_pairs(items, what: str) -> dict[str, float]:
    """``["TAG=VALUE", ...]`` or a mapping -> {tag: float}; one-line error otherwise."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        pairs = items.items()
    else:
        pairs = []
        for item in items:
            tag, value = split_pair(str(item))
            if not tag:
                raise InputError(f"{what} must be TAG=VALUE, got {item!r}")
            pairs.append((tag, value))
    out = {}
    for tag, value in pairs:
        if callable(value):
            raise InputError(f"{what} {tag}: the surrogate takes one constant value per tag, not an expression")
        try:
            out[str(tag)] = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{what} value for tag {tag!r} is not a number: {value!r}") from None
    return out


def _cell_values(mesh: Mesh, value, name: str) -> np.ndarray:
    """κ as a number, a cell array, a cell/point field name, a callable of x (dim, k),
    or ``TAG=V[,TAG=V]`` cell tags (default 1)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return np.full(mesh.n_cells, float(text))
        except ValueError:
            pass
        if "=" in text:
            out = np.ones(mesh.n_cells)
            for tag, v in parse_pairs(text.split(","), name).items():
                t = mesh.tag(tag)
                if t.kind != "cell":
                    raise InputError(f"{name}: tag {tag!r} is a {t.kind} tag; give a cell tag", mesh.source)
                out[t.indices] = v
            return out
        if text in mesh.cell_data:
            return np.asarray(mesh.cell_data[text], dtype=float).reshape(-1)
        if text in mesh.point_data:
            return np.asarray(mesh.point_data[text], dtype=float)[mesh.corner_cells].mean(axis=1)
        raise InputError(f"{name} {text!r} is neither a number nor a field of the mesh", mesh.source)
    if callable(value):  # κ(x) with x (dim, k), evaluated at cell centroids
        return np.asarray(value(mesh.points[mesh.corner_cells].mean(axis=1).T), dtype=float).reshape(-1)
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(mesh.n_cells, float(arr))
    if arr.shape == (mesh.n_cells,):
        return arr
    if arr.shape == (mesh.n_points,):
        return arr[mesh.corner_cells].mean(axis=1)
    raise InputError(f"{name} has shape {arr.shape}; expected a number, {mesh.n_cells} cell or "
                     f"{mesh.n_points} point values", mesh.source)


def _node_values(mesh: Mesh, value, name: str) -> np.ndarray:
    """f as a number, a point array, a point field name or a callable of x (dim, n)."""
    if isinstance(value, str):
        try:
            return np.full(mesh.n_points, float(value))
        except ValueError:
            if value in mesh.point_data:
                return np.asarray(mesh.point_data[value], dtype=float).reshape(-1)
            raise InputError(f"{name} {value!r} is neither a number nor a point field of the mesh",
                             mesh.source) from None
    if callable(value):  # f(x) with x (dim, n), evaluated at the nodes
        return np.asarray(value(mesh.points.T), dtype=float).reshape(-1)
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(mesh.n_points, float(arr))
    if arr.shape == (mesh.n_points,):
        return arr
    raise InputError(f"{name} has shape {arr.shape}; expected a number or {mesh.n_points} point values",
                     mesh.source)


def poisson_case(mesh: Mesh, kappa=1.0, source=1.0, dirichlet=None, neumann=None) -> PoissonCase:
    """Check the options of ``graphfem solve poisson`` against the mesh and
    what the surrogate supports; with no Dirichlet tag, u = 0 on the whole boundary.

    Raises:
        InputError / MeshError: one line naming the option (unknown tag,
            non-positive κ, non-zero Neumann flux, non-finite values).
    """
    k = _cell_values(mesh, kappa, "kappa")
    f = _node_values(mesh, source, "source")
    if not np.isfinite(k).all() or k.min() <= 0:
        raise InputError("kappa must be finite and positive everywhere", mesh.source)
    if not np.isfinite(f).all():
        raise InputError("source holds NaN or infinite values", mesh.source)
    for tag, value in parse_pairs(neumann, "--neumann").items():
        mesh.tag(tag)
        if value != 0.0:
            raise InputError(f"--neumann {tag}={value:g}: the surrogate was trained with zero flux on "
                             "non-Dirichlet boundaries only", mesh.source)
    bc = parse_pairs(dirichlet, "--dirichlet")
    for tag in bc:
        t = mesh.tag(tag)
        if t.kind == "cell":
            raise InputError(f"--dirichlet on cell tag {tag!r}: give a facet or node tag", mesh.source)
    return PoissonCase(k, f, bc)


# ------------------------------------------------------------------ encoding
def dirichlet_nodes(mesh: Mesh, case: PoissonCase) -> tuple[np.ndarray, np.ndarray]:
    """(n,) bool Dirichlet flag and (n,) value (0 off Dirichlet nodes); the
    whole boundary with u = 0 when no tag is given."""
    mask = np.zeros(mesh.n_points, dtype=bool)
    value = np.zeros(mesh.n_points)
    if not case.dirichlet:
        mask[mesh.boundary_nodes()] = True
        return mask, value
    for tag, v in case.dirichlet.items():
        nodes = mesh.tag_nodes(tag)
        mask[nodes] = True
        value[nodes] = v
    return mask, value


def lumped_mass(mesh: Mesh) -> np.ndarray:
    """(n,) row sums of the P1 mass matrix on a triangle mesh: w_i = Σ_{T∋i} |T|/3."""
    area = mesh.cell_measures()
    return np.bincount(mesh.corner_cells.ravel(), weights=np.repeat(area / 3.0, 3), minlength=mesh.n_points)


def dirichlet_blend(mesh: Mesh, case: PoissonCase, pos: np.ndarray, mask: np.ndarray, g: np.ndarray) -> np.ndarray:
    """(n,) Σ_t g_t d_t⁻² / Σ_t d_t⁻² over the Dirichlet tags t, with d_t the
    distance from a node to the nearest node of tag t (``pos`` coordinates);
    g itself on Dirichlet nodes, 0 with no tag (u = 0 on the whole boundary).
    One KD-tree query per tag: O(T n log n)."""
    from scipy.spatial import cKDTree

    out = g.copy()
    if not case.dirichlet:
        return out
    num = np.zeros(mesh.n_points)
    den = np.zeros(mesh.n_points)
    for tag, value in case.dirichlet.items():
        d = cKDTree(pos[mesh.tag_nodes(tag)]).query(pos)[0]
        weight = 1.0 / np.maximum(d, 1e-12) ** 2
        num += weight * value
        den += weight
    free = ~mask
    out[free] = num[free] / den[free]
    return out


def _encoding(mesh: Mesh, case: PoissonCase) -> dict:
    """The pieces of the encoding (module docstring): columns that do not depend on the
    data (log κ', Dirichlet flag, boundary flag, h, wall distance; (n,) each), the
    dimensionless source f' and Dirichlet values g and their blend (n,), and the two
    scales s_g = max|g| and s_f = ⟨|f'|⟩ D²/2."""
    from scipy.spatial import cKDTree

    from graphfem.meshes.graph import mesh_edges

    lo = mesh.points.min(axis=0)
    L = float(np.ptp(mesh.points, axis=0).max())
    pos = (mesh.points - lo) / L
    area = mesh.cell_measures() / (L * L)
    k_ref = float(area.sum() / (area / case.kappa).sum())
    f = case.source * L * L / k_ref
    mask, g = dirichlet_nodes(mesh, case)
    d_nodes = np.flatnonzero(mask)
    wall = cKDTree(pos[d_nodes]).query(pos)[0]
    n = mesh.n_points
    edges = mesh_edges(mesh)
    dist = np.linalg.norm(pos[edges[0]] - pos[edges[1]], axis=1)
    h = np.bincount(edges[1], weights=dist, minlength=n) / np.maximum(np.bincount(edges[1], minlength=n), 1)
    w = lumped_mass(mesh) / (L * L)
    f_mean = float((w * np.abs(f)).sum() / w.sum())
    reach = max(float(wall.max()), float(h.max()))  # D, at least one cell
    corners = mesh.corner_cells
    log_k = np.log(case.kappa / k_ref)
    count = np.bincount(corners.ravel(), minlength=n)
    node_log_k = np.bincount(corners.ravel(), weights=np.repeat(log_k, corners.shape[1]), minlength=n) / np.maximum(count, 1)
    boundary = np.zeros(n)
    boundary[mesh.boundary_nodes()] = 1.0
    return {"log_k": node_log_k, "f": f, "mask": mask, "g": g, "boundary": boundary, "h": h, "wall": wall,
            "blend": dirichlet_blend(mesh, case, pos, mask, g), "s_g": float(np.abs(g).max()),
            "s_f": f_mean * reach ** 2 / 2.0}


def _columns(e: dict, f: np.ndarray, g: np.ndarray, blend: np.ndarray) -> np.ndarray:
    """(n, 8) the :data:`POISSON_FEATURES` columns with the given (already scaled) data."""
    return np.stack([e["log_k"], f, e["mask"].astype(float), g, e["boundary"], e["h"], e["wall"], blend], axis=1)


def poisson_features(mesh: Mesh, case: PoissonCase) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """``x`` (n, 8) features (see the module docstring), the output scale
    s = max(s_g, s_f), and the (n,) Dirichlet mask and values."""
    e = _encoding(mesh, case)
    s = max(e["s_g"], e["s_f"], 1e-12)
    return _columns(e, e["f"] / s, e["g"] / s, e["blend"] / s), s, e["mask"], e["g"]


def poisson_parts(mesh: Mesh, case: PoissonCase) -> tuple[tuple[np.ndarray, float], tuple[np.ndarray, float]]:
    r"""The superposition u = u_g + u_f of the linear problem: u_g solves it with the
    Dirichlet values and no source, u_f with the source and zero Dirichlet values (same κ,
    same Dirichlet set). Each part is encoded with its own scale, s_g = max|g| (so
    |u_g| ≤ s_g by the maximum principle) and s_f = ⟨|f'|⟩ D²/2:

        x_g = [log κ', 0, flag, g/s_g, boundary, h, wall, blend/s_g],
        x_f = [log κ', f'/s_f, flag, 0, boundary, h, wall, 0],

    returned as ((x_g, s_g/s), (x_f, s_f/s)) with s of :func:`poisson_features`; a part
    without data (g ≡ 0 or f ≡ 0) has zero columns and weight 0. A model U then predicts
    u = s_g U(x_g) + s_f U(x_f): multiplying the Dirichlet values by a and the source by b
    multiplies the two terms by a and b exactly for a, b ≥ 0 (a negative factor flips the
    sign of that part's columns, which U sees as another input)."""
    e = _encoding(mesh, case)
    s = max(e["s_g"], e["s_f"], 1e-12)
    zero = np.zeros(mesh.n_points)
    s_g, s_f = e["s_g"], e["s_f"]
    x_g = _columns(e, zero, e["g"] / s_g, e["blend"] / s_g) if s_g > 0 else _columns(e, zero, zero, zero)
    x_f = _columns(e, e["f"] / s_f, zero, zero) if s_f > 0 else _columns(e, zero, zero, zero)
    return (x_g, s_g / s), (x_f, s_f / s)


# ------------------------------------------------------------------ data
def sample_poisson(mesh: Mesh, rng: np.random.Generator) -> PoissonCase:
    """Random inputs covering what users ask of a surrogate:

    * conductivity: one material (probability 1/4) or two, κ log-uniform in
      [0.1, 10], the second in a random disc or half-plane;
    * source: a constant uniform in [−5, 5], plus one or two Gaussian bumps
      of amplitude in [−30, 30] (probability 2/3);
    * Dirichlet data: u = 0 on every boundary tag (probability 1/4), else
      values uniform in [−1, 1] (each zero with probability 1/5) on a random
      non-empty subset of the boundary tags, zero flux on the others.
    """
    centroid = mesh.points[mesh.corner_cells].mean(axis=1)
    k1, k2 = 10 ** rng.uniform(-1, 1, 2)
    if rng.random() < 0.5:
        c, r = rng.uniform(0.2, 0.8, 2), rng.uniform(0.15, 0.4)
        second = np.hypot(*(centroid - c).T) < r
    else:
        angle = rng.uniform(0, 2 * np.pi)
        second = centroid @ np.array([np.cos(angle), np.sin(angle)]) > rng.uniform(0.3, 0.7)
    kappa = np.where(second & (rng.random() >= 0.25), k2, k1)
    x = mesh.points
    f = np.full(mesh.n_points, rng.uniform(-5, 5))
    if rng.random() < 2 / 3:
        for _ in range(int(rng.integers(1, 3))):
            c, w = rng.uniform(0.1, 0.9, 2), rng.uniform(0.05, 0.3)
            f += rng.uniform(-30, 30) * np.exp(-((x - c) ** 2).sum(axis=1) / (2 * w * w))
    tags = [t.name for t in mesh.tags.values() if t.kind == "facet"]
    if rng.random() < 0.25:
        return PoissonCase(kappa, f, {t: 0.0 for t in tags})
    chosen = [t for t in tags if rng.random() < 0.5] or [tags[int(rng.integers(len(tags)))]]
    return PoissonCase(kappa, f, {t: float(rng.uniform(-1, 1)) * float(rng.random() >= 0.2) for t in chosen})


def solve_poisson(mesh: Mesh, case: PoissonCase) -> np.ndarray:
    """The P1 FE reference solution at the nodes (n,), by :func:`graphfem.physics.poisson`."""
    from graphfem.physics import poisson

    if case.dirichlet:
        return poisson(mesh, kappa=case.kappa, f=case.source, dirichlet=case.dirichlet, order=1).fields["u"]
    return poisson(mesh, kappa=case.kappa, f=case.source, order=1).fields["u"]


__all__ = ["POISSON_FEATURES", "PoissonCase", "dirichlet_blend", "dirichlet_nodes", "lumped_mass", "parse_pairs",
           "poisson_case", "poisson_features", "poisson_parts", "sample_poisson", "solve_poisson"]
