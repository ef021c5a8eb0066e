"""MeshGraphNet: the encode-process-decode baseline (Pfaff et al., ICLR 2021).

.. math::
    h^0_i = \\mathrm{LN}(\\mathrm{MLP}_v(x_i)), \\qquad
    e^0_{ij} = \\mathrm{LN}(\\mathrm{MLP}_e(a_{ij})), \\\\
    (h^{l+1}, e^{l+1}) = \\mathrm{Block}_l(h^l, e^l), \\quad l = 0..L-1, \\qquad
    y_i = \\mathrm{MLP}_d(h^L_i)

with :class:`~graphfem.operators.layers.ProcessorBlock` as the block (edge MLP on
[h_i, h_j, e_ij] with its first layer factorised per node, sum aggregation,
node MLP, residuals, LayerNorm). The edge inputs a_ij are relative positions
and distances divided by the local mesh size h_i (as built by
:func:`graphfem.meshes.to_graph`), so the same weights apply across
resolutions. Nothing depends on node order: relabelling the nodes relabels
the output (checked by :func:`graphfem.operators.checks.assert_permutation_equivariant`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import MLP, ProcessorBlock
from .registry import register


@dataclass(frozen=True)
class MeshGraphNetConfig:
    """Hyper-parameters of :class:`MeshGraphNet`.

    Attributes:
        in_node: node input features F_v.
        in_edge: edge input features F_e (dim + 1 for ``[dx/h, |dx|/h]``).
        out: output features per node.
        latent: latent width d.
        layers: number L of processor blocks (message-passing steps).
        mlp_layers: linear layers per MLP.
    """

    in_node: int = 7
    in_edge: int = 3
    out: int = 1
    latent: int = 64
    layers: int = 10
    mlp_layers: int = 2


@register("meshgraphnet")
class MeshGraphNet(nn.Module):
    """The MeshGraphNet baseline (see the module docstring for the equations).

    Args:
        config: a :class:`MeshGraphNetConfig`.

    Shapes:
        x: (n, in_node), edge_index: (2, E), edge_attr: (E, in_edge) -> (n, out).
    """

    Config = MeshGraphNetConfig

    def __init__(self, config: MeshGraphNetConfig):
        super().__init__()
        self.config = config
        d, k = config.latent, config.mlp_layers
        self.node_encoder = MLP(config.in_node, d, d, k, layer_norm=True)
        self.edge_encoder = MLP(config.in_edge, d, d, k, layer_norm=True)
        self.blocks = nn.ModuleList(ProcessorBlock(d, k) for _ in range(config.layers))
        self.decoder = MLP(d, d, config.out, k, layer_norm=False)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        h = self.node_encoder(x)
        e = self.edge_encoder(edge_attr)
        for block in self.blocks:
            h, e = block(h, edge_index, e)
        return self.decoder(h)


__all__ = ["MeshGraphNet", "MeshGraphNetConfig"]
