"""``graphfem bench dgno``: DGNO (no labels) vs supervised MultiONet on two-phase and smooth Darcy; the inverse problem.

One data set of ``graphfem generate darcy`` (two-phase a ∈ {5, 10} from a thresholded Gaussian
field on a 29 × 29 grid, f = 10, u = 0; P1 FE reference u on each sample's mesh); both models
train on the same training split (DGNO never reads u) and are scored on the same test split
by the relative L2 error of u at the mesh nodes against the FE solution. The inverse problem
takes the first test sample: 100 random nodes, u with Gaussian noise at SNR 25 dB
(σ = sqrt(mean(u²) / 10^{2.5})), a recovered with the frozen DGNO decoders.

The smooth row: a second data set of ``graphfem generate darcy-smooth`` (a = exp(g), g the same
Gaussian field unthresholded; f = 10, u = 0), DGNO with the primal form and the continuous (L²)
a decoder, w_data = 0.25 and AdamW as in the reference's smooth example, and MultiONet on the
same split (the reference's CNN encoder for smooth a is not built: both use the FC encoder).

Sizes: ``small`` (2-core CPU, minutes: 15 × 15 grid, 60 samples, ~700 steps per two-phase model,
~350 per smooth one) and ``gpu`` (the paper's 29 × 29, d_β = 128, width 100; two-phase 1,200
samples, 1,000 / 200, batch 25, a shortened 200 epochs; smooth 1,200 samples, 1,000 / 200, batch
50, the reference's 2,000 epochs).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

SIZES = {
    "small": {"n": 60, "resolution": 14, "test": 0.2, "batch": 4, "dgno_epochs": 60, "mono_epochs": 60,
              "model": {"grid": 15, "latent": 16, "encoder": [128, 64], "width": 32, "depth": 4, "n_layers_sum": 4},
              "centres": 32, "lr": 1e-3, "mono_lr": 5e-3, "inverse_iterations": 200, "restarts": 2,
              "smooth": {"batch": 4, "dgno_epochs": 30, "mono_epochs": 60, "lr": 1e-3, "mono_lr": 5e-3}},
    "gpu": {"n": 1200, "resolution": 28, "test": 1 / 6, "batch": 25, "dgno_epochs": 200, "mono_epochs": 500,
            "model": {"grid": 29, "latent": 128, "encoder": [512, 256], "width": 100, "depth": 5, "n_layers_sum": 5},
            "centres": 100, "lr": 5e-4, "mono_lr": 1e-3, "inverse_iterations": 500, "restarts": 4,
            "smooth": {"batch": 50, "dgno_epochs": 2000, "mono_epochs": 2000, "lr": 5e-4, "mono_lr": 1e-3}},
}


def _config(name: str, path: Path, out: Path, cfg: dict, device: str, model: dict, optimizer: str = "adam"):
    from graphfem.training.config import DataConfig, OptimConfig, RunConfig, TrainConfig

    epochs = cfg["dgno_epochs" if name == "dgno" else "mono_epochs"]
    lr = cfg["lr" if name == "dgno" else "mono_lr"]
    phase = {"optimizer": optimizer, "epochs": epochs, "lr": lr, "weight_decay": 1e-4, "warmup_steps": 0,
             "min_lr_ratio": 0.25, "clip_norm": 0.0, "dtype": "float32"}
    return TrainConfig(model={"name": name, **model},
                       data=DataConfig(path=str(path), val_fraction=0.0, test_fraction=cfg["test"],
                                       batch_size=cfg["batch"]),
                       optim=OptimConfig(phases=[phase]),
                       run=RunConfig(out=str(out), seed=0, device=device, progress=False, threads=1,
                                     checkpoint_every=max(1, epochs)))


def run(size: str = "small", device: str = "auto", folder: str | None = None) -> str:
    """Train both models, invert, and return the table (with the machine)."""
    import torch

    from graphfem.checkpoint import load_model
    from graphfem.datasets.simulations import SimulationData
    from graphfem.families.dgno import inverse_fields
    from graphfem.operators.dgno import noise_sigma
    from graphfem.devices import resolve_device
    from graphfem.training.trainer import split_indices, train

    from . import machine, timed_generate, work_folder

    cfg = SIZES[size]
    device = resolve_device(device)
    torch.set_num_threads(1)
    root, tmp = work_folder(folder)
    path = root / "darcy.h5"
    t_gen = timed_generate("darcy", cfg["n"], path, resolution=cfg["resolution"])
    rows = []
    for name, extra in (("dgno", {"centres": cfg["centres"]}), ("multionet", {})):
        model = {k: v for k, v in cfg["model"].items() if name == "dgno" or k not in ("latent", "encoder")}
        start = time.perf_counter()
        final = train(_config(name, path, root / name, cfg, device, {**model, **extra}))
        rows.append((name, final["test_rel_l2_u"], time.perf_counter() - start))
    smooth_path = root / "darcy_smooth.h5"
    t_gen_smooth = timed_generate("darcy-smooth", cfg["n"], smooth_path, seed=1, resolution=cfg["resolution"])
    smooth_cfg = {**cfg, **cfg["smooth"]}
    smooth_rows = []
    for name, extra in (("dgno", {"centres": cfg["centres"], "form": "primal", "coefficient": "continuous",
                                  "w_data": 0.25}), ("multionet", {})):
        model = {k: v for k, v in cfg["model"].items() if name == "dgno" or k not in ("latent", "encoder")}
        start = time.perf_counter()
        final = train(_config(name, smooth_path, root / f"smooth_{name}", smooth_cfg, device, {**model, **extra},
                              optimizer="adamw"))
        smooth_rows.append((name, final["test_rel_l2_u"], time.perf_counter() - start,
                            final.get("test_a_rel_l2", float("nan"))))
    # inverse problem on the first test sample
    data = SimulationData(path)
    test = split_indices(len(data), 0.0, cfg["test"], 0)["test"]
    s = data.sample(int(test[0]))
    rng = np.random.default_rng(25)
    idx = rng.choice(s.mesh.n_points, 100, replace=False)
    u = s.fields["u"]
    obs = u[idx] + noise_sigma(u, 25.0) * rng.standard_normal(100)
    model, _ = load_model(root / "dgno" / "model.safetensors")
    start = time.perf_counter()
    fields, numbers = inverse_fields(model.float(), s.mesh.points[idx, :2], obs, s.mesh, truth=s.options["kappa"],
                                     restarts=cfg["restarts"], iterations=cfg["inverse_iterations"])
    t_inv = time.perf_counter() - start
    u_err = float(np.linalg.norm(fields["u"] - u) / np.linalg.norm(u))
    side = cfg["resolution"] + 1
    lines = [f"DGNO vs MultiONet, two-phase Darcy (a in {{5, 10}}, f = 10), {side} x {side} vertex meshes, "
             f"{len(data) - len(test)} train / {len(test)} test samples ({size} size; data {t_gen:.0f} s)",
             f"{'model':<12}{'labels':>8}{'test rel-L2 u':>15}{'train s':>10}{'reference (GPU)':>17}"]
    refs = {"dgno": 0.0241, "multionet": 0.0097}
    for name, err, t in rows:
        lines.append(f"{name:<12}{'no' if name == 'dgno' else 'u':>8}{err:>15.4f}{t:>10.0f}{refs[name]:>17.4f}")
    lines.append(f"smooth Darcy (a = exp(g), f = 10), same meshes and split sizes (data {t_gen_smooth:.0f} s); "
                 f"DGNO primal form, L2 decoder of a")
    smooth_refs = {"dgno": 0.0033, "multionet": 0.0008}
    for name, err, t, a_err in smooth_rows:
        note = f"   (a rel-L2 {a_err:.4f}, reference 0.0011)" if name == "dgno" else ""
        lines.append(f"{name:<12}{'no' if name == 'dgno' else 'u':>8}{err:>15.4f}{t:>10.0f}{smooth_refs[name]:>17.4f}"
                     f"{note}")
    lines.append(f"inverse (SNR 25 dB, 100 observations, {cfg['restarts']} restarts x {cfg['inverse_iterations']} "
                 f"iterations, {t_inv:.0f} s): a rel-L2 {numbers['a_rel_l2']:.4f} (reference 0.127), u rel-L2 "
                 f"{u_err:.4f} (reference 0.027), mean posterior std of a {numbers['spread_mean']:.3f}")
    lines.append(f"machine: {machine()}")
    if tmp is not None:
        tmp.cleanup()
    return "\n".join(lines)


__all__ = ["SIZES", "run"]
