"""scikit-fem meshes and their P1/Q1 elements from the mesh forms the ROM tools read."""
from __future__ import annotations

import numpy as np
import skfem

from graphfem.meshes.errors import InputError

_MESHES = {"triangle": (skfem.MeshTri, skfem.ElementTriP1, 2), "quad": (skfem.MeshQuad, skfem.ElementQuad1, 2),
           "tetra": (skfem.MeshTet, skfem.ElementTetP1, 3), "line": (skfem.MeshLine, skfem.ElementLineP1, 1)}


def skfem_mesh(mesh) -> skfem.Mesh:
    """A scikit-fem mesh from a skfem mesh, an object with ``to_skfem()``, a meshio.Mesh,
    or a tuple ``(points (n, d), cells (m, k), cell_type)`` with cell_type in
    {triangle, quad, tetra, line}."""
    if isinstance(mesh, skfem.Mesh):
        return mesh
    if hasattr(mesh, "to_skfem"):
        return mesh.to_skfem()
    if hasattr(mesh, "cells_dict"):
        for ct in ("tetra", "triangle", "quad", "line"):
            if ct in mesh.cells_dict:
                return skfem_mesh((mesh.points, mesh.cells_dict[ct], ct))
        raise InputError(f"mesh has no supported cells ({', '.join(mesh.cells_dict)}); need triangle, quad, tetra or line")
    points, cells, cell_type = mesh
    if cell_type not in _MESHES:
        raise InputError(f"unsupported cell type {cell_type!r}; need triangle, quad, tetra or line")
    cls, _, dim = _MESHES[cell_type]
    p = np.asarray(points, dtype=float)
    p = p.reshape(len(p), -1)[:, :dim]
    return cls(np.ascontiguousarray(p.T), np.ascontiguousarray(np.asarray(cells, dtype=np.int64).T))


def element_for(m: skfem.Mesh):
    """The P1/Q1 element of a scikit-fem mesh (triangle, quad, tetra or line)."""
    for cls, elem, _ in _MESHES.values():
        if type(m) is cls or isinstance(m, cls):
            return elem()
    raise InputError(f"unsupported skfem mesh type {type(m).__name__}")


__all__ = ["element_for", "skfem_mesh"]
