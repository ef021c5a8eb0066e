"""GIOROM in the engine: MPM trajectory datasets (HDF5), training of the
sparse time stepper and of the neural field, checkpoints, dense rollouts.

The engine's :class:`graphfem.training.trainer.Trainer` reads Poisson graphs; the
stepper trains on (trajectory, frame) windows instead, so this module keeps
its own small loop (Adam, seeded, one-step normalised-acceleration MSE) and
stores models with :func:`graphfem.checkpoint.save_tensors` (one
``.safetensors`` file: weights, normalisation buffers, JSON config).

HDF5 layout written by :func:`write_trajectories`::

    /                   attrs: kind = "lagrangian", material, dim, wall_lower, wall_upper, frame_dt, seed
    /traj_000000/x      (T, N, d) positions
    /traj_000000/material (N,) material ids
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from graphfem.meshes import PointCloud, Trajectory
from graphfem.meshes.errors import GraphfemError, InputError
from graphfem.meshes.io import atomic_path


# ------------------------------------------------------------------ data
def mpm_dataset(material: str, n: int, frames: int = 40, frame_dt: float = 0.01, seed: int = 0, dim: int = 2,
                n_grid: int = 32, device: str = "auto") -> tuple[list[Trajectory], dict]:
    """``n`` MPM trajectories of random boxes/balls of one material.

    Returns (trajectories, attrs) where attrs holds the walls and frame step.
    """
    from graphfem.physics import mpm

    trajs = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        pts, vel, cfg = mpm.random_scene(material, rng, dim=dim, n_grid=n_grid)
        trajs.append(mpm.MPM(pts, mpm.material(material), cfg, velocities=vel, device=device).run(frames, frame_dt))
    lo, hi = cfg.walls()
    return trajs, {"material": material, "dim": dim, "wall_lower": float(lo[0]), "wall_upper": float(hi[0]),
                   "frame_dt": frame_dt, "seed": seed}


def write_trajectories(path: str | Path, trajs: Sequence[Trajectory], attrs: dict) -> Path:
    """Write particle trajectories to HDF5 atomically (layout in the module docstring)."""
    import h5py

    import graphfem

    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update({"kind": "lagrangian", "graphfem_version": graphfem.__version__, "count": len(trajs),
                         **attrs})
        for i, t in enumerate(trajs):
            g = h5.create_group(f"traj_{i:06d}")
            g.create_dataset("x", data=t.fields["x"])
            g.create_dataset("times", data=t.times)
            g.create_dataset("material", data=np.asarray(t.domain.point_data.get(
                "material", np.zeros(t.domain.n_points, dtype=np.int64))))
    return path


def read_trajectories(path: str | Path) -> tuple[list[Trajectory], dict]:
    """(trajectories, attrs) of a file written by :func:`write_trajectories`."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise GraphfemError("no such trajectory file", path)
    try:
        with h5py.File(path, "r") as h5:
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in h5.attrs.items()}
            if attrs.get("kind") != "lagrangian":
                raise GraphfemError("not a Lagrangian trajectory file (kind attribute missing)", path)
            trajs = []
            for name in sorted(k for k in h5 if k.startswith("traj_")):
                x = h5[name]["x"][()]
                cloud = PointCloud(x[0], {"material": h5[name]["material"][()]}, source=f"{path}:{name}")
                trajs.append(Trajectory(h5[name]["times"][()], {"x": x}, cloud))
    except OSError as exc:
        raise GraphfemError(f"cannot read HDF5: {' '.join(str(exc).split())}", path) from None
    if not trajs:
        raise GraphfemError("the file holds no trajectory", path)
    return trajs, attrs


# ------------------------------------------------------------------ training
def _windows(xs, window: int) -> list[tuple[int, int]]:
    """(trajectory, t) pairs with W past velocities and a next frame."""
    return [(i, t) for i, x in enumerate(xs) for t in range(window, len(x) - 1)]


def train_stepper(trajs: Sequence[Trajectory], config: dict, sparse: int | float = 0.1, steps: int = 300,
                  lr: float = 1e-3, batch: int = 2, seed: int = 0, sampling: str = "fps", log_every: int = 0,
                  device: str = "cpu"):
    """Train a :class:`GIOROM` stepper on sampled particles of ``trajs``.

    Args:
        config: fields of :class:`GIOROMConfig` (dim, radius, walls, ...).
        sparse: particles per trajectory (int) or a fraction of N (float ≤ 1).
        steps: optimiser steps of one-step normalised-acceleration MSE
            (equal to the position MSE up to σ_a², so no second term).

    Returns:
        (model, history) with history the per-step losses.
    """
    import torch

    from graphfem.operators.giorom import GIOROM, GIOROMConfig, noisy_sample, sample_particles

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = GIOROM(GIOROMConfig(**config)).to(device)
    c = model.config
    subsets = []
    for tr in trajs:
        N = tr.domain.n_points
        n = int(sparse) if sparse > 1 else max(c.window + 2, int(round(sparse * N)))
        subsets.append(sample_particles(tr.fields["x"][0], min(n, N), sampling, seed))
    xs = [tr.fields["x"][:, s] for tr, s in zip(trajs, subsets)]
    mats = [np.asarray(tr.domain.point_data["material"])[s] for tr, s in zip(trajs, subsets)]
    vel = np.concatenate([np.diff(x, axis=0).reshape(-1, c.dim) for x in xs])
    acc = np.concatenate([np.diff(x, 2, axis=0).reshape(-1, c.dim) for x in xs])
    model.set_normalisation(vel.mean(0), vel.std(0) + 1e-12, acc.mean(0),
                            np.sqrt(acc.var(0) + c.noise_std ** 2) + 1e-12)
    windows = _windows(xs, c.window)
    if not windows:
        raise InputError(f"trajectories need more than {c.window + 1} frames")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.05)
    losses = []
    for step in range(steps):
        picks = [windows[k] for k in rng.integers(len(windows), size=batch)]
        hist, targets, mm = [], [], []
        for i, t in picks:
            h, a = noisy_sample(xs[i][t - c.window:t + 1], xs[i][t + 1], c.noise_std, rng)
            hist.append(h)
            targets.append(a)
            mm.append(mats[i])
        g = model.graph(hist, mm)
        target = (torch.as_tensor(np.concatenate(targets), dtype=torch.float32, device=device)
                  - model.acc_mean) / model.acc_std
        loss = torch.nn.functional.mse_loss(model(g), target)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if log_every and (step + 1) % log_every == 0:
            print(f"step {step + 1}: loss {np.mean(losses[-log_every:]):.4f}", flush=True)
    model.eval()
    model.subsets = subsets
    return model, losses


def train_field(references: Sequence[np.ndarray], displacements: Sequence[np.ndarray], sparse: Sequence[np.ndarray],
                config: dict, steps: int = 200, lr: float = 3e-3, seed: int = 0):
    """Train a :class:`NeuralField` to map sparse displacements to all points.

    Args:
        references: per body, (N, d) reference positions (the queries).
        displacements: per body, (T, N, d) displacements.
        sparse: per body, (n,) indices of the known particles.

    Returns:
        (field, losses); the loss is the mean squared displacement error at all points.
    """
    import torch

    from graphfem.operators.giorom import NeuralField, NeuralFieldConfig

    torch.manual_seed(seed)
    field = NeuralField(NeuralFieldConfig(**config))
    ops = [field.operator(X[s], X) for X, s in zip(references, sparse)]
    data = [(torch.as_tensor(U[:, s], dtype=torch.float32), torch.as_tensor(U, dtype=torch.float32))
            for U, s in zip(displacements, sparse)]
    scale = float(np.mean([np.mean(U ** 2) for U in displacements])) or 1.0
    opt = torch.optim.Adam(field.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        k = int(rng.integers(len(ops)))
        pred = ops[k](data[k][0])
        loss = ((pred - data[k][1]) ** 2).mean() / scale
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    field.eval()
    return field, losses


# ------------------------------------------------------------------ checkpoints
def load_model(path: str | Path, device: str = "cpu"):
    """(model, metadata) of a GIOROM stepper or neural-field checkpoint (never unpickles)."""
    from graphfem.checkpoint import load_model as load_checkpoint

    model, meta = load_checkpoint(path)
    if meta.get("model") not in ("giorom", "giorom-field"):
        raise GraphfemError(f"not a GIOROM checkpoint (model {meta.get('model')!r})", path)
    return model.to(device), meta


# ------------------------------------------------------------------ metrics and rollouts
def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance: mean NN squared distance a→b plus b→a."""
    from scipy.spatial import cKDTree

    return float(np.mean(cKDTree(b).query(a)[0] ** 2) + np.mean(cKDTree(a).query(b)[0] ** 2))


def dense_rollout(stepper, field, history: np.ndarray, material: np.ndarray, steps: int, sparse: np.ndarray,
                  queries: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Roll out the sparse particles and reconstruct the dense body.

    Args:
        history: (W + 1, N, d) initial frames of all particles (the first is
            the reference configuration).
        sparse: (n,) indices of the simulated particles.
        queries: (M, d) reference points to reconstruct (default: all N).

    Returns:
        (sparse positions (steps, n, d), dense positions (steps + W + 1, M, d), timings).
    """
    import torch

    X = history[0]
    queries = X if queries is None else np.asarray(queries, float)
    t0 = time.perf_counter()
    sparse_x = stepper.rollout(history[:, sparse], material[sparse], steps)
    t1 = time.perf_counter()
    op = field.operator(X[sparse], queries)
    frames = np.concatenate([history[:, sparse], sparse_x]) - X[sparse][None]
    if field.config.decoder == "gno":
        u = op.freeze().apply(frames)
    else:
        with torch.no_grad():
            u = op(frames).double().cpu().numpy()
    t2 = time.perf_counter()
    return sparse_x, queries[None] + u, {"rollout_s": t1 - t0, "reconstruct_s": t2 - t1}


# ------------------------------------------------------------------ pipeline checkpoint and output
def save_pipeline(path: str | Path, stepper, field, meta: dict) -> None:
    """Stepper and neural field in one safetensors file (prefixes ``stepper.``/``field.``);
    ``meta`` holds ``sparse`` (fraction or count), ``sampling``, ``frame_dt``, provenance."""
    from graphfem.checkpoint import save_tensors

    import graphfem

    tensors = {**{f"stepper.{k}": v for k, v in stepper.state_dict().items()},
               **{f"field.{k}": v for k, v in field.state_dict().items()}}
    save_tensors(path, tensors, {"model": "giorom-pipeline", "config": asdict(stepper.config),
                                 "field_config": asdict(field.config), "graphfem_version": graphfem.__version__,
                                 **meta})


def load_pipeline(path: str | Path, device: str = "cpu"):
    """(stepper, field, meta) from :func:`save_pipeline` (never unpickles)."""
    from graphfem.checkpoint import build_model, read_tensors
    from graphfem.operators.giorom import GIOROM, NeuralField  # noqa: F401  registers both

    tensors, meta = read_tensors(path)
    if meta.get("model") != "giorom-pipeline" or "field_config" not in meta:
        raise GraphfemError(f"not a GIOROM pipeline checkpoint (model {meta.get('model')!r})", path)
    parts = []
    for prefix, name, cfg in (("stepper.", "giorom", meta["config"]), ("field.", "giorom-field", meta["field_config"])):
        model = build_model(name, cfg, path)
        sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        missing, unexpected = model.load_state_dict(sub, strict=False)
        if missing or unexpected:
            raise GraphfemError(f"{name} weights do not match: missing {len(missing)}, unexpected {len(unexpected)}",
                                path)
        parts.append(model.to(device).eval())
    return parts[0], parts[1], meta


def write_cloud_series(path: str | Path, times: np.ndarray, positions: np.ndarray,
                       point_data: dict | None = None) -> Path:
    """A PVD series of point clouds (one VTU per frame in ``<stem>_steps/``), atomically.

    Args:
        positions: (T, M, d) point positions per frame.
        point_data: name -> (T, M, ...) values per frame.
    """
    import xml.etree.ElementTree as ET

    from graphfem.meshes.io import atomic_dir

    path = Path(path)
    if path.suffix.lower() != ".pvd":
        raise GraphfemError("the dense rollout is written as a .pvd series", path)
    if not np.isfinite(positions).all():
        raise GraphfemError("the rollout holds non-finite positions; refusing to write it", path)
    folder = path.with_name(f"{path.stem}_steps")
    with atomic_dir(folder) as tmp:
        root = ET.Element("VTKFile", type="Collection", version="0.1")
        coll = ET.SubElement(root, "Collection")
        for k, t in enumerate(times):
            step = Path(tmp) / f"step_{k:05d}.vtu"
            PointCloud(positions[k], {n: v[k] for n, v in (point_data or {}).items()}).write(step)
            ET.SubElement(coll, "DataSet", timestep=repr(float(t)), part="0", file=f"{folder.name}/{step.name}")
        with atomic_path(path) as out:
            ET.ElementTree(root).write(out, xml_declaration=True)
    return path


def read_points(path: str | Path, dim: int) -> tuple[np.ndarray, dict]:
    """(points (N, dim), point_data) of any meshio-readable point cloud or mesh file."""
    import meshio

    path = Path(path)
    if not path.is_file():
        raise GraphfemError("no such file", path)
    try:
        m = meshio.read(path)
    except Exception as exc:  # meshio raises many types on foreign files
        raise GraphfemError(f"cannot read points: {' '.join(str(exc).split()) or type(exc).__name__}", path) from None
    pts = np.asarray(m.points, dtype=float)
    if pts.shape[1] < dim or (pts.shape[1] > dim and np.abs(pts[:, dim:]).max() > 0):
        raise GraphfemError(f"expected {dim}D points, got {pts.shape[1]} coordinates", path)
    return pts[:, :dim], dict(m.point_data)


__all__ = ["chamfer", "dense_rollout", "load_model", "load_pipeline", "mpm_dataset", "read_points", "read_trajectories",
           "save_pipeline", "write_cloud_series",
           "train_field", "train_stepper", "write_trajectories"]
