"""Regressions of issue 18's reader defects: Exodus needs nothing optional
and keeps its element blocks; Abaqus decks with any element name of a
supported shape (CPE4, CAX4, DC3D8, mixed), their surfaces and includes;
VTK 9's legacy type names; empty and truncated files named as such; every
refusal one line naming the file, and nothing printed by meshio."""
from __future__ import annotations

import re
import tomllib
import warnings
from pathlib import Path

import meshio
import numpy as np
import pytest

from graphfem.meshes import FESpace, Mesh, MeshError, MeshWarning, read
from graphfem.meshes.abaqus import element_shape

REPO = Path(__file__).resolve().parents[2]

PLATE = """*Heading
 a 2 x 1 plate of two {etype} elements
*Node
1, 0.0, 0.0
2, 1.0, 0.0
3, 1.0, 1.0
4, 0.0, 1.0
5, 2.5, 0.0
6, 2.5, 1.0
*Element, type={etype}, elset=PLATE
1, 1, 2, 3, 4
2, 2, 5, 6, 3
*Nset, nset=LEFT
1, 4
*Elset, elset=RIGHT
2
*Surface, type=ELEMENT, name=BOTTOM
PLATE, S1
"""

BRICK = """*NODE
1, 0, 0, 0
2, 2, 0, 0
3, 2, 1, 0
4, 0, 1, 0
5, 0, 0, 3
6, 2, 0, 3
7, 2, 1, 3
8, 0, 1, 3
*ELEMENT, TYPE={etype}, ELSET=BLOCK
1, 1, 2, 3, 4, 5, 6, 7, 8
*NSET, NSET=BASE, GENERATE
1, 4, 1
*SURFACE, NAME=TOP
1, S2
"""


def _refusal(path, match: str, **kwargs) -> str:
    """The one-line MeshError of reading ``path``, which names the file and matches ``match``."""
    with pytest.raises(MeshError) as info:
        read(path, **kwargs)
    text = str(info.value)
    assert "\n" not in text and str(path) in text, text
    assert re.search(match, text), text
    return text


def _quiet_read(path, capfd, **kwargs) -> Mesh:
    with warnings.catch_warnings():
        warnings.simplefilter("error", MeshWarning)
        mesh = read(path, **kwargs)
    assert capfd.readouterr() == ("", ""), "the reader printed"
    return mesh


# ------------------------------------------------------------------ dependencies
def test_netcdf4_is_a_core_dependency_and_torch_2_13_is_allowed():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~ ]", d)[0].lower(): d for d in project["dependencies"]}
    assert "netcdf4" in names
    spec = names["torch"]
    lower = re.search(r">=\s*([\d.]+)", spec).group(1)
    upper = re.search(r"<(=?)\s*([\d.]+)", spec)
    version = (2, 13, 0)
    assert tuple(int(v) for v in lower.split(".")) <= version
    top = tuple(int(v) for v in upper.group(2).split("."))
    assert version <= top if upper.group(1) else version < top


# ------------------------------------------------------------------ Exodus element blocks
def _name_blocks(path, names: list[str]) -> None:
    import netCDF4

    with netCDF4.Dataset(path, "a") as nc:
        if "len_name" not in nc.dimensions:
            nc.createDimension("len_name", 33)
        var = nc.createVariable("eb_names", "S1", ("num_el_blk", "len_name"))
        for k, name in enumerate(names):
            chars = np.zeros(33, dtype="S1")
            chars[:len(name)] = list(name)
            var[k] = chars


def test_exodus_element_blocks_are_cell_tags(tmp_path):
    """Two triangle blocks (left and right square of a 2 x 1 strip): one named
    in ``eb_names``, one blank (``block_<id>`` from ``eb_prop1``)."""
    points = np.array([[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1.0]])
    left = np.array([[0, 1, 4], [0, 4, 3]])
    right = np.array([[1, 2, 5], [1, 5, 4]])
    path = tmp_path / "strip.exo"
    meshio.write(path, meshio.Mesh(points, [("triangle", left), ("triangle", right)]))
    _name_blocks(path, ["steel", ""])
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        second_id = int(nc.variables["eb_prop1"][1])
    mesh = read(path)
    steel, other = mesh.tag("steel"), mesh.tag(f"block_{second_id}")
    assert steel.kind == other.kind == "cell"
    np.testing.assert_array_equal(sorted(steel.indices), [0, 1])
    np.testing.assert_array_equal(sorted(other.indices), [2, 3])
    assert (mesh.points[mesh.cells[steel.indices]][..., 0] <= 1.0).all()
    assert (mesh.points[mesh.cells[other.indices]][..., 0] >= 1.0).all()
    assert sorted(mesh.to_skfem().subdomains["steel"].tolist()) == [0, 1]


def test_exodus_blocks_follow_a_conforming_split(tmp_path):
    """A quad block and a triangle block: after the split, the quad block's tag
    holds its two triangles, whose area is the quad's."""
    points = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [2, 0.5]])
    path = tmp_path / "mixed.exo"
    meshio.write(path, meshio.Mesh(points, [("quad", np.array([[0, 1, 2, 3]])),
                                            ("triangle", np.array([[1, 4, 2]]))]))
    _name_blocks(path, ["square", "wedge"])
    with pytest.warns(MeshWarning, match="split conformingly"):
        mesh = read(path)
    assert mesh.tag("square").size == 2 and mesh.tag("wedge").size == 1
    assert mesh.cell_measures()[mesh.tag("square").indices].sum() == pytest.approx(1.0, rel=1e-14)


# ------------------------------------------------------------------ Abaqus element names
@pytest.mark.parametrize("etype", ["CPE4", "CAX4", "CPS4R", "DC2D4", "CPE4H"])
def test_abaqus_plane_quads(tmp_path, capfd, etype):
    path = tmp_path / "plate.inp"
    path.write_text(PLATE.format(etype=etype))
    mesh = _quiet_read(path, capfd)
    assert mesh.cell_type == "quad" and mesh.dim == 2 and mesh.n_cells == 2
    assert mesh.cell_measures().sum() == pytest.approx(2.5, rel=1e-14)
    np.testing.assert_allclose(mesh.points[mesh.tag("LEFT").indices][:, 0], 0.0)
    assert mesh.tag("PLATE").size == 2 and mesh.tag("RIGHT").indices.tolist() == [1]
    bottom = mesh.tag("BOTTOM")  # face S1 of each element: the edge from its node 1 to node 2
    assert bottom.kind == "facet" and bottom.size == 2
    np.testing.assert_allclose(mesh.points[bottom.indices][..., 1], 0.0)
    assert FESpace(mesh).n_dofs == 6


@pytest.mark.parametrize("etype", ["DC3D8", "C3D8R", "C3D8"])
def test_abaqus_bricks(tmp_path, capfd, etype):
    path = tmp_path / "brick.inp"
    path.write_text(BRICK.format(etype=etype))
    mesh = _quiet_read(path, capfd)
    assert mesh.cell_type == "hexahedron" and mesh.n_cells == 1
    assert mesh.cell_measures().sum() == pytest.approx(6.0, rel=1e-14)
    np.testing.assert_allclose(mesh.points[mesh.tag("BASE").indices][:, 2], 0.0)
    top = mesh.tag("TOP")  # face S2 of a brick: nodes 5, 8, 7, 6
    assert top.kind == "facet" and sorted(top.indices[0].tolist()) == [4, 5, 6, 7]
    assert mesh.tag("boundary").size == 6


def test_abaqus_mixed_deck_is_split_with_its_sets(tmp_path, capfd):
    path = tmp_path / "mixed.inp"
    path.write_text("""*Node
1, 0, 0
2, 1, 0
3, 1, 1
4, 0, 1
5, 2, 0.5
*Element, type=CPE4, elset=SQUARE
1, 1, 2, 3, 4
*Element, type=CPE3, elset=TIP
2, 2, 5, 3
""")
    with pytest.warns(MeshWarning, match="split conformingly"):
        mesh = read(path)
    assert capfd.readouterr() == ("", "")
    assert mesh.cell_type == "triangle" and mesh.n_cells == 3
    assert mesh.tag("SQUARE").size == 2 and mesh.tag("TIP").size == 1
    assert mesh.cell_measures().sum() == pytest.approx(1.5, rel=1e-14)


def test_abaqus_mixed_3d_deck_with_a_surface_across_both_shapes(tmp_path):
    """A brick beside a prism (C3D8R + DC3D6), one surface on the base of both:
    after the conforming split into tetrahedra the surface is made of mesh
    facets, and its area is the base's."""
    from graphfem.meshes.mesh import simplex_measure

    path = tmp_path / "mixed3d.inp"
    path.write_text("*Node\n1, 0,0,0\n2, 1,0,0\n3, 1,1,0\n4, 0,1,0\n5, 0,0,1\n6, 1,0,1\n7, 1,1,1\n8, 0,1,1\n"
                    "9, 2,0,0\n10, 2,0,1\n*Element, type=C3D8R, elset=BRICK\n1, 1,2,3,4,5,6,7,8\n"
                    "*Element, type=DC3D6, elset=PRISM\n2, 2,9,3,6,10,7\n*Surface, name=BASE\nBRICK, S1\nPRISM, S1\n")
    with pytest.warns(MeshWarning, match="split conformingly"):
        mesh = read(path)
    assert mesh.cell_type == "tetra" and mesh.cell_measures().sum() == pytest.approx(1.5, rel=1e-14)
    base = mesh.tag("BASE")
    assert base.indices.shape == (3, 3)
    np.testing.assert_allclose(mesh.points[base.indices][..., 2], 0.0)
    assert np.abs(simplex_measure(mesh.points, base.indices)).sum() == pytest.approx(1.5, rel=1e-14)
    assert len(mesh.to_skfem().boundaries["BASE"]) == 3  # they are facets of the mesh
    assert mesh.tag("BRICK").size == 12 and mesh.tag("PRISM").size == 3


def test_shared_set_names_keep_both_sets(tmp_path):
    """Abaqus lets an NSET and an ELSET share a name (Abaqus/CAE writes both)."""
    path = tmp_path / "shared.inp"
    path.write_text(PLATE.format(etype="CPE4") + "*Nset, nset=RIGHT\n5, 6\n")
    with pytest.warns(MeshWarning, match="RIGHT_cells"):
        mesh = read(path)
    assert mesh.tag("RIGHT").kind == "node" and mesh.tag("RIGHT_cells").kind == "cell"


@pytest.mark.parametrize("etype, named", [("C3D20R", "20-node hexahedron"), ("C3D27", "27-node"),
                                          ("SPRINGA", "unknown element family")])
def test_unsupported_elements_are_named(tmp_path, capfd, etype, named):
    path = tmp_path / "odd.inp"
    nodes = "".join(f"{i}, {i % 2}, {i // 2 % 2}, {i // 4}\n" for i in range(1, 28))
    path.write_text(f"*Node\n{nodes}*Element, type={etype}\n1, " + ", ".join(str(i) for i in range(1, 21)) + "\n")
    _refusal(path, rf"unsupported element type {etype} \({named}")
    assert capfd.readouterr() == ("", "")


def test_lower_dimensional_extras_are_skipped_with_a_warning(tmp_path):
    path = tmp_path / "with_springs.inp"
    path.write_text(PLATE.format(etype="CPE4") + "*Element, type=SPRING1\n10, 5\n")
    with pytest.warns(MeshWarning, match="ignored 1 element.*SPRING1"):
        mesh = read(path)
    assert mesh.n_cells == 2


def test_element_names_by_rule():
    assert element_shape("CPE8R")[0] == "quad8" and element_shape("CAX6")[0] == "triangle6"
    assert element_shape("C3D10M")[0] == "tetra10" and element_shape("DC3D6")[0] == "wedge"
    assert element_shape("S3R")[0] == "triangle" and element_shape("T3D2")[0] == "line"
    assert element_shape("SC8R")[0] == "hexahedron"
    assert element_shape("C3D15")[0] is None


@pytest.mark.parametrize("text, match", [
    ("*Node\n1, 0, 0\n2, 1, 0\n3, 0, 1\n*Element, type=CPS3\n1, 1, 2\n", r"line 6: CPS3 elements take 3 nodes"),
    ("*Node\n1, 0, 0\n2, 1, 0\n3, 0, 1\n*Element, type=CPS3\n1, 1, 2, 9\n", r"uses node 9, which no \*NODE"),
    ("*Node\n1, 0, 0\n1, 1, 0\n", r"line 3: node 1 is defined twice"),
    ("*Node\n1, 0, 0\n2, 1, 0\n3, 0, 1\n*Element, type=CPE3\n1, 1, 2, 99999999999999999999999\n",
     r"line 6: a number too large for an id"),
    ("*Node\n1, 0, zero\n", r"line 2: expected numbers"),
    ("*Node\n1, 0, nan\n", r"finite numbers"),
    ("*Heading\nno mesh here\n", r"no \*NODE data"),
    ("*Node\n1, 0, 0\n2, 1, 0\n3, 0, 1\n*Element, type=CPS3\n1, 1, 2, 3\n*Nset, nset=A, generate\n1, 999999999, 1\n",
     r"GENERATE range 1..999999999"),
    ("*Node\n1, 0, 0\n2, 1, 0\n3, 0, 1\n*Element, type=CPS3\n1, 1, 2, 3\n*Elset, elset=A\n7\n",
     r"names element 7, which is not defined"),
    ("*Part, name=a\n*End Part\n*Assembly, name=x\n*Instance, name=a1, part=a\n*End Instance\n"
     "*Instance, name=a2, part=a\n*End Instance\n*Node\n1, 0, 0\n", r"assembly of 2 part instances"),
])
def test_malformed_decks_are_refused_in_one_line(tmp_path, capfd, text, match):
    path = tmp_path / "bad.inp"
    path.write_text(text)
    _refusal(path, match)
    assert capfd.readouterr() == ("", "")


# ------------------------------------------------------------------ *INCLUDE
def _deck_with_include(folder: Path, target: str) -> Path:
    deck = folder / "deck.inp"
    deck.write_text(f"*Heading\n*Include, input={target}\n*Element, type=DC2D3, elset=ALL\n1, 1, 2, 3\n")
    return deck


def test_includes_resolve_relative_to_the_including_file(tmp_path, monkeypatch):
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "nodes.inp").write_text("*Include, input=more.inp\n")
    (tmp_path / "parts" / "more.inp").write_text("*Node\n1, 0, 0\n2, 1, 0\n3, 0, 1\n")
    deck = _deck_with_include(tmp_path, "parts/nodes.inp")
    monkeypatch.chdir(tmp_path / "parts")  # not the working folder: the deck's
    mesh = read(deck)
    assert mesh.n_cells == 1 and mesh.tag("ALL").size == 1


def test_includes_outside_the_deck_folder_are_refused_unless_allowed(tmp_path):
    outside = tmp_path / "elsewhere.inp"
    outside.write_text("*Node\n1, 0, 0\n2, 1, 0\n3, 0, 1\n")
    (tmp_path / "job").mkdir()
    for target in (str(outside), "../elsewhere.inp", "/etc/passwd"):
        deck = _deck_with_include(tmp_path / "job", target)
        text = _refusal(deck, r"line 2: INPUT='.*' leaves the deck's folder")
        assert "allow_outside=True" in text
    deck = _deck_with_include(tmp_path / "job", "../elsewhere.inp")
    assert read(deck, allow_outside=True).n_cells == 1
    assert Mesh.read(deck, allow_outside=True).n_cells == 1


def test_include_links_leaving_the_folder_are_refused(tmp_path):
    outside = tmp_path / "secret.inp"
    outside.write_text("*Node\n1, 0, 0\n")
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "link.inp").symlink_to(outside)
    _refusal(_deck_with_include(tmp_path / "job", "link.inp"), r"leaves the deck's folder")


def test_keyword_data_from_input_files(tmp_path):
    """``*NODE, INPUT=f`` and ``*ELEMENT, INPUT=f``: the data lines live in f."""
    (tmp_path / "nodes.txt").write_text("1, 0, 0\n2, 1, 0\n3, 0, 1\n")
    (tmp_path / "elements.txt").write_text("1, 1, 2, 3\n")
    deck = tmp_path / "deck.inp"
    deck.write_text("*Node, input=nodes.txt\n*Element, type=CPE3, elset=ALL, input=elements.txt\n")
    mesh = read(deck)
    assert mesh.n_cells == 1 and mesh.tag("ALL").size == 1


def test_abaqus_cae_single_part_deck(tmp_path):
    """The layout Abaqus/CAE writes: a part, one unmoved instance, assembly sets
    and an internal element set behind a surface."""
    deck = tmp_path / "cae.inp"
    deck.write_text("""*Heading
** Job name: plate Model name: Model-1
*Preprint, echo=NO, model=NO, history=NO, contact=NO
*Part, name=PLATE
*Node
      1,           0.,           0.
      2,           1.,           0.
      3,           1.,           1.
      4,           0.,           1.
*Element, type=CPE4R
1, 1, 2, 3, 4
*Nset, nset=Set-1, generate
 1,  4,  1
*Elset, elset=Set-1
 1,
*Solid Section, elset=Set-1, material=Steel
,
*End Part
*Assembly, name=Assembly
*Instance, name=PLATE-1, part=PLATE
*End Instance
*Nset, nset=Fixed, instance=PLATE-1
 1, 4
*Elset, elset=_Load_S2, internal, instance=PLATE-1
 1,
*Surface, type=ELEMENT, name=Load
_Load_S2, S2
*End Assembly
*Material, name=Steel
*Elastic
210000., 0.3
""")
    with pytest.warns(MeshWarning, match="Set-1_cells"):
        mesh = read(deck)
    assert mesh.cell_type == "quad" and mesh.n_cells == 1
    np.testing.assert_allclose(mesh.points[mesh.tag("Fixed").indices][:, 0], 0.0)
    np.testing.assert_allclose(mesh.points[mesh.tag("Load").indices][..., 0], 1.0)  # face S2: nodes 2-3


@pytest.mark.parametrize("files, match", [
    ({"deck.inp": "*Include, input=deck.inp\n"}, r"includes itself"),
    ({"deck.inp": "*Include, input=a.inp\n", "a.inp": "*Include, input=deck.inp\n"}, r"includes itself"),
    ({"deck.inp": "*Include, input=missing.inp\n"}, r"'missing.inp': no such file"),
    ({"deck.inp": "*Include\n"}, r"INPUT= names no file"),
    ({"deck.inp": "*Node, input=/etc/hostname\n"}, r"leaves the deck's folder"),
])
def test_broken_includes_are_refused(tmp_path, files, match):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(MeshError, match=match) as info:
        read(tmp_path / "deck.inp")
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ other formats
def test_vtk9_legacy_type_names_hexbeam(capfd):
    from pyvista import examples

    mesh = _quiet_read(examples.hexbeamfile, capfd)
    assert mesh.cell_type == "hexahedron" and mesh.n_cells == 40 and mesh.n_points == 99
    assert mesh.cell_measures().sum() == pytest.approx(5.0, rel=1e-12)  # a 1 x 1 x 5 beam
    import meshio.vtk._vtk_42 as legacy

    assert "vtktypeint64" not in legacy.vtk_to_numpy_dtype_name, "meshio's table is restored after the read"


@pytest.mark.parametrize("name", ["empty.msh", "empty.vtu", "empty.inp", "empty.vtk", "blank.msh"])
def test_empty_files_are_named_empty(tmp_path, capfd, name):
    path = tmp_path / name
    path.write_text("\n  \n" if name.startswith("blank") else "")
    _refusal(path, r": empty file$")
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("fmt, suffix, match", [
    ("gmsh4", ".msh", r"truncated: the \$(Entities|Nodes|Elements) section has no \$End"),
    ("gmsh22", ".msh", r"truncated: the \$(Nodes|Elements) section has no \$End"),
    (None, ".vtu", r"truncated at line \d+"),
    (None, ".xdmf", r"truncated at line \d+"),
    (None, ".vtk", r"truncated or damaged|cannot read vtk file"),
])
def test_truncated_files_are_named_truncated(tmp_path, capfd, shared_meshes, fmt, suffix, match):
    whole = tmp_path / f"whole{suffix}"
    if fmt == "gmsh4":  # graphfem writes gmsh 2.2; gmsh 4 files come from gmsh itself
        whole.write_bytes((shared_meshes / "gmsh_t1_gmsh4.msh").read_bytes())
    else:
        Mesh.unit_square(4).write(whole, file_format=fmt)
    data = whole.read_bytes()
    for fraction in (0.3, 0.7):
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(data[:int(fraction * len(data))])
        if suffix == ".xdmf":
            (tmp_path / "cut.h5").write_bytes(whole.with_suffix(".h5").read_bytes())
        _refusal(cut, match)
    assert capfd.readouterr() == ("", "")


def test_foreign_content_and_unknown_formats(tmp_path):
    notgmsh = tmp_path / "ansys_or_not.msh"
    notgmsh.write_text("hello\n")
    _refusal(notgmsh, r"not a gmsh file")
    odd = tmp_path / "mesh.unknown"
    odd.write_text("1 2 3\n")
    _refusal(odd, r"unknown mesh format '.unknown'")
    series = tmp_path / "run.pvd"
    series.write_text("<VTKFile/>")
    _refusal(series, r"a ParaView time series, not one mesh: graphfem.meshes.read_series reads it")
    xml = tmp_path / "mesh.vtu"
    xml.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    _refusal(xml, r"not a valid vtu file")


def test_untagged_meshes_get_a_boundary_tag(tmp_path):
    path = tmp_path / "bare.vtu"
    meshio.write(path, meshio.Mesh(Mesh.unit_square(3).points, [("triangle", Mesh.unit_square(3).cells)]))
    mesh = read(path)
    assert {tuple(sorted(f)) for f in mesh.tag("boundary").indices} == {tuple(f) for f in mesh.boundary_facets()}


# ------------------------------------------------------------------ untagged meshes: boundary and conditions
def _tapered_plate(path: Path) -> Path:
    """A cantilever 2 long, 0.5 high at x = 0 tapering to 0.25 at x = 2, written with no tags."""
    import skfem

    m = skfem.MeshTri.init_tensor(np.linspace(0, 2, 17), np.linspace(0, 0.5, 5))
    p = m.p.copy()
    p[1] *= 1 - 0.25 * p[0]
    meshio.write(path, meshio.Mesh(p.T, [("triangle", m.t.T)]))
    return path


def test_boundary_and_conditions_select_boundary_facets():
    bare = Mesh(Mesh.unit_square(4).points, "triangle", Mesh.unit_square(4).cells)  # built with no tags
    assert not bare.tags
    assert {tuple(f) for f in bare.tag("boundary").indices} == {tuple(f) for f in bare.boundary_facets()}
    left = bare.tag("x<1e-9")
    assert left.kind == "facet" and left.size == 4
    np.testing.assert_allclose(bare.points[left.indices][..., 0], 0.0)
    # a facet is selected when all its corners satisfy the condition
    assert bare.tag("(0.2 <= y) & (y <= 0.6) & (x < 1e-9)").indices.tolist() == [[1, 2]]
    assert bare.tag("isclose(y, 1) and x > 0.4").size == 2
    assert bare.tag("not (x > 1e-9)").size == bare.tag("~(x > 1e-9)").size == 4
    np.testing.assert_array_equal(bare.tag_nodes("x<1e-9"), np.flatnonzero(bare.points[:, 0] == 0))


@pytest.mark.parametrize("text, match", [
    ("x.__class__ < 1", "Attribute is not allowed"),
    ("__import__('os') < 1", "only calls of"),
    ("(lambda: 1)() < 2", "only calls of"),
    ("abs < 1", "'abs' is used as a value"),
    ("sin(x, y) < 1", "sin takes 1 argument"),
    ("abs(x, out=y) < 1", "abs takes 1 argument"),
    ("z < 1", "z is not a coordinate of a 2D mesh"),
    ("q < 1", "unknown name 'q'"),
    ("'a' < x", "only numbers"),
    ("x[0] < 1", "Subscript is not allowed"),
    ("0.2 <= y <= 0.6 & (x < 1e-9)", "put each comparison in parentheses"),
    ("x < -1", "selects no boundary facet"),
    ("x < " + "1" * 600, "longer than"),
    ("x <", "cannot parse"),
])
def test_conditions_are_checked_not_evaluated(text, match):
    """Nothing but the listed operators and functions is ever run."""
    with pytest.raises(MeshError, match=match) as info:
        Mesh.unit_square(2).tag(text)
    assert "\n" not in str(info.value)


def test_unknown_names_that_are_no_conditions_list_the_tags():
    with pytest.raises(MeshError, match=r"unknown tag 'Set-1'; this mesh has: .*left \(facet\).*x<1e-9"):
        Mesh.unit_square(2).tag("Set-1")


def test_pairs_split_at_the_assignment_not_the_comparison():
    from graphfem.physics.options import split_pair

    assert split_pair("x<=0.5=sin(y)") == ("x<=0.5", "sin(y)")
    assert split_pair("x==0=2") == ("x==0", "2")
    assert split_pair("left=1") == ("left", "1")
    assert split_pair("right=where(x>=1,1,0)") == ("right", "where(x>=1,1,0)")
    assert split_pair("nothing") == ("", "")


def test_cli_solves_on_an_untagged_mesh(tmp_path, capsys):
    """Elasticity and Poisson through ``graphfem solve`` on a mesh file with no
    tags, the supports and loads given by conditions, agree with the API solve
    on the same mesh with explicit tags."""
    from graphfem.cli import main
    from graphfem.physics.problem import get_problem

    mesh_path = _tapered_plate(tmp_path / "taper.vtu")
    out = tmp_path / "u.vtu"
    code = main(["solve", "elasticity", str(mesh_path), "--E", "210e3", "--nu", "0.3", "--fix", "x<1e-9",
                 "--traction", "x>2-1e-9=0,-1", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    u = meshio.read(out).point_data["displacement"][:, :2]
    mesh = read(mesh_path)
    x = mesh.points
    tagged = mesh.with_boundary_tags(root=lambda p: p[:, 0] < 1e-9, tip=lambda p: p[:, 0] > 2 - 1e-9)
    reference = get_problem("elasticity").run(tagged, {"E": "210e3", "nu": "0.3", "fix": ["root"],
                                                       "traction": ["tip=0,-1"]})
    np.testing.assert_allclose(u, reference.fields["displacement"], rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(u[x[:, 0] == 0], 0.0)
    assert u[x[:, 0] == 2, 1].max() < 0  # the tip bends down

    code = main(["solve", "poisson", str(mesh_path), "--dirichlet", "x<1e-9=0", "--dirichlet",
                 "abs(x-2)<1e-9=1", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    p = meshio.read(out).point_data["u"]
    np.testing.assert_allclose(p[x[:, 0] == 0], 0.0, atol=1e-14)
    np.testing.assert_allclose(p[x[:, 0] == 2], 1.0, atol=1e-12)
    reference = get_problem("poisson").run(tagged, {"dirichlet": ["root=0", "tip=1"]})
    np.testing.assert_allclose(p, reference.fields["u"], rtol=1e-10, atol=1e-14)

    code = main(["solve", "poisson", str(mesh_path), "--dirichlet", "boundary=0", "-o", str(out)])
    assert code == 0
    np.testing.assert_allclose(meshio.read(out).point_data["u"][mesh.boundary_nodes()], 0.0, atol=1e-14)

    out.unlink()
    capsys.readouterr()
    code = main(["solve", "poisson", str(mesh_path), "--dirichlet", "y>9=0", "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "selects no boundary facet" in err[0] and str(mesh_path) in err[0]
    assert not out.exists()


def test_damage_is_named_in_the_file_s_terms(tmp_path, capfd):
    """Not meshio's internals (``'utf-8' codec``, ``np.int32(1)``, ``HDF error``)."""
    square = Mesh.unit_square(3)
    xdmf = tmp_path / "mesh.xdmf"
    square.write(xdmf)
    h5 = xdmf.with_suffix(".h5")
    h5.write_bytes(h5.read_bytes()[:len(h5.read_bytes()) // 2])
    _refusal(xdmf, r"its HDF5 heavy data is truncated")
    h5.write_bytes(b"not hdf5 at all" * 20)
    _refusal(xdmf, r"its HDF5 heavy data is not an HDF5 file")
    vtk = tmp_path / "mesh.vtk"
    vtk.write_bytes(b"# vtk DataFile Version 4.2\nx\nASCII\nDATASET UNSTRUCTURED_GRID\nPOINTS 3 \xff\xfe\n")
    _refusal(vtk, r"byte 0xff at offset \d+ of a text part is not UTF-8")
    huge = tmp_path / "huge.vtu"
    meshio.write(huge, meshio.Mesh(np.pad(square.points, ((0, 0), (0, 1))) * 1e200, [("triangle", square.cells)]))
    _refusal(huge, r"node \d+ has a coordinate of 1e\+200, beyond any physical size")
    stl = tmp_path / "surface.stl"
    box = Mesh.box(1)
    Mesh(box.points, "triangle", box.boundary_facets()).write(stl)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # meshio's size arithmetic on ASCII STL overflows: no warning leaks
        assert read(stl).cell_type == "triangle"
    assert capfd.readouterr() == ("", "")


def test_a_missing_reader_package_is_named(tmp_path, monkeypatch):
    """netCDF4 is a core dependency; an environment without it is told what to install."""
    import sys

    path = tmp_path / "mesh.exo"
    square = Mesh.unit_square(2)
    meshio.write(path, meshio.Mesh(square.points, [("triangle", square.cells)]))
    monkeypatch.setitem(sys.modules, "netCDF4", None)  # import netCDF4 -> ModuleNotFoundError
    _refusal(path, r"needs the Python package netCDF4 \(pip install netCDF4\)")


def test_cli_flow_and_robin_on_an_untagged_mesh(tmp_path, capsys):
    """Steady Navier-Stokes in a 3 x 1 channel with no tags, inflow, walls and
    outflow given by conditions: the parabolic inflow is the exact Poiseuille
    flow u = 4 y (1 - y), p = 0.8 (3 - x) for nu = 0.1 (P2-P1 holds it
    exactly); a Robin condition by a condition agrees with the tagged solve."""
    import skfem

    from graphfem.cli import main
    from graphfem.physics.problem import get_problem

    m = skfem.MeshTri.init_tensor(np.linspace(0, 3, 13), np.linspace(0, 1, 5))
    path = tmp_path / "channel.vtu"
    meshio.write(path, meshio.Mesh(np.pad(m.p.T, ((0, 0), (0, 1))), [("triangle", m.t.T)]))
    out = tmp_path / "flow.vtu"
    code = main(["solve", "navier-stokes", str(path), "--inflow", "x<1e-9=1", "--no-slip",
                 "isclose(y, 0) or isclose(y, 1)", "--outflow", "x>3-1e-9", "--nu", "0.1", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    flow = meshio.read(out)
    x, u, p = flow.points, flow.point_data["velocity"], flow.point_data["pressure"]
    np.testing.assert_allclose(u[:, 0], 4 * x[:, 1] * (1 - x[:, 1]), atol=1e-12)
    np.testing.assert_allclose(u[:, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(p, 0.8 * (3 - x[:, 0]), atol=1e-11)

    code = main(["solve", "poisson", str(path), "--dirichlet", "x<1e-9=0", "--robin", "x>3-1e-9=2,1",
                 "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    mesh = read(path)
    tagged = mesh.with_boundary_tags(inlet=lambda q: q[:, 0] < 1e-9, outlet=lambda q: q[:, 0] > 3 - 1e-9)
    reference = get_problem("poisson").run(tagged, {"dirichlet": ["inlet=0"], "robin": ["outlet=2,1"]})
    np.testing.assert_allclose(meshio.read(out).point_data["u"], reference.fields["u"], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("reader", ["graphfem.cli.invert:read_observations", "graphfem.cli.rgnp:read_observations",
                                    "graphfem.families.giorom:read_body", "graphfem.meshes:read_meshio"])
@pytest.mark.parametrize("content", [b"", b"$MeshFormat\n2.2 0 8\n$EndMeshFormat\n$Nodes\n3\n1 0 0 0\n",
                                     b"hello"])
def test_other_readers_of_mesh_files_refuse_in_one_line(tmp_path, capfd, reader, content):
    """Observation and body files go through the same reader: meshio's own
    print-and-exit never reaches the user."""
    import importlib

    module, name = reader.split(":")
    path = tmp_path / "points.msh"
    path.write_bytes(content)
    with pytest.raises(MeshError) as info:
        getattr(importlib.import_module(module), name)(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert capfd.readouterr() == ("", "")


def test_read_meshio_keeps_point_clouds(tmp_path):
    path = tmp_path / "cloud.vtu"
    points = np.random.default_rng(0).random((5, 3))
    meshio.write(path, meshio.Mesh(points, [("vertex", np.arange(5)[:, None])], point_data={"u": points[:, 0]}))
    from graphfem.meshes import read_meshio

    cloud = read_meshio(path)
    np.testing.assert_allclose(cloud.points, points)
    np.testing.assert_allclose(cloud.point_data["u"], points[:, 0])
