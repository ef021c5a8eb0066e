r"""RGNP adapter: random-grid neural processes on ``graphfem generate nonlinear-poisson`` data.

Training is physics-informed: the items of an epoch are ``draws`` prior draws, and every
batch draws z ~ U(box)⁵, w ~ U(box), a fresh random grid X ~ U(−1, 1)ᴺ **per sample and per
step** and the reparameterisation noise, all from the trainer's per-step rng (so a resumed
run draws the same numbers). The loss is −mean ELBO of :class:`graphfem.operators.rgnp.RGNP`.
The FE solutions of the data set are **never** training grids: validation and evaluation
compare μ, σ at the FE nodes with the stored FE reference (relative L2 in the mass-matrix
norm, and the fraction of nodes with |u − μ| ≤ 2σ), and the GICNet posterior over z, given
the FE solution at the interior nodes, with the true z.

Family options (``model:``):

* ``draws`` (800): prior draws per epoch (the epoch's items);
* ``data`` (0): number of noisy off-grid observation tuples (y, z, w) taken from the
  training split's FE solutions (y = u at every 3rd interior node + N(0, σ_y²) noise, the
  noise fixed per tuple); their log-likelihood enters the loss scaled by N_d/B;
* ``fixed_grid`` (false): one random grid of N points for every sample and step (the
  fixed-collocation PDDLVM baseline; RGNP redraws it).

Prediction (``graphfem predict MODEL MESH --z ... --w ...``): ``u`` (the mean) and ``u_std``
at the nodes of any 1D mesh with nodes in [−1, 1]. The posterior over z from observations
is :func:`posterior` (``graphfem posterior``).
"""
from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np

from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError, InputError

from . import Family, Prediction, Setup, check_options, evaluation_summary, register_family
from . import model_config as family_model_config

PROBLEM = "nonlinear-poisson"
#: family options in ``model:`` with their defaults
FAMILY_KEYS = {"draws": 800, "data": 0, "fixed_grid": False}
#: seed of the fixed grid of ``fixed_grid`` and of the observation noise of ``data``
_FIXED_SEED = 20230


def _interior(x: np.ndarray) -> np.ndarray:
    return np.abs(x) < 1 - 1e-12


def _box(model) -> dict[str, float]:
    c = model.config
    return {"z_low": c.z_low, "z_high": c.z_high, "w_low": c.w_low, "w_high": c.w_high}


def check_inputs(model, z: np.ndarray, w: float, source=None) -> None:
    """Refuse, in one line, z or w outside the prior box the model was trained on."""
    c = model.config
    z = np.asarray(z, float)
    if z.shape != (c.n_z,) or not np.isfinite(z).all() or not np.isfinite(w):
        raise InputError(f"--z needs {c.n_z} finite numbers and --w a finite number", source)
    bad = np.flatnonzero((z < c.z_low - 1e-12) | (z > c.z_high + 1e-12))
    if bad.size:
        raise InputError(f"--z: z_{bad[0]} = {z[bad[0]]:g} lies outside the training range [{c.z_low:g}, "
                         f"{c.z_high:g}]", source)
    if not c.w_low - 1e-12 <= w <= c.w_high + 1e-12:
        raise InputError(f"--w: {w:g} lies outside the training range [{c.w_low:g}, {c.w_high:g}]", source)


def field_at(model, x: np.ndarray, z: np.ndarray, w: float, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of u at points x (n,) for one (z, w): ((n,), (n,))."""
    import torch

    dtype = next(model.parameters()).dtype
    t = lambda v: torch.as_tensor(np.array(v, float), dtype=dtype, device=device)  # noqa: E731
    with torch.no_grad():
        mean, std = model.field(t(x)[None, :, None], t(z)[None], t([w])[None])
    return mean[0].double().cpu().numpy(), std[0].double().cpu().numpy()


def posterior(model, x: np.ndarray, u: np.ndarray, w: float, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """The GICNet posterior q_β(z | u/D, w, X) from observations u (K,) at x (K,) in [−1, 1]:
    (mean (n_z,), std (n_z,)). Points at the boundary (u/D singular) are dropped."""
    import torch

    dtype = next(model.parameters()).dtype
    t = lambda v: torch.as_tensor(np.array(v, float), dtype=dtype, device=device)  # noqa: E731
    with torch.no_grad():
        q = model.posterior_from_u(t(x)[None, :, None], t(u)[None], t([w])[None])
    return q.mean[0].double().cpu().numpy(), q.stddev[0].double().cpu().numpy()


def predictive(model, mean_z: np.ndarray, std_z: np.ndarray, w: float, x: np.ndarray, draws: int = 64,
               seed: int = 0, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of u at x (n,) under z ~ q_β (clipped to the prior box) and u ~ q_α: the
    moments of the mixture over ``draws`` draws of z."""
    c = model.config
    rng = np.random.default_rng(seed)
    zs = np.clip(mean_z + std_z * rng.standard_normal((draws, len(mean_z))), c.z_low, c.z_high)
    stats = [field_at(model, x, zk, w, device) for zk in zs]
    mu = np.stack([s[0] for s in stats])
    second = np.stack([s[1] ** 2 + s[0] ** 2 for s in stats]).mean(0)
    mean = mu.mean(0)
    return mean, np.sqrt(np.maximum(second - mean ** 2, 0.0))


def scores(model, space, u: np.ndarray, z: np.ndarray, w: float, device: str = "cpu") -> dict[str, float]:
    """Forward and inverse scores of one FE sample (``space`` its P1 space, u at the nodes):
    ``rel_l2_u`` (mass-matrix norm), ``coverage_u`` (interior nodes with |u − μ| ≤ 2σ),
    ``z_rel_err`` ‖μ_z − z‖/‖z‖ and ``coverage_z`` (components with |z − μ_z| ≤ 2σ_z)."""
    x = space.mesh.points[:, 0]
    mean, std = field_at(model, x, z, w, device)
    inner = _interior(x)
    mz, sz = posterior(model, x[inner], u[inner], w, device)
    return {"rel_l2_u": space.relative_l2_error(mean, u),
            "coverage_u": float(np.mean(np.abs(u - mean)[inner] <= 2 * std[inner])),
            "z_rel_err": float(np.linalg.norm(mz - z) / np.linalg.norm(z)),
            "coverage_z": float(np.mean(np.abs(z - mz) <= 2 * sz))}


def read_sample(data, i: int) -> dict:
    """One FE sample of a nonlinear-poisson data set: its P1 ``space``, ``u`` at the nodes, ``z``, ``w``, ``name``."""
    from graphfem.meshes import FESpace

    s = data.sample(i)
    if s.mesh is None or "u" not in s.fields or "z" not in s.options:
        raise GraphfemError(f"group {s.name!r} has no mesh, u or z; write it with graphfem generate {PROBLEM}",
                            data.path)
    x = s.mesh.points[:, 0]
    if s.mesh.dim != 1 or x.min() < -1 - 1e-12 or x.max() > 1 + 1e-12:
        raise GraphfemError(f"group {s.name!r}: the mesh is not a 1D mesh of [-1, 1]", data.path)
    return {"space": FESpace(s.mesh, order=1), "u": np.asarray(s.fields["u"], float),
            "z": np.asarray(s.options["z"], float), "w": float(s.options.get("w", 1.0)), "name": s.name}


@register_family
class RGNPFamily(Family):
    """RGNP on the 1D nonlinear Poisson problem (see the module docstring)."""

    name = "rgnp"
    models = ("rgnp",)
    consumes = "prior draws of (z, w) on random grids; FE samples of nonlinear-poisson for validation"

    def trains_on(self, data) -> bool:
        from graphfem.datasets.simulations import problem_of

        return problem_of(data.family) == PROBLEM

    def setup(self, data, split, model_config, source) -> Setup:
        from graphfem.physics.nonlinear_poisson import N_Z, W_HIGH, W_LOW, Z_HIGH, Z_LOW

        cls, config, extras = family_model_config(model_config, FAMILY_KEYS, source)
        for key in ("draws", "data"):
            if not isinstance(extras[key], int) or isinstance(extras[key], bool) or extras[key] < (
                    1 if key == "draws" else 0):
                raise InputError(f"model.{key}: expected a whole number >= {1 if key == 'draws' else 0}, got "
                                 f"{extras[key]!r}", source)
        if not isinstance(extras["fixed_grid"], bool):
            raise InputError(f"model.fixed_grid: expected true or false, got {extras['fixed_grid']!r}", source)
        config = {"n_z": N_Z, "n_w": 1, "z_low": Z_LOW, "z_high": Z_HIGH, "w_low": W_LOW, "w_high": W_HIGH,
                  **config}
        try:
            model = cls(cls.Config(**config))
        except (TypeError, ValueError) as exc:
            raise InputError(f"model: {exc}", source) from None
        samples = {i: read_sample(data, i) for i in range(len(data))}
        c = model.config
        for s in samples.values():
            if s["z"].shape != (c.n_z,) or (s["z"] < c.z_low - 1e-12).any() or (s["z"] > c.z_high + 1e-12).any() \
                    or not c.w_low - 1e-12 <= s["w"] <= c.w_high + 1e-12:
                raise GraphfemError(f"group {s['name']!r}: z or w lies outside the model's prior box {_box(model)}",
                                    data.path)
        rng = np.random.default_rng(_FIXED_SEED)
        state = {"samples": samples, "extras": extras, "tuples": [],
                 "grid": rng.uniform(-1, 1, (c.points, 1)) if extras["fixed_grid"] else None}
        train_fe = list(split["train"])
        if extras["data"]:
            if not train_fe:
                raise InputError("model.data: the data set has no training split to observe", source)
            for k in range(extras["data"]):
                s = samples[train_fe[k % len(train_fe)]]
                x = s["space"].mesh.points[:, 0]
                idx = np.flatnonzero(_interior(x))[::3]
                y = s["u"][idx] + c.sigma_y * rng.standard_normal(idx.size)
                state["tuples"].append({"x": x[idx], "y": y, "z": s["z"], "w": s["w"]})
        meta = {"family_options": extras,
                "problem": {"name": PROBLEM, "dim": 1, "cell_types": ["line"], "fields": ["u", "u_std"],
                            "units": {"u": "1", "u_std": "1"}, "options": ["z", "w"], "ranges": _box(model)},
                "samples": {k: len(v) for k, v in split.items()}}
        return Setup(model, meta, list(range(extras["draws"])), list(split["val"]), list(split["test"]), state)

    def collate(self, setup, items, rng, device, dtype):
        import torch

        c, st = setup.model.config, setup.state
        tensor = lambda v: torch.as_tensor(np.asarray(v, float), dtype=dtype, device=device)  # noqa: E731
        B = len(items)
        x = np.repeat(st["grid"][None], B, axis=0) if st["grid"] is not None else \
            rng.uniform(-1.0, 1.0, (B, c.points, 1))
        batch = {"x": tensor(x), "z": tensor(rng.uniform(c.z_low, c.z_high, (B, c.n_z))),
                 "w": tensor(rng.uniform(c.w_low, c.w_high, (B, c.n_w))),
                 "noise": tensor(rng.standard_normal((B, c.points))),
                 "noise_lr": tensor(rng.standard_normal((B, c.rank))) if c.covariance == "lr" else None}
        if st["tuples"]:
            picks = [st["tuples"][k] for k in rng.integers(0, len(st["tuples"]), B)]
            batch["data"] = {"x": tensor([p["x"] for p in picks])[..., None], "y": tensor([p["y"] for p in picks]),
                             "z": tensor([p["z"] for p in picks]), "w": tensor([[p["w"]] for p in picks]),
                             "scale": len(st["tuples"]) / B}
        return batch

    def loss(self, net, batch):
        out = net(batch["x"], batch["z"], batch["w"], batch["noise"], batch["noise_lr"])
        loss = -out["elbo"].mean()
        if "data" in batch:
            d = batch["data"]
            module = getattr(net, "module", net)
            loss = loss - d["scale"] * module.data_log_likelihood(d["x"], d["y"], d["z"], d["w"]).sum() / len(d["y"])
        return loss

    def validate(self, setup, model, items, device) -> dict[str, float]:
        rows = [scores(model, s["space"], s["u"], s["z"], s["w"], device)
                for s in (setup.state["samples"][i] for i in items)]
        if not rows:
            return {"rel_l2_u": float("nan")}
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}

    def predict(self, model, meta, mesh, options, device) -> Prediction:
        from graphfem.physics.problem import get_problem

        given = {k: v for k, v in options.items() if v is not None}
        check_options(given, ["z", "w"], "the rgnp model", mesh.source)
        if mesh.dim != 1:
            raise InputError(f"the rgnp model predicts on 1D meshes of [-1, 1]; this mesh is {mesh.dim}D", mesh.source)
        params = get_problem(PROBLEM).parse(mesh, given)
        check_inputs(model, params["z"], params["w"], mesh.source)
        mean, std = field_at(model, mesh.points[:, 0], params["z"], params["w"], device)
        return Prediction(mesh, {"u": mean, "u_std": std}, {"u": "1", "u_std": "1"})

    def evaluate(self, model, meta, data, device, limit=0, compare_fe=False, progress=True) -> dict[str, Any]:
        from graphfem.datasets.simulations import problem_of
        from graphfem.physics.problem import get_problem

        if problem_of(data.family) != PROBLEM:
            raise GraphfemError(f"the model predicts {PROBLEM}, the data set holds {data.family} samples", data.path)
        n = len(data) if limit <= 0 else min(limit, len(data))
        rows, t_pred, t_fe, fe_check = [], [], [], []
        for i in range(n):
            s = read_sample(data, i)
            check_inputs(model, s["z"], s["w"], data.path)
            start = time.perf_counter()
            rows.append(scores(model, s["space"], s["u"], s["z"], s["w"], device))
            t_pred.append(time.perf_counter() - start)
            if compare_fe:
                start = time.perf_counter()
                fe = get_problem(PROBLEM).run(s["space"].mesh, {"z": s["z"], "w": s["w"]}).fields["u"]
                t_fe.append(time.perf_counter() - start)
                fe_check.append(float(np.abs(fe - s["u"]).max() / np.abs(s["u"]).max()))
        out = evaluation_summary([r["rel_l2_u"] for r in rows], t_pred, device, t_fe if compare_fe else None,
                                 fe_check if compare_fe else None)
        for key in ("coverage_u", "z_rel_err", "coverage_z"):
            out[f"{key}_mean"] = float(np.mean([r[key] for r in rows]))
        return out


__all__ = ["FAMILY_KEYS", "RGNPFamily", "check_inputs", "field_at", "posterior", "predictive", "read_sample",
           "scores"]
