"""The one training loop, for every model family.

The family (:mod:`graphfem.families`) is found from ``model.name``; it sizes
the model from the data, turns items into batches and gives the loss. The
trainer owns everything else:

* optimiser phases (``optim.phases``: AdamW, Adam, L-BFGS; e.g. Adam then
  L-BFGS in float64), each Adam phase with linear warm-up then cosine decay
  and gradient clipping; bf16 autocast on CUDA for float32 phases;
* validation after every epoch (every ``checkpoint_every`` L-BFGS steps):
  the family's metrics, the first of which picks the best checkpoint;
* determinism: the batch order of (phase, epoch) is a permutation drawn from
  ``seed``, and every random draw of step s comes from a generator seeded
  with (seed, phase, s), so two CPU runs with one seed give identical numbers;
* checkpoint and resume: ``<out>/state.safetensors`` (weights, optimiser
  state, phase, epoch, position in the epoch) is written atomically every
  ``checkpoint_every`` steps and at every epoch end; ``resume=True``
  continues from it and ends with the same weights as an uninterrupted run;
* distributed: under ``torchrun`` the model is wrapped in DDP (nccl on CUDA,
  gloo on CPU), each rank takes every world-th item of the epoch order, and
  rank 0 writes all files.

Outputs in ``<out>``: ``model.safetensors`` (best validation metric; the
test metrics are measured on these weights and stored with them),
``state.safetensors``, ``metrics.jsonl``, ``curves.png``, ``config.yaml``.
The folder is created only once the data, the model and the family pairing
have been checked.

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

from .config import TrainConfig, load_config, to_dict
from graphfem.devices import resolve_device

from .optim import load_state_tensors, lr_factor, make_optimizer, state_tensors

FAULT_ENV = "GRAPHFEM_FAULT_KILL_AT_STEP"  # tests: SIGKILL this process after that global step


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[int]]:
    """Seeded train/val/test split of n samples (each of val/test at least one when n >= 3)."""
    perm = np.random.default_rng(seed).permutation(n).tolist()
    n_test = max(1 if n >= 3 and test_fraction > 0 else 0, int(round(test_fraction * n)))
    n_val = max(1 if n >= 3 and val_fraction > 0 else 0, int(round(val_fraction * n)))
    return {"test": sorted(perm[:n_test]), "val": sorted(perm[n_test:n_test + n_val]),
            "train": perm[n_test + n_val:]}


class Trainer:
    """Train the configured model on a data set (see the module docstring)."""

    def __init__(self, config: TrainConfig, source: str = "config"):
        import torch

        from graphfem.datasets.simulations import SimulationData
        from graphfem.families import families_for, family_of_model

        self.config, self.source = config, source
        c = config
        self.rank, self.world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        if c.run.threads > 0:
            torch.set_num_threads(c.run.threads)
        params = dict(c.model)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise InputError("model.name: expected the name of a registered model", source)
        self.family = family_of_model(name, source)
        self.phases = c.optim.phase_list(source)
        self.data = SimulationData(c.data.path, skip_bad=c.data.skip_bad)
        if not self.family.trains_on(self.data):
            able = families_for(self.data)
            raise InputError(f"{name} cannot train on {self.data.family} data; "
                             + (f"models that can: {', '.join(able)}" if able else
                                "no registered model family trains on it yet"), self.data.path)
        device = resolve_device(c.run.device)
        if self.world > 1:
            import torch.distributed as dist

            if device.startswith("cuda"):
                device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
                torch.cuda.set_device(device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        self.device = device
        self.split = split_indices(len(self.data), c.data.val_fraction, c.data.test_fraction, c.run.seed)
        torch.manual_seed(c.run.seed)
        self.setup = self.family.setup(self.data, self.split, {"name": name, **params}, source)
        if len(self.setup.train) < self.world:
            raise InputError(f"data.path: {len(self.setup.train)} training items for {self.world} ranks", source)
        self.model = self.setup.model.to(device)
        self.out = Path(c.run.out)
        self.phase, self.epoch, self.batch_pos, self.step, self.phase_step = 0, 0, 0, 0, 0
        self.best = math.inf
        self._plotted = -math.inf  # wall time of the last curves.png
        self._start_phase(0)

    # ---------------------------------------------------------------- set-up
    def _start_phase(self, index: int) -> None:
        import torch

        self.phase = index
        p = self.phases[index]
        self.dtype = torch.float64 if p.dtype == "float64" else torch.float32
        self.model.to(self.dtype)
        self.net = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(self.model, device_ids=[self.device]
                                               if self.device.startswith("cuda") else None)
        self.opt = make_optimizer(p, self.model.parameters())
        self.amp = self.config.optim.amp and self.device.startswith("cuda") and p.dtype == "float32"
        self.per_rank = len(self.setup.train) // self.world
        self.steps_per_epoch = math.ceil(self.per_rank / self.config.data.batch_size)
        self.total_steps = p.steps if p.optimizer == "lbfgs" else self.steps_per_epoch * p.epochs

    def batches(self, epoch: int) -> list[list]:
        """This rank's batches (training items) of ``epoch`` in the current phase."""
        import torch

        c = self.config
        g = torch.Generator().manual_seed(c.run.seed * 1_000_003 + self.phase * 7_919 + epoch)
        train = self.setup.train
        order = [train[k] for k in torch.randperm(len(train), generator=g).tolist()]
        mine = order[: self.per_rank * self.world][self.rank:: self.world]
        bs = c.data.batch_size
        return [mine[k:k + bs] for k in range(0, len(mine), bs)]

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.config.run.seed, self.phase, self.phase_step])

    def _loss(self, batch):
        import torch

        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            # float32 under AMP; a float64 phase keeps a float64 loss (L-BFGS line searches compare it)
            return self.family.loss(self.net, batch).to(torch.float32 if self.amp else self.dtype)

    # ---------------------------------------------------------------- state
    def save_state(self) -> None:
        from graphfem.checkpoint import save_tensors

        if self.rank != 0:
            return
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        optim, layout = state_tensors(self.opt)
        tensors.update(optim)
        meta = {"kind": "training-state", "phase": self.phase, "epoch": self.epoch, "batch": self.batch_pos,
                "step": self.step, "phase_step": self.phase_step,
                "best": self.best if math.isfinite(self.best) else None, "optim": layout}
        save_tensors(self.out / "state.safetensors", tensors, meta)

    def load_state(self) -> None:
        from graphfem.checkpoint import read_tensors

        path = self.out / "state.safetensors"
        tensors, meta = read_tensors(path)
        if meta.get("kind") != "training-state" or "optim" not in meta:
            raise GraphfemError("not a training-state file of this graphfem version", path)
        if not 0 <= meta["phase"] < len(self.phases):
            raise GraphfemError(f"the saved state is in phase {meta['phase']}, the config has "
                                f"{len(self.phases)} phase(s)", path)
        self._start_phase(meta["phase"])
        weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(weights)
        except RuntimeError as exc:
            raise GraphfemError(f"the saved weights do not fit this config's model: {str(exc).splitlines()[0]}",
                                path) from None
        load_state_tensors(self.opt, tensors, meta["optim"], self.device)
        self.epoch, self.batch_pos, self.step = meta["epoch"], meta["batch"], meta["step"]
        self.phase_step = meta["phase_step"]
        self.best = math.inf if meta["best"] is None else meta["best"]
        if self.rank == 0 and (self.out / "metrics.jsonl").exists():  # drop lines logged after the saved step
            lines = (self.out / "metrics.jsonl").read_text().splitlines()
            kept = [ln for ln in lines if json.loads(ln).get("step", 0) <= self.step]
            (self.out / "metrics.jsonl").write_text("".join(ln + "\n" for ln in kept))

    # ---------------------------------------------------------------- metrics
    def validate(self, items: Sequence) -> dict[str, float]:
        import torch

        if not items:
            return {}
        self.model.eval()
        with torch.no_grad():
            metrics = self.family.validate(self.setup, self.model, items, self.device)
        self.model.train()
        return metrics

    def log(self, record: dict) -> None:
        if self.rank == 0:
            with open(self.out / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")

    def plot(self) -> None:
        """``curves.png``: training loss per step and the validation metric."""
        if self.rank != 0:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from graphfem.meshes.io import atomic_path

        rows = [json.loads(ln) for ln in (self.out / "metrics.jsonl").read_text().splitlines()]
        train = [(r["step"], r["loss"]) for r in rows if "loss" in r and r["loss"] > 0]
        key = next((k for r in rows for k in r if k.startswith("val_")), None)
        val = [(r["step"], r[key]) for r in rows if key in r] if key else []
        fig, ax = plt.subplots(figsize=(6.4, 4))
        if train:
            ax.semilogy(*zip(*train), lw=0.8, label="training loss")
        if val:
            ax.semilogy(*zip(*val), "o-", ms=3, label=f"validation {key[4:]}")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("loss / metric (log scale)")
        ax.set_title(f"{self.config.model['name']} on {Path(self.config.data.path).name}")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_path(self.out / "curves.png") as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)

    def _after_validation(self, val: dict, start: float) -> None:
        record = {"step": self.step, "phase": self.phase, "epoch": self.epoch,
                  **{f"val_{k}": v for k, v in val.items()}, "time_s": time.perf_counter() - start}
        self.log(record)
        score = next(iter(val.values())) if val else math.inf
        if val and score < self.best:
            self.best = score
            self.save_model({"best_phase": self.phase, "best_epoch": self.epoch,
                             **{f"val_{k}": v for k, v in val.items()}})

    # ---------------------------------------------------------------- loop
    def fit(self) -> dict:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        c = self.config
        kill_at = int(os.environ.get(FAULT_ENV, 0))
        if self.rank == 0:
            import yaml

            self.out.mkdir(parents=True, exist_ok=True)
            if self.step == 0:  # a fresh run: the metrics and model of an earlier run in this folder are not this run's
                (self.out / "metrics.jsonl").unlink(missing_ok=True)
                (self.out / "model.safetensors").unlink(missing_ok=True)
            (self.out / "config.yaml").write_text(yaml.safe_dump(to_dict(c), sort_keys=False))
        show = c.run.progress and self.rank == 0
        columns = (TextColumn("phase {task.fields[phase]} epoch {task.fields[epoch]}"), BarColumn(),
                   MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.3e}"), TimeRemainingColumn())
        start = time.perf_counter()
        self.model.train()
        console = Console(stderr=True)  # stdout is for the final JSON line; no bar (nor its blank line) off a terminal
        with Progress(*columns, console=console, disable=not show or not console.is_terminal, transient=True) as bar:
            while self.phase < len(self.phases):
                p = self.phases[self.phase]
                if p.optimizer == "lbfgs":
                    self._lbfgs_phase(p, bar, start, kill_at)
                else:
                    self._gradient_phase(p, bar, start, kill_at)
                if self.phase + 1 == len(self.phases):
                    break
                self.epoch, self.batch_pos, self.phase_step = 0, 0, 0
                self._start_phase(self.phase + 1)
                self.save_state()
        self._restore_best()
        test = self.validate(self.setup.test)
        first = next(iter(test), "metric")
        final = {"step": self.step, "final": True, **{f"test_{k}": v for k, v in test.items()},
                 f"best_val_{first}": self.best if math.isfinite(self.best) else None}
        if self.world > 1:
            final["rank_param_max_diff"] = self._rank_parameter_difference()
        self.log(final)
        if self.rank == 0 and not (self.out / "model.safetensors").exists():
            self.save_model({})
        if self.rank == 0:
            self._add_test_metrics(test)
            self.plot()
        return final

    def _gradient_phase(self, p, bar, start: float, kill_at: int) -> None:
        import torch

        c = self.config
        while self.epoch < p.epochs:
            batches = self.batches(self.epoch)
            task = bar.add_task("train", total=len(batches), completed=self.batch_pos, epoch=self.epoch,
                                phase=self.phase, loss=0.0)
            while self.batch_pos < len(batches):
                batch = self.family.collate(self.setup, batches[self.batch_pos], self._rng(), self.device,
                                            self.dtype)
                for group in self.opt.param_groups:
                    group["lr"] = p.lr * lr_factor(self.phase_step, self.total_steps, p.warmup_steps,
                                                   p.min_lr_ratio)
                loss = self._loss(batch)
                if not torch.isfinite(loss):
                    raise GraphfemError(f"the training loss became {float(loss)} at step {self.step}; lower "
                                        "optim.lr or check the data", c.data.path)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), p.clip_norm) \
                    if p.clip_norm > 0 else torch.tensor(0.0)
                self.opt.step()
                self.step += 1
                self.phase_step += 1
                self.batch_pos += 1
                self.log({"step": self.step, "phase": self.phase, "epoch": self.epoch, "loss": float(loss.detach()),
                          "grad_norm": float(grad_norm), "lr": self.opt.param_groups[0]["lr"]})
                bar.update(task, advance=1, loss=float(loss.detach()))
                if self.step % c.run.checkpoint_every == 0 and self.batch_pos < len(batches):
                    self.save_state()
                if kill_at and self.step == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            bar.remove_task(task)
            self._after_validation(self.validate(self.setup.val), start)
            self.epoch += 1
            self.batch_pos = 0
            self.save_state()
            if time.perf_counter() - self._plotted >= 30.0:  # a figure costs ~0.3 s: not after every short epoch
                self.plot()
                self._plotted = time.perf_counter()

    def _lbfgs_phase(self, p, bar, start: float, kill_at: int) -> None:
        c = self.config
        task = bar.add_task("train", total=p.steps, completed=self.phase_step, epoch="-", phase=self.phase,
                            loss=0.0)
        while self.phase_step < p.steps:
            batch = self.family.collate(self.setup, self.setup.train, self._rng(), self.device, self.dtype)

            def closure():
                self.opt.zero_grad(set_to_none=True)
                value = self._loss(batch)
                value.backward()
                return value

            loss = float(self.opt.step(closure).detach())
            if not math.isfinite(loss):
                raise GraphfemError(f"the L-BFGS loss became {loss} at step {self.step}", c.data.path)
            self.step += 1
            self.phase_step += 1
            self.log({"step": self.step, "phase": self.phase, "loss": loss})
            bar.update(task, advance=1, loss=loss)
            if self.phase_step % c.run.checkpoint_every == 0 or self.phase_step == p.steps:
                self._after_validation(self.validate(self.setup.val), start)
                self.save_state()
            if kill_at and self.step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        bar.remove_task(task)
        self.plot()

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
        return {"data": str(c.data.path), "data_problem": self.data.family, "n_samples": len(self.data),
                "split": self.split, "seed": c.run.seed, "phase": self.phase, "epochs": self.epoch + 1,
                "steps": self.step, "world_size": self.world, "device": self.device, "config": to_dict(c),
                "graphfem_version": graphfem.__version__, "saved": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}

    def save_model(self, extra: dict) -> None:
        from graphfem.checkpoint import save

        if self.rank != 0:
            return
        save(self.out / "model.safetensors", self.model,
             {"family": self.family.name, **self.setup.meta, "provenance": self._provenance(extra)})

    def _restore_best(self) -> None:
        """Load the best validation checkpoint's weights (if this run wrote one) into the model, so that
        the test metrics stored with ``model.safetensors`` are those of the weights it holds."""
        import torch

        from graphfem.checkpoint import read_tensors

        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()  # rank 0 may have written the best checkpoint at the last validation
        path = self.out / "model.safetensors"
        if path.exists():
            tensors, _ = read_tensors(path)
            with torch.no_grad():
                self.model.load_state_dict({k: v.to(self.device) for k, v in tensors.items()})

    def _add_test_metrics(self, test: dict) -> None:
        from graphfem.checkpoint import read_tensors, save_tensors

        path = self.out / "model.safetensors"
        tensors, meta = read_tensors(path)
        meta["provenance"].update({f"test_{k}": v for k, v in test.items()})
        meta.pop("format", None)
        save_tensors(path, tensors, meta)


def train(config: TrainConfig, resume: bool = False, source: str = "config") -> dict:
    """Train (or resume) and return the final metrics record."""
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


__all__ = ["FAULT_ENV", "Trainer", "lr_factor", "main", "split_indices", "train"]

if __name__ == "__main__":
    raise SystemExit(main())
