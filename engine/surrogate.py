"""A trained surrogate: ``graphfem.load(path).predict(mesh, **options) -> fields``.

Every checkpoint is served through its family's adapter
(:mod:`graphfem.families`), so this class is the same for all of them.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np

from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError, InputError

from .devices import resolve_device


class Surrogate:
    """A model with its checkpoint metadata and family.

    Attributes:
        model: the ``nn.Module`` (eval mode, on ``device``).
        meta: the checkpoint metadata (see :mod:`graphfem.checkpoint`).
        family: the :class:`~graphfem.families.Family` adapter that serves it.
    """

    def __init__(self, model, meta: Mapping[str, Any], device: str = "cpu", source: str | None = None):
        from .families import families, family_of_model

        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.meta = dict(meta)
        self.source = source
        name = self.meta.get("family")
        if name is None:  # checkpoints written before the family was stored
            self.family = family_of_model(self.meta["model"], source)
        elif isinstance(name, str) and name in families():
            self.family = families()[name]
        else:
            raise GraphfemError(f"checkpoint names the family {name!r}; this graphfem serves "
                                f"{', '.join(sorted(families()))}", source)
        self.family.check_meta(self.model, self.meta, source)

    @property
    def problem(self) -> dict:
        return self.meta.get("problem", {})

    def prediction(self, mesh: Mesh, strict: bool = False, **options):
        """A :class:`~graphfem.families.Prediction`: fields on a mesh (the
        given one, or the mesh the family predicts on), with units and times.

        A case outside the model's training ranges warns once per input
        (:class:`graphfem.validity.ValidityWarning`); ``strict`` refuses it."""
        if not self.family.checks_validity:
            if strict and not self.family.refuses_outside:
                raise InputError(f"--strict: {self.family.name} checkpoints store no training ranges to check",
                                 self.source)
            return self.family.predict(self.model, self.meta, mesh, options, self.device)
        return self.family.predict(self.model, self.meta, mesh, options, self.device, strict=strict)

    def predict(self, mesh: Mesh, strict: bool = False, **options) -> dict[str, np.ndarray]:
        """Predicted fields at the nodes of the mesh, with the options of
        ``graphfem solve <problem>`` (``{"u": (n,)}``; a time series as (T, n, ...))."""
        return self.prediction(mesh, strict=strict, **options).fields

    def timed_prediction(self, mesh: Mesh, strict: bool = False, **options):
        """(:meth:`prediction`, its wall time in seconds, GPU synchronised)."""
        import torch

        start = time.perf_counter()
        out = self.prediction(mesh, strict=strict, **options)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return out, time.perf_counter() - start

    def refine(self, mesh: Mesh, strict: bool = False, **options):
        """The surrogate as the FE solver's starting point: predict, then let the
        problem's own solver iterate from the prediction to its usual tolerance
        (:meth:`graphfem.physics.Problem.refine`: Newton with the consistent tangent,
        or preconditioned CG). The result is ``graphfem solve``'s within that
        tolerance; the prediction only buys time.

        ``options`` are those of ``graphfem solve``, the solver's settings
        (``solver``, ``order``, ...) included.

        Returns:
            (the FE :class:`~graphfem.physics.Solution`, the prediction's wall time
            in seconds, the refinement's wall time in seconds).
        """
        from graphfem.physics.problem import get_problem

        name = self.problem.get("name")
        if not name:
            raise InputError("--refine: the checkpoint names no problem to solve", self.source)
        problem = get_problem(name)
        inputs = {k: v for k, v in options.items() if problem.option(k).role != "setting"}
        prediction, predict_s = self.timed_prediction(mesh, strict=strict, **inputs)
        if prediction.times is not None:
            raise InputError(f"--refine: the {name} model predicts a time series; refine is for steady solves",
                             self.source)
        start = time.perf_counter()
        solution = problem.refine(mesh, options, prediction.fields)
        return solution, predict_s, time.perf_counter() - start

    def evaluate(self, data, limit: int = 0, compare_fe: bool = False, progress: bool = True) -> dict:
        """Error statistics on a :class:`~graphfem.datasets.simulations.SimulationData`."""
        return self.family.evaluate(self.model, self.meta, data, self.device, limit=limit, compare_fe=compare_fe,
                                    progress=progress)

    def __repr__(self) -> str:
        return (f"Surrogate({self.meta['model']} for {self.problem.get('name', '?')} on {self.device}, "
                f"from {self.source})")


__all__ = ["Surrogate", "resolve_device"]
