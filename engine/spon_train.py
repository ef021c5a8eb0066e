"""Encoding, training and evaluation of SPON / SPON-MG on SPON data files.

The training loop is the engine's (AdamW, linear warm-up then cosine
decay, gradient clipping, seeded batch order), but the batches are FE
objects (:class:`graphfem.operators.spon.Batch`) and the loss is the
relative error in the norm of V_h through the FE mass (+ stiffness) matrix.
Configurations are the engine's YAML (:class:`graphfem.config.TrainConfig`)
with ``model.name: spon`` or ``spon_mg``; ``data.path`` a file from
:func:`graphfem.spon_data.generate`.

Encoding (:func:`encode`):

* ``spon-poisson``: input channels E(f')/1 and E(log κ/κ_h) by L² projection
  onto U_h = the scalar space of V_h, with κ_h = |Ω| / ∫ κ⁻¹ and
  f' = f D² / (κ_h s), D the bounding-box diameter; the output is u/s with
  s = max(|g₀|, rms(f) D² / (16 κ_h)), using linearity in (f, g).
* ``spon-hyperelastic``: E(b)/b_ref (2 channels, L² projection) and the
  traction / t_ref on the DOFs of the loaded edge (2 channels); output u/s
  with the fixed s = 0.1 (the problem is nonlinear, so no rescaling).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from graphfem.meshes import FESpace, Mesh
from graphfem.meshes.errors import InputError

from . import spon_data

HYPER_SCALE = 0.1  # displacement unit of the hyperelastic output
HYPER_LOADS = (0.1, 0.1)  # body-force and traction units

_HIERARCHIES: dict = {}


def hierarchy_for(coarse: Mesh, levels: int, order: int, vector: bool, mg_levels: int | None = None):
    """Cached :func:`~graphfem.operators.spon.hierarchy` of ``coarse`` refined ``levels`` times,
    keeping the finest ``mg_levels + 1`` spaces."""
    from graphfem.operators.spon import hierarchy

    key = (coarse.points.tobytes(), coarse.cells.tobytes(), levels, order, vector, mg_levels)
    if key not in _HIERARCHIES:
        base = coarse.refined(levels - mg_levels) if mg_levels is not None else coarse
        _HIERARCHIES[key] = hierarchy(base, levels if mg_levels is None else mg_levels, order, vector)
    return _HIERARCHIES[key]


def encode(record: "spon_data.Record", levels: int | None = None, extra_refinements: int = 0, norm: str = "l2",
           mg_levels: int = 1, with_target: bool = True):
    """A :class:`~graphfem.operators.spon.SPONSample` for a stored sample.

    ``extra_refinements`` > 0 moves the sample to a finer mesh: the inputs are
    re-encoded there and the reference is re-solved by FE (same parameters).
    The hierarchy keeps ``mg_levels`` coarse levels below the fine mesh."""
    from graphfem.operators.spon import SPONSample, l2_projection

    p = record.params
    order = int(p["order"])
    L = int(p["levels"]) + extra_refinements
    vector = record.family == "spon-hyperelastic"
    H = hierarchy_for(record.coarse, L, order, vector, min(mg_levels, L))
    space = H.fine
    scalar = FESpace(space.mesh, order) if vector else space
    n = H.graphs[-1].n_nodes
    if record.family == "spon-poisson":
        from graphfem.physics.poisson import dirichlet_dofs

        kappa = spon_data.kappa_function(p["kappa"])
        f = spon_data.fourier(p["f"])
        lo, hi = space.mesh.bounding_box
        D = float(np.linalg.norm(hi - lo))
        basis = space.scalar_basis
        dx = basis.dx  # (m, q) quadrature weights
        xq = np.asarray(basis.global_coordinates().value)
        k_h = float(dx.sum() / (dx / kappa(xq)).sum())
        rms_f = float(np.sqrt((dx * f(xq) ** 2).sum() / dx.sum()))
        g0 = max((abs(v) for v in p["dirichlet"].values()), default=0.0)
        s = max(g0, rms_f * D * D / (16 * k_h), 1e-12)
        inputs = np.stack([l2_projection(space, lambda y: f(y) * D * D / (k_h * s)),
                           l2_projection(space, lambda y: np.log(kappa(y) / k_h))], axis=1)
        dofs, values = dirichlet_dofs(space, p["dirichlet"])
        mask = np.zeros((n, 1), dtype=bool)
        vals = np.zeros((n, 1))
        mask[dofs, 0] = True
        vals[dofs, 0] = values
        target = None
        if with_target:
            target = (record.dofs if extra_refinements == 0 else
                      spon_data.solve_poisson_case(space.mesh, p, order).dofs["u"])[:, None]
    else:
        b = spon_data.body_force(p)
        inputs = np.zeros((n, 4))
        inputs[:, :2] = l2_projection(scalar, lambda y: b(y) / HYPER_LOADS[0])
        inputs[scalar.dofs_on("right"), 2:] = np.asarray(p["traction"]) / HYPER_LOADS[1]
        s = HYPER_SCALE
        mask = np.zeros((n, 2), dtype=bool)
        mask[scalar.dofs_on("left")] = True
        vals = np.zeros((n, 2))
        target = None
        if with_target:
            u = record.dofs if extra_refinements == 0 else \
                spon_data.solve_hyperelastic_case(space.mesh, p, order).dofs["displacement"]
            target = u.reshape(n, 2)
    return SPONSample(inputs, mask, vals, s, H, target, norm)


def load_samples(path: str | Path, norm: str = "l2", mg_levels: int = 1, extra_refinements: int = 0,
                 indices: Sequence[int] | None = None):
    records = spon_data.read(path)
    if indices is not None:
        records = [records[i] for i in indices]
    return [encode(r, norm=norm, mg_levels=mg_levels, extra_refinements=extra_refinements) for r in records]


def split(n: int, test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded (train, test) index lists."""
    perm = np.random.default_rng(seed).permutation(n).tolist()
    n_test = max(1, int(round(test_fraction * n)))
    return sorted(perm[n_test:]), sorted(perm[:n_test])


def build(name: str, samples, **config):
    """A registered SPON model sized for ``samples`` (in_node, out from the data),
    with the feature normalisation of ``samples`` in its buffers."""
    import torch

    from graphfem.operators import spon as _  # noqa: F401  (registers spon, spon_mg)
    from graphfem.operators import get_model

    cls = get_model(name)
    feats = np.concatenate([s.features() for s in samples])
    config = {**config, "in_node": feats.shape[1], "out": samples[0].dirichlet_mask.shape[1]}
    model = cls(cls.Config(**config))
    model.set_normalisation(feats.mean(axis=0), feats.std(axis=0))
    return model.to(torch.float32)


def fit(model, train, epochs: int = 40, lr: float = 2e-3, batch_size: int = 16, seed: int = 0,
        weight_decay: float = 1e-5, warmup_steps: int = 20, min_lr_ratio: float = 0.02, clip_norm: float = 1.0,
        device: str = "cpu", log=None) -> dict:
    """Train on ``train`` samples; returns {"loss": last epoch mean, "seconds"}."""
    import torch

    from graphfem.operators.spon import collate

    from .train import lr_factor

    torch.manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = math.ceil(len(train) / batch_size)
    total, step, start = steps * epochs, 0, time.perf_counter()
    levels = model.config.levels
    loss_mean = float("nan")
    for epoch in range(epochs):
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(len(train), generator=g).tolist()
        losses = []
        for k in range(0, len(order), batch_size):
            batch = collate([train[i] for i in order[k:k + batch_size]], levels, device)
            for group in opt.param_groups:
                group["lr"] = lr * lr_factor(step, total, warmup_steps, min_lr_ratio)
            loss = model.loss(batch).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
        loss_mean = float(np.mean(losses))
        if log is not None:
            log({"epoch": epoch, "loss": loss_mean, "time_s": time.perf_counter() - start})
    model.eval()
    return {"loss": loss_mean, "seconds": time.perf_counter() - start}


def predict(model, samples, batch_size: int = 16, device: str = "cpu") -> list[np.ndarray]:
    """Decoded coefficients (n_i, c) float64 of each sample."""
    import torch

    from graphfem.operators.spon import collate

    out = []
    model.eval()
    with torch.no_grad():
        for k in range(0, len(samples), batch_size):
            batch = collate(samples[k:k + batch_size], model.config.levels, device)
            out += batch.split(model.predict(batch))
    return out


def errors(model, samples, norm: str = "l2", device: str = "cpu") -> np.ndarray:
    """(N,) relative errors in the L² (or H¹) norm of V_h, in float64 with the
    FE matrices of :class:`~graphfem.meshes.FESpace` (independent of the
    training loss code)."""
    from graphfem.operators.spon import norm_matrix

    errs = []
    for s, u in zip(samples, predict(model, samples, device=device)):
        N = norm_matrix(s.hierarchy.fine, norm)
        e, t = u.reshape(-1) - s.target.reshape(-1), s.target.reshape(-1)
        errs.append(math.sqrt(float(e @ (N @ e)) / float(t @ (N @ t))))
    return np.asarray(errs)


def train_config(path: str | Path, overrides: Sequence[str] = ()) -> dict:
    """Train SPON / SPON-MG from an engine YAML config; writes
    ``<run.out>/model.safetensors`` and ``metrics.jsonl`` and returns the test
    errors at the training resolution."""
    import json

    import torch

    from .checkpoint import save
    from .config import load_config

    c = load_config(path, overrides)
    params = dict(c.model)
    name = params.pop("name", None)
    if name not in ("spon", "spon_mg"):
        raise InputError(f"model.name: expected spon or spon_mg, got {name!r}", path)
    if c.run.threads > 0:
        torch.set_num_threads(c.run.threads)
    records = spon_data.read(c.data.path)
    train_idx, test_idx = split(len(records), c.data.test_fraction + c.data.val_fraction, c.run.seed)
    norm = params.get("norm", "l2")
    mg = params.get("levels", 1 if name == "spon_mg" else 0)
    samples = [encode(r, norm=norm, mg_levels=max(mg, 0)) for r in records]
    torch.manual_seed(c.run.seed)
    model = build(name, [samples[i] for i in train_idx], **params)
    out = Path(c.run.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    fit(model, [samples[i] for i in train_idx], epochs=c.optim.epochs, lr=c.optim.lr, batch_size=c.data.batch_size,
        seed=c.run.seed, weight_decay=c.optim.weight_decay, warmup_steps=c.optim.warmup_steps,
        min_lr_ratio=c.optim.min_lr_ratio, clip_norm=c.optim.clip_norm, log=lines.append)
    e = errors(model, [samples[i] for i in test_idx], norm)
    final = {"final": True, f"test_rel_{norm}": float(e.mean()), f"test_rel_{norm}_max": float(e.max()),
             "train_samples": len(train_idx), "test_samples": len(test_idx)}
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines + [final]))
    family = records[0].family
    zeros = [0.0] * model.config.in_node
    save(out / "model.safetensors", model,
         {"normalisation": {"x_mean": zeros, "x_std": [1.0] * len(zeros), "y_mean": [0.0] * model.config.out,
                            "y_std": [1.0] * model.config.out, "note": "SPON normalises inside the model (buffers)"},
          "problem": {"name": family, "dim": 2, "cell_types": ["triangle"],
                      "fields": ["u"] if family == "spon-poisson" else ["displacement"],
                      "order": int(records[0].params["order"]), "features": "graphfem.spon_train.encode",
                      "options": []},
          "provenance": {"data": str(c.data.path), "split": {"train": train_idx, "test": test_idx},
                         "seed": c.run.seed, "config": asdict(c), **final}})
    return final


__all__ = ["build", "encode", "errors", "fit", "hierarchy_for", "load_samples", "predict", "split", "train_config"]
