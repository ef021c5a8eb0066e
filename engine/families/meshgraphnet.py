"""MeshGraphNet adapter: the baseline on every mesh problem (Pfaff et al., ICLR 2021).

Consumes **mesh graphs**: one node per mesh node, edges from the cell
connectivity, edge features ``[dx, |dx|]/h_i`` (h_i the mean edge length at
the receiver, so the same weights serve any resolution), node features from
:meth:`graphfem.physics.Problem.features` (input fields, boundary-condition
masks and values, global numbers, boundary flag, local mesh size),
standardised with the training set's mean and standard deviation.

* **Steady problems:** the model predicts the stacked output fields
  y/s (s the problem's output scale, 1 where it has no scaling law). A
  linear problem that gives superposition parts (``Features.parts``: Poisson's
  Dirichlet part and source part, each with its own scale) is predicted as
  y/s = Σ_k r_k U(x_k), one forward pass of the same network U per part on the
  part's features, r_k the part's scale over s (family option
  ``superposition``, default on; no output mean, so U(0) = 0 gives y = 0 for
  zero data). The loss is the per-graph, per-field relative L2 error in the lumped mass
  norm, sqrt(Σ_i w_i |ŷ_i − y_i|² / Σ_i w_i |y_i|²) with |·| the norm over
  a field's components, averaged over graphs and fields (the validation metric).
* **Time-dependent problems** (data with ``times``): a one-step model. The
  node input is [features, state y_t/s]; the target is the increment
  (y_{t+1} − ỹ_t)/s with ỹ_t = y_t + ε the state with training noise
  ε ~ N(0, (σ std(y))²), so the model learns to correct its own drift
  (Pfaff et al. §3); the loss is the lumped-mass-weighted mean squared error
  of the standardised increment. Prediction is the autoregressive rollout
  from the problem's initial state with the data's frame step; validation is
  the relative L2 error of whole rollouts (all frames, lumped mass norm).
"""
from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np

from graphfem.meshes import FESpace, Mesh
from graphfem.meshes.errors import GraphfemError, InputError

from graphfem import validity

from . import Family, Prediction, Setup, evaluation_summary, register_family, standard_deviation
from . import model_config as family_model_config

#: family options in ``model:`` besides MeshGraphNetConfig's fields
FAMILY_KEYS = {"noise": 0.01, "superposition": True}


def lumped_mass(mesh: Mesh) -> np.ndarray:
    """(n,) row sums of the P1 (Q1) mass matrix: w_i = Σ_{K∋i} |K| / (corners of K)."""
    corners = mesh.corner_cells
    share = mesh.cell_measures() / corners.shape[1]
    return np.bincount(corners.ravel(), weights=np.repeat(share, corners.shape[1]), minlength=mesh.n_points)


def graph(mesh: Mesh, x: np.ndarray, levels: int = 0):
    """A PyG ``Data`` with ``x`` (n, F), ``edge_index`` (2, E), ``edge_attr``
    (E, dim + 1) = [x_j − x_i, |x_j − x_i|] / h_i, ``mass`` (n,) and ``pos`` (n, dim)
    float64; with ``levels`` > 0 also that many coarse levels for a multi-scale model
    (:func:`graphfem.operators.multiscale_meshgraphnet.with_hierarchy`)."""
    import torch
    from torch_geometric.data import Data

    from graphfem.meshes.graph import mesh_edges

    edges = mesh_edges(mesh)
    rel = mesh.points[edges[0]] - mesh.points[edges[1]]
    dist = np.linalg.norm(rel, axis=1)
    n = mesh.n_points
    h = np.bincount(edges[1], weights=dist, minlength=n) / np.maximum(np.bincount(edges[1], minlength=n), 1)
    edge_attr = np.concatenate([rel, dist[:, None]], axis=1) / h[edges[1]][:, None]
    g = Data(x=torch.as_tensor(x, dtype=torch.float32), edge_index=torch.as_tensor(edges, dtype=torch.long),
             edge_attr=torch.as_tensor(edge_attr, dtype=torch.float32),
             mass=torch.as_tensor(lumped_mass(mesh), dtype=torch.float32),
             pos=torch.from_numpy(np.array(mesh.points, dtype=np.float64)), num_nodes=n)
    return _with_levels(g, levels) if levels else g


def _with_levels(g, levels: int):
    """``g`` carrying ``levels`` coarse levels built from its ``pos`` and edges."""
    from graphfem.operators.multiscale_meshgraphnet import with_hierarchy

    return with_hierarchy(g, g.pos.cpu().numpy(), levels)


def _model_graph(encoded: dict, levels: int):
    """The encoded sample's graph, with the model's coarse levels (built once, kept in ``encoded``)."""
    if not levels:
        return encoded["graph"]
    if encoded.get("levels") != levels:
        encoded["graph"], encoded["levels"] = _with_levels(encoded["graph"], levels), levels
    return encoded["graph"]


def _hierarchy(g) -> tuple:
    """The extra forward argument of a multi-scale model: (levels,) when ``g`` carries them, else ()."""
    return (g.hierarchy,) if "hierarchy" in g else ()


def _frame_rotation(problem, mesh: Mesh, options: Mapping[str, Any]) -> np.ndarray | None:
    """The rotation into the problem's frame (:meth:`Problem.frame`), or None where the case has
    no frame or is in it already (the identity)."""
    rotation = problem.frame(mesh, options)
    if rotation is None or np.array_equal(rotation, np.eye(len(rotation))):
        return None
    return rotation


def _in_frame(problem, sample):
    """A steady training sample turned into the problem's frame (mesh, options and outputs, by
    :meth:`Problem.rotated`); itself where it has no frame or is in it."""
    from dataclasses import replace

    rotation = _frame_rotation(problem, sample.mesh, sample.options)
    if rotation is None:
        return sample
    turned = problem.rotated(sample.mesh, sample.options, rotation)
    return replace(sample, mesh=turned.mesh, options=turned.options, fields=turned.expected(sample.fields))


def initial_state(problem, mesh: Mesh, params: Mapping[str, Any]) -> np.ndarray:
    """(n, c) the state a rollout starts from: the ``initial`` option at the nodes, else zero."""
    from graphfem.physics.problem import at_nodes

    c = problem.output_channels(mesh)
    value = params.get("initial")
    if value is None:
        return np.zeros((mesh.n_points, c))
    return np.asarray(at_nodes(value, mesh, "initial"), dtype=float).reshape(mesh.n_points, c)


def relative_error(mesh: Mesh, prediction: np.ndarray, reference: np.ndarray) -> float:
    """||p − r|| / ||r|| in the consistent mass norm of the mesh's nodal space (P1, P2 on quadratic
    cells), summed over channels
    (and over frames): values (n,), (n, c) or (T, n, c)."""
    space = FESpace(mesh)  # P1, or the isoparametric P2 of a quadratic mesh
    nodes = space.node_dofs()[:, 0]
    M = space.mass()[nodes][:, nodes]

    def frames(a):
        a = np.asarray(a, dtype=float)
        return a.reshape((-1,) + a.shape[-2:]) if a.ndim == 3 else a.reshape(1, mesh.n_points, -1)

    p, r = frames(prediction), frames(reference)
    d = p - r
    num = sum(float(d[t, :, k] @ (M @ d[t, :, k])) for t in range(d.shape[0]) for k in range(d.shape[2]))
    den = sum(float(r[t, :, k] @ (M @ r[t, :, k])) for t in range(r.shape[0]) for k in range(r.shape[2]))
    return float(np.sqrt(num / den)) if den > 0 else float(np.sqrt(num))


@register_family
class MeshGraphNetFamily(Family):
    """The MeshGraphNet baseline on every registered mesh problem (module docstring)."""

    name = "meshgraphnet"
    models = ("meshgraphnet", "multiscale_meshgraphnet")
    checks_validity = True
    consumes = "mesh graphs (nodes, cell edges, node features of the problem's options)"

    # ---------------------------------------------------------------- data
    def trains_on(self, data) -> bool:
        from graphfem.datasets.simulations import problem_of
        from graphfem.physics.problem import PROBLEMS, problems

        problems()
        return problem_of(data.family) in PROBLEMS and _has_mesh(data)

    def setup(self, data, split, model_config, source) -> Setup:
        from graphfem.datasets.simulations import problem_of
        from graphfem.physics.problem import get_problem

        problem = get_problem(problem_of(data.family))
        cls, config, extras = family_model_config(model_config, FAMILY_KEYS, source)
        encoded = [self._encode(problem, data, i) for i in range(len(data))]
        transient = encoded[0]["frames"] is not None
        if any((e["frames"] is not None) != transient for e in encoded):
            raise GraphfemError("the data set mixes steady samples and time series", data.path)
        first = encoded[0]
        for key, value in {"in_node": first["x"].shape[1] + (first["c"] if transient else 0),
                           "in_edge": first["mesh"].dim + 1, "out": first["c"]}.items():
            if key in config and config[key] != value:
                raise InputError(f"model.{key}: the data gives {value}, the config says {config[key]}", source)
            config[key] = value
        train_ids = list(split["train"])
        parted = not transient and bool(extras["superposition"]) and first["parts"] is not None
        if transient:
            train = [(i, t) for i in train_ids for t in range(len(encoded[i]["frames"]) - 1)]
            xs = [np.concatenate([encoded[i]["x"], encoded[i]["frames"][t]], axis=1) for i, t in train]
            ys = [encoded[i]["frames"][t + 1] - encoded[i]["frames"][t] for i, t in train]
        else:
            train = train_ids
            xs = [xk for i in train for xk, _ in encoded[i]["parts"]] if parted else [encoded[i]["x"] for i in train]
            ys = [encoded[i]["y"] for i in train]
        x, y = np.concatenate(xs).astype(np.float64), np.concatenate(ys).astype(np.float64)
        norm = {"x_mean": x.mean(0).tolist(), "x_std": standard_deviation(x).tolist(), "y_mean": y.mean(0).tolist(),
                "y_std": standard_deviation(y).tolist()}
        if transient or parted:  # increments: a mean drift would be integrated T times; parts: linear in data
            norm["y_mean"] = [0.0] * y.shape[1]
        if transient:
            norm["state_std"] = standard_deviation(np.concatenate([f.reshape(-1, first["c"]) for f in
                                                      (encoded[i]["frames"] for i in train_ids)])).tolist()
        model = cls(cls.Config(**config))
        meshes = [e["mesh"] for e in encoded]
        cases = (validity.describe(encoded[i]["mesh"], encoded[i]["x"], first["names"], encoded[i]["where"])
                 for i in train_ids)
        meta = {"normalisation": norm, "family_options": extras, "validity": validity.ranges(cases),
                "problem": {"name": problem.name, "dim": first["mesh"].dim,
                            "cell_types": sorted({m.cell_type for m in meshes}),
                            "fields": list(problem.fields), "units": dict(problem.fields),
                            "features": first["names"], "transient": transient,
                            "frame_dt": first["frame_dt"], "superposition": parted,
                            "frame": not transient and problem.declares("frame"),
                            "options": [o.name for o in problem.options if o.role != "setting"]}}
        from graphfem.physics.problem import field_slices

        state = {"encoded": encoded, "problem": problem, "transient": transient, "norm": norm, "parted": parted,
                 "noise": float(extras["noise"]), "groups": list(field_slices(problem, first["mesh"]).values())}
        return Setup(model, meta, train, list(split["val"]), list(split["test"]), state)

    @staticmethod
    def _encode(problem, data, i: int) -> dict:
        from graphfem.physics.problem import stack_fields

        s = data.sample(i)
        if s.mesh is None:
            raise GraphfemError(f"group {s.name!r} has no mesh; meshgraphnet trains on mesh data", data.path)
        try:
            if s.times is None:  # a steady case is learnt in the problem's frame (Problem.frame)
                s = _in_frame(problem, s)
            params = problem.parse(s.mesh, s.options)
            features = problem.features(s.mesh, params)
        except GraphfemError as exc:  # the mesh's source names the file and the group
            raise exc.with_source(f"{data.path}:{s.name}") from None
        scale = features.scale.reshape(1, -1)
        out = {"mesh": s.mesh, "x": features.x, "names": features.names, "scale": scale, "where": features.case,
               "c": problem.output_channels(s.mesh), "graph": graph(s.mesh, features.x), "frames": None,
               "frame_dt": None, "parts": features.parts, "dirichlet": features.dirichlet,
               "dirichlet_values": None if features.dirichlet is None else features.dirichlet_values / scale}
        if s.times is not None:
            frames = np.stack([stack_fields(problem, s.mesh, {k: v[t] for k, v in s.fields.items()})
                               for t in range(len(s.times))]) / scale
            out.update(frames=frames, frame_dt=float(np.mean(np.diff(s.times))))
        else:
            out["y"] = stack_fields(problem, s.mesh, s.fields) / scale
        return out

    # ---------------------------------------------------------------- training
    def collate(self, setup: Setup, items: Sequence, rng: np.random.Generator, device: str, dtype) -> Any:
        import torch
        from torch_geometric.data import Batch

        from graphfem.operators.multiscale_meshgraphnet import levels_of

        enc, norm = setup.state["encoded"], setup.state["norm"]
        levels = getattr(setup.model, "hierarchy_levels", 0)
        graphs = []
        for item in items:
            if setup.state["transient"]:
                i, t = item
                e = enc[i]
                state = e["frames"][t]
                noisy = state + rng.normal(size=state.shape) * setup.state["noise"] * np.asarray(norm["state_std"])
                g = _model_graph(e, levels).clone()
                g.x = torch.as_tensor(np.concatenate([e["x"], noisy], axis=1), dtype=torch.float32)
                g.y = torch.as_tensor(e["frames"][t + 1] - noisy, dtype=torch.float32)
            else:
                e = enc[item]
                g = _model_graph(e, levels).clone()
                g.y = torch.as_tensor(e["y"], dtype=torch.float32)
                if setup.state["parted"]:  # (n, P, F) part features and (n, P) their weights r_k
                    g.xp = torch.as_tensor(np.stack([xk for xk, _ in e["parts"]], axis=1), dtype=torch.float32)
                    g.wp = torch.as_tensor([[r for _, r in e["parts"]]], dtype=torch.float32).expand(g.num_nodes, -1)
            graphs.append(g)
        batch = Batch.from_data_list(graphs).to(device)
        stats = {k: torch.tensor(norm[k], dtype=dtype, device=device) for k in ("x_mean", "x_std", "y_mean", "y_std")}
        batch.x = ((batch.x.to(dtype) - stats["x_mean"]) / stats["x_std"])
        if setup.state["parted"]:
            batch.xp = (batch.xp.to(dtype) - stats["x_mean"]) / stats["x_std"]
            batch.wp = batch.wp.to(dtype)
        batch.y_norm = (batch.y.to(dtype) - stats["y_mean"]) / stats["y_std"]
        batch.transient = setup.state["transient"]
        batch.groups = setup.state["groups"]
        batch.y_mean, batch.y_std = stats["y_mean"], stats["y_std"]
        if levels:
            batch.hierarchy = levels_of(batch, levels, dtype)
        return batch

    def loss(self, net, batch):
        from graphfem.training.losses import relative_l2

        edge_attr = batch.edge_attr.to(batch.x.dtype)
        if "xp" in batch:  # y/s = Σ_k r_k U(x_k), the parts of a linear problem
            out = sum(batch.wp[:, k, None] * net(batch.xp[:, k], batch.edge_index, edge_attr, *_hierarchy(batch))
                      for k in range(batch.xp.shape[1]))
        else:
            out = net(batch.x, batch.edge_index, edge_attr, *_hierarchy(batch))
        if batch.transient:
            w = batch.mass[:, None].to(out.dtype)
            return (w * (out - batch.y_norm) ** 2).sum() / (w.sum() * out.shape[1])
        pred = out * batch.y_std + batch.y_mean
        return relative_l2(pred, batch.y.to(out.dtype), batch.mass, batch.batch, batch.num_graphs,
                           batch.groups).mean()

    def validate(self, setup: Setup, model, items: Sequence, device: str) -> dict[str, float]:
        from graphfem.physics.problem import field_slices

        problem, enc = setup.state["problem"], setup.state["encoded"]
        errors: dict[str, list[float]] = {}
        for i in items:
            e = enc[i]
            runner = _Runner(model, setup.meta, device)
            if setup.state["transient"]:
                frames = runner.rollout(e["mesh"], e["x"], e["frames"][0], len(e["frames"]) - 1)
                errors.setdefault("rel_l2_rollout", []).append(relative_error(e["mesh"], frames, e["frames"]))
            else:
                y = runner.steady(e["mesh"], e["x"], e["parts"] if setup.state["parted"] else None)
                if e["dirichlet"] is not None:  # as predict returns it: the values the options fix hold exactly
                    y[e["dirichlet"]] = e["dirichlet_values"][e["dirichlet"]]
                for name, (a, b) in field_slices(problem, e["mesh"]).items():
                    errors.setdefault(f"rel_l2_{name}", []).append(relative_error(e["mesh"], y[:, a:b],
                                                                                  e["y"][:, a:b]))
        out = {}
        if len(errors) > 1:
            out["rel_l2"] = float(np.mean([np.mean(v) for v in errors.values()]))
        for key, values in errors.items():
            out[key] = float(np.mean(values))
            out[f"{key}_median"] = float(np.median(values))
            out[f"{key}_max"] = float(np.max(values))
        return out

    # ---------------------------------------------------------------- inference
    def _case(self, meta, mesh: Mesh, options: Mapping[str, Any]):
        from graphfem.physics.problem import get_problem

        p = meta["problem"]
        problem = get_problem(p["name"])
        if mesh.dim != p["dim"]:
            raise InputError(f"the model was trained on {p['dim']}D meshes, this mesh is {mesh.dim}D", mesh.source)
        if mesh.cell_type not in p["cell_types"]:
            raise InputError(f"the model was trained on {', '.join(p['cell_types'])} cells, not {mesh.cell_type}",
                             mesh.source)
        given = {k: v for k, v in options.items() if v is not None and not (isinstance(v, (list, tuple, dict))
                                                                          and not v)}
        for key in given:
            opt = problem.option(key)
            if opt.role == "setting":
                raise InputError(f"{opt.cli_flag} is a setting of the FE solver; the surrogate does not use it",
                                 mesh.source)
            if opt.role == "time" and not p.get("transient"):
                raise InputError(f"{opt.cli_flag}: the model predicts the steady {problem.name} problem; it has no "
                                 "time stepping", mesh.source)
        params = problem.parse(mesh, given)
        trained = [problem.current_feature(n) for n in p["features"]]  # earlier option names too
        features = problem.features_in(mesh, params, trained)  # and earlier layouts
        if list(features.names) != trained:
            raise GraphfemError(f"the checkpoint encodes node features {p['features']}, this graphfem encodes "
                                f"{features.names}: retrain it with this version", mesh.source)
        return problem, params, features

    def claims(self, meta) -> frozenset[str]:
        """Steady predictions take the values the options fix (``dirichlet``); a problem whose
        features are dimensionless gives the same inputs on a scaled case (``scale``); one that
        predicts by parts (Poisson, ``superposition``) is linear in each part's data; a model trained
        and served in its problem's frame (:meth:`Problem.frame`, the elastic problems' supports turned
        to −x) predicts a turned case as the turned prediction (``rotation``, for every case that
        has a frame). Otherwise not ``rotation``: the edge features [x_j − x_i, |x_j − x_i|]/h and
        vector inputs (tractions, body forces) enter the MLPs by their components in the mesh's axes."""
        from graphfem.physics.problem import get_problem

        p = meta["problem"]
        if p.get("transient"):
            return frozenset()
        return frozenset({"dirichlet"} | ({"scale"} if get_problem(p["name"]).dimensionless else set())
                         | ({"superposition"} if p.get("superposition") else set())
                         | ({"rotation"} if p.get("frame") else set()))

    def check_meta(self, model, meta, source) -> None:
        """The normalisation: x_mean, x_std of the model's ``in_node`` features and y_mean, y_std
        of its ``out`` channels, numbers with positive standard deviations; the training ranges."""
        validity.check_stored(meta.get("validity"), meta["problem"].get("features", []), source)
        norm = meta.get("normalisation")
        sizes = {"x_mean": model.config.in_node, "x_std": model.config.in_node,
                 "y_mean": model.config.out, "y_std": model.config.out}
        for key, size in sizes.items():
            value = norm.get(key) if isinstance(norm, Mapping) else None
            if not (isinstance(value, list) and len(value) == size
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
                raise GraphfemError(f"checkpoint normalisation {key!r} must be {size} numbers, got {value!r}"[:200],
                                    source)
            if key.endswith("std") and min(value) <= 0:
                raise GraphfemError(f"checkpoint normalisation {key!r} must be positive, got {value}"[:200], source)

    def predict(self, model, meta, mesh, options, device, strict: bool = False) -> Prediction:
        """The fields on ``mesh``; a case outside the training ranges warns once per
        input (:mod:`graphfem.validity`), or is refused with ``strict``. A model trained in its
        problem's frame (:meth:`Problem.frame`) predicts every case in that frame."""
        trained = meta["problem"]["cell_types"]
        if mesh.order > 1 and mesh.cell_type not in trained and mesh.linear_cell_type in trained:
            return self._predict_on_corners(model, meta, mesh, options, device, strict)
        from graphfem.physics.problem import get_problem

        problem = get_problem(meta["problem"]["name"])
        rotation = _frame_rotation(problem, mesh, options) if meta["problem"].get("frame") else None
        if rotation is not None:
            return self._predict_in_frame(model, meta, problem, mesh, options, device, strict, rotation)
        return self._predict_as_given(model, meta, mesh, options, device, strict)

    def _predict_in_frame(self, model, meta, problem, mesh: Mesh, options, device, strict: bool, rotation
                          ) -> Prediction:
        """The case turned into the problem's frame (x ↦ R x, :meth:`Problem.rotated`), as the model
        was trained, predicted there, and its vector fields turned back by Rᵀ onto ``mesh``. The
        problems with a frame (the elastic ones) fix zero displacements, which turn to zero exactly."""
        turned = problem.rotated(mesh, options, rotation)
        pred = self._predict_as_given(model, meta, turned.mesh, turned.options, device, strict)
        fields = {name: np.asarray(v) @ rotation if name in problem.vector_fields else v
                  for name, v in pred.fields.items()}
        return Prediction(mesh, fields, pred.units)

    def _predict_as_given(self, model, meta, mesh: Mesh, options, device, strict: bool) -> Prediction:
        from graphfem.physics.problem import split_fields

        problem, params, features = self._case(meta, mesh, options)
        stored = meta.get("validity")
        if stored is not None:  # ranges stored under an option's earlier name (Darcy's a) are its ranges
            stored = {**stored, "features": {problem.current_feature(k): v for k, v in stored["features"].items()}}
        validity.check(stored, validity.describe(mesh, features.x, features.names, features.case), strict,
                       problem.dimensionless, mesh.source)
        runner = _Runner(model, meta, device)
        scale = features.scale.reshape(1, -1)
        units = {k: v for k, v in meta["problem"].get("units", problem.fields).items()}
        if not meta["problem"].get("transient"):
            parts = features.parts if meta["problem"].get("superposition") else None
            y = runner.steady(mesh, features.x, parts) * scale
            if features.dirichlet is not None:  # values the options fix hold exactly
                y[features.dirichlet] = features.dirichlet_values[features.dirichlet]
            return Prediction(mesh, split_fields(problem, mesh, y), units)
        steps, every, dt = self._steps(meta, params, mesh)
        frames = runner.rollout(mesh, features.x, initial_state(problem, mesh, params) / scale, steps) * scale
        kept = frames[::every]
        times = dt * np.arange(0, steps + 1, every)
        fields = {name: np.stack([split_fields(problem, mesh, f)[name] for f in kept]) for name in problem.fields}
        return Prediction(mesh, fields, units, times)

    def _predict_on_corners(self, model, meta, mesh: Mesh, options, device, strict: bool) -> Prediction:
        """A model of linear cells on a quadratic mesh: the prediction on the mesh of its corner nodes
        (:meth:`Mesh.linear_submesh`, which the domain of validity then describes), carried to the
        mid-side nodes by the linear interpolant (:meth:`Mesh.from_corners`), with the values the options
        fix imposed exactly at every node of the quadratic mesh, mid-side nodes included."""
        from graphfem.physics.problem import get_problem, split_fields, stack_fields

        sub, corners = mesh.linear_submesh()
        on_corners = {k: np.asarray(v)[corners] if _is_node_array(v, mesh) else v for k, v in options.items()}
        pred = self.predict(model, meta, sub, on_corners, device, strict)
        if pred.times is not None:
            fields = {k: np.moveaxis(mesh.from_corners(np.moveaxis(v, 0, 1)), 0, 1) for k, v in pred.fields.items()}
            return Prediction(mesh, fields, pred.units, pred.times)
        problem = get_problem(meta["problem"]["name"])
        y = np.stack([mesh.from_corners(c) for c in stack_fields(problem, sub, pred.fields).T], axis=1)
        fixed = problem.essential(mesh, options)  # the values the solver fixes on the quadratic mesh's nodes
        if fixed is not None:
            y[fixed[0]] = fixed[1][fixed[0]]
        return Prediction(mesh, split_fields(problem, mesh, y), pred.units)

    @staticmethod
    def _steps(meta, params, mesh) -> tuple[int, int, float]:
        """(frames to roll out, frames per written step, frame dt) from --t-end, --dt, --save-every."""
        frame_dt = float(meta["problem"]["frame_dt"])
        t_end, dt = params.get("t_end"), params.get("dt")
        if t_end is None:
            raise InputError("--t-end is required: how long to roll the model out", mesh.source)
        dt = frame_dt if dt is None else float(dt)
        if abs(dt - frame_dt) > 1e-9 * frame_dt:
            raise InputError(f"--dt {dt:g}: the model steps by dt = {frame_dt:g} (its training frames); give "
                             f"--dt {frame_dt:g}", mesh.source)
        steps = int(round(t_end / frame_dt))
        if steps < 1 or abs(steps * frame_dt - t_end) > 1e-6 * t_end:
            raise InputError(f"--t-end {t_end:g} is not a whole number of steps of dt = {frame_dt:g}", mesh.source)
        return steps, int(params.get("save_every") or 1), frame_dt

    def evaluate(self, model, meta, data, device, limit=0, compare_fe=False, progress=True) -> dict:
        from rich.progress import Progress

        from graphfem.datasets.simulations import problem_of
        from graphfem.physics.problem import get_problem, stack_fields

        if problem_of(data.family) != meta["problem"]["name"]:
            raise GraphfemError(f"the model predicts {meta['problem']['name']}, the data set holds "
                                f"{data.family} samples", data.path)
        problem = get_problem(meta["problem"]["name"])
        transient = bool(meta["problem"].get("transient"))
        n = len(data) if limit <= 0 else min(limit, len(data))
        errors, t_pred, t_fe, fe_check, inside = [], [], [], [], []
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("evaluating", total=n)
            for i in range(n):
                s = data.sample(i)
                options = {k: v for k, v in s.options.items() if problem.option(k).role == "input"}
                if transient:
                    options["t_end"] = float(s.times[-1] - s.times[0])
                start = time.perf_counter()
                with validity.recorded() as outside:
                    pred = self.predict(model, meta, s.mesh, options, device)
                t_pred.append(time.perf_counter() - start)
                inside.append(not outside)
                if pred.times is None:
                    p, r = stack_fields(problem, s.mesh, pred.fields), stack_fields(problem, s.mesh, s.fields)
                else:
                    p = np.stack([stack_fields(problem, s.mesh, {k: v[t] for k, v in pred.fields.items()})
                                  for t in range(len(pred.times))])
                    r = np.stack([stack_fields(problem, s.mesh, {k: v[t] for k, v in s.fields.items()})
                                  for t in range(len(s.times))])[:len(p)]
                errors.append(relative_error(s.mesh, p, r))
                if compare_fe:
                    start = time.perf_counter()
                    solution = problem.run(s.mesh, s.options)
                    t_fe.append(time.perf_counter() - start)
                    ref = solution.trajectory.fields if solution.trajectory is not None else solution.fields
                    fe_check.append(max(float(np.abs(np.asarray(ref[k]) - s.fields[k]).max()
                                              / max(np.abs(s.fields[k]).max(), 1e-300)) for k in problem.fields))
                bar.advance(task)
        return evaluation_summary(errors, t_pred, device, t_fe if compare_fe else None,
                                  fe_check if compare_fe else None, inside if meta.get("validity") else None,
                                  norm="FE mass-matrix norm")


class _Runner:
    """Forward passes of a trained model with its normalisation."""

    def __init__(self, model, meta, device: str):
        import torch

        norm = meta["normalisation"]
        self.model, self.device = model, device
        self.dtype = next(model.parameters()).dtype
        self.stats = {k: torch.tensor(norm[k], dtype=self.dtype, device=device)
                      for k in ("x_mean", "x_std", "y_mean", "y_std")}

    def _forward(self, g, x: np.ndarray) -> np.ndarray:
        import torch

        from graphfem.operators.multiscale_meshgraphnet import levels_of

        xt = (torch.as_tensor(x, dtype=self.dtype, device=self.device) - self.stats["x_mean"]) / self.stats["x_std"]
        levels = getattr(self.model, "hierarchy_levels", 0)
        if levels and getattr(self, "_levels", (None,))[0] is not g:  # built once per graph (rollouts reuse it)
            self._levels = (g, levels_of(_with_levels(g, levels).to(self.device), levels, self.dtype))
        extra = (self._levels[1],) if levels else ()
        with torch.no_grad():
            out = self.model(xt, g.edge_index, g.edge_attr.to(self.dtype), *extra)
        return (out * self.stats["y_std"] + self.stats["y_mean"]).double().cpu().numpy()

    def steady(self, mesh: Mesh, x: np.ndarray, parts=None) -> np.ndarray:
        """(n, c) the model output (in units of the scale) on ``mesh``: U(x), or
        Σ_k r_k U(x_k) over the superposition ``parts`` ((x_k, r_k) pairs)."""
        g = graph(mesh, x).to(self.device)
        if parts is None:
            return self._forward(g, x)
        return sum(r * self._forward(g, xk) for xk, r in parts)

    def rollout(self, mesh: Mesh, x: np.ndarray, state: np.ndarray, steps: int) -> np.ndarray:
        """(steps + 1, n, c): ``state`` then ``steps`` autoregressive model steps."""
        g = graph(mesh, x).to(self.device)
        frames = [np.asarray(state, dtype=float)]
        for _ in range(steps):
            frames.append(frames[-1] + self._forward(g, np.concatenate([x, frames[-1]], axis=1)))
        return np.stack(frames)


def _is_node_array(value, mesh: Mesh) -> bool:
    """Whether an option value is an array of one value per node of ``mesh`` (not per cell)."""
    return isinstance(value, (np.ndarray, list, tuple)) and np.ndim(value) >= 1 \
        and len(value) == mesh.n_points != mesh.n_cells


def _has_mesh(data) -> bool:
    try:
        return "mesh" in data.group(0)
    except Exception:  # an unreadable first group is reported by the trainer's own read
        return True


__all__ = ["MeshGraphNetFamily", "graph", "lumped_mass", "relative_error"]
