r"""RGNP (Vadeboncoeur et al., ICML 2023): random-grid neural processes with a GICNet inverse model.

A physics-informed latent-variable model of a parametric PDE whose collocation grid
X = {x_i}ᵢ₌₁ᴺ ~ U(Ω)ᴺ is a random variable, drawn afresh for every sample and step.

**Forward model** q_α(ũ(X) | z, w, X) = N(μ_α, Σ_α), z the unknown and w the known
inputs (normalised to [−1, 1] by their prior boxes). The network is an MLP (SiLU) of the
Fourier features [sin 2πf_k x_d, cos 2πf_k x_d] of every coordinate (f_k log-spaced in
[f_min, f_max], fixed) ⊕ z ⊕ w, point by point, with outputs (μ, h, c) and

* ``diag``: Σ = diag σ²(x_i);  ``lr``: Σ = diag σ²(x_i) + CCᵀ, C_i = c(x_i) ∈ Rᵏ
  (:class:`torch.distributions.LowRankMultivariateNormal`);
* σ² = ℓ + (1 − ℓ) sigmoid(h), ℓ = ``var_floor`` (bounded variances);
* hard boundary (and initial) conditions u = b(x, w) + D(x) ũ by construction (:data:`PDES`):

  - ``poisson1d`` (:mod:`graphfem.physics.nonlinear_poisson`), Ω = [−1, 1]: b = 0, D = cos(πx/2),
    evaluated as 2 sin(π(1 − x)/4) sin(π(1 + x)/4) so that D(±1) = 0 exactly in floating point;
  - ``burgers`` (:mod:`graphfem.physics.parametric_burgers`), (x, t) ∈ [0, 1]²:
    b = sin(2wπx) s(x), D = s(x) t with s(x) = sin(π min(x, 1 − x)) = sin(πx), exactly 0 at x = 0, 1;
  - ``cavity`` (:mod:`graphfem.physics.lid_cavity`), (x, y) ∈ [0, 1]²: the GP is over the stream
    function ψ = b + Dψ̃ with b = w·16x²(1 − x)²(y³ − y²), D = 256 (x(1 − x)y(1 − y))², so the velocity
    (u, v) = (ψ_y, −ψ_x) is divergence-free, zero on the walls and the lid's on y = 1 by construction,
    and the residual is the vorticity form Δ²ψ − (ψ_y Δψ_x − ψ_x Δψ_y)/ν (:meth:`RGNP.velocity`).

**Inverse model** (GICNet) q_β(z | ũ(X), w, X) = N(μ_β, diag σ²_β): a pointwise lift P(ũ_i / s) ∈ Rᴾ
(s = ``u_scale``),
one kernel-interpolation layer (:class:`KIP`) per channel onto a fixed grid {g_j} (G points in
1D, G × G in (x, t); a Nadaraya–Watson smoother, invariant to the order and number of the
points), the grid coordinates appended, a Conv1d (kernel 3) or Conv2d (kernel 2) stack,
dense layers, the known w through its own dense layers, and a dense head to (μ_β, σ²_β)
(bounded like σ²_α).

**ELBO** per sample, with one reparameterised ũ = μ_α + σ_α ⊙ ε + C η (ε ~ N(0, I_N),
η ~ N(0, I_k): the formula of ``LowRankMultivariateNormal.rsample``, with the noise drawn
by the caller so that a resumed run draws the same numbers):

    ELBO = Σ_i log N(r_i; 0, ε²) + log q_β(z | ũ, w, X) − log q_α(ũ | z, w, X),

r_i = r(x_i) the strong residual of u = b + Dũ (the problem's ``residual``, autograd in the
coordinates), ε fixed or learned and clamped to ≥ ``eps_min``. The −log q_α term (an
entropy estimate) keeps σ_α from collapsing. Optional data term (:meth:`RGNP.data_log_likelihood`):
log N(y; b + Dμ_α, D²Σ_α + σ_y² I) of noisy observations y at fixed points.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import distributions as dist
from torch import nn

from .registry import register


def mlp(sizes: list[int], last_activation: bool = False) -> nn.Sequential:
    """Dense layers of ``sizes`` with SiLU (swish) between them."""
    layers: list[nn.Module] = []
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(m, n))
        if i < len(sizes) - 2 or last_activation:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


def boundary_factor(x: torch.Tensor) -> torch.Tensor:
    """D(x) = cos(πx/2) = 2 sin(π(1 − x)/4) sin(π(1 + x)/4): zero exactly at x = ±1; shape of x."""
    return 2 * torch.sin(math.pi * (1 - x) / 4) * torch.sin(math.pi * (1 + x) / 4)


def _sin_pi(x: torch.Tensor) -> torch.Tensor:
    """sin(πx) = sin(π min(x, 1 − x)) on [0, 1]: exactly 0 at x = 0 and x = 1."""
    return torch.sin(math.pi * torch.minimum(x, 1 - x))


class Poisson1D:
    """``poisson1d``: (κ(u)u′)′ + w = 0 on [−1, 1]; u = cos(πx/2) ũ."""

    dim, low, high = 1, (-1.0,), (1.0,)
    #: names of the coordinates and of the field the GP is over (observation files use them)
    coords, field, stream = ("x",), "u", False

    @staticmethod
    def lift(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(b, D) at x (B, N, 1) for w (B, n_w): ((B, N), (B, N))."""
        d = boundary_factor(x[..., 0])
        return torch.zeros_like(d), d

    @staticmethod
    def residual(cols: list[torch.Tensor], u: torch.Tensor, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        from graphfem.physics.nonlinear_poisson import residual

        return residual(cols[0], u, z, w)


class Burgers1D:
    """``burgers``: u_t + z₁uu_x − z₀u_xx = 0 on (x, t) ∈ [0, 1]²; u = sin(2wπx) sin(πx) + sin(πx) t ũ."""

    dim, low, high = 2, (0.0, 0.0), (1.0, 1.0)
    coords, field, stream = ("x", "t"), "u", False

    @staticmethod
    def lift(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = _sin_pi(x[..., 0])
        return torch.sin(2 * math.pi * w * x[..., 0]) * s, s * x[..., 1]

    @staticmethod
    def residual(cols: list[torch.Tensor], u: torch.Tensor, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        from graphfem.physics.parametric_burgers import residual

        return residual(cols[0], cols[1], u, z)


class Cavity:
    """``cavity``: steady lid-driven cavity on (x, y) ∈ [0, 1]² in the stream function,
    ψ = b + Dψ̃ (:func:`graphfem.physics.lid_cavity.stream_lift`); z = (ν,), w = (lid speed,)."""

    dim, low, high = 2, (0.0, 0.0), (1.0, 1.0)
    coords, field, stream = ("x", "y"), "stream", True

    @staticmethod
    def lift(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from graphfem.physics.lid_cavity import stream_lift

        return stream_lift(x[..., 0], x[..., 1], w)

    @staticmethod
    def residual(cols: list[torch.Tensor], u: torch.Tensor, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        from graphfem.physics.lid_cavity import residual

        return residual(cols[0], cols[1], u, z[:, :1])


#: the problems an RGNP is built for: name -> spec (dim, box, hard-BC lift, residual)
PDES = {"poisson1d": Poisson1D, "burgers": Burgers1D, "cavity": Cavity}


class KIP(nn.Module):
    r"""Kernel interpolation onto a fixed grid, one trainable lengthscale per channel:

        h_p(g_j) = Σ_i k_p(g_j, x_i) v_{ip} / (Σ_i k_p(g_j, x_i) + 1e-6),
        k_p(g, x) = exp(−‖g − x‖² / (2ℓ_p²)),

    ℓ_p initialised log-spaced over [ls_min, ls_max]. Invariant to permuting the points,
    and (up to the 1e-6) to repeating them.

    Shapes: x (B, N, d), v (B, N, P), mask (B, N) of 0/1 (padding) or None -> (B, G, P).
    """

    def __init__(self, grid: torch.Tensor, channels: int, ls_min: float = 1e-3, ls_max: float = 1.0):
        super().__init__()
        self.register_buffer("grid", grid)
        self.log_ls = nn.Parameter(torch.linspace(math.log(ls_min), math.log(ls_max), channels))

    def forward(self, x: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        d2 = ((self.grid[None, :, None, :] - x[:, None, :, :]) ** 2).sum(-1)         # (B, G, N)
        ls2 = torch.exp(2 * self.log_ls)
        k = torch.exp(-d2[..., None] / (2 * ls2))                                    # (B, G, N, P)
        if mask is not None:
            k = k * mask[:, None, :, None]
        return (k * v[:, None]).sum(2) / (k.sum(2) + 1e-6)


@dataclass
class RGNPConfig:
    """Sizes and settings of an RGNP.

    Attributes:
        pde: the problem, a key of :data:`PDES` (its domain, hard conditions and residual).
        n_z, n_w: numbers of unknown and known inputs; z_low/z_high (a number, or one per
            component), w_low/w_high their prior boxes.
        fourier: number of Fourier frequencies (log-spaced over [f_min, f_max]).
        width, depth: the forward MLP (hidden layers).
        covariance: ``"diag"`` or ``"lr"`` (rank ``rank``); var_floor: ℓ of σ².
        points: N, random collocation points per sample and step.
        eps, learn_eps, eps_min: the physics noise scale ε (fixed, or learned from ``eps`` and clamped).
        lift, lift_depth: P channels of the GICNet lift and its dense layers.
        grid, ls_min, ls_max: the KIP grid points per axis and initial lengthscale range.
        conv, filters: Conv1d (kernel 3) or Conv2d (kernel 2) layers and their filters.
        gic_dense, w_dense, head: dense widths after the CNN, for w (3 layers), and of the head.
        sigma_y: the noise of the optional data likelihood.
        u_scale: ũ enters the GICNet lift as ũ / u_scale (a fixed input normalisation).
        out_scale: u = b + out_scale·D ũ (a fixed output scale: ũ and σ are O(1) where u − b is
            O(out_scale); 1 leaves the lift as it is).
    """

    pde: str = "poisson1d"
    n_z: int = 5
    n_w: int = 1
    z_low: float = -1.0
    z_high: float = 1.0
    w_low: float = 1.0
    w_high: float = 2.0
    fourier: int = 50
    f_min: float = 1e-3
    f_max: float = 2.0
    width: int = 128
    depth: int = 3
    covariance: str = "diag"
    rank: int = 2
    var_floor: float = 1e-5
    points: int = 30
    eps: float = 1e-2
    learn_eps: bool = False
    eps_min: float = 1e-3
    lift: int = 12
    lift_depth: int = 2
    grid: int = 20
    ls_min: float = 1e-3
    ls_max: float = 1.0
    conv: int = 3
    filters: int = 20
    gic_dense: tuple = (64,)
    w_dense: int = 64
    head: tuple = (64,)
    sigma_y: float = 0.05
    u_scale: float = 0.2
    out_scale: float = 1.0


class GICNet(nn.Module):
    """The grid-invariant convolutional inverse model q_β(z | ũ, w, X) (module docstring).

    ``forward(x (B, N, d), ut (B, N), w_n (B, n_w), mask (B, N) or None)`` returns the
    normalised posterior mean and variance, ((B, n_z), (B, n_z)).
    """

    def __init__(self, c: RGNPConfig):
        super().__init__()
        pde = PDES[c.pde]
        self.var_floor = 1e-6
        self.u_scale = c.u_scale
        self.dim, self.side = pde.dim, c.grid
        self.lift = mlp([1] + [c.lift] * c.lift_depth)
        axes = [torch.linspace(lo, hi, c.grid) for lo, hi in zip(pde.low, pde.high)]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, pde.dim)
        self.kip = KIP(grid, c.lift, c.ls_min, c.ls_max)
        conv, kernel, pad = (nn.Conv1d, 3, 1) if pde.dim == 1 else (nn.Conv2d, 2, 0)
        if pde.dim == 2 and c.conv >= c.grid:
            raise ValueError(f"grid must exceed conv for 2D (kernel 2, no padding), got {c.grid}, {c.conv}")
        convs: list[nn.Module] = []
        channels = c.lift + pde.dim
        for _ in range(c.conv):
            convs += [conv(channels, c.filters, kernel, padding=pad), nn.SiLU()]
            channels = c.filters
        self.cnn = nn.Sequential(*convs)
        cells = c.grid if pde.dim == 1 else (c.grid - c.conv) ** 2
        self.dense = mlp([channels * cells, *c.gic_dense], last_activation=True)
        self.w_net = mlp([c.n_w] + [c.w_dense] * 3, last_activation=True)
        self.head = mlp([c.gic_dense[-1] + c.w_dense, *c.head, 2 * c.n_z])

    def forward(self, x: torch.Tensor, ut: torch.Tensor, w_n: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.kip(x, self.lift(ut[..., None] / self.u_scale), mask)              # (B, G^d, P)
        grid = self.kip.grid.to(h.dtype)[None].expand(h.shape[0], -1, -1)        # (B, G^d, d)
        feat = torch.cat([h, grid], -1).transpose(1, 2)                          # (B, P + d, G^d)
        if self.dim == 2:
            feat = feat.reshape(*feat.shape[:2], self.side, self.side)
        feat = self.cnn(feat).flatten(1)
        out = self.head(torch.cat([self.dense(feat), self.w_net(w_n)], -1))
        mean, raw = out.chunk(2, -1)
        return mean, self.var_floor + (1 - self.var_floor) * torch.sigmoid(raw)


@register("rgnp")
class RGNP(nn.Module):
    """Forward model, GICNet and ELBO of the module docstring.

    ``forward(x (B, N, d), z (B, n_z), w (B, n_w), noise (B, N), noise_lr (B, k))`` returns the
    per-sample ELBO terms (each (B,)): ``elbo``, ``physics``, ``inverse``, ``entropy`` (and the
    ``residual`` (B, N)); d is the problem's dimension (1 for ``poisson1d``, 2 = (x, t) for ``burgers``).
    """

    Config = RGNPConfig

    def __init__(self, config: RGNPConfig):
        super().__init__()
        c = self.config = config
        if c.pde not in PDES:
            raise ValueError(f"pde must be one of {', '.join(PDES)}, got {c.pde!r}")
        self.pde = PDES[c.pde]
        if c.covariance not in ("diag", "lr"):
            raise ValueError(f"covariance must be diag or lr, got {c.covariance!r}")
        if not 0 < c.var_floor < 1 or c.eps <= 0 or c.eps_min <= 0 or c.points < 2 or not c.out_scale > 0:
            raise ValueError("var_floor must lie in (0, 1), eps, eps_min and out_scale be positive and points >= 2")
        self.register_buffer("freqs", torch.logspace(math.log10(c.f_min), math.log10(c.f_max), c.fourier))
        k = c.rank if c.covariance == "lr" else 0
        self.net = mlp([2 * c.fourier * self.pde.dim + c.n_z + c.n_w] + [c.width] * c.depth + [2 + k])
        self.gicnet = GICNet(c)
        log_eps = torch.tensor(math.log(c.eps))
        if c.learn_eps:
            self.log_eps = nn.Parameter(log_eps)
        else:
            self.register_buffer("log_eps", log_eps)

    # ---------------------------------------------------------------- normalisation
    def z_box(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The prior box of z as tensors (n_z,) like ``like``."""
        c = self.config
        lo = torch.as_tensor(c.z_low, dtype=like.dtype, device=like.device).expand(c.n_z)
        return lo, torch.as_tensor(c.z_high, dtype=like.dtype, device=like.device).expand(c.n_z)

    def z_normalised(self, z: torch.Tensor) -> torch.Tensor:
        lo, hi = self.z_box(z)
        return 2 * (z - lo) / (hi - lo) - 1

    def w_normalised(self, w: torch.Tensor) -> torch.Tensor:
        c = self.config
        return 2 * (w - c.w_low) / (c.w_high - c.w_low) - 1

    def lift(self, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(b, out_scale·D) of u = b + out_scale·D ũ at x (B, N, d): ((B, N), (B, N))."""
        b, d = self.pde.lift(x, w)
        return b, self.config.out_scale * d

    @property
    def eps(self) -> torch.Tensor:
        """The physics noise scale ε, clamped to ≥ eps_min."""
        return torch.clamp(torch.exp(self.log_eps), min=self.config.eps_min)

    # ---------------------------------------------------------------- forward model
    def heads(self, x: torch.Tensor, z: torch.Tensor, w: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """μ (B, N), σ² (B, N) and C (B, N, k) (None for ``diag``) of ũ at x (B, N, d)."""
        c = self.config
        phase = 2 * math.pi * (x[..., None] * self.freqs.to(x.dtype)).flatten(-2)  # (B, N, d F)
        n = x.shape[1]
        inputs = torch.cat([torch.sin(phase), torch.cos(phase), self.z_normalised(z)[:, None].expand(-1, n, -1),
                            self.w_normalised(w)[:, None].expand(-1, n, -1)], -1)
        out = self.net(inputs)
        var = c.var_floor + (1 - c.var_floor) * torch.sigmoid(out[..., 1])
        return out[..., 0], var, (out[..., 2:] if c.covariance == "lr" else None)

    def distribution(self, x: torch.Tensor, z: torch.Tensor, w: torch.Tensor) -> dist.Distribution:
        """q_α(ũ(X) | z, w, X): batch (B,), event (N,); x (B, N, d)."""
        mu, var, cf = self.heads(x, z, w)
        return self._gaussian(mu, var, cf)

    @staticmethod
    def _gaussian(mu: torch.Tensor, var: torch.Tensor, cf: torch.Tensor | None) -> dist.Distribution:
        if cf is None:
            return dist.Independent(dist.Normal(mu, var.sqrt()), 1)
        return dist.LowRankMultivariateNormal(mu, cf, var)

    def field(self, x: torch.Tensor, z: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of u = b + Dũ at x (B, N, d): ((B, N), (B, N)), the
        marginal variance D²(σ² + ‖c‖²)."""
        mu, var, cf = self.heads(x, z, w)
        if cf is not None:
            var = var + (cf ** 2).sum(-1)
        b, d = self.lift(x, w)
        return b + d * mu, d.abs() * var.sqrt()

    def velocity(self, x: torch.Tensor, z: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the velocity (ψ_y, −ψ_x) of a stream-function problem
        (``cavity``) at x (B, N, 2): ((B, N, 2), (B, N, 2)), no graph kept.

        The training samples are ψ̃ = μ + σ ⊙ ε + Cη with ε, η constant in x, so a sample's
        velocity is ∇⊥(b + Dμ) + ∇⊥(Dσ) ε + Σ_j ∇⊥(Dc_j) η_j (∇⊥ = (∂_y, −∂_x)): its variance is
        (∇⊥(Dσ))² + Σ_j (∇⊥(Dc_j))² per component, the moments of the samples the ELBO scores."""
        if not self.pde.stream:
            raise ValueError(f"velocity is defined for stream-function problems, not {self.config.pde!r}")
        with torch.enable_grad():
            xs = x.detach().requires_grad_(True)
            mu, var, cf = self.heads(xs, z, w)
            b, d = self.lift(xs, w)
            parts = [b + d * mu, d * var.sqrt()] + ([d * cf[..., j] for j in range(cf.shape[-1])] if cf is not None
                                                   else [])
            grads = [torch.autograd.grad(p.sum(), xs, retain_graph=True)[0] for p in parts]
        rot = [torch.stack([g[..., 1], -g[..., 0]], -1) for g in grads]
        return rot[0].detach(), torch.sqrt(sum(r ** 2 for r in rot[1:])).detach()

    # ---------------------------------------------------------------- inverse model
    def posterior(self, x: torch.Tensor, ut: torch.Tensor, w: torch.Tensor, mask: torch.Tensor | None = None
                  ) -> dist.Distribution:
        """q_β(z | ũ, w, X) in the units of z: a diagonal Gaussian, batch (B,), event (n_z,)."""
        mean_n, var_n = self.gicnet(x, ut, self.w_normalised(w), mask)
        lo, hi = self.z_box(mean_n)
        half = (hi - lo) / 2
        return dist.Independent(dist.Normal(lo + half * (mean_n + 1), half * var_n.sqrt()), 1)

    def posterior_from_u(self, x: torch.Tensor, u: torch.Tensor, w: torch.Tensor, drop: float = 1e-3
                         ) -> dist.Distribution:
        """q_β(z | (u − b)/D, w, X) from observed u (B, N) at x (B, N, d): the points where
        |D| < ``drop`` (on the boundary, and at t = 0, (u − b)/D is singular) masked out."""
        b, d = self.lift(x, w)
        keep = d.abs() >= drop
        ut = torch.where(keep, (u - b) / torch.where(keep, d, torch.ones_like(d)), torch.zeros_like(u))
        return self.posterior(x, ut, w, keep.to(u.dtype))

    # ---------------------------------------------------------------- objective
    def forward(self, x: torch.Tensor, z: torch.Tensor, w: torch.Tensor, noise: torch.Tensor,
                noise_lr: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        cols = [x[..., k].detach().requires_grad_(True) for k in range(x.shape[-1])]  # d × (B, N)
        xs = torch.stack(cols, -1)
        mu, var, cf = self.heads(xs, z, w)
        ut = mu + var.sqrt() * noise
        if cf is not None:
            ut = ut + (cf @ noise_lr[..., None])[..., 0]
        b, d = self.lift(xs, w)
        r = self.pde.residual(cols, b + d * ut, z, w)
        physics = dist.Normal(torch.zeros_like(r), self.eps.to(r.dtype), validate_args=False).log_prob(r).sum(-1)
        entropy = -self._gaussian(mu, var, cf).log_prob(ut)
        inverse = self.posterior(xs, ut, w).log_prob(z)
        return {"elbo": physics + inverse + entropy, "physics": physics, "inverse": inverse, "entropy": entropy,
                "residual": r}

    def data_log_likelihood(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, w: torch.Tensor
                            ) -> torch.Tensor:
        """log N(y; b + Dμ_α, D²Σ_α + σ_y² I) of observations y (B, K) at x (B, K, d): (B,)."""
        mu, var, cf = self.heads(x, z, w)
        b, d = self.lift(x, w)
        noise = self.config.sigma_y ** 2
        if cf is None:
            return dist.Normal(b + d * mu, (d ** 2 * var + noise).sqrt()).log_prob(y).sum(-1)
        return dist.LowRankMultivariateNormal(b + d * mu, d[..., None] * cf, d ** 2 * var + noise).log_prob(y)


__all__ = ["Burgers1D", "Cavity", "GICNet", "KIP", "PDES", "Poisson1D", "RGNP", "RGNPConfig", "boundary_factor", "mlp"]
