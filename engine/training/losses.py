"""Losses and metrics shared by the families (in the FE norms, never a plain Euclidean sum)."""
from __future__ import annotations


def relative_l2(pred, target, mass, batch, n_graphs: int, groups=None):
    """(G, k) per-graph relative L2 errors with lumped mass weights w (n,):
    sqrt(Σ_i Σ_{c∈g} w_i (p_ic − t_ic)²) / sqrt(Σ_i Σ_{c∈g} w_i t_ic²) for
    each group g of channels (a vector field's components form one group, so
    a component that happens to be near zero does not dominate); every
    channel is its own group when ``groups`` is None.

    Shapes:
        pred, target: (n, c); mass: (n,); batch: (n,) graph index of each node;
        groups: k (start, stop) channel ranges.
    """
    import torch
    from torch_geometric.utils import scatter

    w = mass[:, None].to(pred.dtype)
    num = scatter(w * (pred - target) ** 2, batch, dim=0, dim_size=n_graphs, reduce="sum")
    den = scatter(w * target ** 2, batch, dim=0, dim_size=n_graphs, reduce="sum")
    if groups is not None:
        num = torch.stack([num[:, a:b].sum(1) for a, b in groups], dim=1)
        den = torch.stack([den[:, a:b].sum(1) for a, b in groups], dim=1)
    return (num / den.clamp_min(1e-30)).sqrt()


def summary(errors, prefix: str = "rel_l2") -> dict[str, float]:
    """Mean and max of per-sample errors (N,) as a metrics dict."""
    import numpy as np

    e = np.asarray(errors, dtype=float)
    return {prefix: float(e.mean()), f"{prefix}_max": float(e.max())} if e.size else {}


__all__ = ["relative_l2", "summary"]
