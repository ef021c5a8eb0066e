"""``graphfem bench text2pde``: Text2PDE latent diffusion (first frame, text, parameters) against an
autoregressive MeshGraphNet on transient flow past a cylinder.

One data set of ``graphfem generate cylinder-wake`` (random cylinder radius and position, inflow peak, 9 frames
on t ∈ [0, 2], BDF2 Taylor–Hood reference on each sample's own mesh). On the same split the one trainer fits
the mesh autoencoder, then three latent diffusion models (context ``first-frame``, ``text`` and ``params``), and
a MeshGraphNet one-step model. Scored on the test split: the relative L² error over the whole trajectory (all
frames, consistent P1 mass norm) of u, v and p, for the diffusion models as the mean over test samples per
sampling seed, then mean ± standard deviation over the seeds (DDIM, ``steps`` steps); the MeshGraphNet rollout
starts from the true first frame and is deterministic. The unconditional row is the text model sampled with the
null context only. Wall time per trajectory: sampling + decoding with the model loaded, the rollout, and the FE
solve of one test sample.

The text prompts are the templated captions of :meth:`CylinderWake.describe`: their numbers are the parameters,
so the text rows measure parameter conditioning, not language understanding; the ``params`` row is the same
model fed the vector.

A stage whose ``model.safetensors`` already lies in the work folder (``--folder``) with the same model, data and
optimiser settings is reused, not retrained: the folder layout is that of the example configs
(``wake.h5``, ``runs/text2pde-ae``, ``runs/text2pde-text``, ...), so ``--folder`` on the folder the examples ran
in evaluates those models.

Sizes: ``small`` (the example configs: 128 trajectories, 20 autoencoder epochs, 150 diffusion epochs; 2-core
CPU, about an hour from scratch) and ``gpu`` (the method note's full configuration scaled to one GPU: 1,000
trajectories on finer meshes, a 64 × 32 × 16 latent grid, DiT-S width 384, depth 12; written, not run here).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

FIELDS = ("u", "v", "p")

SIZES = {
    "small": {"n": 128, "seeds": 4, "steps": 20, "generate": {},
              "ae": {"grid": [32, 8, 8], "radius_in": 0.10, "radius_out": 0.12, "gno_width": 16, "kernel_hidden": 32,
                     "n_freq": 4, "channels": 16, "multipliers": [1, 2], "blocks": 1, "latent_channels": 4,
                     "kl_weight": 1e-6, "points": 600},
              "ae_optim": {"optimizer": "adam", "epochs": 20, "lr": 2e-3, "weight_decay": 0.0, "warmup_steps": 10,
                           "min_lr_ratio": 0.05, "clip_norm": 1.0, "dtype": "float32"}, "ae_batch": 4,
              "ldm": {"width": 64, "depth": 3, "heads": 4, "patch": [2, 2, 2], "context_width": 64, "cond_drop": 0.1,
                      "timesteps": 1000, "val_steps": 20, "val_samples": 4},
              "ldm_optim": {"optimizer": "adamw", "epochs": 150, "lr": 1e-3, "weight_decay": 0.0, "warmup_steps": 20,
                            "min_lr_ratio": 0.05, "clip_norm": 1.0, "dtype": "float32"}, "ldm_batch": 8,
              "mgn": {"latent": 64, "layers": 6, "noise": 0.01},
              "mgn_optim": {"epochs": 20, "lr": 2e-3, "warmup_steps": 20}, "mgn_batch": 16},
    "gpu": {"n": 1000, "seeds": 8, "steps": 50,
            "generate": {"resolution": 64, "options": {"t_end": "6", "save_every": "10"}, "workers": 8},
            "ae": {"grid": [64, 32, 16], "radius_in": 0.05, "radius_out": 0.06, "gno_width": 64, "kernel_hidden": 64,
                   "n_freq": 8, "channels": 64, "multipliers": [1, 2, 4], "blocks": 2, "latent_channels": 16,
                   "dropout": 0.1, "kl_weight": 2e-7, "points": 4000},
            "ae_optim": {"optimizer": "adam", "epochs": 300, "lr": 1e-4, "weight_decay": 0.0, "warmup_steps": 100,
                         "min_lr_ratio": 0.01, "clip_norm": 1.0, "dtype": "float32"}, "ae_batch": 4,
            "ldm": {"width": 384, "depth": 12, "heads": 6, "patch": [2, 2, 2], "context_width": 256, "cond_drop": 0.1,
                    "timesteps": 1000, "val_steps": 50, "val_samples": 8},
            "ldm_optim": {"optimizer": "adamw", "epochs": 1000, "lr": 5e-5 * 4, "weight_decay": 0.0,
                          "warmup_steps": 500, "min_lr_ratio": 0.01, "clip_norm": 1.0, "dtype": "float32"},
            "ldm_batch": 16,
            "mgn": {"latent": 128, "layers": 15, "noise": 0.02},
            "mgn_optim": {"epochs": 200, "lr": 1e-4, "warmup_steps": 500}, "mgn_batch": 16},
}

#: the diffusion models of the bench: (run folder name, context)
CONTEXTS = (("text2pde-ff", "first-frame"), ("text2pde-text", "text"), ("text2pde-params", "params"))


def _config(model: dict, data: Path, out: Path, optim: dict, batch: int, device: str):
    from graphfem.training.config import DataConfig, OptimConfig, RunConfig, TrainConfig

    return TrainConfig(model=model, data=DataConfig(path=str(data), val_fraction=0.1, test_fraction=0.1,
                                                    batch_size=batch),
                       optim=OptimConfig(**optim),
                       run=RunConfig(out=str(out), seed=0, device=device, progress=False, threads=1,
                                     checkpoint_every=200))


def _fit(config) -> tuple[str, float]:
    """Train unless ``out/model.safetensors`` was trained with these settings; (what happened, seconds)."""
    from graphfem.checkpoint import read_tensors
    from graphfem.training.config import to_dict
    from graphfem.training.trainer import train

    path = Path(config.run.out) / "model.safetensors"
    def same(a: dict) -> dict:  # paths compared resolved
        model = dict(a.get("model", {}))
        if "autoencoder" in model:
            model["autoencoder"] = str(Path(model["autoencoder"]).resolve())
        return {"model": model, "optim": a.get("optim"), "data": str(Path(a.get("data", {}).get("path", "")).resolve())}

    if path.is_file():
        _, meta = read_tensors(path)
        if same(meta.get("provenance", {}).get("config", {})) == same(to_dict(config)):
            return "reused", 0.0
    start = time.perf_counter()
    train(config)
    return "trained", time.perf_counter() - start


def _spread(per_seed: list[dict]) -> dict[str, tuple[float, float]]:
    return {k: (float(np.mean([s[k] for s in per_seed])), float(np.std([s[k] for s in per_seed]))) for k in FIELDS}


def run(size: str = "small", device: str = "auto", folder: str | None = None) -> str:
    """Generate, train (or reuse) every model, score the test split and return the table (with the machine)."""
    import torch

    from graphfem.checkpoint import load_model
    from graphfem.datasets.simulations import SimulationData
    from graphfem.devices import resolve_device
    from graphfem.families.meshgraphnet import _Runner
    from graphfem.families.text2pde import (_condition, _sample_of, conditioning_of, dirichlet_of, relative_errors,
                                            sample_trajectories)
    from graphfem.physics.problem import get_problem
    from graphfem.training.trainer import split_indices

    from . import machine, timed_generate, work_folder

    cfg = SIZES[size]
    device = resolve_device(device)
    torch.set_num_threads(1)
    root, tmp = work_folder(folder)
    data_path = root / "wake.h5"
    t_gen = timed_generate("cylinder-wake", cfg["n"], data_path, **cfg["generate"]) if not data_path.is_file() else None
    data = SimulationData(data_path)
    runs = root / "runs"
    log = []
    ae_path = runs / "text2pde-ae" / "model.safetensors"
    what, t = _fit(_config({"name": "text2pde-ae", **cfg["ae"]}, data_path, runs / "text2pde-ae",
                           {"phases": [cfg["ae_optim"]]}, cfg["ae_batch"], device))
    log.append(f"autoencoder {what}" + (f" in {t:.0f} s" if t else ""))
    for name, context in CONTEXTS:
        model = {"name": "text2pde-ldm", "autoencoder": str(ae_path), "context": context, **cfg["ldm"],
                 **({"text_encoder": "auto"} if context == "text" else {})}
        what, t = _fit(_config(model, data_path, runs / name, {"phases": [cfg["ldm_optim"]]}, cfg["ldm_batch"], device))
        log.append(f"{context} diffusion {what}" + (f" in {t:.0f} s" if t else ""))
    what, t = _fit(_config({"name": "meshgraphnet", **cfg["mgn"]}, data_path, runs / "text2pde-mgn", cfg["mgn_optim"],
                           cfg["mgn_batch"], device))
    log.append(f"MeshGraphNet {what}" + (f" in {t:.0f} s" if t else ""))

    problem = get_problem("cylinder-wake")
    test = split_indices(len(data), 0.1, 0.1, 0)["test"]
    samples = [_sample_of(problem, data, i) for i in test]
    seeds = list(range(cfg["seeds"]))
    rows, times = {}, {}
    for name, context in CONTEXTS:
        model, meta = load_model(runs / name / "model.safetensors")
        model = model.to(device)
        variants = [(context, "ddim", cfg["steps"], False)]
        if context == "text":
            variants += [("text, dpm++2m", "dpm++2m", max(2, cfg["steps"] // 2), False),
                         ("unconditional", "ddim", cfg["steps"], True)]
        for label, sampler, steps, uncond in variants:
            per_seed, spent = [], []
            for seed in seeds:
                errs = {k: [] for k in FIELDS}
                for s in samples:
                    given = conditioning_of(model, problem, s)
                    cond = _condition(model, problem, s["mesh"], given.get("prompt"), given.get("first_frame"),
                                      given.get("params"), "")
                    fixed = dirichlet_of(model, problem, s["mesh"], options=s["options"])
                    start = time.perf_counter()
                    y = sample_trajectories(model, s["mesh"], s["times"], cond, [seed], steps, sampler, 1.0, device,
                                            unconditional=uncond, dirichlet=fixed)[0]
                    spent.append(time.perf_counter() - start)
                    for k, v in relative_errors(s["mesh"], y, s["y"], FIELDS).items():
                        errs[k].append(v)
                per_seed.append({k: float(np.mean(v)) for k, v in errs.items()})
            rows[label] = (_spread(per_seed), f"{sampler} {steps}")
            times[label] = float(np.mean(spent))
    mgn, meta = load_model(runs / "text2pde-mgn" / "model.safetensors")
    runner = _Runner(mgn.to(device), meta, device)
    errs, spent = {k: [] for k in FIELDS}, []
    for i, s in zip(test, samples):
        params = problem.parse(s["mesh"], s["options"])
        features = problem.features(s["mesh"], params)
        start = time.perf_counter()
        frames = runner.rollout(s["mesh"], features.x, s["y"][0], len(s["times"]) - 1)
        spent.append(time.perf_counter() - start)
        for k, v in relative_errors(s["mesh"], frames, s["y"], FIELDS).items():
            errs[k].append(v)
    rows["MeshGraphNet rollout"] = ({k: (float(np.mean(v)), 0.0) for k, v in errs.items()},
                                   f"{len(samples[0]['times']) - 1} steps")
    times["MeshGraphNet rollout"] = float(np.mean(spent))
    start = time.perf_counter()
    problem.run(samples[0]["mesh"], samples[0]["options"])
    t_fe = time.perf_counter() - start

    n_tr = len(data) - 2 * len(test)
    frames = samples[0]["times"]
    lines = [f"Text2PDE on cylinder-wake (flow past a cylinder, {len(frames)} frames, t in [{frames[0]:g}, "
             f"{frames[-1]:g}], {size} size): {n_tr} train / "
             f"{len(test)} test trajectories on their own meshes"
             + (f" (data {t_gen:.0f} s)" if t_gen is not None else " (data reused)") + "; " + "; ".join(log),
             f"relative L2 over the whole trajectory (P1 mass norm), mean over test samples; +- over "
             f"{len(seeds)} sampling seeds",
             f"{'conditioning':<22}{'sampler':>12}{'u':>16}{'v':>16}{'p':>16}{'s / trajectory':>16}"]
    for label, (stats, sampler) in rows.items():
        cells = "".join(f"{stats[k][0]:>9.3f} +- {stats[k][1]:.3f}" if stats[k][1] or label != "MeshGraphNet rollout"
                        else f"{stats[k][0]:>16.3f}" for k in FIELDS)
        lines.append(f"{label:<22}{sampler:>12}{cells}{times[label]:>16.3f}")
    lines.append(f"FE reference (BDF2 Taylor-Hood): {t_fe:.2f} s / trajectory on the first test mesh")
    lines.append("text prompts are templated captions (Problem.describe): parameter conditioning, not language "
                 "understanding; compare the params row")
    lines.append(f"machine: {machine()}")
    if tmp is not None:
        tmp.cleanup()
    return "\n".join(lines)


__all__ = ["CONTEXTS", "SIZES", "run"]
