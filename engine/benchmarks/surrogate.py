"""``graphfem bench surrogate MODEL``: surrogate predict time against the FE
solve, and peak memory, on unit-square meshes from about 1k to 1M cells,
measured in one run.

Problem: −Δu = 1 (κ = 1), u = 0 on the boundary, P1. "predict" includes the
graph encoding; "FE" is :func:`graphfem.physics.poisson` (assembly and the
automatic direct/AMG solve). Peak memory is the largest resident-set growth
above the value before each step, sampled every 2 ms (CPU), or
``torch.cuda.max_memory_allocated`` (GPU).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable, Sequence

DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000)


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory(fn: Callable[[], object]) -> tuple[object, float, float]:
    """(result, seconds, peak RSS growth in MiB) of ``fn()``."""
    base = _rss()
    peak = [base]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        result = fn()
    finally:
        seconds = time.perf_counter() - start
        done.set()
        thread.join()
    peak[0] = max(peak[0], _rss())
    return result, seconds, (peak[0] - base) / 2**20


def run(model_path: str, sizes: Sequence[int] = DEFAULT_SIZES, device: str = "auto") -> str:
    """Measure every size in one run and return the table text."""
    import torch

    from graphfem.meshes import Mesh
    from graphfem.physics import poisson

    from . import machine
    from graphfem.checkpoint import load

    surrogate = load(model_path, device=device)
    cuda = surrogate.device.startswith("cuda")
    surrogate.predict(Mesh.unit_square(8))  # warm-up
    header = (f"{'cells':>9} {'nodes':>9} {'predict s':>10} {'FE s':>8} {'predict/FE':>10} "
              f"{'predict MiB':>11} {'FE MiB':>8} {'rel L2':>7}")
    rows = [f"graphfem bench surrogate: {surrogate.meta['model']} on {surrogate.device} ({machine()}); "
            "problem: unit square, kappa = 1, f = 1, u = 0 on the boundary", header]
    for target in sizes:
        n = max(2, int(round((target / 2) ** 0.5)))
        mesh = Mesh.unit_square(n)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        pred, t_pred, mem_pred = peak_memory(lambda: surrogate.timed_prediction(mesh))
        u_hat, t_pred = pred[0].fields["u"], pred[1]
        if cuda:
            mem_pred = torch.cuda.max_memory_allocated() / 2**20
        sol, t_fe, mem_fe = peak_memory(lambda: poisson(mesh, kappa=1.0, f=1.0))
        rel = sol.space.relative_l2_error(u_hat, sol.fields["u"])
        rows.append(f"{mesh.n_cells:>9} {mesh.n_points:>9} {t_pred:>10.3f} {t_fe:>8.3f} {t_pred / t_fe:>10.2f} "
                    f"{mem_pred:>11.0f} {mem_fe:>8.0f} {rel:>7.3f}")
    rows.append("predict includes graph encoding; peak MiB: resident-set growth (CPU) or CUDA max allocated (GPU)")
    return "\n".join(rows)


__all__ = ["DEFAULT_SIZES", "peak_memory", "run"]
