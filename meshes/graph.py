"""Graphs for message passing: :func:`to_graph`.

Edges come from cell connectivity (every pair of nodes that share a cell
edge) for meshes, and from a scipy ``cKDTree`` radius or k-nearest-neighbour
search for point clouds; torch-cluster is not needed.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import MeshError
from .mesh import Mesh
from .pointcloud import PointCloud

# Local edges of each linear cell type (corner nodes).
_CELL_EDGES = {
    "line": ((0, 1),),
    "triangle": ((0, 1), (1, 2), (2, 0)),
    "quad": ((0, 1), (1, 2), (2, 3), (3, 0)),
    "tetra": ((0, 1), (1, 2), (2, 0), (0, 3), (1, 3), (2, 3)),
    "hexahedron": ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4),
                   (0, 4), (1, 5), (2, 6), (3, 7)),
    "wedge": ((0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3), (0, 3), (1, 4), (2, 5)),
}
# Quadratic cells: each corner edge (i, j) with mid node m becomes (i, m), (m, j).
_MID_NODES = {
    "line3": {(0, 1): 2},
    "triangle6": {(0, 1): 3, (1, 2): 4, (2, 0): 5},
    "quad9": {(0, 1): 4, (1, 2): 5, (2, 3): 6, (3, 0): 7},
    "quad8": {(0, 1): 4, (1, 2): 5, (2, 3): 6, (3, 0): 7},
    "tetra10": {(0, 1): 4, (1, 2): 5, (2, 0): 6, (0, 3): 7, (1, 3): 8, (2, 3): 9},
}
_LINEAR = {"line3": "line", "triangle6": "triangle", "quad9": "quad", "quad8": "quad", "tetra10": "tetra"}


def mesh_edges(mesh: Mesh) -> np.ndarray:
    """(2, E) directed edges (both directions) between nodes that share a
    cell edge; quadratic cells are split at their mid-edge nodes."""
    ctype = mesh.cell_type
    pairs = []
    if ctype in _MID_NODES:
        for (i, j), m in _MID_NODES[ctype].items():
            pairs += [mesh.cells[:, [i, m]], mesh.cells[:, [m, j]]]
        if ctype == "quad9":
            pairs += [mesh.cells[:, [k, 8]] for k in (4, 5, 6, 7)]
    elif ctype in _CELL_EDGES:
        pairs = [mesh.cells[:, list(e)] for e in _CELL_EDGES[ctype]]
    else:
        raise MeshError(f"no edge table for {ctype} cells", mesh.source)
    # the sparsity pattern of a P1-like matrix: duplicates are merged by the
    # same C routine that sparse FE assembly uses
    import scipy.sparse as sp

    pairs = np.concatenate(pairs)
    n = mesh.n_points
    rows = np.concatenate([pairs[:, 1], pairs[:, 0]])
    cols = np.concatenate([pairs[:, 0], pairs[:, 1]])
    pattern = sp.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    pattern.sum_duplicates()
    receivers = np.repeat(np.arange(n), np.diff(pattern.indptr))
    return np.stack([pattern.indices.astype(np.int64), receivers])


def cloud_edges(points: np.ndarray, radius: float | None = None, k: int | None = None,
                max_neighbours: int | None = None) -> np.ndarray:
    """(2, E) directed edges j -> i for a point cloud, without self loops.

    Args:
        radius: connect points closer than ``radius`` (symmetric graph).
        k: connect each point to its k nearest neighbours (edges point to it).
        max_neighbours: with ``radius``, keep at most this many nearest neighbours.
    """
    from scipy.spatial import cKDTree

    points = np.asarray(points, dtype=float)
    tree = cKDTree(points)
    if (radius is None) == (k is None):
        raise MeshError("give exactly one of radius and k")
    if k is not None:
        k = min(int(k), len(points) - 1)
        _, idx = tree.query(points, k=k + 1)
        dst = np.repeat(np.arange(len(points)), k)
        src = idx[:, 1:].reshape(-1)
        return np.stack([src, dst])
    pairs = tree.query_pairs(float(radius), output_type="ndarray")
    edges = np.concatenate([pairs, pairs[:, ::-1]]).T
    if max_neighbours is not None and edges.size:
        d = np.linalg.norm(points[edges[0]] - points[edges[1]], axis=1)
        order = np.lexsort((d, edges[1]))
        edges, rank_base = edges[:, order], np.searchsorted(edges[1, order], edges[1, order])
        keep = (np.arange(edges.shape[1]) - rank_base) < max_neighbours
        edges = edges[:, keep]
    return edges


def to_graph(domain: Mesh | PointCloud, fields: Sequence[str] = (), radius: float | None = None,
             k: int | None = None, scale_by_mesh_size: bool = True):
    """A ``torch_geometric.data.Data`` for message passing on a mesh or cloud.

    Edges: from cell connectivity for a :class:`Mesh`, from a radius or
    k-nearest-neighbour search for a :class:`PointCloud`.

    Returned attributes:
        pos: (n, dim) float32 node positions.
        edge_index: (2, E) int64, messages flow from ``edge_index[0]`` to ``edge_index[1]``.
        edge_attr: (E, dim + 1) float32 ``[x_j - x_i, |x_j - x_i|] / h_i``, where
            h_i is the local mesh size at the receiver (mean length of its
            edges) when ``scale_by_mesh_size``, so that features transfer
            across resolutions.
        x: (n, F) float32 node features: the requested point fields, then a
            one-hot column per node or facet tag (1 at the tag's nodes).
        h: (n,) float32 local mesh size.
        tag_names: the names behind the one-hot columns.
    """
    import torch
    from torch_geometric.data import Data

    if isinstance(domain, Mesh):
        edges = mesh_edges(domain)
    elif isinstance(domain, PointCloud):
        edges = cloud_edges(domain.points, radius=radius, k=k)
    else:
        raise MeshError(f"to_graph takes a Mesh or PointCloud, not {type(domain).__name__}")
    pos = domain.points.astype(np.float32)
    n = len(pos)
    dim = pos.shape[1]
    edge_attr = np.empty((edges.shape[1], dim + 1), dtype=np.float32)
    np.subtract(pos[edges[0]], pos[edges[1]], out=edge_attr[:, :dim])
    edge_attr[:, dim] = np.sqrt(np.einsum("ed,ed->e", edge_attr[:, :dim], edge_attr[:, :dim]))
    degree = np.bincount(edges[1], minlength=n)
    if scale_by_mesh_size:
        length_sum = np.bincount(edges[1], weights=edge_attr[:, dim], minlength=n)
        h = np.where(degree > 0, length_sum / np.maximum(degree, 1), 1.0).astype(np.float32)
        edge_attr /= h[edges[1]][:, None]
    else:
        h = np.ones(n, dtype=np.float32)

    columns, tag_names = [], []
    for name in fields:
        if name not in domain.point_data:
            raise MeshError(f"unknown point field {name!r}; available: {', '.join(domain.point_data) or 'none'}",
                            domain.source)
        columns.append(np.asarray(domain.point_data[name], dtype=float).reshape(n, -1))
    if isinstance(domain, Mesh):
        for tag in domain.tags.values():
            if tag.kind in ("node", "facet"):
                flag = np.zeros((n, 1))
                flag[domain.tag_nodes(tag.name)] = 1.0
                columns.append(flag)
                tag_names.append(tag.name)
    x = np.concatenate(columns, axis=1) if columns else np.zeros((n, 0))
    return Data(
        pos=torch.from_numpy(pos),
        edge_index=torch.from_numpy(np.ascontiguousarray(edges, dtype=np.int64)),
        edge_attr=torch.from_numpy(edge_attr),
        x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        h=torch.from_numpy(h),
        tag_names=tag_names,
        num_nodes=n,
    )


__all__ = ["cloud_edges", "mesh_edges", "to_graph"]
