r"""Multi-scale MeshGraphNet: message passing on a hierarchy of coarsened mesh
graphs, in the U-shaped layout of MultiScale MeshGraphNets (Fortunato et al., 2022)
and BSMS-GNN (Cao et al., ICML 2023), with a coarsening computed on the graph.

**Hierarchy** (:func:`coarse_hierarchy`, on the graph itself: no remeshing).
Level l + 1 keeps a maximal independent set V_{l+1} of the graph G_l = (V_l, A_l)
(:func:`independent_set`; l = 0 the mesh graph): no two kept nodes are
neighbours and every other node has a kept neighbour, the aggregation
coarsening of algebraic multigrid. With C = (A_l + I)[:, V_{l+1}] the closed
neighbourhoods (C_{xu} = 1 for u ∈ N[x] = {x} ∪ {y : A_l(x, y) = 1}), two kept
nodes are joined when their neighbourhoods touch,

.. math:: A_{l+1} = \mathrm{pattern}\big(C^\top (A_l + I)\, C\big) \setminus \mathrm{diag},

which keeps each connected component connected (a path of G_l maps to a path
of kept nodes). On triangle meshes a level has 4–5× fewer nodes at a bounded
degree (7–9), so one coarse hop spans 2–3 hops of the level below. The
bi-stride pooling of BSMS-GNN (keep the even-depth nodes of a breadth-first
search, join kept nodes two hops apart) halves the nodes only along the
search direction: on a 257 × 257 triangle grid its fifth level still has
259k edges on 2.3k nodes (mean degree 112), so it is not used. The set
follows Luby's rounds with priorities computed from the coordinates in the
unit bounding box alone: the hierarchy depends on geometry and connectivity,
never on node labels (the model stays permutation equivariant) or on the
unit of length. Transfers pair every node x of level l with the kept nodes
of N[x] (itself when kept, else one or more neighbours).

**Network.** Encoders as in :class:`~graphfem.operators.meshgraphnet.MeshGraphNet`
(one edge encoder per level). Going down, level l runs ``blocks``
:class:`~graphfem.operators.layers.ProcessorBlock` steps, then the kept nodes
receive

.. math::
    h^{l+1}_u = h^l_u + \mathrm{LN}\Big(\mathrm{MLP}\big([h^l_u,\ \tfrac{1}{|N_u|}
    \textstyle\sum_{x \in N[u]} \phi(W h^l_x + V a_{xu})]\big)\Big)

(:class:`Transfer`, mean pooling of messages with the relative position
a_xu = [x_x − x_u, |x_x − x_u|]/h_u); the coarsest level runs
``coarse_blocks`` steps; going up, each node of level l gathers the same way
from the kept nodes of N[x] (interpolation with relative-position features)
on top of its latent from the way down (a skip connection), then runs
``blocks`` more steps. The decoder reads the mesh nodes.

Shapes follow PyG: ``edge_index`` (2, E) with messages from row 0 to row 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Data

from .layers import MLP, ProcessorBlock
from .registry import register


# ---------------------------------------------------------------------------- hierarchy (numpy)
def _relative(pos: np.ndarray, send: np.ndarray, recv: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(E, dim + 1) [x_send − x_recv, |x_send − x_recv|] / h_recv."""
    rel = pos[send] - pos[recv]
    return np.concatenate([rel, np.linalg.norm(rel, axis=1, keepdims=True)], axis=1) / h[recv][:, None]


def _mesh_size(pos: np.ndarray, edges: np.ndarray, n: int) -> np.ndarray:
    """(n,) mean length of the edges into each node (1 for a node without edges)."""
    dist = np.linalg.norm(pos[edges[0]] - pos[edges[1]], axis=1)
    count = np.bincount(edges[1], minlength=n)
    h = np.bincount(edges[1], weights=dist, minlength=n) / np.maximum(count, 1)
    return np.where(h > 0, h, 1.0)


def _priorities(pos: np.ndarray) -> np.ndarray:
    """(n,) distinct integer priorities from the coordinates alone: a hash of the
    position in the unit bounding box (so a scaled or relabelled mesh gets the same
    order), ties broken by the lexicographic order of the coordinates."""
    lo, extent = pos.min(axis=0), np.ptp(pos, axis=0).max() if len(pos) else 1.0
    unit = (pos - lo) / (extent if extent > 0 else 1.0)
    weights = np.array([12.9898, 78.233, 37.719])[: pos.shape[1]]
    noise = np.modf(np.abs(np.sin(unit @ weights * 7.31)) * 43758.5453)[0]
    lexical = np.empty(len(pos), dtype=np.int64)
    lexical[np.lexsort(pos.T[::-1])] = np.arange(len(pos))
    rank = np.empty(len(pos), dtype=np.int64)
    rank[np.lexsort((lexical, noise))] = np.arange(len(pos))
    return rank


def independent_set(pos: np.ndarray, A) -> np.ndarray:
    """(n,) bool: a maximal independent set of the graph with symmetric adjacency
    ``A`` (n, n) (CSR, no diagonal; no two chosen nodes adjacent, every other node next to one),
    found by Luby's rounds with the coordinate priorities of :func:`_priorities`:
    an undecided node joins when its priority is below every undecided neighbour's.
    Each round is a segment minimum over the CSR rows (``np.minimum.reduceat``)."""
    n = A.shape[0]
    if A.nnz == 0:  # no edges: every node is its own neighbourhood
        return np.ones(n, dtype=bool)
    prio = _priorities(pos)
    starts, neighbours = A.indptr[:-1], A.indices
    nonempty = np.diff(A.indptr) > 0
    top = np.iinfo(np.int64).max
    chosen = np.zeros(n, dtype=bool)
    undecided = np.ones(n, dtype=bool)
    while undecided.any():
        lowest = np.full(n, top)
        values = np.where(undecided[neighbours], prio[neighbours], top)
        lowest[nonempty] = np.minimum.reduceat(values, starts[nonempty])
        new = undecided & (prio < lowest)
        chosen |= new
        undecided &= ~new
        touched = np.zeros(n, dtype=bool)
        touched[nonempty] = np.logical_or.reduceat(new[neighbours], starts[nonempty])
        undecided &= ~touched
    return chosen


def coarse_hierarchy(pos: np.ndarray, edge_index: np.ndarray, levels: int) -> list[dict[str, np.ndarray]]:
    """``levels`` coarsenings of the graph (pos (n, dim), edge_index (2, E)), as the
    module docstring defines them.

    Returns, for l = 1..levels, a dict of arrays:
        ``pos`` (n_l, dim); ``kept`` (n_l,) indices into level l − 1;
        ``edge_index`` (2, E_l) and ``edge_attr`` (E_l, dim + 1) of level l;
        ``down_index`` (2, D_l): [node x of level l − 1, node u of level l] for u ∈ N[x];
        ``down_attr`` (D_l, dim + 1) = [x_x − x_u, |·|] / h_u;
        ``up_attr`` (D_l, dim + 1) = [x_u − x_x, |·|] / h_x (h the levels' mean edge lengths).
    A level of single-node components coarsens to itself, so every graph has ``levels`` levels.
    """
    import scipy.sparse as sp

    pos = np.asarray(pos, dtype=float)
    edges = np.asarray(edge_index, dtype=np.int64)
    out = []
    for _ in range(levels):
        n = len(pos)
        h = _mesh_size(pos, edges, n)
        # the symmetric pattern without self loops: both directions in one COO build, repeats merged
        off = edges[0] != edges[1]
        rows, cols = np.concatenate([edges[0, off], edges[1, off]]), np.concatenate([edges[1, off], edges[0, off]])
        A = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
        A.sum_duplicates()
        A.data[:] = 1.0
        chosen = independent_set(pos, A)
        kept = np.flatnonzero(chosen)
        # C = (A + I)[:, kept] (n, n_c), u ∈ N[x]: the kept columns of each row and the kept diagonal
        x = np.repeat(np.arange(n), np.diff(A.indptr))
        near = chosen[A.indices]
        index = np.cumsum(chosen) - 1  # a kept node's column in C
        C = sp.csr_matrix((np.ones(int(near.sum()) + kept.size),
                           (np.concatenate([x[near], kept]), index[np.concatenate([A.indices[near], kept])])),
                          shape=(n, kept.size))
        C.sum_duplicates()  # sorts each row's columns
        coarse = (C.T @ (A @ C + C)).tocoo()  # kept pairs whose neighbourhoods touch
        off = coarse.row != coarse.col
        c_edges = np.stack([coarse.col[off], coarse.row[off]]).astype(np.int64)
        c_edges = c_edges[:, np.lexsort((c_edges[0], c_edges[1]))]  # sorted by receiver, as mesh_edges
        near = C.tocoo()
        down = np.stack([near.row, near.col]).astype(np.int64)
        c_pos = pos[kept]
        c_h = _mesh_size(c_pos, c_edges, len(kept))
        rel = pos[down[0]] - c_pos[down[1]]
        dist = np.linalg.norm(rel, axis=1, keepdims=True)
        out.append({"pos": c_pos, "kept": kept.astype(np.int64), "edge_index": c_edges,
                    "edge_attr": _relative(c_pos, c_edges[0], c_edges[1], c_h),
                    "down_index": down,
                    "down_attr": np.concatenate([rel, dist], axis=1) / c_h[down[1]][:, None],
                    "up_attr": np.concatenate([-rel, dist], axis=1) / h[down[0]][:, None]})
        pos, edges = c_pos, c_edges
    return out


class Level(NamedTuple):
    """One coarse level of a (batched) hierarchy, as tensors (see :func:`coarse_hierarchy`)."""

    num_nodes: int
    kept: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    down_index: torch.Tensor
    down_attr: torch.Tensor
    up_attr: torch.Tensor


class HierarchyData(Data):
    """A PyG ``Data`` that also carries coarse levels as attributes ``pos_l``,
    ``kept_l``, ``edge_index_l``, ``edge_attr_l``, ``down_index_l``, ``down_attr_l``,
    ``up_attr_l`` (l = 1..levels); ``Batch.from_data_list`` offsets each level's
    indices by that level's node counts, so a batch is one disconnected hierarchy."""

    def __inc__(self, key: str, value, *args, **kwargs):
        name, _, level = key.rpartition("_")
        if level.isdigit() and name in ("kept", "edge_index", "down_index"):
            l = int(level)
            fine = self.num_nodes if l == 1 else self[f"pos_{l - 1}"].size(0)
            coarse = self[f"pos_{l}"].size(0)
            return {"kept": fine, "edge_index": coarse}.get(name, torch.tensor([[fine], [coarse]]))
        return super().__inc__(key, value, *args, **kwargs)

    def __cat_dim__(self, key: str, value, *args, **kwargs):
        if "index" in key:
            return -1
        return super().__cat_dim__(key, value, *args, **kwargs)


def with_hierarchy(graph: Data, pos: np.ndarray, levels: int) -> HierarchyData:
    """``graph`` (x, edge_index, edge_attr, ...) with ``levels`` coarse levels built
    from the node positions ``pos`` (n, dim) and its edges."""
    data = HierarchyData(**{k: v for k, v in graph})
    for l, level in enumerate(coarse_hierarchy(pos, graph.edge_index.cpu().numpy(), levels), start=1):
        for key, value in level.items():
            dtype = torch.long if value.dtype.kind == "i" else torch.float32
            data[f"{key}_{l}"] = torch.as_tensor(value, dtype=dtype)
    return data


def levels_of(data: Data, levels: int, dtype: torch.dtype | None = None) -> list[Level]:
    """The :class:`Level` tuples of a (batched) :class:`HierarchyData`, features in ``dtype``."""
    out = []
    for l in range(1, levels + 1):
        cast = (lambda t: t) if dtype is None else (lambda t: t.to(dtype))
        out.append(Level(int(data[f"pos_{l}"].size(0)), data[f"kept_{l}"], data[f"edge_index_{l}"],
                         cast(data[f"edge_attr_{l}"]), data[f"down_index_{l}"], cast(data[f"down_attr_{l}"]),
                         cast(data[f"up_attr_{l}"])))
    return out


# ---------------------------------------------------------------------------- network
class Transfer(nn.Module):
    r"""Learned transfer between levels (down: pooling, up: interpolation).

    .. math::
        m_{xu} &= \mathrm{MLP}_m\big(\sigma(W h_x + V a_{xu} + b)\big), \qquad
        \bar m_u = \tfrac{1}{|\{x \to u\}|} \textstyle\sum_{x \to u} m_{xu}, \\
        h'_u &= s_u + \mathrm{LN}\big(\mathrm{MLP}_n([s_u, \bar m_u])\big)

    with s_u the receiver's skip latent (its own latent on the level it is
    pooled from, or its latent from the way down) and a_xu the relative
    position features.

    Shapes:
        h_src: (n_s, d), skip: (n_r, d), index: (2, T) [source, receiver],
        attr: (T, F_e) -> (n_r, d).
    """

    def __init__(self, latent: int, in_edge: int, mlp_layers: int = 2):
        super().__init__()
        self.node_proj = nn.Linear(latent, latent, bias=False)
        self.edge_proj = nn.Linear(in_edge, latent)
        rest: list[nn.Module] = [nn.SiLU()]
        if mlp_layers > 1:
            rest.append(MLP(latent, latent, latent, mlp_layers - 1, layer_norm=False))
        self.message = nn.Sequential(*rest)
        self.node_mlp = MLP(2 * latent, latent, latent, mlp_layers, layer_norm=True)

    def forward(self, h_src: torch.Tensor, skip: torch.Tensor, index: torch.Tensor,
                attr: torch.Tensor) -> torch.Tensor:
        m = self.message(self.node_proj(h_src)[index[0]] + self.edge_proj(attr))
        n = skip.size(0)
        total = m.new_zeros(n, m.size(1)).index_add_(0, index[1], m)
        count = torch.bincount(index[1], minlength=n).clamp_min(1).to(m.dtype)[:, None]
        return skip + self.node_mlp(torch.cat([skip, total / count], dim=-1))


@dataclass(frozen=True)
class MultiScaleMeshGraphNetConfig:
    """Hyper-parameters of :class:`MultiScaleMeshGraphNet`.

    Attributes:
        in_node: node input features F_v.
        in_edge: edge input features F_e (dim + 1).
        out: output features per node.
        latent: latent width d.
        levels: number K of coarse levels below the mesh graph.
        blocks: processor blocks on each level above the coarsest, on the way down and again on the way up.
        coarse_blocks: processor blocks on the coarsest level.
        mlp_layers: linear layers per MLP.
    """

    in_node: int = 7
    in_edge: int = 3
    out: int = 1
    latent: int = 64
    levels: int = 3
    blocks: int = 1
    coarse_blocks: int = 2
    mlp_layers: int = 2


@register("multiscale_meshgraphnet")
class MultiScaleMeshGraphNet(nn.Module):
    """Multi-scale MeshGraphNet on a coarsened-graph hierarchy (module docstring).

    Args:
        config: a :class:`MultiScaleMeshGraphNetConfig`.

    Shapes:
        x: (n, in_node), edge_index: (2, E), edge_attr: (E, in_edge),
        hierarchy: ``config.levels`` :class:`Level` tuples -> (n, out).
    """

    Config = MultiScaleMeshGraphNetConfig

    def __init__(self, config: MultiScaleMeshGraphNetConfig):
        super().__init__()
        if config.levels < 1:
            raise ValueError("a multi-scale MeshGraphNet needs at least one coarse level")
        self.config = config
        d, k, K = config.latent, config.mlp_layers, config.levels

        def stack(count: int) -> nn.ModuleList:
            return nn.ModuleList(ProcessorBlock(d, k) for _ in range(count))

        self.node_encoder = MLP(config.in_node, d, d, k, layer_norm=True)
        self.edge_encoders = nn.ModuleList(MLP(config.in_edge, d, d, k, layer_norm=True) for _ in range(K + 1))
        self.down = nn.ModuleList(stack(config.blocks) for _ in range(K))
        self.pool = nn.ModuleList(Transfer(d, config.in_edge, k) for _ in range(K))
        self.bottom = stack(config.coarse_blocks)
        self.unpool = nn.ModuleList(Transfer(d, config.in_edge, k) for _ in range(K))
        self.up = nn.ModuleList(stack(config.blocks) for _ in range(K))
        self.decoder = MLP(d, d, config.out, k, layer_norm=False)

    @property
    def hierarchy_levels(self) -> int:
        """How many coarse levels the input graph must carry."""
        return self.config.levels

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor,
                hierarchy: Sequence[Level]) -> torch.Tensor:
        K = self.config.levels
        if len(hierarchy) != K:
            raise ValueError(f"the model needs {K} coarse levels, the graph carries {len(hierarchy)}")
        h = self.node_encoder(x)
        graphs = [(edge_index, self.edge_encoders[0](edge_attr))]
        graphs += [(lv.edge_index, self.edge_encoders[l + 1](lv.edge_attr)) for l, lv in enumerate(hierarchy)]
        skips, edges = [], []
        for l in range(K):
            ei, e = graphs[l]
            for block in self.down[l]:
                h, e = block(h, ei, e)
            skips.append(h)
            edges.append(e)
            lv = hierarchy[l]
            h = self.pool[l](h, h[lv.kept], lv.down_index, lv.down_attr)
        ei, e = graphs[K]
        for block in self.bottom:
            h, e = block(h, ei, e)
        for l in reversed(range(K)):
            lv = hierarchy[l]
            h = self.unpool[l](h, skips[l], lv.down_index.flip(0), lv.up_attr)
            ei, e = graphs[l][0], edges[l]
            for block in self.up[l]:
                h, e = block(h, ei, e)
        return self.decoder(h)


__all__ = ["HierarchyData", "Level", "MultiScaleMeshGraphNet", "MultiScaleMeshGraphNetConfig", "Transfer",
           "coarse_hierarchy", "independent_set", "levels_of", "with_hierarchy"]
