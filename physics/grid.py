"""Structured-grid solvers and differentiable residuals on :class:`~graphfem.meshes.Grid`.

**MAC incompressible Navier–Stokes** (Harlow & Welch 1965), ∂u/∂t + (u·∇)u + ∇p = νΔu, ∇·u = 0,
on a 2D grid of nx × ny cells with obstacle masks:

* p (nx, ny) at cell centres, u (nx+1, ny) on the x-faces, v (nx, ny+1) on the y-faces;
* a ``mask`` (nx, ny) marks solid cells; every face touching one has zero
  velocity, and a face whose both cells are solid acts as a mirror ghost
  (−u) so that no-slip holds on the cell boundary;
* each side is a wall (tangential speed, e.g. a moving lid), an inflow
  (prescribed normal velocity profile, zero tangential) or an outflow
  (zero normal gradient, p = 0 on the boundary face);
* conservative central differences for (u·∇)u (Griebel, Dornseifer & Neunhoeffer 1998),
  five-point Laplacian, explicit (forward Euler) step to u*, then the
  projection u = u* − Δt G p with D G p = D u*/Δt: the pressure matrix D G
  over the fluid cells is LU-factorised once, and D u is zero to round-off
  after every step.

The same operators, written once in torch (float64 or float32), give the
residuals models train on: :func:`mac_momentum_residual` (the θ-weighted
step residual; θ = 0 is the solver's own step, whose output it zeroes),
:func:`mac_divergence`, :func:`darcy_residual` (cell-centred finite volumes
for −∇·(a∇u) = f, u = 0 on the boundary, harmonic face means) and
:func:`burgers_residual` (the 1D P1 Galerkin θ-step of
:func:`graphfem.physics.transport.burgers` on uniform nodes, exactly) and
:func:`periodic_advection_diffusion_residual` (the θ-step of c·∇u − νΔu by central
differences on a periodic grid; :func:`periodic_advection_diffusion_step` is its exact
solution by FFT).
All accept a leading batch dimension and are differentiable.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl

from graphfem.meshes import Grid
from graphfem.meshes.errors import GraphfemError, InputError

logger = logging.getLogger("graphfem.physics")

SIDES = ("left", "right", "bottom", "top")
_TRANSPOSED = {"left": "bottom", "right": "top", "bottom": "left", "top": "right"}


@dataclass(frozen=True)
class Side:
    """One side of the MAC domain.

    Attributes:
        kind: ``"wall"``, ``"inflow"`` or ``"outflow"``.
        speed: wall: tangential velocity (x-velocity on bottom/top, y-velocity
            on left/right); inflow: the normal velocity into the domain, a
            number or an array over the side's cells.
    """

    kind: str = "wall"
    speed: float | np.ndarray = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("wall", "inflow", "outflow"):
            raise InputError(f"side kind must be wall, inflow or outflow, got {self.kind!r}")


def cavity_sides(lid: float = 1.0) -> dict[str, Side]:
    """Walls on all sides, the top one moving with speed ``lid`` in +x."""
    return {"left": Side(), "right": Side(), "bottom": Side(), "top": Side("wall", lid)}


def channel_sides(inflow: float | np.ndarray = 1.0) -> dict[str, Side]:
    """Inflow on the left (speed or profile over the ny cells), outflow on the right, walls at bottom and top."""
    return {"left": Side("inflow", inflow), "right": Side("outflow"), "bottom": Side(), "top": Side()}


@dataclass
class MacState:
    """A MAC flow state: ``u`` (nx+1, ny), ``v`` (nx, ny+1), ``p`` (nx, ny) numpy arrays."""

    grid: Grid
    u: np.ndarray
    v: np.ndarray
    p: np.ndarray
    time: float = 0.0
    info: dict = field(default_factory=dict)

    def cell_velocity(self) -> np.ndarray:
        """(2, nx, ny) velocity at the cell centres (face averages)."""
        return np.stack([0.5 * (self.u[1:] + self.u[:-1]), 0.5 * (self.v[:, 1:] + self.v[:, :-1])])

    def fields(self) -> dict[str, np.ndarray]:
        """Cell fields u, v, p, each (nx, ny) (for ``Grid.to_tensor`` / ``Grid.to_mesh``)."""
        uc, vc = self.cell_velocity()
        return {"u": uc, "v": vc, "p": self.p}

    def write(self, path) -> None:
        """Write the cell fields (velocity as a vector) on ``grid.to_mesh()`` as VTU, atomically."""
        mesh = self.grid.to_mesh()
        uc, vc = self.cell_velocity()
        velocity = np.stack([uc.reshape(-1), vc.reshape(-1)], axis=1)
        import meshio

        from graphfem.meshes.io import atomic_path

        points = np.pad(mesh.points, ((0, 0), (0, 1)))
        with atomic_path(path) as tmp:
            meshio.write(tmp, meshio.Mesh(points, [(mesh.cell_type, mesh.cells)], cell_data={
                "velocity": [np.pad(velocity, ((0, 0), (0, 1)))], "p": [self.p.reshape(-1)]}), file_format="vtu")


class MacGeometry:
    """Static data of a MAC problem: grid, sides, solid mask, which faces are
    free (solved for) and the values of the fixed ones, and the factorised
    pressure matrix.

    Args:
        grid: a 2D :class:`Grid`.
        sides: side name -> :class:`Side` (missing sides are still walls).
        mask: (nx, ny) bool, True in solid cells (default: none).
    """

    def __init__(self, grid: Grid, sides: Mapping[str, Side] | None = None, mask: np.ndarray | None = None):
        if grid.dim != 2:
            raise InputError(f"the MAC solver is 2D; the grid is {grid.dim}D")
        self.grid = grid
        nx, ny = grid.shape
        self.hx, self.hy = (float(h) for h in grid.spacing)
        sides = dict(sides or {})
        unknown = set(sides) - set(SIDES)
        if unknown:
            raise InputError(f"unknown side(s) {sorted(unknown)}; sides are {', '.join(SIDES)}")
        self.sides = {s: sides.get(s, Side()) for s in SIDES}
        solid = np.zeros((nx, ny), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if solid.shape != (nx, ny):
            raise InputError(f"mask has shape {solid.shape}, the grid {(nx, ny)}")
        if solid.all():
            raise InputError("the mask leaves no fluid cell")
        self.solid = solid
        self.u_free, self.u_fixed = self._faces(solid, self.sides, nx, ny, "left", "right")
        v_free_t, v_fixed_t = self._faces(solid.T, {_TRANSPOSED[k]: s for k, s in self.sides.items()}, ny, nx,
                                          "left", "right")
        self.v_free, self.v_fixed = v_free_t.T.copy(), v_fixed_t.T.copy()
        has_outflow = any(s.kind == "outflow" for s in self.sides.values())
        scale = max(1.0, float(np.abs(self.u_fixed).max()), float(np.abs(self.v_fixed).max()))
        if not has_outflow and abs(self._net_boundary_flux()) > 1e-12 * scale:
            raise InputError("the prescribed boundary velocities do not conserve mass; add an outflow side")
        self.has_outflow = has_outflow
        self._build_pressure()

    # ---------------------------------------------------------------- faces
    @staticmethod
    def _faces(solid, sides, nx, ny, low, high):
        """Free mask and fixed values of the normal-velocity faces along axis 0
        ((nx+1, ny)); ``low``/``high`` name the sides at i = 0 and i = nx."""
        free = np.zeros((nx + 1, ny), dtype=bool)
        fixed = np.zeros((nx + 1, ny))
        fluid = ~solid
        free[1:-1] = fluid[:-1] & fluid[1:]
        for index, name, sign in ((0, low, 1.0), (nx, high, -1.0)):
            side = sides[name]
            cell = fluid[0] if index == 0 else fluid[-1]
            if side.kind == "outflow":
                free[index] = cell
            elif side.kind == "inflow":
                speed = np.broadcast_to(np.asarray(side.speed, dtype=float), (ny,))
                fixed[index] = np.where(cell, sign * speed, 0.0)
        return free, fixed

    def _net_boundary_flux(self) -> float:
        return float((self.u_fixed[-1] - self.u_fixed[0]).sum() * self.hy
                     + (self.v_fixed[:, -1] - self.v_fixed[:, 0]).sum() * self.hx)

    # ---------------------------------------------------------------- pressure
    def _build_pressure(self) -> None:
        nx, ny = self.grid.shape
        ncell = nx * ny
        cid = np.arange(ncell).reshape(nx, ny)
        rows, cols, vals = [], [], []
        # gradient on free u faces: (p[i] − p[i−1])/hx; outflow face i = nx: p ghost = −p[nx−1]
        for free, h, axis in ((self.u_free, self.hx, 0), (self.v_free, self.hy, 1)):
            n = free.shape[axis] - 1
            idx = np.argwhere(free)
            k = idx[:, axis]
            other = idx[:, 1 - axis]
            r = np.ravel_multi_index(idx.T, free.shape)
            lo = np.stack([k - 1, other], axis=1) if axis == 0 else np.stack([other, k - 1], axis=1)
            hi = np.stack([k, other], axis=1) if axis == 0 else np.stack([other, k], axis=1)
            inner = (k >= 1) & (k <= n - 1)
            top = k == n
            bottom = k == 0
            for sel, cells, coef in ((inner, hi, 1.0 / h), (inner, lo, -1.0 / h),
                                     (top, lo, -2.0 / h), (bottom, hi, 2.0 / h)):
                rows.append(r[sel] + (0 if axis == 0 else (nx + 1) * ny))
                cols.append(cid[cells[sel, 0], cells[sel, 1]])
                vals.append(np.full(int(sel.sum()), coef))
        nu_faces = (nx + 1) * ny
        nfaces = nu_faces + nx * (ny + 1)
        G = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(nfaces, ncell))
        # divergence of all faces
        Du = sp.kron(_diff(nx), sp.identity(ny)) / self.hx  # (nx*ny, (nx+1)*ny)
        Dv = sp.kron(sp.identity(nx), _diff(ny)) / self.hy
        self.D = sp.hstack([Du, Dv]).tocsr()
        self.G = G
        fluid = np.flatnonzero(~self.solid.reshape(-1))
        L = (self.D @ G).tocsr()[fluid][:, fluid]
        self._pinned = None
        if not self.has_outflow:  # pure Neumann: fix p = 0 in the first fluid cell
            keep = np.arange(1, len(fluid))
            self._pinned = fluid[0]
            fluid, L = fluid[1:], L[keep][:, keep]
        self.fluid = fluid
        self._lu = spl.splu(L.tocsc(), permc_spec="MMD_AT_PLUS_A")

    def project(self, u: np.ndarray, v: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(u, v, p): the divergence-free part of (u*, v*) and the pressure with D G p = D u*/Δt."""
        nx, ny = self.grid.shape
        flat = np.concatenate([u.reshape(-1), v.reshape(-1)])
        rhs = (self.D @ flat)[self.fluid] / dt
        p = np.zeros(nx * ny)
        p[self.fluid] = self._lu.solve(rhs)
        flat = flat - dt * (self.G @ p)
        nu = (nx + 1) * ny
        return flat[:nu].reshape(nx + 1, ny), flat[nu:].reshape(nx, ny + 1), p.reshape(nx, ny)

    def divergence(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(nx, ny) discrete divergence D u (zero in solid cells by construction)."""
        return (np.diff(u, axis=0) / self.hx + np.diff(v, axis=1) / self.hy)

    def transposed(self) -> "_Transposed":
        return _Transposed(self)


def _diff(n: int) -> sp.csr_matrix:
    """(n, n+1) forward difference."""
    return sp.diags([-np.ones(n), np.ones(n)], [0, 1], shape=(n, n + 1)).tocsr()


class _Transposed:
    """Views of a geometry with x and y swapped, for the y-momentum equation."""

    def __init__(self, g: MacGeometry):
        self.sides = {_TRANSPOSED[k]: s for k, s in g.sides.items()}
        self.solid = g.solid.T
        self.hx, self.hy = g.hy, g.hx


# ------------------------------------------------------------------ torch operators
def _torch():
    import torch

    return torch


def _tangential_ghost(edge, side: Side):
    """Ghost value beyond a side for the velocity component tangential to it."""
    if side.kind == "wall":
        return 2.0 * float(side.speed) - edge
    if side.kind == "inflow":
        return -edge
    return edge


def _x_momentum(u, v, nu: float, geo) -> "torch.Tensor":
    """(u·∇)u − νΔu for the x-component at every x-face, (..., nx+1, ny).

    ``geo`` has ``sides``, ``solid`` (nx, ny), ``hx``, ``hy``; u (..., nx+1, ny), v (..., nx, ny+1)."""
    torch = _torch()
    hx, hy = geo.hx, geo.hy
    sides = geo.sides
    solid = torch.as_tensor(np.asarray(geo.solid), device=u.device)
    # x-neighbours (zero gradient beyond the ends: only outflow faces use them)
    uE = torch.cat([u[..., 1:, :], u[..., -1:, :]], dim=-2)
    uW = torch.cat([u[..., :1, :], u[..., :-1, :]], dim=-2)
    # y-neighbours with side ghosts and mirror ghosts in solid faces
    uN = torch.cat([u[..., :, 1:], _tangential_ghost(u[..., :, -1:], sides["top"])], dim=-1)
    uS = torch.cat([_tangential_ghost(u[..., :, :1], sides["bottom"]), u[..., :, :-1]], dim=-1)
    inside = torch.zeros(u.shape[-2:], dtype=torch.bool, device=u.device)
    inside[1:-1] = solid[:-1] & solid[1:]
    inside_N = torch.cat([inside[:, 1:], torch.zeros_like(inside[:, :1])], dim=-1)
    inside_S = torch.cat([torch.zeros_like(inside[:, :1]), inside[:, :-1]], dim=-1)
    uN = torch.where(inside_N, -u, uN)
    uS = torch.where(inside_S, -u, uS)
    lap = (uE - 2 * u + uW) / hx ** 2 + (uN - 2 * u + uS) / hy ** 2
    # v at the corners above and below each x-face, with side ghosts in x
    vL = _tangential_ghost(v[..., :1, :], sides["left"])
    vR = _tangential_ghost(v[..., -1:, :], sides["right"])
    vp = torch.cat([vL, v, vR], dim=-2)  # (nx+2, ny+1): vp[i] = v[i−1]
    v_corner = 0.5 * (vp[..., :-1, :] + vp[..., 1:, :])  # (nx+1, ny+1): at (x_i, y_j) corners
    duu = ((0.5 * (u + uE)) ** 2 - (0.5 * (uW + u)) ** 2) / hx
    duv = (v_corner[..., :, 1:] * 0.5 * (u + uN) - v_corner[..., :, :-1] * 0.5 * (uS + u)) / hy
    return duu + duv - nu * lap


def mac_operators(u, v, nu: float, geometry: MacGeometry):
    """((u·∇)u − νΔu at x-faces (..., nx+1, ny), same for v at y-faces (..., nx, ny+1)); torch tensors."""
    fu = _x_momentum(u, v, nu, geometry)
    fv = _x_momentum(v.transpose(-1, -2), u.transpose(-1, -2), nu, geometry.transposed()).transpose(-1, -2)
    return fu, fv


def mac_pressure_gradient(p, geometry: MacGeometry):
    """(G_x p (..., nx+1, ny), G_y p (..., nx, ny+1)) as used by the projection
    (outflow faces see p = 0 on the boundary; other boundary faces get 0)."""
    torch = _torch()
    gx = torch.zeros(p.shape[:-2] + (p.shape[-2] + 1, p.shape[-1]), dtype=p.dtype, device=p.device)
    gy = torch.zeros(p.shape[:-1] + (p.shape[-1] + 1,), dtype=p.dtype, device=p.device)
    gx[..., 1:-1, :] = (p[..., 1:, :] - p[..., :-1, :]) / geometry.hx
    gy[..., :, 1:-1] = (p[..., :, 1:] - p[..., :, :-1]) / geometry.hy
    s = geometry.sides
    if s["right"].kind == "outflow":
        gx[..., -1, :] = -2 * p[..., -1, :] / geometry.hx
    if s["left"].kind == "outflow":
        gx[..., 0, :] = 2 * p[..., 0, :] / geometry.hx
    if s["top"].kind == "outflow":
        gy[..., :, -1] = -2 * p[..., :, -1] / geometry.hy
    if s["bottom"].kind == "outflow":
        gy[..., :, 0] = 2 * p[..., :, 0] / geometry.hy
    return gx, gy


def mac_divergence(u, v, geometry: MacGeometry):
    """(..., nx, ny) discrete divergence of a MAC velocity, zeroed in solid cells (torch)."""
    torch = _torch()
    div = (u[..., 1:, :] - u[..., :-1, :]) / geometry.hx + (v[..., :, 1:] - v[..., :, :-1]) / geometry.hy
    return torch.where(torch.as_tensor(geometry.solid, device=u.device), torch.zeros_like(div), div)


def mac_momentum_residual(u, v, p, u_old, v_old, dt: float, nu: float, geometry: MacGeometry, theta: float = 0.0):
    """Residual of one MAC time step, on the free faces (zero elsewhere):

        r = (u − u_old)/Δt + A(u_θ) + G p,   u_θ = θ u + (1 − θ) u_old,

    A(u) = (u·∇)u − νΔu the MAC operators. θ = 0 is the solver's explicit
    step (its output gives r = 0 to round-off); θ = 1/2 is NeuralStagger's
    midpoint (IMEX) residual. Boundary and solid faces are not part of the
    residual: impose them on the prediction (or penalise separately).

    Args:
        u, v, p: predicted state, torch tensors (..., nx+1, ny), (..., nx, ny+1), (..., nx, ny).
        u_old, v_old: the previous velocity.
        dt, nu: time step and kinematic viscosity.
        geometry: the :class:`MacGeometry`.
        theta: weight of the new state in the advection–diffusion terms.

    Returns:
        (r_u (..., nx+1, ny), r_v (..., nx, ny+1)).
    """
    torch = _torch()
    fu, fv = mac_operators(theta * u + (1 - theta) * u_old, theta * v + (1 - theta) * v_old, nu, geometry)
    gx, gy = mac_pressure_gradient(p, geometry)
    ru = (u - u_old) / dt + fu + gx
    rv = (v - v_old) / dt + fv + gy
    mu = torch.as_tensor(geometry.u_free, device=u.device)
    mv = torch.as_tensor(geometry.v_free, device=v.device)
    return torch.where(mu, ru, torch.zeros_like(ru)), torch.where(mv, rv, torch.zeros_like(rv))


# ------------------------------------------------------------------ MAC solver
def stable_dt(geometry: MacGeometry, nu: float, speed: float, safety: float = 0.5) -> float:
    """Explicit step limit: safety × min(h²/(4ν), 2ν/U², h/U) (diffusion, central advection, CFL)."""
    h = min(geometry.hx, geometry.hy)
    limits = [h * h / (4 * nu)]
    if speed > 0:
        limits += [2 * nu / speed ** 2, h / speed]
    return safety * min(limits)


def navier_stokes_mac(grid: Grid, nu: float, sides: Mapping[str, Side] | None = None,
                      mask: np.ndarray | None = None, *, t_end: float | None = None, dt: float | None = None,
                      steady_tol: float | None = None, max_steps: int = 200_000, initial: MacState | None = None,
                      save_every: int = 0) -> tuple[MacState, list[MacState]]:
    """Time-step the MAC Navier–Stokes equations by projection.

    Each step: u* = uⁿ − Δt A(uⁿ) on free faces (fixed faces keep their
    values), then (uⁿ⁺¹, pⁿ⁺¹) = projection of u* (one LU solve with the
    pressure matrix factorised once).

    Args:
        grid: 2D :class:`Grid`.
        nu: kinematic viscosity ν > 0 (Re = U L/ν).
        sides: side name -> :class:`Side` (default: fixed walls).
        mask: (nx, ny) bool solid cells.
        t_end: stop at this time (``None``: run to steady state).
        dt: time step (default :func:`stable_dt` with the largest boundary speed).
        steady_tol: stop when max|uⁿ⁺¹ − uⁿ|/Δt < steady_tol (default 1e-6 when
            ``t_end`` is ``None``).
        max_steps: the steady run's step limit (a :class:`GraphfemError` past it).
        initial: starting state (default: rest).
        save_every: keep every k-th state in the returned list (0: none).

    Returns:
        (final :class:`MacState` with ``info`` = steps, dt, time, max
        divergence, last change rate, seconds; the saved states).
    """
    torch = _torch()
    start = time.perf_counter()
    if nu <= 0:
        raise InputError(f"nu must be positive, got {nu}")
    geometry = MacGeometry(grid, sides, mask)
    speed = max([abs(float(np.max(np.abs(s.speed)))) for s in geometry.sides.values()] + [0.0])
    dt = stable_dt(geometry, nu, max(speed, 1e-12)) if dt is None else float(dt)
    if t_end is None and steady_tol is None:
        steady_tol = 1e-6
    steps = max_steps if t_end is None else max(1, math.ceil(t_end / dt - 1e-9))
    if t_end is not None:
        dt = t_end / steps
    nx, ny = grid.shape
    if initial is None:
        u, v = geometry.u_fixed.copy(), geometry.v_fixed.copy()
    else:
        u = np.where(geometry.u_free, initial.u, geometry.u_fixed)
        v = np.where(geometry.v_free, initial.v, geometry.v_fixed)
    p = np.zeros((nx, ny))
    saved, change, t = [], float("inf"), 0.0 if initial is None else initial.time
    for step in range(1, steps + 1):
        fu, fv = mac_operators(torch.from_numpy(u), torch.from_numpy(v), nu, geometry)
        us = np.where(geometry.u_free, u - dt * fu.numpy(), geometry.u_fixed)
        vs = np.where(geometry.v_free, v - dt * fv.numpy(), geometry.v_fixed)
        un, vn, p = geometry.project(us, vs, dt)
        change = max(float(np.abs(un - u).max()), float(np.abs(vn - v).max())) / dt
        u, v, t = un, vn, t + dt
        if not np.isfinite(change):
            raise GraphfemError(f"the MAC solve blew up at step {step} (t = {t:g}); reduce dt")
        if save_every and step % save_every == 0:
            saved.append(MacState(grid, u.copy(), v.copy(), p.copy(), t))
        if steady_tol is not None and change < steady_tol:
            break
    else:
        if t_end is None:
            raise GraphfemError(f"no steady state after {max_steps} steps: max|du/dt| = {change:.3e} > "
                                f"{steady_tol:.1e}")
    top = geometry.sides["top"]
    info = {"steps": step, "dt": dt, "time": t, "change": change, "nu": nu,
            "lid": float(top.speed) if top.kind == "wall" else 0.0,
            "max_divergence": float(np.abs(geometry.divergence(u, v)).max()), "total_s": time.perf_counter() - start}
    logger.info("MAC: %d steps of dt=%g to t=%g, max|div u| = %.2e", step, dt, t, info["max_divergence"])
    return MacState(grid, u, v, p, t, info), saved


def lid_driven_cavity(n: int = 64, re: float = 100.0, lid: float = 1.0, steady_tol: float = 1e-6,
                      **kwargs) -> MacState:
    """Steady lid-driven cavity on the unit square, n × n cells, Re = lid·1/ν."""
    if re <= 0 or n < 4:
        raise InputError(f"need re > 0 and n >= 4, got re={re}, n={n}")
    state, _ = navier_stokes_mac(Grid((n, n)), nu=abs(lid) / re, sides=cavity_sides(lid), steady_tol=steady_tol,
                                 **kwargs)
    return state


def vertical_centreline_u(state: MacState, y: np.ndarray) -> np.ndarray:
    """u on the line x = (x_min + x_max)/2 at heights y (k,), linear in y
    between face values, with the wall values at the bottom and top (nx even)."""
    nx, ny = state.grid.shape
    if nx % 2:
        raise InputError("the centreline lies on x-faces only when nx is even")
    (x0, y0), (x1, y1) = state.grid.lower, state.grid.upper
    hy = (y1 - y0) / ny
    column = state.u[nx // 2]
    ys = np.concatenate([[y0], y0 + (np.arange(ny) + 0.5) * hy, [y1]])
    bottom = 0.0
    top = float(state.info.get("lid", 0.0))
    values = np.concatenate([[bottom], column, [top]])
    return np.interp(y, ys, values)


# ------------------------------------------------------------------ Darcy on a grid
def darcy_grid_matrix(a: np.ndarray, grid: Grid) -> sp.csr_matrix:
    """Cell-centred finite volumes for −∇·(a∇u) with u = 0 on the boundary:
    (nx·ny, nx·ny) matrix, face coefficients the harmonic means of the two
    cells, a boundary face 2a/h² (the wall half a cell away). C order."""
    a = np.asarray(a, dtype=float)
    if a.shape != grid.shape or grid.dim != 2 or np.any(a <= 0):
        raise InputError(f"a must be positive with the grid's shape {grid.shape}")
    nx, ny = grid.shape
    hx, hy = grid.spacing
    idx = np.arange(nx * ny).reshape(nx, ny)
    ax = np.concatenate([2 * a[:1], 2 * a[1:] * a[:-1] / (a[1:] + a[:-1]), 2 * a[-1:]], axis=0) / hx ** 2
    ay = np.concatenate([2 * a[:, :1], 2 * a[:, 1:] * a[:, :-1] / (a[:, 1:] + a[:, :-1]), 2 * a[:, -1:]], axis=1) / hy ** 2
    diag = ax[:-1] + ax[1:] + ay[:, :-1] + ay[:, 1:]
    rows = [idx.ravel(), idx[1:].ravel(), idx[:-1].ravel(), idx[:, 1:].ravel(), idx[:, :-1].ravel()]
    cols = [idx.ravel(), idx[:-1].ravel(), idx[1:].ravel(), idx[:, :-1].ravel(), idx[:, 1:].ravel()]
    vals = [diag.ravel(), -ax[1:-1].ravel(), -ax[1:-1].ravel(), -ay[:, 1:-1].ravel(), -ay[:, 1:-1].ravel()]
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nx * ny,) * 2)


def darcy_grid(a: np.ndarray, f: float | np.ndarray, grid: Grid) -> np.ndarray:
    """The cell-centred finite-volume solution (nx, ny) of −∇·(a∇u) = f, u = 0 on the boundary."""
    A = darcy_grid_matrix(a, grid)
    b = np.broadcast_to(np.asarray(f, dtype=float), grid.shape).reshape(-1)
    return spl.spsolve(A.tocsc(), b).reshape(grid.shape)


def darcy_residual(u, a, f, grid: Grid):
    """−∇·(a∇u) − f of :func:`darcy_grid_matrix`'s scheme, (..., nx, ny) (torch, differentiable in u and a)."""
    torch = _torch()
    hx, hy = (float(h) for h in grid.spacing)
    hm_x = 2 * a[..., 1:, :] * a[..., :-1, :] / (a[..., 1:, :] + a[..., :-1, :])
    hm_y = 2 * a[..., :, 1:] * a[..., :, :-1] / (a[..., :, 1:] + a[..., :, :-1])
    # fluxes a ∂u/∂n through the faces, walls with u = 0 half a cell away
    fx = torch.cat([2 * a[..., :1, :] * u[..., :1, :], hm_x * (u[..., 1:, :] - u[..., :-1, :]),
                    -2 * a[..., -1:, :] * u[..., -1:, :]], dim=-2) / hx
    fy = torch.cat([2 * a[..., :, :1] * u[..., :, :1], hm_y * (u[..., :, 1:] - u[..., :, :-1]),
                    -2 * a[..., :, -1:] * u[..., :, -1:]], dim=-1) / hy
    return -((fx[..., 1:, :] - fx[..., :-1, :]) / hx + (fy[..., :, 1:] - fy[..., :, :-1]) / hy) - f


# ------------------------------------------------------------------ Burgers on a 1D grid
def burgers_residual(u, u_old, dt: float, nu: float, h: float, theta: float = 0.5):
    """Residual of the 1D P1 Galerkin θ-step of Burgers on uniform nodes, per unit length, at the interior nodes.

    With consistent mass (h/6)(1, 4, 1), N_i(u) = (u_{i+1} − u_{i−1})(u_{i+1} + u_i + u_{i−1})/6
    + ν(2u_i − u_{i−1} − u_{i+1})/h (the exact P1 integrals of u u_x φ_i and ν u_x φ_i'),

        r_i = [ (h/6)(δ_{i−1} + 4δ_i + δ_{i+1})/Δt + θ N_i(u) + (1 − θ) N_i(u_old) ] / h,   δ = u − u_old.

    :func:`graphfem.physics.transport.burgers` on ``Mesh.interval`` zeroes it.
    Shapes: u, u_old (..., n+1) nodal values (boundary included) -> (..., n−1).
    """
    def N(w):
        convect = (w[..., 2:] - w[..., :-2]) * (w[..., 2:] + w[..., 1:-1] + w[..., :-2]) / 6
        return convect + nu * (2 * w[..., 1:-1] - w[..., :-2] - w[..., 2:]) / h

    d = u - u_old
    mass = h / 6 * (d[..., :-2] + 4 * d[..., 1:-1] + d[..., 2:]) / dt
    return (mass + theta * N(u) + (1 - theta) * N(u_old)) / h


__all__ = ["MacGeometry", "MacState", "SIDES", "Side", "burgers_residual", "cavity_sides", "channel_sides",
           "darcy_grid", "darcy_grid_matrix", "darcy_residual", "lid_driven_cavity", "mac_divergence",
           "mac_momentum_residual", "mac_operators", "mac_pressure_gradient", "navier_stokes_mac", "stable_dt",
           "vertical_centreline_u"]


# ------------------------------------------------------------------ periodic advection–diffusion
def _periodic_operator(u, velocity, nu: float, h: float):
    """L u = c·∇_h u − ν Δ_h u, central differences and the 5-point Laplacian, periodic (torch.roll)."""
    torch = _torch()
    cx, cy = velocity
    east, west = torch.roll(u, -1, -2), torch.roll(u, 1, -2)
    north, south = torch.roll(u, -1, -1), torch.roll(u, 1, -1)
    advect = (cx * (east - west) + cy * (north - south)) / (2 * h)
    return advect - nu * (east + west + north + south - 4 * u) / h ** 2


def periodic_advection_diffusion_residual(u, u_old, dt: float, velocity, nu: float, h: float,
                                          theta: float = 0.5):
    """Residual of the θ-step of ∂u/∂t + c·∇u = νΔu on a periodic uniform grid of spacing h:

        r = (u − u_old)/Δt + θ L u + (1 − θ) L u_old,   L = c·∇_h − νΔ_h,

    with central differences for ∇_h and the 5-point Δ_h (θ = ½: Crank–Nicolson).
    :func:`periodic_advection_diffusion_step` zeroes it. Shapes: u, u_old (..., nx, ny) -> (..., nx, ny).
    """
    return ((u - u_old) / dt + theta * _periodic_operator(u, velocity, nu, h)
            + (1 - theta) * _periodic_operator(u_old, velocity, nu, h))


def periodic_advection_diffusion_step(u: np.ndarray, dt: float, velocity, nu: float, h: float,
                                      theta: float = 0.5) -> np.ndarray:
    """The exact solution of :func:`periodic_advection_diffusion_residual` = 0 for u given u_old = ``u``,
    by FFT: L is diagonal in Fourier modes with symbol
    L̂(k) = i (c_x sin(k_x h) + c_y sin(k_y h))/h + (4ν/h²)(sin²(k_x h/2) + sin²(k_y h/2)),
    so û_new = (1 − (1 − θ)Δt L̂)/(1 + θ Δt L̂) û. Shapes: (..., nx, ny) -> (..., nx, ny)."""
    u = np.asarray(u, dtype=float)
    nx, ny = u.shape[-2:]
    kx = 2 * np.pi * np.fft.fftfreq(nx)[:, None]   # k h on the grid
    ky = 2 * np.pi * np.fft.rfftfreq(ny)[None, :]
    cx, cy = velocity
    symbol = 1j * (cx * np.sin(kx) + cy * np.sin(ky)) / h + 4 * nu / h ** 2 * (np.sin(kx / 2) ** 2
                                                                             + np.sin(ky / 2) ** 2)
    gain = (1 - (1 - theta) * dt * symbol) / (1 + theta * dt * symbol)
    return np.fft.irfft2(np.fft.rfft2(u, axes=(-2, -1)) * gain, s=(nx, ny), axes=(-2, -1))
