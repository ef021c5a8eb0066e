r"""SPON: structure-preserving operator networks on finite-element spaces
(Bouziani & Boullé, "Structure-Preserving Operator Learning", arXiv 2410.01065),
with the multigrid variant SPON-MG.

The operator is the composition

.. math:: S_\theta = D \circ P_\theta \circ E : U \to V_h,

of which only the processor :math:`P_\theta` is learned:

* **Encoder** E: the input function a is mapped to the coefficients of an FE
  function of U_h, by L² projection :math:`E(a) = M_U^{-1} b`,
  :math:`b_i = \int a \varphi_i\,dx` (:func:`l2_projection`, the default; right
  for rough inputs such as piecewise-constant κ) or by nodal interpolation
  :math:`E(a)_i = a(x_i)` (:func:`interpolation`, for smooth inputs).
* **Processor** P_θ: residual message passing
  (:class:`~graphfem.operators.layers.ProcessorBlock`) on the *DOF graph* of
  the space (:func:`dof_graph`): one node per scalar DOF location, carrying
  all components of a vector space; edges follow the sparsity pattern of
  the FE mass matrix (for P1: the mesh edges; for P2: every pair of DOFs of
  a common cell); edge attributes :math:`[x_j - x_i, |x_j - x_i|] / h_i`
  with h_i the mean size of the cells around DOF i, so that the same
  weights apply on a refined mesh.
* **Decoder** D: the predicted coefficients c (times a per-sample scale s)
  define :math:`u_h = \sum_j c_j \psi_j \in V_h`; on every Dirichlet DOF the
  prescribed value is written over the prediction, :math:`c_j := g(x_j)`
  (:func:`decode`), so the Dirichlet condition holds *exactly* (bitwise) for
  nodal Lagrange DOFs. Neumann and Robin conditions are *not* enforced.
* **Loss**: the relative error in the norm of V_h,
  :math:`\sqrt{(c - c^*)^\top N (c - c^*) / c^{*\top} N c^*}` with N = M
  (L²) or N = M + K (H¹), never a Euclidean norm of coefficient vectors
  (:func:`fe_relative_error`).

**SPON-MG** works on nested spaces :math:`V_0 \subset \dots \subset V_L` from
uniform refinement (:func:`hierarchy`). Prolongation is the exact evaluation
of the coarse basis at the fine DOFs, :math:`P_{ij} = \psi^c_j(x^f_i)`
(:func:`prolongation`; it reproduces every coarse function on the fine mesh),
restriction the row-normalised transpose
:math:`R = \mathrm{diag}(P^\top 1)^{-1} P^\top` or the L² adjoint
:math:`R = M_c^{-1} P^\top M_f` (:func:`restriction`; both map constants to
constants). One V-cycle replaces the stack of blocks:

.. math::
    h \leftarrow \mathrm{Pre}_\ell(h), \quad
    h_c = R h + W x_c, \quad h_c \leftarrow \mathrm{Cycle}_{\ell+1}(h_c), \quad
    h \leftarrow \mathrm{Post}_\ell(h + P h_c),

with most blocks on the coarsest level, where one hop spans 2^L fine hops.

Shapes follow PyG: node features x (n, F), ``edge_index`` (2, E) with
messages from ``edge_index[0]`` to ``edge_index[1]``, ``edge_attr`` (E, dim + 1).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from graphfem.meshes import FESpace, Mesh
from graphfem.meshes.errors import InputError

from .layers import MLP, ProcessorBlock
from .registry import register

#: geometry features of every DOF node, after the input channels
GEOMETRY_FEATURES = ("x", "y", "boundary", "vertex_dof", "edge_dof")

_MASS_LU: "weakref.WeakKeyDictionary[FESpace, object]" = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------------------- encoder
def _scalar_mass_lu(space: FESpace):
    """LU factors of the scalar mass matrix of ``space`` (cached per space)."""
    if space not in _MASS_LU:
        from skfem import BilinearForm

        M = BilinearForm(lambda u, v, w: u * v).assemble(space.scalar_basis).tocsc()
        _MASS_LU[space] = sp.linalg.splu(M)
    return _MASS_LU[space]


def quadrature_points(space: FESpace) -> np.ndarray:
    """(dim, n_cells, n_qp) global coordinates of the quadrature points."""
    return np.asarray(space.scalar_basis.global_coordinates().value)


def l2_projection(space: FESpace, a) -> np.ndarray:
    r"""L² projection onto the scalar space of ``space``: c = M⁻¹ b, b_i = ∫ a φ_i dx.

    Args:
        space: the input space U_h (its scalar basis is used).
        a: a callable a(x) with x (dim, n_cells, n_qp) returning (n_cells, n_qp)
            or (c, n_cells, n_qp) values; or cell values (n_cells,) / (n_cells, c).

    Returns:
        (n_scalar_dofs,) or (n_scalar_dofs, c) coefficients.
    """
    from skfem import LinearForm

    basis = space.scalar_basis
    m = space.mesh.n_cells
    nq = basis.X.shape[1]
    if callable(a):
        values = np.asarray(a(quadrature_points(space)), dtype=float)
    else:
        cells = np.asarray(a, dtype=float)
        if cells.shape[0] != m:
            raise InputError(f"cell values have {cells.shape[0]} rows, the mesh {m} cells", space.mesh.source)
        values = np.repeat(cells.T[..., None], nq, axis=-1) if cells.ndim == 2 else np.repeat(cells[:, None], nq, 1)
    squeeze = values.ndim == 2
    values = values[None] if squeeze else values
    if values.shape[1:] != (m, nq):
        raise InputError(f"input values have shape {values.shape}, expected (c, {m}, {nq})", space.mesh.source)
    load = LinearForm(lambda v, w: w["a"] * v)
    lu = _scalar_mass_lu(space)
    out = np.stack([lu.solve(load.assemble(basis, a=comp)) for comp in values], axis=1)
    return out[:, 0] if squeeze else out


def interpolation(space: FESpace, a: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Nodal interpolation: a evaluated at the scalar DOF locations (dim, n) ->
    (n,) or (n, c) for a callable returning (c, n)."""
    x = scalar_dof_coordinates(space)
    values = np.asarray(a(x.T), dtype=float)
    return values if values.ndim == 1 else values.T


def scalar_dof_coordinates(space: FESpace) -> np.ndarray:
    """(n_scalar_dofs, dim) location of each scalar DOF."""
    return np.asarray(space.scalar_basis.doflocs).T


# ---------------------------------------------------------------------------- graph
@dataclass
class DOFGraph:
    """The graph a SPON processor runs on, for one FE space.

    Attributes:
        edge_index: (2, E) int64, the off-diagonal sparsity of the scalar mass matrix.
        edge_attr: (E, dim + 1) ``[x_j − x_i, |x_j − x_i|] / h_i`` for an edge j -> i.
        geometry: (n, 5) node features :data:`GEOMETRY_FEATURES`: coordinates
            scaled to the unit box, boundary flag, vertex-DOF and edge-DOF flags.
        h: (n,) local mesh size at each DOF (mean longest edge of its cells).
    """

    edge_index: np.ndarray
    edge_attr: np.ndarray
    geometry: np.ndarray
    h: np.ndarray

    @property
    def n_nodes(self) -> int:
        return int(self.geometry.shape[0])


def dof_graph(space: FESpace) -> DOFGraph:
    """The DOF graph of ``space`` (see :class:`DOFGraph`); 2D meshes."""
    basis = space.scalar_basis
    if space.mesh.dim != 2:
        raise InputError(f"SPON is implemented for 2D meshes, got {space.mesh.dim}D", space.mesh.source)
    n = basis.N
    dofs = basis.element_dofs  # (n_local, n_cells)
    k = dofs.shape[0]
    rows = np.repeat(dofs, k, axis=0).ravel()
    cols = np.tile(dofs, (k, 1)).ravel()
    pattern = sp.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n)).tocsr()
    pattern.setdiag(0)
    pattern.eliminate_zeros()
    coo = pattern.tocoo()
    src, dst = coo.col.astype(np.int64), coo.row.astype(np.int64)  # message j = col -> i = row
    x = scalar_dof_coordinates(space)
    sizes = space.mesh.cell_sizes()
    count = np.bincount(dofs.ravel(), minlength=n)
    h = np.bincount(dofs.ravel(), weights=np.tile(sizes, k), minlength=n) / np.maximum(count, 1)
    rel = (x[src] - x[dst]) / h[dst][:, None]
    edge_attr = np.concatenate([rel, np.linalg.norm(rel, axis=1, keepdims=True)], axis=1)
    lo, L = x.min(axis=0), float(np.ptp(x, axis=0).max())
    boundary = np.zeros(n)
    boundary[np.unique(basis.get_dofs().flatten())] = 1.0
    vertex = np.zeros(n)
    vertex[np.asarray(basis.nodal_dofs).ravel()] = 1.0
    geometry = np.concatenate([(x - lo) / L, boundary[:, None], vertex[:, None], 1.0 - vertex[:, None]], axis=1)
    return DOFGraph(np.stack([src, dst]), edge_attr, geometry, h)


# ---------------------------------------------------------------------------- transfer
def prolongation(coarse: FESpace, fine: FESpace) -> sp.csr_matrix:
    """P (n_f, n_c) on scalar DOFs: P_ij = ψ^c_j(x^f_i), the coarse basis probed
    at the fine DOF locations. For nested Lagrange spaces (the fine mesh a
    refinement of the coarse one, same order) P u_c is the same function as u_c."""
    scalar = coarse if not coarse.vector else FESpace(coarse.mesh, coarse.order)
    P = scalar.probe(scalar_dof_coordinates(fine)).tocsr()
    P.data[np.abs(P.data) < 1e-14] = 0.0  # round-off of basis functions that vanish at a DOF
    P.eliminate_zeros()
    return P


def restriction(P: sp.csr_matrix, kind: str = "transpose", coarse: FESpace | None = None,
                fine: FESpace | None = None) -> sp.csr_matrix:
    """R (n_c, n_f) from the prolongation P (n_f, n_c).

    * ``"transpose"``: R = diag(Pᵀ1)⁻¹ Pᵀ, sparse; R 1 = 1.
    * ``"l2"``: R = M_c⁻¹ Pᵀ M_f, the L² adjoint of P (u_c = R u_f is the L²
      projection of u_f onto V_c); dense rows, for small coarse spaces. R 1 = 1
      because M_c = Pᵀ M_f P for nested spaces.
    """
    PT = P.T.tocsr()
    if kind == "transpose":
        colsum = np.asarray(PT.sum(axis=1)).ravel()
        if np.any(colsum <= 0):
            raise InputError("a coarse basis function sums to a non-positive value over the fine DOFs")
        return (sp.diags(1.0 / colsum) @ PT).tocsr()
    if kind == "l2":
        if coarse is None or fine is None:
            raise InputError("the L2-adjoint restriction needs the coarse and fine spaces")
        Mc = _scalar_mass(coarse).tocsc()
        Mf = _scalar_mass(fine)
        R = sp.linalg.splu(Mc).solve((PT @ Mf).toarray())
        R[np.abs(R) < 1e-14 * np.abs(R).max()] = 0.0
        return sp.csr_matrix(R)
    raise InputError(f"restriction must be 'transpose' or 'l2', got {kind!r}")


def _scalar_mass(space: FESpace) -> sp.csr_matrix:
    from skfem import BilinearForm

    return BilinearForm(lambda u, v, w: u * v).assemble(space.scalar_basis).tocsr()


@dataclass
class Hierarchy:
    """Nested spaces V_0 ⊂ … ⊂ V_L (index 0 the coarsest), their DOF graphs and
    the transfers P_l: V_l -> V_{l+1} (n_{l+1}, n_l), R_l (n_l, n_{l+1})."""

    spaces: list[FESpace]
    graphs: list[DOFGraph]
    prolongations: list[sp.csr_matrix]
    restrictions: list[sp.csr_matrix]
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def fine(self) -> FESpace:
        return self.spaces[-1]


def hierarchy(meshes: Mesh | Sequence[Mesh], levels: int = 1, order: int = 1, vector: bool = False,
              restriction_kind: str = "transpose") -> Hierarchy:
    """The SPON-MG hierarchy from a coarse mesh refined ``levels`` times, or from
    a list of nested meshes (coarse to fine, e.g. gmsh meshes refined by splitting)."""
    if isinstance(meshes, Mesh):
        meshes = [meshes]
        for _ in range(levels):
            meshes.append(meshes[-1].refined())
    spaces = [FESpace(m, order=order, vector=vector) for m in meshes]
    graphs = [dof_graph(s) for s in spaces]
    Ps = [prolongation(c, f) for c, f in zip(spaces[:-1], spaces[1:])]
    Rs = [restriction(P, restriction_kind, c, f) for P, c, f in zip(Ps, spaces[:-1], spaces[1:])]
    return Hierarchy(spaces, graphs, Ps, Rs)


# ---------------------------------------------------------------------------- decoder and loss
def decode(y: torch.Tensor, scale: torch.Tensor, dirichlet_mask: torch.Tensor,
           dirichlet_values: torch.Tensor) -> torch.Tensor:
    """D: coefficients of u_h in float64, ``s·y`` on free DOFs and exactly the
    prescribed value on Dirichlet DOFs.

    Shapes: y (n, c), scale (n, 1), mask (n, c) bool, values (n, c) -> (n, c) float64.
    """
    return torch.where(dirichlet_mask, dirichlet_values.double(), y.double() * scale.double())


def fe_relative_error(pred: torch.Tensor, target: torch.Tensor, norm: torch.Tensor, batch: torch.Tensor,
                      n_graphs: int) -> torch.Tensor:
    """(G,) per-sample relative errors sqrt(eᵀ N e / tᵀ N t) in an FE norm.

    Args:
        pred, target: (n_dofs,) coefficient vectors of V_h (all samples concatenated).
        norm: (n_dofs, n_dofs) sparse block-diagonal norm matrix (M, or M + K).
        batch: (n_dofs,) sample index of each DOF.
    """
    from torch_geometric.utils import scatter

    e = pred - target
    num = scatter(e * torch.sparse.mm(norm, e[:, None])[:, 0], batch, dim=0, dim_size=n_graphs, reduce="sum")
    den = scatter(target * torch.sparse.mm(norm, target[:, None])[:, 0], batch, dim=0, dim_size=n_graphs,
                  reduce="sum")
    return (num.clamp_min(0) / den.clamp_min(1e-300)).sqrt()


def norm_matrix(space: FESpace, norm: str = "l2") -> sp.csr_matrix:
    """N = M (``"l2"``) or M + K (``"h1"``) of ``space`` (vector spaces: interleaved)."""
    if norm == "l2":
        return space.mass()
    if norm == "h1":
        return (space.mass() + space.stiffness()).tocsr()
    raise InputError(f"norm must be 'l2' or 'h1', got {norm!r}")


# ---------------------------------------------------------------------------- samples and batches
@dataclass
class SPONSample:
    """One input/output pair on a hierarchy, as arrays.

    Attributes:
        inputs: (n, F_in) encoded input channels on the fine scalar DOFs.
        dirichlet_mask: (n, c) bool, the DOFs with a prescribed value.
        dirichlet_values: (n, c) float64 prescribed values (0 elsewhere).
        scale: s, the factor that multiplies the network output.
        hierarchy: the spaces and graphs (shared between samples on one mesh).
        target: (n, c) float64 reference coefficients, or ``None``.
        norm: ``"l2"`` or ``"h1"``, the loss norm.
    """

    inputs: np.ndarray
    dirichlet_mask: np.ndarray
    dirichlet_values: np.ndarray
    scale: float
    hierarchy: Hierarchy
    target: np.ndarray | None = None
    norm: str = "l2"

    def features(self) -> np.ndarray:
        """(n, F_in + 5 + 1) node features: inputs, Dirichlet value / s, the
        Dirichlet flag (any component) and the geometry."""
        g = self.hierarchy.graphs[-1]
        return np.concatenate([self.inputs, self.dirichlet_values / self.scale,
                               self.dirichlet_mask.any(axis=1, keepdims=True).astype(float), g.geometry], axis=1)


@dataclass
class Batch:
    """Samples concatenated into one disconnected graph per level (torch).

    Attributes:
        x: (n, F) fine node features; ``edge_index``, ``edge_attr`` of the fine level.
        coarse: per coarser level, from the next-finer down: dict with ``P``
            (n_f, n_c) and ``R`` (n_c, n_f) sparse, ``x`` (n_c, 5) geometry,
            ``edge_index``, ``edge_attr``.
        mask, values, scale: decoder inputs, (n, c) bool, (n, c) float64, (n, 1) float64.
        target: (n, c) float64 or ``None``; ``norm`` sparse (n c, n c) float64;
        dof_batch (n c,) sample of each DOF; node_batch (n,); n_graphs.
    """

    x: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    coarse: list[dict]
    mask: torch.Tensor
    values: torch.Tensor
    scale: torch.Tensor
    target: torch.Tensor | None
    norm: torch.Tensor
    dof_batch: torch.Tensor
    node_batch: torch.Tensor
    n_graphs: int
    sizes: list[int] = field(default_factory=list)

    def split(self, u: torch.Tensor) -> list[np.ndarray]:
        """Per-sample (n_i, c) arrays of a (n, c) tensor."""
        return [t.detach().cpu().numpy() for t in torch.split(u, self.sizes)]


def _coo(A: sp.spmatrix) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    A = A.tocoo()
    return np.stack([A.row, A.col]).astype(np.int64), A.data, A.shape


def _level_arrays(h: Hierarchy, level: int) -> dict:
    """Arrays of the ``level``-th coarsening below the fine level of ``h`` (cached)."""
    key = ("level", level)
    if key not in h.cache:
        g = h.graphs[-1 - level]
        h.cache[key] = {"P": _coo(h.prolongations[-level]), "R": _coo(h.restrictions[-level]), "graph": g}
    return h.cache[key]


def _block_diag(parts: Sequence[tuple[np.ndarray, np.ndarray, tuple[int, int]]], dtype, device) -> torch.Tensor:
    """Block-diagonal sparse tensor from COO parts (indices (2, k), values (k,), shape)."""
    rows = np.cumsum([0] + [p[2][0] for p in parts])
    cols = np.cumsum([0] + [p[2][1] for p in parts])
    index = np.concatenate([p[0] + np.array([[r], [c]]) for p, r, c in zip(parts, rows, cols)], axis=1)
    values = np.concatenate([p[1] for p in parts])
    return torch.sparse_coo_tensor(torch.as_tensor(index), torch.as_tensor(values, dtype=dtype),
                                   (int(rows[-1]), int(cols[-1])), device=device, is_coalesced=False,
                                   check_invariants=False).coalesce()  # built in range; checking costs time


def collate(samples: Sequence[SPONSample], levels: int | None = None, device: str = "cpu",
            dtype: torch.dtype = torch.float32) -> Batch:
    """Batch samples (any meshes, same number of levels): block-diagonal
    graphs, transfers and norm matrices. ``levels`` coarse levels are used
    (default: all of the hierarchy). The network inputs (features, edge
    attributes, transfers) are in ``dtype``, the model's; the decoder and
    norm tensors are always float64."""
    L = len(samples[0].hierarchy.spaces) - 1 if levels is None else levels
    if any(len(s.hierarchy.spaces) - 1 < L for s in samples):
        raise InputError(f"a sample's hierarchy has fewer than the {L} coarse level(s) the model needs")
    fine = [s.hierarchy.graphs[-1] for s in samples]
    sizes = [g.n_nodes for g in fine]
    off = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    x = np.concatenate([s.features() for s in samples])
    ei = np.concatenate([g.edge_index + o for g, o in zip(fine, off)], axis=1)
    ea = np.concatenate([g.edge_attr for g in fine])
    coarse = []
    for level in range(1, L + 1):  # level-th coarsening below the fine level
        arrays = [_level_arrays(s.hierarchy, level) for s in samples]
        gs = [a["graph"] for a in arrays]
        cs = np.concatenate([[0], np.cumsum([g.n_nodes for g in gs])[:-1]])
        coarse.append({"P": _block_diag([a["P"] for a in arrays], dtype, device),
                       "R": _block_diag([a["R"] for a in arrays], dtype, device),
                       "x": torch.as_tensor(np.concatenate([g.geometry for g in gs]), dtype=dtype, device=device),
                       "edge_index": torch.as_tensor(np.concatenate([g.edge_index + o for g, o in zip(gs, cs)], 1),
                                                     device=device),
                       "edge_attr": torch.as_tensor(np.concatenate([g.edge_attr for g in gs]), dtype=dtype,
                                                    device=device)})
    c = samples[0].dirichlet_mask.shape[1]
    norms = []
    for s in samples:
        key = ("norm", s.norm)
        if key not in s.hierarchy.cache:
            s.hierarchy.cache[key] = _coo(norm_matrix(s.hierarchy.fine, s.norm))
        norms.append(s.hierarchy.cache[key])
    node_batch = np.repeat(np.arange(len(samples)), sizes)
    t = (torch.as_tensor(np.concatenate([s.target for s in samples]), dtype=torch.float64, device=device)
         if all(s.target is not None for s in samples) else None)
    return Batch(
        x=torch.as_tensor(x, dtype=dtype, device=device),
        edge_index=torch.as_tensor(ei, device=device), edge_attr=torch.as_tensor(ea, dtype=dtype, device=device),
        coarse=coarse,
        mask=torch.as_tensor(np.concatenate([s.dirichlet_mask for s in samples]), device=device),
        values=torch.as_tensor(np.concatenate([s.dirichlet_values for s in samples]), dtype=torch.float64,
                               device=device),
        scale=torch.as_tensor(np.repeat([s.scale for s in samples], sizes)[:, None], dtype=torch.float64,
                              device=device),
        target=t, norm=_block_diag(norms, torch.float64, device),
        dof_batch=torch.as_tensor(np.repeat(node_batch, c), device=device),
        node_batch=torch.as_tensor(node_batch, device=device), n_graphs=len(samples), sizes=sizes)


def fe_loss(y: torch.Tensor, batch: Batch) -> torch.Tensor:
    r"""(G,) SPON's loss of a batch from the raw processor output y (n, out): the
    relative error of the decoded :math:`u_h = D(y)` (:func:`decode`, Dirichlet
    DOFs exact) in the batch's FE norm,
    :math:`\sqrt{(c - c^*)^\top N (c - c^*) / c^{*\top} N c^*}` per sample
    (:func:`fe_relative_error`; N = M or M + K)."""
    u = decode(y, batch.scale, batch.mask, batch.values)
    return fe_relative_error(u.reshape(-1), batch.target.reshape(-1), batch.norm, batch.dof_batch,
                             batch.n_graphs)


# ---------------------------------------------------------------------------- model
@dataclass(frozen=True)
class SPONConfig:
    """Hyper-parameters of :class:`SPON`.

    Attributes:
        in_node: node input features (input channels + Dirichlet value(s) + flag + 5 geometry).
        in_edge: edge features (dim + 1).
        out: output components per DOF node (1 scalar, dim for vector spaces).
        latent: width d of node and edge latents.
        layers: total message-passing blocks (the depth; equal for SPON and SPON-MG).
        mlp_layers: linear layers per MLP.
        levels: coarse levels of the V-cycle (0: plain SPON).
        pre, post: blocks before restriction / after prolongation on each
            non-coarsest level; the coarsest gets ``layers − levels·(pre + post)``.
        norm: the training loss norm, ``"l2"`` (M) or ``"h1"`` (M + K).
    """

    in_node: int = 9
    in_edge: int = 3
    out: int = 1
    latent: int = 32
    layers: int = 6
    mlp_layers: int = 2
    levels: int = 0
    pre: int = 1
    post: int = 1
    norm: str = "l2"


@register("spon")
class SPON(nn.Module):
    """S = D ∘ P_θ ∘ E on FE spaces; ``levels > 0`` makes it SPON-MG (module docstring).

    ``forward(x, edge_index, edge_attr, coarse)`` returns the raw network output y (n, out)
    (``net(batch.x, batch.edge_index, batch.edge_attr, batch.coarse)``, what a
    training step calls, so that DDP synchronises the gradients);
    ``fe_loss(y, batch)`` is the loss of that output, :meth:`predict` the
    exactly decoded coefficients and :meth:`loss` the two together.

    Buffers ``x_mean``, ``x_std`` (in_node,) normalise the features inside the
    model, so a checkpoint carries them as tensors.
    """

    Config = SPONConfig

    def __init__(self, config: SPONConfig):
        super().__init__()
        self.config = c = config
        coarse_blocks = c.layers - c.levels * (c.pre + c.post)
        if c.levels < 0 or coarse_blocks < 1:
            raise InputError(f"SPON: {c.layers} layers cannot hold {c.levels} levels of {c.pre}+{c.post} blocks "
                             "and at least one coarse block")
        d, k = c.latent, c.mlp_layers
        self.node_encoder = MLP(c.in_node, d, d, k, layer_norm=True)
        self.edge_encoder = MLP(c.in_edge, d, d, k, layer_norm=True)
        self.pre_blocks = nn.ModuleList(nn.ModuleList(ProcessorBlock(d, k) for _ in range(c.pre))
                                        for _ in range(c.levels))
        self.post_blocks = nn.ModuleList(nn.ModuleList(ProcessorBlock(d, k) for _ in range(c.post))
                                         for _ in range(c.levels))
        self.coarse_inject = nn.ModuleList(nn.Linear(len(GEOMETRY_FEATURES), d) for _ in range(c.levels))
        self.blocks = nn.ModuleList(ProcessorBlock(d, k) for _ in range(coarse_blocks))
        self.decoder = MLP(d, d, c.out, k, layer_norm=False)
        self.register_buffer("x_mean", torch.zeros(c.in_node))
        self.register_buffer("x_std", torch.ones(c.in_node))

    def set_normalisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.x_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.x_std.copy_(torch.as_tensor(np.where(np.asarray(std) > 1e-6, std, 1.0), dtype=torch.float32))

    @staticmethod
    def _transfer(A: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """A h for a sparse transfer A, in A's dtype and back in h's, outside
        autocast: under autocast (bf16 on CUDA) the backward of ``torch.sparse.mm``
        fails on the mixed dtypes."""
        with torch.autocast(h.device.type, enabled=False):
            return torch.sparse.mm(A, h.to(A.dtype)).to(h.dtype)

    def _cycle(self, level: int, h: torch.Tensor, edge_index: torch.Tensor, e: torch.Tensor,
               coarse: Sequence[dict]) -> torch.Tensor:
        if level == self.config.levels:
            for block in self.blocks:
                h, e = block(h, edge_index, e)
            return h
        for block in self.pre_blocks[level]:
            h, e = block(h, edge_index, e)
        lv = coarse[level]
        hc = self._transfer(lv["R"], h) + self.coarse_inject[level](lv["x"])
        hc = self._cycle(level + 1, hc, lv["edge_index"], self.edge_encoder(lv["edge_attr"]), coarse)
        h = h + self._transfer(lv["P"], hc)
        for block in self.post_blocks[level]:
            h, e = block(h, edge_index, e)
        return h

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor,
                coarse: Sequence[dict] = ()) -> torch.Tensor:
        """Raw processor output y (n, out); ``coarse`` as in :class:`Batch` (needed when levels > 0)."""
        if len(coarse) < self.config.levels:
            raise InputError(f"SPON-MG with {self.config.levels} coarse level(s) was given {len(coarse)}; "
                             "build the batch with graphfem.operators.spon.collate")
        h = self.node_encoder((x - self.x_mean) / self.x_std)
        h = self._cycle(0, h, edge_index, self.edge_encoder(edge_attr), coarse)
        return self.decoder(h)

    def predict(self, batch: Batch) -> torch.Tensor:
        """(n, out) float64 coefficients of u_h: the decoder applied to the processor output."""
        y = self(batch.x, batch.edge_index, batch.edge_attr, batch.coarse)
        return decode(y, batch.scale, batch.mask, batch.values)

    def loss(self, batch: Batch) -> torch.Tensor:
        """(G,) relative errors in the batch's FE norm (:func:`fe_loss`)."""
        return fe_loss(self(batch.x, batch.edge_index, batch.edge_attr, batch.coarse), batch)


@register("spon_mg")
class SPONMG(SPON):
    """SPON-MG: :class:`SPON` with one coarse level by default (1 fine → 4 coarse → 1 fine blocks)."""

    @dataclass(frozen=True)
    class Config(SPONConfig):
        levels: int = 1


__all__ = ["Batch", "DOFGraph", "GEOMETRY_FEATURES", "Hierarchy", "SPON", "SPONConfig", "SPONMG", "SPONSample",
           "collate", "decode", "dof_graph", "fe_loss", "fe_relative_error", "hierarchy", "interpolation",
           "l2_projection", "norm_matrix", "prolongation", "quadrature_points", "restriction",
           "scalar_dof_coordinates"]
