"""to_graph: edge counts from Euler's formula, symmetric cloud graphs,
permutation equivariance, tag one-hot features."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import torch_geometric  # noqa: F401 - to_graph needs it

from graphfem.meshes import Mesh, MeshError, PointCloud, Tag, to_graph  # noqa: E402
from graphfem.meshes.graph import cloud_edges  # noqa: E402


def _edge_set(edge_index) -> set[tuple[int, int]]:
    e = np.asarray(edge_index)
    return set(zip(e[0].tolist(), e[1].tolist()))


def _brute_force_edges(mesh: Mesh, pairs) -> set[tuple[int, int]]:
    out, pairs = set(), list(pairs)
    for cell in mesh.cells:
        for i, j in pairs:
            out |= {(int(cell[i]), int(cell[j])), (int(cell[j]), int(cell[i]))}
    return out


@pytest.mark.parametrize("n", [1, 2, 5])
def test_structured_triangle_mesh_edge_count_is_euler(n):
    mesh = Mesh.unit_square(n)
    g = to_graph(mesh)
    # V - E + F = 1 for a triangulated disc
    edges = mesh.n_points + mesh.n_cells - 1
    assert g.edge_index.shape == (2, 2 * edges)
    assert len(_edge_set(g.edge_index)) == 2 * edges  # no duplicates
    assert _edge_set(g.edge_index) == _brute_force_edges(mesh, itertools.combinations(range(3), 2))


def test_quad_tet_hex_and_quadratic_edges():
    quad = Mesh.unit_square(3, cell="quad")
    assert to_graph(quad).edge_index.shape[1] == 2 * 2 * 3 * 4  # no diagonals
    tet = Mesh.box(2)
    assert _edge_set(to_graph(tet).edge_index) == _brute_force_edges(tet, itertools.combinations(range(4), 2))
    hexa = Mesh.box(2, cell="hexahedron")
    assert to_graph(hexa).edge_index.shape[1] == 2 * 3 * 2 * 3 * 3  # 3 (n+1)^2 n grid lines
    lin, quadratic = Mesh.unit_square(3), Mesh.unit_square(3, order=2)
    # every corner edge is split at its mid node
    assert to_graph(quadratic).edge_index.shape[1] == 2 * to_graph(lin).edge_index.shape[1]


def test_edge_features_and_mesh_size():
    mesh = Mesh.rectangle(2, 2, 0.0, 2.0, 0.0, 2.0)
    g = to_graph(mesh, scale_by_mesh_size=False)
    src, dst = g.edge_index.numpy()
    rel = mesh.points[src] - mesh.points[dst]
    np.testing.assert_allclose(g.edge_attr.numpy()[:, :2], rel, atol=1e-6)
    np.testing.assert_allclose(g.edge_attr.numpy()[:, 2], np.linalg.norm(rel, axis=1), atol=1e-6)
    scaled = to_graph(mesh)
    h = scaled.h.numpy()
    for i in range(mesh.n_points):  # h_i: mean length of the edges into node i
        assert h[i] == pytest.approx(np.linalg.norm(rel[dst == i], axis=1).mean(), rel=1e-6)
    np.testing.assert_allclose(scaled.edge_attr.numpy(), g.edge_attr.numpy() / h[dst][:, None], rtol=1e-5)
    assert g.pos.dtype == g.edge_attr.dtype == g.x.dtype
    g.pos[0, 0] = 99.0  # the graph owns its arrays: the mesh is untouched
    assert mesh.points[0, 0] != 99.0


def test_permutation_equivariance():
    rng = np.random.default_rng(0)
    mesh = Mesh.unit_square(4).with_point_data(u=np.arange(25.0))
    perm = rng.permutation(mesh.n_points)  # new node k is old node perm[k]
    inverse = np.argsort(perm)
    relabelled = Mesh(mesh.points[perm], mesh.cell_type, inverse[mesh.cells],
                      tags={n: Tag(n, t.kind, inverse[t.indices]) for n, t in mesh.tags.items()},
                      point_data={"u": mesh.point_data["u"][perm]})
    g, h = to_graph(mesh, fields=["u"]), to_graph(relabelled, fields=["u"])
    mapped = {(int(inverse[a]), int(inverse[b])) for a, b in _edge_set(g.edge_index)}
    assert mapped == _edge_set(h.edge_index)
    np.testing.assert_allclose(h.x.numpy(), g.x.numpy()[perm])
    np.testing.assert_allclose(h.h.numpy(), g.h.numpy()[perm], rtol=1e-6)
    attr_g = {(int(inverse[a]), int(inverse[b])): tuple(v) for (a, b), v in
              zip(g.edge_index.numpy().T, np.round(g.edge_attr.numpy(), 5))}
    attr_h = {(int(a), int(b)): tuple(v) for (a, b), v in zip(h.edge_index.numpy().T, np.round(h.edge_attr.numpy(), 5))}
    assert attr_g == attr_h


def test_tag_one_hot_features():
    mesh = Mesh.unit_square(3)
    mesh = mesh.with_tags(origin=Tag("origin", "node", [0]), cells=Tag("cells", "cell", [0]))
    g = to_graph(mesh)
    assert "cells" not in g.tag_names  # cell tags are not node features
    assert g.x.shape == (mesh.n_points, len(g.tag_names))
    x = mesh.points
    expected = {"left": np.isclose(x[:, 0], 0), "right": np.isclose(x[:, 0], 1),
                "bottom": np.isclose(x[:, 1], 0), "top": np.isclose(x[:, 1], 1),
                "boundary": np.isclose(x, 0).any(1) | np.isclose(x, 1).any(1), "origin": np.arange(16) == 0}
    assert set(g.tag_names) == set(expected)
    for column, name in enumerate(g.tag_names):
        np.testing.assert_array_equal(g.x.numpy()[:, column], expected[name].astype(np.float32))
    with pytest.raises(MeshError, match="unknown point field"):
        to_graph(mesh, fields=["nope"])


def test_cloud_radius_graph_is_symmetric_without_self_loops():
    rng = np.random.default_rng(1)
    pts = rng.uniform(size=(200, 3))
    r = 0.15
    g = to_graph(PointCloud(pts), radius=r)
    edges = _edge_set(g.edge_index)
    assert all(a != b for a, b in edges)
    assert edges == {(b, a) for a, b in edges}
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    brute = {(int(a), int(b)) for a, b in zip(*np.nonzero((d <= r) & ~np.eye(len(pts), dtype=bool)))}
    assert edges == brute
    assert g.x.shape == (200, 0)


def test_cloud_knn_and_max_neighbours():
    rng = np.random.default_rng(2)
    pts = rng.uniform(size=(60, 2))
    e = cloud_edges(pts, k=4)
    assert e.shape == (2, 240)
    assert (e[0] != e[1]).all()
    np.testing.assert_array_equal(np.bincount(e[1], minlength=60), 4)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(60) * 9
    for i in range(60):
        assert set(e[0][e[1] == i]) == set(np.argsort(d[i])[:4])
    capped = cloud_edges(pts, radius=0.3, max_neighbours=3)
    assert np.bincount(capped[1], minlength=60).max() <= 3
    full = cloud_edges(pts, radius=0.3)
    for i in range(60):  # the kept neighbours are the nearest ones
        kept, allnb = capped[0][capped[1] == i], full[0][full[1] == i]
        assert set(kept) == set(allnb[np.argsort(d[i][allnb])][:3])
    with pytest.raises(MeshError):
        cloud_edges(pts)
    with pytest.raises(MeshError):
        to_graph(np.zeros((3, 2)))
