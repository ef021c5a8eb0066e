r"""RGNP (Vadeboncoeur et al., ICML 2023): random-grid neural processes with a GICNet inverse model.

A physics-informed latent-variable model of a parametric PDE whose collocation grid
X = {x_i}ᵢ₌₁ᴺ ~ U(Ω)ᴺ is a random variable, drawn afresh for every sample and step.

**Forward model** q_α(ũ(X) | z, w, X) = N(μ_α, Σ_α), z the unknown and w the known
inputs (normalised to [−1, 1] by their prior boxes). The network is an MLP (SiLU) of the
Fourier features [sin 2πf_k x, cos 2πf_k x] (f_k log-spaced in [f_min, f_max], fixed) ⊕ z ⊕ w,
point by point, with outputs (μ, h, c) and

* ``diag``: Σ = diag σ²(x_i);  ``lr``: Σ = diag σ²(x_i) + CCᵀ, C_i = c(x_i) ∈ Rᵏ
  (:class:`torch.distributions.LowRankMultivariateNormal`);
* σ² = ℓ + (1 − ℓ) sigmoid(h), ℓ = ``var_floor`` (bounded variances);
* hard boundary conditions u = D(x) ũ with D(x) = cos(πx/2) on [−1, 1], evaluated as
  2 sin(π(1 − x)/4) sin(π(1 + x)/4) so that D(±1) = 0 exactly in floating point.

**Inverse model** (GICNet) q_β(z | ũ(X), w, X) = N(μ_β, diag σ²_β): a pointwise lift P(ũ_i / s) ∈ Rᴾ
(s = ``u_scale``),
one kernel-interpolation layer (:class:`KIP`) per channel onto a fixed grid {g_j} (a
Nadaraya–Watson smoother, invariant to the order and number of the points), the grid
coordinates appended, a Conv1d stack, dense layers, the known w through its own dense
layers, and a dense head to (μ_β, σ²_β) (bounded like σ²_α).

**ELBO** per sample, with one reparameterised ũ = μ_α + σ_α ⊙ ε + C η (ε ~ N(0, I_N),
η ~ N(0, I_k): the formula of ``LowRankMultivariateNormal.rsample``, with the noise drawn
by the caller so that a resumed run draws the same numbers):

    ELBO = Σ_i log N(r_i; 0, ε²) + log q_β(z | ũ, w, X) − log q_α(ũ | z, w, X),

r_i = r(x_i) the strong residual of u = Dũ (:func:`graphfem.physics.nonlinear_poisson.residual`,
autograd in x), ε fixed or learned and clamped to ≥ ``eps_min``. The −log q_α term (an
entropy estimate) keeps σ_α from collapsing. Optional data term (:meth:`RGNP.data_log_likelihood`):
log N(y; Dμ_α, D²Σ_α + σ_y² I) of noisy observations y at fixed points.
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
    """Sizes and settings of an RGNP on a 1D domain [x_low, x_high] = [−1, 1].

    Attributes:
        n_z, n_w: numbers of unknown and known inputs; z_low/z_high, w_low/w_high their prior boxes.
        fourier: number of Fourier frequencies (log-spaced over [f_min, f_max]).
        width, depth: the forward MLP (hidden layers).
        covariance: ``"diag"`` or ``"lr"`` (rank ``rank``); var_floor: ℓ of σ².
        points: N, random collocation points per sample and step.
        eps, learn_eps, eps_min: the physics noise scale ε (fixed, or learned from ``eps`` and clamped).
        lift, lift_depth: P channels of the GICNet lift and its dense layers.
        grid, ls_min, ls_max: the KIP grid size and initial lengthscale range.
        conv, filters: Conv1d layers (kernel 3) and their filters.
        gic_dense, w_dense, head: dense widths after the CNN, for w (3 layers), and of the head.
        sigma_y: the noise of the optional data likelihood.
        u_scale: ũ enters the GICNet lift as ũ / u_scale (a fixed input normalisation).
    """

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


class GICNet(nn.Module):
    """The grid-invariant convolutional inverse model q_β(z | ũ, w, X) (module docstring).

    ``forward(x (B, N, 1), ut (B, N), w_n (B, n_w), mask (B, N) or None)`` returns the
    normalised posterior mean and variance, ((B, n_z), (B, n_z)).
    """

    def __init__(self, c: RGNPConfig):
        super().__init__()
        self.var_floor = 1e-6
        self.u_scale = c.u_scale
        self.lift = mlp([1] + [c.lift] * c.lift_depth)
        self.kip = KIP(torch.linspace(-1.0, 1.0, c.grid)[:, None], c.lift, c.ls_min, c.ls_max)
        convs: list[nn.Module] = []
        channels = c.lift + 1
        for _ in range(c.conv):
            convs += [nn.Conv1d(channels, c.filters, 3, padding=1), nn.SiLU()]
            channels = c.filters
        self.cnn = nn.Sequential(*convs)
        self.dense = mlp([channels * c.grid, *c.gic_dense], last_activation=True)
        self.w_net = mlp([c.n_w] + [c.w_dense] * 3, last_activation=True)
        self.head = mlp([c.gic_dense[-1] + c.w_dense, *c.head, 2 * c.n_z])

    def forward(self, x: torch.Tensor, ut: torch.Tensor, w_n: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.kip(x, self.lift(ut[..., None] / self.u_scale), mask)                          # (B, G, P)
        grid = self.kip.grid.to(h.dtype)[None].expand(h.shape[0], -1, -1)        # (B, G, 1)
        feat = self.cnn(torch.cat([h, grid], -1).transpose(1, 2)).flatten(1)
        out = self.head(torch.cat([self.dense(feat), self.w_net(w_n)], -1))
        mean, raw = out.chunk(2, -1)
        return mean, self.var_floor + (1 - self.var_floor) * torch.sigmoid(raw)


@register("rgnp")
class RGNP(nn.Module):
    """Forward model, GICNet and ELBO of the module docstring.

    ``forward(x (B, N, 1), z (B, n_z), w (B, n_w), noise (B, N), noise_lr (B, k))`` returns the
    per-sample ELBO terms (each (B,)): ``elbo``, ``physics``, ``inverse``, ``entropy``.
    """

    Config = RGNPConfig

    def __init__(self, config: RGNPConfig):
        super().__init__()
        c = self.config = config
        if c.covariance not in ("diag", "lr"):
            raise ValueError(f"covariance must be diag or lr, got {c.covariance!r}")
        if not 0 < c.var_floor < 1 or c.eps <= 0 or c.eps_min <= 0 or c.points < 2:
            raise ValueError("var_floor must lie in (0, 1), eps and eps_min be positive and points >= 2")
        self.register_buffer("freqs", torch.logspace(math.log10(c.f_min), math.log10(c.f_max), c.fourier))
        k = c.rank if c.covariance == "lr" else 0
        self.net = mlp([2 * c.fourier + c.n_z + c.n_w] + [c.width] * c.depth + [2 + k])
        self.gicnet = GICNet(c)
        log_eps = torch.tensor(math.log(c.eps))
        if c.learn_eps:
            self.log_eps = nn.Parameter(log_eps)
        else:
            self.register_buffer("log_eps", log_eps)

    # ---------------------------------------------------------------- normalisation
    def z_normalised(self, z: torch.Tensor) -> torch.Tensor:
        c = self.config
        return 2 * (z - c.z_low) / (c.z_high - c.z_low) - 1

    def w_normalised(self, w: torch.Tensor) -> torch.Tensor:
        c = self.config
        return 2 * (w - c.w_low) / (c.w_high - c.w_low) - 1

    @property
    def eps(self) -> torch.Tensor:
        """The physics noise scale ε, clamped to ≥ eps_min."""
        return torch.clamp(torch.exp(self.log_eps), min=self.config.eps_min)

    # ---------------------------------------------------------------- forward model
    def heads(self, x: torch.Tensor, z: torch.Tensor, w: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """μ (B, N), σ² (B, N) and C (B, N, k) (None for ``diag``) of ũ at x (B, N, 1)."""
        c = self.config
        phase = 2 * math.pi * x * self.freqs.to(x.dtype)                           # (B, N, F)
        n = x.shape[1]
        inputs = torch.cat([torch.sin(phase), torch.cos(phase), self.z_normalised(z)[:, None].expand(-1, n, -1),
                            self.w_normalised(w)[:, None].expand(-1, n, -1)], -1)
        out = self.net(inputs)
        var = c.var_floor + (1 - c.var_floor) * torch.sigmoid(out[..., 1])
        return out[..., 0], var, (out[..., 2:] if c.covariance == "lr" else None)

    def distribution(self, x: torch.Tensor, z: torch.Tensor, w: torch.Tensor) -> dist.Distribution:
        """q_α(ũ(X) | z, w, X): batch (B,), event (N,); x (B, N, 1)."""
        mu, var, cf = self.heads(x, z, w)
        return self._gaussian(mu, var, cf)

    @staticmethod
    def _gaussian(mu: torch.Tensor, var: torch.Tensor, cf: torch.Tensor | None) -> dist.Distribution:
        if cf is None:
            return dist.Independent(dist.Normal(mu, var.sqrt()), 1)
        return dist.LowRankMultivariateNormal(mu, cf, var)

    def field(self, x: torch.Tensor, z: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of u = Dũ at x (B, N, 1): ((B, N), (B, N)), the marginal
        variance D²(σ² + ‖c‖²)."""
        mu, var, cf = self.heads(x, z, w)
        if cf is not None:
            var = var + (cf ** 2).sum(-1)
        d = boundary_factor(x[..., 0])
        return d * mu, d.abs() * var.sqrt()

    # ---------------------------------------------------------------- inverse model
    def posterior(self, x: torch.Tensor, ut: torch.Tensor, w: torch.Tensor, mask: torch.Tensor | None = None
                  ) -> dist.Distribution:
        """q_β(z | ũ, w, X) in the units of z: a diagonal Gaussian, batch (B,), event (n_z,)."""
        c = self.config
        mean_n, var_n = self.gicnet(x, ut, self.w_normalised(w), mask)
        half = (c.z_high - c.z_low) / 2
        return dist.Independent(dist.Normal(c.z_low + half * (mean_n + 1), half * var_n.sqrt()), 1)

    def posterior_from_u(self, x: torch.Tensor, u: torch.Tensor, w: torch.Tensor, drop: float = 1e-3
                         ) -> dist.Distribution:
        """q_β(z | u/D, w, X) from observed u (B, N) at x (B, N, 1): ũ = u/D, the points where
        D < ``drop`` (at the boundary, u/D is singular) masked out."""
        d = boundary_factor(x[..., 0])
        keep = d >= drop
        ut = torch.where(keep, u / torch.where(keep, d, torch.ones_like(d)), torch.zeros_like(u))
        return self.posterior(x, ut, w, keep.to(u.dtype))

    # ---------------------------------------------------------------- objective
    def forward(self, x: torch.Tensor, z: torch.Tensor, w: torch.Tensor, noise: torch.Tensor,
                noise_lr: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        from graphfem.physics.nonlinear_poisson import residual

        xs = x[..., 0].detach().requires_grad_(True)                                 # (B, N)
        mu, var, cf = self.heads(xs[..., None], z, w)
        ut = mu + var.sqrt() * noise
        if cf is not None:
            ut = ut + (cf @ noise_lr[..., None])[..., 0]
        r = residual(xs, boundary_factor(xs) * ut, z, w)
        physics = dist.Normal(torch.zeros_like(r), self.eps.to(r.dtype), validate_args=False).log_prob(r).sum(-1)
        entropy = -self._gaussian(mu, var, cf).log_prob(ut)
        inverse = self.posterior(xs[..., None], ut, w).log_prob(z)
        return {"elbo": physics + inverse + entropy, "physics": physics, "inverse": inverse, "entropy": entropy,
                "residual": r}

    def data_log_likelihood(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, w: torch.Tensor
                            ) -> torch.Tensor:
        """log N(y; Dμ_α, D²Σ_α + σ_y² I) of observations y (B, K) at x (B, K, 1): (B,)."""
        mu, var, cf = self.heads(x, z, w)
        d = boundary_factor(x[..., 0])
        noise = self.config.sigma_y ** 2
        if cf is None:
            return dist.Normal(d * mu, (d ** 2 * var + noise).sqrt()).log_prob(y).sum(-1)
        return dist.LowRankMultivariateNormal(d * mu, d[..., None] * cf, d ** 2 * var + noise).log_prob(y)


__all__ = ["GICNet", "KIP", "RGNP", "RGNPConfig", "boundary_factor", "mlp"]
