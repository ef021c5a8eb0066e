"""``graphfem bench neuralstagger``: the vanilla physics-constrained stepper against NeuralStagger.

One data set of ``graphfem generate mac-channel`` (random channels with an obstacle, MAC reference
trajectories of the project's own solver); both models train through ``graphfem train``'s trainer
with the identical fine loss, pool, optimiser and number of steps (vanilla: factors 1; stagger:
s_H = s_W = 2, four coarse solvers in one grouped U-Net of the same width). Scored on the test
channels against the MAC solver (never on training grids): the one-step and rollout relative L2
errors of the cell-centre velocity, persistence (the old state kept) as the yardstick of both
errors, the coarse simulation of one sub-solver alone against the sub-sampled reference, and wall
time per simulated step (the model's rollout with batch 1, the MAC solver's sub-stepped run).

Sizes: ``small`` (2-core CPU, minutes: 32 × 16 cells) and ``gpu`` (the paper-size channel, 256 × 128
cells, U-Net width 32, 3 levels, batch 32; written, not run here).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

SIZES = {
    "small": {"n": 6, "resolution": 16, "test": 0.5, "batch": 8, "epochs": 100, "lr": 3e-3,
              "pool": 32, "visits": 4, "model": {"width": 12, "levels": 2}},
    "gpu": {"n": 40, "resolution": 128, "test": 0.25, "batch": 32, "epochs": 500, "lr": 1e-3,
            "pool": 512, "visits": 4, "model": {"width": 32, "levels": 3}},
}


def _config(path: Path, out: Path, cfg: dict, device: str, factors: int):
    from graphfem.training.config import DataConfig, OptimConfig, RunConfig, TrainConfig

    phase = {"optimizer": "adam", "epochs": cfg["epochs"], "lr": cfg["lr"], "weight_decay": 0.0, "warmup_steps": 0,
             "min_lr_ratio": 0.05, "clip_norm": 1.0, "dtype": "float32"}
    model = {"name": "neuralstagger", "s_h": factors, "s_w": factors, "pool": cfg["pool"], "visits": cfg["visits"],
             **cfg["model"]}
    return TrainConfig(model=model,
                       data=DataConfig(path=str(path), val_fraction=0.0, test_fraction=cfg["test"],
                                       batch_size=cfg["batch"]),
                       optim=OptimConfig(phases=[phase]),
                       run=RunConfig(out=str(out), seed=0, device=device, progress=False, threads=1,
                                     checkpoint_every=10 ** 6))


def _final_loss(run: Path) -> float:
    losses = [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    return float(np.mean(losses[-max(1, len(losses) // 10):]))


def run(size: str = "small", device: str = "auto", folder: str | None = None) -> str:
    """Train both models, score them against the MAC solver and return the table (with the machine)."""
    import torch

    from graphfem.checkpoint import load_model
    from graphfem.datasets.simulations import SimulationData
    from graphfem.devices import resolve_device
    from graphfem.families.neuralstagger import NeuralStaggerFamily, _grid, domain_of, rel_l2, rollout, velocity
    from graphfem.physics.mac_channel import mac_reference
    from graphfem.training.trainer import split_indices, train

    from . import machine, timed_generate, work_folder

    if size not in SIZES:
        from graphfem.meshes.errors import InputError

        raise InputError(f"--size: choose one of {', '.join(SIZES)}, got {size!r}")
    cfg = SIZES[size]
    device = resolve_device(device)
    torch.set_num_threads(1)
    root, tmp = work_folder(folder)
    path = root / "mac.h5"
    t_gen = timed_generate("mac-channel", cfg["n"], path, resolution=cfg["resolution"])
    data = SimulationData(path)
    test = split_indices(len(data), 0.0, cfg["test"], 0)["test"]
    samples = []
    for i in test:
        s = data.sample(int(i))
        grid = _grid(s, path)
        samples.append({"domain": domain_of(s, grid), "a": np.asarray(s.fields["a"]), "p": np.asarray(s.fields["p"])})
    rows = {}
    for name, factors in (("vanilla", 1), ("stagger s=2", 2)):
        start = time.perf_counter()
        train(_config(path, root / name.split()[0], cfg, device, factors))
        t_train = time.perf_counter() - start
        model, _ = load_model(root / name.split()[0] / "model.safetensors")
        model = model.to(device).float()
        errs = [NeuralStaggerFamily.errors(model, s, device) for s in samples]
        row = {k: float(np.mean([e[k] for e in errs])) for k in errs[0]}
        row.update(train_s=t_train, loss=_final_loss(root / name.split()[0]))
        # wall time per simulated step of the fine rollout (batch 1)
        s = samples[0]
        frames = len(s["a"]) - 1
        rollout(model, s["domain"], s["a"][:1], s["p"][:1], 2, device)  # warm-up
        start = time.perf_counter()
        rollout(model, s["domain"], s["a"][:1], s["p"][:1], frames, device)
        row["step_ms"] = 1e3 * (time.perf_counter() - start) / frames
        if factors > 1:  # one sub-solver alone: the grid of spacing 2h against the sub-sampled reference
            coarse = []
            for s in samples:
                A, _ = rollout(model, s["domain"], s["a"][:1], s["p"][:1], frames, device, coarsen=factors)
                k = factors
                ref = s["a"][:, k - 1::k, k - 1::k]
                h = tuple(k * x for x in model.spacing)
                psi = s["domain"].psi[::k]
                coarse.append(rel_l2(velocity(A[1:], psi, h), velocity(ref[1:], psi, h)))
            start = time.perf_counter()
            rollout(model, s["domain"], s["a"][:1], s["p"][:1], frames, device, coarsen=factors)
            row["coarse_rollout_rel_l2"] = float(np.mean(coarse))
            row["coarse_step_ms"] = 1e3 * (time.perf_counter() - start) / frames
        rows[name] = row
    s = samples[0]
    dt = float(data.sample(int(test[0])).params["dt"])
    _, _, seconds = mac_reference(s["domain"], s["a"][0], dt, len(s["a"]) - 1)
    mac_ms = 1e3 * seconds / (len(s["a"]) - 1)
    nx, ny = 2 * cfg["resolution"], cfg["resolution"]
    steps = cfg["epochs"] * cfg["pool"] * cfg["visits"] // cfg["batch"]
    lines = [f"NeuralStagger vs vanilla on MAC channel flows ({nx} x {ny} cells, dt = {dt:g}, {len(test)} test "
             f"channels as references; {steps} steps each, identical loss and pool; {size} size; data {t_gen:.0f} s)",
             f"{'model':<14}{'final loss':>11}{'1-step err':>11}{'persist.':>9}{'rollout err':>12}{'persist.':>9}"
             f"{'final err':>10}{'ms/step':>9}{'train s':>9}"]
    for name, r in rows.items():
        lines.append(f"{name:<14}{r['loss']:>11.3f}{r['one_step_rel_l2']:>11.4f}{r['persistence_one_step']:>9.4f}"
                     f"{r['rollout_rel_l2']:>12.4f}{r['persistence_rollout']:>9.4f}{r['final_rel_l2']:>10.4f}"
                     f"{r['step_ms']:>9.2f}{r['train_s']:>9.0f}")
    st = rows["stagger s=2"]
    lines.append(f"one sub-solver alone ({nx // 2} x {ny // 2} grid): rollout err {st['coarse_rollout_rel_l2']:.4f} "
                 f"against the sub-sampled reference, {st['coarse_step_ms']:.2f} ms/step")
    lines.append(f"MAC solver (sub-stepped to dt): {mac_ms:.2f} ms per step of dt; errors are relative L2 of the "
                 f"cell-centre velocity over {len(s['a']) - 1} steps")
    lines.append(f"machine: {machine()}")
    if tmp is not None:
        tmp.cleanup()
    return "\n".join(lines)


__all__ = ["SIZES", "run"]
