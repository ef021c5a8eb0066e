"""Layers shared by the graph models: MLPs and an encode-process-decode
message-passing block.

The processor block follows MeshGraphNets (Pfaff et al., ICLR 2021), with the
first layer of the edge MLP factorised so that most of its work is done per
node rather than per edge.
"""
from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Sequential):
    r"""Multi-layer perceptron with SiLU activations and an optional output LayerNorm.

    .. math:: y = \mathrm{LN}(W_L \sigma(\cdots \sigma(W_1 x + b_1) \cdots) + b_L)

    Args:
        in_dim: input features.
        hidden: width of the hidden layers.
        out_dim: output features.
        n_layers: number of linear layers (>= 1).
        layer_norm: end with ``nn.LayerNorm(out_dim)``.

    Shapes:
        input (..., in_dim) -> output (..., out_dim).
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, n_layers: int = 2, layer_norm: bool = True):
        if n_layers < 1:
            raise ValueError("an MLP needs at least one layer")
        dims = [in_dim] + [hidden] * (n_layers - 1) + [out_dim]
        layers: list[nn.Module] = []
        for k in range(n_layers):
            layers.append(nn.Linear(dims[k], dims[k + 1]))
            if k < n_layers - 1:
                layers.append(nn.SiLU())
        if layer_norm:
            layers.append(nn.LayerNorm(out_dim))
        super().__init__(*layers)


class ProcessorBlock(nn.Module):
    r"""One MeshGraphNet processor step with a factorised edge MLP.

    Edge update (residual), for an edge j -> i with latent e_ij:

    .. math::
        z_{ij} &= W_1 h_i + W_2 h_j + W_3 e_{ij} + b \\
        e'_{ij} &= e_{ij} + \mathrm{LN}\big(\mathrm{MLP}_e^{\ge 2}(\sigma(z_{ij}))\big)

    which equals the first layer of an MLP on the concatenation
    [h_i, h_j, e_ij] with weight [W_1 W_2 W_3]; W_1 h and W_2 h are computed
    once per node (n x d x d flops) and gathered per edge, instead of
    2 E x d x d flops for the concatenated form (E ≈ 6 n on triangle meshes).

    Node update (residual, sum aggregation):

    .. math::
        h'_i = h_i + \mathrm{LN}\Big(\mathrm{MLP}_n\big([h_i, \textstyle\sum_{j \to i} e'_{ij}]\big)\Big)

    The gathers and the sum are plain ``index_select`` / ``index_add_``: PyG's
    ``MessagePassing.propagate`` computed the same, with a per-call Python cost that was
    40 % of a forward on the demo's 407-node mesh.

    Args:
        latent: width d of node and edge latents.
        mlp_layers: linear layers per MLP (>= 1).

    Shapes:
        h: (n, d), edge_index: (2, E) with messages from ``edge_index[0]``
        (j) to ``edge_index[1]`` (i), e: (E, d) -> (h', e') of shapes (n, d), (E, d).
    """

    def __init__(self, latent: int, mlp_layers: int = 2):
        super().__init__()
        self.node_proj = nn.Linear(latent, 2 * latent, bias=False)  # [W_1; W_2]
        self.edge_proj = nn.Linear(latent, latent)  # W_3, b
        rest: list[nn.Module] = [nn.SiLU()]
        if mlp_layers > 1:
            rest.append(MLP(latent, latent, latent, mlp_layers - 1, layer_norm=True))
        else:
            rest.append(nn.LayerNorm(latent))
        self.edge_rest = nn.Sequential(*rest)
        self.node_mlp = MLP(2 * latent, latent, latent, mlp_layers, layer_norm=True)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        src, dst = edge_index[0], edge_index[1]
        a, b = self.node_proj(h).chunk(2, dim=-1)  # W_1 h, W_2 h: once per node
        z = self.edge_proj(e)  # W_3 e + b
        z += a.index_select(0, dst)  # a Linear's backward does not need its output: in place is safe
        z += b.index_select(0, src)
        e_new = e + self.edge_rest(z)
        agg = e_new.new_zeros(h.shape).index_add_(0, dst, e_new)  # sum over j -> i
        h_new = h + self.node_mlp(torch.cat([h, agg], dim=-1))
        return h_new, e_new


__all__ = ["MLP", "ProcessorBlock"]
