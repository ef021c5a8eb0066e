"""``graphfem bench neuralstagger``: the vanilla physics-constrained stepper against NeuralStagger.

One data set of ``graphfem generate mac-channel`` (random channels with an obstacle, MAC reference
trajectories of the project's own solver); both models train through ``graphfem train``'s trainer
with the identical fine loss, pool, optimiser and number of steps (vanilla: factors 1; stagger:
s_H = s_W = 2, four coarse solvers in one grouped U-Net of the same width). Scored on the test
channels against the MAC solver (never on training grids): the one-step and rollout relative L2
errors of the cell-centre velocity, persistence (the old state kept) as the yardstick of both
errors, the coarse simulation of one sub-solver alone against the sub-sampled reference, and wall
time per simulated step (the model's rollout with batch 1, the MAC solver's sub-stepped run).

**Cylinder case** (``case`` ``cylinder`` or ``all``): both models trained the same way on
``graphfem generate mac-cylinder`` (a disc of diameter 0.2 at Re ≈ 64 … 160, where the MAC solver
sheds; pool slots live long, ``reset_every`` 500, so the pool reaches the developed wake), then on a
cylinder of our own (:func:`graphfem.physics.mac_channel.cylinder_domain`, centre (0.5, 0.51),
u_max 1.5, ν 0.002: Re = 100) the Strouhal number St = f D/ū of the probe's transverse velocity
behind it (FFT of the last ``window`` time units, :func:`graphfem.physics.mac_channel.strouhal`,
with its resolution Δf = 1/window) for the MAC solver (the reference) and for each model's rollout
from the impulsive start over the same span (``n/a`` when its wake does not shed), the rollout
errors on the mac-cylinder test channels, and the control (:mod:`graphfem.analysis.shedding_control`)
of each model to a target frequency with the MAC solver's frequency at the found inflow.

Sizes: ``small`` (2-core CPU, minutes: 32 × 16 cells; cylinder 48 × 24) and ``gpu`` (the paper-size
channel, 256 × 128 cells, U-Net width 32, 3 levels, batch 32; cylinder 128 × 64; written, not run here).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

SIZES = {
    "small": {"n": 6, "resolution": 16, "test": 0.5, "batch": 8, "epochs": 100, "lr": 3e-3,
              "pool": 32, "visits": 4, "model": {"width": 12, "levels": 2},
              "cylinder": {"n": 3, "resolution": 24, "test": 0.34, "batch": 8, "epochs": 750, "lr": 3e-3,
                           "pool": 16, "visits": 4, "reset_every": 500, "model": {"width": 12, "levels": 2},
                           "t_end": 20.0, "window": 14.0, "target": 1.0,
                           "control": {"iterations": 20, "start": 200, "warmup": 40, "window": 200}}},
    "gpu": {"n": 40, "resolution": 128, "test": 0.25, "batch": 32, "epochs": 500, "lr": 1e-3,
            "pool": 512, "visits": 4, "model": {"width": 32, "levels": 3},
            "cylinder": {"n": 20, "resolution": 64, "test": 0.25, "batch": 32, "epochs": 500, "lr": 1e-3,
                         "pool": 256, "visits": 4, "reset_every": 2000, "model": {"width": 32, "levels": 3},
                         "t_end": 20.0, "window": 14.0, "target": 1.0,
                         "control": {"iterations": 100, "start": 500, "warmup": 100, "window": 200}}},
}
#: the cylinder of the Strouhal rows (ours, not a pool draw): centre, diameter, probe, u_max, ν (Re = 100)
CYLINDER = {"centre": (0.5, 0.51), "diameter": 0.2, "probe": (1.0, 0.5), "u_max": 1.5, "nu": 0.002}
CASES = ("all", "channel", "cylinder")


def _config(path: Path, out: Path, cfg: dict, device: str, factors: int):
    from graphfem.training.config import DataConfig, OptimConfig, RunConfig, TrainConfig

    phase = {"optimizer": "adam", "epochs": cfg["epochs"], "lr": cfg["lr"], "weight_decay": 0.0, "warmup_steps": 0,
             "min_lr_ratio": 0.05, "clip_norm": 1.0, "dtype": "float32"}
    model = {"name": "neuralstagger", "s_h": factors, "s_w": factors, "pool": cfg["pool"], "visits": cfg["visits"],
             **({"reset_every": cfg["reset_every"]} if "reset_every" in cfg else {}), **cfg["model"]}
    return TrainConfig(model=model,
                       data=DataConfig(path=str(path), val_fraction=0.0, test_fraction=cfg["test"],
                                       batch_size=cfg["batch"]),
                       optim=OptimConfig(phases=[phase]),
                       run=RunConfig(out=str(out), seed=0, device=device, progress=False, threads=1,
                                     checkpoint_every=10 ** 6))


def _final_loss(run: Path) -> float:
    losses = [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    return float(np.mean(losses[-max(1, len(losses) // 10):]))


def run(size: str = "small", device: str = "auto", folder: str | None = None, case: str = "all") -> str:
    """Train both models (on each case of ``case``), score them against the MAC solver and return the
    tables (with the machine)."""
    import torch

    from graphfem.devices import resolve_device
    from graphfem.meshes.errors import InputError

    from . import machine, work_folder

    if size not in SIZES:
        raise InputError(f"--size: choose one of {', '.join(SIZES)}, got {size!r}")
    if case not in CASES:
        raise InputError(f"--case: choose one of {', '.join(CASES)}, got {case!r}")
    device = resolve_device(device)
    torch.set_num_threads(1)
    root, tmp = work_folder(folder)
    parts = []
    if case in ("all", "channel"):
        parts.append(_channel(SIZES[size], size, device, root / "channel"))
    if case in ("all", "cylinder"):
        parts.append(_cylinder(SIZES[size]["cylinder"], size, device, root / "cylinder"))
    if tmp is not None:
        tmp.cleanup()
    return "\n\n".join(parts + [f"machine: {machine()}"])


def _channel(cfg: dict, size: str, device: str, root: Path) -> str:
    """The channel table: errors against the MAC solver, the coarse sub-solver, time per step."""
    from graphfem.checkpoint import load_model
    from graphfem.datasets.simulations import SimulationData
    from graphfem.families.neuralstagger import NeuralStaggerFamily, _grid, domain_of, rel_l2, rollout, velocity
    from graphfem.physics.mac_channel import mac_reference
    from graphfem.training.trainer import split_indices, train

    from . import timed_generate

    root.mkdir(parents=True, exist_ok=True)
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
    return "\n".join(lines)


def _st(r: dict) -> str:
    return f"{r['strouhal']:.4f}" if r["shedding"] else "n/a"


def _cylinder(cfg: dict, size: str, device: str, root: Path) -> str:
    """The cylinder table: Strouhal numbers of the MAC solver and of both models' rollouts, rollout
    errors on the mac-cylinder test channels, and the control of each model to the target frequency."""
    from graphfem.analysis.shedding_control import control_model
    from graphfem.checkpoint import load_model
    from graphfem.datasets.simulations import SimulationData
    from graphfem.families.neuralstagger import NeuralStaggerFamily, _grid, domain_of, rollout
    from graphfem.physics.mac_channel import cylinder_domain, probe_signal, shedding_reference, strouhal
    from graphfem.training.trainer import split_indices, train

    from . import timed_generate

    root.mkdir(parents=True, exist_ok=True)
    path = root / "cylinder.h5"
    t_gen = timed_generate("mac-cylinder", cfg["n"], path, resolution=cfg["resolution"])
    data = SimulationData(path)
    test = split_indices(len(data), 0.0, cfg["test"], 0)["test"]
    s0 = data.sample(0)
    grid = _grid(s0, path)
    dt = float(s0.params["dt"])
    samples = []
    for i in test:
        s = data.sample(int(i))
        samples.append({"domain": domain_of(s, grid), "a": np.asarray(s.fields["a"]), "p": np.asarray(s.fields["p"])})
    cyl, u_mean = CYLINDER, 2.0 * CYLINDER["u_max"] / 3.0
    domain = cylinder_domain(grid, cyl["u_max"], cyl["nu"], cyl["centre"], cyl["diameter"])
    ref = shedding_reference(domain, dt, cfg["t_end"], cyl["probe"], cfg["window"])
    steps, keep = int(round(cfg["t_end"] / dt)), int(round(cfg["window"] / dt))
    rows, models = {}, {}
    for name, factors in (("vanilla", 1), ("stagger s=2", 2)):
        out = root / name.split()[0]
        start = time.perf_counter()
        train(_config(path, out, cfg, device, factors))
        t_train = time.perf_counter() - start
        model, meta = load_model(out / "model.safetensors")
        model = model.to(device).float()
        models[name] = (model, meta)
        errs = [NeuralStaggerFamily.errors(model, s, device) for s in samples]
        row = {k: float(np.mean([e[k] for e in errs])) for k in errs[0]}
        A, _ = rollout(model, domain, domain.start()[None], np.zeros((1, *grid.shape)), steps, device)
        signal = probe_signal(A, domain.psi, grid, cyl["probe"]) if np.isfinite(A).all() else None
        row["st"] = strouhal(signal[-keep:], dt, cyl["diameter"], u_mean) if signal is not None else None
        row.update(train_s=t_train, loss=_final_loss(out))
        rows[name] = row
    c = cfg["control"]
    controls = {name: control_model(model, meta, cfg["target"], u0=cyl["u_max"], nu=cyl["nu"], centre=cyl["centre"],
                                    diameter=cyl["diameter"], probe=cyl["probe"], iterations=c["iterations"],
                                    start=c["start"], warmup=c["warmup"], window=c["window"],
                                    verify_t_end=cfg["t_end"], verify_window=cfg["window"], device=device)
                if rows[name]["st"] is not None and rows[name]["st"]["shedding"] else None
                for name, (model, meta) in models.items()}  # a wake that does not shed has no frequency to steer
    nx, ny = grid.shape
    n_steps = cfg["epochs"] * cfg["pool"] * cfg["visits"] // cfg["batch"]
    re = u_mean * cyl["diameter"] / cyl["nu"]
    lines = [f"Flow past a cylinder ({nx} x {ny} cells, dt = {dt:g}; trained on {cfg['n']} mac-cylinder channels' "
             f"distribution, {n_steps} steps each; data {t_gen:.0f} s). Strouhal St = f D/u_mean of the probe v at "
             f"{cyl['probe']} behind a disc D = {cyl['diameter']:g} at {cyl['centre']}, u_max {cyl['u_max']:g}, "
             f"nu {cyl['nu']:g} (Re = {re:.0f}), FFT of the last {cfg['window']:g} of {cfg['t_end']:g} s: "
             f"resolution df = {ref['resolution']:.3f} 1/s (St {ref['strouhal_resolution']:.4f})",
             f"{'model':<16}{'final loss':>11}{'1-step err':>11}{'persist.':>9}{'rollout err':>12}{'persist.':>9}"
             f"{'St':>9}{'vs MAC':>22}{'train s':>9}",
             f"{'MAC solver':<16}{'':>11}{'':>11}{'':>9}{'':>12}{'':>9}{_st(ref):>9}{'':>22}{'':>9}"]
    for name, r in rows.items():
        st = r["st"]
        if st is None:
            shed, rel = "n/a", "diverged"
        elif st["shedding"] and ref["shedding"]:
            shed, rel = _st(st), f"{100 * (st['strouhal'] / ref['strouhal'] - 1):+.1f}%"
        else:
            shed, rel = "n/a", f"no shed ({st['amplitude']:.1e})"
        lines.append(f"{name:<16}{r['loss']:>11.3f}{r['one_step_rel_l2']:>11.4f}{r['persistence_one_step']:>9.4f}"
                     f"{r['rollout_rel_l2']:>12.4f}{r['persistence_rollout']:>9.4f}{shed:>9}{rel:>22}"
                     f"{r['train_s']:>9.0f}")
    lines.append(f"MAC probe: std {ref['amplitude']:.3f} m/s, peak share {ref['peak_share']:.2f}, {ref['seconds']:.0f} s "
                 f"of solving; 'no shed (x)': the model's probe std x is below {0.02 * u_mean:.3f} m/s or not periodic")
    for name, ctl in controls.items():
        if ctl is None:
            lines.append(f"control ({name}): not run, its wake does not shed")
            continue
        m, mac = ctl["model"], ctl["mac"]
        first, last = ctl["history"][0], ctl["history"][-1]
        lines.append(f"control ({name}, target {cfg['target']:g} 1/s, {len(ctl['history'])} Adam iterations of "
                     f"{c['warmup']} + {c['window']} steps): u_max {first['u_max']:.3f} -> {ctl['u_max']:.3f}, soft-peak "
                     f"f {first['frequency']:.3f} -> {last['frequency']:.3f}; model at the found u_max: "
                     + (f"f {m['frequency']:.3f}" if m["shedding"] else "no shedding")
                     + "; MAC solver there: "
                     + (f"f {mac['frequency']:.3f} ({100 * ctl['mac_frequency_error']:+.1f} % of the target)"
                        if mac["shedding"] else "no shedding"))
    return "\n".join(lines)


__all__ = ["SIZES", "run"]
