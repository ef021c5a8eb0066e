"""Linear elasticity against published benchmarks and exact solutions."""
import numpy as np
import pytest

from graphfem.meshes import GraphfemError, Mesh, MeshError
from graphfem.physics import Elasticity, elasticity
from graphfem.physics.elasticity import lame


def node_at(mesh, point):
    (index,) = np.flatnonzero(np.all(np.isclose(mesh.points, point), axis=1))
    return index


def cook_membrane(n, cell="triangle"):
    """Cook's membrane: the unit square mapped bilinearly onto the quadrilateral
    (0,0), (48,44), (48,60), (0,44); the square's tags follow the nodes."""
    square = Mesh.rectangle(n, n, cell=cell)
    xi, eta = square.points.T
    points = np.stack([48 * xi, 44 * xi + eta * (44 - 28 * xi)], axis=1)
    return Mesh(points, square.cell_type, square.cells, tags=square.tags)


@pytest.mark.parametrize("cell", ["triangle", "quad"])
def test_cook_membrane(cell):
    # Plane stress, E = 1, nu = 1/3, left edge clamped, total shear 1 over the
    # right edge (length 16): reference vertical displacement at (48, 52) is 23.96.
    mesh = cook_membrane(16, cell)
    sol = elasticity(mesh, E=1.0, nu=1 / 3, plane="stress", fixed=["left"], traction={"right": (0.0, 1 / 16)},
                     order=2)
    v = sol.fields["displacement"][node_at(mesh, (48, 52)), 1]
    assert v == pytest.approx(23.96, rel=5e-3)
    assert sol.fields["displacement"].shape == (mesh.n_points, 2)
    assert sol.fields["von_mises"].shape == (mesh.n_points,)
    assert sol.units == {"displacement": "m", "von_mises": "Pa"}


L, D, E, NU, P = 48.0, 12.0, 3e7, 0.3, 1000.0
INERTIA = D ** 3 / 12


def timoshenko(x):
    """Exact plane-stress displacement of the cantilever x ∈ [0, L], y ∈ [−D/2, D/2]
    under the parabolic end shear of total P (Timoshenko & Goodier); (2, ...)."""
    X, Y = x[0], x[1]
    ux = -P * Y / (6 * E * INERTIA) * ((6 * L - 3 * X) * X + (2 + NU) * (Y ** 2 - D ** 2 / 4))
    uy = P / (6 * E * INERTIA) * (3 * NU * Y ** 2 * (L - X) + (4 + 5 * NU) * D ** 2 * X / 4 + (3 * L - X) * X ** 2)
    return np.stack([ux, uy])


def end_shear(x):
    return np.stack([0 * x[0], P / (2 * INERTIA) * (D ** 2 / 4 - x[1] ** 2)])


def test_timoshenko_tip_deflection():
    # v_tip = P L³/(3EI) + (4 + 5ν) P D² L/(24 E I) = 0.0089 exactly.
    # (a) exact displacement on the left edge (the support the analytic solution
    #     assumes): P2 matches the whole field to 1e-5.
    mesh = Mesh.rectangle(32, 8, 0, L, -D / 2, D / 2, cell="quad")
    tip = node_at(mesh, (L, 0))
    exact = elasticity(mesh, E=E, nu=NU, displacement={"left": timoshenko}, traction={"right": end_shear}, order=2)
    assert exact.fields["displacement"][tip, 1] == pytest.approx(0.0089, rel=1e-4)
    reference = timoshenko(mesh.points.T).T
    assert np.abs(exact.fields["displacement"] - reference).max() < 1e-5 * np.abs(reference).max()
    # (b) the usual benchmark clamps the whole left edge (u = v = 0), which
    #     differs from the analytic support only near x = 0: within 1 %.
    clamped = elasticity(mesh, E=E, nu=NU, fixed=["left"], traction={"right": end_shear}, order=2)
    assert clamped.fields["displacement"][tip, 1] == pytest.approx(0.0089, rel=1e-2)


def test_plane_strain_uniaxial_patch():
    # σ_xx = s, other stresses 0 except σ_zz = ν s (ε_zz = 0): u_x = s (1 − ν²) x / E,
    # u_y = −s ν (1 + ν) y / E; von Mises = s √(1 − ν + ν²). Linear, so P1 is exact.
    s, e, nu = 2.0, 10.0, 0.25
    mesh = Mesh.rectangle(3, 2, 0, 2, 0, 1)
    sol = elasticity(mesh, E=e, nu=nu, plane="strain", fixed={"left": "x", "bottom": 1},
                     traction={"right": (s, 0.0)})
    x, y = mesh.points.T
    assert np.allclose(sol.fields["displacement"][:, 0], s * (1 - nu ** 2) * x / e, atol=1e-12)
    assert np.allclose(sol.fields["displacement"][:, 1], -s * nu * (1 + nu) * y / e, atol=1e-12)
    assert np.allclose(sol.fields["von_mises"], s * np.sqrt(1 - nu + nu ** 2), rtol=1e-8)


def test_3d_uniaxial_with_body_force_free_symmetry():
    # Unit cube on symmetry planes, traction s on x = 1: u = s/E (x, −ν y, −ν z), von Mises = s.
    s, e, nu = 3.0, 200.0, 0.3
    mesh = Mesh.box(2)
    sol = Elasticity().solve(mesh, E=e, nu=nu, fixed={"xmin": 0, "ymin": 1, "zmin": "z"},
                             traction={"xmax": (s, 0.0, 0.0)}, solver="cg")
    expected = s / e * mesh.points * np.array([1.0, -nu, -nu])
    assert np.allclose(sol.fields["displacement"], expected, atol=1e-9)
    assert np.allclose(sol.fields["von_mises"], s, rtol=1e-6)
    assert sol.info["method"] == "cg"


def test_body_force_column_and_amg_matches_direct():
    # Column under its own weight ρg, bottom fixed in y, left fixed in x, 1D stress
    # σ_yy = −ρg (H − y) (plane stress, ν = 0): u_y = −ρg (H y − y²/2) / E. P2 is exact.
    rho_g, e, h = 2.0, 50.0, 3.0
    mesh = Mesh.rectangle(2, 6, 0, 1, 0, h)
    kwargs = dict(E=e, nu=0.0, fixed={"bottom": "y", "left": "x"}, body_force=(0.0, -rho_g), order=2)
    direct = elasticity(mesh, solver="direct", **kwargs)
    y = mesh.points[:, 1]
    assert np.allclose(direct.fields["displacement"][:, 1], -rho_g * (h * y - y ** 2 / 2) / e, atol=1e-10)
    amg = elasticity(mesh, solver="amg", rtol=1e-12, **kwargs)
    assert amg.info["method"] == "amg"
    assert np.allclose(amg.fields["displacement"], direct.fields["displacement"], atol=1e-9)


def test_cell_field_modulus():
    # Two bonded layers in series under uniaxial tension (ν = 0): strains s/E1 and s/E2.
    mesh = Mesh.rectangle(4, 1, 0, 2, 0, 1)
    centre = mesh.points[mesh.cells].mean(axis=1)[:, 0]
    modulus = np.where(centre < 1, 1.0, 4.0)
    sol = elasticity(mesh, E=modulus, nu=0.0, fixed={"left": "x", "bottom": "y"}, traction={"right": (2.0, 0)})
    x = mesh.points[:, 0]
    expected = np.where(x <= 1, 2.0 * x, 2.0 + 0.5 * (x - 1))
    assert np.allclose(sol.fields["displacement"][:, 0], expected, atol=1e-10)


def test_plane_stress_lame():
    lam, mu = lame(1.0, 0.25, 2, "stress")
    assert lam == pytest.approx(0.25 / (1 - 0.25 ** 2))
    assert mu == pytest.approx(0.4)


@pytest.mark.parametrize("kwargs, error", [
    ({"fixed": ["nowhere"]}, MeshError),
    ({"fixed": []}, GraphfemError),
    ({"fixed": ["left"], "nu": 0.5}, GraphfemError),
    ({"fixed": ["left"], "E": np.nan}, GraphfemError),
    ({"fixed": ["left"], "traction": {"right": (1.0, np.nan)}}, GraphfemError),
    ({"fixed": ["left"], "traction": {"right": (1.0, 0, 0)}}, GraphfemError),
    ({"fixed": {"left": "z"}}, GraphfemError),
    ({"fixed": ["left"], "plane": "shell"}, GraphfemError),
])
def test_bad_input(kwargs, error):
    with pytest.raises(error):
        elasticity(Mesh.unit_square(2), **kwargs)


@pytest.mark.parametrize("cell", ["triangle", "quad", "tetra"])
def test_load_resultant_in_closed_form_equals_the_assembled_load(cell):
    """t |Γ| + b |Ω| from the measures against the summed FE load vector (a partition of unity); a load that
    varies in space takes the assembly."""
    from graphfem.meshes import Mesh
    from graphfem.physics.elasticity import external_load, load_resultant
    from graphfem.physics.poisson import make_space

    if cell == "tetra":
        mesh = Mesh.box(3, upper=(2.0, 1.0, 0.5)).with_boundary_tags(end=lambda x: x[:, 0] > 2 - 1e-9)
        t, b = {"end": [0.3, -0.1, 0.2]}, [0.0, 0.5, -1.0]
    else:
        mesh = Mesh.rectangle(5, 3, x1=2.0, cell=cell).with_boundary_tags(end=lambda x: x[:, 0] > 2 - 1e-9)
        t, b = {"end": [0.3, -0.1]}, [0.0, -1.0]
    space = make_space(mesh, 1, vector=True)
    assembled = external_load(space, t, b).reshape(-1, mesh.dim).sum(0)
    np.testing.assert_allclose(load_resultant(mesh, t, b), assembled, rtol=1e-12, atol=1e-14)
    face, volume = (0.5, 1.0) if cell == "tetra" else (1.0, 2.0)
    expected = np.asarray(t["end"]) * face + np.asarray(b) * volume
    np.testing.assert_allclose(load_resultant(mesh, t, b), expected, rtol=1e-12)
    varying = {"end": lambda x: np.stack([x[1], 0 * x[1]] + ([0 * x[1]] if mesh.dim == 3 else []))}
    np.testing.assert_allclose(load_resultant(mesh, varying, None),
                               external_load(space, varying, None).reshape(-1, mesh.dim).sum(0), rtol=1e-12)
