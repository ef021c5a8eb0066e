"""A trained surrogate: ``graphfem.load(path).predict(mesh, **options) -> fields``."""
from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np

from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError, InputError

from graphfem.physics.poisson_encoding import POISSON_FEATURES


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; refuses ``cuda`` without a GPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available")
    return device


class Surrogate:
    """A model with its normalisation and problem definition.

    Attributes:
        model: the ``nn.Module`` (eval mode, on ``device``).
        meta: the checkpoint metadata (see :mod:`graphfem.checkpoint`).
    """

    def __init__(self, model, meta: Mapping[str, Any], device: str = "cpu", source: str | None = None):
        import torch

        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.meta = dict(meta)
        self.source = source
        trained_on = self.problem.get("features")
        if self.problem.get("name") == "poisson" and list(trained_on or POISSON_FEATURES) != list(POISSON_FEATURES):
            raise GraphfemError(f"the checkpoint encodes node features {trained_on}, this graphfem encodes "
                                f"{list(POISSON_FEATURES)}: retrain it with this version", source)
        norm = self.meta["normalisation"]
        self._x_mean = torch.tensor(norm["x_mean"], dtype=torch.float32, device=self.device)
        self._x_std = torch.tensor(norm["x_std"], dtype=torch.float32, device=self.device)
        self._y_mean = torch.tensor(norm["y_mean"], dtype=torch.float32, device=self.device)
        self._y_std = torch.tensor(norm["y_std"], dtype=torch.float32, device=self.device)

    @property
    def problem(self) -> dict:
        return self.meta["problem"]

    def check_mesh(self, mesh: Mesh) -> None:
        """Refuse, in one line, a mesh the model was not trained for."""
        p = self.problem
        if mesh.dim != p["dim"]:
            raise InputError(f"the model was trained on {p['dim']}D meshes, this mesh is {mesh.dim}D", mesh.source)
        if mesh.cell_type not in p["cell_types"]:
            raise InputError(f"the model was trained on {', '.join(p['cell_types'])} cells, not {mesh.cell_type}",
                             mesh.source)

    def case(self, mesh: Mesh, **options):
        """The problem instance for ``mesh`` and ``options`` (validated)."""
        from graphfem.physics.poisson_encoding import poisson_case

        self.check_mesh(mesh)
        if self.problem["name"] != "poisson":
            raise GraphfemError(f"unsupported problem {self.problem['name']!r}", self.source)
        allowed = set(self.problem["options"])
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise InputError(f"option {unknown[0]!r} is not an input of this model; it takes "
                             f"{', '.join(sorted(allowed))}", mesh.source)
        return poisson_case(mesh, **options)

    def normalise(self, x):
        return (x - self._x_mean) / self._x_std

    def predict_graph(self, graph):
        """Model output in physical units for one encoded graph, (n, out) tensor."""
        import torch

        graph = graph.to(self.device)
        with torch.no_grad():
            y = self.model(self.normalise(graph.x), graph.edge_index, graph.edge_attr)
            y = y * self._y_std + self._y_mean
        return y.double() * graph.scale.to(self.device)

    @property
    def on_fe_spaces(self) -> bool:
        """Whether the model consumes FE-space batches (SPON, SPON-MG), served by :mod:`graphfem.families.spon`."""
        return bool(getattr(self.model, "consumes_fe_batches", False))

    def output_mesh(self, mesh: Mesh) -> Mesh:
        """The mesh whose nodes carry :meth:`predict`'s fields: ``mesh`` itself,
        or for SPON-MG ``mesh`` (the coarsest level) refined ``levels`` times."""
        if self.on_fe_spaces:
            from graphfem.families.spon import output_mesh

            return output_mesh(self, mesh)
        return mesh

    def predict(self, mesh: Mesh, **options) -> dict[str, np.ndarray]:
        """Predicted fields at the nodes of :meth:`output_mesh`: ``{"u": (n,)}``.

        Options are those of ``graphfem solve poisson``: ``kappa`` (number,
        cell/point array, field name or ``"TAG=V,..."`` cell tags),
        ``source`` (number, point array or field name), ``dirichlet``
        ({tag: value} or ``["TAG=VALUE"]``), ``neumann`` (zero only); for
        SPON checkpoints those of :func:`graphfem.families.spon.encode_case`
        (the exact FE decoder: Dirichlet values hold exactly).
        """
        if self.on_fe_spaces:
            from graphfem.families.spon import predict_fields

            return predict_fields(self, mesh, **options)
        from graphfem.physics.poisson_encoding import poisson_graph

        case = self.case(mesh, **options)
        y = self.predict_graph(poisson_graph(mesh, case)).cpu().numpy()
        return {name: y[:, k] for k, name in enumerate(self.problem["fields"])}

    def timed_predict(self, mesh: Mesh, **options) -> tuple[dict[str, np.ndarray], float]:
        """:meth:`predict` and its wall time in seconds (GPU synchronised)."""
        import torch

        start = time.perf_counter()
        out = self.predict(mesh, **options)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return out, time.perf_counter() - start

    def __repr__(self) -> str:
        return f"Surrogate({self.meta['model']} for {self.problem['name']} on {self.device}, from {self.source})"


__all__ = ["Surrogate", "resolve_device"]
