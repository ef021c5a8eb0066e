"""Property tests (hypothesis) for Mesh construction: random valid meshes
round-trip through VTU and scikit-fem; corrupted connectivity is rejected
with MeshError and nothing else."""
from __future__ import annotations

import meshio
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphfem.meshes import FESpace, Mesh, MeshError, read, write
from graphfem.meshes.io import from_meshio

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def triangulations(draw):
    """A perturbed structured triangulation of [0, nx] x [0, ny] with random
    diagonals, randomly permuted node numbers and random cell orientation."""
    nx, ny = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    x = np.stack(np.meshgrid(np.arange(nx + 1.0), np.arange(ny + 1.0), indexing="ij"), -1).reshape(-1, 2)
    x = x + rng.uniform(-0.25, 0.25, x.shape)
    v = np.arange(len(x)).reshape(nx + 1, ny + 1)
    cells = []
    for i in range(nx):
        for j in range(ny):
            a, b, c, d = v[i, j], v[i + 1, j], v[i + 1, j + 1], v[i, j + 1]
            cells += [[a, b, c], [a, c, d]] if rng.random() < 0.5 else [[a, b, d], [b, c, d]]
    cells = np.array(cells)
    flip = rng.random(len(cells)) < 0.5
    cells[flip] = cells[flip][:, ::-1]
    perm = rng.permutation(len(x))
    inverse = np.argsort(perm)
    return Mesh(x[perm], "triangle", inverse[cells])


@st.composite
def tetrahedrisations(draw):
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    base = Mesh.box(n)
    interior = ~np.isin(np.arange(base.n_points), base.boundary_nodes())
    x = base.points + rng.uniform(-0.1, 0.1, base.points.shape) / n * interior[:, None]
    perm = rng.permutation(base.n_points)
    return Mesh(x[perm], "tetra", np.argsort(perm)[base.cells])


def _cell_sets(mesh: Mesh) -> list[tuple[int, ...]]:
    return [tuple(sorted(c)) for c in mesh.cells]


@SETTINGS
@given(mesh=st.one_of(triangulations(), tetrahedrisations()))
def test_valid_meshes_round_trip_through_vtu(tmp_path, mesh):
    path = tmp_path / "m.vtu"
    u = np.sin(mesh.points).sum(axis=1)
    write(path, mesh, point_data={"u": u})
    back = read(path)
    assert back.cell_type == mesh.cell_type and back.dim == mesh.dim
    np.testing.assert_array_equal(back.points, mesh.points)
    np.testing.assert_array_equal(back.cells, mesh.cells)
    np.testing.assert_array_equal(back.point_data["u"], u)


@SETTINGS
@given(mesh=st.one_of(triangulations(), tetrahedrisations()))
def test_valid_meshes_round_trip_through_skfem(mesh):
    tagged = mesh.with_boundary_tags(low=lambda x: x[:, 0] < np.median(mesh.points[:, 0]))
    back = Mesh.from_skfem(tagged.to_skfem())
    np.testing.assert_array_equal(back.points, mesh.points)
    assert _cell_sets(back) == _cell_sets(mesh)  # scikit-fem may reorder nodes within a cell
    assert {tuple(sorted(f)) for f in back.tag("low").indices} == {
        tuple(sorted(f)) for f in tagged.tag("low").indices}
    measure = mesh.cell_measures().sum()
    assert FESpace(back).mass().sum() == pytest.approx(measure, rel=1e-12)
    # facets: interior ones shared twice, by Euler's formula for a disc in 2D
    facets, count = mesh.facets()
    assert set(np.unique(count)) <= {1, 2}
    if mesh.dim == 2:
        assert mesh.n_points - len(facets) + mesh.n_cells == 1


CORRUPTIONS = ["out_of_range", "negative", "repeated", "non_integer", "wrong_width", "nan", "strings",
               "empty", "three_d", "flat"]


def _corrupt(mesh: Mesh, how: str, rng) -> np.ndarray:
    cells = mesh.cells.copy()
    i = rng.integers(len(cells))
    k = rng.integers(cells.shape[1])
    if how == "out_of_range":
        cells[i, k] = mesh.n_points + rng.integers(0, 5)
    elif how == "negative":
        cells[i, k] = -rng.integers(1, 5)
    elif how == "repeated":
        cells[i, k] = cells[i, (k + 1) % cells.shape[1]]
    elif how == "non_integer":
        cells = cells.astype(float)
        cells[i, k] += 0.5
    elif how == "wrong_width":
        cells = cells[:, :-1] if rng.random() < 0.5 else np.concatenate([cells, cells[:, :1]], axis=1)
    elif how == "nan":
        cells = cells.astype(float)
        cells[i, k] = np.nan
    elif how == "strings":
        cells = cells.astype(str)
        cells[i, k] = "x"
    elif how == "empty":
        cells = cells[:0]
    elif how == "three_d":
        cells = cells[None]
    elif how == "flat":  # every node of a cell on one line / plane: zero measure
        pts = mesh.points[cells[i]]
        cells = cells  # the geometry is corrupted instead, below
        raise _Flat(i, pts)
    return cells


class _Flat(Exception):
    def __init__(self, cell, pts):
        self.cell, self.pts = cell, pts


@SETTINGS
@given(mesh=st.one_of(triangulations(), tetrahedrisations()), how=st.sampled_from(CORRUPTIONS),
       seed=st.integers(0, 2 ** 32 - 1))
def test_corrupted_connectivity_is_a_mesh_error(mesh, how, seed):
    rng = np.random.default_rng(seed)
    try:
        cells = _corrupt(mesh, how, rng)
        points = mesh.points
    except _Flat as flat:
        cells = mesh.cells
        points = mesh.points.copy()
        # move one node of the cell onto the plane/line of the others
        others = mesh.cells[flat.cell, 1:]
        points[mesh.cells[flat.cell, 0]] = points[others].mean(axis=0)
    with pytest.raises(MeshError):
        Mesh(points, mesh.cell_type, cells)
    with pytest.raises(MeshError):
        from_meshio(meshio.Mesh(np.pad(points, ((0, 0), (0, 3 - mesh.dim))),
                                [(mesh.cell_type, np.asarray(cells))]))


@pytest.mark.parametrize("points", [
    np.array([[0, 0], [1, 0], [np.nan, 1.0]]), np.array([[0, 0], [1, 0], [0, np.inf]]),
    np.zeros((3, 4)), np.zeros((0, 2)), np.array([["a", "b"], ["c", "d"], ["e", "f"]]),
    np.zeros((3, 2, 1)),
])
def test_corrupted_points_are_a_mesh_error(points):
    with pytest.raises(MeshError):
        Mesh(points, "triangle", np.array([[0, 1, 2]]))


def test_unknown_cell_type_and_bad_fields():
    good = Mesh.unit_square(1)
    with pytest.raises(MeshError):
        Mesh(good.points, "polygon", good.cells)
    with pytest.raises(MeshError):
        Mesh(good.points, "triangle", good.cells, point_data={"u": np.zeros(good.n_points + 1)})
    with pytest.raises(MeshError):
        Mesh(good.points, "triangle", good.cells, cell_data={"k": np.zeros(good.n_cells - 1)})


def test_mesh_is_immutable():
    mesh = Mesh.unit_square(2)
    with pytest.raises(ValueError):
        mesh.points[0, 0] = 3.0
    with pytest.raises(ValueError):
        mesh.cells[0, 0] = 3
    with pytest.raises(TypeError):
        mesh.tags["x"] = None
