r"""RGNP adapter: random-grid neural processes on ``graphfem generate nonlinear-poisson``,
``graphfem generate parametric-burgers`` or ``graphfem generate lid-cavity`` data (:data:`SPECS`).

Training is physics-informed: the items of an epoch are ``draws`` prior draws, and every
batch draws z ~ U(box), w ~ U(box), a fresh random grid X ~ U(Ω)ᴺ (Ω = [−1, 1], or
(x, t) ∈ [0, 1]² for Burgers, (x, y) ∈ [0, 1]² for the cavity) **per sample and per step** and the reparameterisation noise,
all from the trainer's per-step rng (so a resumed run draws the same numbers). The loss is
−mean ELBO of :class:`graphfem.operators.rgnp.RGNP`. The FE solutions of the data set are
**never** training grids: validation and evaluation compare μ, σ at the FE nodes (and
frames) with the stored FE reference (relative L2 in the mass-matrix norm, and the fraction
of interior points with |u − μ| ≤ 2σ), and the GICNet posterior over z, given the FE
solution at the interior points, with the true z. For the cavity the forward scores are
those of the velocity (ψ_y, −ψ_x) at the FE nodes (both components), and the GICNet is given
the FE stream function.

Family options (``model:``):

* ``draws`` (800): prior draws per epoch (the epoch's items);
* ``data`` (0): number of noisy off-grid observation tuples (y, z, w) taken from the
  training split's FE solutions (y = u at every 3rd interior node + N(0, σ_y²) noise, the
  noise fixed per tuple); their log-likelihood enters the loss scaled by N_d/B;
* ``fixed_grid`` (false): one random grid of N points for every sample and step (the
  fixed-collocation PDDLVM baseline; RGNP redraws it).

Prediction (``graphfem predict MODEL MESH --z ... --w ...``, or ``--viscosity ... --convection ...
--frequency ... [--t-end --dt --save-every]`` for Burgers, a PVD series): ``u`` (the mean) and
``u_std`` at the nodes of any 1D mesh of the problem's interval; for the cavity (``--viscosity
... --lid ...``) ``velocity``, ``velocity_std`` (per component), ``stream`` and ``stream_std``
on any 2D mesh inside the unit square. The posterior over z from
observations is :func:`posterior` (``graphfem posterior``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from graphfem.meshes.errors import GraphfemError, InputError

from . import Family, Prediction, Setup, check_options, evaluation_summary, register_family
from . import model_config as family_model_config

FAMILY_KEYS = {"draws": 800, "data": 0, "fixed_grid": False}
#: seed of the fixed grid of ``fixed_grid`` and of the observation noise of ``data``
_FIXED_SEED = 20230


@dataclass(frozen=True)
class Spec:
    """How one problem's data and options map onto an RGNP (:data:`graphfem.operators.rgnp.PDES`).

    Attributes:
        problem: the registered problem; pde: the operator's problem key.
        z_options: the options holding z (one with all components, or one per component);
        w_option: the option holding w; time: whether the reference is a trajectory in (x, t);
        flow: a 2D flow whose GP is over the stream function (reference fields velocity, stream).
    """

    problem: str
    pde: str
    z_options: tuple[str, ...]
    w_option: str
    time: bool
    flow: bool = False

    def z_of(self, options: Mapping[str, Any]) -> np.ndarray:
        return np.concatenate([np.ravel(np.asarray(options[k], float)) for k in self.z_options])

    def flags(self) -> tuple[str, str]:
        """The command-line names of z and of w, for messages."""
        return "/".join("--" + k for k in self.z_options), "--" + self.w_option


#: problem name -> how the family reads it
SPECS = {"nonlinear-poisson": Spec("nonlinear-poisson", "poisson1d", ("z",), "w", False),
         "parametric-burgers": Spec("parametric-burgers", "burgers", ("viscosity", "convection"), "frequency", True),
         "lid-cavity": Spec("lid-cavity", "cavity", ("viscosity",), "lid", False, flow=True)}


def spec_of(model) -> Spec:
    return next(s for s in SPECS.values() if s.pde == model.config.pde)


def _box(model) -> dict[str, Any]:
    c = model.config
    lo, hi = z_box(model)
    return {"z_low": lo.tolist(), "z_high": hi.tolist(), "w_low": c.w_low, "w_high": c.w_high}


def z_box(model) -> tuple[np.ndarray, np.ndarray]:
    c = model.config
    return (np.broadcast_to(np.asarray(c.z_low, float), (c.n_z,)).copy(),
            np.broadcast_to(np.asarray(c.z_high, float), (c.n_z,)).copy())


def check_inputs(model, z: np.ndarray, w: float, source=None) -> None:
    """Refuse, in one line, z or w outside the prior box the model was trained on."""
    c = model.config
    zflag, wflag = spec_of(model).flags()
    z = np.asarray(z, float)
    if z.shape != (c.n_z,) or not np.isfinite(z).all() or not np.isfinite(w):
        raise InputError(f"{zflag} needs {c.n_z} finite number(s) and {wflag} a finite number", source)
    lo, hi = z_box(model)
    bad = np.flatnonzero((z < lo - 1e-12) | (z > hi + 1e-12))
    if bad.size:
        k = bad[0]
        raise InputError(f"{zflag}: z_{k} = {z[k]:g} lies outside the training range [{lo[k]:g}, {hi[k]:g}]", source)
    if not c.w_low - 1e-12 <= w <= c.w_high + 1e-12:
        raise InputError(f"{wflag}: {w:g} lies outside the training range [{c.w_low:g}, {c.w_high:g}]", source)


def _points(model, x: np.ndarray) -> np.ndarray:
    """Points as (n, d): a 1D problem's (n,) is (n, 1)."""
    return np.array(x, float).reshape(-1, model.pde.dim)


def velocity_at(model, x: np.ndarray, z: np.ndarray, w: float, device: str = "cpu"
                ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the velocity (ψ_y, −ψ_x) of a cavity model at points x (n, 2) for one
    (z, w): ((n, 2), (n, 2)) (:meth:`graphfem.operators.rgnp.RGNP.velocity`)."""
    import torch

    dtype = next(model.parameters()).dtype
    t = lambda v: torch.as_tensor(np.array(v, float), dtype=dtype, device=device)  # noqa: E731
    mean, std = model.velocity(t(_points(model, x))[None], t(z)[None], t([w])[None])
    return mean[0].double().cpu().numpy(), std[0].double().cpu().numpy()


def field_at(model, x: np.ndarray, z: np.ndarray, w: float, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of u at points x ((n,) in 1D, (n, 2) = (x, t) for Burgers) for one (z, w): ((n,), (n,))."""
    import torch

    dtype = next(model.parameters()).dtype
    t = lambda v: torch.as_tensor(np.array(v, float), dtype=dtype, device=device)  # noqa: E731
    with torch.no_grad():
        mean, std = model.field(t(_points(model, x))[None], t(z)[None], t([w])[None])
    return mean[0].double().cpu().numpy(), std[0].double().cpu().numpy()


def posterior(model, x: np.ndarray, u: np.ndarray, w: float, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """The GICNet posterior q_β(z | (u − b)/D, w, X) from observations u (K,) at points x (as in
    :func:`field_at`): (mean (n_z,), std (n_z,)). Points where D vanishes are dropped."""
    import torch

    dtype = next(model.parameters()).dtype
    t = lambda v: torch.as_tensor(np.array(v, float), dtype=dtype, device=device)  # noqa: E731
    with torch.no_grad():
        q = model.posterior_from_u(t(_points(model, x))[None], t(u)[None], t([w])[None])
    return q.mean[0].double().cpu().numpy(), q.stddev[0].double().cpu().numpy()


def predictive(model, mean_z: np.ndarray, std_z: np.ndarray, w: float, x: np.ndarray, draws: int = 64,
               seed: int = 0, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of u at x under z ~ q_β (clipped to the prior box) and u ~ q_α: the
    moments of the mixture over ``draws`` draws of z."""
    rng = np.random.default_rng(seed)
    lo, hi = z_box(model)
    zs = np.clip(mean_z + std_z * rng.standard_normal((draws, len(mean_z))), lo, hi)
    stats = [field_at(model, x, zk, w, device) for zk in zs]
    mu = np.stack([s[0] for s in stats])
    second = np.stack([s[1] ** 2 + s[0] ** 2 for s in stats]).mean(0)
    mean = mu.mean(0)
    return mean, np.sqrt(np.maximum(second - mean ** 2, 0.0))


def sample_points(sample: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where a sample's reference lives: (points (n, d), u (n,), interior mask (n,)): the nodes
    in 1D; every (node, frame) pair in (x, t), frames major; the nodes (x, y) of a cavity with
    u its stream function."""
    if sample.get("velocity") is not None:
        pts = sample["space"].mesh.points[:, :2]
        return pts, sample["u"], ((pts > 1e-12) & (pts < 1 - 1e-12)).all(1)
    x = sample["space"].mesh.points[:, 0]
    if sample["times"] is None:
        return x[:, None], sample["u"], np.abs(x) < 1 - 1e-12
    tt, xx = np.meshgrid(sample["times"], x, indexing="ij")
    pts = np.stack([xx.ravel(), tt.ravel()], 1)
    inner = (pts[:, 0] > 1e-12) & (pts[:, 0] < 1 - 1e-12) & (pts[:, 1] > 1e-12)
    return pts, sample["u"].ravel(), inner


def scores(model, sample: dict, device: str = "cpu") -> dict[str, float]:
    """Forward and inverse scores of one FE sample (:func:`read_sample`):
    ``rel_l2_u`` (mass-matrix norm; summed over the frames of a trajectory), ``coverage_u``
    (interior points with |u − μ| ≤ 2σ), ``z_rel_err`` ‖μ_z − z‖/‖z‖ of the posterior given the
    reference at the interior points (every 5th node and frame of a trajectory), and
    ``coverage_z`` (components with |z − μ_z| ≤ 2σ_z)."""
    pts, u, inner = sample_points(sample)
    if sample.get("velocity") is not None:
        return _flow_scores(model, sample, pts, u, inner, device)
    mean, std = field_at(model, pts, sample["z"], sample["w"], device)
    M = sample["space"].mass()
    n = M.shape[0]
    e, ref = (mean - u).reshape(-1, n), u.reshape(-1, n)
    rel = float(np.sqrt(sum(r @ (M @ r) for r in e) / sum(r @ (M @ r) for r in ref)))
    observed = inner.copy()
    if sample["times"] is not None:
        frame, node = np.divmod(np.arange(len(u)), n)
        observed &= (frame % 5 == 0) & (node % 5 == 0)
    mz, sz = posterior(model, pts[observed], u[observed], sample["w"], device)
    z = sample["z"]
    return {"rel_l2_u": rel, "coverage_u": float(np.mean(np.abs(u - mean)[inner] <= 2 * std[inner])),
            "z_rel_err": float(np.linalg.norm(mz - z) / np.linalg.norm(z)),
            "coverage_z": float(np.mean(np.abs(z - mz) <= 2 * sz))}


def _flow_scores(model, sample: dict, pts: np.ndarray, psi: np.ndarray, inner: np.ndarray, device: str
                 ) -> dict[str, float]:
    """:func:`scores` of a cavity sample: the velocity (both components, P1 mass-matrix norm)
    and its ±2σ coverage at the interior nodes; the posterior given ψ at every interior node."""
    ref = sample["velocity"]
    mean, std = velocity_at(model, pts, sample["z"], sample["w"], device)
    M = sample["space"].mass()
    e = mean - ref
    rel = float(np.sqrt(sum(e[:, c] @ (M @ e[:, c]) for c in range(2)) /
                        sum(ref[:, c] @ (M @ ref[:, c]) for c in range(2))))
    mz, sz = posterior(model, pts[inner], psi[inner], sample["w"], device)
    z = sample["z"]
    return {"rel_l2_u": rel, "coverage_u": float(np.mean(np.abs(e)[inner] <= 2 * std[inner])),
            "z_rel_err": float(np.linalg.norm(mz - z) / np.linalg.norm(z)),
            "coverage_z": float(np.mean(np.abs(z - mz) <= 2 * sz))}


def read_sample(data, i: int) -> dict:
    """One FE sample of a nonlinear-poisson, parametric-burgers or lid-cavity data set: its P1
    ``space``, ``u`` at the nodes ((n,), or (T, n) at ``times``; the stream function for the
    cavity, with ``velocity`` (n, 2)), ``z``, ``w``, ``name``."""
    from graphfem.datasets.simulations import problem_of
    from graphfem.meshes import FESpace

    spec = SPECS[problem_of(data.family)]
    s = data.sample(i)
    field = "stream" if spec.flow else "u"
    if s.mesh is None or field not in s.fields or any(k not in s.options for k in spec.z_options) or (
            spec.flow and "velocity" not in s.fields):
        raise GraphfemError(f"group {s.name!r} has no mesh, {field}{', velocity' if spec.flow else ''} or "
                            f"{'/'.join(spec.z_options)}; write it with graphfem generate {spec.problem}", data.path)
    if spec.flow:
        velocity = np.asarray(s.fields["velocity"], float)
        if s.mesh.dim != 2 or velocity.shape != (s.mesh.n_points, 2):
            raise GraphfemError(f"group {s.name!r}: a lid-cavity sample needs a 2D mesh and a 2-component velocity",
                                data.path)
        return {"space": FESpace(s.mesh, order=1), "u": np.asarray(s.fields["stream"], float), "velocity": velocity,
                "times": None, "z": spec.z_of(s.options), "w": float(s.options.get(spec.w_option, 1.0)),
                "name": s.name}
    if s.mesh.dim != 1:
        raise GraphfemError(f"group {s.name!r}: the mesh is not a 1D mesh", data.path)
    if spec.time and s.times is None:
        raise GraphfemError(f"group {s.name!r} has no time series", data.path)
    return {"space": FESpace(s.mesh, order=1), "u": np.asarray(s.fields["u"], float),
            "times": None if not spec.time else np.asarray(s.times, float), "z": spec.z_of(s.options),
            "w": float(s.options.get(spec.w_option, 1.0)), "name": s.name}


@register_family
class RGNPFamily(Family):
    """RGNP on nonlinear-poisson, parametric-burgers and lid-cavity data (see the module docstring)."""

    name = "rgnp"
    refuses_outside = True  # z and w outside the prior box, t beyond the trained time: refused always
    models = ("rgnp",)
    consumes = "prior draws of (z, w) on random grids; FE samples of nonlinear-poisson, parametric-burgers or " \
               "lid-cavity for validation"

    def trains_on(self, data) -> bool:
        from graphfem.datasets.simulations import problem_of

        return problem_of(data.family) in SPECS

    def setup(self, data, split, model_config, source) -> Setup:
        import importlib

        from graphfem.datasets.simulations import problem_of

        spec = SPECS[problem_of(data.family)]
        cls, config, extras = family_model_config(model_config, FAMILY_KEYS, source)
        for key in ("draws", "data"):
            if not isinstance(extras[key], int) or isinstance(extras[key], bool) or extras[key] < (
                    1 if key == "draws" else 0):
                raise InputError(f"model.{key}: expected a whole number >= {1 if key == 'draws' else 0}, got "
                                 f"{extras[key]!r}", source)
        if not isinstance(extras["fixed_grid"], bool):
            raise InputError(f"model.fixed_grid: expected true or false, got {extras['fixed_grid']!r}", source)
        if extras["data"] and spec.pde != "poisson1d":
            raise InputError(f"model.data: noisy observation tuples are offered for nonlinear-poisson only, not "
                             f"{spec.problem}", source)
        if config.setdefault("pde", spec.pde) != spec.pde:
            raise InputError(f"model.pde: the {spec.problem} data needs pde {spec.pde!r}, got {config['pde']!r}",
                             source)
        physics = importlib.import_module(f"graphfem.physics.{spec.problem.replace('-', '_')}")
        z_low, z_high = np.atleast_1d(physics.Z_LOW).tolist(), np.atleast_1d(physics.Z_HIGH).tolist()
        config = {"n_z": physics.N_Z, "n_w": 1,
                  "z_low": z_low if len(z_low) > 1 else z_low[0], "z_high": z_high if len(z_high) > 1 else z_high[0],
                  "w_low": physics.W_LOW, "w_high": physics.W_HIGH, **config}
        try:
            model = cls(cls.Config(**config))
        except (TypeError, ValueError) as exc:
            raise InputError(f"model: {exc}", source) from None
        samples = {i: read_sample(data, i) for i in range(len(data))}
        c = model.config
        lo, hi = z_box(model)
        for s in samples.values():
            if s["z"].shape != (c.n_z,) or (s["z"] < lo - 1e-12).any() or (s["z"] > hi + 1e-12).any() \
                    or not c.w_low - 1e-12 <= s["w"] <= c.w_high + 1e-12:
                raise GraphfemError(f"group {s['name']!r}: z or w lies outside the model's prior box {_box(model)}",
                                    data.path)
            if s["times"] is not None and s["times"][-1] > model.pde.high[1] + 1e-12:
                raise GraphfemError(f"group {s['name']!r} runs to t = {s['times'][-1]:g}; the model's domain ends "
                                    f"at t = {model.pde.high[1]:g}", data.path)
        rng = np.random.default_rng(_FIXED_SEED)
        low, high = np.array(model.pde.low), np.array(model.pde.high)
        state = {"samples": samples, "extras": extras, "tuples": [],
                 "grid": rng.uniform(low, high, (c.points, len(low))) if extras["fixed_grid"] else None}
        train_fe = list(split["train"])
        if extras["data"]:
            if not train_fe:
                raise InputError("model.data: the data set has no training split to observe", source)
            for k in range(extras["data"]):
                s = samples[train_fe[k % len(train_fe)]]
                x = s["space"].mesh.points[:, 0]
                idx = np.flatnonzero(np.abs(x) < 1 - 1e-12)[::3]
                y = s["u"][idx] + c.sigma_y * rng.standard_normal(idx.size)
                state["tuples"].append({"x": x[idx], "y": y, "z": s["z"], "w": s["w"]})
        options = list(spec.z_options) + [spec.w_option] + (["t_end", "dt", "save_every"] if spec.time else [])
        if spec.flow:
            units = {"velocity": "m/s", "velocity_std": "m/s", "stream": "m^2/s", "stream_std": "m^2/s"}
            shape = {"dim": 2, "cell_types": ["triangle", "quad"], "fields": list(units), "units": units}
        else:
            shape = {"dim": 1, "cell_types": ["line"], "fields": ["u", "u_std"], "units": {"u": "1", "u_std": "1"}}
        meta = {"family_options": extras,
                "problem": {"name": spec.problem, **shape, "options": options, "ranges": _box(model)},
                "samples": {k: len(v) for k, v in split.items()}}
        return Setup(model, meta, list(range(extras["draws"])), list(split["val"]), list(split["test"]), state)

    def collate(self, setup, items, rng, device, dtype):
        import torch

        model, st = setup.model, setup.state
        c = model.config
        tensor = lambda v: torch.as_tensor(np.asarray(v, float), dtype=dtype, device=device)  # noqa: E731
        B = len(items)
        low, high = np.array(model.pde.low), np.array(model.pde.high)
        lo, hi = z_box(model)
        x = np.repeat(st["grid"][None], B, axis=0) if st["grid"] is not None else \
            rng.uniform(low, high, (B, c.points, len(low)))
        batch = {"x": tensor(x), "z": tensor(rng.uniform(lo, hi, (B, c.n_z))),
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
        rows = [scores(model, setup.state["samples"][i], device) for i in items]
        if not rows:
            return {"rel_l2_u": float("nan")}
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}

    def predict(self, model, meta, mesh, options, device) -> Prediction:
        from graphfem.physics.problem import get_problem

        spec = spec_of(model)
        given = {k: v for k, v in options.items() if v is not None}
        check_options(given, meta["problem"]["options"], "the rgnp model", mesh.source)
        if spec.flow:
            return self._predict_flow(model, spec, mesh, given, device)
        if mesh.dim != 1:
            raise InputError(f"the rgnp model predicts on 1D meshes; this mesh is {mesh.dim}D", mesh.source)
        params = get_problem(spec.problem).parse(mesh, given)
        z, w = spec.z_of(params), float(params[spec.w_option])
        check_inputs(model, z, w, mesh.source)
        x = mesh.points[:, 0]
        if not spec.time:
            mean, std = field_at(model, x, z, w, device)
            return Prediction(mesh, {"u": mean, "u_std": std}, {"u": "1", "u_std": "1"})
        t_max = model.pde.high[1]
        if params["t_end"] > t_max + 1e-12:
            raise InputError(f"--t-end: the model was trained for t in [0, {t_max:g}], got {params['t_end']:g}",
                             mesh.source)
        steps = int(round(params["t_end"] / params["dt"]))
        frames = sorted(set(range(0, steps + 1, params["save_every"])) | {steps})
        times = np.array(frames, float) * params["dt"]
        tt, xx = np.meshgrid(times, x, indexing="ij")
        mean, std = field_at(model, np.stack([xx.ravel(), tt.ravel()], 1), z, w, device)
        shape = (len(times), len(x))
        return Prediction(mesh, {"u": mean.reshape(shape), "u_std": std.reshape(shape)},
                          {"u": "1", "u_std": "1"}, times=times)

    @staticmethod
    def _predict_flow(model, spec: Spec, mesh, given, device) -> Prediction:
        """Velocity (mean, std per component) and stream function of a cavity model at the nodes of a 2D mesh."""
        from graphfem.physics.problem import get_problem

        if mesh.dim != 2:
            raise InputError(f"the rgnp cavity model predicts on 2D meshes of the unit square; this mesh is "
                             f"{mesh.dim}D", mesh.source)
        params = get_problem(spec.problem).parse(mesh, given)
        z, w = spec.z_of(params), float(params[spec.w_option])
        check_inputs(model, z, w, mesh.source)
        pts = mesh.points[:, :2]
        vel, vel_std = velocity_at(model, pts, z, w, device)
        psi, psi_std = field_at(model, pts, z, w, device)
        units = {"velocity": "m/s", "velocity_std": "m/s", "stream": "m^2/s", "stream_std": "m^2/s"}
        return Prediction(mesh, {"velocity": vel, "velocity_std": vel_std, "stream": psi, "stream_std": psi_std}, units)

    def evaluate(self, model, meta, data, device, limit=0, compare_fe=False, progress=True) -> dict[str, Any]:
        from graphfem.datasets.simulations import problem_of
        from graphfem.physics.problem import get_problem

        spec = spec_of(model)
        if problem_of(data.family) != spec.problem:
            raise GraphfemError(f"the model predicts {spec.problem}, the data set holds {data.family} samples",
                                data.path)
        n = len(data) if limit <= 0 else min(limit, len(data))
        rows, t_pred, t_fe, fe_check = [], [], [], []
        for i in range(n):
            s = read_sample(data, i)
            check_inputs(model, s["z"], s["w"], data.path)
            start = time.perf_counter()
            rows.append(scores(model, s, device))
            t_pred.append(time.perf_counter() - start)
            if compare_fe:
                start = time.perf_counter()
                fe = get_problem(spec.problem).run(s["space"].mesh, data.sample(i).options)
                t_fe.append(time.perf_counter() - start)
                ref = fe.trajectory.fields["u"] if spec.time else fe.fields["stream" if spec.flow else "u"]
                fe_check.append(float(np.abs(ref - s["u"]).max() / np.abs(s["u"]).max()))
        out = evaluation_summary([r["rel_l2_u"] for r in rows], t_pred, device, t_fe if compare_fe else None,
                                 fe_check if compare_fe else None, norm="FE mass-matrix norm")
        for key in ("coverage_u", "z_rel_err", "coverage_z"):
            out[f"{key}_mean"] = float(np.mean([r[key] for r in rows]))
        return out


__all__ = ["FAMILY_KEYS", "RGNPFamily", "SPECS", "Spec", "check_inputs", "field_at", "posterior", "predictive",
           "read_sample", "sample_points", "scores", "spec_of", "velocity_at", "z_box"]
