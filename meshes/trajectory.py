"""Time series of fields on one mesh or point cloud."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

from .errors import MeshError
from .mesh import Mesh
from .pointcloud import PointCloud


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A time series of fields on one mesh or point cloud.

    Attributes:
        times: (T,) strictly increasing times.
        fields: name -> (T, n) or (T, n, c) values at the n nodes/points.
        domain: the :class:`Mesh` or :class:`PointCloud` the values live on.
        units: optional name -> unit string.
    """

    times: np.ndarray
    fields: Mapping[str, np.ndarray]
    domain: Mesh | PointCloud
    units: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        if times.size == 0 or not np.isfinite(times).all() or np.any(np.diff(times) <= 0):
            raise MeshError("trajectory times must be finite and strictly increasing", self.domain.source)
        n = self.domain.n_points
        checked = {}
        for name, values in self.fields.items():
            values = np.asarray(values)
            if values.shape[:2] != (len(times), n):
                raise MeshError(f"trajectory field {name!r} has shape {values.shape}, expected "
                                f"({len(times)}, {n}, ...)", self.domain.source)
            checked[str(name)] = values
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "fields", MappingProxyType(checked))
        object.__setattr__(self, "units", MappingProxyType(dict(self.units)))

    def __reduce__(self):
        return (Trajectory, (self.times, dict(self.fields), self.domain, dict(self.units)))

    @property
    def n_steps(self) -> int:
        return int(self.times.shape[0])

    def snapshots(self, name: str) -> np.ndarray:
        """(T, n * c) the field flattened per step, one state per row."""
        values = self.fields[name]
        return values.reshape(values.shape[0], -1)

    def write(self, path) -> None:
        """Write as a PVD or XDMF series (meshes) for ParaView, atomically."""
        from .io import write_series

        if not isinstance(self.domain, Mesh):
            raise MeshError("only trajectories on a Mesh can be written as a series", self.domain.source)
        write_series(path, self.domain, self.times, self.fields, units=self.units)
