"""Property checks every graph model must pass (shipped, as e3nn ships its
``assert_equivariant``); the tests call them on every registered model."""
from __future__ import annotations

import torch
from torch import nn


def assert_permutation_equivariant(model: nn.Module, x: torch.Tensor, edge_index: torch.Tensor,
                                   edge_attr: torch.Tensor, atol: float | None = None,
                                   generator: torch.Generator | None = None) -> float:
    """Relabel the nodes by a random permutation π and check
    ``model(x[π], π⁻¹(edges), edge_attr) == model(x, edges, edge_attr)[π]``.

    Edges are also shuffled, so the check covers edge order too.

    Args:
        model: called as ``model(x, edge_index, edge_attr) -> (n, c)``.
        x: (n, F) node features; edge_index: (2, E); edge_attr: (E, F_e).
        atol: tolerance (default 1e-9 in float64, 1e-4 in float32).

    Returns:
        The largest absolute difference found.

    Raises:
        AssertionError: the outputs differ by more than ``atol``.
    """
    n, n_edges = x.shape[0], edge_index.shape[1]
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    perm = torch.randperm(n, generator=g)  # new node k is old node perm[k]
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(n)
    eperm = torch.randperm(n_edges, generator=g)
    with torch.no_grad():
        out = model(x, edge_index, edge_attr)
        out_p = model(x[perm], inverse[edge_index][:, eperm], edge_attr[eperm])
    diff = float((out_p - out[perm]).abs().max())
    tol = atol if atol is not None else (1e-9 if x.dtype == torch.float64 else 1e-4)
    assert diff <= tol, f"not permutation equivariant: max difference {diff:.3e} > {tol:.1e}"
    return diff


__all__ = ["assert_permutation_equivariant"]
