"""write -> read round trips over formats x canonical meshes (as in meshio's
tests), fields and units, time series, and atomic writes."""
from __future__ import annotations

import os
import warnings

import meshio
import numpy as np
import pytest
import skfem

from graphfem.meshes import GraphfemError, Mesh, MeshWarning, Tag, read, read_series, read_units, write, write_series

# ------------------------------------------------------------------ canonical meshes
def tri_mesh() -> Mesh:
    return Mesh(np.array([[0, 0], [1, 0], [1, 1], [0, 1.0], [0.4, 0.6]]), "triangle",
                np.array([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]]))


def quad_mesh() -> Mesh:
    return Mesh.rectangle(3, 2, 0.0, 1.5, 0.0, 1.0, cell="quad")


def tet_mesh() -> Mesh:
    return Mesh.box(1)


def hex_mesh() -> Mesh:
    return Mesh.box(2, cell="hexahedron")


def triangle6_mesh() -> Mesh:
    return Mesh.unit_square(2, order=2)


def tetra10_mesh() -> Mesh:
    return Mesh.from_skfem(skfem.MeshTet2.from_mesh(skfem.MeshTet.init_tensor(*3 * [np.linspace(0, 1, 2)])))


CANONICAL = {"tri": tri_mesh, "quad": quad_mesh, "tet": tet_mesh, "hex": hex_mesh,
             "triangle6": triangle6_mesh, "tetra10": tetra10_mesh}

# format -> (extension, meshio file_format or None for the default, absolute tolerance,
#            which fields are written and checked: "both", "point" (meshio reads no Exodus cell
#            data) or "none")
FORMATS = {
    "vtu": (".vtu", None, 1e-15, "both"),
    "xdmf": (".xdmf", None, 1e-15, "both"),
    "vtk": (".vtk", None, 1e-15, "both"),
    "gmsh41": (".msh", None, 1e-15, "none"),
    "gmsh22": (".msh", "gmsh22", 1e-15, "none"),
    "gmsh22-ascii": (".msh", "gmsh22", 1e-15, "none"),
    "abaqus": (".inp", None, 1e-15, "none"),
    "med": (".med", None, 1e-15, "none"),
    "exodus": (".e", None, 1e-15, "point"),
}


# meshio/VTK positions of the mid-edge nodes
_MID = {"triangle6": {3: (0, 1), 4: (1, 2), 5: (2, 0)},
        "tetra10": {4: (0, 1), 5: (1, 2), 6: (2, 0), 7: (0, 3), 8: (1, 3), 9: (2, 3)}}


@pytest.mark.parametrize("name", ["triangle6", "tetra10"])
def test_quadratic_canonical_meshes_have_mid_edge_nodes(name):
    """An independent check of the node ordering the round trips rely on."""
    mesh = CANONICAL[name]()
    assert mesh.cell_type == name
    x = mesh.points[mesh.cells]
    for m, (i, j) in _MID[name].items():
        np.testing.assert_allclose(x[:, m], 0.5 * (x[:, i] + x[:, j]), atol=1e-14)


def _fields(mesh: Mesh):
    rng = np.random.default_rng(7)
    point = {"u": rng.normal(size=mesh.n_points)}
    cell = {"k": rng.uniform(1, 2, size=mesh.n_cells)}
    return point, cell


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("name", list(CANONICAL))
def test_round_trip(tmp_path, fmt, name):
    ext, file_format, tol, with_fields = FORMATS[fmt]
    if fmt == "exodus":
        import netCDF4  # noqa: F401 - needed by the reader
    mesh = CANONICAL[name]()
    point, cell = _fields(mesh)
    path = tmp_path / f"mesh{ext}"
    write(path, mesh, point_data=point if with_fields != "none" else None,
          cell_data=cell if with_fields == "both" else None, file_format=file_format)
    if fmt == "gmsh22-ascii":  # meshio writes binary by default; rewrite as ASCII through meshio
        import meshio

        meshio.write(path, meshio.read(path), file_format="gmsh22", binary=False)
        assert path.read_bytes().isascii()
    back = read(path)
    assert back.cell_type == mesh.cell_type
    assert back.dim == mesh.dim
    np.testing.assert_allclose(back.points, mesh.points, atol=tol, rtol=0)
    np.testing.assert_array_equal(back.cells, mesh.cells)
    if with_fields != "none":
        np.testing.assert_allclose(back.point_data["u"], point["u"], atol=tol, rtol=0)
    if with_fields == "both":
        np.testing.assert_allclose(back.cell_data["k"], cell["k"], atol=tol, rtol=0)
    # no temporary files are left next to the output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("ext", [".vtu", ".xdmf"])
def test_vector_fields_and_units_survive(tmp_path, ext):
    mesh = Mesh.unit_square(3)
    rng = np.random.default_rng(3)
    disp = rng.normal(size=(mesh.n_points, 2))
    units = {"displacement": "m", "T": "K"}
    path = tmp_path / f"out{ext}"
    mesh.write(path, point_data={"displacement": disp, "T": mesh.points[:, 0]}, units=units)
    assert read_units(path) == units
    back = read(path)
    # 2-component vectors are written with a zero z for ParaView
    np.testing.assert_allclose(back.point_data["displacement"][:, :2], disp, atol=1e-15)
    np.testing.assert_allclose(back.point_data["displacement"][:, 2:], 0.0)
    np.testing.assert_allclose(back.point_data["T"], mesh.points[:, 0])


def test_units_absent(tmp_path):
    path = tmp_path / "plain.vtu"
    Mesh.unit_square(2).write(path)
    assert read_units(path) == {}


def test_cell_tags_round_trip_through_vtu_as_flag_fields(tmp_path):
    """VTU has no tags: cell tags travel as 0/1 cell fields ``tag:<name>``
    (visible in ParaView) and come back as cell tags."""
    mesh = Mesh.unit_square(2).with_tags(left_cells=Tag("left_cells", "cell", [0, 1]))
    path = tmp_path / "tags.vtu"
    mesh.write(path)
    assert np.array_equal(np.flatnonzero(meshio.read(path).cell_data["tag:left_cells"][0]), [0, 1])
    back = read(path)
    assert back.tags["left_cells"].kind == "cell"
    np.testing.assert_array_equal(back.tags["left_cells"].indices, [0, 1])
    assert "tag:left_cells" not in back.cell_data


@pytest.mark.parametrize("mesh", [Mesh.unit_square(3), Mesh.unit_square(2, order=2), Mesh.box(2),
                                  Mesh.rectangle(3, 2, cell="quad"), Mesh.interval(4)],
                         ids=["tri", "tri6", "tet", "quad", "line"])
def test_every_tag_round_trips_through_gmsh(tmp_path, mesh):
    """gmsh files keep facet, node and cell tags as named physical groups (in
    1D, points are facets, so a node tag would come back as a facet tag)."""
    mesh = mesh.with_tags(first_cells=Tag("first_cells", "cell", [0, 1]))
    if mesh.tdim > 1:
        mesh = mesh.with_tags(origin=Tag("origin", "node", [0]))
    path = tmp_path / "tags.msh"
    mesh.write(path, point_data={"u": np.arange(mesh.n_points, dtype=float)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeshWarning)  # point cells reported
        back = read(path)
    assert back.n_points == mesh.n_points and back.cell_type == mesh.cell_type
    np.testing.assert_allclose(back.point_data["u"], mesh.point_data.get("u", np.arange(mesh.n_points)))
    assert set(back.tags) == set(mesh.tags)
    for name, tag in mesh.tags.items():
        assert back.tags[name].kind == tag.kind
        if tag.kind == "facet":
            assert {tuple(sorted(f)) for f in back.tags[name].indices} == {tuple(sorted(f)) for f in tag.indices}
        else:
            assert sorted(back.tags[name].indices) == sorted(tag.indices)


# ------------------------------------------------------------------ time series
@pytest.mark.parametrize("ext", [".pvd", ".xdmf"])
def test_series_round_trip(tmp_path, ext):
    mesh = Mesh.unit_square(3)
    times = np.array([0.0, 0.1, 0.25, 0.5])
    x = mesh.points
    u = np.stack([np.exp(-t) * np.sin(np.pi * x[:, 0]) for t in times])  # (T, n)
    v = np.stack([t * x for t in times])  # (T, n, 2)
    path = tmp_path / f"series{ext}"
    write_series(path, mesh, times, {"u": u, "v": v}, units={"u": "K"})
    back, t_back, fields = read_series(path)
    np.testing.assert_allclose(t_back, times)
    np.testing.assert_allclose(back.points, mesh.points, atol=1e-15)
    np.testing.assert_array_equal(back.cells, mesh.cells)
    np.testing.assert_allclose(fields["u"], u, atol=1e-15)
    np.testing.assert_allclose(fields["v"][..., :2], v, atol=1e-15)
    leftovers = [p.name for p in tmp_path.rglob(".*")]
    assert leftovers == []


def test_series_step_count_must_match(tmp_path):
    mesh = Mesh.unit_square(2)
    with pytest.raises(GraphfemError, match="steps"):
        write_series(tmp_path / "s.pvd", mesh, [0.0, 1.0], {"u": np.zeros((3, mesh.n_points))})
    assert list(tmp_path.iterdir()) == []


def test_series_rewrite_replaces_old_steps(tmp_path):
    mesh = Mesh.unit_square(2)
    path = tmp_path / "s.pvd"
    write_series(path, mesh, [0.0, 1.0, 2.0], {"u": np.zeros((3, mesh.n_points))})
    write_series(path, mesh, [0.0, 1.0], {"u": np.ones((2, mesh.n_points))})
    _, times, fields = read_series(path)
    assert len(times) == 2 and np.all(fields["u"] == 1)


def test_read_series_missing(tmp_path):
    with pytest.raises(GraphfemError, match="no such file"):
        read_series(tmp_path / "none.pvd")


# ------------------------------------------------------------------ atomic writes
@pytest.mark.parametrize("ext", [".vtu", ".xdmf", ".msh", ".vtk"])
def test_failing_write_leaves_no_file(tmp_path, ext):
    mesh = Mesh.unit_square(2)
    bad = np.zeros(mesh.n_points)
    bad[3] = np.nan
    path = tmp_path / f"out{ext}"
    with pytest.raises(GraphfemError, match="NaN") as info:
        mesh.write(path, point_data={"u": bad})
    assert str(path) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_failing_write_keeps_the_old_file(tmp_path):
    mesh = Mesh.unit_square(2)
    path = tmp_path / "out.vtu"
    mesh.write(path, point_data={"u": np.ones(mesh.n_points)})
    before = path.read_bytes()
    with pytest.raises(GraphfemError):
        mesh.write(path, point_data={"u": np.full(mesh.n_points, np.inf)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.vtu"]


def test_failing_series_leaves_no_file(tmp_path):
    mesh = Mesh.unit_square(2)
    u = np.zeros((2, mesh.n_points))
    u[1, 0] = np.nan
    for ext in (".pvd", ".xdmf"):
        with pytest.raises(GraphfemError):
            write_series(tmp_path / f"s{ext}", mesh, [0.0, 1.0], {"u": u})
    assert list(tmp_path.iterdir()) == []


def test_unknown_extension_is_a_one_line_error(tmp_path):
    with pytest.raises(GraphfemError) as info:
        Mesh.unit_square(2).write(tmp_path / "out.unknownformat")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_cleans_up(tmp_path):
    from graphfem.meshes.io import atomic_path

    target = tmp_path / "x.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".txt"
        tmp.write_text("whole")
    assert target.read_text() == "whole" and os.listdir(tmp_path) == ["x.txt"]
