"""FESpace against closed-form answers: measures, constants in the kernel of
the stiffness, exact reproduction of polynomials, norms, dofs on tags."""
from __future__ import annotations

import numpy as np
import pytest
import skfem

from graphfem.meshes import FESpace, Mesh, MeshError, MeshWarning, Tag, read

RNG_SEED = 1234


def _meshes():
    """(id, mesh factory, measure of the domain)."""
    return [
        ("line", lambda: Mesh.interval(7, 0.5, 2.0), 1.5),
        ("tri", lambda: Mesh.rectangle(5, 3, 0.0, 2.0, -1.0, 2.0), 6.0),
        ("tri6", lambda: Mesh.rectangle(4, 3, 0.0, 2.0, -1.0, 2.0, order=2), 6.0),
        ("quad", lambda: Mesh.rectangle(4, 3, 0.0, 2.0, -1.0, 2.0, cell="quad"), 6.0),
        ("tet", lambda: Mesh.box(3, (0, 0, 0), (1.0, 2.0, 0.5)), 1.0),
        ("hex", lambda: Mesh.box(2, (0, 0, 0), (1.0, 2.0, 0.5), cell="hexahedron"), 1.0),
    ]


MESHES = _meshes()


@pytest.fixture(scope="module", params=[m[0] for m in MESHES])
def case(request):
    name, factory, measure = next(m for m in MESHES if m[0] == request.param)
    return factory(), measure


def _interior_points(mesh: Mesh, n: int, rng) -> np.ndarray:
    """Random points inside random cells (barycentric combinations of corners)."""
    cells = rng.integers(0, mesh.n_cells, n)
    corners = mesh.points[mesh.corner_cells[cells]]
    w = rng.dirichlet(np.ones(corners.shape[1]), n)
    return np.einsum("nk,nkd->nd", w, corners)


@pytest.mark.parametrize("order", [1, 2])
def test_mass_sums_to_measure_and_stiffness_kernel(case, order):
    mesh, measure = case
    if order < mesh.order:  # P1 on quadratic cells is refused, with a MeshError
        with pytest.raises(MeshError, match="quadratic"):
            FESpace(mesh, order=order)
        return
    space = FESpace(mesh, order=order)
    M, K = space.mass(), space.stiffness()
    assert M.shape == K.shape == (space.n_dofs, space.n_dofs)
    ones = np.ones(space.n_dofs)
    assert M.sum() == pytest.approx(measure, rel=1e-12)
    assert space.mass(lumped=True).sum() == pytest.approx(measure, rel=1e-12)
    np.testing.assert_allclose(K @ ones, 0.0, atol=1e-10)
    assert abs(K - K.T).max() < 1e-12 and abs(M - M.T).max() < 1e-12
    assert space.norm_l2(ones) == pytest.approx(np.sqrt(measure), rel=1e-12)
    # u = a . x: |u|_H1^2 = |a|^2 |Omega|
    a = np.array([0.3, -1.1, 0.7])[: mesh.dim]
    u = space.interpolate(lambda x: np.einsum("d...,d->...", x, a))
    assert space.seminorm_h1(u) ** 2 == pytest.approx(a @ a * measure, rel=1e-10)
    assert space.norm_h1(ones) == pytest.approx(np.sqrt(measure), rel=1e-12)


def _polynomial(order: int, dim: int):
    coef = np.array([0.4, -0.8, 1.3])[:dim]

    def f(x):  # x: (dim, ...) as in scikit-fem
        value = 0.25 + np.einsum("d...,d->...", x, coef)
        if order == 2:
            value = value + x[0] ** 2 - 0.5 * x[0] * x[-1] + (x[1] ** 2 if dim > 1 else 0)
        return value

    return f


@pytest.mark.parametrize("order", [1, 2])
def test_probe_reproduces_polynomials_of_the_order(case, order):
    mesh, _ = case
    if order < mesh.order:  # refused, as checked above
        return
    space = FESpace(mesh, order=order)
    f = _polynomial(order, mesh.dim)
    u = space.interpolate(f)
    pts = _interior_points(mesh, 40, np.random.default_rng(RNG_SEED))
    P = space.probe(pts)
    assert P.shape == (40, space.n_dofs)
    np.testing.assert_allclose(P @ u, f(pts.T), atol=1e-10)
    # the same function from nodal values: exact at the nodes, and back
    nodal = space.to_nodes(u)
    np.testing.assert_allclose(nodal, f(mesh.points.T), atol=1e-10)


def test_norm_of_x_on_the_unit_square():
    """∫ x² = 1/3, ∫ |∇x|² = 1; P1 represents x exactly."""
    space = FESpace(Mesh.unit_square(6))
    x = space.mesh.points[:, 0]
    u = space.from_nodes(x)
    assert space.norm_l2(u) == pytest.approx(np.sqrt(1 / 3), rel=1e-12)
    assert space.norm_h1(u) == pytest.approx(np.sqrt(1 / 3 + 1), rel=1e-12)
    assert space.inner_l2(u, np.ones(space.n_dofs)) == pytest.approx(0.5, rel=1e-12)
    assert space.relative_l2_error(u, u) == 0.0


def test_p2_norm_of_a_quadratic():
    """∫_0^1∫_0^1 (x y)² = 1/9 exactly in P2."""
    space = FESpace(Mesh.unit_square(4), order=2)
    u = space.interpolate(lambda x: x[0] * x[1])
    assert space.norm_l2(u) == pytest.approx(1 / 3, rel=1e-12)


def test_probe_outside_the_mesh_is_an_error(case):
    mesh, _ = case
    space = FESpace(mesh)
    outside = mesh.points.max(axis=0) + 0.5
    with pytest.raises(MeshError):
        space.probe(outside[None])
    with pytest.raises(MeshError):
        space.probe(np.zeros((1, mesh.dim + 1)))
    # nodes themselves (on the boundary included) are found
    u = space.interpolate(_polynomial(1, mesh.dim))
    np.testing.assert_allclose(space.probe(mesh.points) @ u, _polynomial(1, mesh.dim)(mesh.points.T), atol=1e-10)


def test_p2_dofs_on_a_facet_tag_include_edge_dofs():
    n = 4
    space = FESpace(Mesh.unit_square(n), order=2)
    x = space.dof_coordinates
    for name, axis, value in (("left", 0, 0.0), ("right", 0, 1.0), ("bottom", 1, 0.0), ("top", 1, 1.0)):
        dofs = space.dofs_on(name)
        expected = np.flatnonzero(np.isclose(x[:, axis], value))
        np.testing.assert_array_equal(dofs, expected)
        assert len(dofs) == 2 * n + 1  # n + 1 vertices and n edge midpoints
    assert len(space.boundary_dofs()) == 4 * 2 * n


def test_p2_dofs_on_a_tag_of_an_isoparametric_mesh(shared_meshes):
    mesh = read(shared_meshes / "skfem_square.msh")
    space = FESpace(mesh, order=2)
    dofs = space.dofs_on("left")
    n_facets = mesh.tag("left").size
    assert len(dofs) == 2 * n_facets + 1
    np.testing.assert_allclose(space.dof_coordinates[dofs, 0], mesh.points[:, 0].min(), atol=1e-12)


def test_dofs_on_node_and_cell_tags():
    mesh = Mesh.unit_square(3)
    corner = int(np.flatnonzero((mesh.points == [1.0, 1.0]).all(axis=1))[0])
    mesh = mesh.with_tags(corner=Tag("corner", "node", [corner]), first=Tag("first", "cell", [0]))
    space = FESpace(mesh)
    np.testing.assert_allclose(space.dof_coordinates[space.dofs_on("corner")], [[1.0, 1.0]])
    np.testing.assert_array_equal(space.dofs_on("first"), np.sort(space.node_dofs()[mesh.cells[0], 0]))
    p2 = FESpace(mesh, order=2)
    assert len(p2.dofs_on("first")) == 6
    with pytest.raises(MeshError, match="unknown tag"):
        space.dofs_on("nowhere")


@pytest.mark.parametrize("order", [1, 2])
def test_to_nodes_from_nodes_round_trip(order):
    rng = np.random.default_rng(RNG_SEED)
    mesh = Mesh.unit_square(4, order=order)
    space = FESpace(mesh, order=order)
    u = rng.normal(size=space.n_dofs)
    np.testing.assert_array_equal(space.from_nodes(space.to_nodes(u)), u)
    values = rng.normal(size=mesh.n_points)
    np.testing.assert_array_equal(space.to_nodes(space.from_nodes(values)), values)


def test_p2_on_a_linear_mesh_from_nodes_is_the_p1_interpolant():
    rng = np.random.default_rng(RNG_SEED)
    mesh = Mesh.unit_square(3)
    p1, p2 = FESpace(mesh, 1), FESpace(mesh, 2)
    values = rng.normal(size=mesh.n_points)
    u2 = p2.from_nodes(values)
    np.testing.assert_allclose(p2.to_nodes(u2), values, atol=1e-12)
    pts = _interior_points(mesh, 30, rng)
    np.testing.assert_allclose(p2.probe(pts) @ u2, p1.probe(pts) @ p1.from_nodes(values), atol=1e-12)


def test_isoparametric_area_of_the_curved_quadratic_mesh(shared_meshes):
    """Mass sum vs an independent quadrature of |det J| of the 6-node map."""
    with pytest.warns(MeshWarning, match="point cell"):
        mesh = read(shared_meshes / "skfem_quadratic_tri.msh")
    x = mesh.points[mesh.cells]  # (m, 6, 2), meshio order: corners, then edges 01, 12, 20
    pts = np.array([[1 / 6, 1 / 6], [2 / 3, 1 / 6], [1 / 6, 2 / 3]])
    area = 0.0
    for s, t in pts:
        l0 = 1 - s - t
        # gradients of the P2 shape functions in (s, t)
        ds = np.array([-(4 * l0 - 1), 4 * s - 1, 0, 4 * (l0 - s), 4 * t, -4 * t])
        dt = np.array([-(4 * l0 - 1), 0, 4 * t - 1, -4 * s, 4 * s, 4 * (l0 - t)])
        J = np.stack([x.transpose(0, 2, 1) @ ds, x.transpose(0, 2, 1) @ dt], axis=-1)
        area = area + np.abs(np.linalg.det(J)).sum() / 6
    space = FESpace(mesh)
    assert space.mass().sum() == pytest.approx(area, rel=1e-10)
    assert mesh.cell_measures().sum() == pytest.approx(area, rel=0.05)  # straight-sided estimate


# ------------------------------------------------------------------ vector spaces
@pytest.mark.parametrize("order", [1, 2])
def test_vector_space_components(order):
    mesh = Mesh.unit_square(3)
    space = FESpace(mesh, order=order, vector=True)
    scalar = FESpace(mesh, order=order)
    assert space.n_components == 2 and space.n_dofs == 2 * scalar.n_dofs
    assert space.mass().sum() == pytest.approx(2.0, rel=1e-12)
    # an independent interpolant from scikit-fem's own projection: u = (x, 10 + y)
    u = space.basis.project(lambda x: np.stack([x[0], 10 + x[1]]))
    np.testing.assert_allclose(u, space.interpolate(lambda x: np.stack([x[0], 10 + x[1]])), atol=1e-10)
    for name, axis, value in (("left", 0, 0.0), ("top", 1, 1.0)):
        both = space.dofs_on(name)
        c0, c1 = space.dofs_on(name, 0), space.dofs_on(name, 1)
        assert len(c0) == len(c1) == len(scalar.dofs_on(name)) and len(both) == 2 * len(c0)
        np.testing.assert_array_equal(np.union1d(c0, c1), both)
        np.testing.assert_allclose(u[c0], space.dof_coordinates[c0, 0], atol=1e-10)
        np.testing.assert_allclose(u[c1], 10 + space.dof_coordinates[c1, 1], atol=1e-10)
        np.testing.assert_allclose(space.dof_coordinates[both, axis], value, atol=1e-12)
    nodes = space.to_nodes(u)
    assert nodes.shape == (mesh.n_points, 2)
    np.testing.assert_allclose(nodes, mesh.points + [0, 10], atol=1e-10)
    pts = _interior_points(mesh, 20, np.random.default_rng(RNG_SEED))
    np.testing.assert_allclose((space.probe(pts) @ u).reshape(-1, 2), pts + [0, 10], atol=1e-10)
    if order == 1:
        np.testing.assert_allclose(space.from_nodes(nodes), u, atol=1e-12)
    # rigid translations are in the kernel of the vector stiffness
    np.testing.assert_allclose(space.stiffness() @ space.interpolate(
        lambda x: np.stack([np.ones_like(x[0]), -2 * np.ones_like(x[0])])), 0, atol=1e-10)


def test_fe_space_refuses_bad_orders_and_surface_meshes():
    with pytest.raises(MeshError):
        FESpace(Mesh.unit_square(2), order=3)
    surface = Mesh(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 1.0]]), "triangle", np.array([[0, 1, 2]]))
    with pytest.raises(MeshError):
        FESpace(surface)


def test_skfem_basis_agrees():
    """The space's matrices are scikit-fem's for the same element."""
    from skfem.models.poisson import laplace, mass

    mesh = Mesh.unit_square(4)
    space = FESpace(mesh)
    basis = skfem.Basis(skfem.MeshTri.init_tensor(*(2 * [np.linspace(0, 1, 5)])), skfem.ElementTriP1())
    assert abs(space.stiffness().sum() - laplace.assemble(basis).sum()) < 1e-12
    assert space.stiffness().nnz == laplace.assemble(basis).tocsr().nnz
    assert space.mass().sum() == pytest.approx(mass.assemble(basis).sum(), rel=1e-12)


@pytest.mark.parametrize("factory", [lambda: Mesh.unit_square(2), lambda: Mesh.unit_square(2, cell="quad"),
                                     lambda: Mesh.box(1), lambda: Mesh.box(1, cell="hexahedron")])
def test_refined_keeps_measure_and_tags(factory):
    mesh = factory()
    fine = mesh.refined()
    children = 2 ** mesh.dim if mesh.cell_type != "tetra" else 8
    assert fine.n_cells == children * mesh.n_cells
    assert fine.cell_measures().sum() == pytest.approx(mesh.cell_measures().sum(), rel=1e-12)
    name = "left" if mesh.dim == 2 else "xmin"
    tag = fine.tag(name)
    assert tag.size == 2 ** (mesh.dim - 1) * mesh.tag(name).size
    np.testing.assert_allclose(fine.points[tag.indices][..., 0], 0.0)


def test_refined_tet_mesh_keeps_cell_tags():
    mesh = Mesh.box(2)
    low = np.flatnonzero(mesh.points[mesh.cells].mean(axis=1)[:, 2] < 0.5)
    mesh = mesh.with_tags(low=Tag("low", "cell", low))
    fine = mesh.refined(2)
    assert fine.tag("low").size == 64 * low.size
    assert (fine.points[fine.cells[fine.tag("low").indices]][..., 2] <= 0.5 + 1e-12).all()
    assert fine.tag("zmax").size == 16 * mesh.tag("zmax").size


@pytest.mark.parametrize("factory", [
    lambda: Mesh.rectangle(4, 3, 0.0, 2.0, -1.0, 2.0, order=2),
    lambda: Mesh.rectangle(3, 2, 0.0, 2.0, -1.0, 2.0, cell="quad", order=2),
    lambda: Mesh.from_skfem(skfem.MeshTet2.from_mesh(skfem.MeshTet.init_tensor(*3 * [np.linspace(0, 1, 3)]))),
], ids=["triangle6", "quad9", "tetra10"])
def test_from_corners_is_scikit_fems_linear_interpolant(factory):
    """Values at the corners, carried to every node of the quadratic mesh, equal the P1 (Q1) function of
    the linear sub-mesh that scikit-fem evaluates at those nodes (straight-sided cells)."""
    mesh = factory()
    sub, corners = mesh.linear_submesh()
    assert sub.order == 1 and sub.n_cells == mesh.n_cells
    np.testing.assert_array_equal(sub.points, mesh.points[corners])
    values = np.random.default_rng(RNG_SEED).normal(size=sub.n_points)
    space = FESpace(sub, order=1)
    expected = space.probe(mesh.points) @ space.from_nodes(values)
    np.testing.assert_allclose(mesh.from_corners(values), expected, atol=1e-12)


def test_linear_submesh_keeps_the_tags_of_a_third_party_quadratic_mesh(shared_meshes, tmp_path):
    mesh = read(shared_meshes / "skfem_quadratic_tri.msh")
    sub, corners = mesh.linear_submesh()
    assert (mesh.cell_type, sub.cell_type) == ("triangle6", "triangle")
    assert sub.tag("boundary").size == mesh.tag("boundary").size
    np.testing.assert_array_equal(np.sort(corners[sub.boundary_nodes()]),
                                  np.intersect1d(mesh.boundary_nodes(), corners))
    tagged = mesh.with_tags(ends=Tag("ends", "node", mesh.boundary_nodes()))
    kept = tagged.linear_submesh()[0].tag("ends").indices
    np.testing.assert_array_equal(np.sort(corners[kept]), np.intersect1d(mesh.boundary_nodes(), corners))
