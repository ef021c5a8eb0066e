"""Heat equation against the Dirichlet eigenmodes of the unit square."""
import numpy as np
import pytest

from graphfem.meshes import GraphfemError, Mesh, Trajectory, read_series
from graphfem.physics import Heat, heat, heat_solution, poisson

PI = np.pi


def mode(m, n):
    return lambda x: np.sin(m * PI * x[0]) * np.sin(n * PI * x[1])


def amplitudes(trajectory, shape):
    """Least-squares amplitude a(t) of u(t) ≈ a(t) shape at the nodes, (T,)."""
    return trajectory.fields["u"] @ shape / (shape @ shape)


@pytest.mark.parametrize("m, n", [(1, 1), (1, 2), (2, 2), (3, 1)])
def test_eigenmode_decay_rates(m, n):
    # u0 = sin(mπx) sin(nπy) decays like exp(−π²(m² + n²) t); Crank–Nicolson, small dt, P2.
    mesh = Mesh.unit_square(12)
    trajectory = heat(mesh, t_end=0.02, dt=1e-3, initial=mode(m, n), theta=0.5, order=2)
    a = amplitudes(trajectory, mode(m, n)(mesh.points.T))
    rate = -np.polyfit(trajectory.times, np.log(a), 1)[0]
    assert rate == pytest.approx(PI ** 2 * (m * m + n * n), rel=1e-2)
    assert isinstance(trajectory, Trajectory)
    assert trajectory.fields["u"].shape == (21, mesh.n_points)


def test_backward_euler_amplification():
    # Backward Euler damps a mode by 1/(1 + λ dt) per step.
    mesh, lam, dt = Mesh.unit_square(12), 2 * PI ** 2, 1e-2
    sol = heat_solution(mesh, t_end=0.1, dt=dt, initial=mode(1, 1), theta=1.0, order=2)
    a = amplitudes(sol.trajectory, mode(1, 1)(mesh.points.T))
    assert np.allclose(a[1:] / a[:-1], 1 / (1 + lam * dt), rtol=1e-4)
    assert sol.info["steps"] == 10 and sol.info["method"] == "direct"


def test_steady_state_is_poisson_solution():
    # With a source and non-zero boundary values, u(t) → the Poisson solution.
    mesh = Mesh.unit_square(6)
    bc = {"left": 1.0, "right": lambda x: x[1]}
    trajectory = heat(mesh, t_end=5.0, dt=0.5, f=3.0, dirichlet=bc, initial=np.zeros(mesh.n_points), solver="amg")
    steady = poisson(mesh, f=3.0, dirichlet=bc)
    assert np.allclose(trajectory.fields["u"][-1], steady.fields["u"], atol=1e-8)
    assert trajectory.fields["u"][0, 0] == 1.0  # the Dirichlet value replaces u0 on the boundary


def test_save_every_and_pvd(tmp_path):
    mesh = Mesh.unit_square(4)
    sol = Heat().solve(mesh, t_end=0.1, dt=0.03, initial=mode(1, 1), save_every=2, unit="K")
    # 0.1 / 0.03 -> 4 steps of 0.025; steps 2 and 4 are kept after the initial state
    assert np.allclose(sol.trajectory.times, [0.0, 0.05, 0.1])
    assert sol.units == {"u": "K"}
    path = tmp_path / "heat.pvd"
    sol.trajectory.write(path)
    _, times, fields = read_series(path)
    assert np.allclose(times, [0.0, 0.05, 0.1])
    assert np.allclose(fields["u"].reshape(3, -1), sol.trajectory.fields["u"])


@pytest.mark.parametrize("kwargs", [{"dt": 0.0}, {"dt": np.nan}, {"theta": 2.0}, {"initial": np.nan},
                                    {"initial": np.ones(3)}, {"save_every": 0}])
def test_bad_input(kwargs):
    params = {"t_end": 0.1, "dt": 0.05, **kwargs}
    with pytest.raises(GraphfemError):
        heat(Mesh.unit_square(2), **params)
