"""The PhysicsNeMo weight map of ``graphfem bench physicsnemo``, against a second implementation.

PhysicsNeMo is not installed in CI, so the reference here is PhysicsNeMo's MeshGraphNet written out
from its layout in plain tensor operations: MLPs ``model.k`` of Linear, SiLU, Linear, SiLU, Linear
(+ LayerNorm), the edge MLP on the concatenation [e_ij, h_src, h_dst], the node MLP on [Σ_j e_ij, h_i],
residuals on both, and the decoder without a norm. (The map against the real PhysicsNeMo 2.2.2: max
|Δy| 6e-7 in float32, 1.8e-15 in float64; README, Benchmarks.)
"""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from graphfem.benchmarks.physicsnemo import physicsnemo_to_graphfem
from graphfem.cli import main
from graphfem.meshes.errors import InputError
from graphfem.operators.meshgraphnet import MeshGraphNet, MeshGraphNetConfig

D, BLOCKS, IN_NODE, IN_EDGE, OUT = 8, 3, 5, 3, 2


def _mlp_state(prefix: str, dims: list[int], norm: bool, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """PhysicsNeMo's names for an MLP of len(dims) - 1 Linear layers (indices 0, 2, 4, ...) and its LayerNorm."""
    state = {}
    for k, (i, o) in enumerate(zip(dims[:-1], dims[1:])):
        state[f"{prefix}.model.{2 * k}.weight"] = torch.randn(o, i, generator=gen) / i ** 0.5
        state[f"{prefix}.model.{2 * k}.bias"] = 0.1 * torch.randn(o, generator=gen)
    if norm:
        index = 2 * (len(dims) - 1) - 1
        state[f"{prefix}.model.{index}.weight"] = 1 + 0.1 * torch.randn(dims[-1], generator=gen)
        state[f"{prefix}.model.{index}.bias"] = 0.1 * torch.randn(dims[-1], generator=gen)
    return state


def _mlp(state: dict, prefix: str, x: torch.Tensor, layers: int, norm: bool) -> torch.Tensor:
    for k in range(layers):
        x = F.linear(x, state[f"{prefix}.model.{2 * k}.weight"], state[f"{prefix}.model.{2 * k}.bias"])
        if k < layers - 1:
            x = F.silu(x)
    if norm:
        index = 2 * layers - 1
        x = F.layer_norm(x, (x.shape[-1],), state[f"{prefix}.model.{index}.weight"],
                         state[f"{prefix}.model.{index}.bias"])
    return x


def _physicsnemo_state(gen: torch.Generator) -> dict[str, torch.Tensor]:
    state = {**_mlp_state("node_encoder", [IN_NODE, D, D, D], True, gen),
             **_mlp_state("edge_encoder", [IN_EDGE, D, D, D], True, gen),
             **_mlp_state("node_decoder", [D, D, D, OUT], False, gen)}
    for block in range(BLOCKS):
        state.update(_mlp_state(f"processor.processor_layers.{2 * block}.edge_mlp", [3 * D, D, D, D], True, gen))
        state.update(_mlp_state(f"processor.processor_layers.{2 * block + 1}.node_mlp", [2 * D, D, D, D], True, gen))
    return state


def _physicsnemo_forward(state: dict, x: torch.Tensor, edge_index: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    src, dst = edge_index
    h = _mlp(state, "node_encoder", x, 3, True)
    e = _mlp(state, "edge_encoder", a, 3, True)
    for block in range(BLOCKS):
        edge = f"processor.processor_layers.{2 * block}.edge_mlp"
        node = f"processor.processor_layers.{2 * block + 1}.node_mlp"
        e = e + _mlp(state, edge, torch.cat([e, h[src], h[dst]], dim=-1), 3, True)
        total = torch.zeros_like(h).index_add_(0, dst, e)
        h = h + _mlp(state, node, torch.cat([total, h], dim=-1), 3, True)
    return _mlp(state, "node_decoder", h, 3, False)


def test_physicsnemo_weights_give_physicsnemos_function_in_our_network():
    """On a random directed graph (30 nodes, 120 edges), our MeshGraphNet with the mapped weights
    equals the written-out PhysicsNeMo network to float64 round-off, and the map names every one of
    our parameters exactly once."""
    gen = torch.Generator().manual_seed(3)
    state = {k: v.double() for k, v in _physicsnemo_state(gen).items()}
    x = torch.randn(30, IN_NODE, generator=gen, dtype=torch.float64)
    edge_index = torch.randint(0, 30, (2, 120), generator=gen)
    a = torch.randn(120, IN_EDGE, generator=gen, dtype=torch.float64)
    ours = MeshGraphNet(MeshGraphNetConfig(in_node=IN_NODE, in_edge=IN_EDGE, out=OUT, latent=D, layers=BLOCKS,
                                           mlp_layers=3)).double()
    mapped = physicsnemo_to_graphfem(state)
    assert sorted(mapped) == sorted(ours.state_dict())
    ours.load_state_dict(mapped, strict=True)
    with torch.no_grad():
        expected = _physicsnemo_forward(state, x, edge_index, a)
        got = ours(x, edge_index, a)
    assert float((got - expected).abs().max()) < 1e-12 * float(expected.abs().max())
    swapped = dict(state)  # a map that forgot the [agg | h] column swap would not give the same function
    name = "processor.processor_layers.1.node_mlp.model.0.weight"
    swapped[name] = torch.cat([state[name][:, D:], state[name][:, :D]], dim=1)
    ours.load_state_dict(physicsnemo_to_graphfem(swapped), strict=True)
    with torch.no_grad():
        assert float((ours(x, edge_index, a) - expected).abs().max()) > 1e-3


def test_an_unknown_parameter_is_named():
    with pytest.raises(InputError, match="'processor.processor_layers.0.edge_mlp.lin_src.weight' has no counterpart"):
        physicsnemo_to_graphfem({"processor.processor_layers.0.edge_mlp.lin_src.weight": torch.zeros(2, 2)})


def test_bench_physicsnemo_bad_input_is_one_line(monkeypatch, capsys):
    """--cells out of range or malformed, and PhysicsNeMo missing: one line, non-zero exit."""
    monkeypatch.setitem(__import__("sys").modules, "physicsnemo", None)  # as on a machine without it
    assert main(["bench", "physicsnemo"]) == 1
    assert "PhysicsNeMo's MeshGraphNet does not import here" in capsys.readouterr().err
    assert main(["bench", "physicsnemo", "--cells", "1"]) == 1
    assert "--cells 1: cells per side must lie in 2..1024" in capsys.readouterr().err
    assert main(["bench", "physicsnemo", "--cells", "8,x"]) == 2
    assert main(["bench", "physicsnemo", "--repeats", "0"]) == 2
