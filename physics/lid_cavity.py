r"""Parametric steady lid-driven cavity (the RGNP paper's third problem) on Ω = [0, 1]².

    (u·∇)u − νΔu + ∇p = 0,   ∇·u = 0   in Ω,
    u = (w ℓ(x), 0) on the lid y = 1,   u = 0 on the other walls,

with the regularised lid profile ℓ(x) = 16x²(1 − x)² (ℓ, ℓ′ vanish at the corners, so the
velocity is continuous and compatible with ∇·u = 0 there), ν the kinematic viscosity
(the unknown input z) and w the lid speed (the known input); Re = w/ν.

The FE reference (:func:`lid_cavity`) is the project's Taylor–Hood steady Navier–Stokes
solver (:func:`graphfem.physics.navier_stokes.navier_stokes`, Newton from Stokes) with the
lid as a Dirichlet velocity on the tag ``top`` and no slip on ``left``, ``right`` and
``bottom``. Besides velocity and pressure it stores the stream function ψ (u = ∂ψ/∂y,
v = −∂ψ/∂x), the P2 solution of −Δψ = ω = ∂v/∂x − ∂u/∂y, ψ = 0 on ∂Ω.

:func:`residual` is the pressure-free vorticity–stream-function form of the same
equations for physics-informed models: with ω = −Δψ, steady vorticity transport
u·∇ω = νΔω reads

    r = Δ²ψ − (1/ν) (ψ_y (Δψ)_x − ψ_x (Δψ)_y) = 0,

by autograd to fourth order. :func:`stream_lift` is the hard-condition lift
ψ = b + Dψ̃ with b = w ℓ(x)(y³ − y²) and D = 256 (x(1 − x) y(1 − y))²: every ψ of this
form has ψ = 0 on ∂Ω, ∂ψ/∂n = 0 on the three walls and ∂ψ/∂y = w ℓ(x) on the lid, so
u, v meet the no-slip and lid conditions and ∇·u = 0 exactly, whatever ψ̃.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from graphfem.meshes import FESpace, Mesh
from graphfem.meshes.errors import InputError

from .navier_stokes import FLOW_SOLVER, navier_stokes
from .problem import Option, Problem, Solution, register_problem

#: the sampler's box: ν ~ U(NU_LOW, NU_HIGH), lid speed w ~ U(W_LOW, W_HIGH) (Re = w/ν ∈ [2.5, 50])
Z_LOW, Z_HIGH, W_LOW, W_HIGH = 0.02, 0.2, 0.5, 1.0
#: number of unknown inputs (ν)
N_Z = 1
WALLS = ("left", "right", "bottom")


def lid_profile(x):
    """ℓ(x) = 16 x² (1 − x)² (numpy or torch, any shape)."""
    return 16 * x ** 2 * (1 - x) ** 2


def stream_lift(x, y, w):
    """(b, D) of ψ = b + Dψ̃ (module docstring) at matching x, y (torch or numpy), w broadcastable."""
    return w * lid_profile(x) * (y ** 3 - y ** 2), 256 * (x * (1 - x) * y * (1 - y)) ** 2


def stream_function(solution) -> np.ndarray:
    """P2 dofs of ψ with −Δψ = ∂v/∂x − ∂u/∂y, ψ = 0 on ∂Ω, from a Taylor–Hood :class:`FlowSolution`."""
    import skfem

    th = solution.flow
    u = solution.dofs["velocity"]
    ux, uy = th.ub.interpolate(u[0::2]), th.ub.interpolate(u[1::2])
    K = th.Ks
    load = skfem.LinearForm(lambda v, p: (p["uy"].grad[0] - p["ux"].grad[1]) * v).assemble(th.ub, ux=ux, uy=uy)
    D = th.ub.get_dofs().all()
    return skfem.solve(*skfem.condense(K, load, D=D, x=np.zeros(th.N)))


def lid_cavity(mesh: Mesh, viscosity: float, lid: float = 1.0, *, solver: str = "auto", rtol: float = 1e-10
               ) -> Solution:
    """Solve the steady cavity of the module docstring on a mesh of [0, 1]² with tags left,
    right, bottom, top (``Mesh.rectangle``).

    Returns:
        The :class:`~graphfem.physics.navier_stokes.FlowSolution` with ``fields`` velocity
        (n, 2), pressure (n,) (zero mean) and stream (n,) at the nodes, ``dofs["stream"]`` (P2)
        and ``info["re"]`` = w/ν.
    """
    if not np.isfinite(viscosity) or viscosity <= 0 or not np.isfinite(lid):
        raise InputError(f"--viscosity must be positive and --lid finite, got {viscosity:g}, {lid:g}")
    inflow = {"top": lambda x: np.stack([lid * lid_profile(x[0]), 0 * x[0]])}
    sol = navier_stokes(mesh, nu=viscosity, inflow=inflow, no_slip=WALLS, solver=solver, rtol=rtol)
    psi = stream_function(sol)
    sol.dofs["stream"] = psi
    sol.fields["stream"] = sol.flow.scalar.to_nodes(psi)
    sol.units["stream"] = "m^2/s"
    sol.info["re"] = lid / viscosity
    return sol


def residual(x, y, psi, nu, lid=None):
    r"""The strong residual r = Δ²ψ − (ψ_y (Δψ)_x − ψ_x (Δψ)_y)/ν in torch, by autograd.

    Args:
        x, y: (B, N) coordinates (``requires_grad``); psi: (B, N) computed from them point by
            point; nu: (B, 1) viscosities; lid: unused (the lid enters through ψ's lift).

    Returns:
        r: (B, N) (``create_graph``).
    """
    import torch

    def d(f, v):
        (g,) = torch.autograd.grad(f.sum(), v, create_graph=True)
        return g

    px, py = d(psi, x), d(psi, y)
    lap = d(px, x) + d(py, y)
    lx, ly = d(lap, x), d(lap, y)
    bilap = d(lx, x) + d(ly, y)
    return bilap - (py * lx - px * ly) / nu


@register_problem
class LidCavity(Problem):
    r"""Steady lid-driven cavity (u·∇)u − νΔu + ∇p = 0, ∇·u = 0 on [0, 1]², lid
    u = w·16x²(1 − x)² on y = 1; :func:`lid_cavity`.

    Data sets (:meth:`sample`): the unit square with ``resolution`` (24) × ``resolution``
    cells cut into triangles (Taylor–Hood P2–P1), ν ~ U(0.02, 0.2), w ~ U(0.5, 1).
    """

    name = "lid-cavity"
    fields = {"velocity": "m/s", "pressure": "m^2/s^2", "stream": "m^2/s"}
    vector_fields = ("velocity",)
    summary = "steady lid-driven cavity on [0, 1]^2, lid u = w 16 x^2 (1 - x)^2, viscosity nu (Re = w / nu)"
    dims = (2,)
    options = (
        Option("viscosity", "number", None, "nu: the kinematic viscosity (> 0).", required=True),
        Option("lid", "number", 1.0, "w: the lid speed (default 1)."),
        FLOW_SOLVER,
    )
    geometries = ("square",)

    def check(self, mesh: Mesh, params: dict[str, Any]) -> None:
        lo, hi = mesh.points[:, :2].min(0), mesh.points[:, :2].max(0)
        if lo.min() < -1e-12 or hi.max() > 1 + 1e-12:
            raise InputError(f"lid-cavity lives on the unit square; the mesh spans [{lo[0]:g}, {hi[0]:g}] x "
                             f"[{lo[1]:g}, {hi[1]:g}]", mesh.source)
        if params["viscosity"] <= 0:
            raise InputError(f"--viscosity must be positive, got {params['viscosity']:g}")

    def solve(self, mesh: Mesh | FESpace, **params) -> Solution:
        m = mesh.mesh if isinstance(mesh, FESpace) else mesh
        lo, hi = m.points[:, :2].min(0), m.points[:, :2].max(0)
        if np.abs(lo).max() > 1e-12 or np.abs(hi - 1).max() > 1e-12:
            raise InputError("the FE solve needs a mesh of the whole unit square (walls and lid on its sides)",
                             m.source)
        missing = [t for t in (*WALLS, "top") if t not in m.tags]
        if missing:
            raise InputError(f"the FE solve needs the facet tags left, right, bottom, top (graphfem mesh rectangle "
                             f"-o M.msh); missing {', '.join(missing)}", m.source)
        return lid_cavity(m, **params)

    def report(self, solution: Solution) -> list[str]:
        info = solution.info
        return [f"Re = {info['re']:.4g}; Taylor-Hood P2-P1: {info['dofs']} dofs, {info['newton_iterations']} Newton "
                f"iterations, residual {info['residual']:.1e}; max |psi| {np.abs(solution.fields['stream']).max():.4g}"]

    def sample(self, rng: np.random.Generator, geometry: str | None = None, resolution: int = 24):
        self.geometry(geometry)
        if resolution < 4:
            raise InputError(f"--resolution must be at least 4, got {resolution}")
        return Mesh.rectangle(int(resolution)), {"viscosity": float(rng.uniform(Z_LOW, Z_HIGH)),
                                                 "lid": float(rng.uniform(W_LOW, W_HIGH))}


__all__ = ["LidCavity", "N_Z", "WALLS", "W_HIGH", "W_LOW", "Z_HIGH", "Z_LOW", "lid_cavity", "lid_profile",
           "residual", "stream_function", "stream_lift"]
