"""``graphfem evaluate``: surrogate errors on a dataset, optionally against FE timings.

Errors are relative L2 errors in the consistent FE mass-matrix norm,
||û − u||_M / ||u||_M with M from :class:`~graphfem.meshes.FESpace`.
SPON checkpoints read SPON data files (:func:`graphfem.families.spon.evaluate_file`).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def evaluate(model_path: str | Path, data_path: str | Path, compare_fe: bool = False, device: str = "auto",
             skip_bad: bool = False, limit: int = 0, progress: bool = True) -> dict:
    """Per-sample errors and timings; returns summary statistics and the per-sample lists."""
    from rich.progress import Progress

    from graphfem.meshes import FESpace

    from graphfem.checkpoint import load
    from graphfem.datasets.simulations import SimulationDataset
    from graphfem.physics.poisson_encoding import poisson_graph, solve_poisson

    surrogate = load(model_path, device=device)
    if surrogate.on_fe_spaces:
        from graphfem.families.spon import evaluate_file

        return evaluate_file(surrogate, data_path, compare_fe=compare_fe, limit=limit)
    data = SimulationDataset(data_path, skip_bad=skip_bad, cache=False)
    n = len(data) if limit <= 0 else min(limit, len(data))
    errors, t_pred, t_fe, fe_check = [], [], [], []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("evaluating", total=n)
        for i in range(n):
            s = data.sample(i)
            surrogate.check_mesh(s.mesh)
            start = time.perf_counter()
            u_hat = surrogate.predict_graph(poisson_graph(s.mesh, s.case)).cpu().numpy()[:, 0]
            t_pred.append(time.perf_counter() - start)
            space = FESpace(s.mesh, order=1)
            errors.append(space.relative_l2_error(u_hat, s.fields["u"]))
            if compare_fe:
                start = time.perf_counter()
                u = solve_poisson(s.mesh, s.case)
                t_fe.append(time.perf_counter() - start)
                fe_check.append(space.relative_l2_error(u, s.fields["u"]))
            bar.advance(task)
    e = np.asarray(errors)
    out = {"samples": n, "rel_l2_mean": float(e.mean()), "rel_l2_median": float(np.median(e)),
           "rel_l2_p90": float(np.quantile(e, 0.9)), "rel_l2_max": float(e.max()),
           "predict_s_mean": float(np.mean(t_pred)), "errors": e.tolist(), "device": surrogate.device}
    if compare_fe:
        out.update(fe_s_mean=float(np.mean(t_fe)), fe_vs_stored_max=float(np.max(fe_check)))
    return out


def report(stats: dict) -> str:
    """The text ``graphfem evaluate`` prints."""
    lines = [f"{stats['samples']} samples, relative L2 error (FE mass-matrix norm):",
             f"  mean {stats['rel_l2_mean']:.4f}  median {stats['rel_l2_median']:.4f}  "
             f"p90 {stats['rel_l2_p90']:.4f}  max {stats['rel_l2_max']:.4f}",
             f"surrogate predict: {1e3 * stats['predict_s_mean']:.2f} ms per sample ({stats['device']})"]
    if "fe_s_mean" in stats:
        lines.append(f"FE solve:          {1e3 * stats['fe_s_mean']:.2f} ms per sample "
                     f"(speed-up {stats['fe_s_mean'] / stats['predict_s_mean']:.2f}x; FE re-solve matches the "
                     f"stored solution to {stats['fe_vs_stored_max']:.1e})")
    return "\n".join(lines)


__all__ = ["evaluate", "report"]
