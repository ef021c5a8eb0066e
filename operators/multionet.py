r"""MultiONet (Zang & Koutsourelakis 2025, arXiv 2502.06250) and DeepONet as its one-layer case.

A branch net B acts on the input β ∈ R^{d_β} and a trunk net T on the query
point x ∈ R^d, both with L hidden layers of equal width p:

    T⁰ = σ(W₀ᵗ x + c₀ᵗ),  Tᵏ = σ(W_kᵗ Tᵏ⁻¹ + c_kᵗ),   Bᵏ likewise from β,

and the output averages the branch–trunk inner products of the last l layers
with learned weights w_k and a bias b, all zero at the start:

    G(β)(x) = (1/l) Σ_{k=L−l}^{L−1} w_k ⟨Tᵏ(x), Bᵏ(β)⟩ + b.

With ``n_out > 1`` the inner products are taken per output channel with a final
linear map of width p → p·n_out on both nets' layers (one weight set per
channel). DeepONet is ``n_layers_sum = 1`` (the last layer's inner product).
A fresh model therefore outputs exactly 0. The activation is the reference's
σ(z) = tanh(sin(π(z + 1))) + z.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .registry import register


def sin_tanh(z: torch.Tensor) -> torch.Tensor:
    """σ(z) = tanh(sin(π(z + 1))) + z, elementwise."""
    return torch.tanh(torch.sin(math.pi * (z + 1.0))) + z


@dataclass
class MultiONetConfig:
    """Sizes of a MultiONet.

    Attributes:
        in_branch: d_β, the branch input size.
        in_trunk: d, the dimension of x.
        width: p, the hidden width of both nets.
        depth: L, hidden layers per net.
        n_layers_sum: l, how many of the last layers' inner products are averaged (1: DeepONet).
        n_out: output channels.
    """

    in_branch: int = 128
    in_trunk: int = 2
    width: int = 100
    depth: int = 5
    n_layers_sum: int = 5
    n_out: int = 1


@register("multionet_net")
class MultiONet(nn.Module):
    """G(β)(x): ``forward(beta (B, d_β), x (B, N, d) or (N, d)) -> (B, N, n_out)``."""

    Config = MultiONetConfig

    def __init__(self, config: MultiONetConfig):
        super().__init__()
        c = self.config = config
        if not 1 <= c.n_layers_sum <= c.depth:
            raise ValueError(f"n_layers_sum must be in 1..depth={c.depth}, got {c.n_layers_sum}")
        p = c.width
        self.trunk = nn.ModuleList([nn.Linear(c.in_trunk if k == 0 else p, p) for k in range(c.depth)])
        self.branch = nn.ModuleList([nn.Linear(c.in_branch if k == 0 else p, p) for k in range(c.depth)])
        self.weights = nn.Parameter(torch.zeros(c.n_layers_sum, c.n_out))
        self.bias = nn.Parameter(torch.zeros(c.n_out))
        if c.n_out > 1:
            self.trunk_out = nn.Linear(p, p * c.n_out, bias=False)
            self.branch_out = nn.Linear(p, p * c.n_out, bias=False)

    def _layers(self, nets: nn.ModuleList, z: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for layer in nets:
            z = sin_tanh(layer(z))
            out.append(z)
        return out[len(out) - self.config.n_layers_sum:]

    def forward(self, beta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(beta.shape[0], -1, -1)
        total = 0.0
        for k, (t, b) in enumerate(zip(self._layers(self.trunk, x), self._layers(self.branch, beta))):
            if c.n_out > 1:
                t = self.trunk_out(t).unflatten(-1, (c.n_out, c.width))          # (B, N, n_out, p)
                b = self.branch_out(b).unflatten(-1, (c.n_out, c.width))         # (B, n_out, p)
                inner = torch.einsum("bnop,bop->bno", t, b)
            else:
                inner = torch.einsum("bnp,bp->bn", t, b).unsqueeze(-1)
            total = total + self.weights[k] * inner
        return total / c.n_layers_sum + self.bias


def deeponet_forward(net: MultiONet, beta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The classical DeepONet w ⟨T^{L−1}(x), B^{L−1}(β)⟩ + b with ``net``'s own weights
    (written independently of :meth:`MultiONet.forward`, for the l = 1 check). n_out = 1."""
    t, b = x.unsqueeze(0).expand(beta.shape[0], -1, -1) if x.dim() == 2 else x, beta
    for lt, lb in zip(net.trunk, net.branch):
        t, b = sin_tanh(lt(t)), sin_tanh(lb(b))
    return (net.weights[-1, 0] * (t * b[:, None, :]).sum(-1) + net.bias[0]).unsqueeze(-1)


@dataclass
class MultiONetOperatorConfig:
    """The supervised operator a ↦ u: a grid of a (``grid``² values) through an FC branch.

    Attributes:
        grid: side of the input grid of a.
        width, depth, n_layers_sum: the MultiONet's sizes.
        a_mean, a_std: the standardisation of a (set from the training data).
        u_scale: the RMS of u on the training data (the output is u / u_scale).
    """

    grid: int = 29
    width: int = 100
    depth: int = 5
    n_layers_sum: int = 5
    a_mean: float = 0.0
    a_std: float = 1.0
    u_scale: float = 1.0


@register("multionet")
class MultiONetOperator(nn.Module):
    """Supervised MultiONet u(x) = u_scale · G((a − mean)/std)(x); ``forward(a (B, grid²), x (B, N, 2))``."""

    Config = MultiONetOperatorConfig

    def __init__(self, config: MultiONetOperatorConfig):
        super().__init__()
        self.config = c = config
        self.net = MultiONet(MultiONetConfig(c.grid ** 2, 2, c.width, c.depth, c.n_layers_sum, 1))

    def forward(self, a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        return c.u_scale * self.net((a - c.a_mean) / c.a_std, x)[..., 0]


__all__ = ["MultiONet", "MultiONetConfig", "MultiONetOperator", "MultiONetOperatorConfig", "deeponet_forward",
           "sin_tanh"]
