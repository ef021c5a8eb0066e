"""GIOROM benchmark, every number measured in one run (``graphfem bench giorom``).

1. Per material: MPM data (``graphfem generate mpm``, random boxes/balls),
   a sparse GIOROM stepper (FPS sample) + neural field, and a dense GNS
   baseline (the same network without the grid stage, trained on all N
   particles), all three trained by the one trainer. Rollout error on a
   held-out trajectory over all N particles: MSE of positions and Chamfer
   distance, averaged over the predicted frames.
2. Time per step of the sparse model on n particles against the same network
   on all N = 30 n particles, with the radius scaled by (n/N)^{1/d} so both
   graphs have the same neighbours per particle.
3. The neural field on the held-out trajectory (a deformation not in
   training), rebuilt from its true sparse displacements: displacement
   rel-L2 over all N particles and frames against scipy ``griddata`` linear
   (target ratio <= 0.95).
4. Surrogate time per frame / MPM time per frame on the held-out body.
5. ``graphfem rollout --query`` (the CLI, in a subprocess) on the held-out
   body of the first material with the trained stepper and field, 120
   frames (past the data's horizon: a timing, not an error), at the
   body's N particles and at 100 N query points: seconds per frame of
   stepper + reconstruction (the field's assembly once per rollout, then one
   sparse product per frame), target 100x / 1x <= 1.5.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import machine

SIZES = {
    # trajectories (train), frames, MPM grid, stepper steps, hidden, timing n, field steps, dim
    "small": dict(train=3, frames=30, n_grid=32, steps=300, hidden=48, timing_n=1000, field_steps=60, dim=2),
    "gpu": dict(train=8, frames=80, n_grid=64, steps=3000, hidden=128, timing_n=3000, field_steps=300, dim=3),
}


#: frames of the timed ``graphfem rollout`` runs (the reference's timing figure is per 120 steps)
CLI_FRAMES = 121


def _timed(fn, repeat: int = 3) -> float:
    import torch

    fn()
    best = np.inf
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def _fit(model: dict, data: Path, out: Path, epochs: int, device: str, batch: int = 2, threads: int = 0):
    """Train ``model`` on ``data`` with the one trainer; the trained (model, metadata)."""
    from graphfem.families.giorom import load_giorom
    from graphfem.training.config import DataConfig, OptimConfig, RunConfig, TrainConfig
    from graphfem.training.trainer import train

    train(TrainConfig(model=model, data=DataConfig(path=str(data), batch_size=batch, val_fraction=0.0,
                                                   test_fraction=0.0),
                      optim=OptimConfig(optimizer="adam", lr=1e-3, weight_decay=0.0, epochs=epochs, warmup_steps=10,
                                        min_lr_ratio=0.05),
                      run=RunConfig(out=str(out), device=device, threads=threads, progress=False)))
    return load_giorom(out / "model.safetensors", model["name"], device)


def _cli_rollouts(folder: Path, material: str, X: np.ndarray, ids: np.ndarray, frames: int, dim: int,
                  rng_seed: int = 0, device: str = "cpu", threads: int = 1) -> list[dict]:
    """``graphfem rollout`` of the body X (N, d) with the trained stepper and
    field of ``folder``, at the N particles and at 100 N points (each
    particle's cell of the data spacing filled with random points), on ``device`` with ``threads``; the JSON
    reports of both runs."""
    import json
    import os
    import subprocess
    import sys

    from graphfem.meshes import PointCloud
    from graphfem.physics.mpm import particle_spacing

    rng = np.random.default_rng(rng_seed)
    h = particle_spacing(X)
    body = folder / "body.vtu"
    PointCloud(X, {"material": ids}).write(body)
    dense = (X[:, None] + rng.uniform(-h / 2, h / 2, (len(X), 100, dim))).reshape(-1, dim)
    reports = []
    for name, queries in (("q1", X), ("q100", dense)):
        q = folder / f"{name}.vtu"
        PointCloud(queries).write(q)
        proc = subprocess.run([sys.executable, "-m", "graphfem", "rollout", str(folder / "sparse" / "model.safetensors"),
                               str(body), "-o", str(folder / f"{name}.pvd"), "--material", material, "--t-end",
                               f"{(frames - 1) * 0.01:g}", "--threads", str(threads), "--device", device,
                               "--field", str(folder / "field" / "model.safetensors"), "--query", str(q)],
                              capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        if proc.returncode != 0:
            raise RuntimeError(f"graphfem rollout failed: {proc.stderr.strip()}")
        reports.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return reports


def run(size: str = "small", materials: tuple[str, ...] = ("jelly", "water", "goo", "sand", "plasticine"),
        seed: int = 0, device: str = "auto", threads: int = 0) -> str:
    """Run the benchmark and return the table text; ``device`` and ``threads`` (0: torch's default) as
    ``graphfem train``'s run.device and run.threads, for the training and the rollouts alike."""
    import tempfile

    import torch

    from graphfem.datasets.generate import generate
    from graphfem.datasets.simulations import SimulationData
    from graphfem.devices import resolve_device, set_threads
    from graphfem.families.giorom import chamfer, dense_rollout, relative_error, sparse_subset
    from graphfem.meshes.errors import InputError
    from graphfem.operators.giorom import GIOROM, GIOROMConfig, interpolation_matrix, sample_particles

    if size not in SIZES:
        raise InputError(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    s = SIZES[size]
    dim, W = s["dim"], 5
    set_threads(threads)
    device = resolve_device(device)
    lines = [f"GIOROM benchmark ({size}) on {machine()}", ""]
    lines.append("| material | N | n | sparse MSE | sparse Chamfer | GNS-dense MSE | GNS-dense Chamfer "
                 "| const.-velocity MSE | field rel-L2 | griddata rel-L2 | field / griddata | surrogate frame / MPM frame |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    cli_case = None
    geometry = "mixed" if dim == 2 else "mixed-3d"
    windows = s["train"] * (s["frames"] - W)  # stepper items per epoch
    epochs = max(1, round(s["steps"] / -(-windows // 2)))
    field_epochs = max(1, round(s["field_steps"] / -(-s["train"] * s["frames"] // 8)))
    with tempfile.TemporaryDirectory(prefix="giorom-bench-") as tmp:
        for mat in materials:
            folder = Path(tmp) / mat
            scene = {"t_end": s["frames"] * 0.01}
            t0 = time.perf_counter()
            generate("mpm", s["train"], folder / "train.h5", material=mat, geometry=geometry,
                     resolution=s["n_grid"], options=scene, seed=seed, progress=False)
            generate("mpm", 1, folder / "test.h5", material=mat, geometry=geometry, resolution=s["n_grid"],
                     options=scene, seed=seed + 1, progress=False)
            mpm_frame = (time.perf_counter() - t0) / ((s["train"] + 1) * s["frames"])
            spacing = 1.0 / (2 * s["n_grid"])
            base = {"name": "giorom", "hidden": s["hidden"], "layers_in": 2, "layers_out": 2,
                    "noise_std": 1e-4 if mat in ("jelly", "plasticine") else 3e-4}
            data = folder / "train.h5"
            stepper, meta = _fit({**base, "sparse": 0.2, "radius": 0.12, "grid": 8, "gno_radius": 0.15}, data,
                                 folder / "sparse", epochs, device, threads=threads)
            gns, _ = _fit({**base, "sparse": 1.0, "radius": 4 * spacing, "grid": 0}, data, folder / "dense", epochs,
                          device, threads=threads)
            field, _ = _fit({"name": "giorom-field", "sparse": 0.2, "hidden": 32}, data, folder / "field",
                            field_epochs, device, batch=8, threads=threads)
            test = SimulationData(folder / "test.h5").sample(0)
            x, material = test.fields["x"], test.inputs["material"]
            N = x.shape[1]
            idx = sparse_subset(x[0], meta["family_options"], W + 2)
            horizon = x.shape[0] - W - 1
            t1 = time.perf_counter()
            sp = stepper.rollout(x[:W + 1, idx], material[idx], horizon)
            surrogate_frame = (time.perf_counter() - t1) / horizon
            _, dense, _ = dense_rollout(stepper, field, x[:W + 1], material, horizon, idx)
            dense = dense[W + 1:]
            gd = gns.rollout(x[:W + 1], material, horizon)
            truth = x[W + 1:]
            cv = x[W][None] + np.arange(1, horizon + 1)[:, None, None] * (x[W] - x[W - 1])[None]

            def mse(p):
                return float(np.mean((p - truth) ** 2))

            def cham(p):
                return float(np.mean([chamfer(p[k], truth[k]) for k in range(0, horizon, max(1, horizon // 6))]))

            U = x - x[:1]
            rebuilt = field.operator(x[0, idx], x[0]).reconstruct(U[:, idx])
            B = interpolation_matrix(x[0, idx], x[0], "linear")
            e_field = relative_error(rebuilt[1:], U[1:], 0.0)
            e_lin = relative_error(np.stack([B @ u for u in U[1:, idx]]), U[1:], 0.0)
            lines.append(f"| {mat} | {N} | {len(idx)} | {mse(dense):.2e} | {cham(dense):.2e} | {mse(gd):.2e} | "
                         f"{cham(gd):.2e} | {mse(cv):.2e} | {e_field:.2e} | {e_lin:.2e} | {e_field / e_lin:.3f} | "
                         f"{surrogate_frame / mpm_frame:.2f} |")
            if cli_case is None:
                cli_case = _cli_rollouts(folder, mat, x[0], material, CLI_FRAMES, dim, rng_seed=seed, device=device,
                                         threads=threads or 1)
        lines += ["", "graphfem rollout --query on the held-out body of "
                  f"{materials[0]} (stepper + field, {cli_case[0]['frames']} frames, {device}):"]
        for r in cli_case:
            lines.append(f"  {r['points']:>7} points: stepper {r['rollout_s']:.3f} s, field assembly "
                         f"{r['assemble_s']:.3f} s, reconstruction {r['reconstruct_s']:.3f} s; "
                         f"{1e3 * r['frame_s']:.2f} ms per frame")
        lines.append(f"  100x queries / 1x: {cli_case[1]['frame_s'] / cli_case[0]['frame_s']:.2f}x per frame "
                     "(target <= 1.5x)")

    # ---- time per step: sparse n against the same network on N = 30 n
    n = s["timing_n"]
    N = 30 * n
    rng = np.random.default_rng(seed)
    body = rng.uniform(0.2, 0.8, (N, dim))
    hist = np.stack([body + 1e-3 * k for k in range(W + 1)])
    sub = sample_particles(body, n, "random", seed)
    r_sparse = 2.5 * 0.6 / n ** (1 / dim)  # ~20 neighbours in 2D, ~65 in 3D
    torch.manual_seed(seed)
    cfg = GIOROMConfig(dim=dim, hidden=s["hidden"], radius=r_sparse, grid=8, gno_radius=0.75 * dim ** 0.5 / 8)
    net = GIOROM(cfg).to(device).eval()
    dense_net = GIOROM(GIOROMConfig(**{**cfg.__dict__, "radius": r_sparse * (n / N) ** (1 / dim)})).to(device).eval()
    dense_net.load_state_dict(net.state_dict())
    mats = np.zeros(N, dtype=np.int64)
    with torch.no_grad():
        t_sparse = _timed(lambda: net(net.graph([hist[:, sub]], [mats[sub]])))
        t_dense = _timed(lambda: dense_net(dense_net.graph([hist], [mats])), repeat=1)
    lines += ["", f"time per step (graph build + forward), same weights, radius scaled to keep neighbours per particle:",
              f"  sparse n = {n}: {1e3 * t_sparse:.1f} ms; all N = {N}: {1e3 * t_dense:.1f} ms; "
              f"speed-up {t_dense / t_sparse:.1f}x (target >= 10x)"]

    return "\n".join(lines)


__all__ = ["SIZES", "run"]
