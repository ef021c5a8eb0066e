"""Data families for ``graphfem generate darcy-two-phase | darcy-smooth | cavity | mac-channel | mac-cylinder``
(registered problems sample themselves).

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

from .darcy import darcy, gaussian_random_field, grid_lookup, two_phase_coefficient
from .grid import lid_driven_cavity
from .mac_channel import mac_channel, mac_cylinder


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


def darcy_smooth(rng: np.random.Generator, resolution: int = 28, grid_points: int = 29) -> dict:
    """−∇·(a∇u) = 10 on the unit square, u = 0 on the boundary, with a smooth log-normal a = exp(g),
    g the unit-variance Gaussian random field of :func:`gaussian_random_field` ((−Δ + 9)^(−2), the
    two-phase family's field before thresholding) on a ``grid_points``² vertex grid, a at the cell
    centroids from the bilinear interpolant of g (a cell field, roughly e^{±3}). The DGNO paper's smooth
    Darcy case; its coefficient law was not read, this one is ours.

    Returns inputs ``a`` (n_cells,) and ``a_grid`` (grid_points, grid_points), outputs ``u``
    (n_points,) on a ``resolution``² triangle mesh (P1)."""
    if resolution < 2:
        raise InputError(f"resolution must be at least 2, got {resolution}")
    mesh = Mesh.unit_square(int(resolution))
    g = gaussian_random_field(rng, (grid_points, grid_points), alpha=2.0, tau=3.0)
    centroids = mesh.points[mesh.corner_cells].mean(axis=1)[:, :2]
    a = np.exp(grid_lookup(g, centroids, method="linear"))
    solution = darcy(mesh, a, 10.0, order=1)
    return {"mesh": mesh, "inputs": {"a": a, "a_grid": np.exp(g)},
            "params": {"f": 10.0, "law": "exp(g)", "alpha": 2.0, "tau": 3.0, "grid_points": grid_points},
            "outputs": {"u": solution.fields["u"]}}


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
    "darcy-smooth": darcy_smooth,
    "cavity": cavity,
    "mac-channel": mac_channel,
    "mac-cylinder": mac_cylinder,
}

__all__ = ["GENERATORS", "cavity", "darcy_smooth", "darcy_two_phase", "mac_channel", "mac_cylinder"]
