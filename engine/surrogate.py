"""A trained surrogate: ``graphfem.load(path).predict(mesh, **options) -> fields``.

Every checkpoint is served through its family's adapter
(:mod:`graphfem.families`), so this class is the same for all of them.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np

from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError

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

    def prediction(self, mesh: Mesh, **options):
        """A :class:`~graphfem.families.Prediction`: fields on a mesh (the
        given one, or the mesh the family predicts on), with units and times."""
        return self.family.predict(self.model, self.meta, mesh, options, self.device)

    def predict(self, mesh: Mesh, **options) -> dict[str, np.ndarray]:
        """Predicted fields at the nodes of the mesh, with the options of
        ``graphfem solve <problem>`` (``{"u": (n,)}``; a time series as (T, n, ...))."""
        return self.prediction(mesh, **options).fields

    def timed_prediction(self, mesh: Mesh, **options):
        """(:meth:`prediction`, its wall time in seconds, GPU synchronised)."""
        import torch

        start = time.perf_counter()
        out = self.prediction(mesh, **options)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return out, time.perf_counter() - start

    def evaluate(self, data, limit: int = 0, compare_fe: bool = False, progress: bool = True) -> dict:
        """Error statistics on a :class:`~graphfem.datasets.simulations.SimulationData`."""
        return self.family.evaluate(self.model, self.meta, data, self.device, limit=limit, compare_fe=compare_fe,
                                    progress=progress)

    def __repr__(self) -> str:
        return (f"Surrogate({self.meta['model']} for {self.problem.get('name', '?')} on {self.device}, "
                f"from {self.source})")


__all__ = ["Surrogate", "resolve_device"]
