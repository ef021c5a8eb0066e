"""Undoing uniform refinement (graphfem.meshes.refinement): the parent of a
refined mesh is found from its geometry alone, whatever the node and cell
order, with its tags; a mesh that is no refinement gives None."""
import numpy as np
import pytest

from graphfem.meshes import Mesh, Tag
from graphfem.meshes.refinement import hierarchy_below, unrefined
from graphfem.physics.geometries import random_domain


def _shuffled(mesh: Mesh, seed: int) -> Mesh:
    """The same mesh with its nodes and cells in a random order (tags follow)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(mesh.n_points)
    new_index = np.argsort(perm)
    tags = {n: Tag(n, t.kind, new_index[t.indices] if t.kind != "cell" else t.indices) for n, t in mesh.tags.items()
            if t.kind != "cell"}
    return Mesh(mesh.points[perm], mesh.cell_type, new_index[mesh.cells][rng.permutation(mesh.n_cells)], tags=tags)


def _same_geometry(a: Mesh, b: Mesh) -> bool:
    key = lambda m: sorted(tuple(np.round(np.sort(m.points[c, :2], axis=0).ravel(), 12)) for c in m.cells)  # noqa
    return a.n_points == b.n_points and key(a) == key(b)


@pytest.mark.parametrize("family", ["polygon", "perforated", "deformed"])
def test_unrefining_a_shuffled_refinement_gives_the_parent_with_its_tags(family):
    parent = random_domain(family, np.random.default_rng(11))
    fine = _shuffled(parent.refined(2), seed=4)
    chain = hierarchy_below(fine, 3)
    assert len(chain) == 3  # the random (Delaunay) parent itself is no refinement
    assert _same_geometry(chain[1], parent.refined()) and _same_geometry(chain[2], parent)
    for name in parent.tags:
        expected = np.sort(parent.points[parent.tag_nodes(name)], axis=0)
        assert np.allclose(np.sort(chain[2].points[chain[2].tag_nodes(name)], axis=0), expected)


def test_a_mesh_that_is_no_refinement_gives_none():
    mesh = random_domain("lshape", np.random.default_rng(2))
    assert unrefined(mesh) is None
    moved = mesh.refined()
    points = moved.points.copy()
    interior = np.setdiff1d(np.arange(moved.n_points), moved.boundary_nodes())
    points[interior[:1]] += 1e-3  # one midpoint off its edge
    assert unrefined(Mesh(points, "triangle", moved.cells)) is None
    assert unrefined(Mesh.rectangle(4, 4, cell="quad").refined()) is None  # triangles only


def test_a_structured_grid_unrefines_to_the_coarser_grid():
    fine = Mesh.rectangle(8, 4, 0.0, 2.0, 0.0, 1.0)
    coarse = unrefined(fine)
    assert coarse is not None and _same_geometry(coarse.refined(), fine) and coarse.n_cells == fine.n_cells // 4
    assert set(coarse.tags) == set(fine.tags) and len(coarse.tags["left"].indices) == 2
