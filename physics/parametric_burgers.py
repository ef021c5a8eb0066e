r"""Parametric 1D Burgers with viscosity and convection parameters (the RGNP paper's second problem).

    u_t + z₁ u u_x − z₀ u_xx = 0 on (0, 1) × (0, t_end],   u(0, t) = u(1, t) = 0,
    u(x, 0) = sin(2wπx) sin(πx),

z₀ the viscosity, z₁ the convection speed and w the frequency of the initial state.
v = z₁u solves the standard Burgers equation v_t + v v_x = z₀ v_xx from v₀ = z₁u₀, so the
FE reference (:func:`parametric_burgers`) is the project's verified :func:`graphfem.physics.burgers`
(P1, Crank–Nicolson, Newton per step) on v, divided by z₁. :func:`residual` is the strong
residual in torch for physics-informed models.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from graphfem.meshes import FESpace, Mesh, Trajectory
from graphfem.meshes.errors import InputError

from .problem import Option, Problem, Solution, register_problem

#: the sampler's box: z₀ ~ U(0.01, 0.1), z₁ ~ U(0.5, 1), w ~ U(0.5, 2)
Z_LOW, Z_HIGH, W_LOW, W_HIGH = (0.01, 0.5), (0.1, 1.0), 0.5, 2.0
#: number of unknown inputs (z₀, z₁)
N_Z = 2


def initial_state(x: np.ndarray, w: float) -> np.ndarray:
    """u₀ = sin(2wπx) sin(πx) at x (any shape)."""
    return np.sin(2 * w * np.pi * x) * np.sin(np.pi * x)


def parametric_burgers(mesh: Mesh | FESpace, viscosity: float, convection: float, frequency: float, *,
                       t_end: float = 1.0, dt: float = 0.01, theta: float = 0.5, save_every: int = 1) -> Solution:
    """Solve u_t + z₁uu_x − z₀u_xx = 0 on a mesh of [0, 1], u = 0 at both ends (module docstring).

    Returns:
        :class:`Solution` with the trajectory of u (T, n_points) (``save_every`` steps apart),
        ``fields["u"]`` its last frame, and the inner solver's ``info``.
    """
    from .transport import burgers

    if viscosity <= 0 or convection <= 0:
        raise InputError(f"--viscosity and --convection must be positive, got {viscosity:g}, {convection:g}")
    m = mesh.mesh if isinstance(mesh, FESpace) else mesh
    v = burgers(mesh, viscosity, initial=lambda x: convection * initial_state(x[0], frequency)[None], t_end=t_end,
                dt=dt, theta=theta, save_every=save_every)
    frames = v.trajectory.fields["u"] / convection
    trajectory = Trajectory(v.trajectory.times, {"u": frames}, m, units={"u": "1"})
    return Solution(v.space, {"u": v.dofs["u"] / convection}, {"u": frames[-1]}, {"u": "1"}, v.info,
                    trajectory=trajectory)


def residual(x, t, u, z):
    r"""The strong residual r = u_t + z₁ u u_x − z₀ u_xx in torch, by autograd.

    Args:
        x, t: (B, N) coordinates (``requires_grad``); u: (B, N) computed from them point by
            point; z: (B, 2) = (z₀, z₁).

    Returns:
        r: (B, N) (``create_graph``).
    """
    import torch

    du_x, du_t = torch.autograd.grad(u.sum(), (x, t), create_graph=True)
    (du_xx,) = torch.autograd.grad(du_x.sum(), x, create_graph=True)
    return du_t + z[:, 1:2] * u * du_x - z[:, 0:1] * du_xx


@register_problem
class ParametricBurgers(Problem):
    r"""u_t + z₁uu_x − z₀u_xx = 0 on [0, 1], u(0) = u(1) = 0, u₀ = sin(2wπx) sin(πx);
    :func:`parametric_burgers`.

    Data sets (:meth:`sample`): [0, 1] with ``resolution`` (500) P1 cells, 100 Crank–Nicolson
    steps to t = 1, frames every 2 steps; z₀ ~ U(0.01, 0.1), z₁ ~ U(0.5, 1), w ~ U(0.5, 2).
    """

    name = "parametric-burgers"
    fields = {"u": "1"}
    summary = "parametric Burgers u_t + z1 u u_x - z0 u_xx = 0 on [0, 1] from u0 = sin(2 w pi x) sin(pi x)"
    dims = (1,)
    options = (
        Option("viscosity", "number", None, "z0: the viscosity (> 0).", required=True),
        Option("convection", "number", 1.0, "z1: the convection speed (> 0, default 1)."),
        Option("frequency", "number", 1.0, "w: u0 = sin(2 w pi x) sin(pi x) (default 1)."),
        Option("t_end", "number", 1.0, "Final time (default 1).", role="time"),
        Option("dt", "number", 0.01, "Time step (default 0.01).", role="time"),
        Option("save_every", "integer", 1, "Keep every k-th step (default 1).", role="time"),
    )
    geometries = ("interval",)

    def check(self, mesh: Mesh, params: dict[str, Any]) -> None:
        x = mesh.points[:, 0]
        if x.min() < -1e-12 or x.max() > 1 + 1e-12:
            raise InputError(f"parametric-burgers lives on [0, 1]; the mesh spans [{x.min():g}, {x.max():g}]",
                             mesh.source)
        for key in ("viscosity", "convection", "t_end", "dt"):
            if params[key] <= 0:
                raise InputError(f"--{key.replace('_', '-')} must be positive, got {params[key]:g}")
        if params["save_every"] < 1:
            raise InputError(f"--save-every must be at least 1, got {params['save_every']}")

    def is_transient(self, params) -> bool:
        return True

    def solve(self, mesh: Mesh | FESpace, **params) -> Solution:
        m = mesh.mesh if isinstance(mesh, FESpace) else mesh
        x = m.points[:, 0]
        if abs(x.min()) > 1e-12 or abs(x.max() - 1) > 1e-12:
            raise InputError(f"the FE solve needs a mesh of the whole interval [0, 1] (u(0) = u(1) = 0); this one "
                             f"spans [{x.min():g}, {x.max():g}]", m.source)
        return parametric_burgers(mesh, **params)

    def report(self, solution: Solution) -> list[str]:
        info = solution.info
        return [f"{info['method']}: {info['steps']} Crank-Nicolson steps, {min(info['iterations'])}-"
                f"{max(info['iterations'])} iterations per step"]

    def sample(self, rng: np.random.Generator, geometry: str | None = None, resolution: int = 500):
        self.geometry(geometry)
        if resolution < 8:
            raise InputError(f"--resolution must be at least 8, got {resolution}")
        mesh = Mesh.interval(int(resolution), 0.0, 1.0)
        return mesh, {"viscosity": float(rng.uniform(Z_LOW[0], Z_HIGH[0])),
                      "convection": float(rng.uniform(Z_LOW[1], Z_HIGH[1])),
                      "frequency": float(rng.uniform(W_LOW, W_HIGH)), "t_end": 1.0, "dt": 0.01, "save_every": 2}


__all__ = ["N_Z", "ParametricBurgers", "W_HIGH", "W_LOW", "Z_HIGH", "Z_LOW", "initial_state", "parametric_burgers",
           "residual"]
