"""One training loop for every model.

* AdamW; linear warm-up for ``warmup_steps`` then cosine decay to
  ``min_lr_ratio * lr``; gradient clipping; bf16 autocast on CUDA only.
* Loss: the validation metric itself, the per-graph relative L2 error in
  the lumped mass norm, sqrt(Σ_i w_i (ŷ_i − y_i)² / Σ_i w_i y_i²), averaged
  over graphs and fields. (A mean squared error of the normalised output
  weighted each sample by its magnitude: samples with small u/s hardly
  counted and ended with relative errors near 1.)
* Validation each epoch: relative L2 error in the (lumped) FE mass-matrix
  norm, per field, ||û − u||_M / ||u||_M, averaged over graphs.
* Determinism: the epoch-e batch order is a permutation drawn from
  ``seed`` and e; nothing else is random after initialisation, so two CPU
  runs with one seed give identical numbers.
* Checkpoint and resume: ``<out>/state.safetensors`` (weights, AdamW moments,
  position in the epoch) is written atomically every ``checkpoint_every``
  steps and at every epoch end; ``resume=True`` continues from it and ends
  with the same weights as an uninterrupted run.
* Distributed: under ``torchrun`` the model is wrapped in DDP (nccl on CUDA,
  gloo on CPU), each rank takes every world-th sample of the epoch order,
  and rank 0 writes all files.

Outputs in ``<out>``: ``model.safetensors`` (best validation error),
``state.safetensors``, ``metrics.jsonl``, ``curves.png``, ``config.yaml``.

Run as ``graphfem train CONFIG.yaml`` or ``python -m graphfem.training.trainer CONFIG.yaml``.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from graphfem.meshes.errors import GraphfemError, InputError

from graphfem.training.config import TrainConfig, load_config, to_dict

FAULT_ENV = "GRAPHFEM_FAULT_KILL_AT_STEP"  # tests: SIGKILL this process after that global step


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[int]]:
    """Seeded train/val/test split of n samples (each of val/test at least one when n >= 3)."""
    perm = np.random.default_rng(seed).permutation(n).tolist()
    n_test = max(1 if n >= 3 and test_fraction > 0 else 0, int(round(test_fraction * n)))
    n_val = max(1 if n >= 3 and val_fraction > 0 else 0, int(round(val_fraction * n)))
    return {"test": sorted(perm[:n_test]), "val": sorted(perm[n_test:n_test + n_val]),
            "train": perm[n_test + n_val:]}


def relative_l2(pred, target, mass, batch, n_graphs: int):
    """(G, c) per-graph relative L2 errors with lumped mass weights w:
    sqrt(Σ w (p − t)²) / sqrt(Σ w t²)."""
    from torch_geometric.utils import scatter

    w = mass[:, None].to(pred.dtype)
    num = scatter(w * (pred - target) ** 2, batch, dim=0, dim_size=n_graphs, reduce="sum")
    den = scatter(w * target ** 2, batch, dim=0, dim_size=n_graphs, reduce="sum")
    return (num / den.clamp_min(1e-30)).sqrt()


class Trainer:
    """Train the configured model on a dataset (see the module docstring)."""

    def __init__(self, config: TrainConfig, source: str = "config"):
        import torch

        from graphfem.datasets.simulations import SimulationDataset
        from graphfem.physics.poisson_encoding import POISSON_FEATURES
        from graphfem.surrogate import resolve_device

        self.config, self.source = config, source
        c = config
        self.rank, self.world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        if c.run.threads > 0:
            torch.set_num_threads(c.run.threads)
        device = resolve_device(c.run.device)
        if self.world > 1:
            import torch.distributed as dist

            if device.startswith("cuda"):
                device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
                torch.cuda.set_device(device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        self.device = device
        self.amp = c.optim.amp and device.startswith("cuda")
        self.out = Path(c.run.out)
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        self.data = SimulationDataset(c.data.path, skip_bad=c.data.skip_bad)
        self.split = split_indices(len(self.data), c.data.val_fraction, c.data.test_fraction, c.run.seed)
        if len(self.split["train"]) < self.world:
            raise InputError(f"data.path: {len(self.split['train'])} training samples for {self.world} ranks", source)
        self.norm = self._normalisation()
        self.features = list(POISSON_FEATURES)

        torch.manual_seed(c.run.seed)
        self.model = self._build_model().to(device)
        self.net = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(self.model, device_ids=[device] if device.startswith("cuda") else None)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=c.optim.lr, weight_decay=c.optim.weight_decay)
        self.per_rank = len(self.split["train"]) // self.world
        self.steps_per_epoch = math.ceil(self.per_rank / c.data.batch_size)
        self.total_steps = self.steps_per_epoch * c.optim.epochs
        self.epoch, self.batch_pos, self.step = 0, 0, 0
        self.best = math.inf
        self._t = {k: torch.tensor(self.norm[k], dtype=torch.float32, device=device)
                   for k in ("x_mean", "x_std", "y_mean", "y_std")}

    # ---------------------------------------------------------------- set-up
    def _normalisation(self) -> dict:
        xs = [self.data[i].x.numpy() for i in self.split["train"]]
        ys = [self.data[i].y.numpy() for i in self.split["train"]]
        x, y = np.concatenate(xs).astype(np.float64), np.concatenate(ys).astype(np.float64)
        x_std, y_std = x.std(axis=0), y.std(axis=0)
        return {"x_mean": x.mean(axis=0).tolist(), "x_std": np.where(x_std > 1e-6, x_std, 1.0).tolist(),
                "y_mean": y.mean(axis=0).tolist(), "y_std": np.where(y_std > 1e-6, y_std, 1.0).tolist()}

    def _build_model(self):
        from graphfem.checkpoint import build_model

        params = dict(self.config.model)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise InputError("model.name: expected the name of a registered model", self.source)
        g = self.data[self.split["train"][0]]
        fixed = {"in_node": g.x.shape[1], "in_edge": g.edge_attr.shape[1], "out": g.y.shape[1]}
        for key, value in fixed.items():
            if key in params and params[key] != value:
                raise InputError(f"model.{key}: the data gives {value}, the config says {params[key]}", self.source)
        from graphfem.operators import get_model
        import dataclasses

        known = {f.name for f in dataclasses.fields(get_model(name).Config)}
        for key, value in params.items():
            if key not in known:
                raise InputError(f"unknown key 'model.{key}'; {name} takes: {', '.join(sorted(known))}", self.source)
            default = getattr(get_model(name).Config, key, None)
            if type(default) in (int, float, bool) and not isinstance(value, type(default)):
                raise InputError(f"model.{key}: expected {type(default).__name__}, got {value!r}", self.source)
        return build_model(name, {**params, **fixed}, self.source)

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches (dataset indices) of epoch ``epoch``."""
        import torch

        g = torch.Generator().manual_seed(self.config.run.seed * 1_000_003 + epoch)
        order = [self.split["train"][k] for k in torch.randperm(len(self.split["train"]), generator=g).tolist()]
        mine = order[: self.per_rank * self.world][self.rank:: self.world]
        bs = self.config.data.batch_size
        return [mine[k:k + bs] for k in range(0, len(mine), bs)]

    def _collate(self, indices: Sequence[int]):
        from torch_geometric.data import Batch

        return Batch.from_data_list([self.data[i] for i in indices]).to(self.device)

    def _forward(self, batch):
        import torch

        x = (batch.x - self._t["x_mean"]) / self._t["x_std"]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            out = self.net(x, batch.edge_index, batch.edge_attr)
        return out.float()

    # ---------------------------------------------------------------- state
    def save_state(self) -> None:
        from graphfem.checkpoint import save_tensors

        if self.rank != 0:
            return
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt = self.opt.state_dict()
        for idx, st in opt["state"].items():
            for key, value in st.items():
                tensors[f"optim.{idx}.{key}"] = value
        meta = {"kind": "training-state", "epoch": self.epoch, "batch": self.batch_pos, "step": self.step,
                "best": self.best if math.isfinite(self.best) else None, "param_groups": opt["param_groups"],
                "optim_keys": {str(i): sorted(st) for i, st in opt["state"].items()}}
        save_tensors(self.out / "state.safetensors", tensors, meta)

    def load_state(self) -> None:
        import torch

        from graphfem.checkpoint import read_tensors

        path = self.out / "state.safetensors"
        tensors, meta = read_tensors(path)
        if meta.get("kind") != "training-state":
            raise GraphfemError("not a training-state file", path)
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        state = {int(i): {key: tensors[f"optim.{i}.{key}"].to(self.device) for key in keys}
                 for i, keys in meta["optim_keys"].items()}
        self.opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        for st in self.opt.state.values():  # AdamW keeps 'step' on the CPU
            if "step" in st:
                st["step"] = st["step"].cpu() if isinstance(st["step"], torch.Tensor) else st["step"]
        self.epoch, self.batch_pos, self.step = meta["epoch"], meta["batch"], meta["step"]
        self.best = math.inf if meta["best"] is None else meta["best"]
        if self.rank == 0 and (self.out / "metrics.jsonl").exists():  # drop lines logged after the saved step
            lines = (self.out / "metrics.jsonl").read_text().splitlines()
            kept = [ln for ln in lines if json.loads(ln).get("step", 0) <= self.step]
            (self.out / "metrics.jsonl").write_text("".join(ln + "\n" for ln in kept))

    # ---------------------------------------------------------------- metrics
    def evaluate(self, indices: Sequence[int]) -> dict[str, float]:
        """Mean/max relative L2 error (lumped mass norm) per field over ``indices``."""
        import torch

        self.model.eval()
        errors = []
        with torch.no_grad():
            bs = self.config.data.batch_size
            for k in range(0, len(indices), bs):
                batch = self._collate(indices[k:k + bs])
                pred = self._forward(batch) * self._t["y_std"] + self._t["y_mean"]
                errors.append(relative_l2(pred, batch.y, batch.mass, batch.batch, batch.num_graphs).cpu())
        self.model.train()
        if not errors:
            return {}
        e = torch.cat(errors).numpy()
        out = {}
        for c, name in enumerate(["u"][: e.shape[1]]):
            out[f"rel_l2_{name}"] = float(e[:, c].mean())
            out[f"rel_l2_{name}_max"] = float(e[:, c].max())
        return out

    def log(self, record: dict) -> None:
        if self.rank == 0:
            with open(self.out / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")

    def plot(self) -> None:
        """``curves.png``: training loss per step and validation error per epoch."""
        if self.rank != 0:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from graphfem.meshes.io import atomic_path

        rows = [json.loads(ln) for ln in (self.out / "metrics.jsonl").read_text().splitlines()]
        train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
        val = [(r["step"], r["val_rel_l2_u"]) for r in rows if "val_rel_l2_u" in r]
        fig, ax = plt.subplots(figsize=(6, 4))
        if train:
            ax.semilogy(*zip(*train), lw=0.8, label="train loss (relative L2, mass norm)")
        if val:
            ax.semilogy(*zip(*val), "o-", label="validation relative L2 (mass norm)")
        ax.set_xlabel("optimiser step")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_path(self.out / "curves.png") as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)

    # ---------------------------------------------------------------- loop
    def fit(self) -> dict:
        import torch
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        c = self.config
        kill_at = int(os.environ.get(FAULT_ENV, 0))
        if self.rank == 0:
            import yaml

            (self.out / "config.yaml").write_text(yaml.safe_dump(to_dict(c), sort_keys=False))
        show = c.run.progress and self.rank == 0
        columns = (TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.3e}"), TimeRemainingColumn())
        start = time.perf_counter()
        with Progress(*columns, disable=not show, transient=True) as bar:
            while self.epoch < c.optim.epochs:
                batches = self.batches(self.epoch)
                task = bar.add_task("train", total=len(batches), completed=self.batch_pos, epoch=self.epoch, loss=0.0)
                while self.batch_pos < len(batches):
                    batch = self._collate(batches[self.batch_pos])
                    for group in self.opt.param_groups:
                        group["lr"] = c.optim.lr * lr_factor(self.step, self.total_steps, c.optim.warmup_steps,
                                                             c.optim.min_lr_ratio)
                    pred = self._forward(batch) * self._t["y_std"] + self._t["y_mean"]
                    loss = relative_l2(pred, batch.y, batch.mass, batch.batch, batch.num_graphs).mean()
                    self.opt.zero_grad(set_to_none=True)
                    loss.backward()
                    grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.optim.clip_norm)
                    self.opt.step()
                    self.step += 1
                    self.batch_pos += 1
                    self.log({"step": self.step, "epoch": self.epoch, "loss": float(loss.detach()),
                              "grad_norm": float(grad_norm), "lr": self.opt.param_groups[0]["lr"]})
                    bar.update(task, advance=1, loss=float(loss.detach()))
                    if self.step % c.run.checkpoint_every == 0 and self.batch_pos < len(batches):
                        self.save_state()
                    if kill_at and self.step == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)
                bar.remove_task(task)
                val = self.evaluate(self.split["val"])
                record = {"step": self.step, "epoch": self.epoch, **{f"val_{k}": v for k, v in val.items()},
                          "time_s": time.perf_counter() - start}
                self.log(record)
                if val and val["rel_l2_u"] < self.best:
                    self.best = val["rel_l2_u"]
                    self.save_model({"best_epoch": self.epoch, **{f"val_{k}": v for k, v in val.items()}})
                self.epoch += 1
                self.batch_pos = 0
                self.save_state()
                self.plot()
        test = self.evaluate(self.split["test"])
        final = {"step": self.step, "final": True, **{f"test_{k}": v for k, v in test.items()},
                 "best_val_rel_l2_u": self.best}
        if self.world > 1:
            final["rank_param_max_diff"] = self._rank_parameter_difference()
        self.log(final)
        if self.rank == 0 and not (self.out / "model.safetensors").exists():
            self.save_model({})
        if self.rank == 0:
            self._add_test_metrics(test)
        return final

    def _rank_parameter_difference(self) -> float:
        """Largest difference between this rank's parameters and any other rank's."""
        import torch
        import torch.distributed as dist

        flat = torch.cat([p.detach().reshape(-1).float() for p in self.model.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(self.world)]
        dist.all_gather(gathered, flat)
        return float(max((g - gathered[0]).abs().max() for g in gathered))

    def _provenance(self, extra: dict) -> dict:
        import graphfem

        c = self.config
        return {"data": str(c.data.path), "n_samples": len(self.data), "split": self.split, "seed": c.run.seed,
                "epochs": self.epoch + 1, "steps": self.step, "world_size": self.world, "device": self.device,
                "config": to_dict(c), "graphfem_version": graphfem.__version__,
                "saved": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}

    def save_model(self, extra: dict) -> None:
        from graphfem.checkpoint import save

        if self.rank != 0:
            return
        problem = {"name": self.data.problem, "dim": 2, "cell_types": ["triangle"], "fields": ["u"],
                   "features": self.features, "options": ["kappa", "source", "dirichlet", "neumann"]}
        save(self.out / "model.safetensors", self.model,
             {"normalisation": self.norm, "problem": problem, "provenance": self._provenance(extra)})

    def _add_test_metrics(self, test: dict) -> None:
        from graphfem.checkpoint import read_tensors, save_tensors

        path = self.out / "model.safetensors"
        tensors, meta = read_tensors(path)
        meta["provenance"].update({f"test_{k}": v for k, v in test.items()})
        meta.pop("format", None)
        save_tensors(path, tensors, meta)


def _trains_on_fe_spaces(config: TrainConfig) -> bool:
    """Whether the configured model consumes FE-space batches (SPON, SPON-MG:
    ``consumes_fe_batches = True``) instead of the nodal graphs of this loop."""
    from graphfem.operators import get_model

    try:
        return bool(getattr(get_model(config.model.get("name")), "consumes_fe_batches", False))
    except (GraphfemError, TypeError):  # a bad name: the Trainer reports it with its source
        return False


def train(config: TrainConfig, resume: bool = False, source: str = "config") -> dict:
    """Train (or resume) and return the final metrics record. Models that
    consume FE-space batches train through :func:`graphfem.families.spon.train`
    (exact FE decoder, FE-norm loss)."""
    if _trains_on_fe_spaces(config):
        from graphfem.families.spon import train as train_fe

        return train_fe(config, resume=resume, source=source)
    trainer = Trainer(config, source)
    if resume:
        if (trainer.out / "state.safetensors").exists():
            trainer.load_state()
        elif trainer.rank == 0:
            print(f"{trainer.out / 'state.safetensors'}: no saved state, starting from scratch")
    final = trainer.fit()
    if trainer.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return final


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m graphfem.training.trainer CONFIG.yaml [--set key=value]... [--resume]`` (also under torchrun)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="graphfem train")
    parser.add_argument("config")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
        final = train(config, resume=args.resume, source=args.config)
    except GraphfemError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps(final))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
