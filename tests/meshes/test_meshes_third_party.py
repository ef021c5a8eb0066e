"""Reading meshes written by real tools (gmsh, scikit-fem's examples) and the
repairs the reader makes: conforming splits, 2D detection, unused and
duplicated nodes, point cells. Every number is checked against an answer
computed independently from the raw meshio cells."""
from __future__ import annotations

import warnings

import meshio
import numpy as np
import pytest

from graphfem.meshes import FESpace, Mesh, MeshError, MeshWarning, read
from graphfem.meshes.mesh import simplex_measure


def _read_warns(path, match: str | None = None) -> Mesh:
    if match is None:
        with warnings.catch_warnings():
            warnings.simplefilter("error", MeshWarning)
            return read(path)
    with pytest.warns(MeshWarning, match=match):
        return read(path)


def _assert_conforming(mesh: Mesh) -> None:
    """Every facet is shared by one (boundary) or two (interior) cells."""
    _, count = mesh.facets()
    assert set(np.unique(count)) <= {1, 2}
    assert (simplex_measure(mesh.points, mesh.cells) > 0).all(), "split cells must be positively oriented"


def _boundary_measure(mesh: Mesh) -> float:
    return float(np.abs(simplex_measure(mesh.points, mesh.boundary_facets())).sum())


def _wedge_volumes(points: np.ndarray, wedges: np.ndarray) -> np.ndarray:
    """Isoparametric volume of linear prisms, ∫ det J over the reference
    prism (Duffy-collapsed Gauss rule, exact for the cubic det J)."""
    g, w = np.polynomial.legendre.leggauss(4)
    g, w = (g + 1) / 2, w / 2
    x = points[wedges]
    dl = np.array([[-1.0, -1.0], [1.0, 0.0], [0.0, 1.0]])
    vol = np.zeros(len(wedges))
    for a, wa in zip(g, w):
        for b, wb in zip(g, w):
            xi, eta = a, b * (1 - a)
            lam = np.array([1 - xi - eta, xi, eta])
            for z, wz in zip(g, w):
                dn = np.zeros((6, 3))
                dn[:3, :2], dn[3:, :2] = dl * (1 - z), dl * z
                dn[:3, 2], dn[3:, 2] = -lam, lam
                vol += np.linalg.det(np.einsum("mkd,ke->mde", x, dn)) * wa * wb * wz * (1 - a)
    return np.abs(vol)


# ------------------------------------------------------------------ gmsh tags
def test_box_tags_lie_on_their_planes(shared_meshes):
    mesh = _read_warns(shared_meshes / "skfem_box.msh")
    assert mesh.dim == 3 and mesh.cell_type == "tetra"
    planes = {"top": (1, 1.0), "back": (2, 0.0), "front": (2, 1.0)}
    assert {n for n, t in mesh.tags.items() if t.kind == "facet"} == set(planes) | {"boundary"}
    facets_all, count = mesh.facets()
    boundary = {tuple(f) for f in facets_all[count == 1]}
    assert {tuple(sorted(f)) for f in mesh.tag("boundary").indices} == boundary  # added by the reader
    for name, (axis, value) in planes.items():
        tag = mesh.tag(name)
        assert tag.kind == "facet" and tag.indices.shape[1] == 3 and tag.size > 0
        np.testing.assert_allclose(mesh.points[tag.indices][..., axis], value, atol=1e-12)
        assert {tuple(sorted(f)) for f in tag.indices} <= boundary
        # the tag covers its whole unit-square face
        area = np.abs(simplex_measure(mesh.points, tag.indices)).sum()
        assert area == pytest.approx(1.0, rel=1e-12)
    # each facet tag turns into a scikit-fem boundary of the same size
    m = mesh.to_skfem()
    for name in planes:
        assert len(m.boundaries[name]) == mesh.tag(name).size
    assert mesh.tag("all").kind == "cell" and mesh.tag("all").size == mesh.n_cells


def test_two_dimensional_meshes_stored_with_z0(shared_meshes):
    raw = meshio.read(shared_meshes / "skfem_square.msh")
    assert raw.points.shape[1] == 3 and np.all(raw.points[:, 2] == 0)
    mesh = _read_warns(shared_meshes / "skfem_square.msh")
    assert mesh.dim == 2 and mesh.points.shape == (len(raw.points), 2)
    np.testing.assert_array_equal(mesh.points, raw.points[:, :2])
    for name in ("left", "right", "top"):
        assert mesh.tag(name).kind == "facet"
    x = mesh.points
    np.testing.assert_allclose(x[mesh.tag("left").indices][..., 0], x[:, 0].min())
    np.testing.assert_allclose(x[mesh.tag("right").indices][..., 0], x[:, 0].max())
    np.testing.assert_allclose(x[mesh.tag("top").indices][..., 1], x[:, 1].max())


def test_internal_tagged_line_is_kept(shared_meshes):
    mesh = _read_warns(shared_meshes / "skfem_internal.msh")
    tag = mesh.tag("internal")
    assert tag.kind == "facet" and tag.size == 5
    facets, count = mesh.facets()
    shared = {tuple(f) for f in facets[count == 2]}
    assert {tuple(sorted(f)) for f in tag.indices} <= shared, "the internal line lies inside the domain"
    assert len(mesh.to_skfem().boundaries["internal"]) == 5
    for name in ("top", "bottom", "left", "right"):
        assert mesh.tag(name).size == 10


# ------------------------------------------------------------------ mixed meshes
def test_mixed_tri_quad_is_split_conformingly(shared_meshes):
    path = shared_meshes / "skfem_mixedtriquad.msh"
    raw = meshio.read(path)
    tris = np.concatenate([c.data for c in raw.cells if c.type == "triangle"])
    quads = np.concatenate([c.data for c in raw.cells if c.type == "quad"])
    p2 = raw.points[:, :2]
    # independent area: triangles plus the shoelace formula of each quad
    qx, qy = p2[quads][..., 0], p2[quads][..., 1]
    quad_area = 0.5 * np.abs((qx * np.roll(qy, -1, axis=1) - np.roll(qx, -1, axis=1) * qy).sum(axis=1))
    area = np.abs(simplex_measure(p2, tris)).sum() + quad_area.sum()

    mesh = _read_warns(path, match="split conformingly")
    assert mesh.cell_type == "triangle" and mesh.dim == 2
    assert mesh.n_cells == len(tris) + 2 * len(quads)
    assert mesh.n_points == len(raw.points)  # quads need no new nodes
    _assert_conforming(mesh)
    assert mesh.cell_measures().sum() == pytest.approx(area, rel=1e-12)
    # the boundary tag is exactly the boundary, and the cell tag covers all cells
    boundary = {tuple(f) for f in mesh.boundary_facets()}
    assert {tuple(sorted(f)) for f in mesh.tag("boundary").indices} == boundary
    assert mesh.tag("domain").size == mesh.n_cells
    space = FESpace(mesh)
    assert space.mass().sum() == pytest.approx(area, rel=1e-12)


def test_gmsh_t3_tets_and_wedges_split_conformingly(shared_meshes):
    path = shared_meshes / "gmsh_t3_gmsh4.msh"
    raw = meshio.read(path)
    tets = np.concatenate([c.data for c in raw.cells if c.type == "tetra"])
    wedges = np.concatenate([c.data for c in raw.cells if c.type == "wedge"])
    mesh = _read_warns(path, match="split conformingly")
    assert mesh.cell_type == "tetra"
    assert mesh.n_cells == len(tets) + 3 * len(wedges)
    _assert_conforming(mesh)
    # the tetrahedra are kept as they are ...
    original_tets = {tuple(sorted(c)) for c in tets}
    assert original_tets <= {tuple(sorted(c)) for c in mesh.cells}
    # ... and the volume is the isoparametric one up to the (slight) non-planarity
    # of the rotated-extrusion wedge faces
    volume = np.abs(simplex_measure(raw.points, tets)).sum() + _wedge_volumes(raw.points, wedges).sum()
    assert mesh.cell_measures().sum() == pytest.approx(volume, rel=2e-3)
    # the tagged surface (gmsh physical group "My surface") is made of mesh facets
    surface = np.concatenate([c.data for c in raw.cells if c.type == "triangle"])
    tag = mesh.tag("My surface")
    assert tag.kind == "facet"
    assert {tuple(sorted(f)) for f in tag.indices} == {tuple(sorted(f)) for f in surface}
    assert len(mesh.to_skfem().boundaries["My surface"]) == len(surface)


def _box_grid(n: tuple[int, int, int], rng):
    axes = [np.arange(k + 1, dtype=float) for k in n]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    vid = np.arange(len(pts)).reshape(tuple(k + 1 for k in n))
    return pts, vid


def _permute(points, blocks, rng):
    perm = rng.permutation(len(points))
    inverse = np.argsort(perm)
    return points[perm], [(t, inverse[c]) for t, c in blocks]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_hex_wedge_mesh_splits_conformingly(tmp_path, seed):
    """Hexes on x in [0, 2], prisms on [2, 4] sharing quad faces at x = 2;
    random node numbering exercises the smallest-index diagonal rule."""
    rng = np.random.default_rng(seed)
    pts, v = _box_grid((4, 2, 2), rng)
    hexes, wedges = [], []
    for i in range(4):
        for j in range(2):
            for k in range(2):
                c = [v[i, j, k], v[i + 1, j, k], v[i + 1, j + 1, k], v[i, j + 1, k],
                     v[i, j, k + 1], v[i + 1, j, k + 1], v[i + 1, j + 1, k + 1], v[i, j + 1, k + 1]]
                if i < 2:
                    hexes.append(c)
                else:  # two prisms with triangles in the x-y plane, extruded along z
                    wedges.append([c[0], c[1], c[2], c[4], c[5], c[6]])
                    wedges.append([c[0], c[2], c[3], c[4], c[6], c[7]])
    points, blocks = _permute(pts, [("hexahedron", np.array(hexes)), ("wedge", np.array(wedges))], rng)
    path = tmp_path / "mixed.vtu"
    meshio.write(path, meshio.Mesh(points, blocks, point_data={"f": points @ [1.0, 2.0, 3.0]}))
    mesh = _read_warns(path, match="split conformingly")
    assert mesh.cell_type == "tetra"
    assert mesh.n_cells == 12 * len(hexes) + 3 * len(wedges)
    # a linear point field is carried to the new centroid nodes exactly
    np.testing.assert_allclose(mesh.point_data["f"], mesh.points @ [1.0, 2.0, 3.0], atol=1e-12)
    assert mesh.n_points == len(points) + len(hexes)  # one centroid per hex
    _assert_conforming(mesh)
    assert mesh.cell_measures().sum() == pytest.approx(16.0, rel=1e-12)
    assert _boundary_measure(mesh) == pytest.approx(2 * (4 * 2 + 4 * 2 + 2 * 2), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_tri_quad_mesh_splits_conformingly(tmp_path, seed):
    rng = np.random.default_rng(seed)
    nx, ny = 6, 4
    pts = np.stack(np.meshgrid(np.arange(nx + 1.0), np.arange(ny + 1.0), indexing="ij"), -1).reshape(-1, 2)
    interior = (np.abs(pts - [nx / 2, ny / 2]) < np.array([nx / 2, ny / 2]) - 0.5).all(axis=1)
    pts = pts + 0.2 * rng.uniform(-1, 1, pts.shape) * interior[:, None]
    v = np.arange(len(pts)).reshape(nx + 1, ny + 1)
    tris, quads = [], []
    for i in range(nx):
        for j in range(ny):
            q = [v[i, j], v[i + 1, j], v[i + 1, j + 1], v[i, j + 1]]
            if (i + j) % 3 == 0:
                tris += [[q[0], q[1], q[2]], [q[0], q[2], q[3]]]
            else:
                quads.append(q)
    points, blocks = _permute(pts, [("triangle", np.array(tris)), ("quad", np.array(quads))], rng)
    path = tmp_path / "mixed.msh"
    meshio.write(path, meshio.Mesh(np.pad(points, ((0, 0), (0, 1))), blocks), file_format="gmsh22",
                 binary=False)
    mesh = _read_warns(path, match="split conformingly")
    assert mesh.dim == 2 and mesh.n_cells == len(tris) + 2 * len(quads)
    _assert_conforming(mesh)
    assert mesh.cell_measures().sum() == pytest.approx(nx * ny, rel=1e-12)
    assert _boundary_measure(mesh) == pytest.approx(2 * (nx + ny), rel=1e-12)


# ------------------------------------------------------------------ quadratic cells
def test_quadratic_triangles_give_p2(shared_meshes):
    path = shared_meshes / "skfem_quadratic_tri.msh"
    raw = meshio.read(path)
    n_vertex = sum(len(c.data) for c in raw.cells if c.type == "vertex")
    assert n_vertex > 0
    mesh = _read_warns(path, match="point cell")
    assert mesh.cell_type == "triangle6" and mesh.order == 2 and mesh.dim == 2
    space = FESpace(mesh)
    assert space.order == 2
    assert space.n_dofs == mesh.n_points
    # dofs sit on the mesh nodes: the space is isoparametric
    assert (space.node_dofs() >= 0).all()
    np.testing.assert_allclose(space.dof_coordinates[space.node_dofs()[:, 0]], mesh.points, atol=1e-12)
    # P1 on quadratic cells is refused
    with pytest.raises(MeshError):
        FESpace(mesh, order=1)


# ------------------------------------------------------------------ repairs
def _two_triangles():
    points = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0.0]])
    return points, np.array([[0, 1, 2], [0, 2, 3]])


def test_unused_nodes_are_removed_with_a_warning(tmp_path):
    points, tris = _two_triangles()
    points = np.concatenate([points, [[5.0, 5.0, 0.0], [0.5, 0.5, 0.0]]])
    path = tmp_path / "unused.vtu"
    meshio.write(path, meshio.Mesh(points, [("triangle", tris)], point_data={"f": np.arange(6.0)}))
    mesh = _read_warns(path, match=r"removed 2 node")
    assert mesh.n_points == 4 and mesh.unused_nodes.size == 0
    np.testing.assert_array_equal(mesh.point_data["f"], np.arange(4.0))
    assert FESpace(mesh).n_dofs == 4


def test_unused_nodes_are_refused_by_the_fe_space():
    points, tris = _two_triangles()
    mesh = Mesh(np.concatenate([points[:, :2], [[3.0, 3.0]]]), "triangle", tris)
    assert mesh.unused_nodes.tolist() == [4]
    with pytest.raises(MeshError, match="used by no cell"):
        FESpace(mesh)
    assert FESpace(mesh.cleaned()).n_dofs == 4


def test_duplicated_nodes_are_merged_with_a_warning(tmp_path):
    # the second triangle uses copies of nodes 0 and 2: the mesh is not connected
    points = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 1, 0], [0, 1, 0.0]])
    tris = np.array([[0, 1, 2], [3, 4, 5]])
    path = tmp_path / "dup.vtu"
    meshio.write(path, meshio.Mesh(points, [("triangle", tris)]))
    with pytest.warns(MeshWarning) as record:
        mesh = read(path)
    messages = " | ".join(str(w.message) for w in record)
    assert "merged 2 duplicated node" in messages
    assert mesh.n_points == 4
    _, count = mesh.facets()
    assert sorted(count.tolist()) == [1, 1, 1, 1, 2], "the diagonal is now shared"
    assert FESpace(mesh).mass().sum() == pytest.approx(1.0)


def test_point_cells_are_reported_not_kept(tmp_path):
    points, tris = _two_triangles()
    path = tmp_path / "points.vtu"
    meshio.write(path, meshio.Mesh(points, [("triangle", tris), ("vertex", np.array([[1], [3]]))]))
    mesh = _read_warns(path, match="2 point cell")
    assert mesh.cell_type == "triangle" and mesh.n_cells == 2


def test_only_point_cells_is_an_error(tmp_path):
    path = tmp_path / "cloud.vtu"
    meshio.write(path, meshio.Mesh(np.eye(3), [("vertex", np.arange(3)[:, None])]))
    with pytest.raises(MeshError, match="point cells"):
        read(path)


@pytest.mark.parametrize("content", [b"", b"$MeshFormat\n2.2 0 8\n$EndMeshFormat\n$Nodes\n3\n1 0 0"])
def test_unreadable_files_raise_mesh_error_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.msh"
    path.write_bytes(content)
    with pytest.raises(MeshError) as info:
        read(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(MeshError, match="no such file"):
        read(tmp_path / "nope.msh")


def test_nan_coordinates_in_a_file(tmp_path):
    points, tris = _two_triangles()
    points[1, 0] = np.nan
    path = tmp_path / "nan.vtu"
    meshio.write(path, meshio.Mesh(points, [("triangle", tris)]))
    with pytest.raises(MeshError, match="non-finite"):
        read(path)
