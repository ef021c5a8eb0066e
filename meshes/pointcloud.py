"""Point clouds and structured grids: the mesh-free and grid-based structures."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np

from .errors import MeshError
from .mesh import Mesh


@dataclass(frozen=True, eq=False)
class PointCloud:
    """Points with fields and no cells (particles, sensors, query points).

    Attributes:
        points: (n, dim) float64 coordinates.
        point_data: name -> (n, ...) array.
    """

    points: np.ndarray
    point_data: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        points = np.array(self.points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] not in (1, 2, 3):
            raise MeshError(f"points must have shape (n, 1|2|3), got {points.shape}", self.source)
        bad = np.flatnonzero(~np.isfinite(points).all(axis=1))
        if bad.size:
            raise MeshError(f"non-finite coordinates at {bad.size} point(s), first point {bad[0]}", self.source)
        points.setflags(write=False)
        object.__setattr__(self, "points", points)
        data = {}
        for name, values in self.point_data.items():
            values = np.asarray(values)
            if values.shape[:1] != (len(points),):
                raise MeshError(f"point field {name!r} has {values.shape[:1]} values, expected {len(points)}",
                                self.source)
            data[str(name)] = values
        object.__setattr__(self, "point_data", MappingProxyType(data))

    def __reduce__(self):
        return (PointCloud, (self.points, dict(self.point_data), self.source))

    @property
    def dim(self) -> int:
        return int(self.points.shape[1])

    @property
    def n_points(self) -> int:
        return int(self.points.shape[0])

    @classmethod
    def from_mesh(cls, mesh: Mesh) -> "PointCloud":
        """The nodes of a mesh with its point fields."""
        return cls(mesh.points, dict(mesh.point_data), source=mesh.source)

    def write(self, path, point_data: Mapping[str, np.ndarray] | None = None) -> None:
        """Write as VTU/any meshio format with one vertex cell per point (atomic)."""
        import meshio

        from .io import atomic_path

        cells = np.arange(self.n_points)[:, None]

        pts = np.pad(self.points, ((0, 0), (0, 3 - self.dim)))
        data = {**self.point_data, **(point_data or {})}
        with atomic_path(path) as tmp:
            meshio.write(tmp, meshio.Mesh(pts, [("vertex", cells)], point_data=data),
                         file_format="vtu" if str(path).endswith(".vtu") else None)


@dataclass(frozen=True, eq=False)
class Grid:
    """A uniform structured grid of cells (finite-difference / MAC / image data).

    Values live at cell centres: a field on the grid has shape ``shape`` (or
    ``(C, *shape)`` for C channels). Axis order is (x, y[, z]) and arrays are
    indexed ``[i, j(, k)]`` with i along x.

    Attributes:
        shape: cells per axis, e.g. (nx, ny).
        lower, upper: the domain's corners, each (dim,).
    """

    shape: tuple[int, ...]
    lower: tuple[float, ...] = (0.0, 0.0)
    upper: tuple[float, ...] = (1.0, 1.0)

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if not 1 <= len(shape) <= 3 or min(shape) < 1:
            raise MeshError(f"grid shape must have 1-3 positive entries, got {self.shape}")
        lower = tuple(float(x) for x in self.lower)[: len(shape)]
        upper = tuple(float(x) for x in self.upper)[: len(shape)]
        if len(lower) != len(shape) or len(upper) != len(shape) or any(u <= l for l, u in zip(lower, upper)):
            raise MeshError(f"grid bounds {self.lower}..{self.upper} do not fit shape {shape}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)

    @property
    def dim(self) -> int:
        return len(self.shape)

    @property
    def spacing(self) -> np.ndarray:
        """(dim,) cell size per axis."""
        return (np.array(self.upper) - np.array(self.lower)) / np.array(self.shape)

    def cell_centres(self) -> np.ndarray:
        """(*shape, dim) coordinates of the cell centres."""
        axes = [lo + (np.arange(n) + 0.5) * h for lo, n, h in zip(self.lower, self.shape, self.spacing)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)

    def to_mesh(self) -> Mesh:
        """A quad (2D) / hexahedron (3D) / line (1D) mesh whose cells are the
        grid cells, in the grid's C order (cell data maps one to one)."""
        axes = [np.linspace(lo, hi, n + 1) for lo, hi, n in zip(self.lower, self.upper, self.shape)]
        nodes = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, self.dim)
        vid = np.arange(len(nodes)).reshape(tuple(n + 1 for n in self.shape))
        if self.dim == 1:
            cells = np.stack([vid[:-1], vid[1:]], axis=-1)
            return Mesh(nodes, "line", cells.reshape(-1, 2))
        if self.dim == 2:
            cells = np.stack([vid[:-1, :-1], vid[1:, :-1], vid[1:, 1:], vid[:-1, 1:]], axis=-1)
            return Mesh(nodes, "quad", cells.reshape(-1, 4))
        c = [vid[:-1, :-1, :-1], vid[1:, :-1, :-1], vid[1:, 1:, :-1], vid[:-1, 1:, :-1],
             vid[:-1, :-1, 1:], vid[1:, :-1, 1:], vid[1:, 1:, 1:], vid[:-1, 1:, 1:]]
        return Mesh(nodes, "hexahedron", np.stack(c, axis=-1).reshape(-1, 8))

    def to_tensor(self, fields: Mapping[str, np.ndarray] | Sequence[np.ndarray]):
        """Stack cell fields (each of shape ``shape``) into a float32 torch
        tensor (C, *shape)."""
        import torch

        values = list(fields.values()) if isinstance(fields, Mapping) else list(fields)
        for v in values:
            if tuple(np.shape(v)) != self.shape:
                raise MeshError(f"grid field of shape {np.shape(v)} does not match grid shape {self.shape}")
        return torch.as_tensor(np.stack(values), dtype=torch.float32)

    def cell_data_from_tensor(self, tensor, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Inverse of :meth:`to_tensor` as cell data for :meth:`to_mesh` (C order)."""
        array = tensor.detach().cpu().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)
        if array.shape != (len(names), *self.shape):
            raise MeshError(f"tensor of shape {array.shape} does not match {len(names)} x {self.shape}")
        return {name: array[c].reshape(-1) for c, name in enumerate(names)}
