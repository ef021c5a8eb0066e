"""Tags from Abaqus node/element sets and Exodus node/side sets."""
from __future__ import annotations

import meshio
import numpy as np
import pytest

from graphfem.meshes import FESpace, Mesh, MeshError, MeshWarning, Tag, read

ABAQUS = """*Heading
 two squares made of four triangles
*Node
1, 0.0, 0.0
2, 1.0, 0.0
3, 2.0, 0.0
4, 0.0, 1.0
5, 1.0, 1.0
6, 2.0, 1.0
*Element, type=CPS3
1, 1, 2, 5
2, 1, 5, 4
3, 2, 3, 6
4, 2, 6, 5
*Nset, nset=LEFT
1, 4
*Nset, nset=RIGHT
3, 6
*Elset, elset=RIGHTHALF
3, 4
*Elset, elset=ALL, generate
1, 4, 1
"""


def test_abaqus_node_and_element_sets(tmp_path):
    path = tmp_path / "squares.inp"
    path.write_text(ABAQUS)
    mesh = read(path)
    assert mesh.cell_type == "triangle" and mesh.dim == 2 and mesh.n_cells == 4
    by_lower = {name.lower(): tag for name, tag in mesh.tags.items()}
    left, right = by_lower["left"], by_lower["right"]
    assert left.kind == right.kind == "node"
    np.testing.assert_allclose(mesh.points[left.indices][:, 0], 0.0)
    np.testing.assert_allclose(mesh.points[right.indices][:, 0], 2.0)
    assert left.size == right.size == 2
    half = by_lower["righthalf"]
    assert half.kind == "cell" and sorted(half.indices.tolist()) == [2, 3]
    assert (mesh.points[mesh.cells[half.indices]][..., 0] >= 1.0).all()
    assert by_lower["all"].size == 4
    # node tags give dofs, cell tags give subdomains
    space = FESpace(mesh)
    np.testing.assert_allclose(space.dof_coordinates[space.dofs_on(left.name)][:, 0], 0.0)
    assert sorted(mesh.to_skfem().subdomains[half.name].tolist()) == [2, 3]


# ------------------------------------------------------------------ Exodus
# Exodus II side numbering (1-based sides -> 1-based local nodes), from the spec's tables
_SPEC_SIDES = {
    "triangle": {1: (1, 2), 2: (2, 3), 3: (3, 1)},
    "tetra": {1: (1, 2, 4), 2: (2, 3, 4), 3: (1, 4, 3), 4: (1, 3, 2)},
}


def _side_set(mesh: Mesh, facets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(element, side) pairs, 1-based, that name the given facets."""
    table = _SPEC_SIDES[mesh.cell_type]
    wanted = {tuple(sorted(f)) for f in facets}
    elems, sides = [], []
    for e, cell in enumerate(mesh.cells):
        for side, local in table.items():
            key = tuple(sorted(cell[np.array(local) - 1]))
            if key in wanted:
                elems.append(e + 1)
                sides.append(side)
    assert len(elems) == len(wanted)
    return np.array(elems), np.array(sides)


def _append_side_sets(path, sets: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    import netCDF4
    with netCDF4.Dataset(path, "a") as nc:
        nc.createDimension("num_side_sets", len(sets))
        if "len_name" not in nc.dimensions:
            nc.createDimension("len_name", 33)
        names = nc.createVariable("ss_names", "S1", ("num_side_sets", "len_name"))
        status = nc.createVariable("ss_status", "i4", ("num_side_sets",))
        prop = nc.createVariable("ss_prop1", "i4", ("num_side_sets",))
        prop.setncattr("name", "ID")
        for k, (name, (elems, sides)) in enumerate(sets.items(), start=1):
            nc.createDimension(f"num_side_ss{k}", len(elems))
            nc.createVariable(f"elem_ss{k}", "i4", (f"num_side_ss{k}",))[:] = elems
            nc.createVariable(f"side_ss{k}", "i4", (f"num_side_ss{k}",))[:] = sides
            chars = np.zeros(33, dtype="S1")
            chars[: len(name)] = list(name)
            names[k - 1] = chars
            status[k - 1] = 1
            prop[k - 1] = 10 + k


def _exodus_mesh(tmp_path, mesh: Mesh, node_sets: dict[str, np.ndarray]):
    path = tmp_path / "mesh.e"
    meshio.write(path, meshio.Mesh(mesh.points, [(mesh.cell_type, mesh.cells)], point_sets=node_sets))
    return path


@pytest.mark.parametrize("kind", ["tri", "tet"])
def test_exodus_node_and_side_sets(tmp_path, kind):
    import netCDF4  # noqa: F401 - needed by the reader
    mesh = Mesh.unit_square(3) if kind == "tri" else Mesh.box(2)
    x = mesh.points
    axis = mesh.dim - 1  # top (y = 1) in 2D, z = 1 in 3D
    bnd = mesh.boundary_facets()
    on_top = bnd[np.all(np.isclose(x[bnd][..., axis], 1.0), axis=1)]
    on_left = bnd[np.all(np.isclose(x[bnd][..., 0], 0.0), axis=1)]
    corner = np.flatnonzero(np.all(np.isclose(x, 0.0), axis=1))
    path = _exodus_mesh(tmp_path, mesh, {"origin": corner})
    _append_side_sets(path, {"top": _side_set(mesh, on_top), "left": _side_set(mesh, on_left)})

    back = read(path)
    assert back.cell_type == mesh.cell_type
    np.testing.assert_allclose(back.points, mesh.points, atol=1e-15)
    origin = back.tag("origin")
    assert origin.kind == "node"
    np.testing.assert_allclose(back.points[origin.indices], 0.0)
    for name, expected in (("top", on_top), ("left", on_left)):
        tag = back.tag(name)
        assert tag.kind == "facet"
        assert {tuple(sorted(f)) for f in tag.indices} == {tuple(f) for f in expected}
    # side sets are usable as boundaries of the FE space
    space = FESpace(back)
    np.testing.assert_allclose(space.dof_coordinates[space.dofs_on("top")][:, axis], 1.0)


def test_side_set_on_an_unsupported_element_is_a_mesh_error(tmp_path):
    import netCDF4  # noqa: F401 - needed by the reader
    # a wedge block: no side table
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1.0]])
    path = tmp_path / "wedge.e"
    meshio.write(path, meshio.Mesh(pts, [("wedge", np.arange(6)[None])]))
    _append_side_sets(path, {"bottom": (np.array([1]), np.array([4]))})
    with pytest.raises(MeshError):
        read(path)


# ------------------------------------------------------------------ Tag validation
def test_tags_are_validated():
    mesh = Mesh.unit_square(2)
    with pytest.raises(MeshError):
        mesh.with_tags(bad=Tag("bad", "node", [mesh.n_points]))
    with pytest.raises(MeshError):
        mesh.with_tags(bad=Tag("bad", "cell", [-1]))
    with pytest.raises(MeshError):
        Tag("bad", "edge", [0])
    with pytest.raises(MeshError):
        Tag("bad", "node", [0.5])
    with pytest.raises(MeshError, match="not facets of the mesh"):
        mesh.with_tags(diag=Tag("diag", "facet", [[0, mesh.n_points - 1]])).to_skfem()
    tag = Tag("t", "node", [1, 2])
    with pytest.raises(ValueError):
        tag.indices[0] = 5  # frozen
