r"""GIOROM adapters: the sparse time stepper and the neural field as two families.

Both train on **Lagrangian data** of the common layout: per simulation the
positions x (T, N, d) in ``outputs/x``. The stepper needs MPM data
(``graphfem generate mpm``: also the particles' material ids in
``inputs/material``, the run's walls and frame step in ``params``); the field
takes any such trajectories (MPM particles, FE nodes). Every body is sampled
once (``sparse``: a fraction ≤ 1 of its N particles, or a count;
``sampling``: ``fps`` farthest-point or ``random``, seed 0); these family
options sit in ``model:`` next to the model's config fields, and the model's
``dim`` (and the stepper's walls) come from the data.

* **Stepper** (family and model ``giorom``, :class:`~graphfem.operators.giorom.GIOROM`).
  Items are windows (body i, frame t), W ≤ t ≤ T − 2, of the sparse
  particles. A batch adds GNS random-walk noise to x^{t−W..t} (std
  ``noise_std``, drawn from the trainer's generator) and targets the
  acceleration a = x^{t+1} − 2x̃^t + x̃^{t−1} that undoes it; the loss is the
  one-step MSE of the normalised acceleration, mean |â − (a − μ_a)/σ_a|²
  (σ_a² = var(a) + σ_noise², so it equals the next-position MSE up to σ_a²).
  Validation: the MSE of the sparse positions over a whole rollout from the
  first W + 1 frames of each validation body.
* **Neural field** (family and model ``giorom-field``,
  :class:`~graphfem.operators.giorom.NeuralField`). Items are frames (body i,
  t ≥ 1); the field maps the sparse displacements U_s = x_s^t − x_s^0 to all
  N reference points, loss mean |û − U|² / mean_train |U − BU|², B the
  field's base, so the loss starts at 1 and measures what the kernel adds
  (normalised by |U|², dominated by rigid motion, the gradients were so small
  that Adam's ε damped them). Validation: the displacement relative L2 error
  on all particles, ||û − U|| / ||U||, next to the same error of linear
  interpolation (the ``griddata`` baseline) and their ratio.

Inference: ``graphfem predict STEPPER BODY -o out.pvd --material M --t-end T
[--velocity V] [--spacing S] [--dt DT]`` rolls the FPS-sampled sparse
particles of the body out from W + 1 frames of constant velocity V and
rebuilds every particle by linear interpolation of the sparse displacements
(the neural field's base). ``graphfem rollout STEPPER BODY --field FIELD
[--query Q]`` rebuilds with a trained neural field, at the body's particles or
at any query points of the reference configuration. Particle predictions are
written as PVD series of moving point clouds (:class:`ParticlePrediction`).
Errors on particles are plain sums over particles: MPM particles carry equal
masses, so this is the mass-weighted norm.

Domain of validity (:mod:`graphfem.validity`): a stepper checkpoint stores, over
the bodies of its training split, the ranges of what a rollout is asked
(:func:`rollout_case`): the particle count (``nodes``), the initial body's
extent and aspect (largest / smallest bounding-box side), its initial
positions ``initial x[k]`` (the stepper reads the distances to the walls), the
initial ``velocity[k]`` (``--velocity``), the ``particle spacing`` and the
``rollout time`` of the predicted frames ((W + 1) dt up to ``--t-end``; the
training trajectories' length). ``predict`` and ``rollout`` warn once per
input outside them, or refuse it with ``strict``; ``evaluate`` splits its
errors by them (a body of an untrained material counts outside). Refused
always, as before: a material, ``--dt`` or spacing (beyond 1.5x) other than
the training ones, and ``--gravity``, ``--friction``, ``--n-grid``. The
neural field stores no ranges (it is linear in the sparse displacements and
serves any reference points). A checkpoint written before the ranges were
kept predicts silently (refused under ``strict``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from graphfem import validity
from graphfem.meshes import Mesh, PointCloud
from graphfem.meshes.errors import GraphfemError, InputError

from . import Family, Prediction, Setup, check_options, evaluation_summary, model_config, register_family

#: family options in ``model:`` besides the model's config fields
FAMILY_KEYS = {"sparse": 0.2, "sampling": "fps"}
#: the mpm options a stepper's prediction takes (the rest are fixed by its training data)
PREDICT_OPTIONS = ("material", "velocity", "spacing", "t_end", "dt")
#: accepted ratio between a body's particle spacing and the training particles' spacing
SPACING_RATIO = 1.5


# ------------------------------------------------------------------ particle data
@dataclass
class Body:
    """One simulation of a particle data set.

    Attributes:
        name: the group name.
        x: (T, N, d) positions.
        material: (N,) material ids.
        scene: the run's ``walls``, ``frame_dt``, ``n_grid``, ``gravity``,
            ``friction``, ``particle_spacing``.
        options: the stored mpm options (for re-running MPM).
    """

    name: str
    x: np.ndarray
    material: np.ndarray
    scene: dict
    options: dict


SCENE = ("walls", "frame_dt", "n_grid", "gravity", "friction", "particle_spacing")


def _positions(sample, source) -> np.ndarray:
    x = sample.fields.get("x")
    if x is None or x.ndim != 3:
        raise GraphfemError(f"group {sample.name!r} has no particle positions outputs/x (T, N, d)", source)
    return x


def _dim(xs: Sequence[np.ndarray], source) -> int:
    """The one dimension d of trajectories (T, N, d); one line when they mix dimensions."""
    dims = sorted({int(x.shape[2]) for x in xs})
    if len(dims) > 1:
        raise GraphfemError(f"the data set mixes {' and '.join(f'{d}D' for d in dims)} bodies", source)
    return dims[0]


def read_positions(data) -> list[np.ndarray]:
    """The positions x (T, N, d) of every simulation of ``data`` (a
    :class:`~graphfem.datasets.simulations.SimulationData`): MPM particles, or
    the nodes of any Lagrangian trajectory stored the same way."""
    return [_positions(data.sample(i), data.path) for i in range(len(data))]


def read_bodies(data) -> list[Body]:
    """Every simulation of MPM ``data`` as a :class:`Body`; one line naming
    the group for a missing array or scene entry."""
    bodies = []
    for i in range(len(data)):
        s = data.sample(i)
        x = _positions(s, data.path)
        material = s.inputs.get("material")
        if material is None or material.shape != (x.shape[1],):
            raise GraphfemError(f"group {s.name!r} needs inputs/material with one id per particle", data.path)
        missing = [k for k in SCENE if k not in s.params]
        if missing:
            raise GraphfemError(f"group {s.name!r} lacks {', '.join(missing)} in its params", data.path)
        bodies.append(Body(s.name, x, material.astype(np.int64), {k: s.params[k] for k in SCENE}, s.options))
    return bodies


def common_scene(bodies: Sequence[Body], source) -> dict:
    """The scene every body shares (walls, frame step, grid, gravity,
    friction, particle spacing) and ``dim``; one line otherwise."""
    first = bodies[0]
    for b in bodies[1:]:
        for key in SCENE:
            if not np.allclose(b.scene[key], first.scene[key], rtol=1e-9):
                raise GraphfemError(f"groups {first.name!r} and {b.name!r} differ in {key} ({first.scene[key]} "
                                    f"vs {b.scene[key]}); one model learns one scene", source)
    return {**first.scene, "dim": _dim([b.x for b in bodies], source)}


def sparse_count(sparse: float, n: int, minimum: int) -> int:
    """Particles simulated out of ``n``: round(sparse · n) for a fraction ≤ 1,
    ``sparse`` itself for a count, at least ``minimum`` and at most n."""
    count = int(sparse) if sparse > 1 else int(round(sparse * n))
    return min(n, max(minimum, count))


def sparse_subset(points: np.ndarray, options: Mapping[str, Any], minimum: int) -> np.ndarray:
    """(n,) sorted indices of the sparse particles of a body (seed 0, so training and prediction agree)."""
    from graphfem.operators.giorom import sample_particles

    return sample_particles(points, sparse_count(options["sparse"], len(points), minimum), options["sampling"], 0)


def _check_family_options(extras: dict, source) -> None:
    if not isinstance(extras["sparse"], (int, float)) or extras["sparse"] <= 0:
        raise InputError(f"model.sparse: a fraction in (0, 1] or a particle count, got {extras['sparse']!r}", source)
    if extras["sampling"] not in ("fps", "random"):
        raise InputError(f"model.sampling: fps or random, got {extras['sampling']!r}", source)


def _fix_derived(config: dict, derived: Mapping[str, Any], source) -> dict:
    """``config`` with the values the data gives; a different value in the config is one line."""
    for key, value in derived.items():
        if key in config and not np.isclose(config[key], value):
            raise InputError(f"model.{key}: the data gives {value:g}, the config says {config[key]}", source)
    return {**config, **derived}


def _problem_meta(bodies: Sequence[Body], scene: dict) -> dict:
    """The checkpoint's ``problem`` entry: what the model was trained on (its domain of validity)."""
    from graphfem.physics.mpm import MATERIALS

    names = {v: k for k, v in MATERIALS.items()}
    return {"name": "mpm", "dim": scene["dim"], "fields": ["x", "displacement"],
            "units": {"x": "1", "displacement": "1"}, "transient": True, "frame_dt": scene["frame_dt"],
            "materials": sorted({names[int(m)] for b in bodies for m in np.unique(b.material)}),
            "scene": {k: scene[k] for k in SCENE}, "options": list(PREDICT_OPTIONS)}


def _has_positions(data) -> bool:
    """Whether ``data`` stores trajectories of positions ``outputs/x`` (T, N, d)."""
    try:
        group = data.group(0)
        return "outputs/x" in group and group["outputs/x"].ndim == 3
    except Exception:  # an unreadable first group is reported by the trainer's own read
        return True


def relative_error(prediction: np.ndarray, reference: np.ndarray, origin: np.ndarray | float) -> float:
    """Displacement relative L2 error ||p − r|| / ||r − X|| over every frame and
    particle (equal particle masses), X the reference configuration (N, d)
    (0 when the values are displacements)."""
    den = float(np.sum((reference - origin) ** 2))
    num = float(np.sum((prediction - reference) ** 2))
    return float(np.sqrt(num / den)) if den > 0 else float(np.sqrt(num))


def rollout_case(X: np.ndarray, velocity, spacing: float, frames: int, frame_dt: float, window: int) -> dict:
    """The :mod:`graphfem.validity` case of one rollout from the particles ``X`` (N, d) at the initial
    ``velocity`` (d,) (None: at rest) and particle ``spacing``, predicting frames W + 1 .. ``frames``:
    ``nodes`` (the particle count), extent and aspect of the initial body, and the inputs ``initial x[k]``
    (its positions), ``velocity[k]``, ``particle spacing`` and ``rollout time`` [(W + 1) dt, frames dt]."""
    X = np.asarray(X, dtype=float)
    d = X.shape[1]
    v = np.zeros(d) if velocity is None else np.broadcast_to(np.asarray(velocity, dtype=float), (d,))
    lo, hi = X.min(0), X.max(0)
    features = {**{f"initial x[{k}]": [float(lo[k]), float(hi[k])] for k in range(d)},
                **{f"velocity[{k}]": [float(v[k])] * 2 for k in range(d)},
                "particle spacing": [float(spacing)] * 2,
                "rollout time": [(window + 1) * frame_dt, frames * frame_dt]}
    return validity.describe_points(X, features)


def _body_case(b: Body, window: int) -> dict:
    """:func:`rollout_case` of a data set's body: its first frame, stored ``velocity`` and whole trajectory."""
    return rollout_case(b.x[0], b.options.get("velocity"), float(b.scene["particle_spacing"]), len(b.x) - 1,
                        float(b.scene["frame_dt"]), window)


# ------------------------------------------------------------------ prediction
@dataclass
class ParticlePrediction(Prediction):
    """A :class:`~graphfem.families.Prediction` on particles: ``mesh`` is the
    :class:`PointCloud` of the reference positions, ``fields["x"]`` (T, M, d)
    the positions per frame; written as a PVD series of moving point clouds
    with the other fields (``displacement``) and the cloud's ``material``.
    ``info`` holds the sparse count and timings."""

    info: dict = field(default_factory=dict)

    def write(self, path) -> None:
        from graphfem.physics.mpm import write_particle_series

        write_particle_series(path, self.times, self.fields["x"],
                              {k: v for k, v in self.fields.items() if k != "x"}, dict(self.mesh.point_data))


def dense_rollout(stepper, field_model, history: np.ndarray, material: np.ndarray, steps: int, sparse: np.ndarray,
                  queries: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Roll out the sparse particles and rebuild the dense body.

    The sparse frames x_s are rolled out by ``stepper``; the displacements
    U = x_s − X_s are carried to the queries by the neural field
    ``field_model`` or, when it is ``None``, by its base, the linear
    interpolation B (Delaunay barycentric, nearest outside the hull):
    x̂(X) = X + B U.

    Args:
        history: (W + 1, N, d) initial frames of all particles (the first is
            the reference configuration X).
        material: (N,) material ids.
        sparse: (n,) indices of the simulated particles.
        queries: (M, d) reference points to rebuild (default: all N).

    Returns:
        (sparse positions (steps, n, d), dense positions (steps + W + 1, M, d),
        timings: ``rollout_s`` of the stepper, ``assemble_s`` of the field's
        geometry and matrix (once per rollout: the queries and sources are
        fixed in the reference configuration), ``reconstruct_s`` assembly
        plus the per-frame products).
    """
    from graphfem.operators.giorom import interpolation_matrix

    X = history[0]
    queries = X if queries is None else np.asarray(queries, float)
    t0 = time.perf_counter()
    sparse_x = stepper.rollout(history[:, sparse], material[sparse], steps)
    t1 = time.perf_counter()
    U = np.concatenate([history[:, sparse], sparse_x]) - X[sparse][None]
    if field_model is None:
        op = interpolation_matrix(X[sparse], queries, "linear")
    else:
        op = field_model.operator(X[sparse], queries)
        if field_model.config.decoder == "gno":
            op.freeze()
    t2 = time.perf_counter()
    u = np.stack([op @ frame for frame in U]) if field_model is None else op.reconstruct(U)
    t3 = time.perf_counter()
    return sparse_x, queries[None] + u, {"rollout_s": t1 - t0, "assemble_s": t2 - t1, "reconstruct_s": t3 - t1}


def rollout_body(stepper, meta: Mapping[str, Any], body: Mesh | PointCloud, options: Mapping[str, Any],
                 field_model=None, queries: np.ndarray | None = None, strict: bool = False) -> ParticlePrediction:
    """The dense rollout of ``body`` for the mpm ``options`` (raw values) with a
    trained stepper (and optionally a neural field), as a :class:`ParticlePrediction`.

    The body's particles (:func:`graphfem.physics.mpm.body_particles`) must
    lie in the training walls at about the training particle spacing; the
    material must be one the model was trained on, the frame step the
    training one. The W + 1 starting frames move at the constant ``velocity``.
    A rollout outside the training ranges (:func:`rollout_case`) warns once per
    input, or is refused with ``strict``.
    """
    from graphfem.physics.mpm import MATERIALS, body_particles, particle_spacing
    from graphfem.physics.problem import get_problem

    problem = get_problem("mpm")
    p = meta["problem"]
    scene = p["scene"]
    given = {k: v for k, v in options.items() if v is not None}
    check_options(given, PREDICT_OPTIONS, "a GIOROM stepper (trained at one grid, gravity and friction)",
                  body.source)
    if body.dim != p["dim"]:
        raise InputError(f"the model was trained on {p['dim']}D bodies, this body is {body.dim}D", body.source)
    if queries is not None and np.shape(queries)[1] != p["dim"]:
        raise InputError(f"--query: {np.shape(queries)[1]}D points for a {p['dim']}D model")
    frame_dt, W = float(p["frame_dt"]), stepper.config.window
    params = problem.parse(body, {"dt": frame_dt, **given, "n_grid": scene["n_grid"], "gravity": scene["gravity"],
                                  "friction": scene["friction"]})
    if params["material"] not in p["materials"]:
        raise InputError(f"--material {params['material']}: the model was trained on {', '.join(p['materials'])} "
                         "only", body.source)
    if abs(params["dt"] - frame_dt) > 1e-9 * frame_dt:
        raise InputError(f"--dt {params['dt']:g}: the model steps by dt = {frame_dt:g} (its training frames)",
                         body.source)
    frames = int(round(params["t_end"] / frame_dt))
    if frames <= W:
        raise InputError(f"--t-end {params['t_end']:g} leaves no step past the {W} starting steps of dt = "
                         f"{frame_dt:g}; give at least {(W + 1) * frame_dt:g}", body.source)
    X = body_particles(body, params["spacing"])
    if len(X) < p["dim"] + 2:
        raise InputError(f"the body has {len(X)} particles; GIOROM needs at least {p['dim'] + 2}", body.source)
    h, h0 = particle_spacing(X), float(scene["particle_spacing"])
    if not 1 / SPACING_RATIO <= h / h0 <= SPACING_RATIO:
        hint = f"pass --spacing {h0:.6g} to fill the mesh at it" if isinstance(body, Mesh) else \
            "resample the point cloud at it"
        raise InputError(f"the body's particles are {h:.3g} apart, the model was trained on particles {h0:.3g} apart; "
                         f"{hint}", body.source)
    velocity = np.zeros(p["dim"]) if params["velocity"] is None else np.asarray(params["velocity"], dtype=float)
    validity.check(meta.get("validity"), rollout_case(X, velocity, h, frames, frame_dt, W), strict,
                   source=body.source)
    history = X[None] + np.arange(W + 1)[:, None, None] * (velocity * frame_dt)
    material = np.full(len(X), MATERIALS[params["material"]], dtype=np.int64)
    idx = sparse_subset(X, meta["family_options"], W + 2)
    _, dense, timings = dense_rollout(stepper, field_model, history, material, frames - W, idx, queries)
    reference = X if queries is None else np.asarray(queries, dtype=float)
    cloud = PointCloud(reference, {"material": np.full(len(reference), MATERIALS[params["material"]])},
                       source=body.source)
    return ParticlePrediction(cloud, {"x": dense, "displacement": dense - reference[None]},
                              {"x": "1", "displacement": "1"}, frame_dt * np.arange(frames + 1),
                              info={"sparse": int(len(idx)), "particles": int(len(X)), **timings})


# ------------------------------------------------------------------ the stepper
@register_family
class GIOROMStepperFamily(Family):
    """The sparse GIOROM time stepper on MPM particle data (module docstring)."""

    name = "giorom"
    models = ("giorom",)
    checks_validity = True
    consumes = "windows (trajectory, frame) of the FPS-sampled sparse particles of particle trajectories"

    def trains_on(self, data) -> bool:
        from graphfem.datasets.simulations import problem_of

        return problem_of(data.family) == "mpm" and _has_positions(data)

    def setup(self, data, split, model_config_, source) -> Setup:
        cls, config, extras = model_config(model_config_, FAMILY_KEYS, source)
        _check_family_options(extras, source)
        bodies = read_bodies(data)
        scene = common_scene(bodies, data.path)
        lo, hi = scene["walls"]
        config = _fix_derived(config, {"dim": scene["dim"], "wall_lower": lo, "wall_upper": hi}, source)
        model = cls(cls.Config(**config))
        W = model.config.window
        short = [b.name for b in bodies if len(b.x) < W + 2]
        if short:
            raise GraphfemError(f"group {short[0]!r} has fewer than W + 2 = {W + 2} frames", data.path)
        subsets = [sparse_subset(b.x[0], extras, W + 2) for b in bodies]
        xs = [b.x[:, s] for b, s in zip(bodies, subsets)]
        materials = [b.material[s] for b, s in zip(bodies, subsets)]
        train = [(i, t) for i in split["train"] for t in range(W, len(xs[i]) - 1)]
        if not train:
            raise InputError("data: no training trajectory; lower data.val_fraction / data.test_fraction", source)
        d = scene["dim"]
        vel = np.concatenate([np.diff(xs[i], axis=0).reshape(-1, d) for i in split["train"]])
        acc = np.concatenate([np.diff(xs[i], 2, axis=0).reshape(-1, d) for i in split["train"]])
        noise = model.config.noise_std
        norm = {"vel_mean": vel.mean(0), "vel_std": vel.std(0) + 1e-12, "acc_mean": acc.mean(0),
                "acc_std": np.sqrt(acc.var(0) + noise ** 2) + 1e-12}
        model.set_normalisation(*norm.values())
        cases = [_body_case(bodies[i], W) for i in split["train"]]
        meta = {"problem": {**_problem_meta(bodies, scene), "inputs": list(cases[0]["features"])},
                "family_options": extras, "normalisation": {k: v.tolist() for k, v in norm.items()},
                "validity": validity.ranges(cases)}
        state = {"x": xs, "material": materials, "window": W, "noise": noise}
        return Setup(model, meta, train, list(split["val"]), list(split["test"]), state)

    def collate(self, setup: Setup, items: Sequence, rng: np.random.Generator, device: str, dtype) -> Any:
        import torch

        from graphfem.operators.giorom import noisy_sample

        xs, W, model = setup.state["x"], setup.state["window"], setup.model
        histories, targets = [], []
        for i, t in items:
            history, target = noisy_sample(xs[i][t - W:t + 1], xs[i][t + 1], setup.state["noise"], rng)
            histories.append(history)
            targets.append(target)
        g = model.graph(histories, [setup.state["material"][i] for i, _ in items])
        a = torch.as_tensor(np.concatenate(targets), dtype=dtype, device=device)
        return g, (a - model.acc_mean) / model.acc_std

    def loss(self, net, batch):
        import torch

        g, target = batch
        return torch.nn.functional.mse_loss(net(g).to(target.dtype), target)

    def validate(self, setup: Setup, model, items: Sequence, device: str) -> dict[str, float]:
        xs, W = setup.state["x"], setup.state["window"]
        errors = []
        for i in items:
            pred = model.rollout(xs[i][:W + 1], setup.state["material"][i], len(xs[i]) - W - 1)
            errors.append(float(np.mean((pred - xs[i][W + 1:]) ** 2)))
        return {"rollout_mse": float(np.mean(errors)), "rollout_mse_max": float(np.max(errors))}

    def predict(self, model, meta, mesh, options, device, strict: bool = False) -> Prediction:
        """:func:`rollout_body` with linear reconstruction; outside the training ranges it warns
        once per input, or is refused with ``strict``."""
        return rollout_body(model, meta, mesh, options, strict=strict)

    def evaluate(self, model, meta, data, device, limit=0, compare_fe=False, progress=True) -> dict:
        """Displacement rel-L2 of dense rollouts (linear reconstruction) from the
        first W + 1 frames of each body, over its later frames; with
        ``compare_fe`` also the MPM time of the same run. With stored ranges the
        errors are also split inside / outside them (:func:`rollout_case`; a body
        of a material the model was not trained on is outside)."""
        from graphfem.physics.mpm import MATERIALS
        from graphfem.physics.problem import get_problem

        bodies = read_bodies(data)[: limit or None]
        W = model.config.window
        trained = {MATERIALS[m] for m in meta["problem"].get("materials", []) if m in MATERIALS}
        errors, t_pred, t_mpm, check, inside = [], [], [], [], []
        for b in bodies:
            inside.append(validity.inside(meta.get("validity"), _body_case(b, W))
                          and set(np.unique(b.material).tolist()) <= trained)
            start = time.perf_counter()
            _, dense, _ = dense_rollout(model, None, b.x[:W + 1], b.material, len(b.x) - W - 1,
                                        sparse_subset(b.x[0], meta["family_options"], W + 2))
            t_pred.append(time.perf_counter() - start)
            errors.append(relative_error(dense[W + 1:], b.x[W + 1:], b.x[0]))
            if compare_fe:
                solution = get_problem("mpm").run(PointCloud(b.x[0]), b.options)
                t_mpm.append(solution.info["mpm_s"])
                check.append(float(np.abs(solution.trajectory.fields["x"] - b.x).max()))
        return evaluation_summary(errors, t_pred, device, t_mpm if compare_fe else None, check,
                                  inside if meta.get("validity") else None,
                                  norm="displacement over every particle and frame")


# ------------------------------------------------------------------ the neural field
@register_family
class GIOROMFieldFamily(Family):
    """The GIOROM neural field: sparse displacements -> every particle (module docstring)."""

    name = "giorom-field"
    models = ("giorom-field",)
    consumes = "frames of Lagrangian trajectories (outputs/x): displacements of the sampled points and of all points"

    def trains_on(self, data) -> bool:
        return _has_positions(data)

    def setup(self, data, split, model_config_, source) -> Setup:
        from graphfem.datasets.simulations import problem_of

        cls, config, extras = model_config(model_config_, FAMILY_KEYS, source)
        _check_family_options(extras, source)
        xs = read_positions(data)
        dim = _dim(xs, data.path)
        model = cls(cls.Config(**_fix_derived(config, {"dim": dim}, source)))
        subsets = [sparse_subset(x[0], extras, dim + 2) for x in xs]
        ops = [model.operator(x[0][s], x[0]) for x, s in zip(xs, subsets)]
        U = [x - x[:1] for x in xs]
        train = [(i, t) for i in split["train"] for t in range(1, len(U[i]))]
        if not train:
            raise InputError("data: no training trajectory; lower data.val_fraction / data.test_fraction", source)
        scale = float(np.mean([np.mean((U[i][1:] - np.stack([ops[i].base @ u for u in U[i][1:, subsets[i]]])) ** 2)
                               for i in split["train"]])) or 1.0
        meta = {"problem": {"name": problem_of(data.family), "dim": dim, "fields": ["displacement"],
                            "units": {"displacement": "1"}, "transient": True},
                "family_options": extras, "normalisation": {"displacement_ms": scale}}
        state = {"ops": ops, "U": U, "subsets": subsets, "scale": scale}
        return Setup(model, meta, train, list(split["val"]), list(split["test"]), state)

    def collate(self, setup: Setup, items: Sequence, rng: np.random.Generator, device: str, dtype) -> Any:
        """Per body in the batch: (operator, sparse U (k, n, d), all U (k, N, d)) for its k frames."""
        import torch

        frames: dict[int, list[int]] = {}
        for i, t in items:
            frames.setdefault(i, []).append(t)
        U, subsets = setup.state["U"], setup.state["subsets"]
        groups = [(setup.state["ops"][i], torch.as_tensor(U[i][ts][:, subsets[i]], dtype=dtype, device=device),
                   torch.as_tensor(U[i][ts], dtype=dtype, device=device)) for i, ts in frames.items()]
        return groups, setup.state["scale"]

    def loss(self, net, batch):
        groups, scale = batch
        total = sum(((net(op, sparse) - full) ** 2).sum() for op, sparse, full in groups)
        return total / (sum(full.numel() for _, _, full in groups) * scale)

    def validate(self, setup: Setup, model, items: Sequence, device: str) -> dict[str, float]:
        from graphfem.operators.giorom import interpolation_matrix

        U, subsets, ops = setup.state["U"], setup.state["subsets"], setup.state["ops"]
        field_err, base_err = [], []
        for i in items:
            pred = ops[i](U[i][:, subsets[i]]).double().cpu().numpy()
            B = ops[i].base if model.config.base == "linear" else interpolation_matrix(
                ops[i].sources, ops[i].queries, "linear")
            base = np.stack([B @ u for u in U[i][:, subsets[i]]])
            field_err.append(relative_error(pred, U[i], 0.0))
            base_err.append(relative_error(base, U[i], 0.0))
        return {"rel_l2_displacement": float(np.mean(field_err)), "rel_l2_displacement_max": float(np.max(field_err)),
                "rel_l2_linear_interpolation": float(np.mean(base_err)),
                "ratio_to_linear": float(np.sum(field_err) / max(np.sum(base_err), 1e-300))}

    def predict(self, model, meta, mesh, options, device) -> Prediction:
        raise GraphfemError("a giorom-field checkpoint rebuilds a stepper's rollout; predict with the stepper "
                            "(graphfem predict STEPPER BODY ...) or rebuild with it: graphfem rollout STEPPER BODY "
                            "--field FIELD ...")

    def evaluate(self, model, meta, data, device, limit=0, compare_fe=False, progress=True) -> dict:
        """Displacement rel-L2 of the field rebuilt from the true sparse displacements, all frames."""
        if compare_fe:
            raise InputError("--compare-fe: a neural field replaces no solver; evaluate the stepper for MPM times")
        errors, seconds = [], []
        for x in read_positions(data)[: limit or None]:
            X = x[0]
            s = sparse_subset(X, meta["family_options"], X.shape[1] + 2)
            start = time.perf_counter()
            u = model.operator(X[s], X).reconstruct(x[:, s] - X[s][None])
            seconds.append(time.perf_counter() - start)
            errors.append(relative_error(X[None] + u, x, X))
        return evaluation_summary(errors, seconds, device, norm="displacement over every particle and frame")


# ------------------------------------------------------------------ files and metrics
def load_giorom(path: str | Path, kind: str, device: str = "cpu"):
    """(model, metadata) of a checkpoint of model ``kind`` (``giorom`` or ``giorom-field``); never unpickles."""
    from graphfem.checkpoint import load_model

    from . import families

    model, meta = load_model(path)
    if meta.get("model") != kind:
        raise GraphfemError(f"not a {kind} checkpoint (model {meta.get('model')!r})", path)
    families()[kind].check_meta(model, meta, str(path))
    return model.to(device), meta


def read_body(path: str | Path) -> Mesh | PointCloud:
    """The initial body in a file: a :class:`Mesh` when it has cells, else the
    :class:`PointCloud` of its points (2D when every z is 0) with its point fields."""
    from graphfem.meshes import read, read_meshio

    path = Path(path)
    if not path.is_file():
        raise GraphfemError("no such file", path)
    m = read_meshio(path)  # one-line MeshError on any damage
    if any(block.type != "vertex" for block in m.cells):
        return read(path)
    points = np.asarray(m.points, dtype=float)
    if points.shape[1] == 3 and np.all(points[:, 2] == 0):
        points = points[:, :2]
    return PointCloud(points, {k: np.asarray(v) for k, v in m.point_data.items() if len(v) == len(points)},
                      source=str(path))


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance: mean NN squared distance a→b plus b→a."""
    from scipy.spatial import cKDTree

    return float(np.mean(cKDTree(b).query(a)[0] ** 2) + np.mean(cKDTree(a).query(b)[0] ** 2))


__all__ = ["Body", "FAMILY_KEYS", "GIOROMFieldFamily", "GIOROMStepperFamily", "PREDICT_OPTIONS", "ParticlePrediction",
           "chamfer", "common_scene", "dense_rollout", "load_giorom", "read_bodies", "read_body", "read_positions",
           "relative_error", "rollout_body", "rollout_case", "sparse_count", "sparse_subset"]
