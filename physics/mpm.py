r"""2D and 3D MLS-MPM (Hu et al., SIGGRAPH 2018) in torch: the ground-truth
particle simulator for Lagrangian surrogates (GIOROM).

Scheme, per step of size Δt on a uniform grid of spacing Δx = 1/G over the
unit box (quadratic B-spline weights w_ip, APIC affine matrix C_p):

.. math::
    m_i v_i &= \sum_p w_{ip}\big(m_p v_p + (m_p C_p - \tfrac{4 Δt V_p}{Δx^2}\,τ_p)(x_i - x_p)\big),
    \qquad m_i = \sum_p w_{ip} m_p \\
    v_i &\leftarrow v_i + Δt\, g \quad\text{(then wall conditions)} \\
    v_p &= \sum_i w_{ip} v_i, \qquad C_p = \tfrac{4}{Δx^2}\sum_i w_{ip} v_i (x_i - x_p)^T,
    \qquad x_p \leftarrow x_p + Δt\, v_p, \qquad F_p \leftarrow (I + Δt C_p) F_p

τ_p is the Kirchhoff stress of the particle's material:

* ``jelly``: compressible neo-Hookean, τ = μ(FFᵀ − I) + λ ln J I.
* ``water``: weakly compressible Newtonian fluid, τ = −J p I + J η (C + Cᵀ),
  p = K (J⁻¹ − 1); only J is kept (F = J^{1/d} I).
* ``goo``: non-Newtonian (Herschel–Bulkley viscoplastic) fluid, the same with
  η(γ̇) = min(η_max, τ_y/γ̇ + k γ̇^{n−1}), γ̇ = √2 |sym C| (regularised Bingham for n = 1).
* ``sand``: Drucker–Prager with the return mapping of Klár et al. (SIGGRAPH 2016)
  on the Hencky strain ε = ln Σ of F = U Σ Vᵀ, τ = U(2μ ε + λ tr ε I)Uᵀ,
  α = √(2/3)·2 sin φ/(3 − sin φ); tension (tr ε > 0) projects to the tip.
* ``plasticine``: von Mises plasticity on the Hencky strain: the deviator is
  scaled back to |ε̂| = τ_Y/(2μ).

Walls: grid nodes within ``bound`` cells of the box faces lose the velocity
component into the wall; ``boundary="slip"`` keeps the tangential part
reduced by Coulomb friction (|v_t| ← max(0, |v_t| − μ_f |v_n|)), ``"sticky"``
zeroes it. Gravity acts along −e_{d−1} (y in 2D, z in 3D).

The registered problem ``mpm`` (:class:`MPMProblem`) runs one body of one
material: ``graphfem solve mpm BODY -o out.pvd --material sand --t-end 0.4``,
and ``graphfem generate mpm --material sand`` writes random bodies in the
common data layout (positions in ``outputs/x`` (T, N, d), material ids in
``inputs/material``, walls and frame step in ``params``).

Stability: the step must satisfy Δt ≤ Δx/(c + |v|_max), with c the
material's wave speed (and Δt ≤ ρΔx²/(2dη) for viscous fluids); a violation
raises :class:`GraphfemError` before the run or at the first frame where the
particle speed breaks it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from graphfem.meshes import Mesh, PointCloud, Trajectory
from graphfem.meshes.errors import GraphfemError, InputError, OptionValueError

from .problem import Features, Option, Problem, register_problem

#: material name -> integer id (stored as the ``material`` point field)
MATERIALS = {"jelly": 0, "water": 1, "goo": 2, "sand": 3, "plasticine": 4}


@dataclass(frozen=True)
class Material:
    """Constitutive parameters (consistent units: the box is 1 long, ρ ≈ 1).

    Attributes:
        name: one of :data:`MATERIALS`.
        E, nu: Young's modulus and Poisson's ratio of the elastic part (solids).
        rho: density.
        bulk: bulk modulus K of the fluids.
        viscosity: Newtonian viscosity η (water) or consistency k (goo).
        yield_stress: τ_y of goo, τ_Y of plasticine.
        flow_index: Herschel–Bulkley exponent n of goo.
        max_viscosity: cap η_max of the regularised viscoplastic law.
        friction_angle: φ in degrees (sand).
    """

    name: str
    E: float = 2.0e3
    nu: float = 0.3
    rho: float = 1.0
    bulk: float = 1.0e3
    viscosity: float = 0.0
    yield_stress: float = 0.0
    flow_index: float = 1.0
    max_viscosity: float = 0.5
    friction_angle: float = 30.0

    def __post_init__(self) -> None:
        if self.name not in MATERIALS:
            raise InputError(f"unknown material {self.name!r}; choose one of {', '.join(MATERIALS)}")
        if min(self.E, self.rho, self.bulk) <= 0 or not -1 < self.nu < 0.5:
            raise InputError(f"material {self.name}: need E, rho, bulk > 0 and -1 < nu < 0.5")

    @property
    def lame(self) -> tuple[float, float]:
        """(λ, μ) of the elastic part."""
        mu = self.E / (2 * (1 + self.nu))
        return self.E * self.nu / ((1 + self.nu) * (1 - 2 * self.nu)), mu

    @property
    def is_fluid(self) -> bool:
        return self.name in ("water", "goo")

    def wave_speed(self) -> float:
        """The fastest elastic wave: √(K/ρ) for fluids, √((λ + 2μ)/ρ) for solids."""
        if self.is_fluid:
            return math.sqrt(self.bulk / self.rho)
        lam, mu = self.lame
        return math.sqrt((lam + 2 * mu) / self.rho)

    def peak_viscosity(self) -> float:
        """The largest viscosity the law can reach (bounds the viscous step)."""
        if self.name == "water":
            return self.viscosity
        if self.name == "goo":
            return self.max_viscosity
        return 0.0


#: default parameters per material (used by ``generate mpm`` and the benchmarks)
PRESETS = {
    "jelly": Material("jelly", E=1.0e3, nu=0.3),
    "water": Material("water", bulk=400.0, viscosity=1e-3),
    "goo": Material("goo", bulk=400.0, viscosity=0.02, yield_stress=2.0, flow_index=0.6, max_viscosity=0.2),
    "sand": Material("sand", E=1.0e3, nu=0.3, friction_angle=30.0),
    "plasticine": Material("plasticine", E=1.0e3, nu=0.3, yield_stress=15.0),
}


def material(name: str, **overrides) -> Material:
    """The preset of ``name`` with keyword overrides."""
    if name not in PRESETS:
        raise InputError(f"unknown material {name!r}; choose one of {', '.join(MATERIALS)}")
    return replace(PRESETS[name], **overrides)


@dataclass(frozen=True)
class MPMConfig:
    """Grid, time step and walls.

    Attributes:
        dim: 2 or 3.
        n_grid: G cells per axis over the unit box (Δx = 1/G).
        dt: step Δt; ``None`` takes ``cfl · Δx / c`` (c the wave speed).
        cfl: the Courant number of the default step; the check refuses steps
            above Courant number 1 (Δt > Δx/(c + |v|_max)).
        gravity: magnitude g of the gravity along −e_{d−1}.
        bound: wall thickness in cells (walls at ``bound·Δx`` and ``1 − bound·Δx``).
        boundary: ``"slip"`` (with Coulomb ``friction``) or ``"sticky"``.
        friction: Coulomb coefficient μ_f of the walls.
    """

    dim: int = 2
    n_grid: int = 64
    dt: float | None = None
    cfl: float = 0.4
    gravity: float = 9.8
    bound: int = 3
    boundary: str = "slip"
    friction: float = 0.0

    def __post_init__(self) -> None:
        if self.dim not in (2, 3):
            raise InputError(f"MPM runs in 2D or 3D, got dim={self.dim}")
        if self.n_grid < 2 * self.bound + 4:
            raise InputError(f"n_grid={self.n_grid} leaves no room inside walls of {self.bound} cells")
        if self.boundary not in ("slip", "sticky"):
            raise InputError(f"boundary must be slip or sticky, got {self.boundary!r}")
        if not 0 < self.cfl <= 1:
            raise InputError(f"cfl must be in (0, 1], got {self.cfl}")

    @property
    def dx(self) -> float:
        return 1.0 / self.n_grid

    def walls(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) corners of the region the walls leave to the material."""
        b = self.bound * self.dx
        return np.full(self.dim, b), np.full(self.dim, 1.0 - b)

    def stable_dt(self, mat: Material, speed: float = 0.0, courant: float | None = None) -> float:
        """min(C Δx/(c + speed), ρΔx²/(2dη)) with C = ``courant`` (default :attr:`cfl`)."""
        dt = (self.cfl if courant is None else courant) * self.dx / (mat.wave_speed() + speed)
        eta = mat.peak_viscosity()
        if eta > 0:
            dt = min(dt, mat.rho * self.dx ** 2 / (2 * self.dim * eta))
        return dt


# ------------------------------------------------------------------ initial shapes
def lattice(lower: Sequence[float], upper: Sequence[float], spacing: float) -> np.ndarray:
    """(N, d) cell-centred lattice points of spacing ``spacing`` in a box."""
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    axes = [np.arange(lo + spacing / 2, hi, spacing) for lo, hi in zip(lower, upper)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(lower))


def sample_box(lower: Sequence[float], upper: Sequence[float], spacing: float) -> np.ndarray:
    """Particles filling the box [lower, upper] on a lattice."""
    return lattice(lower, upper, spacing)


def sample_ball(centre: Sequence[float], radius: float, spacing: float) -> np.ndarray:
    """Particles filling a disk (2D) or sphere (3D) on a lattice."""
    c = np.asarray(centre, float)
    pts = lattice(c - radius, c + radius, spacing)
    return pts[np.linalg.norm(pts - c, axis=1) <= radius]


def _simplices(mesh: Mesh) -> np.ndarray:
    corners = mesh.corner_cells
    ctype = {"triangle6": "triangle", "tetra10": "tetra", "quad9": "quad", "quad8": "quad"}.get(mesh.cell_type,
                                                                                                   mesh.cell_type)
    if ctype in ("triangle", "tetra"):
        return corners
    if ctype == "quad":
        return np.concatenate([corners[:, [0, 1, 2]], corners[:, [0, 2, 3]]])
    if ctype == "hexahedron":
        tets = ((0, 1, 3, 4), (1, 2, 3, 6), (1, 4, 5, 6), (3, 4, 6, 7), (1, 3, 4, 6))
        return np.concatenate([corners[:, list(t)] for t in tets])
    raise InputError(f"cannot sample particles in {mesh.cell_type} cells", mesh.source)


def sample_mesh(mesh: Mesh, spacing: float) -> np.ndarray:
    """Lattice particles of spacing ``spacing`` inside the cells of a mesh
    (triangles, quads, tetrahedra, hexahedra; any shape, convex or not).

    A lattice point is kept when its barycentric coordinates in one of its
    nearest cells are all ≥ −1e-12.
    """
    from scipy.spatial import cKDTree

    simp = _simplices(mesh)
    pts = mesh.points[:, : mesh.dim]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    cand = lattice(lo, hi, spacing)
    verts = pts[simp]  # (m, d+1, d)
    centroids = verts.mean(axis=1)
    reach = np.linalg.norm(verts - centroids[:, None], axis=2).max()
    tree = cKDTree(centroids)
    T = np.transpose(verts[:, 1:] - verts[:, :1], (0, 2, 1))  # (m, d, d)
    Tinv = np.linalg.inv(T)
    inside = np.zeros(len(cand), dtype=bool)
    for i, cells in enumerate(tree.query_ball_point(cand, reach + 1e-12)):
        if not cells:
            continue
        lam = np.einsum("kij,kj->ki", Tinv[cells], cand[i] - verts[cells, 0])
        bary = np.concatenate([1 - lam.sum(axis=1, keepdims=True), lam], axis=1)
        inside[i] = bool((bary.min(axis=1) >= -1e-12).any())
    if not inside.any():
        raise InputError(f"no particle fits in the mesh at spacing {spacing}", mesh.source)
    return cand[inside]


# ------------------------------------------------------------------ the solver
def _kirchhoff(mat: Material, F, C, J, dim: int):
    """(τ, F_elastic, J) after the material's plastic projection; τ is (N, d, d)."""
    import torch

    eye = torch.eye(dim, dtype=F.dtype, device=F.device)
    lam, mu = mat.lame
    if mat.is_fluid:
        p = mat.bulk * (1.0 / J - 1.0)
        D = 0.5 * (C + C.transpose(1, 2))
        if mat.name == "water":
            eta = torch.full_like(J, mat.viscosity)
        else:
            rate = torch.sqrt(2.0 * (D * D).sum(dim=(1, 2))).clamp_min(1e-8)
            eta = (mat.yield_stress / rate + mat.viscosity * rate ** (mat.flow_index - 1.0)).clamp_max(
                mat.max_viscosity)
        tau = (-J * p)[:, None, None] * eye + (2.0 * J * eta)[:, None, None] * D
        F = J[:, None, None] ** (1.0 / dim) * eye
        return tau, F, J
    if mat.name == "jelly":
        J = torch.linalg.det(F)
        tau = mu * (F @ F.transpose(1, 2) - eye) + (lam * torch.log(J))[:, None, None] * eye
        return tau, F, J
    U, S, Vh = torch.linalg.svd(F)
    eps = torch.log(S.clamp_min(1e-6))
    if mat.name == "sand":
        tr = eps.sum(dim=1, keepdim=True)
        dev = eps - tr / dim
        dnorm = dev.norm(dim=1, keepdim=True)
        s = math.sin(math.radians(mat.friction_angle))
        alpha = math.sqrt(2.0 / 3.0) * 2.0 * s / (3.0 - s)
        yield_amount = dnorm + (dim * lam + 2 * mu) / (2 * mu) * tr * alpha
        to_tip = (tr > 0) | (dnorm <= 0)
        scaled = eps - yield_amount / dnorm.clamp_min(1e-12) * dev
        eps = torch.where(to_tip, torch.zeros_like(eps), torch.where(yield_amount > 0, scaled, eps))
    else:  # plasticine: von Mises on the Hencky deviator
        tr = eps.sum(dim=1, keepdim=True)
        dev = eps - tr / dim
        dnorm = dev.norm(dim=1, keepdim=True)
        limit = mat.yield_stress / (2 * mu)
        eps = torch.where(dnorm > limit, eps - (dnorm - limit) / dnorm.clamp_min(1e-12) * dev, eps)
    F = U @ torch.diag_embed(torch.exp(eps)) @ Vh
    tau = U @ torch.diag_embed(2 * mu * eps + lam * eps.sum(dim=1, keepdim=True)) @ U.transpose(1, 2)
    return tau, F, torch.exp(eps.sum(dim=1))


class MPM:
    """A particle state advanced by MLS-MPM (see the module docstring).

    Args:
        positions: (N, d) initial particle positions inside the walls.
        mat: the :class:`Material`.
        config: the :class:`MPMConfig`.
        velocities: (N, d) or (d,) initial velocities (default 0).
        volume: particle volume V_p (default: spacing^d of the closest-pair
            distance, i.e. the lattice cell the particle was sampled from).
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        dtype: torch dtype of the state (float64 on CPU by default, float32 on CUDA).
    """

    def __init__(self, positions: np.ndarray, mat: Material, config: MPMConfig = MPMConfig(),
                 velocities: np.ndarray | Sequence[float] | None = None, volume: float | None = None,
                 device: str = "auto", dtype=None):
        import torch

        positions = np.array(positions, dtype=float)  # a copy: torch shares writable memory only
        if positions.ndim != 2 or positions.shape[1] != config.dim or len(positions) == 0:
            raise InputError(f"positions must be (N, {config.dim}), got {positions.shape}")
        lo, hi = config.walls()
        if (positions < lo).any() or (positions > hi).any():
            raise InputError(f"particles must lie inside the walls [{lo[0]:.4g}, {hi[0]:.4g}]^{config.dim}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.dtype = dtype or (torch.float32 if self.device.type == "cuda" else torch.float64)
        self.mat, self.config = mat, config
        dim, n = config.dim, len(positions)
        if volume is None:
            volume = (particle_spacing(positions) if n > 1 else config.dx / 2) ** dim
        self.volume = float(volume)
        self.mass = self.volume * mat.rho
        t = dict(dtype=self.dtype, device=self.device)
        self.x = torch.as_tensor(positions, **t).clone()
        v = np.zeros((n, dim)) if velocities is None else np.broadcast_to(np.asarray(velocities, float), (n, dim))
        self.v = torch.as_tensor(np.array(v), **t)
        self.C = torch.zeros(n, dim, dim, **t)
        self.F = torch.eye(dim, **t).repeat(n, 1, 1)
        self.J = torch.ones(n, **t)
        self.time = 0.0
        speed = float(self.v.norm(dim=1).max())
        self.dt = config.dt if config.dt is not None else config.stable_dt(mat, speed)
        self._check_cfl()
        G = config.n_grid
        offs = np.stack(np.meshgrid(*[np.arange(3)] * dim, indexing="ij"), axis=-1).reshape(-1, dim)
        self._offsets = torch.as_tensor(offs, device=self.device)
        self._strides = torch.as_tensor([G ** (dim - 1 - a) for a in range(dim)], device=self.device)
        node = torch.as_tensor(np.stack(np.meshgrid(*[np.arange(G)] * dim, indexing="ij"), -1).reshape(-1, dim),
                               device=self.device)
        self._lo_wall = node < config.bound
        self._hi_wall = node > G - config.bound
        self._gravity = torch.zeros(dim, **t)
        self._gravity[-1] = -config.gravity

    def _check_cfl(self) -> None:
        speed = float(self.v.norm(dim=1).max())
        limit = self.config.stable_dt(self.mat, speed, courant=1.0)
        if not math.isfinite(speed) or self.dt > limit * (1 + 1e-9):
            raise GraphfemError(
                f"MPM time step {self.dt:.3e} breaks the CFL limit {limit:.3e} at t={self.time:.4g} "
                f"(wave speed {self.mat.wave_speed():.3g}, particle speed {speed:.3g}, dx {self.config.dx:.3g}); "
                f"lower dt, soften the material or coarsen the grid", f"mpm:{self.mat.name}")

    def grid_mass(self):
        """(G^d,) grid masses Σ_p w_ip m_p of the current particles (sum = total mass)."""
        import torch

        idx, w, _ = self._stencil()
        G = self.config.n_grid
        return torch.zeros(G ** self.config.dim, dtype=self.dtype, device=self.device).index_add_(
            0, idx.reshape(-1), (w * self.mass).reshape(-1))

    def _stencil(self):
        """Linear grid indices (N, K), weights (N, K) and x_i − x_p (N, K, d) of the 3^d stencil."""
        import torch

        inv_dx = float(self.config.n_grid)
        xs = self.x * inv_dx
        base = torch.floor(xs - 0.5)
        fx = xs - base  # in [0.5, 1.5)
        wax = torch.stack([0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1.0) ** 2, 0.5 * (fx - 0.5) ** 2], dim=1)  # (N,3,d)
        off = self._offsets  # (K, d)
        w = torch.gather(wax.unsqueeze(1).expand(-1, off.shape[0], -1, -1), 2,
                         off[None, :, None, :].expand(len(xs), -1, 1, -1)).squeeze(2).prod(dim=2)
        dpos = (off[None].to(self.dtype) - fx[:, None, :]) / inv_dx
        idx = ((base.long()[:, None, :] + off[None]) * self._strides).sum(dim=2)
        return idx, w, dpos

    def step(self) -> None:
        """One MLS-MPM step of size :attr:`dt`."""
        import torch

        c, mat = self.config, self.mat
        dim, G, dt = c.dim, c.n_grid, self.dt
        inv_dx = float(G)
        tau, self.F, self.J = _kirchhoff(mat, self.F, self.C, self.J, dim)
        affine = (-dt * self.volume * 4 * inv_dx ** 2) * tau + self.mass * self.C
        idx, w, dpos = self._stencil()
        mom = w[..., None] * (self.mass * self.v[:, None, :] + torch.einsum("nij,nkj->nki", affine, dpos))
        flat = idx.reshape(-1)
        gm = torch.zeros(G ** dim, dtype=self.dtype, device=self.device).index_add_(0, flat, (w * self.mass).reshape(-1))
        gv = torch.zeros(G ** dim, dim, dtype=self.dtype, device=self.device).index_add_(0, flat, mom.reshape(-1, dim))
        active = gm > 0
        gv = torch.where(active[:, None], gv / gm.clamp_min(1e-30)[:, None] + dt * self._gravity, gv)
        gv = self._walls(gv)
        gvp = gv[idx]  # (N, K, d)
        self.v = (w[..., None] * gvp).sum(dim=1)
        self.C = (4 * inv_dx ** 2) * torch.einsum("nk,nki,nkj->nij", w, gvp, dpos)
        self.x = self.x + dt * self.v
        if mat.is_fluid:
            self.J = self.J * (1 + dt * torch.diagonal(self.C, dim1=1, dim2=2).sum(dim=1))
        else:
            self.F = (torch.eye(dim, dtype=self.dtype, device=self.device) + dt * self.C) @ self.F
        self.time += dt

    def _walls(self, gv):
        import torch

        c = self.config
        inward = (self._lo_wall & (gv < 0)) | (self._hi_wall & (gv > 0))
        if c.boundary == "sticky":
            return torch.where((self._lo_wall | self._hi_wall).any(dim=1, keepdim=True), torch.zeros_like(gv), gv)
        vn = torch.where(inward, gv, torch.zeros_like(gv))
        vt = gv - vn
        if c.friction > 0:
            nt = vt.norm(dim=1, keepdim=True)
            scale = (1 - c.friction * vn.norm(dim=1, keepdim=True) / nt.clamp_min(1e-30)).clamp_min(0.0)
            vt = torch.where(inward.any(dim=1, keepdim=True), vt * scale, vt)
        return vt

    def momentum(self) -> np.ndarray:
        """(d,) total linear momentum Σ_p m_p v_p."""
        return (self.mass * self.v.sum(dim=0)).cpu().numpy()

    def run(self, frames: int, frame_dt: float) -> Trajectory:
        """Advance ``frames`` frames of ``frame_dt`` each (an integer number of
        steps, Δt shrunk to fit) and return the :class:`Trajectory` of
        positions ``x`` and velocities ``v`` (T = frames + 1, N, d) on a
        :class:`PointCloud` of the initial positions with a ``material`` field.

        Raises:
            GraphfemError: a frame breaks the CFL condition or the state is not finite.
        """
        substeps = max(1, math.ceil(frame_dt / self.dt - 1e-9))
        self.dt = frame_dt / substeps
        xs, vs = [self.x.cpu().numpy()], [self.v.cpu().numpy()]
        x0 = xs[0].copy()
        for _ in range(frames):
            for _ in range(substeps):
                self.step()
            self._check_cfl()
            xs.append(self.x.cpu().numpy())
            vs.append(self.v.cpu().numpy())
        if not np.isfinite(xs[-1]).all():
            raise GraphfemError("MPM state became non-finite", f"mpm:{self.mat.name}")
        cloud = PointCloud(x0, {"material": np.full(len(x0), MATERIALS[self.mat.name], dtype=np.int64)},
                           source=f"mpm:{self.mat.name}")
        times = frame_dt * np.arange(frames + 1)
        return Trajectory(times, {"x": np.stack(xs), "v": np.stack(vs)}, cloud, units={"x": "1", "v": "1/s"})


def simulate(positions: np.ndarray, mat: Material | str, frames: int, frame_dt: float,
             config: MPMConfig | None = None, velocities=None, device: str = "auto", **options) -> Trajectory:
    """Run MLS-MPM from ``positions`` and return the particle :class:`Trajectory`.

    ``options`` go to :class:`MPMConfig` (``n_grid``, ``dt``, ``gravity``, ``friction``, ...).
    """
    if isinstance(mat, str):
        mat = material(mat)
    positions = np.asarray(positions, dtype=float)
    config = config or MPMConfig(dim=positions.shape[1], **options)
    return MPM(positions, mat, config, velocities=velocities, device=device).run(frames, frame_dt)


def particle_spacing(points: np.ndarray) -> float:
    """The median distance from a particle to its nearest neighbour (the lattice spacing of a sampled body)."""
    from scipy.spatial import cKDTree

    return float(np.median(cKDTree(points).query(points, k=2)[0][:, 1]))


def body_particles(body: Mesh | PointCloud, spacing: float | None = None) -> np.ndarray:
    """(N, d) the particles of a body: its points, or with ``spacing`` the
    lattice particles inside its cells (:func:`sample_mesh`; a mesh only)."""
    if spacing is None:
        return np.asarray(body.points, dtype=float)
    if not isinstance(body, Mesh):
        raise InputError("--spacing fills the cells of a mesh; a point cloud's points are the particles",
                         body.source)
    return sample_mesh(body, spacing)


def random_body(rng: np.random.Generator, kind: str, config: MPMConfig, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """A random initial state for data sets: (positions (N, d), velocity (d,)).

    ``kind="mixed"``: a box or a ball of random size and place, velocity
    uniform in [−1, 1]^d with a downward last component. ``kind="column"``:
    a box of random width and height standing in the lower corner of the
    walls, at rest (granular collapse).
    """
    lo, hi = config.walls()
    dim = config.dim
    if kind == "column":
        size = rng.uniform(0.08, 0.2, dim)
        size[-1] = rng.uniform(0.12, 0.3)
        return sample_box(lo, lo + size, spacing), np.zeros(dim)
    size = rng.uniform(0.2, 0.35, dim)
    corner = lo + rng.uniform(0.02, 1, dim) * (hi - lo - size - 0.02)
    corner[-1] = lo[-1] + rng.uniform(0.0, 0.25)
    if rng.random() < 0.5:
        pts = sample_box(corner, corner + size, spacing)
    else:
        r = size.min() / 2
        pts = sample_ball(corner + r, r, spacing)
    vel = rng.uniform(-1.0, 1.0, dim)
    vel[-1] = rng.uniform(-1.0, 0.0)
    return pts, vel


def write_particle_series(path, times: np.ndarray, positions: np.ndarray,
                          point_data: dict[str, np.ndarray] | None = None,
                          fixed_data: dict[str, np.ndarray] | None = None) -> None:
    """A PVD series of point clouds for ParaView (one VTU per frame in
    ``<stem>_steps/``), written atomically; the points move with the body.

    Args:
        times: (T,) frame times.
        positions: (T, M, d) point positions per frame.
        point_data: name -> (T, M, ...) values per frame.
        fixed_data: name -> (M, ...) values shared by every frame (material ids).
    """
    import xml.etree.ElementTree as ET
    from pathlib import Path

    from graphfem.meshes.io import atomic_dir, atomic_path

    path = Path(path)
    if path.suffix.lower() != ".pvd":
        raise InputError(f"-o {path}: a particle time series is written as .pvd")
    for name, values in {"positions": positions, **(point_data or {})}.items():
        if not np.isfinite(values).all():
            raise GraphfemError(f"the {name} hold NaN or infinite values; refusing to write them", path)
    folder = path.with_name(f"{path.stem}_steps")
    with atomic_dir(folder) as tmp:
        root = ET.Element("VTKFile", type="Collection", version="0.1")
        collection = ET.SubElement(root, "Collection")
        for k, t in enumerate(times):
            step = Path(tmp) / f"step_{k:05d}.vtu"
            data = {**(fixed_data or {}), **{n: v[k] for n, v in (point_data or {}).items()}}
            data = {n: np.pad(v, ((0, 0), (0, 1))) if v.ndim == 2 and v.shape[1] == 2 else v  # ParaView vectors
                    for n, v in data.items()}
            PointCloud(positions[k], data).write(step)
            ET.SubElement(collection, "DataSet", timestep=repr(float(t)), part="0", file=f"{folder.name}/{step.name}")
        with atomic_path(path) as out:
            ET.ElementTree(root).write(out, xml_declaration=True)


# ------------------------------------------------------------------ the registered problem
FRAME_DT = 0.01  # default time between stored frames


@dataclass(eq=False)
class ParticleSolution:
    """One MPM run: what :class:`~graphfem.physics.problem.Solution` is to an FE solve.

    Attributes:
        trajectory: particle positions ``x`` (T, N, d) on a :class:`PointCloud`
            of the initial particles, which carries their ``material`` ids.
        scene: what a data set stores with the run: ``walls`` (lower, upper
            of the box left to the material, the same on every axis),
            ``frame_dt``, ``n_grid``, ``gravity``, ``friction`` and
            ``particle_spacing``.
        info: solver facts: ``substeps`` per frame, the step ``dt``, ``mpm_s``.
    """

    trajectory: Trajectory
    scene: dict
    info: dict = field(default_factory=dict)
    units: dict = field(default_factory=lambda: {"x": "1"})

    @property
    def mesh(self) -> PointCloud:
        return self.trajectory.domain

    @property
    def fields(self) -> dict[str, np.ndarray]:
        """The final state: ``x`` (N, d)."""
        return {"x": self.trajectory.fields["x"][-1]}

    def write(self, path) -> None:
        """The run as a PVD series of moving particles with their ``displacement`` x − x⁰ and ``material``."""
        x = self.trajectory.fields["x"]
        write_particle_series(path, self.trajectory.times, x, {"displacement": x - x[:1]},
                              dict(self.mesh.point_data))


def _material_option(raw, body, option) -> str:
    """A material name, or the point field of material ids of a body of one material -> the name."""
    if isinstance(raw, str):
        if raw not in MATERIALS:
            raise OptionValueError(f"{option.cli_flag} must be one of {', '.join(MATERIALS)}, got {raw!r}")
        return raw
    ids = np.unique(np.asarray(raw, dtype=float).reshape(-1))
    names = {v: k for k, v in MATERIALS.items()}
    if ids.size != 1 or ids[0] not in names:
        raise InputError(f"{option.cli_flag}: the material ids {ids[:5].tolist()} are not one material of "
                         f"{', '.join(f'{k}={v}' for k, v in MATERIALS.items())}; MPM runs one material per body",
                         body.source)
    return names[int(ids[0])]


@register_problem
class MPMProblem(Problem):
    """MLS-MPM dynamics of one body of one material in the box (:class:`MPM`).

    The "mesh" is the initial body: a :class:`PointCloud` whose points are
    the particles, or a :class:`Mesh` whose nodes are, or whose cells are
    filled with lattice particles of ``--spacing``. The output is the
    particle trajectory ``x`` (T, N, d) at t = 0, dt, ..., t_end.

    Data sets (:meth:`sample`): ``geometry`` ``mixed`` (a box or ball thrown
    with a random velocity) or ``column`` (a column at rest in the corner,
    collapsing), in 2D, or in 3D with the suffix ``-3d``; particles on the
    lattice of spacing Δx/2.
    """

    name = "mpm"
    fields = {"x": "1"}
    vector_fields = ("x",)
    summary = "MLS-MPM particle dynamics of a body of jelly, water, goo, sand or plasticine in a box"
    dims = (2, 3)
    geometries = ("mixed", "column", "mixed-3d", "column-3d")
    options = (
        Option("material", "choice", None, "jelly, water, goo, sand or plasticine.", required=True,
               choices=tuple(MATERIALS), parse=_material_option),
        Option("velocity", "vector", None, "Initial velocity of the body VX,VY[,VZ] (default 0)."),
        Option("spacing", "number", None, "Fill the mesh cells with lattice particles of this spacing (default: "
               "the body's points are the particles)."),
        Option("gravity", "number", 9.8, "Gravity along -y (2D) or -z (3D), default 9.8."),
        Option("friction", "number", None, "Coulomb friction of the walls (default 0.3 for sand, 0 otherwise)."),
        Option("t_end", "number", None, "Duration: frames at t = 0, dt, ..., t_end.", role="time", required=True),
        Option("dt", "number", None, f"Time between frames (default {FRAME_DT}); MPM sub-steps within the CFL "
               "limit.", role="time"),
        Option("n_grid", "integer", 32, "MPM grid cells per axis of the unit box (walls 3 cells thick).",
               role="setting"),
    )

    def config(self, dim: int, params) -> MPMConfig:
        """The :class:`MPMConfig` of parsed options."""
        friction = params.get("friction")
        if friction is None:
            friction = 0.3 if params.get("material") == "sand" else 0.0
        return MPMConfig(dim=dim, n_grid=int(params.get("n_grid") or 32), gravity=float(params.get("gravity", 9.8)),
                         friction=float(friction))

    def check(self, body, params) -> None:
        t_end, dt = params["t_end"], params["dt"] or FRAME_DT
        if t_end <= 0 or dt <= 0:
            raise InputError(f"mpm: --t-end and --dt must be positive, got {t_end:g} and {dt:g}")
        if abs(t_end / dt - round(t_end / dt)) > 1e-6 * t_end / dt:
            raise InputError(f"mpm: --t-end {t_end:g} is not a whole number of frames of dt = {dt:g}")
        if params["spacing"] is not None and params["spacing"] <= 0:
            raise InputError(f"mpm: --spacing must be positive, got {params['spacing']:g}")
        if params["friction"] is not None and params["friction"] < 0:
            raise InputError(f"mpm: --friction must be >= 0, got {params['friction']:g}")
        lo, hi = self.config(body.dim, params).walls()
        pts = np.asarray(body.points)
        if (pts < lo).any() or (pts > hi).any():
            raise InputError(f"the body spans [{pts.min():.4g}, {pts.max():.4g}]; it must lie inside the walls "
                             f"[{lo[0]:.4g}, {hi[0]:.4g}]^{body.dim} of the unit box (n_grid "
                             f"{int(params['n_grid'])})", body.source)

    def is_transient(self, params) -> bool:
        return True

    def features(self, body, params) -> Features:
        """Per-particle model inputs: the material one-hot, the initial velocity,
        gravity and wall friction (the same on every particle) and the
        distances (x − b_lo, b_hi − x) to the walls, in units of the box."""
        config = self.config(body.dim, params)
        lo, hi = config.walls()
        x = np.asarray(body.points, dtype=float)
        n, d = x.shape
        velocity = np.zeros(d) if params["velocity"] is None else np.asarray(params["velocity"], dtype=float)
        columns = [np.tile([float(params["material"] == m) for m in MATERIALS], (n, 1)), np.tile(velocity, (n, 1)),
                   np.full((n, 1), config.gravity), np.full((n, 1), config.friction), x - lo, hi - x]
        names = ([f"material[{k}]" for k in range(len(MATERIALS))] + [f"velocity[{k}]" for k in range(d)]
                 + ["gravity", "friction"] + [f"wall_lower[{k}]" for k in range(d)]
                 + [f"wall_upper[{k}]" for k in range(d)])
        return Features(np.concatenate(columns, axis=1), names, np.ones(d))

    def solve(self, body, *, material: str, t_end: float, velocity=None, spacing=None, gravity: float = 9.8,
              friction: float | None = None, dt: float | None = None, n_grid: int = 32,
              device: str = "auto") -> ParticleSolution:
        """Run MLS-MPM from the particles of ``body`` for ``t_end`` (frames every ``dt``)."""
        import time

        params = {"material": material, "gravity": gravity, "friction": friction, "n_grid": n_grid}
        config = self.config(body.dim, params)
        dt = dt or FRAME_DT
        points = body_particles(body, spacing)
        start = time.perf_counter()
        sim = MPM(points, PRESETS[material], config, velocities=velocity, device=device)
        traj = sim.run(int(round(t_end / dt)), dt)
        lo, hi = config.walls()
        trajectory = Trajectory(traj.times, {"x": traj.fields["x"]}, traj.domain, {"x": "1"})
        scene = {"walls": [float(lo[0]), float(hi[0])], "frame_dt": float(dt), "n_grid": config.n_grid,
                 "gravity": config.gravity, "friction": config.friction,
                 "particle_spacing": particle_spacing(points) if len(points) > 1 else config.dx / 2}
        info = {"substeps": int(round(dt / sim.dt)), "dt": sim.dt, "mpm_s": time.perf_counter() - start}
        return ParticleSolution(trajectory, scene, info)

    def report(self, solution: ParticleSolution) -> list[str]:
        n, T = solution.mesh.n_points, solution.trajectory.n_steps
        return [f"MLS-MPM: {n} particles, {T - 1} frames of {solution.scene['frame_dt']:g}, "
                f"{solution.info['substeps']} sub-steps of {solution.info['dt']:.3g} each "
                f"({solution.info['mpm_s']:.2f} s)"]

    def sample(self, rng: np.random.Generator, geometry: str | None = None, resolution: int | None = None):
        """A random body (a :class:`PointCloud`) and raw options: a random
        ``material`` (``generate mpm --material`` fixes it for a data set),
        ``velocity``, ``t_end`` 0.4, ``dt`` 0.01, ``n_grid`` = ``resolution`` (default 32)."""
        geometry = self.geometry(geometry)
        kind, dim = geometry.removesuffix("-3d"), 3 if geometry.endswith("-3d") else 2
        n_grid = resolution or 32
        config = MPMConfig(dim=dim, n_grid=n_grid)
        points, velocity = random_body(rng, kind, config, config.dx / 2)
        raw = {"material": str(rng.choice(list(MATERIALS))), "t_end": 0.4, "dt": FRAME_DT, "n_grid": n_grid,
               "velocity": velocity.tolist()}
        return PointCloud(points, source=f"mpm:{geometry}"), raw


__all__ = ["FRAME_DT", "MATERIALS", "MPM", "MPMConfig", "MPMProblem", "Material", "PRESETS", "ParticleSolution",
           "body_particles", "lattice", "material", "particle_spacing", "random_body", "sample_ball", "sample_box",
           "sample_mesh", "simulate", "write_particle_series"]
