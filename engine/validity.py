"""The domain of validity of a trained surrogate: what its training data spanned.

A network interpolates; outside the inputs it was trained on it extrapolates
without saying so. Every checkpoint of a mesh family therefore stores the
ranges of its training cases (``meta["validity"]``), and a prediction
compares the new case with them:

* the mesh: node count, cell types, the largest bounding-box side ``extent``
  (in the mesh's units; checked only where the problem's inputs are not
  dimensionless, :attr:`graphfem.physics.Problem.dimensionless`), the
  ``aspect`` ratio of the largest to the smallest bounding-box side and, for
  models that pass messages on the mesh graph (:func:`describe`), the
  ``mesh_size`` h/L: the median cell size over the extent (a mesh finer than
  the training meshes has a smaller reach in units of the domain) and, for
  planar meshes, the ``shape`` of the domain: its number of holes and its
  fill (area over the area of its convex hull), stored as the range of the
  fill for each number of holes, which tells a plate with holes, a rectangle
  (no hole, fill 1), a deformed rectangle and an L-shape (no hole, fill < 1)
  apart even where a family holds a few of another's shapes;
* every model input feature (among them the local mesh size relative to the extent, ``h``) (the columns of
  :class:`graphfem.physics.problem.Features`, after the problem's own
  scaling): its minimum and maximum over the nodes.

:func:`check` turns a case outside them into one line per input, warned
(:class:`ValidityWarning`) or, with ``strict``, refused.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError, InputError

#: the mesh quantities a case is described by (besides its cell type and features)
MESH_KEYS = ("nodes", "extent", "aspect", "mesh_size")


class ValidityWarning(UserWarning):
    """A prediction asked outside the ranges the model was trained on."""


def describe(mesh: Mesh, x: np.ndarray, names: Sequence[str], where: Mapping[str, float] | None = None
             ) -> dict[str, Any]:
    """One case of a model that passes messages on the mesh graph: ``nodes``, ``extent``, ``aspect``,
    ``mesh_size`` (median cell size / extent), for a planar mesh ``shape`` = [holes, fill]
    (:func:`planar_shape`), ``cell_type``, ``features`` {name: [min, max]} of the (n, F) inputs ``x``
    and ``where`` {description: value}, the problem's numbers for where its data sit
    (:attr:`graphfem.physics.problem.Features.case`)."""
    lo, hi = mesh.bounding_box
    x = np.asarray(x, dtype=float).reshape(mesh.n_points, -1)
    case = _case(lo, hi, mesh.n_points, mesh.cell_type,
                 {name: [float(x[:, k].min()), float(x[:, k].max())] for k, name in enumerate(names)})
    case["mesh_size"] = float(np.median(mesh.cell_sizes())) / max(case["extent"], 1e-300)
    if mesh.dim == 2 and mesh.tdim == 2:
        case["shape"] = list(planar_shape(mesh))
    if where:
        case["where"] = {name: float(value) for name, value in where.items()}
    return case


def planar_shape(mesh: Mesh) -> tuple[int, float]:
    """(holes, fill) of a planar mesh. holes = pieces − χ, the first Betti number, with χ = V − E + F the
    Euler characteristic of its corners, edges and cells (each connected piece without a hole has χ = 1, a
    hole takes one off); fill = |Ω| / |conv Ω| ∈ (0, 1] (1 for a convex domain, 6/7 for an L cut from a
    square by a quarter). Both are unchanged by moving, turning and scaling the mesh."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import ConvexHull

    corners = mesh.corner_cells
    used, local = np.unique(corners, return_inverse=True)
    local = local.reshape(corners.shape)
    star = np.concatenate([local[:, [0, k]] for k in range(1, local.shape[1])])  # each corner to the first
    graph = coo_matrix((np.ones(len(star)), (star[:, 0], star[:, 1])), shape=(used.size, used.size))
    pieces = int(connected_components(graph, directed=False)[0])
    euler = used.size - len(mesh.facets()[0]) + mesh.n_cells
    hull = ConvexHull(mesh.points[used]).volume
    return pieces - euler, float(mesh.cell_measures().sum() / hull)


def describe_inputs(mesh: Mesh, inputs: Mapping[str, Any], leave_out: Iterable[str] = ()) -> dict[str, Any]:
    """:func:`describe` of a model whose inputs are not node features: ``inputs`` {name: values} (any
    array of one input's values, or a single number), each kept as [min, max]; the mesh quantities in
    ``leave_out`` (``nodes``, ``cell_type``: of a model that reads neither) are left out, so not checked."""
    lo, hi = mesh.bounding_box
    return _case(lo, hi, mesh.n_points, mesh.cell_type, _ranges_of(inputs), leave_out)


def describe_points(points: np.ndarray, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`describe_inputs` of a point cloud (n, d) (a particle body): cell type ``vertex``."""
    points = np.asarray(points, dtype=float)
    return _case(points.min(0), points.max(0), len(points), "vertex", _ranges_of(inputs))


def _ranges_of(inputs: Mapping[str, Any]) -> dict[str, list[float]]:
    return {name: [float(np.min(v)), float(np.max(v))] for name, v in inputs.items()}


def _case(lo, hi, n: int, cell_type: str, features: dict[str, list[float]], leave_out: Iterable[str] = ()
          ) -> dict[str, Any]:
    sides = np.asarray(hi, dtype=float) - np.asarray(lo, dtype=float)
    extent = float(sides.max())
    positive = sides[sides > 1e-12 * max(extent, 1e-300)]
    case = {"nodes": int(n), "extent": extent,
            "aspect": float(positive.max() / positive.min()) if positive.size else 1.0,
            "cell_type": cell_type, "features": features}
    for key in leave_out:
        del case[key]
    return case


def ranges(cases: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The training ranges of described cases: [min, max] of every quantity, the cell types."""
    cases = list(cases)
    if not cases:
        raise GraphfemError("no training cases to take the domain of validity from")
    out: dict[str, Any] = {k: [min(c[k] for c in cases), max(c[k] for c in cases)] for k in MESH_KEYS
                           if all(k in c for c in cases)}
    out["cell_types"] = sorted({c["cell_type"] for c in cases})
    if all("shape" in c for c in cases):  # {holes: [min, max] of the fill of the domains with that many}
        fills: dict[str, list[float]] = {}
        for holes, fill in (c["shape"] for c in cases):
            lo, hi = fills.get(str(holes), [fill, fill])
            fills[str(holes)] = [min(lo, fill), max(hi, fill)]
        out["shapes"] = dict(sorted(fills.items(), key=lambda item: int(item[0])))
    out["features"] = {name: [min(c["features"][name][0] for c in cases), max(c["features"][name][1] for c in cases)]
                       for name in cases[0]["features"]}
    if all("where" in c for c in cases):  # [min, max] of each number the problem gives for where its data sit
        out["where"] = {name: [min(c["where"][name] for c in cases), max(c["where"][name] for c in cases)]
                        for name in cases[0]["where"] if all(name in c["where"] for c in cases)}
    return out


def violations(stored: Mapping[str, Any], case: Mapping[str, Any], dimensionless: bool = False) -> list[str]:
    """One line per quantity of ``case`` outside the ``stored`` training ranges.

    A range [lo, hi] is widened by 1e-6 of its scale max(|lo|, |hi|, hi − lo)
    (at least 1 for the ``where`` numbers, which are of order one) so that
    round-off of the same case never counts; ``extent`` is skipped
    for ``dimensionless`` inputs (the model sees x/L), and a mesh quantity
    the case leaves out (the node count or cell type of a model that reads
    neither) is not checked."""

    def outside(value_lo: float, value_hi: float, lo: float, hi: float, unit: float = 1e-300) -> bool:
        slack = 1e-6 * max(abs(lo), abs(hi), hi - lo, unit)
        return value_lo < lo - slack or value_hi > hi + slack

    def fmt(v: float) -> str:
        return f"{v:,}" if isinstance(v, int) else f"{v:.4g}"

    words = {"nodes": "nodes", "extent": "domain extent (largest bounding-box side)",
             "aspect": "aspect ratio of the bounding box", "mesh_size": "mesh size h/L (median cell over extent)"}
    lines = []
    if "cell_type" in case and case["cell_type"] not in stored["cell_types"]:
        lines.append(f"cell type {case['cell_type']}: the model was trained on {', '.join(stored['cell_types'])}")
    for key in MESH_KEYS:
        if key not in case or key not in stored or (key == "extent" and dimensionless):
            continue  # a quantity the model does not read, or a checkpoint from before it was stored
        lo, hi = stored[key]
        if outside(case[key], case[key], lo, hi):
            lines.append(f"{words[key]} {fmt(case[key])} is outside the training range [{fmt(lo)}, {fmt(hi)}]")
    if "shape" in case and "shapes" in stored:  # a checkpoint from before the shapes is not checked on them
        holes, fill = case["shape"]
        trained = stored["shapes"]
        if str(holes) not in trained:
            lines.append(f"a domain with {holes} hole(s): the model was trained on domains with "
                         f"{', '.join(trained)} hole(s)")
        elif outside(fill, fill, *trained[str(holes)]):
            lo, hi = trained[str(holes)]
            lines.append(f"fill of the domain (area over its convex hull's) {fmt(fill)} is outside the training "
                         f"range [{fmt(lo)}, {fmt(hi)}] of its domains with {holes} hole(s)")
    for name, value in case.get("where", {}).items():
        # absent from checkpoints before; of order one, so round-off is judged on 1 even where a range is [0, 0]
        if name in stored.get("where", {}) and outside(value, value, *stored["where"][name], unit=1.0):
            lo, hi = stored["where"][name]
            lines.append(f"{name} {fmt(value)} is outside the training range [{fmt(lo)}, {fmt(hi)}]")
    for name, (value_lo, value_hi) in case["features"].items():
        if name not in stored["features"]:
            continue
        lo, hi = stored["features"][name]
        if outside(value_lo, value_hi, lo, hi):
            lines.append(f"input {name!r} spans [{value_lo:.4g}, {value_hi:.4g}], outside the training range "
                         f"[{lo:.4g}, {hi:.4g}]")
    return lines


def inside(stored: Mapping[str, Any] | None, case: Mapping[str, Any], dimensionless: bool = False) -> bool:
    """Whether ``case`` lies inside the ``stored`` ranges (no :func:`violations`); True without stored
    ranges. What ``evaluate`` splits its errors by, without warning."""
    return stored is None or not violations(stored, case, dimensionless)


def check(stored: Mapping[str, Any] | None, case: Mapping[str, Any], strict: bool = False,
          dimensionless: bool = False, source: str | None = None) -> list[str]:
    """Warn once per line of :func:`violations` (refuse the first with ``strict``);
    returns the lines. A checkpoint without stored ranges is refused under
    ``strict`` (nothing to check against) and passes silently otherwise."""
    if stored is None:
        if strict:
            raise InputError("--strict: the checkpoint stores no training ranges (trained before graphfem kept "
                             "them); retrain it to check its domain of validity", source)
        return []
    lines = violations(stored, case, dimensionless)
    if lines and strict:
        raise InputError(f"--strict: {lines[0]}" + (f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""),
                         source)
    for line in lines:
        warnings.warn(f"outside the model's domain of validity: {line}", ValidityWarning, stacklevel=2)
    return lines


@contextmanager
def recorded() -> Iterator[list[str]]:
    """Catch the :class:`ValidityWarning` lines of the block instead of showing them (so do its other
    warnings); yields the list they are put in when the block ends. What ``evaluate`` splits its
    errors by, where the check runs inside ``predict``."""
    lines: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ValidityWarning)
        yield lines
    lines.extend(str(w.message) for w in caught if issubclass(w.category, ValidityWarning))


def check_stored(stored: Any, feature_names: Sequence[str], source: str | None) -> None:
    """Refuse, in one line, ``meta["validity"]`` of the wrong shape (a tampered checkpoint)."""
    if stored is None:
        return

    def pair(value) -> bool:
        return (isinstance(value, list) and len(value) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in value)
            and value[0] <= value[1])

    ok = isinstance(stored, Mapping) and all(pair(stored.get(k)) for k in MESH_KEYS if k != "mesh_size")
    ok = ok and ("mesh_size" not in stored or pair(stored["mesh_size"]))  # absent from earlier checkpoints
    shapes = stored.get("shapes", {}) if ok else None  # likewise
    ok = ok and isinstance(shapes, Mapping) and all(
        isinstance(k, str) and k.isdigit() and pair(v) for k, v in shapes.items())
    where = stored.get("where", {}) if ok else None  # likewise
    ok = ok and isinstance(where, Mapping) and all(isinstance(k, str) and pair(v) for k, v in where.items())
    ok = ok and isinstance(stored.get("cell_types"), list) and all(isinstance(c, str) for c in stored["cell_types"])
    features = stored.get("features") if ok else None
    ok = ok and isinstance(features, Mapping) and set(features) == set(feature_names) and all(
        pair(v) for v in features.values())
    if not ok:
        raise GraphfemError("checkpoint 'validity' must hold [min, max] pairs of nodes, extent, aspect and of "
                            f"every input feature ({', '.join(feature_names)}), and the cell types", source)


__all__ = ["MESH_KEYS", "ValidityWarning", "check", "check_stored", "describe", "describe_inputs",
           "describe_points", "inside", "planar_shape", "ranges", "recorded", "violations"]
