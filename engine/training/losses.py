"""Losses and metrics shared by the families (in the FE norms, never a plain Euclidean sum)."""
from __future__ import annotations


def relative_l2(pred, target, mass, batch, n_graphs: int):
    """(G, c) per-graph relative L2 errors with lumped mass weights w (n,):
    sqrt(Σ_i w_i (p_i − t_i)²) / sqrt(Σ_i w_i t_i²), per channel.

    Shapes:
        pred, target: (n, c); mass: (n,); batch: (n,) graph index of each node.
    """
    from torch_geometric.utils import scatter

    w = mass[:, None].to(pred.dtype)
    num = scatter(w * (pred - target) ** 2, batch, dim=0, dim_size=n_graphs, reduce="sum")
    den = scatter(w * target ** 2, batch, dim=0, dim_size=n_graphs, reduce="sum")
    return (num / den.clamp_min(1e-30)).sqrt()


def summary(errors, prefix: str = "rel_l2") -> dict[str, float]:
    """Mean and max of per-sample errors (N,) as a metrics dict."""
    import numpy as np

    e = np.asarray(errors, dtype=float)
    return {prefix: float(e.mean()), f"{prefix}_max": float(e.max())} if e.size else {}


__all__ = ["relative_l2", "summary"]
