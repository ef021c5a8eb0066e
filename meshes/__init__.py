"""graphfem.meshes: the core data structures every model and tool shares.

``Mesh``, ``PointCloud``, ``Grid``, ``FESpace``, ``Trajectory``, ``to_graph``
and file I/O. This package imports no other graphfem package.
"""
from .errors import GraphfemError, InputError, MeshError
from .fespace import FESpace
from .graph import to_graph
from .io import read, read_meshio, read_series, read_units, write, write_series
from .mesh import CELL_TYPES, Mesh, MeshWarning, Tag
from .pointcloud import Grid, PointCloud
from .trajectory import Trajectory

__all__ = ["CELL_TYPES", "FESpace", "GraphfemError", "Grid", "InputError", "Mesh", "MeshError", "MeshWarning",
           "PointCloud", "Tag", "Trajectory", "read", "read_meshio", "read_series", "read_units", "to_graph", "write",
           "write_series"]
