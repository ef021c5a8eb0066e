r"""Channel flow past an obstacle on the MAC grid, written through a vector potential.

The domain is the box of a 2D :class:`~graphfem.meshes.Grid` (nx × ny cells, spacing hx, hy):
a parabolic inflow of peak U on the left side, U_in(y) = 4U(y − y₀)(y₁ − y)/H², no-slip walls at the
bottom and top, an outflow on the right, and a solid ``mask`` (nx, ny) of obstacle cells.
The MAC unknowns are those of :mod:`graphfem.physics.grid`: u (nx+1, ny) on x-faces,
v (nx, ny+1) on y-faces, p (nx, ny) at cell centres.

**Vector potential.** A scalar a at the (nx+1) × (ny+1) cell corners gives

    u[i, j] = (a[i, j+1] − a[i, j]) / hy,     v[i, j] = −(a[i+1, j] − a[i, j]) / hx,

whose discrete divergence (u[i+1, j] − u[i, j])/hx + (v[i, j+1] − v[i, j])/hy is zero term by term
(each corner value enters twice with opposite signs), whatever a is. The inflow fixes the left column,
a[0, j] = ψ(y_j) = ∫_{y₀}^{y_j} U_in dy (so u on the inflow faces is the cell mean of the profile,
exactly), and the bottom wall fixes the bottom row, a[i, 0] = 0 (v = 0 there, exactly). The free
values are the **owned** potential A = a[1:, 1:] (nx, ny): cell (i, j) owns its upper-right corner,
as it owns its right x-face u[i+1, j], its top y-face v[i, j+1] and its centre p[i, j]. Every
divergence-free MAC velocity with these boundary values has exactly one potential
(:func:`potential_from_velocity`, a cumulative sum along y).

The reference is the project's MAC projection solver :func:`graphfem.physics.grid.navier_stokes_mac`
(explicit step + exact projection), sub-stepped to the model's Δt (:func:`mac_reference`).
``graphfem generate mac-channel`` writes random channels with their reference trajectories
(:func:`mac_channel`), and :func:`channel_grid_mesh` / :func:`grid_of_mesh` turn a channel into a
quad :class:`~graphfem.meshes.Mesh` (obstacle cells left out, facet tags) and back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from graphfem.meshes import Grid, Mesh
from graphfem.meshes.errors import InputError

from .grid import MacGeometry, MacState, Side, navier_stokes_mac, stable_dt

#: what the random channels of :func:`random_domain` draw from (``square``: the probability of a
#: square block instead of a disc)
RANGES = {"u_max": (0.5, 1.5), "nu": (0.01, 0.03), "radius": (0.08, 0.16), "x": (0.2, 0.35), "y": (0.3, 0.7),
          "square": 0.5}
#: ``graphfem generate mac-cylinder``: a disc of diameter 0.2 (a fifth of the height) at x = 0.5, a
#: little off the centre line, mean inflow 0.8 … 1.2 and ν 0.0015 … 0.0025, so Re = ū D/ν ≈ 64 … 160:
#: the MAC solver sheds vortices there (:func:`shedding_reference`)
CYLINDER_RANGES = {"u_max": (1.2, 1.8), "nu": (0.0015, 0.0025), "radius": (0.1, 0.1), "x": (0.25, 0.25),
                   "y": (0.48, 0.54), "square": 0.0}


@dataclass
class Domain:
    """One channel: grid, solid cells, inflow peak and viscosity.

    Attributes:
        grid: a 2D :class:`Grid`.
        solid: (nx, ny) bool, True in obstacle cells.
        u_max: peak of the parabolic inflow.
        nu: kinematic viscosity.
        info: what drew it (obstacle shape, centre, size), JSON-ready.
    """

    grid: Grid
    solid: np.ndarray
    u_max: float
    nu: float
    info: dict = field(default_factory=dict)

    @cached_property
    def psi(self) -> np.ndarray:
        """(ny+1,) inflow potential ψ(y_j) = ∫ U_in dy at the left corners."""
        (_, y0), (_, y1) = self.grid.lower, self.grid.upper
        eta = (np.linspace(y0, y1, self.grid.shape[1] + 1) - y0) / (y1 - y0)
        return 4.0 * self.u_max * (y1 - y0) * (eta ** 2 / 2 - eta ** 3 / 3)

    @cached_property
    def inflow(self) -> np.ndarray:
        """(ny,) the inflow face velocities (cell means of the profile), Δψ/hy."""
        return np.diff(self.psi) / float(self.grid.spacing[1])

    @cached_property
    def geometry(self) -> MacGeometry:
        """The :class:`MacGeometry` (inflow left, outflow right, walls, the solid mask)."""
        sides = {"left": Side("inflow", self.inflow), "right": Side("outflow"), "bottom": Side(), "top": Side()}
        return MacGeometry(self.grid, sides, self.solid)

    @cached_property
    def a_base(self) -> np.ndarray:
        """(nx, ny) owned potential of the obstacle-free Poiseuille flow, A = ψ(y_{j+1}) in every column."""
        return np.broadcast_to(self.psi[1:], self.grid.shape).copy()

    def start(self) -> np.ndarray:
        """(nx, ny) owned potential of the impulsive start: the Poiseuille flow with the obstacle's
        faces set to zero, projected onto divergence-free fields (one pressure solve)."""
        g = self.geometry
        hx, hy = (float(h) for h in self.grid.spacing)
        u, v = velocity_from_potential(full_potential(self.a_base, self.psi), hx, hy)
        u, v, _ = g.project(np.where(g.u_free, u, g.u_fixed), np.where(g.v_free, v, g.v_fixed), 1.0)
        return potential_from_velocity(u, hy)[1:, 1:]

    @cached_property
    def fixed_owned(self) -> tuple[np.ndarray, np.ndarray]:
        """(nx, ny) bool each: the owned x-face u[1:] / y-face v[:, 1:] is prescribed (not solved for)."""
        g = self.geometry
        return ~g.u_free[1:], ~g.v_free[:, 1:]


def random_domain(rng: np.random.Generator, grid: Grid, ranges: dict | None = None) -> Domain:
    """A channel with one obstacle (a disc or an axis-aligned square, the square with probability
    ``ranges["square"]``, ½ by default) at a centre
    (x, y) in the fractions ``ranges["x"]``, ``ranges["y"]`` of the box, radius (half side) a
    fraction ``ranges["radius"]`` of the height (x a fraction of the length), inflow peak and ν uniform in their ranges
    (:data:`RANGES` by default). Every draw comes from ``rng``."""
    r = {**RANGES, **(ranges or {})}
    (x0, y0), (x1, y1) = grid.lower, grid.upper
    height = y1 - y0
    kind = "disc" if rng.random() < 1.0 - float(r["square"]) else "square"
    cx = x0 + rng.uniform(*r["x"]) * (x1 - x0)
    cy = y0 + rng.uniform(*r["y"]) * height
    radius = rng.uniform(*r["radius"]) * height
    u_max = float(rng.uniform(*r["u_max"]))
    nu = float(rng.uniform(*r["nu"]))
    centres = grid.cell_centres()
    dx, dy = centres[..., 0] - cx, centres[..., 1] - cy
    solid = (dx ** 2 + dy ** 2 <= radius ** 2) if kind == "disc" else (np.maximum(abs(dx), abs(dy)) <= radius)
    if not solid.any():  # at least the cell under the centre
        solid[np.unravel_index(np.argmin(dx ** 2 + dy ** 2), solid.shape)] = True
    return Domain(grid, solid, u_max, nu, {"obstacle": kind, "centre": [float(cx), float(cy)],
                                           "radius": float(radius)})


# ------------------------------------------------------------------ potential <-> velocity
def full_potential(A, psi):
    """(..., nx+1, ny+1) corner potential a from the owned A (..., nx, ny) and the inflow column
    ψ (ny+1,): a[0, :] = ψ, a[1:, 0] = 0, a[1:, 1:] = A (numpy or torch)."""
    if isinstance(A, np.ndarray):
        lead = A.shape[:-2]
        bottom = np.zeros(lead + (A.shape[-2], 1), dtype=A.dtype)
        left = np.broadcast_to(np.asarray(psi, dtype=A.dtype), lead + (1, A.shape[-1] + 1))
        return np.concatenate([left, np.concatenate([bottom, A], axis=-1)], axis=-2)
    import torch

    lead = A.shape[:-2]
    bottom = torch.zeros(lead + (A.shape[-2], 1), dtype=A.dtype, device=A.device)
    left = torch.as_tensor(np.asarray(psi), dtype=A.dtype, device=A.device).expand(lead + (1, A.shape[-1] + 1))
    return torch.cat([left, torch.cat([bottom, A], dim=-1)], dim=-2)


def velocity_from_potential(a, hx: float, hy: float):
    """(u (..., nx+1, ny), v (..., nx, ny+1)) = (∂a/∂y, −∂a/∂x) on the MAC faces from corner values
    a (..., nx+1, ny+1) (numpy or torch); discretely divergence-free by construction."""
    u = (a[..., :, 1:] - a[..., :, :-1]) / hy
    v = -(a[..., 1:, :] - a[..., :-1, :]) / hx
    return u, v


def potential_from_velocity(u: np.ndarray, hy: float) -> np.ndarray:
    """(nx+1, ny+1) the corner potential of a MAC velocity with v = 0 on the bottom wall:
    a[i, 0] = 0, a[i, j+1] = a[i, j] + hy u[i, j]. It reproduces v exactly when D u = 0."""
    return np.concatenate([np.zeros((u.shape[0], 1)), np.cumsum(hy * u, axis=1)], axis=1)


def cell_velocity(u, v):
    """(..., nx, ny) each: face velocities averaged to the cell centres (numpy or torch)."""
    return 0.5 * (u[..., 1:, :] + u[..., :-1, :]), 0.5 * (v[..., :, 1:] + v[..., :, :-1])


# ------------------------------------------------------------------ reference
def mac_reference(domain: Domain, A0: np.ndarray, dt: float, steps: int, safety: float = 0.5):
    """The MAC solver's trajectory from the owned potential A0 (nx, ny), sampled every ``dt``.

    Each interval dt is cut into the fewest equal sub-steps below :func:`stable_dt` (with the
    inflow peak as the speed). Returns (A (steps+1, nx, ny), p (steps+1, nx, ny), seconds of
    solving); A[0] is the potential of the first state the solver accepts (fixed faces imposed and
    projected) — equal to A0 when A0 already satisfies the boundary values."""
    import time

    g = domain.geometry
    hx, hy = (float(h) for h in domain.grid.spacing)
    sub = max(1, int(np.ceil(dt / stable_dt(g, domain.nu, 1.5 * domain.u_max, safety) - 1e-9)))
    u, v = velocity_from_potential(full_potential(np.asarray(A0, float), domain.psi), hx, hy)
    u = np.where(g.u_free, u, g.u_fixed)
    v = np.where(g.v_free, v, g.v_fixed)
    u, v, p = g.project(u, v, dt / sub)
    start = time.perf_counter()
    state = MacState(domain.grid, u, v, p, 0.0)
    _, saved = navier_stokes_mac(domain.grid, domain.nu, g.sides, domain.solid, t_end=steps * dt, dt=dt / sub,
                                 initial=state, save_every=sub)
    seconds = time.perf_counter() - start
    states = [state] + saved
    A = np.stack([potential_from_velocity(s.u, hy)[1:, 1:] for s in states])
    return A, np.stack([s.p for s in states]), seconds


def developed_state(domain: Domain, warmup: float, dt: float) -> np.ndarray:
    """The owned potential after ``warmup`` time units of the MAC solver from :meth:`Domain.start`."""
    steps = max(1, int(round(warmup / dt)))
    A, _, _ = mac_reference(domain, domain.start(), dt, steps)
    return A[-1]


def mac_channel(rng: np.random.Generator, resolution: int = 32, dt: float = 0.025, frames: int = 20,
                warmup: float = 0.5, ranges: dict | None = None) -> dict:
    """``graphfem generate mac-channel``: a random channel of :func:`random_domain` (``ranges``,
    :data:`RANGES` by default) on the box [0, 2] × [0, 1] with 2·``resolution`` × ``resolution``
    cells, its MAC reference trajectory of ``frames`` steps of ``dt`` after ``warmup`` time units
    from the Poiseuille start.

    Returns grid, inputs ``mask`` (nx, ny) (1 in solid cells), params (u_max, nu, dt, warmup, the
    obstacle, the ranges drawn from), outputs ``a`` (T, nx, ny) owned potential, ``p`` (T, nx, ny),
    ``u_faces`` (T, nx+1, ny), ``v_faces`` (T, nx, ny+1), times (T,)."""
    if resolution < 4 or resolution % 2:
        raise InputError(f"--resolution must be an even number of cells across the channel >= 4, got {resolution}")
    ranges = {**RANGES, **(ranges or {})}
    grid = Grid((2 * int(resolution), int(resolution)), (0.0, 0.0), (2.0, 1.0))
    domain = random_domain(rng, grid, ranges)
    A0 = developed_state(domain, warmup, dt)
    A, p, seconds = mac_reference(domain, A0, dt, frames)
    hx, hy = (float(h) for h in grid.spacing)
    u, v = velocity_from_potential(full_potential(A, domain.psi), hx, hy)
    return {"grid": grid, "inputs": {"mask": domain.solid.astype(float)},
            "params": {"u_max": domain.u_max, "nu": domain.nu, "dt": dt, "warmup": warmup, **domain.info,
                       "ranges": {k: list(v) if isinstance(v, tuple) else v for k, v in ranges.items()},
                       "solve_s": seconds},
            "outputs": {"a": A, "p": p, "u_faces": u, "v_faces": v}, "times": dt * np.arange(frames + 1)}


def mac_cylinder(rng: np.random.Generator, resolution: int = 32, dt: float = 0.025, frames: int = 40,
                 warmup: float = 4.0) -> dict:
    """``graphfem generate mac-cylinder``: :func:`mac_channel` with :data:`CYLINDER_RANGES` (a disc
    of diameter 0.2 at Re ≈ 64 … 160), its reference taken after ``warmup`` = 4 time units, when the
    MAC solver's wake sheds. Same layout as mac-channel."""
    return mac_channel(rng, resolution, dt, frames, warmup, CYLINDER_RANGES)


# ------------------------------------------------------------------ vortex shedding
def cylinder_domain(grid: Grid, u_max: float, nu: float, centre: tuple[float, float] = (0.5, 0.51),
                    diameter: float = 0.2) -> Domain:
    """A channel with one disc of ``diameter`` at ``centre`` (cells whose centre lies inside), the
    cylinder case of the Strouhal number and of the control (not a :func:`random_domain` draw: its
    centre is off the draws' y range of :data:`CYLINDER_RANGES` only by chance; ``centre`` sets it)."""
    c = grid.cell_centres()
    solid = (c[..., 0] - centre[0]) ** 2 + (c[..., 1] - centre[1]) ** 2 <= (diameter / 2) ** 2
    if not solid.any():
        raise InputError(f"a disc of diameter {diameter:g} covers no cell centre of the {grid.shape} grid")
    return Domain(grid, solid, float(u_max), float(nu), {"obstacle": "disc", "centre": [float(x) for x in centre],
                                                          "radius": diameter / 2})


def probe_index(grid: Grid, point: tuple[float, float]) -> tuple[int, int]:
    """(i, j) of the y-face v[i, j] (cell column i, face row j) nearest ``point``."""
    hx, hy = (float(h) for h in grid.spacing)
    (x0, y0), (x1, y1) = grid.lower, grid.upper
    if not (x0 < point[0] < x1 and y0 < point[1] < y1):
        raise InputError(f"the probe point {tuple(point)} is outside the box [{x0:g}, {x1:g}] x [{y0:g}, {y1:g}]")
    i = min(grid.shape[0] - 1, int((point[0] - x0) / hx))
    j = int(round((point[1] - y0) / hy))
    return i, min(max(j, 1), grid.shape[1] - 1)


def probe_signal(A, psi, grid: Grid, point: tuple[float, float]):
    """The transverse velocity v (F,) at the y-face nearest ``point`` of owned potentials A (F, nx, ny)
    (numpy or torch; differentiable): v[i, j] = −(a[i+1, j] − a[i, j])/hx."""
    i, j = probe_index(grid, point)
    hx = float(grid.spacing[0])
    a = full_potential(A, psi)
    return -(a[..., i + 1, j] - a[..., i, j]) / hx


#: below this standard deviation of the probe signal (a fraction of the mean inflow speed) the wake
#: counts as steady, below this share of the signal's power in the peak's band as not periodic, and
#: with fewer periods of the peak frequency in the window as not measured
SHEDDING_AMPLITUDE, SHEDDING_PEAK, SHEDDING_PERIODS = 0.02, 0.5, 3.0


def strouhal(signal: np.ndarray, dt: float, diameter: float, u_mean: float, pad: int = 16) -> dict:
    r"""Shedding frequency and Strouhal number St = f D / ū of a probe signal (F,) sampled every ``dt``.

    The mean and the linear drift are removed, a Hann window applied and the spectrum |FFT|² taken of the signal
    zero-padded to ``pad``·F points; f is its highest peak, refined by the parabola through the log
    power of the peak and its two neighbours. The frequency **resolution** is the bin width
    Δf = 1/(F dt) (returned as ``resolution``; two tones closer than ~2Δf are not separated); the
    refined peak locates the frequency of a single tone well inside a bin (a pure sine of ≥ 4
    periods to < 2 % of Δf, tested). ``shedding`` is False — and f, St NaN — when the signal's
    standard deviation is below :data:`SHEDDING_AMPLITUDE`·ū, the band f ± 2Δf (without f = 0)
    holds less than :data:`SHEDDING_PEAK` of its power (a steady or aperiodic wake), or the window
    holds fewer than :data:`SHEDDING_PERIODS` periods of f (a drift, not an oscillation).

    Returns {"strouhal", "frequency", "resolution" (Δf), "strouhal_resolution" (Δf D/ū),
    "amplitude" (std), "peak_share", "shedding", "periods" (f F dt)}."""
    x = np.asarray(signal, float)
    if x.ndim != 1 or len(x) < 8 or not np.isfinite(x).all():
        raise InputError(f"a shedding frequency needs a finite 1D signal of >= 8 samples, got shape {x.shape}")
    n = len(x)
    time = np.arange(n)
    x = x - np.polyval(np.polyfit(time, x, 1), time)  # mean and drift removed: a trend is no shedding
    w = np.hanning(n)
    df = 1.0 / (n * dt)
    freq = np.fft.rfftfreq(pad * n, dt)
    power = np.abs(np.fft.rfft(x * w, pad * n)) ** 2
    k = int(np.argmax(power[1:-1])) + 1
    lm, l0, lp = np.log(power[k - 1:k + 2] + 1e-300)
    shift = 0.5 * (lm - lp) / (lm - 2 * l0 + lp) if lm - 2 * l0 + lp < 0 else 0.0
    f = float(freq[k] + shift * (freq[1] - freq[0]))
    coarse = np.abs(np.fft.rfft(x * w)) ** 2
    fc = np.fft.rfftfreq(n, dt)
    band = (np.abs(fc - f) <= 2 * df) & (fc > 0)
    share = float(coarse[band].sum() / max(coarse[1:].sum(), 1e-300))
    amplitude = float(x.std())
    shedding = bool(amplitude >= SHEDDING_AMPLITUDE * u_mean and share >= SHEDDING_PEAK
                    and f * n * dt >= SHEDDING_PERIODS)
    st = f * diameter / u_mean if shedding else float("nan")
    return {"strouhal": st, "frequency": f if shedding else float("nan"), "resolution": df,
            "strouhal_resolution": df * diameter / u_mean, "amplitude": amplitude, "peak_share": share,
            "shedding": shedding, "periods": f * n * dt}


def shedding_reference(domain: Domain, dt: float, t_end: float, probe: tuple[float, float],
                       window: float) -> dict:
    """The MAC solver's Strouhal number on ``domain`` from the impulsive start: the probe's v over the
    last ``window`` time units of ``t_end``, sampled every ``dt`` (:func:`strouhal`, D the obstacle's
    diameter, ū = ⅔ u_max the mean inflow). Adds ``signal`` (the whole probe history), ``seconds``."""
    steps = int(round(t_end / dt))
    keep = int(round(window / dt))
    if keep < 8 or keep > steps:
        raise InputError(f"a window of {window:g} s needs 8 .. {steps} samples of dt = {dt:g} in t_end = {t_end:g}")
    A, _, seconds = mac_reference(domain, domain.start(), dt, steps)
    signal = probe_signal(A, domain.psi, domain.grid, probe)
    out = strouhal(signal[-keep:], dt, 2 * float(domain.info.get("radius", 0.1)), 2.0 * domain.u_max / 3.0)
    return {**out, "signal": signal, "seconds": seconds}


# ------------------------------------------------------------------ grid <-> mesh
def channel_grid_mesh(grid: Grid, solid: np.ndarray) -> Mesh:
    """The quad mesh of the fluid cells of ``grid`` (solid cells left out) with facet tags
    ``left`` (inflow), ``right`` (outflow), ``bottom``, ``top`` (walls) and ``obstacle``
    (the boundary facets inside the box)."""
    full = grid.to_mesh()
    keep = ~np.asarray(solid, dtype=bool).reshape(-1)
    (x0, y0), (x1, y1) = grid.lower, grid.upper
    eps = 1e-9 * max(x1 - x0, y1 - y0)
    mesh = Mesh(full.points, "quad", full.cells[keep]).cleaned()
    inside = lambda m: (m[:, 0] > x0 + eps) & (m[:, 0] < x1 - eps) & (m[:, 1] > y0 + eps) & (m[:, 1] < y1 - eps)
    return mesh.with_boundary_tags(left=lambda m: abs(m[:, 0] - x0) < eps, right=lambda m: abs(m[:, 0] - x1) < eps,
                                   bottom=lambda m: abs(m[:, 1] - y0) < eps, top=lambda m: abs(m[:, 1] - y1) < eps,
                                   obstacle=inside)


def grid_of_mesh(mesh: Mesh) -> tuple[Grid, np.ndarray]:
    """(grid, solid (nx, ny)) of a quad mesh of grid cells (as :func:`channel_grid_mesh` writes):
    the grid spans the bounding box with the cells' size; grid cells without a mesh cell are solid.
    A mesh that is not made of equal axis-aligned grid cells is one line."""
    if mesh.cell_type != "quad" or mesh.dim != 2:
        raise InputError(f"the MAC grid models predict on quad meshes of grid cells; this mesh has "
                         f"{mesh.cell_type} cells", mesh.source)
    lo, hi = mesh.bounding_box
    corners = mesh.points[mesh.cells]
    size = corners.max(axis=1) - corners.min(axis=1)
    h = size.min(axis=0)
    shape = np.round((hi - lo) / h).astype(int)
    origin = np.round((corners.min(axis=1) - lo) / h)
    if (np.abs(size - h).max() > 1e-6 * h.min() or np.abs((hi - lo) / h - shape).max() > 1e-6
            or np.abs(corners.min(axis=1) - lo - origin * h).max() > 1e-6 * h.min()):
        raise InputError("the mesh is not made of equal axis-aligned cells of one grid", mesh.source)
    grid = Grid(tuple(int(s) for s in shape), tuple(lo), tuple(hi))
    solid = np.ones(grid.shape, dtype=bool)
    solid[origin[:, 0].astype(int), origin[:, 1].astype(int)] = False
    return grid, solid


def node_fields(grid: Grid, solid: np.ndarray, u: np.ndarray, v: np.ndarray, p: np.ndarray,
                points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Velocity (k, 2) and pressure (k,) at mesh nodes ``points`` (k, 2) on grid vertices: u is the
    mean of the x-faces above and below the vertex (the no-slip wall value at the bottom and top),
    v the mean of the y-faces left and right (the inflow's or the outflow face's own value on the
    sides), p the mean over the fluid cells around the vertex."""
    nx, ny = grid.shape
    ij = np.round((points - np.asarray(grid.lower)) / grid.spacing).astype(int)
    i, j = ij[:, 0], ij[:, 1]
    uw = np.concatenate([np.zeros((nx + 1, 1)), u, np.zeros((nx + 1, 1))], axis=1)  # walls: 0
    un = 0.5 * (uw[i, j] + uw[i, j + 1])
    vw = np.concatenate([v[:1], v, v[-1:]], axis=0)
    vn = 0.5 * (vw[i, j] + vw[i + 1, j])
    fluid = np.pad(~solid, 1).astype(float)
    pp = np.pad(np.where(solid, 0.0, p), 1)
    weight = fluid[i, j] + fluid[i + 1, j] + fluid[i, j + 1] + fluid[i + 1, j + 1]
    pn = (pp[i, j] + pp[i + 1, j] + pp[i, j + 1] + pp[i + 1, j + 1]) / np.maximum(weight, 1.0)
    return np.stack([un, vn], axis=1), pn


__all__ = ["CYLINDER_RANGES", "Domain", "RANGES", "cell_velocity", "channel_grid_mesh", "cylinder_domain",
           "developed_state", "full_potential", "grid_of_mesh", "mac_channel", "mac_cylinder", "mac_reference",
           "node_fields", "potential_from_velocity", "probe_index", "probe_signal", "random_domain",
           "shedding_reference", "strouhal", "velocity_from_potential"]
