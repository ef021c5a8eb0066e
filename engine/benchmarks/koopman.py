"""Benchmark: pseudospectrum tau(z) on an n_grid x n_grid grid with N dictionary functions.

Compares, in one run on the same data:

* the QR path of :mod:`graphfem.analysis.koopman` (one pivoted QR of W^1/2 Psi_X,
  one QR of [Q, C], Schur/QR reduction to two stacked triangles, then per z a
  triangular-pentagonal QR and Lanczos on the triangular factor), timed on the whole grid;
* the naive per-point generalised eigenproblem
  (L - z A^* - conj(z) A + |z|^2 G) v = tau^2 G v (squares the residual),
* the naive per-point SVD of the tall M x N matrix W^1/2 (Psi_Y - z Psi_X) R^-1,

the two naive ones timed on ``naive_points`` random grid points and scaled to
the grid (stated in the table); optionally the batched torch path (CUDA when
present).
"""
from __future__ import annotations

import time

import numpy as np

from . import machine
import scipy.linalg as sla


def run(n_grid: int = 200, n_dict: int = 200, n_snapshots: int = 2000, naive_points: int = 100,
        torch: bool | None = None, seed: int = 0) -> str:
    """Time the pseudospectrum paths and return the table text.

    Data: M = ``n_snapshots`` Monte-Carlo pairs of x+ = 0.9 x, y+ = 0.5 y + x^2
    on [-1, 1]^2 with a kernel-learned (Laplacian) dictionary of N = ``n_dict`` functions.
    ``torch``: None runs the torch path only when CUDA is available."""
    from graphfem.analysis import koopman as kp

    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n_snapshots, 2))
    Y = np.c_[0.9 * X[:, 0], 0.5 * X[:, 1] + X[:, 0] ** 2]
    w = np.full(n_snapshots, 1.0 / n_snapshots)
    dic = kp.KernelDictionary("laplacian", n_dict).fit(X, w)
    PX, PY = dic(X), dic(Y)
    grid = (-1.2, 1.2, -1.2, 1.2, n_grid)
    re, im = kp.grid_points(grid)
    Z = (re[None, :] + 1j * im[:, None]).ravel()

    t0 = time.perf_counter()
    P = kp.pencil(PX, PY, w)
    _, _, tau = kp.pseudospectrum(P, grid)
    t_qr = time.perf_counter() - t0
    tau = tau.ravel()

    pick = rng.choice(len(Z), size=min(naive_points, len(Z)), replace=False)
    sw = np.sqrt(w)[:, None]
    Bx, By = sw * PX, sw * PY
    G, A, L = Bx.T @ Bx, Bx.T @ By, By.T @ By
    t0 = time.perf_counter()
    tau_gen = np.empty(len(pick))
    for i, z in enumerate(Z[pick]):
        H = L - z * A.conj().T - np.conj(z) * A + abs(z) ** 2 * G
        ev = sla.eigh(H, G, subset_by_index=[0, 0], eigvals_only=True)[0]
        tau_gen[i] = np.sqrt(max(ev, 0.0))
    t_gen = (time.perf_counter() - t0) / len(pick) * len(Z)

    Rx = np.linalg.qr(Bx, mode="r")
    t0 = time.perf_counter()
    tau_svd = np.empty(len(pick))
    for i, z in enumerate(Z[pick]):
        Mz = sla.solve_triangular(Rx, (By - z * Bx).T, trans="T").T
        tau_svd[i] = np.linalg.svd(Mz, compute_uv=False)[-1]
    t_svd = (time.perf_counter() - t0) / len(pick) * len(Z)

    rows = [("QR path (numpy, tpqrt + Lanczos)", t_qr, "measured, whole grid"),
            ("naive generalised eigenproblem per point", t_gen, f"{len(pick)} points, scaled to grid"),
            ("naive tall SVD per point (M x N)", t_svd, f"{len(pick)} points, scaled to grid")]
    tau_torch = None
    if torch is None:
        try:
            import torch as _torch

            torch = bool(_torch.cuda.is_available())
        except ImportError:
            torch = False
    if torch:
        import torch as _torch

        dev = "cuda" if _torch.cuda.is_available() else "cpu"
        kp.pseudospectrum(P, (-1.2, 1.2, -1.2, 1.2, 4), backend="torch")  # warm-up
        if dev == "cuda":
            _torch.cuda.synchronize()
        t0 = time.perf_counter()
        _, _, tau_torch = kp.pseudospectrum(P, grid, backend="torch", chunk=4096)
        rows.append((f"QR path (torch batched svdvals, {dev})", time.perf_counter() - t0, "measured, whole grid"))

    rel_svd = np.max(np.abs(tau[pick] - tau_svd) / np.maximum(tau_svd, 1e-300))
    rel_gen = np.max(np.abs(tau[pick] - tau_gen) / np.maximum(tau_svd, 1e-300))
    lines = [f"Koopman pseudospectrum benchmark: {n_grid}x{n_grid} grid, N = {n_dict} (rank kept {P.size}), "
             f"M = {n_snapshots} snapshots",
             f"machine: {machine()}",
             f"{'method':48s} {'time [s]':>10s} {'vs QR':>8s}  note"]
    for name, t, note in rows:
        lines.append(f"{name:48s} {t:10.2f} {t / t_qr:8.2f}  {note}")
    lines.append(f"max relative difference of tau on the sampled points: QR vs tall SVD {rel_svd:.1e}, "
                 f"generalised eigenproblem vs tall SVD {rel_gen:.1e}")
    lines.append(f"smallest tau on the grid: {tau.min():.2e}")
    if tau_torch is not None:
        lines.append(f"torch vs numpy QR path: max |difference| {np.max(np.abs(tau_torch.ravel() - tau)):.1e}")
    return "\n".join(lines)
