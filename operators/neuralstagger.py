r"""NeuralStagger (Huang et al., ICML 2023, arXiv 2302.10255): a physics-constrained neural flow
stepper on a MAC grid, decomposed into s_H · s_W · s_T coarse sub-solvers run as one grouped network.

**State.** A channel flow (:mod:`graphfem.physics.mac_channel`) is the owned vector potential
A (nx, ny) (cell (i, j) owns its upper-right corner) and the pressure p (nx, ny); the velocity is
v = ∇ × a on the MAC faces, so the discrete divergence is zero by construction, the inflow and the
bottom-wall normal velocity are exact.

**Spatial stagger** (:func:`stagger`, :func:`unstagger`): piece (i, j) of a (…, H, W) lattice is
x⁽ⁱʲ⁾[m, n] = x[i + s_H m, j + s_W n] (pixel-unshuffle; the inverse is pixel-shuffle, pure
indexing, so the round trip is bitwise). Every MAC variable is split on its own lattice
(:func:`stagger_mac`): the boundary layer no cell owns (the inflow x-faces u[0], the bottom y-faces
v[:, 0], the left and bottom corners of a) is kept aside, the owned part is staggered. Masks are
split the same way. **Temporal stagger**: with factor s_T the state is a window of s_T frames
(t, …, t + (s_T − 1)Δt) and solver k advances frame k by s_T Δt.

**Sub-solvers.** G = s_H s_W s_T solvers, solver g = k s_H s_W + i s_W + j sees only its piece of
frame k (and of the conditions) on an (H/s_H) × (W/s_W) grid and returns ΔA, p there. They are one
:class:`GroupedUNet`: every convolution has ``groups = G`` on the stacked channels, which is the
same map as G separate nets (:meth:`GroupedUNet.sub_net`) in one kernel launch.

Input channels of a piece (C_in = 9): (A − A_base)/(u_ref H) (A_base the obstacle-free Poiseuille
potential, H the channel height), the piece's own velocity (differences of A between neighbours of
the piece, spacing s h, over u_ref), p/u_ref², the solid mask, the prescribed-face masks of the owned x- and y-faces,
U/u_ref, ν/ν_ref. Output: A_new = A + a_scale · y₀, p_new = p + p_scale · y₁ (increments of
both: the pressure of a rollout settles over the steps, as the pool recycles it).

**Fine loss** (Wandel et al. 2021, as NeuralStagger): on the reassembled fine state, with
v̄ = (v_new + v_old)/2, the IMEX momentum residual of :func:`graphfem.physics.grid.mac_momentum_residual`
(θ = ½) r = (v_new − v_old)/Δt + (v̄·∇)v̄ − νΔv̄ + ∇p_new on the free faces, the boundary term on
the prescribed faces, and

    L = mean_b log(λ_b L_b + λ_nav L_nav),   L_nav = mean_free r²,   L_b = mean_fixed (v_new − v_cond)²,

λ_b = 20, λ_nav = 1. With s_T > 1 the loss chains the new frames at Δt spacing:
Σ_k L(frame s_T + k | frame s_T + k − 1). Nothing but this loss couples the sub-solvers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from graphfem.physics.grid import mac_momentum_residual
from graphfem.physics.mac_channel import Domain, full_potential, velocity_from_potential

from .registry import register

#: input channels of one piece (see the module docstring)
INPUTS = ("a", "u", "v", "p", "solid", "fixed_u", "fixed_v", "u_max", "nu")


# ---------------------------------------------------------------------- stagger
def stagger(x: torch.Tensor, s_h: int, s_w: int) -> torch.Tensor:
    """Pieces of the last two axes: (…, H, W) -> (…, s_h·s_w, H/s_h, W/s_w), piece i·s_w + j
    holding x[…, i + s_h m, j + s_w n]. Pure indexing (exact)."""
    *lead, H, W = x.shape
    if H % s_h or W % s_w:
        raise ValueError(f"a {H} x {W} lattice does not split by factors {s_h} x {s_w}")
    y = x.reshape(*lead, H // s_h, s_h, W // s_w, s_w)
    n = len(lead)
    y = y.permute(*range(n), n + 1, n + 3, n, n + 2)
    return y.reshape(*lead, s_h * s_w, H // s_h, W // s_w)


def unstagger(pieces: torch.Tensor, s_h: int, s_w: int) -> torch.Tensor:
    """The inverse of :func:`stagger`: (…, s_h·s_w, Hc, Wc) -> (…, s_h·Hc, s_w·Wc)."""
    *lead, G, Hc, Wc = pieces.shape
    if G != s_h * s_w:
        raise ValueError(f"{G} pieces for factors {s_h} x {s_w}")
    n = len(lead)
    y = pieces.reshape(*lead, s_h, s_w, Hc, Wc).permute(*range(n), n + 2, n, n + 3, n + 1)
    return y.reshape(*lead, Hc * s_h, Wc * s_w)


def stagger_mac(x: torch.Tensor, s_h: int, s_w: int, halo: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor,
                                                                                      torch.Tensor]:
    """Split a MAC variable on its own lattice (…, H + e_h, W + e_w), ``halo`` = (e_h, e_w):
    (pieces of the owned part x[…, e_h:, e_w:], the low rows x[…, :e_h, :], the low columns
    x[…, e_h:, :e_w]). u: halo (1, 0); v: (0, 1); corner a: (1, 1); p and masks: (0, 0)."""
    e_h, e_w = halo
    return stagger(x[..., e_h:, e_w:], s_h, s_w), x[..., :e_h, :], x[..., e_h:, :e_w]


def unstagger_mac(pieces: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, s_h: int, s_w: int) -> torch.Tensor:
    """The inverse of :func:`stagger_mac`."""
    owned = torch.cat([cols, unstagger(pieces, s_h, s_w)], dim=-1)
    return torch.cat([rows, owned], dim=-2)


# ---------------------------------------------------------------------- grouped network
def _group_cat(a: torch.Tensor, b: torch.Tensor, groups: int) -> torch.Tensor:
    """Concatenate channels group by group: (B, G·c1, …), (B, G·c2, …) -> (B, G·(c1 + c2), …)."""
    B, _, H, W = a.shape
    return torch.cat([a.reshape(B, groups, -1, H, W), b.reshape(B, groups, -1, H, W)], dim=2).reshape(B, -1, H, W)


class GroupedUNet(nn.Module):
    r"""G independent U-Nets in one module: every convolution has ``groups = G``.

    Level ℓ (0 … L) has width w 2^ℓ; each level is two 3 × 3 convolutions with GELU (``padding_mode``
    ``circular`` for periodic fields), levels are joined by 2 × 2 average pooling and nearest upsampling
    with group-wise skip concatenation; a 1 × 1 convolution, initialised to zero, gives the outputs.
    ``identical_init``: every solver starts from solver 0's weights.

    Shapes: x (B, G·c_in, H, W) -> (B, G·c_out, H, W), H and W divisible by 2^L.
    """

    def __init__(self, groups: int, c_in: int, c_out: int, width: int, levels: int, identical_init: bool = False,
                 padding_mode: str = "zeros"):
        super().__init__()
        self.groups, self.levels = groups, levels
        G = groups

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(G * i, G * o, 3, padding=1, groups=G, padding_mode=padding_mode), nn.GELU(),
                                 nn.Conv2d(G * o, G * o, 3, padding=1, groups=G, padding_mode=padding_mode), nn.GELU())

        widths = [width * 2 ** level for level in range(levels + 1)]
        self.down = nn.ModuleList([block(c_in, widths[0])] + [block(widths[k - 1], widths[k])
                                                             for k in range(1, levels + 1)])
        self.up = nn.ModuleList([block(widths[k + 1] + widths[k], widths[k]) for k in range(levels)])
        self.head = nn.Conv2d(G * widths[0], G * c_out, 1, groups=G)
        nn.init.zeros_(self.head.weight)  # every solver starts as persistence (ΔA = 0, p = 0)
        nn.init.zeros_(self.head.bias)
        self._args = (c_in, c_out, width, levels, False, padding_mode)
        if identical_init:
            self._copy_group_zero()

    def _copy_group_zero(self) -> None:
        """Give every solver solver 0's initial weights (they stay separate parameters): on a shift-invariant
        problem the exact sub-solvers are one map, and the pieces then start from it alike."""
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    o = m.out_channels // self.groups
                    m.weight.copy_(m.weight[:o].repeat(self.groups, 1, 1, 1))
                    m.bias.copy_(m.bias[:o].repeat(self.groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k, block in enumerate(self.down):
            if k:
                x = nn.functional.avg_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for k in reversed(range(self.levels)):
            x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
            x = self.up[k](_group_cat(x, skips[k], self.groups))
        return self.head(x)

    def sub_net(self, g: int) -> "GroupedUNet":
        """Solver ``g`` alone: a one-group copy with its slice of every weight (for checks)."""
        one = GroupedUNet(1, *self._args).to(next(self.parameters()))
        mine = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        for src, dst in zip(mine, [m for m in one.modules() if isinstance(m, nn.Conv2d)]):
            o = dst.out_channels
            with torch.no_grad():
                dst.weight.copy_(src.weight[g * o:(g + 1) * o])
                dst.bias.copy_(src.bias[g * o:(g + 1) * o])
        return one


# ---------------------------------------------------------------------- model
@dataclass
class NeuralStaggerConfig:
    """Configuration of :class:`NeuralStagger`.

    Attributes:
        nx, ny: fine grid cells; x_min … y_max: the box.
        dt: the fine time step Δt (a solver advances s_T Δt).
        s_h, s_w, s_t: stagger factors (1, 1, 1: the vanilla fine stepper).
        width, levels: U-Net width of level 0 and number of poolings of every sub-solver.
        a_scale, p_scale: output scales of ΔA and p.
        u_ref, nu_ref: scales of the U and ν input channels.
        lambda_b, lambda_nav: weights of the boundary and momentum terms inside the log.
    """

    nx: int = 64
    ny: int = 32
    x_min: float = 0.0
    x_max: float = 2.0
    y_min: float = 0.0
    y_max: float = 1.0
    dt: float = 0.025
    s_h: int = 1
    s_w: int = 1
    s_t: int = 1
    width: int = 16
    levels: int = 2
    a_scale: float = 0.005
    p_scale: float = 0.1
    u_ref: float = 1.0
    nu_ref: float = 0.02
    lambda_b: float = 20.0
    lambda_nav: float = 1.0

    def __post_init__(self) -> None:
        for name in ("s_h", "s_w", "s_t", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        div_h, div_w = self.s_h * 2 ** self.levels, self.s_w * 2 ** self.levels
        if self.nx % div_h or self.ny % div_w:
            raise ValueError(f"a {self.nx} x {self.ny} grid does not split by s_h x s_w = {self.s_h} x {self.s_w} "
                             f"into coarse grids divisible by 2^levels = {2 ** self.levels} (nx must be a multiple "
                             f"of {div_h}, ny of {div_w})")


@register("neuralstagger")
class NeuralStagger(nn.Module):
    """The G = s_H s_W s_T coarse sub-solvers of the module docstring as one grouped U-Net.

    ``forward`` is the raw grouped map (B, G·9, Hc, Wc) -> (B, G·2, Hc, Wc); :meth:`encode`,
    :meth:`decode` and :meth:`step` go between it and fine states.
    """

    Config = NeuralStaggerConfig

    def __init__(self, config: NeuralStaggerConfig):
        super().__init__()
        self.config = config
        self.net = GroupedUNet(self.groups, len(INPUTS), 2, config.width, config.levels)

    @property
    def groups(self) -> int:
        c = self.config
        return c.s_h * c.s_w * c.s_t

    @property
    def spacing(self) -> tuple[float, float]:
        c = self.config
        return (c.x_max - c.x_min) / c.nx, (c.y_max - c.y_min) / c.ny

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    # -------------------------------------------------------------- fine <-> pieces
    def conditions(self, domains: Sequence[Domain], like: torch.Tensor) -> torch.Tensor:
        """(B, 6, nx, ny): A_base and the static channels solid, fixed_u, fixed_v, U/u_ref, ν/ν_ref."""
        c = self.config
        rows = []
        for d in domains:
            fu, fv = d.fixed_owned
            rows.append(np.stack([d.a_base, d.solid, fu, fv, np.full(d.solid.shape, d.u_max / c.u_ref),
                                  np.full(d.solid.shape, d.nu / c.nu_ref)]))
        return torch.as_tensor(np.stack(rows), dtype=like.dtype, device=like.device)

    def encode(self, A: torch.Tensor, p: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Stacked piece inputs (B, G·9, nx/s_h, ny/s_w) of the frame windows A, p (B, s_t, nx, ny)
        and :meth:`conditions` ``cond`` (B, 6, nx, ny); group g = k s_h s_w + i s_w + j."""
        c = self.config
        return self.piece_inputs(stagger(A, c.s_h, c.s_w), stagger(p, c.s_h, c.s_w), stagger(cond, c.s_h, c.s_w))

    def piece_inputs(self, A: torch.Tensor, p: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Inputs of n spatial pieces: A, p (B, s_t, n, Hc, Wc), cond (B, 6, n, Hc, Wc) -> the
        stacked channels (B, s_t·n·9, Hc, Wc), group k·n + piece, 9 channels each."""
        c = self.config
        B, T, n, Hc, Wc = A.shape
        hx, hy = self.spacing
        a = (A - cond[:, None, 0]) / (c.u_ref * (c.y_max - c.y_min))
        # the piece's own velocity: differences of A between its neighbours (spacing s h), 0 below / 0 left
        u = torch.diff(A, dim=-1, prepend=torch.zeros_like(A[..., :1])) / (c.s_w * hy * c.u_ref)
        v = -torch.diff(A, dim=-2, prepend=A[..., :1, :]) / (c.s_h * hx * c.u_ref)
        static = cond[:, 1:].permute(0, 2, 1, 3, 4)[:, None].expand(B, T, n, 5, Hc, Wc)
        x = torch.cat([torch.stack([a, u, v, p / c.u_ref ** 2], dim=3), static], dim=3)   # (B, T, n, 9, Hc, Wc)
        return x.reshape(B, T * n * len(INPUTS), Hc, Wc)

    def decode(self, out: torch.Tensor, A: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The next window (A_new, p_new) (B, s_t, nx, ny) from the grouped output (B, G·2, Hc, Wc)
        and the current window A, p (frame k advances to frame k + s_t)."""
        c = self.config
        B = out.shape[0]
        y = out.reshape(B, c.s_t, c.s_h * c.s_w, 2, *out.shape[-2:]).permute(0, 1, 3, 2, 4, 5)
        y = unstagger(y, c.s_h, c.s_w)                                        # (B, T, 2, nx, ny)
        return A + c.a_scale * y[:, :, 0], p + c.p_scale * y[:, :, 1]

    def step(self, A: torch.Tensor, p: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One call of every sub-solver: the window (B, s_t, nx, ny) s_t Δt later."""
        return self.decode(self(self.encode(A, p, cond)), A, p)

    # -------------------------------------------------------------- coarse subsets
    def subset(self, k: int) -> list[int]:
        """The spatial pieces i s_w + j with i ≡ j ≡ k − 1 (mod k), k dividing s_h and s_w: their
        owned corners (i + 1, j + 1) + s(m, n) are the corners of the grid of spacing k h, so
        together they are a coarse MAC simulation of their own (k = 1: every piece)."""
        c = self.config
        if k < 1 or c.s_h % k or c.s_w % k:
            raise ValueError(f"a coarsening {k} does not divide the factors {c.s_h} x {c.s_w}")
        return [i * c.s_w + j for i in range(k - 1, c.s_h, k) for j in range(k - 1, c.s_w, k)]

    def rollout(self, A: torch.Tensor, p: torch.Tensor, cond: torch.Tensor, windows: int,
                coarsen: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``windows`` calls of the sub-solvers of :meth:`subset` (``coarsen``) only, from the fine
        windows A, p (B, s_t, nx, ny): (A, p) (windows + 1, B, s_t, n, Hc, Wc) on their pieces. The
        other solvers are never run (each solver reads its own piece only)."""
        c = self.config
        chosen = self.subset(coarsen)
        S = c.s_h * c.s_w
        groups = [t * S + g for t in range(c.s_t) for g in chosen]
        base = stagger(cond, c.s_h, c.s_w)[:, :, chosen]
        Ap, pp = stagger(A, c.s_h, c.s_w)[:, :, chosen], stagger(p, c.s_h, c.s_w)[:, :, chosen]
        out_a, out_p = [Ap], [pp]
        for _ in range(windows):
            x = self.piece_inputs(Ap, pp, base)
            y = (self(x) if len(chosen) == S else _run_groups(self.net, x, groups)).reshape(
                *Ap.shape[:3], 2, *Ap.shape[-2:])
            Ap, pp = Ap + c.a_scale * y[:, :, :, 0], pp + c.p_scale * y[:, :, :, 1]
            out_a.append(Ap)
            out_p.append(pp)
        return torch.stack(out_a), torch.stack(out_p)

    # -------------------------------------------------------------- loss
    def physics_loss(self, A_new: torch.Tensor, p_new: torch.Tensor, A_old: torch.Tensor,
                     domains: Sequence[Domain]) -> dict[str, torch.Tensor]:
        """{"loss", "nav", "bnd"}: the fine loss of the module docstring for windows A_new, p_new,
        A_old (B, s_t, nx, ny); the frames of [A_old, A_new] are chained at Δt spacing (the first
        new frame against the last old one)."""
        c = self.config
        hx, hy = self.spacing
        B, T = A_new.shape[:2]
        chain = torch.cat([A_old[:, -1:], A_new], dim=1)
        losses, navs, bnds = [], [], []
        for b, d in enumerate(domains):
            g = d.geometry
            a = full_potential(chain[b], d.psi)                                # (T+1, nx+1, ny+1)
            u, v = velocity_from_potential(a, hx, hy)
            ru, rv = mac_momentum_residual(u[1:], v[1:], p_new[b], u[:-1], v[:-1], c.dt, d.nu, g, theta=0.5)
            fu = torch.as_tensor(g.u_free, device=u.device)
            fv = torch.as_tensor(g.v_free, device=v.device)
            n_free = fu.sum() + fv.sum()
            nav = ((ru ** 2).sum(dim=(-2, -1)) + (rv ** 2).sum(dim=(-2, -1))) / n_free
            cu = torch.as_tensor(g.u_fixed, dtype=u.dtype, device=u.device)
            cv = torch.as_tensor(g.v_fixed, dtype=v.dtype, device=v.device)
            eu = torch.where(fu, torch.zeros_like(u[1:]), u[1:] - cu)
            ev = torch.where(fv, torch.zeros_like(v[1:]), v[1:] - cv)
            bnd = ((eu ** 2).sum(dim=(-2, -1)) + (ev ** 2).sum(dim=(-2, -1))) / (fu.numel() + fv.numel() - n_free)
            losses.append(torch.log(c.lambda_b * bnd + c.lambda_nav * nav).sum())
            navs.append(nav.mean())
            bnds.append(bnd.mean())
        return {"loss": torch.stack(losses).mean(), "nav": torch.stack(navs).mean().detach(),
                "bnd": torch.stack(bnds).mean().detach()}


class PeriodicStagger(nn.Module):
    r"""NeuralStagger for one scalar field on a periodic n × n grid (the method note's prototype, used to
    verify the decomposition where the answer is known): s² sub-solvers, solver i s + j owning the
    sub-lattice u[i + s m, j + s n], one grouped U-Net with circular padding,

        u_new = unstagger(u⁽ⁱʲ⁾ + Δt · f_θij(u⁽ⁱʲ⁾)),

    each solver seeing only its own piece (s = 1: the vanilla fine stepper). Trained through a fine
    loss on the reassembled field, e.g. :func:`graphfem.physics.grid.periodic_advection_diffusion_residual`.
    Shapes: u (B, n, n) -> (B, n, n); :meth:`sub_step` piece (B, n/s, n/s) -> (B, n/s, n/s).
    """

    def __init__(self, s: int, dt: float, width: int = 16, levels: int = 2):
        super().__init__()
        self.s, self.dt = s, dt
        self.net = GroupedUNet(s * s, 1, 1, width, levels, padding_mode="circular", identical_init=True)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        pieces = stagger(u, self.s, self.s)
        return unstagger(pieces + self.dt * self.net(pieces), self.s, self.s)

    def sub_step(self, piece: torch.Tensor, g: int) -> torch.Tensor:
        """Solver ``g`` alone on its piece: the coarse simulation of one sub-solver (the others never run)."""
        return piece + self.dt * _run_groups(self.net, piece[:, None], [g])[:, 0]


def _run_groups(net: GroupedUNet, x: torch.Tensor, groups: Sequence[int]) -> torch.Tensor:
    """``net`` restricted to the solvers ``groups``: every grouped convolution applied with the
    weight and bias slices of those groups only, so the cost is that of len(groups) solvers.
    x (B, n·c_in, H, W) the inputs of those solvers in that order -> (B, n·c_out, H, W)."""
    G = net.groups
    n = len(groups)
    idx = torch.as_tensor(list(groups), device=x.device)

    def pick(t: torch.Tensor) -> torch.Tensor:
        shaped = t.reshape(G, -1, *t.shape[1:])
        return shaped[idx].reshape(-1, *t.shape[1:])

    def conv(m: nn.Conv2d, h: torch.Tensor) -> torch.Tensor:
        if m.padding_mode == "circular" and m.padding != (0, 0):
            ph, pw = m.padding
            return nn.functional.conv2d(nn.functional.pad(h, (pw, pw, ph, ph), mode="circular"), pick(m.weight),
                                        pick(m.bias), groups=n)
        return nn.functional.conv2d(h, pick(m.weight), pick(m.bias), padding=m.padding, groups=n)

    def block(seq: nn.Sequential, h: torch.Tensor) -> torch.Tensor:
        for m in seq:
            h = conv(m, h) if isinstance(m, nn.Conv2d) else m(h)
        return h

    h, skips = x, []
    for k, seq in enumerate(net.down):
        if k:
            h = nn.functional.avg_pool2d(h, 2)
        h = block(seq, h)
        skips.append(h)
    for k in reversed(range(net.levels)):
        h = nn.functional.interpolate(h, scale_factor=2, mode="nearest")
        h = block(net.up[k], _group_cat(h, skips[k], n))
    return conv(net.head, h)


__all__ = ["GroupedUNet", "INPUTS", "NeuralStagger", "NeuralStaggerConfig", "PeriodicStagger", "stagger", "stagger_mac",
           "unstagger", "unstagger_mac"]
