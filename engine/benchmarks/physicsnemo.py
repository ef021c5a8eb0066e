"""``graphfem bench physicsnemo``: our MeshGraphNet against NVIDIA PhysicsNeMo's, the same network on
the same graphs, in one run.

PhysicsNeMo's ``MeshGraphNet`` at its defaults (15 processor blocks, width 128, MLPs of 2 hidden
layers, i.e. 3 linear layers, sum aggregation, LayerNorm, the concatenated edge MLP) with
``mlp_activation_fn="silu"`` is the function of our ``MeshGraphNet(latent=128, layers=15,
mlp_layers=3)`` (SiLU only). :func:`physicsnemo_to_graphfem` maps its parameters onto ours; the
benchmark loads them, checks that both give the same output, then times both, interleaved, on
graphs of :func:`graphfem.families.meshgraphnet.graph`: inference and one training step
(zero_grad, forward, MSE, backward, Adam). PhysicsNeMo's literal default (ReLU) is timed beside it.

PhysicsNeMo is not a dependency: ``pip install nvidia-physicsnemo torch_scatter`` in the
environment that runs the benchmark.
"""
from __future__ import annotations

import re
import time
from typing import Callable, Mapping, Sequence

from graphfem.meshes.errors import InputError

#: PhysicsNeMo's processor parameters: layer 2l is block l's edge MLP, layer 2l + 1 its node MLP
_PROCESSOR = re.compile(r"processor\.processor_layers\.(\d+)\.(edge_mlp|node_mlp)\.model\.(\d+)\.(weight|bias)$")
_PREFIXES = {"node_encoder.model.": "node_encoder.", "edge_encoder.model.": "edge_encoder.",
             "node_decoder.model.": "decoder."}


def physicsnemo_to_graphfem(state: Mapping[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
    """Our ``MeshGraphNet`` state dict from a PhysicsNeMo ``MeshGraphNet`` state dict (or from any
    dict of tensors named alike, e.g. its gradients).

    The encoders, the decoder and the later layers of every MLP keep their Sequential indices. Two
    first layers are laid out differently:

    - the edge MLP's first weight W (d, 3d) acts on [e_ij, h_src, h_dst]; ours is factorised as
      ``edge_proj`` (W[:, :d] and the bias, on e) and ``node_proj`` = [W[:, 2d:]; W[:, d:2d]]
      (d → 2d, no bias, once per node: the dst part first, then the src part);
    - the node MLP's first weight acts on [Σ e, h]; ours on [h, Σ e], so its two column blocks swap.

    Raises:
        InputError: a parameter with no counterpart (e.g. of ``do_concat_trick=True``).
    """
    import torch

    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        prefix = next((p for p in _PREFIXES if name.startswith(p)), None)
        if prefix is not None:
            out[_PREFIXES[prefix] + name[len(prefix):]] = tensor
            continue
        match = _PROCESSOR.match(name)
        if match is None:
            raise InputError(f"PhysicsNeMo parameter {name!r} has no counterpart in graphfem's MeshGraphNet")
        layer, mlp, index, kind = int(match[1]), match[2], int(match[3]), match[4]
        block = f"blocks.{layer // 2}."
        if mlp == "edge_mlp" and index == 0:
            if kind == "bias":
                out[block + "edge_proj.bias"] = tensor
            else:
                d = tensor.shape[1] // 3
                out[block + "edge_proj.weight"] = tensor[:, :d].clone()
                out[block + "node_proj.weight"] = torch.cat([tensor[:, 2 * d:], tensor[:, d:2 * d]], dim=0)
        elif mlp == "edge_mlp":  # ours: Sequential(SiLU, MLP(rest)); theirs: Linear, SiLU, rest...
            out[block + f"edge_rest.1.{index - 2}.{kind}"] = tensor
        elif index == 0 and kind == "weight":
            d = tensor.shape[1] // 2
            out[block + "node_mlp.0.weight"] = torch.cat([tensor[:, d:], tensor[:, :d]], dim=1)
        else:
            out[block + f"node_mlp.{index}.{kind}"] = tensor
    return out


def _physicsnemo_class():
    """PhysicsNeMo's MeshGraphNet class, or a one-line error saying why it does not import."""
    try:
        from physicsnemo.models.meshgraphnet import MeshGraphNet
    except Exception as exc:  # any failure of a third-party import stack is the same one line
        raise InputError(f"PhysicsNeMo's MeshGraphNet does not import here ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:160]}); install it with "
                         "pip install nvidia-physicsnemo torch_scatter") from None
    return MeshGraphNet


def _interleaved(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """The fastest of ``repeats`` calls of each, after one warm-up each, in rounds whose order
    alternates, so that every model sees the same machine load."""
    for call in calls.values():
        call()
    best = {name: float("inf") for name in calls}
    names = list(calls)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            calls[name]()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _training_step(model, forward: Callable[[], "torch.Tensor"], nodes: int) -> Callable[[], None]:
    import torch

    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    target = torch.randn(nodes, 1, generator=torch.Generator().manual_seed(1))

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(forward(), target).backward()
        optimiser.step()

    return step


def run(cells: Sequence[int] = (64, 128), repeats: int = 3) -> str:
    """The comparison table on unit squares of ``cells`` × ``cells`` P1 cells per side (one CPU thread,
    float32); times are the fastest of ``repeats`` warm calls; ratio = PhysicsNeMo / ours."""
    import numpy as np
    import torch
    from torch_geometric.data import Data

    from graphfem.families.meshgraphnet import graph
    from graphfem.meshes import Mesh
    from graphfem.operators.meshgraphnet import MeshGraphNet, MeshGraphNetConfig

    from . import machine

    if any(c < 2 or c > 1024 for c in cells):
        raise InputError(f"--cells {','.join(map(str, cells))}: cells per side must lie in 2..1024")
    theirs_class = _physicsnemo_class()
    import physicsnemo

    torch.set_num_threads(1)
    columns = "".join(f"{c:>10}" for c in ("ours s", "PN s", "PN/ours", "PN-ReLU s", "ReLU/ours"))
    lines = [f"graphfem bench physicsnemo: our MeshGraphNet vs PhysicsNeMo {physicsnemo.__version__}'s, 15 blocks, "
             f"width 128, 3 linear layers per MLP, float32, on cpu ({machine()})",
             "the same network: PhysicsNeMo's defaults with SiLU (PN), its weights loaded into ours; times: the "
             f"fastest of {repeats} warm calls, the models interleaved; train step: zero_grad, forward, MSE, "
             "backward, Adam",
             f"{'':>26}{'inference':<50}train step",
             f"{'nodes':>8}{'edges':>8}{'max|dy|':>10}{columns}{columns}"]
    for n in cells:
        mesh = Mesh.unit_square(int(n))
        g = graph(mesh, np.random.default_rng(0).normal(size=(mesh.n_points, 7)))
        topology = Data(edge_index=g.edge_index, num_nodes=mesh.n_points)
        torch.manual_seed(0)
        theirs = theirs_class(7, g.edge_attr.shape[1], 1, mlp_activation_fn="silu")
        relu = theirs_class(7, g.edge_attr.shape[1], 1)  # PhysicsNeMo's literal default
        ours = MeshGraphNet(MeshGraphNetConfig(in_node=7, in_edge=g.edge_attr.shape[1], out=1, latent=128,
                                               layers=15, mlp_layers=3))
        ours.load_state_dict(physicsnemo_to_graphfem(theirs.state_dict()), strict=True)
        forwards = {"ours": lambda: ours(g.x, g.edge_index, g.edge_attr),
                    "theirs": lambda: theirs(g.x, g.edge_attr, topology),
                    "relu": lambda: relu(g.x, g.edge_attr, topology)}
        with torch.no_grad():
            reference = forwards["theirs"]()
            difference = float((forwards["ours"]() - reference).abs().max())
            if not difference <= 1e-4 * float(reference.abs().max()):
                raise InputError(f"PhysicsNeMo {physicsnemo.__version__}'s MeshGraphNet is no longer the network "
                                 f"the weight map assumes (outputs differ by {difference:.1e})")
            infer = _interleaved(forwards, repeats)
        train = _interleaved({k: _training_step(m, forwards[k], mesh.n_points)
                              for k, m in (("ours", ours), ("theirs", theirs), ("relu", relu))}, repeats)
        lines.append(f"{mesh.n_points:>8}{g.edge_index.shape[1]:>8}{difference:>10.1e}"
                     + "".join(f"{t['ours']:>10.3f}{t['theirs']:>10.3f}{t['theirs'] / t['ours']:>10.2f}"
                               f"{t['relu']:>10.3f}{t['relu'] / t['ours']:>10.2f}" for t in (infer, train)))
    lines.append("PN/ours > 1: ours faster; PN-ReLU: PhysicsNeMo's literal default activation (not the same "
                 "function, timed beside it)")
    return "\n".join(lines)


__all__ = ["physicsnemo_to_graphfem", "run"]
