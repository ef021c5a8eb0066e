"""Poisson solver against convergence theory and exact solutions."""
import numpy as np
import pytest
from skfem import Functional
from skfem.helpers import dot

from graphfem.meshes import FESpace, GraphfemError, Mesh, MeshError
from graphfem.physics import Poisson, poisson

PI = np.pi


def exact(x):
    return np.sin(PI * x[0]) * np.sin(PI * x[1])


def exact_grad(x):
    return np.stack([PI * np.cos(PI * x[0]) * np.sin(PI * x[1]), PI * np.sin(PI * x[0]) * np.cos(PI * x[1])])


@Functional
def l2_error(w):
    return (w["uh"] - exact(w.x)) ** 2


@Functional
def h1_error(w):
    e = w["uh"].grad - exact_grad(w.x)
    return dot(e, e)


def errors(n, order):
    """(h, L2 error, H1-seminorm error), both at quadrature points."""
    sol = poisson(Mesh.unit_square(n), f=lambda x: 2 * PI ** 2 * exact(x), order=order)
    basis = sol.space.basis
    uh = basis.interpolate(sol.dofs["u"])
    return 1.0 / n, np.sqrt(l2_error.assemble(basis, uh=uh)), np.sqrt(h1_error.assemble(basis, uh=uh))


@pytest.mark.parametrize("order, sizes, rate_l2, rate_h1", [(1, (16, 32, 64), 2.0, 1.0), (2, (8, 16, 32), 3.0, 2.0)])
def test_convergence_rates(order, sizes, rate_l2, rate_h1):
    h, e0, e1 = np.array([errors(n, order) for n in sizes]).T
    observed_l2 = np.polyfit(np.log(h), np.log(e0), 1)[0]
    observed_h1 = np.polyfit(np.log(h), np.log(e1), 1)[0]
    assert observed_l2 == pytest.approx(rate_l2, abs=0.1)
    assert observed_h1 == pytest.approx(rate_h1, abs=0.1)


def test_max_of_unit_load_solution():
    # −Δu = 1 on the unit square, u = 0 on the boundary: max u = u(1/2, 1/2) = 0.0736713...
    sol = poisson(Mesh.unit_square(16), f=1.0, order=2)
    assert sol.fields["u"].max() == pytest.approx(0.0736713, rel=1e-4)
    assert sol.units == {"u": "1"}
    assert sol.fields["u"].shape == (17 * 17,)


def test_quadratic_mesh_defaults_to_p2():
    sol = poisson(Mesh.unit_square(8, order=2))
    assert sol.space.order == 2
    assert sol.fields["u"].max() == pytest.approx(0.0736713, rel=1e-3)


def test_neumann_manufactured():
    # u = 1 + x²: −u'' = −2, u(0) = 1, flux u' = 2 at x = 1, zero flux on top/bottom. P2 is exact.
    mesh = Mesh.unit_square(4)
    sol = poisson(mesh, f=-2.0, dirichlet={"left": 1.0}, neumann={"right": 2.0}, order=2)
    assert np.allclose(sol.fields["u"], 1 + mesh.points[:, 0] ** 2, atol=1e-10)


def test_robin_manufactured():
    # u = 1 + x²: κ u' + α u = 2 + 3·2 = 8 at x = 1 with α = 3.
    mesh = Mesh.unit_square(4)
    sol = poisson(mesh, f=-2.0, dirichlet={"left": lambda x: 1.0 + 0 * x[0]}, robin={"right": (3.0, 8.0)}, order=2)
    assert np.allclose(sol.fields["u"], 1 + mesh.points[:, 0] ** 2, atol=1e-10)


def test_robin_only_has_unique_solution():
    # −u'' = 0, κ u' + u = g on both ends with u = 2 + x: left (n = −x): −1 + 2 = 1, right: 1 + 3 = 4.
    mesh = Mesh.unit_square(3)
    sol = poisson(mesh, f=0.0, robin={"left": (1.0, 1.0), "right": (1.0, 4.0)})
    assert np.allclose(sol.fields["u"], 2 + mesh.points[:, 0], atol=1e-10)


@pytest.mark.parametrize("form", ["point", "callable"])
def test_variable_kappa(form):
    # −((1 + x) u')' = f with u = x²: f = −(2 + 4x); flux κ u' = 4 at x = 1. κ linear, so P1 fields are exact.
    mesh = Mesh.unit_square(4)
    kappa = 1 + mesh.points[:, 0] if form == "point" else (lambda x: 1 + x[0])
    sol = poisson(mesh, kappa=kappa, f=lambda x: -(2 + 4 * x[0]), dirichlet={"left": 0.0},
                  neumann={"right": 4.0}, order=2)
    assert np.allclose(sol.fields["u"], mesh.points[:, 0] ** 2, atol=1e-10)


def test_cell_kappa_two_layers():
    # κ = 1 on x < 1/2, 2 on x > 1/2, u(0) = 0, u(1) = 1: constant flux q = 4/3, u piecewise linear.
    mesh = Mesh.unit_square(4)
    centre = mesh.points[mesh.cells].mean(axis=1)[:, 0]
    kappa = np.where(centre < 0.5, 1.0, 2.0)
    sol = poisson(mesh, kappa=kappa, f=0.0, dirichlet={"left": 0.0, "right": 1.0})
    x = mesh.points[:, 0]
    expected = np.where(x <= 0.5, 4 / 3 * x, 2 / 3 + 2 / 3 * (x - 0.5))
    assert np.allclose(sol.fields["u"], expected, atol=1e-10)


def test_space_reuse_and_nodal_values():
    mesh = Mesh.unit_square(6)
    space = FESpace(mesh, order=2)
    a = poisson(space, f=1.0)
    b = Poisson().solve(space, f=2.0)
    assert b.space is space
    assert np.allclose(b.fields["u"], 2 * a.fields["u"])
    assert np.allclose(a.fields["u"], space.to_nodes(a.dofs["u"]))


def test_unknown_tag_names_known_tags():
    with pytest.raises(MeshError, match="unknown tag 'inlet'.*left"):
        poisson(Mesh.unit_square(2), dirichlet={"inlet": 0.0})


@pytest.mark.parametrize("kwargs", [{"f": np.nan}, {"kappa": np.inf}, {"kappa": -1.0},
                                    {"f": lambda x: np.full(x.shape[1:], np.nan)},
                                    {"dirichlet": {"left": np.nan}}, {"neumann": {"right": np.nan}}])
def test_bad_values_raise(kwargs):
    with pytest.raises(GraphfemError):
        poisson(Mesh.unit_square(2), **kwargs)


def test_nan_in_point_field_and_wrong_length():
    mesh = Mesh.unit_square(2)
    kappa = np.ones(mesh.n_points)
    kappa[3] = np.nan
    with pytest.raises(GraphfemError, match="non-finite"):
        poisson(mesh, kappa=kappa)
    with pytest.raises(GraphfemError, match="point or"):
        poisson(mesh, kappa=np.ones(5))


def test_pure_neumann_refused():
    with pytest.raises(GraphfemError, match="not unique"):
        poisson(Mesh.unit_square(2), neumann={"left": 1.0})


def test_solution_writes_vtu_with_units(tmp_path):
    sol = poisson(Mesh.unit_square(4), unit="K")
    sol.write(tmp_path / "u.vtu")
    back = Mesh.read(tmp_path / "u.vtu")
    assert np.allclose(back.point_data["u"], sol.fields["u"])
