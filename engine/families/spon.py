"""Encoding, training and evaluation of SPON / SPON-MG on SPON data files.

The training loop is the engine's (AdamW, linear warm-up then cosine
decay, gradient clipping, seeded batch order), but the batches are FE
objects (:class:`graphfem.operators.spon.Batch`) and the loss is the
relative error in the norm of V_h through the FE mass (+ stiffness) matrix.
Configurations are the engine's YAML (:class:`graphfem.training.config.TrainConfig`)
with ``model.name: spon`` or ``spon_mg``; ``data.path`` a file from
:func:`graphfem.datasets.spon.generate`.

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
from pathlib import Path
from typing import Sequence

import numpy as np

from graphfem.meshes import FESpace, Mesh
from graphfem.meshes.errors import InputError

from graphfem.datasets import spon as spon_data

HYPER_SCALE = 0.1  # displacement unit of the hyperelastic output
HYPER_LOADS = (0.1, 0.1)  # body-force and traction units

_HIERARCHIES: dict = {}


def hierarchy_for(coarse: Mesh, levels: int, order: int, vector: bool, mg_levels: int | None = None,
                  extra_refinements: int = 0):
    """Cached :func:`~graphfem.operators.spon.hierarchy` of ``coarse`` refined ``levels`` times,
    keeping the finest ``mg_levels + 1`` spaces (all with ``mg_levels=None``).

    ``extra_refinements`` refines only the finest mesh further: the coarse
    levels (and the graphs the coarse blocks were trained on) stay those of
    ``levels``, and the prolongation from the last coarse level goes straight
    to the finer mesh (still exact: the spaces remain nested). One coarse hop
    then spans the same physical distance as in training, which is what lets
    SPON-MG keep its accuracy one level finer."""
    from graphfem.operators.spon import hierarchy

    mg = levels if mg_levels is None else mg_levels
    key = (coarse.points.tobytes(), coarse.cells.tobytes(), levels, order, vector, mg, extra_refinements)
    if key not in _HIERARCHIES:
        meshes = [coarse.refined(levels - mg)]
        for _ in range(mg):
            meshes.append(meshes[-1].refined())
        meshes[-1] = meshes[-1].refined(extra_refinements)
        _HIERARCHIES[key] = hierarchy(meshes, order=order, vector=vector)
    return _HIERARCHIES[key]


FLOW_SPEED = 0.45  # inflow peak unit of the spon-flow input channel

#: the options :meth:`graphfem.surrogate.Surrogate.predict` takes for each family
OPTIONS = {"spon-poisson": ["kappa", "source", "dirichlet", "neumann"],
           "spon-hyperelastic": ["traction", "body_force"],
           "spon-flow": ["u_max"]}


def _as_function(value, mesh: Mesh, name: str):
    """A callable x (dim, ...) -> (...) from a number, a callable, or a point /
    cell array of ``mesh`` (evaluated at any point inside ``mesh``, so it
    also serves the refined meshes of a hierarchy)."""
    if callable(value):
        return value
    a = np.asarray(value, dtype=float)
    if a.ndim == 0:
        return lambda x: np.full(np.shape(x)[1:], float(a))
    if a.shape[0] == mesh.n_points:
        P1 = FESpace(mesh, 1)
        return lambda x: (P1.probe(np.reshape(x, (x.shape[0], -1)).T) @ a).reshape(np.shape(x)[1:])
    if a.shape[0] == mesh.n_cells:
        finder = mesh.to_skfem().element_finder()
        return lambda x: a[finder(*np.reshape(x, (x.shape[0], -1)))].reshape(np.shape(x)[1:])
    raise InputError(f"{name}: {a.shape[0]} values fit neither the {mesh.n_points} nodes nor the {mesh.n_cells} "
                     "cells of the mesh", mesh.source)


def case_options(record: "spon_data.Record") -> dict:
    """The inputs of a stored sample as :func:`encode_case` options."""
    p = record.params
    if record.family == "spon-poisson":
        return {"kappa": spon_data.kappa_function(p["kappa"]), "source": spon_data.fourier(p["f"]),
                "dirichlet": p["dirichlet"]}
    if record.family == "spon-hyperelastic":
        return {"traction": p["traction"], "body_force": spon_data.body_force(p)}
    return {"u_max": p["u_max"]}


def encode_case(family: str, H, options: dict, norm: str = "l2", target: np.ndarray | None = None,
                source_mesh: Mesh | None = None):
    """A :class:`~graphfem.operators.spon.SPONSample` on the finest space of ``H``
    from the problem options of ``family`` (see :data:`OPTIONS`; arrays are
    point/cell values of ``source_mesh``, default the fine mesh).

    * ``spon-poisson``: ``kappa``, ``source`` (numbers, callables, point or
      cell arrays; default 1), ``dirichlet`` ({tag: value or callable}; none:
      u = 0 on the whole boundary), ``neumann`` (zero values only: the decoder
      does not enforce natural conditions and the model never saw a flux).
    * ``spon-hyperelastic``: ``traction`` (2,) on the tag ``right``,
      ``body_force`` (a (2,) vector or a callable x -> (2, ...)); ``left`` clamped.
    * ``spon-flow``: ``u_max``, the parabolic inflow peak on ``inlet``; no
      slip on ``walls`` and ``cylinder``.
    """
    from graphfem.operators.spon import SPONSample, l2_projection

    space = H.fine
    mesh = space.mesh
    source_mesh = mesh if source_mesh is None else source_mesh
    scalar = FESpace(mesh, space.order) if space.vector else space
    n = H.graphs[-1].n_nodes
    if family == "spon-poisson":
        from graphfem.physics.poisson import boundary_conditions

        neumann = options.get("neumann") or {}
        if any(not isinstance(v, (int, float)) or v != 0 for v in neumann.values()):
            raise InputError("spon-poisson: only zero Neumann data (the model was trained with Dirichlet data)",
                             mesh.source)
        kappa = _as_function(options.get("kappa", 1.0), source_mesh, "kappa")
        f = _as_function(options.get("source", 1.0), source_mesh, "source")
        lo, hi = mesh.bounding_box
        D = float(np.linalg.norm(hi - lo))
        basis = space.scalar_basis
        dx = basis.dx  # (m, q) quadrature weights
        xq = np.asarray(basis.global_coordinates().value)
        k_q = kappa(xq)
        if np.any(k_q <= 0):
            raise InputError("kappa must be positive", mesh.source)
        k_h = float(dx.sum() / (dx / k_q).sum())
        rms_f = float(np.sqrt((dx * f(xq) ** 2).sum() / dx.sum()))
        dofs, values = boundary_conditions(space, options.get("dirichlet"), neumann, None)
        g0 = float(np.abs(values).max()) if values.size else 0.0
        s = max(g0, rms_f * D * D / (16 * k_h), 1e-12)
        inputs = np.stack([l2_projection(space, lambda y: f(y) * D * D / (k_h * s)),
                           l2_projection(space, lambda y: np.log(kappa(y) / k_h))], axis=1)
        mask = np.zeros((n, 1), dtype=bool)
        vals = np.zeros((n, 1))
        mask[dofs, 0] = True
        vals[dofs, 0] = values
    elif family == "spon-hyperelastic":
        b = options.get("body_force", (0.0, 0.0))
        if not callable(b):
            b_vec = np.asarray(b, dtype=float)
            b = lambda y: b_vec.reshape((2,) + (1,) * (y.ndim - 1)) * np.ones(y.shape[1:])  # noqa: E731
        inputs = np.zeros((n, 4))
        inputs[:, :2] = l2_projection(scalar, lambda y: b(y) / HYPER_LOADS[0])
        # the dead traction is one vector: every DOF gets it (a plain L-layer network would see it only L hops
        # from the loaded edge, which leaves the clamped half of the plate blind to the main load)
        inputs[:, 2:] = np.asarray(options.get("traction", (0.0, 0.0)), dtype=float) / HYPER_LOADS[1]
        s = HYPER_SCALE
        mask = np.zeros((n, 2), dtype=bool)
        mask[scalar.dofs_on("left")] = True
        vals = np.zeros((n, 2))
    elif family == "spon-flow":
        from scipy.spatial import cKDTree

        from graphfem.physics.navier_stokes import parabolic_inflow

        u_max = float(options.get("u_max", 0.3))
        x = np.asarray(scalar.scalar_basis.doflocs)  # (2, n)
        wall = cKDTree(mesh.points[mesh.tag_nodes("cylinder")]).query(x.T)[0]
        inputs = np.stack([np.full(n, u_max / FLOW_SPEED), wall / spon_data.FLOW["height"]], axis=1)
        s = max(u_max, 1e-12)
        mask = np.zeros((n, 2), dtype=bool)
        vals = np.zeros((n, 2))
        for tag in ("walls", "cylinder"):
            mask[scalar.dofs_on(tag)] = True
        inlet = scalar.dofs_on("inlet")
        mask[inlet] = True
        vals[inlet] = parabolic_inflow(mesh, "inlet", u_max)(x[:, inlet]).T
    else:
        raise InputError(f"unknown SPON family {family!r}")
    c = mask.shape[1]
    return SPONSample(inputs, mask, vals, s, H, None if target is None else np.asarray(target).reshape(n, c), norm)


def encode(record: "spon_data.Record", levels: int | None = None, extra_refinements: int = 0, norm: str = "l2",
           mg_levels: int = 1, with_target: bool = True):
    """A :class:`~graphfem.operators.spon.SPONSample` for a stored sample.

    ``extra_refinements`` > 0 moves the sample to a finer mesh: the inputs are
    re-encoded there and the reference is re-solved by FE (same parameters).
    The hierarchy keeps the ``mg_levels`` coarse levels of training below the
    fine mesh (:func:`hierarchy_for`)."""
    p = record.params
    order = int(p["order"])
    L = int(p["levels"])
    H = hierarchy_for(record.coarse, L, order, record.family != "spon-poisson", min(mg_levels, L), extra_refinements)
    target = None
    if with_target:
        target = record.dofs if extra_refinements == 0 else \
            spon_data.solve_case(record.family, H.fine.mesh, p, order).dofs[spon_data.FIELDS[record.family]]
    return encode_case(record.family, H, case_options(record), norm, target)


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

    from graphfem.training.trainer import lr_factor

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


def _checkpoint_meta(family: str, order: int, model) -> dict:
    zeros = [0.0] * model.config.in_node
    return {"normalisation": {"x_mean": zeros, "x_std": [1.0] * len(zeros), "y_mean": [0.0] * model.config.out,
                              "y_std": [1.0] * model.config.out,
                              "note": "SPON normalises inside the model (buffers)"},
            "problem": {"name": family, "dim": 2, "cell_types": ["triangle"], "fields": [spon_data.FIELDS[family]],
                        "order": order, "features": "graphfem.families.spon.encode_case", "options": OPTIONS[family]}}


def train(config, resume: bool = False, source: str = "config") -> dict:
    """Train SPON / SPON-MG from an engine :class:`~graphfem.training.config.TrainConfig`
    (what ``graphfem train`` calls for these models); writes
    ``<run.out>/model.safetensors``, ``metrics.jsonl`` and ``config.yaml`` and
    returns the test errors at the training resolution."""
    import json

    import torch
    import yaml

    from graphfem.checkpoint import save
    from graphfem.training.config import to_dict
    from graphfem.surrogate import resolve_device

    c = config
    params = dict(c.model)
    name = params.pop("name", None)
    if resume:
        raise InputError("--resume: SPON training keeps no optimiser state; train again from the start", source)
    if c.run.threads > 0:
        torch.set_num_threads(c.run.threads)
    device = resolve_device(c.run.device)
    records = spon_data.read(c.data.path)
    train_idx, test_idx = split(len(records), c.data.test_fraction + c.data.val_fraction, c.run.seed)
    norm = params.get("norm", "l2")
    from graphfem.operators import get_model

    mg = params.get("levels", get_model(name).Config.levels)
    samples = [encode(r, norm=norm, mg_levels=max(mg, 0)) for r in records]
    torch.manual_seed(c.run.seed)
    try:
        model = build(name, [samples[i] for i in train_idx], **params)
    except TypeError as exc:
        raise InputError(f"model: {exc}", source) from None
    out = Path(c.run.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(to_dict(c), sort_keys=False))
    lines = []
    fit(model, [samples[i] for i in train_idx], epochs=c.optim.epochs, lr=c.optim.lr, batch_size=c.data.batch_size,
        seed=c.run.seed, weight_decay=c.optim.weight_decay, warmup_steps=c.optim.warmup_steps,
        min_lr_ratio=c.optim.min_lr_ratio, clip_norm=c.optim.clip_norm, device=device, log=lines.append)
    e = errors(model, [samples[i] for i in test_idx], norm, device=device)
    final = {"final": True, f"test_rel_{norm}": float(e.mean()), f"test_rel_{norm}_max": float(e.max()),
             "train_samples": len(train_idx), "test_samples": len(test_idx)}
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines + [final]))
    family = records[0].family
    save(out / "model.safetensors", model.cpu(),
         {**_checkpoint_meta(family, int(records[0].params["order"]), model),
          "provenance": {"data": str(c.data.path), "split": {"train": train_idx, "test": test_idx},
                         "seed": c.run.seed, "config": to_dict(c), **final}})
    return final


def train_config(path: str | Path, overrides: Sequence[str] = ()) -> dict:
    """:func:`train` from a YAML file (``graphfem train`` does the same)."""
    from graphfem.training.config import load_config

    return train(load_config(path, overrides), source=str(path))


# ---------------------------------------------------------------- the engine's predict / evaluate
def _hierarchy_on(surrogate, mesh: Mesh):
    """The hierarchy a checkpoint predicts on: ``mesh`` is the coarsest level,
    refined ``levels`` times for SPON-MG (the output lives on the finest)."""
    p = surrogate.problem
    surrogate.check_mesh(mesh)
    L = int(surrogate.model.config.levels)
    return hierarchy_for(mesh, L, int(p["order"]), p["name"] != "spon-poisson", L)


def output_mesh(surrogate, mesh: Mesh) -> Mesh:
    """The mesh whose nodes carry :func:`predict_fields` (``mesh`` refined ``levels`` times)."""
    return _hierarchy_on(surrogate, mesh).fine.mesh


def predict_fields(surrogate, mesh: Mesh, **options) -> dict[str, np.ndarray]:
    """Fields at the nodes of :func:`output_mesh` from the exact FE decoder
    (Dirichlet values exact); options as in :func:`encode_case`."""
    p = surrogate.problem
    unknown = sorted(set(options) - set(p["options"]))
    if unknown:
        raise InputError(f"option {unknown[0]!r} is not an input of this model; it takes "
                         f"{', '.join(p['options'])}", mesh.source)
    H = _hierarchy_on(surrogate, mesh)
    sample = encode_case(p["name"], H, {k: v for k, v in options.items() if v is not None}, source_mesh=mesh)
    u = predict(surrogate.model, [sample], device=surrogate.device)[0]
    return {p["fields"][0]: H.fine.to_nodes(u.reshape(-1))}


def evaluate_file(surrogate, data_path: str | Path, compare_fe: bool = False, limit: int = 0) -> dict:
    """``graphfem evaluate`` on a SPON data file: relative L² errors in the
    consistent mass norm of V_h, per-sample predict time (encoding + forward
    pass) and optionally the FE (Newton) solve time; the keys of
    :func:`graphfem.evaluate.evaluate`."""
    import time

    p = surrogate.problem
    records = spon_data.read(data_path)
    if records and records[0].family != p["name"]:
        raise InputError(f"the model was trained on {p['name']}, the file holds {records[0].family}", data_path)
    records = records if limit <= 0 else records[:limit]
    L = int(surrogate.model.config.levels)
    errs, t_pred, t_fe, fe_check = [], [], [], []
    for r in records:
        if int(r.params["levels"]) < L:
            raise InputError(f"the samples are refined {r.params['levels']} times, SPON-MG needs {L} coarse levels",
                             data_path)
        start = time.perf_counter()
        s = encode(r, mg_levels=L)
        errs.append(float(errors(surrogate.model, [s], device=surrogate.device)[0]))
        t_pred.append(time.perf_counter() - start)
        if compare_fe:
            start = time.perf_counter()
            u = spon_data.solve_case(r.family, r.mesh, r.params, int(r.params["order"])).dofs[spon_data.FIELDS[r.family]]
            t_fe.append(time.perf_counter() - start)
            fe_check.append(s.hierarchy.fine.relative_l2_error(u, r.dofs))
    e = np.asarray(errs)
    out = {"samples": len(e), "rel_l2_mean": float(e.mean()), "rel_l2_median": float(np.median(e)),
           "rel_l2_p90": float(np.quantile(e, 0.9)), "rel_l2_max": float(e.max()),
           "predict_s_mean": float(np.mean(t_pred)), "errors": e.tolist(), "device": surrogate.device}
    if compare_fe:
        out.update(fe_s_mean=float(np.mean(t_fe)), fe_vs_stored_max=float(np.max(fe_check)))
    return out


__all__ = ["OPTIONS", "build", "case_options", "encode", "encode_case", "errors", "evaluate_file", "fit",
           "hierarchy_for", "load_samples", "output_mesh", "predict", "predict_fields", "split", "train",
           "train_config"]
