r"""DGNO (Zang & Koutsourelakis 2025, arXiv 2502.06250): label-free operator learning from weak residuals.

A latent β = tanh(E(a)) ∈ [−1, 1]^{d_β} encodes the input a (given on a G × G
vertex grid of [0, 1]²); with ``variational`` the encoder is a Gaussian q(z | a) =
N(μ(a), diag σ²(a)) of the pre-tanh latent z and β = tanh(z) (:meth:`DGNO.encode`,
:func:`gaussian_kl`). MultiONet decoders of (x, β) generate

* the coefficient a_ψ(x, β): the logit of a Bernoulli over the two phases
  {a_lo, a_hi} (``L_data`` = BCE(sigmoid(a_ψ), (a − a_lo)/(a_hi − a_lo))), or, for a
  ``continuous`` a, the standardised a itself, E[a | β] = a_mean + a_std a_ψ
  (``L_data`` = mean (a_ψ − (a − a_mean)/a_std)², the L² misfit);
* the solution u_θ(x, β) = m(x) ũ_θ(x, β), with the hard Dirichlet mollifier
  m = sin(πx) sin(πy) on the unit square or a distance function to a mesh's
  boundary (:func:`boundary_distance`): u = 0 on ∂Ω exactly;
* the flux s(x, β) ≈ a∇u (mixed form).

Darcy −∇·(a∇u) = f, weak form tested with Wendland CSRBFs φ_j(x) = φ((x − x_cʲ)/R),
centres x_cʲ resampled (Latin hypercube in [R, 1 − R]²) every batch; integrals
over the disc are plain means over the points of :func:`disc_points`:

* primal:  r_j = mean(a∇u·∇φ_j) − mean(fφ_j),   L_pde = Σ_b ‖r_b‖₂ / B + (top-k r_j²);
* mixed:   r_j = mean(s·∇φ_j) − mean(fφ_j),     L_pde = mean‖s − a∇u‖² + √n_c mean r_j².

Variational option (our reading of the paper's generative model, whose exact ELBO was not
read; the reference code is deterministic): a prior z ~ N(0, I), β = tanh(z) (so the prior
on β is the push-forward tanh#N(0, I) on (−1, 1)^{d_β}), the decoders' likelihoods p(a | β)
and the virtual observables ``r_j = 0`` as the data, and the amortised posterior q(z | a).
The loss is the weighted negative ELBO

    w_data L_data + w_pde L_pde + w_KL KL(q(z | a) ‖ N(0, I)),   β = tanh(μ + σ ε), ε ~ N(0, I),

with L_data, L_pde evaluated at one reparameterised draw per sample and
KL = Σ_i ½(μ_i² + σ_i² − 1 − ln σ_i²) (per sample, averaged over the batch). tanh is a
bijection applied to both distributions, so this is also the KL of the β distributions.
ln σ² is clamped to :data:`LOGVAR_RANGE`. At inference β = tanh(μ) (``forward``).

No labelled u enters the loss. The inverse problem (:func:`invert`) freezes the
decoders and fits β = tanh(MLP(1)) to sparse noisy observations of u.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .multionet import MultiONet, MultiONetConfig
from .registry import register


# ---------------------------------------------------------------------- test functions
def wendland(r: torch.Tensor, dim: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The Wendland C⁴ CSRBF with l = ⌊d/2⌋ + 3 and its (1/r)φ′ at radii r ∈ [0, 1):

    φ = (1 − r)^{l+2} ((l² + 4l + 3) r² + (3l + 6) r + 3) / 3,
    (1/r)φ′ = (1 − r)^{l+1} (−(l³ + 8l² + 19l + 12) r − (l² + 7l + 12)) / 3,

    zero for r ≥ 1. Returns (φ, (1/r)φ′), both shaped like r."""
    l = dim // 2 + 3
    one = torch.clamp(1.0 - r, min=0.0)
    phi = one ** (l + 2) * ((l * l + 4 * l + 3) * r ** 2 + (3 * l + 6) * r + 3) / 3
    dphi_r = one ** (l + 1) * (-(l ** 3 + 8 * l * l + 19 * l + 12) * r - (l * l + 7 * l + 12)) / 3
    return phi, dphi_r


def disc_points(n: int = 7) -> np.ndarray:
    """The points of a uniform n × n grid of [−1, 1]² strictly inside the unit disc (25 for n = 7,
    45 for n = 9): the quadrature of the test-function integrals (plain means). Returns (Q, 2)."""
    t = np.linspace(-1.0, 1.0, n)
    xi = np.stack(np.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    return xi[np.linalg.norm(xi, axis=1) < 1.0 - 1e-12]


def csrbf(xi: torch.Tensor, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """φ_j and ∇ₓφ_j = ∇_ξφ / R at the disc points ``xi`` (Q, 2): ((Q,), (Q, 2))."""
    r = torch.linalg.norm(xi, dim=-1)
    phi, dphi_r = wendland(r, xi.shape[-1])
    return phi, dphi_r[:, None] * xi / radius


def lhs_centres(rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
    """n Latin-hypercube points in [R, 1 − R]²: (n, 2)."""
    cols = [(rng.permutation(n) + rng.random(n)) / n for _ in range(2)]
    return radius + (1 - 2 * radius) * np.stack(cols, 1)


def boundary_distance(x: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Distance of points x (..., 2) to the nearest boundary segment (M, 2, 2) of a mesh:
    the hard-BC factor on general domains (0 on ∂Ω, differentiable a.e.). Returns (...)."""
    a, b = segments[:, 0], segments[:, 1]
    ab = b - a
    ap = x[..., None, :] - a
    t = torch.clamp((ap * ab).sum(-1) / (ab * ab).sum(-1), 0.0, 1.0)
    d2 = ((ap - t[..., None] * ab) ** 2).sum(-1)
    return torch.sqrt(d2.min(-1).values + 1e-30)


# ---------------------------------------------------------------------- model
#: clamp of the variational encoder's ln σ² (σ from e^{−5} to e: below the prior's 1, never degenerate)
LOGVAR_RANGE = (-10.0, 2.0)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag e^{ln σ²}) ‖ N(0, I)) = Σ_i ½(μ_i² + σ_i² − 1 − ln σ_i²), summed over the last
    axis and averaged over the batch: μ, ln σ² (B, d) -> ()."""
    return 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar).sum(-1).mean()


@dataclass
class DGNOConfig:
    """Sizes and loss settings of a DGNO on a ``grid``² input grid of [0, 1]².

    Attributes:
        grid: G, the side of the input grid.
        latent: d_β.
        encoder: hidden widths of the FC encoder.
        width, depth, n_layers_sum: the decoders' MultiONet sizes.
        coefficient: ``"two-phase"`` (Bernoulli decoder of a ∈ {a_low, a_high}) or ``"continuous"``
            (L² decoder of (a − a_mean)/a_std).
        a_low, a_high: the two phases.
        source: f.
        form: ``"mixed"`` (flux decoder, two-phase a) or ``"primal"``.
        radius: R of the test functions; quad: n of the n × n disc grid (7 or 9).
        centres: n_c per sample and batch.
        w_data, w_pde: the loss weights; top_k: the primal form's largest-residual term.
        bc: ``"mollifier"`` (unit square) or ``"distance"`` (``segments`` buffer set by the adapter).
        variational: a Gaussian encoder of the pre-tanh latent with the KL term (module docstring);
            ``False`` is the reference's deterministic β = tanh(E(a)).
        kl_weight: w_KL, the weight of the KL term (variational only).
    """

    grid: int = 29
    latent: int = 128
    encoder: tuple = (512, 256)
    width: int = 100
    depth: int = 5
    n_layers_sum: int = 5
    coefficient: str = "two-phase"
    a_low: float = 5.0
    a_high: float = 10.0
    source: float = 10.0
    form: str = "mixed"
    radius: float = 1e-4
    quad: int = 7
    centres: int = 100
    w_data: float = 1.0
    w_pde: float = 1.0
    top_k: int = 1000
    bc: str = "mollifier"
    a_mean: float = 7.5
    a_std: float = 2.5
    variational: bool = False
    kl_weight: float = 1e-3


@register("dgno")
class DGNO(nn.Module):
    """Encoder E and decoders a_ψ, u_θ, s of the module docstring.

    ``forward(a (B, G²))`` returns the deterministic β = tanh(μ) (B, d_β); :meth:`encode` gives
    (μ, ln σ² or ``None``); :meth:`u`, :meth:`a_logit`, :meth:`flux`
    take (β (B, d_β), x (B, N, 2)) and return (B, N) / (B, N) / (B, N, 2).
    """

    Config = DGNOConfig

    def __init__(self, config: DGNOConfig):
        super().__init__()
        c = self.config = config
        if c.form not in ("mixed", "primal") or c.bc not in ("mollifier", "distance"):
            raise ValueError(f"form must be mixed/primal and bc mollifier/distance, got {c.form!r}, {c.bc!r}")
        if c.coefficient not in ("two-phase", "continuous"):
            raise ValueError(f"coefficient must be two-phase or continuous, got {c.coefficient!r}")
        if not isinstance(c.variational, bool) or not c.kl_weight >= 0:
            raise ValueError(f"variational must be true/false and kl_weight >= 0, got {c.variational!r}, "
                             f"{c.kl_weight!r}")
        sizes = [c.grid ** 2, *c.encoder, c.latent]
        layers: list[nn.Module] = []
        for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers += [nn.Linear(m, n)] + ([nn.SiLU()] if i < len(sizes) - 2 else [])
        self.encoder_net = nn.Sequential(*layers)
        # ln σ² head on the last hidden features (the μ layer is encoder_net[-1], as in the deterministic model)
        self.logvar_head = nn.Linear(sizes[-2], c.latent) if c.variational else None
        def dec(n_out: int) -> MultiONet:
            return MultiONet(MultiONetConfig(c.latent, 2, c.width, c.depth, c.n_layers_sum, n_out))

        self.dec_a, self.dec_u = dec(1), dec(1)
        self.dec_s = dec(2) if c.form == "mixed" else None
        self.register_buffer("segments", torch.zeros(0, 2, 2))
        self.register_buffer("xi", torch.as_tensor(disc_points(c.quad), dtype=torch.float32))

    def encode(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """μ (B, d_β) of the pre-tanh latent and, with ``variational``, ln σ² (B, d_β) clamped to
        :data:`LOGVAR_RANGE` (else ``None``): a (B, G²)."""
        c = self.config
        h = self.encoder_net[:-1]((a - c.a_mean) / c.a_std)
        mu = self.encoder_net[-1](h)
        if self.logvar_head is None:
            return mu, None
        return mu, torch.clamp(self.logvar_head(h), *LOGVAR_RANGE)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.encode(a)[0])

    def mollifier(self, x: torch.Tensor) -> torch.Tensor:
        """m(x) (B, N): sin(πx) sin(πy), or the distance to ``segments``."""
        if self.config.bc == "distance":
            return boundary_distance(x, self.segments.to(x.dtype))
        # sin(πt) = sin(π min(t, 1 − t)): the same function, exactly 0 in floating point at t = 0 and t = 1
        folded = torch.minimum(x, 1.0 - x)
        return torch.sin(math.pi * folded[..., 0]) * torch.sin(math.pi * folded[..., 1])

    def u(self, beta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.mollifier(x) * self.dec_u(beta, x)[..., 0]

    def a_logit(self, beta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """a_ψ(x, β): the Bernoulli logit (two-phase) or the standardised a (continuous)."""
        return self.dec_a(beta, x)[..., 0]

    def a_mean_field(self, beta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """E[a | β](x) = a_lo + (a_hi − a_lo) sigmoid(a_ψ), or a_mean + a_std a_ψ (continuous)."""
        c = self.config
        if c.coefficient == "continuous":
            return c.a_mean + c.a_std * self.a_logit(beta, x)
        return c.a_low + (c.a_high - c.a_low) * torch.sigmoid(self.a_logit(beta, x))

    def flux(self, beta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.dec_s(beta, x)

    def grid_points(self) -> torch.Tensor:
        """The G² input-grid vertices of [0, 1]², x-major like ``a.reshape(G, G)``: (G², 2)."""
        t = torch.linspace(0, 1, self.config.grid)
        return torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2).to(self.xi)

    def quadrature(self, centres: torch.Tensor) -> torch.Tensor:
        """Points x_c + Rξ of every test function: centres (B, n_c, 2) -> (B, n_c·Q, 2)."""
        pts = centres[:, :, None, :] + self.config.radius * self.xi.to(centres.dtype)
        return pts.reshape(centres.shape[0], -1, 2)

    def pde_loss(self, beta: torch.Tensor, centres: torch.Tensor, a_q: torch.Tensor) -> torch.Tensor:
        """L_pde of the module docstring: β (B, d_β), centres (B, n_c, 2), a at the
        quadrature points (B, n_c·Q) (detached, from the element lookup; or the relaxed
        draws (S, B, n_c·Q) of the inverse problem, averaged over S)."""
        c = self.config
        nc = centres.shape[1]
        x = self.quadrature(centres).detach().requires_grad_(True)
        u = self.u(beta, x)
        (du,) = torch.autograd.grad(u.sum(), x, create_graph=True)
        draws = a_q if a_q.dim() == 3 else a_q[None]
        losses = []
        for a in draws:
            adu = a[..., None] * du                                          # (B, n_c·Q, 2)
            if c.form == "mixed":
                s = self.flux(beta, x)
                r = self.weak_residuals(s, nc)
                losses.append(((s - adu) ** 2).sum(-1).mean() + math.sqrt(nc) * (r ** 2).mean())
            else:
                r = self.weak_residuals(adu, nc)
                top = torch.topk((r ** 2).reshape(-1), min(c.top_k, r.numel())).values.sum()
                losses.append(torch.linalg.norm(r, dim=1).mean() + top)
        return torch.stack(losses).mean()

    def weak_residuals(self, flux: torch.Tensor, n_centres: int) -> torch.Tensor:
        """r_j = mean_q(s·∇φ_j) − mean_q(f φ_j) of every test function, the flux s (the mixed form's
        decoder, or a∇u in the primal form) given at the :meth:`quadrature` points, centre-major:
        flux (B, n_c·Q, 2) -> r (B, n_c). For the exact solution r_j = 0 up to the rule's error:
        ∫ s·∇φ_j = ∫ (−∇·s) φ_j = ∫ f φ_j for φ_j compactly supported in Ω (with s ∈ H(div), so
        also across an interface of a, where only the normal component of s is continuous)."""
        c = self.config
        phi, dphi = csrbf(self.xi.to(flux.dtype), c.radius)
        r = (flux.reshape(flux.shape[0], n_centres, phi.shape[0], 2) * dphi).sum(-1).mean(-1)
        return r - c.source * phi.mean()

    def data_loss(self, beta: torch.Tensor, a_grid: torch.Tensor) -> torch.Tensor:
        """BCE of sigmoid(a_ψ) at the grid points against (a − a_lo)/(a_hi − a_lo), or (continuous) the
        mean squared misfit of a_ψ and (a − a_mean)/a_std; a_grid (B, G²)."""
        c = self.config
        x = self.grid_points().to(beta.dtype)
        if c.coefficient == "continuous":
            return ((self.a_logit(beta, x) - (a_grid - c.a_mean) / c.a_std) ** 2).mean()
        target = ((a_grid - c.a_low) / (c.a_high - c.a_low)).clamp(0, 1)
        return nn.functional.binary_cross_entropy_with_logits(self.a_logit(beta, x), target)

    def loss(self, a_grid: torch.Tensor, centres: torch.Tensor, a_q: torch.Tensor,
             eps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """{"loss", "data", "pde"} of one batch (no labelled u), plus "kl" with ``variational``:
        then β = tanh(μ + σ ε) for the standard-normal draws ``eps`` (B, d_β) (the adapter's, from the
        trainer's rng; ``None``: ε = 0, β = tanh(μ)) and the loss adds w_KL KL(q(z | a) ‖ N(0, I))."""
        c = self.config
        mu, logvar = self.encode(a_grid)
        z = mu if logvar is None or eps is None else mu + torch.exp(0.5 * logvar) * eps
        beta = torch.tanh(z)
        data, pde = self.data_loss(beta, a_grid), self.pde_loss(beta, centres, a_q)
        out = {"loss": c.w_data * data + c.w_pde * pde, "data": data, "pde": pde}
        if logvar is not None:
            out["kl"] = gaussian_kl(mu, logvar)
            out["loss"] = out["loss"] + c.kl_weight * out["kl"]
        return out


# ---------------------------------------------------------------------- inverse problem
def noise_sigma(u: np.ndarray, snr_db: float) -> float:
    """σ = sqrt(mean(u²) / 10^{SNR/10})."""
    return float(np.sqrt(np.mean(np.asarray(u) ** 2) / 10 ** (snr_db / 10)))


def invert(model: DGNO, x_obs: np.ndarray, u_obs: np.ndarray, x_eval: np.ndarray, *, restarts: int = 4,
           iterations: int = 500, lr: float = 1e-2, misfit_weight: float = 25.0, draws: int = 25,
           temperature: float = 0.1, centres: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """MAP estimate of β from observations u_obs (K,) at x_obs (K, 2) with frozen decoders.

    β = tanh(MLP(1)) (MLP 1 → 64 → 64 → d_β), loss = ``misfit_weight`` ‖u_θ(x_obs, β) − u_obs‖/‖u_obs‖
    + L_pde with a drawn from p(a | β) by the logistic relaxation a = a_lo + (a_hi − a_lo)
    sigmoid((a_ψ + ln U − ln(1 − U)) / T), averaged over ``draws`` draws; Adam ``lr``,
    halved every 50 iterations. Each restart re-initialises the MLP.

    Returns:
        ``a`` (restarts, E) E[a | β] at x_eval (E, 2), ``p`` (restarts, E) P(a = a_hi | β),
        ``u`` (restarts, E), ``loss`` (restarts,).
    """
    c = model.config
    if c.coefficient != "two-phase":
        raise ValueError("the inverse problem draws a from the two-phase Bernoulli p(a | beta); this model "
                         "decodes a continuous a")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    dtype = model.xi.dtype
    xo = torch.as_tensor(np.array(x_obs, dtype=float), dtype=dtype)[None]
    uo = torch.as_tensor(np.array(u_obs, dtype=float), dtype=dtype)[None]
    xe = torch.as_tensor(np.array(x_eval, dtype=float), dtype=dtype)[None]
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    out = {"a": [], "p": [], "u": [], "loss": []}
    nc = centres or c.centres
    for _ in range(restarts):
        torch.manual_seed(int(rng.integers(2 ** 31)))
        mlp = nn.Sequential(nn.Linear(1, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(),
                            nn.Linear(64, c.latent)).to(dtype)
        opt = torch.optim.Adam(mlp.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.StepLR(opt, 50, 0.5)
        one = torch.ones(1, 1, dtype=dtype)
        for _ in range(iterations):
            beta = torch.tanh(mlp(one))
            misfit = torch.linalg.norm(model.u(beta, xo) - uo) / torch.linalg.norm(uo)
            cen = torch.as_tensor(lhs_centres(rng, nc, c.radius), dtype=dtype)[None]
            xq = model.quadrature(cen)
            logit = model.a_logit(beta, xq)
            uni = torch.rand((draws,) + logit.shape, generator=gen, dtype=dtype).clamp(1e-6, 1 - 1e-6)
            noise = torch.log(uni) - torch.log1p(-uni)
            a_draw = c.a_low + (c.a_high - c.a_low) * torch.sigmoid((logit + noise) / temperature)
            loss = misfit_weight * misfit + model.pde_loss(beta, cen, a_draw)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            beta = torch.tanh(mlp(one))
            out["a"].append(model.a_mean_field(beta, xe)[0].numpy())
            out["p"].append(torch.sigmoid(model.a_logit(beta, xe))[0].numpy())
            out["u"].append(model.u(beta, xe)[0].numpy())
            out["loss"].append(float(loss))
    return {k: np.asarray(v) for k, v in out.items()}


__all__ = ["DGNO", "DGNOConfig", "LOGVAR_RANGE", "boundary_distance", "csrbf", "disc_points", "gaussian_kl", "invert",
           "lhs_centres", "noise_sigma", "wendland"]
