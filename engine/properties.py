r"""Property checks of a trained surrogate: exact where the physics says so (shipped, as
e3nn ships its ``assert_equivariant``; ``graphfem check MODEL MESH`` runs them).

Each check compares predictions with the **problem's** law, never with the model's own
encoding:

* **dirichlet**: the prediction at the values the options fix, against the values the FE
  solver imposes (:meth:`graphfem.physics.Problem.essential`); the deviation
  max |û_i − g_i| over the fixed node components (and over every frame of a time
  series) must be 0.0 exactly. The other checks take steady predictions.
* **scale**: the case on the mesh x ↦ c x with the options of the problem's scaling law
  (:meth:`graphfem.physics.Problem.scaled`: Poisson f ↦ f/c², elastic body force b ↦ b/c,
  displacement ↦ c u); the deviation max_fields ‖û_c − law(û)‖_∞ / ‖law(û)‖_∞ is the
  relative change of the prediction, so a model within the tolerance gives the same
  relative error on both meshes.
* **rotation**: the case on x ↦ R x (:meth:`graphfem.physics.Problem.rotated`: vector
  options and vector outputs turned by R, scalars unchanged), the same relative deviation.
* **superposition**: a linear problem's case split into cases of one data part each
  (:meth:`graphfem.physics.Problem.superposed`: Poisson's Dirichlet values and its source,
  elasticity's loads); the deviation max_fields ‖û − Σ_k û_k‖_∞ / ‖û‖_∞ over the fields that add up.

A model claims the properties it holds by construction (:meth:`graphfem.families.Family.claims`).
A claimed property is passed or failed against its tolerance; one not claimed is measured and
reported as *not claimed*, never passed; a case with nothing to check (no fixed values, no
law, or a law that does not map the case: a roller ``--fix bottom:y`` does not turn with a
rotated mesh) is *n/a*. The ``assert_*`` functions raise :class:`AssertionError` on a failed claim and
:class:`PropertyNotChecked` when there is no claim to hold the model to.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError

from . import validity

#: the properties, in the order :func:`check` runs them
PROPERTIES = ("dirichlet", "scale", "rotation", "superposition")

#: relative deviation a claimed scale or rotation property may show (float32 networks)
TOLERANCE = 1e-5


@dataclass
class Result:
    """One property of one surrogate on one case.

    Attributes:
        name: ``dirichlet``, ``scale``, ``rotation`` or ``superposition``.
        claimed: whether the model claims the property.
        deviation: the measured deviation (see the module docstring), None when n/a.
        tolerance: the largest deviation a claimed property passes with.
        detail: what was compared, in words (or why there was nothing to compare).
    """

    name: str
    claimed: bool
    deviation: float | None
    tolerance: float
    detail: str

    @property
    def status(self) -> str:
        """``pass``, ``FAIL``, ``not claimed`` or ``n/a``."""
        if self.deviation is None:
            return "n/a"
        if not self.claimed:
            return "not claimed"
        return "pass" if self.deviation <= self.tolerance else "FAIL"

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"

    def line(self) -> str:
        """One line: property, status, deviation against the tolerance, what was compared."""
        if self.deviation is None:
            return f"{self.name:<13} n/a          {self.detail}"
        bound = f"(tolerance {self.tolerance:g})" if self.claimed else "(the model does not claim it)"
        return f"{self.name:<13} {self.status:<12} deviation {self.deviation:.3e} {bound}; {self.detail}"


class PropertyNotChecked(Exception):
    """The model does not claim the property, or the case has nothing to check: an
    ``assert_*`` call neither passes nor fails. ``result`` holds what was measured."""

    def __init__(self, result: Result):
        super().__init__(result.line())
        self.result = result


# ---------------------------------------------------------------------- the checks
def dirichlet(surrogate, mesh: Mesh, options: Mapping[str, Any]) -> Result:
    """The prediction's largest deviation from the values the FE solver fixes (module docstring)."""
    from graphfem.physics.problem import field_slices

    problem = _problem(surrogate)
    claimed = "dirichlet" in surrogate.family.claims(surrogate.meta)
    full = surrogate.family.full_options(surrogate.meta, options)
    fixed = problem.essential(mesh, full)
    if fixed is None or not fixed[0].any():
        return Result("dirichlet", claimed, None, 0.0, f"the options fix no value of the {problem.name} outputs")
    mask, values = fixed
    fields, frames = _predict(surrogate, mesh, options, series=True)
    worst, where = 0.0, ""
    for name, (a, b) in field_slices(problem, mesh).items():
        if name not in fields or not mask[:, a:b].any():
            continue
        got = np.asarray(fields[name], dtype=float).reshape(frames or 1, mesh.n_points, -1)
        m = mask[:, a:b]
        d = float(np.abs(got[:, m] - values[:, a:b][m]).max())
        if d >= worst:
            worst, where = d, f"{int(m.sum())} fixed values of {name}" + (f" in each of {frames} frames" if frames
                                                                          else "")
    return Result("dirichlet", claimed, worst, 0.0, f"max |prediction - fixed value| over {where}")


def scale(surrogate, mesh: Mesh, options: Mapping[str, Any], factor: float = 1e-6,
          tolerance: float = TOLERANCE) -> Result:
    """The prediction on the mesh scaled by ``factor`` against the problem's scaling law."""
    problem = _problem(surrogate)
    claimed = "scale" in surrogate.family.claims(surrogate.meta)
    if not (math.isfinite(factor) and factor > 0):
        raise GraphfemError(f"--factor {factor!r}: the scale factor must be a positive number")
    if not problem.declares("scaled"):
        return Result("scale", claimed, None, tolerance, f"{problem.name} declares no scaling law")
    base = problem.portable(mesh, surrogate.family.full_options(surrogate.meta, options))
    moved = problem.scaled(*base, factor)
    return _compare("scale", claimed, tolerance, surrogate, base, moved,
                    f"mesh x {factor:g}, options by the {problem.name} scaling law")


def rotation(surrogate, mesh: Mesh, options: Mapping[str, Any], angle: float = math.pi / 6,
             tolerance: float = TOLERANCE) -> Result:
    """The prediction on the mesh rotated by ``angle`` radians against the problem's
    rotation law (vector outputs turned, scalars unchanged)."""
    from graphfem.physics.problem import NoLaw, rotation_matrix

    problem = _problem(surrogate)
    claimed = "rotation" in surrogate.family.claims(surrogate.meta)
    R = rotation_matrix(float(angle), mesh.dim)
    if not problem.declares("rotated"):
        return Result("rotation", claimed, None, tolerance, f"{problem.name} declares no rotation law")
    base = problem.portable(mesh, surrogate.family.full_options(surrogate.meta, options))
    try:
        moved = problem.rotated(*base, R)
    except NoLaw as exc:  # a support along the mesh's axes (--fix bottom:y) does not turn with it
        return Result("rotation", claimed, None, tolerance, exc.problem)
    return _compare("rotation", claimed, tolerance, surrogate, base, moved,
                    f"mesh turned {math.degrees(angle):g} deg, " + ("vector loads and outputs with it" if
                                                                    problem.vector_fields else "the scalar output kept"))


def superposition(surrogate, mesh: Mesh, options: Mapping[str, Any], tolerance: float = TOLERANCE) -> Result:
    """The prediction of the whole case against the sum of the predictions of its parts."""
    from graphfem.physics.problem import NoLaw

    problem = _problem(surrogate)
    claimed = "superposition" in surrogate.family.claims(surrogate.meta)
    if not problem.declares("superposed"):
        return Result("superposition", claimed, None, tolerance, f"{problem.name} declares no superposition law")
    try:
        law = problem.superposed(mesh, surrogate.family.full_options(surrogate.meta, options))
    except NoLaw as exc:
        return Result("superposition", claimed, None, tolerance, exc.problem)
    whole = _predict(surrogate, law.mesh, law.whole)
    parts = [_predict(surrogate, law.mesh, part) for part in law.parts]
    worst, which = 0.0, ""
    for field in law.fields:
        want = np.asarray(whole[field], dtype=float)
        size = float(np.abs(want).max())
        d = float(np.abs(want - sum(np.asarray(p[field], dtype=float) for p in parts)).max()) / (size or 1.0)
        if d >= worst:
            worst, which = d, field
    return Result("superposition", claimed, worst, tolerance,
                  f"the case against the sum of its parts ({', '.join(law.names)}); largest in {which}")


def check(surrogate, mesh: Mesh, options: Mapping[str, Any], factor: float = 1e-6,
          angle: float = math.pi / 6) -> list[Result]:
    """Every property of :data:`PROPERTIES` on one case."""
    return [dirichlet(surrogate, mesh, options), scale(surrogate, mesh, options, factor),
            rotation(surrogate, mesh, options, angle), superposition(surrogate, mesh, options)]


# ---------------------------------------------------------------------- asserting forms
def assert_dirichlet_exact(surrogate, mesh: Mesh, options: Mapping[str, Any]) -> float:
    """The Dirichlet deviation, which must be 0.0 (:func:`dirichlet`)."""
    return _held(dirichlet(surrogate, mesh, options))


def assert_scale_invariant(surrogate, mesh: Mesh, options: Mapping[str, Any], factor: float = 1e-6,
                           tolerance: float = TOLERANCE) -> float:
    """The relative deviation under x ↦ ``factor`` x, at most ``tolerance`` (:func:`scale`)."""
    return _held(scale(surrogate, mesh, options, factor, tolerance))


def assert_rotation_equivariant(surrogate, mesh: Mesh, options: Mapping[str, Any], angle: float = math.pi / 6,
                                tolerance: float = TOLERANCE) -> float:
    """The relative deviation under x ↦ R x, at most ``tolerance`` (:func:`rotation`)."""
    return _held(rotation(surrogate, mesh, options, angle, tolerance))


def assert_superposition(surrogate, mesh: Mesh, options: Mapping[str, Any], tolerance: float = TOLERANCE) -> float:
    """The relative deviation of the whole case from the sum of its parts (:func:`superposition`)."""
    return _held(superposition(surrogate, mesh, options, tolerance))


def _held(result: Result) -> float:
    if result.status in ("n/a", "not claimed"):
        raise PropertyNotChecked(result)
    assert not result.failed, result.line()
    return float(result.deviation)


# ---------------------------------------------------------------------- helpers
def _problem(surrogate):
    from graphfem.physics.problem import get_problem

    name = surrogate.problem.get("name")
    if not name:
        raise GraphfemError("the checkpoint names no problem whose laws could be checked", surrogate.source)
    return get_problem(name)


def _predict(surrogate, mesh: Mesh, options: Mapping[str, Any], series: bool = False):
    """The predicted fields (training-range warnings silenced: the checks move the mesh on purpose); with
    ``series`` also the number of frames of a time series ((T, n, ...) fields), else None. A time series
    without ``series`` is refused in one line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", validity.ValidityWarning)
        prediction = surrogate.prediction(mesh, **options)
    frames = None if prediction.times is None else len(prediction.times)
    if series:
        return prediction.fields, frames
    if frames is not None:
        raise GraphfemError("the scale, rotation and superposition properties are checked on steady predictions; "
                            "this model predicts a time series", surrogate.source)
    return prediction.fields


def _compare(name: str, claimed: bool, tolerance: float, surrogate, base, moved, detail: str) -> Result:
    """max over fields of ||moved prediction − law(base prediction)||_∞ / ||law(base prediction)||_∞."""
    expected = moved.expected(_predict(surrogate, *base))
    got = _predict(surrogate, moved.mesh, moved.options)
    worst, which = 0.0, ""
    for field, want in expected.items():
        size = float(np.abs(want).max())
        d = float(np.abs(np.asarray(got[field], dtype=float) - want).max()) / (size if size > 0 else 1.0)
        if d >= worst:
            worst, which = d, field
    return Result(name, claimed, worst, tolerance, f"{detail}; largest in {which}")


__all__ = ["PROPERTIES", "PropertyNotChecked", "Result", "TOLERANCE", "assert_dirichlet_exact",
           "assert_rotation_equivariant", "assert_scale_invariant", "assert_superposition", "check", "dirichlet",
           "rotation", "scale", "superposition"]
