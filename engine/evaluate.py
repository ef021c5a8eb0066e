"""``graphfem evaluate``: a surrogate's errors on a data set, optionally against FE timings.

Errors are relative L2 errors, ||û − u|| / ||u||, in the norm each family names
(``stats["norm"]``): the consistent FE mass-matrix norm on meshes, a Euclidean norm over
particles or grid faces (:meth:`graphfem.families.Family.evaluate`).
"""
from __future__ import annotations

from pathlib import Path


def evaluate(model_path: str | Path, data_path: str | Path, compare_fe: bool = False, device: str = "auto",
             skip_bad: bool = False, limit: int = 0, progress: bool = True) -> dict:
    """Per-sample errors and timings; returns summary statistics and the per-sample list."""
    from .checkpoint import load
    from .datasets.simulations import SimulationData

    surrogate = load(model_path, device=device)
    data = SimulationData(data_path, skip_bad=skip_bad)
    return surrogate.evaluate(data, limit=limit, compare_fe=compare_fe, progress=progress)


def report(stats: dict) -> str:
    """The text ``graphfem evaluate`` prints."""
    lines = [f"{stats['samples']} samples, relative L2 error ({stats['norm']}):",
             f"  mean {stats['rel_l2_mean']:.4f}  median {stats['rel_l2_median']:.4f}  "
             f"p90 {stats['rel_l2_p90']:.4f}  max {stats['rel_l2_max']:.4f}",
             f"surrogate predict: {1e3 * stats['predict_s_mean']:.2f} ms per sample ({stats['device']})"]
    if "fe_s_mean" in stats:
        lines.append(f"FE solve:          {1e3 * stats['fe_s_mean']:.2f} ms per sample "
                     f"(speed-up {stats['fe_s_mean'] / stats['predict_s_mean']:.2f}x; FE re-solve matches the "
                     f"stored solution to {stats['fe_vs_stored_max']:.1e})")
    if "inside" in stats:
        parts = []
        for key in ("inside", "outside"):
            part = stats[key]
            parts.append(f"{key} {part['samples']}" + (f" (mean {part['rel_l2_mean']:.4f}, max {part['rel_l2_max']:.4f})"
                                                        if part["samples"] else ""))
        lines.append("the model's training ranges: " + ", ".join(parts))
    extra = {k[:-5]: v for k, v in stats.items() if k.endswith("_mean") and k not in (
        "rel_l2_mean", "predict_s_mean", "fe_s_mean") and isinstance(v, float)}
    if extra:  # a family's own per-sample means (coverage, inverse errors, ...)
        lines.append("family metrics (means): " + "  ".join(f"{k} {v:.4f}" for k, v in extra.items()))
    return "\n".join(lines)


__all__ = ["evaluate", "report"]
