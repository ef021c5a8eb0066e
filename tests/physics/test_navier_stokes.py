"""Stokes / Navier–Stokes (Taylor–Hood) against published benchmarks and exact solutions."""
import math

import numpy as np
import pytest

from graphfem.meshes import GraphfemError, Mesh, read_series
from graphfem.physics.channel import channel_mesh, dfg_mesh
from graphfem.physics.navier_stokes import (DFG_2D1, DFG_2D2, TaylorHood, dfg_2d1, dfg_setup,
                                            generate_cylinder_flow, kovasznay, navier_stokes,
                                            navier_stokes_transient, shedding, stokes)


def rel(a, b):
    return abs(a / b - 1)


@pytest.fixture(scope="module")
def dfg64():
    return dfg_2d1(64)


def test_dfg_2d1(dfg64):
    # Schäfer & Turek 2D-1, Re = 20: 14k dofs
    assert rel(dfg64["c_D"], DFG_2D1["c_D"]) < 0.005
    assert rel(dfg64["c_L"], DFG_2D1["c_L"]) < 0.05
    assert rel(dfg64["dp"], DFG_2D1["dp"]) < 0.005


def test_newton_converges_quadratically(dfg64):
    r = [h["residual"] for h in dfg64["solution"].info["newton"]]
    steps = [h["step"] for h in dfg64["solution"].info["newton"][:-1]]
    assert all(s == 1.0 for s in steps) and len(r) <= 8
    # the last two contractions: log(r_{k+1}/r_k) / log(r_k/r_{k-1}) ≈ 2
    order = math.log(r[-2] / r[-3]) / math.log(r[-3] / r[-4])
    assert order > 1.7
    assert r[-1] < 1e-9 * r[0]


@pytest.mark.slow
def test_dfg_2d1_fine():
    out = dfg_2d1(128)  # 55k dofs, ~40 s
    for key in ("c_D", "c_L", "dp"):
        assert rel(out[key], DFG_2D1[key]) < 0.002, key


def kovasznay_errors(n):
    velocity, pressure, nu = kovasznay(40.0)
    mesh = Mesh.rectangle(n, round(4 * n / 3), x0=-0.5, x1=1.0, y0=-0.5, y1=1.5)
    sol = navier_stokes(mesh, nu=nu, inflow={"boundary": velocity})
    th = sol.flow
    ub, pb = th.ub, th.pb
    x = np.asarray(ub.global_coordinates())
    uh = np.stack([np.asarray(ub.interpolate(sol.dofs["velocity"][c::2])) for c in range(2)])
    eu = math.sqrt(float(((uh - velocity(x)) ** 2).sum(axis=0).ravel() @ ub.dx.ravel()))
    xp = np.asarray(pb.global_coordinates())
    pe = pressure(xp)
    pe = pe - (pe.ravel() @ pb.dx.ravel()) / pb.dx.sum()
    ph = np.asarray(pb.interpolate(sol.dofs["pressure"]))
    ep = math.sqrt(float(((ph - pe) ** 2).ravel() @ pb.dx.ravel()))
    return eu, ep


def test_kovasznay_rates():
    # exact Navier–Stokes flow at Re = 40: L2 rates 3 (velocity) and 2 (pressure)
    e = np.array([kovasznay_errors(n) for n in (6, 12, 24)])
    rates = np.log2(e[:-1] / e[1:])
    assert rates[-1, 0] == pytest.approx(3.0, abs=0.2)
    assert rates[-1, 1] == pytest.approx(2.0, abs=0.2)


def test_stokes_polynomial_solution_is_exact():
    # u = (y², x²), p = x + y: −νΔu + ∇p = (1 − 2ν, 1 − 2ν); P2–P1 holds it exactly
    nu = 0.3
    mesh = Mesh.unit_square(4)
    sol = stokes(mesh, nu=nu, inflow={"boundary": lambda x: np.stack([x[1] ** 2, x[0] ** 2])},
                 f=[1 - 2 * nu, 1 - 2 * nu])
    p = mesh.points
    assert np.allclose(sol.fields["velocity"], np.stack([p[:, 1] ** 2, p[:, 0] ** 2], axis=1), atol=1e-11)
    exact_p = p[:, 0] + p[:, 1]
    assert np.allclose(sol.fields["pressure"], exact_p - 1.0, atol=1e-10)  # zero mean on the unit square


@pytest.mark.parametrize("solve, cell", [(stokes, "triangle"), (navier_stokes, "triangle"), (navier_stokes, "quad")])
def test_poiseuille_with_do_nothing_outflow(solve, cell):
    # parabolic inflow, no-slip walls, do-nothing outflow: u = 4U y(H − y)/H², p = 8νU (L − x)/H²
    # (P2–P1 on triangles, Q2–Q1 on quads)
    nu, U, L, H = 0.05, 1.0, 2.0, 0.5
    mesh = Mesh.rectangle(8, 3, x1=L, y1=H, cell=cell)
    sol = solve(mesh, nu=nu, inflow={"left": U}, no_slip=["top", "bottom"], outflow=["right"])
    x, y = mesh.points.T
    assert np.allclose(sol.fields["velocity"][:, 0], 4 * U * y * (H - y) / H ** 2, atol=1e-10)
    assert np.allclose(sol.fields["velocity"][:, 1], 0.0, atol=1e-10)
    assert np.allclose(sol.fields["pressure"], 8 * nu * U * (L - x) / H ** 2, atol=1e-9)
    assert np.allclose(sol.pressure_at(np.array([[1.0, 0.2]])), 8 * nu * U / H ** 2, atol=1e-9)


def test_iterative_solver_agrees_with_direct():
    mesh = dfg_mesh(32)
    direct = stokes(mesh, nu=1e-3, solver="direct", **dfg_setup(0.3))
    iterative = stokes(mesh, nu=1e-3, solver="iterative", rtol=1e-10, **dfg_setup(0.3))
    assert iterative.info["method"] == "iterative" and iterative.info["iterations"] > 0
    assert np.allclose(iterative.dofs["velocity"], direct.dofs["velocity"], atol=1e-8)
    one_step = dict(nu=1e-3, t_end=0.01, dt=0.01, obstacle="cylinder", **dfg_setup(1.5))
    a = navier_stokes_transient(mesh, solver="direct", **one_step)
    b = navier_stokes_transient(mesh, solver="iterative", **one_step)
    assert np.allclose(a.info["forces"][-1], b.info["forces"][-1], rtol=1e-5)


def test_transient_keeps_the_steady_state_and_its_forces(tmp_path):
    # started from the steady 2D-1 flow, BDF2 must stay there; its forces (mass term included)
    # then equal the steady volume-integral forces
    th = TaylorHood(dfg_mesh(32))
    steady = navier_stokes(th, nu=1e-3, **dfg_setup(0.3))
    sol = navier_stokes_transient(th, nu=1e-3, t_end=0.05, dt=0.01, initial=steady, obstacle="cylinder",
                                  **dfg_setup(0.3))
    assert np.allclose(sol.info["forces"][1:, 1:], steady.forces("cylinder"), rtol=1e-6)
    traj = sol.trajectory
    assert traj.fields["velocity"].shape == (6, th.mesh.n_points, 2)
    assert np.abs(traj.fields["velocity"][-1] - steady.fields["velocity"]).max() < 1e-8
    traj.write(tmp_path / "flow.pvd")
    mesh, times, fields = read_series(tmp_path / "flow.pvd")
    assert np.allclose(times, traj.times) and set(fields) >= {"velocity", "pressure"}


def test_newton_failure_names_iterations_and_residual():
    with pytest.raises(GraphfemError, match=r"Newton did not converge in 1 iterations: residual"):
        navier_stokes(dfg_mesh(16), nu=1e-3, max_iter=1, **dfg_setup(0.3))


def test_bad_input_is_one_line():
    mesh = dfg_mesh(16)
    with pytest.raises(GraphfemError, match="unknown tag 'wall'"):
        stokes(mesh, nu=1e-3, inflow={"inlet": 0.3}, no_slip=["wall"])
    with pytest.raises(GraphfemError, match="nu must be positive"):
        stokes(mesh, nu=0.0, inflow={"inlet": 0.3})
    with pytest.raises(GraphfemError, match="both a velocity and an outflow"):
        stokes(mesh, nu=1.0, inflow={"inlet": 0.3}, outflow=["inlet"])
    with pytest.raises(GraphfemError, match="multiple of 8"):
        dfg_mesh(20)


def test_channel_mesh_geometry():
    mesh = dfg_mesh(32)
    assert mesh.cell_type == "triangle6"
    area = TaylorHood(mesh).area
    assert area == pytest.approx(2.2 * 0.41 - math.pi * 0.05 ** 2, rel=1e-6)  # curved cells: O(h⁴) area error
    cyl = mesh.points[mesh.tag_nodes("cylinder")]
    assert np.allclose(np.hypot(cyl[:, 0] - 0.2, cyl[:, 1] - 0.2), 0.05)
    assert mesh.quality().min() > 0.3
    assert {"inlet", "outlet", "walls", "cylinder"} <= set(mesh.tags)


def test_generate_cylinder_flow_is_seeded():
    mesh, params, fields = generate_cylinder_flow(np.random.default_rng(3), resolution=24)
    again = generate_cylinder_flow(np.random.default_rng(3), resolution=24)
    assert np.array_equal(mesh.points, again[0].points)
    assert params["reynolds"] == pytest.approx(2 * params["u_max"] / 3 * 2 * params["radius"] / params["nu"])
    assert 2 <= params["reynolds"] <= 40 and params["c_D"] > 0
    assert fields["velocity"].shape == (mesh.n_points, 2) and fields["pressure"].shape == (mesh.n_points,)
    on_cyl = mesh.tag_nodes("cylinder")
    assert np.abs(fields["velocity"][on_cyl]).max() == 0.0


def test_shedding_reads_a_sine():
    t = np.linspace(0, 3, 3001)
    F = np.stack([t, 0.15 + 0.001 * np.sin(4 * math.pi * t), 0.05 * np.sin(2 * math.pi * 3.0 * t + 0.3)], axis=1)
    out = shedding(np.vstack([[0, np.nan, np.nan], F]), u_mean=1.0, length=0.1, periods=3)
    assert out["strouhal"] == pytest.approx(0.3, rel=1e-4)
    assert out["c_L_max"] == pytest.approx(1.0, rel=1e-3)


@pytest.mark.slow
def test_dfg_2d2_vortex_street():
    # Re = 100 periodic shedding (~20 min on 2 cores): Strouhal within 2 %, max c_D within 1 %
    mesh = dfg_mesh(64)
    sol = navier_stokes_transient(mesh, nu=1e-3, t_end=8.0, dt=0.005, obstacle="cylinder", save_every=100,
                                  **dfg_setup(1.5))
    out = shedding(sol.info["forces"], u_mean=1.0, length=0.1, periods=3)
    assert rel(out["strouhal"], DFG_2D2["strouhal"]) < 0.02
    assert rel(out["c_D_max"], DFG_2D2["c_D_max"]) < 0.01


def test_random_cylinder_mesh_fits():
    mesh = channel_mesh(24, order=1, centre=(0.33, 0.17), radius=0.055)
    assert mesh.cell_type == "triangle" and mesh.quality().min() > 0.3
    with pytest.raises(GraphfemError, match="does not fit"):
        channel_mesh(24, centre=(0.2, 0.06), radius=0.05)
