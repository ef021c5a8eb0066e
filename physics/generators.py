"""Dataset generators for ``graphfem generate darcy-two-phase | burgers | cavity``.

Each generator is ``(rng, resolution) -> dict`` with

* ``"mesh"`` (a :class:`~graphfem.meshes.Mesh`) or ``"grid"`` (a :class:`~graphfem.meshes.Grid`);
* ``"inputs"``: name -> array (what a model is given);
* ``"params"``: name -> number or list (JSON-ready scalars);
* ``"outputs"``: name -> array (the reference solution);
* ``"times"`` (T,) for time series (outputs then lead with T).

A sample depends only on the generator's state: ``np.random.default_rng([seed, i])``
gives sample i of a dataset whatever the number of workers.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from graphfem.meshes import Mesh
from graphfem.meshes.errors import InputError

from .darcy import darcy, gaussian_random_field, two_phase_coefficient
from .grid import lid_driven_cavity
from .transport import burgers as burgers_solve


def darcy_two_phase(rng: np.random.Generator, resolution: int = 32, grid_points: int = 29) -> dict:
    """−∇·(a∇u) = 10 on the unit square, u = 0 on the boundary, a ∈ {5, 10}
    the thresholded Gaussian random field ((−Δ + 9)^(−2), DGNO/FNO's) on a
    ``grid_points``² vertex grid, looked up at the cell centroids.

    Returns inputs ``a`` (n_cells,) and ``a_grid`` (grid_points, grid_points),
    outputs ``u`` (n_points,) on a ``resolution``² triangle mesh (P1)."""
    if resolution < 2:
        raise InputError(f"resolution must be at least 2, got {resolution}")
    mesh = Mesh.unit_square(int(resolution))
    a, a_grid = two_phase_coefficient(rng, mesh, grid_points=grid_points)
    solution = darcy(mesh, a, 10.0, order=1)
    return {"mesh": mesh, "inputs": {"a": a, "a_grid": a_grid},
            "params": {"f": 10.0, "values": [5.0, 10.0], "alpha": 2.0, "tau": 3.0, "grid_points": grid_points,
                       "high_fraction": float((a_grid == 10.0).mean())},
            "outputs": {"u": solution.fields["u"]}}


def burgers(rng: np.random.Generator, resolution: int = 128, t_end: float = 1.0, n_times: int = 21) -> dict:
    """u_t + u u_x = ν u_xx on (−1, 1), u(±1) = 0, t ∈ (0, 1] (DGNO's setting),
    ν log-uniform in [0.02/π, 0.1/π] (mesh Reynolds number ≲ 2.5 at 128 cells); u₀ = a smooth Gaussian random field
    (α = 2.5, τ = 5) times (1 − x²), scaled to max |u₀| uniform in [0.5, 1].

    P1 with ``resolution`` cells, Crank–Nicolson with Newton and Δt chosen
    so that the mesh Reynolds number stays small (Δt = t_end / (20·(n_times − 1))
    at most). Returns inputs ``u0`` (n_points,), outputs ``u`` (T, n_points), ``times``."""
    if resolution < 8:
        raise InputError(f"resolution must be at least 8, got {resolution}")
    mesh = Mesh.interval(int(resolution), -1.0, 1.0)
    nu = float(10 ** rng.uniform(np.log10(0.02 / np.pi), np.log10(0.1 / np.pi)))
    x = mesh.points[:, 0]
    g = gaussian_random_field(rng, (4 * int(resolution),), alpha=2.5, tau=5.0, length=4.0)
    # the field lives on a periodic box of length 4 ⊃ [−1, 1]: take the middle half
    xs = np.linspace(-2.0, 2.0, g.size, endpoint=False)
    u0 = np.interp(x, xs, g) * (1 - x ** 2)
    u0 *= rng.uniform(0.5, 1.0) / max(float(np.abs(u0).max()), 1e-12)
    every = 20
    solution = burgers_solve(mesh, nu, initial=u0, t_end=t_end, dt=t_end / (every * (n_times - 1)), theta=0.5,
                             save_every=every)
    traj = solution.trajectory
    return {"mesh": mesh, "inputs": {"u0": u0}, "params": {"nu": nu, "t_end": t_end},
            "outputs": {"u": traj.fields["u"]}, "times": traj.times}


def cavity(rng: np.random.Generator, resolution: int = 32, re_range: tuple[float, float] = (10.0, 100.0)) -> dict:
    """Steady lid-driven cavity on the unit square, MAC grid of ``resolution``²
    cells, lid speed 1, Re uniform in ``re_range``.

    Returns grid, params ``re``, ``nu``, inputs ``lid`` (nx,) the lid speed
    per top cell, outputs ``u``, ``v``, ``p`` at cell centres (nx, ny) and the
    staggered ``u_faces`` (nx+1, ny), ``v_faces`` (nx, ny+1)."""
    if resolution < 4:
        raise InputError(f"resolution must be at least 4, got {resolution}")
    re = float(rng.uniform(*re_range))
    state = lid_driven_cavity(int(resolution), re=re, steady_tol=1e-5)
    fields = state.fields()
    return {"grid": state.grid, "inputs": {"lid": np.ones(int(resolution))},
            "params": {"re": re, "nu": 1.0 / re, "steps": int(state.info["steps"]),
                       "max_divergence": state.info["max_divergence"]},
            "outputs": {**fields, "u_faces": state.u, "v_faces": state.v}}


#: name -> generator, for ``graphfem generate``.
GENERATORS: dict[str, Callable[..., dict]] = {
    "darcy-two-phase": darcy_two_phase,
    "burgers": burgers,
    "cavity": cavity,
}

__all__ = ["GENERATORS", "burgers", "cavity", "darcy_two_phase"]
