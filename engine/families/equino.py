r"""EquiNO adapter: EquiNO (FE-OL, Eivazi et al. 2025) and its two baselines on one periodic RVE.

Consumes **RVE snapshots**: a data set of the ``rve`` problem
(``graphfem generate rve --geometry G``) whose samples all share one RVE
mesh (nodes, cells, inclusions, materials; refused otherwise). Each
sample's stored fluctuation dofs ũ (``dofs/fluctuation``) give back, by
:meth:`~graphfem.physics.rve.RVE.solution_of`, the quadrature-point stress
σ = σ(ε̂ + B ũ), σ̂ and Ĉ of its FE solve exactly, with no solve.

Models (``model.name``):

* ``equino``: POD bases (``rank_u``, ``rank_s``) of the **training**
  snapshots; the items are ``collocation`` macro strains drawn from the run's
  seed in the box [−a, a]³ (a = ``amplitude``), ``sampling: radial`` (default;
  :func:`~graphfem.physics.rve.radial_strains`, uniform along each ray from 0
  to the box boundary, so the small strains of a macro problem are covered)
  or ``sampling: box`` (the reference's Latin hypercube,
  :func:`~graphfem.physics.rve.lhs_strains`); the loss
  is the unsupervised constitutive gap between σ(ε(u)) and the equilibrated
  σ_NN (:meth:`graphfem.operators.equino.EquiNO.loss`), per strain relative
  (``relative: true``, default) or with the reference's global weighting.
  The POD bases also take the three snapshots of the response linearised at
  ε̂ = 0 (``linear_snapshots: true``, default; one factorisation, no labels).
  The reference's recipe is ``loss: mse, relative: false, sampling: box,
  linear_snapshots: false``.
* ``rve_vpionet``: the same items; the loss is the potential energy of the
  periodic DeepONet displacement (unsupervised).
* ``rve_blackbox``: the items are the training snapshots; the loss is the
  supervised Sobolev loss on (σ̂, Ĉ) (:func:`graphfem.operators.equino_baselines.sobolev_loss`,
  weight ``tangent_weight``).

Validation, on the validation snapshots: the relative L2(Ω) error of the
model's stress field (σ_NN for EquiNO, σ(ε(u)) for VPIONet), with the FE
quadrature, then that of u and the relative error of σ̂; the black box has
σ̂ only.

Prediction (``graphfem predict MODEL RVE_MESH --strain EXX,EYY,GXY``): the
micro fields of :class:`~graphfem.physics.rve.RVEProblem` on the training RVE
mesh only (same nodes and cells in the same order, same inclusions and
materials: the bases live there), with the stress the L2 projection of the
model's stress field onto the scalar FE space. The black box has no micro
fields; it serves ``graphfem fe2 --model`` (σ̂, Ĉ) only.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError, InputError

from graphfem import validity

from . import Family, Prediction, Setup, evaluation_summary, register_family

if TYPE_CHECKING:
    from graphfem.training.config import TrainConfig

#: family options in ``model:`` besides the model config's fields, with their defaults
FAMILY_KEYS: dict[str, dict[str, Any]] = {"equino": {"collocation": 64, "amplitude": 0.04, "sampling": "radial"},
                                          "rve_vpionet": {"collocation": 64, "amplitude": 0.04, "sampling": "radial"},
                                          "rve_blackbox": {"tangent_weight": 1.0}}
#: config fields the data sets (the RVE's sizes), not the user
DERIVED: dict[str, tuple[str, ...]] = {"equino": ("n_dofs", "n_points", "volume"),
                                       "rve_vpionet": ("n_dofs", "n_points", "volume", "length_x", "length_y",
                                                       "nnz_b"),
                                       "rve_blackbox": ()}
#: collocation samplers in [−a, a]³: ``box`` the reference's Latin hypercube, ``radial`` stratified in
#: direction and in magnitude along each ray, so that small strains are as well covered as large ones
SAMPLERS = ("box", "radial")
#: the stress field each model predicts
SIGMA_KEY = {"equino": "sigma_nn", "rve_vpionet": "sigma_law"}
_OPTIONS = ("strain", "inclusion_tag", "matrix", "inclusion")


@dataclass
class Snapshots:
    """The FE snapshots of a data set on its one RVE.

    Attributes:
        rve: the :class:`~graphfem.physics.rve.RVE` of the shared mesh, tags and materials.
        solutions: one :class:`~graphfem.physics.rve.RVESolution` per sample, in data order.
        params: the parsed options of the first sample (inclusion tags, materials).
    """

    rve: Any
    solutions: list
    params: dict


def read_snapshots(data, tangent: bool = False) -> Snapshots:
    """Every sample of an ``rve`` data set as an RVE solution (``tangent``: with Ĉ).

    Raises:
        GraphfemError: a sample without a mesh or fluctuation dofs, or on another RVE mesh,
            other inclusion tags or other materials than the first (one line naming both groups).
    """
    from graphfem.physics.problem import get_problem
    from graphfem.physics.rve import RVE, Material

    problem = get_problem("rve")
    first = data.sample(0)
    rve, params, solutions = None, None, []
    for i in range(len(data)):
        s = first if i == 0 else data.sample(i)
        if s.mesh is None or "fluctuation" not in s.dofs:
            raise GraphfemError(f"group {s.name!r} has no RVE mesh or dofs/fluctuation; write the data with "
                                "graphfem generate rve", data.path)
        try:
            p = problem.parse(s.mesh, s.options)
        except GraphfemError as exc:
            raise GraphfemError(f"group {s.name!r}: {exc.problem}", data.path) from None
        if rve is None:
            rve, params = RVE(s.mesh, tuple(p["inclusion_tag"]), Material(*p["matrix"]),
                              Material(*p["inclusion"])), p
        else:
            differs = _difference(first.mesh, s.mesh, params, p)
            if differs:
                raise GraphfemError(f"group {s.name!r} is on another RVE than group {first.name!r} ({differs}); "
                                    "EquiNO trains on the snapshots of one RVE: generate them with one --geometry",
                                    data.path)
        try:
            solutions.append(rve.solution_of(p["strain"], rve.reduced(s.dofs["fluctuation"]), tangent))
        except GraphfemError as exc:
            raise GraphfemError(f"group {s.name!r}: {exc.problem}", data.path) from None
    return Snapshots(rve, solutions, params)


def _difference(a: Mesh, b: Mesh, pa: Mapping[str, Any], pb: Mapping[str, Any]) -> str:
    """What differs between two RVE samples, or ``""``."""
    if a.cell_type != b.cell_type or a.points.shape != b.points.shape or a.cells.shape != b.cells.shape:
        return f"{b.n_points} nodes, {b.n_cells} {b.cell_type} cells against {a.n_points}, {a.n_cells} {a.cell_type}"
    if not (np.array_equal(a.points, b.points) and np.array_equal(a.cells, b.cells)):
        return "other node positions or cells"
    if list(pa["inclusion_tag"]) != list(pb["inclusion_tag"]):
        return f"inclusion tags {list(pb['inclusion_tag'])} against {list(pa['inclusion_tag'])}"
    cells = [np.unique(np.concatenate([m.tag(t).indices.ravel() for t in p["inclusion_tag"]]))
             for m, p in ((a, pa), (b, pb))]
    if not np.array_equal(*cells):
        return "other inclusion cells"
    for key in ("matrix", "inclusion"):
        if not np.array_equal(np.asarray(pa[key], float), np.asarray(pb[key], float)):
            return f"{key} law {np.asarray(pb[key], float).tolist()} against {np.asarray(pa[key], float).tolist()}"
    return ""


def check_rve(model, rve, source=None) -> None:
    """Refuse, in one line, an RVE other than the one ``model`` (EquiNO or VPIONet) was built on:
    other sizes, dof positions (nodes, numbering), materials or inclusions. The black box holds
    no mesh and is not checked."""
    name = model.registry_name
    if name == "rve_blackbox":
        return
    c = model.config
    if (c.n_dofs, c.n_points) != (rve.n_dofs, rve.n_points):
        raise InputError(f"this RVE mesh is not the training RVE of the {name} model: {rve.n_dofs} dofs and "
                         f"{rve.n_points} quadrature points, the model's has {c.n_dofs} and {c.n_points}; "
                         "retrain on this RVE", source)
    affine = np.stack([rve.affine(e) for e in np.eye(3)], axis=1)
    if np.abs(affine - model.affine.double().cpu().numpy()).max() > 1e-9 * float(rve.length.max()):
        raise InputError(f"this RVE mesh is not the training RVE of the {name} model: its nodes lie elsewhere or "
                         "are numbered otherwise; retrain on this RVE", source)
    params = model.params.double().cpu().numpy()
    if not np.array_equal(params, rve.params):
        trained, here = (sorted({tuple(r) for r in p.tolist()}) for p in (params, rve.params))
        if trained != here:
            raise InputError(f"the materials (K, alpha, beta, G) differ from the training RVE's: {here} against "
                             f"{trained}", source)
        moved = int((params != rve.params).any(axis=1).sum())
        raise InputError(f"the inclusions differ from the training RVE's: {moved} of {rve.n_points} quadrature "
                         "points lie in the other phase", source)


def micro_fields(model, strains: np.ndarray, source: str = "nn") -> tuple[np.ndarray, np.ndarray]:
    """(u (B, n_dofs), σ (B, N, 3)) of a micro-field model at strains (B, 3): EquiNO's σ_NN
    (``source="nn"``) or σ_law (``"law"``), VPIONet's σ(ε(u)). The black box is refused."""
    name = model.registry_name
    if name == "rve_blackbox":
        raise InputError("the rve_blackbox model predicts the homogenised stress and tangent only, no micro "
                         "fields; use it as the material of graphfem fe2 --model")
    pred = model.predict(strains)
    return pred["u"], pred["sigma_law" if source == "law" else SIGMA_KEY[name]]


def macro_material(model, source: str = "nn"):
    """The macro material callback ε̂ (N, 3) -> (σ̂, Ĉ) of any of the three models (EquiNO: σ̂
    from σ_NN, ``source="nn"``, or from σ_law, ``"law"``)."""
    return model.material(source) if model.registry_name == "equino" else model.material()


def train_config(data: str, out: str, model: str = "equino", *, rank: int = 8, collocation: int = 64,
                 adam_steps: int = 500, lbfgs_iterations: int = 300, batch_size: int = 10, max_iter: int = 10,
                 val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0, threads: int = 1,
                 checkpoint_every: int = 10, device: str = "cpu", progress: bool = False,
                 sampling: str = "radial", loss: str = "cre", relative: bool = True,
                 linear_snapshots: bool = True) -> TrainConfig:
    """The :class:`~graphfem.training.config.TrainConfig` of ``examples/equino.yaml`` for any of the
    three models: Adam (constant ``lr`` 1e-3, no clipping or weight decay, batches of ``batch_size``
    items) for about ``adam_steps`` steps, then full-batch L-BFGS (strong Wolfe, history 50,
    tolerances at machine precision) for ``lbfgs_iterations`` iterations in steps of ``max_iter``,
    all in float64. ``rank`` is EquiNO's POD rank r_u = r_s; ``collocation`` and ``sampling`` the
    collocation strains of EquiNO and VPIONet (the black box trains on the snapshots of ``data``'s
    training split); ``loss``, ``relative`` and ``linear_snapshots`` EquiNO's loss and bases
    (``"mse"``, ``False``, ``False`` with ``sampling="box"``: the reference's recipe)."""
    import math

    from graphfem.datasets.simulations import SimulationData
    from graphfem.training.config import DataConfig, OptimConfig, RunConfig, TrainConfig
    from graphfem.training.trainer import split_indices

    if model == "rve_blackbox":
        n_items = len(split_indices(len(SimulationData(data)), val_fraction, test_fraction, seed)["train"])
    else:
        n_items = collocation
    keys = {"equino": {"rank_u": rank, "rank_s": rank, "collocation": collocation, "sampling": sampling,
                       "loss": loss, "relative": relative, "linear_snapshots": linear_snapshots},
            "rve_vpionet": {"collocation": collocation, "sampling": sampling}, "rve_blackbox": {}}[model]
    adam = {"optimizer": "adam", "epochs": math.ceil(adam_steps / math.ceil(n_items / batch_size)), "lr": 1e-3,
            "weight_decay": 0.0, "warmup_steps": 0, "min_lr_ratio": 1.0, "clip_norm": 0.0, "dtype": "float64"}
    lbfgs = {"optimizer": "lbfgs", "steps": math.ceil(lbfgs_iterations / max_iter), "max_iter": max_iter, "lr": 1.0,
             "history_size": 50, "tolerance_grad": 1e-15, "tolerance_change": 1e-16, "dtype": "float64"}
    return TrainConfig(model={"name": model, **keys},
                       data=DataConfig(path=str(data), val_fraction=val_fraction, test_fraction=test_fraction,
                                       batch_size=batch_size),
                       optim=OptimConfig(phases=[adam, lbfgs] if lbfgs_iterations > 0 else [adam]),
                       run=RunConfig(out=str(out), seed=seed, device=device, checkpoint_every=checkpoint_every,
                                     threads=threads, progress=progress))


@register_family
class EquiNOFamily(Family):
    """EquiNO and its baselines on RVE snapshots (see the module docstring)."""

    name = "equino"
    models = ("equino", "rve_blackbox", "rve_vpionet")
    checks_validity = True
    consumes = "FE snapshots of one periodic RVE (fluctuation dofs at macro strains) and collocation strains"

    # ---------------------------------------------------------------- data
    def trains_on(self, data) -> bool:
        from graphfem.datasets.simulations import problem_of

        return problem_of(data.family) == "rve"

    def setup(self, data, split, model_config, source) -> Setup:
        import torch

        from graphfem.physics.problem import get_problem
        from graphfem.physics.rve import lhs_strains, radial_strains

        config = dict(model_config)
        name = config.pop("name")
        extras = {k: config.pop(k, v) for k, v in FAMILY_KEYS[name].items()}
        self._check_config(name, config, extras, source)
        snaps = read_snapshots(data, tangent=name == "rve_blackbox")
        rve, sols = snaps.rve, snaps.solutions
        train_ids = list(split["train"])
        if not train_ids:
            raise InputError(f"data.path: no training snapshot for {name} (the data set has {len(data)})", source)
        train = [sols[i] for i in train_ids]
        state = {"name": name, "rve": rve, "solutions": sols, "extras": extras}
        strains = np.stack([s.strain for s in train])
        if name == "rve_blackbox":
            rms = lambda key: float(np.sqrt(np.mean(np.stack([getattr(s, key) for s in train]) ** 2)))  # noqa: E731
            state["scales"] = (rms("stress"), rms("tangent"))
            config = {"stress_scale": state["scales"][0], **config}
            items = train_ids
        else:
            sampler = radial_strains if extras["sampling"] == "radial" else lhs_strains
            state["collocation"] = sampler(int(extras["collocation"]), float(extras["amplitude"]),
                                           seed=torch.initial_seed())  # the trainer seeds torch with run.seed
            strains = np.concatenate([strains, state["collocation"]])
            items = list(range(len(state["collocation"])))
        model = self._build(name, rve, train, config)
        problem = get_problem("rve")
        p = snaps.params
        meta = {"family_options": extras,
                "problem": {"name": "rve", "dim": 2, "cell_types": [rve.mesh.cell_type],
                            "fields": list(problem.fields), "units": dict(problem.fields), "options": list(_OPTIONS),
                            "strain_range": [strains.min(0).tolist(), strains.max(0).tolist()],
                            "rve": {"nodes": rve.mesh.n_points, "cells": rve.mesh.n_cells, "dofs": rve.n_dofs,
                                    "points": rve.n_points, "inclusion_tag": list(p["inclusion_tag"]),
                                    "matrix": np.asarray(p["matrix"], float).tolist(),
                                    "inclusion": np.asarray(p["inclusion"], float).tolist()}},
                "snapshots": {k: len(v) for k, v in split.items()}}
        return Setup(model, meta, items, list(split["val"]), list(split["test"]), state)

    @staticmethod
    def _check_config(name: str, config: Mapping[str, Any], extras: Mapping[str, Any], source) -> None:
        from graphfem.operators import get_model

        cls = get_model(name)
        fields = {f.name: f for f in dataclasses.fields(cls.Config)}
        known = (set(fields) - set(DERIVED[name])) | set(FAMILY_KEYS[name])
        for key, value in {**config, **extras}.items():
            if key not in known:
                raise InputError(f"unknown key 'model.{key}'; {name} takes: {', '.join(sorted(known))}", source)
            default = fields[key].default if key in fields else FAMILY_KEYS[name][key]
            if type(default) in (int, float, str) and not isinstance(value, type(default)) and not (
                    type(default) is float and isinstance(value, int) and not isinstance(value, bool)):
                raise InputError(f"model.{key}: expected {type(default).__name__}, got {value!r}", source)
        if config.get("loss", "cre") not in ("cre", "mse"):
            raise InputError(f"model.loss: expected cre or mse, got {config['loss']!r}", source)
        for key in ("relative", "linear_snapshots"):
            if not isinstance(config.get(key, True), bool):
                raise InputError(f"model.{key}: expected true or false, got {config[key]!r}", source)
        if extras.get("sampling", "radial") not in SAMPLERS:
            raise InputError(f"model.sampling: expected {' or '.join(SAMPLERS)}, got {extras['sampling']!r}", source)
        if extras.get("collocation", 1) < 1 or extras.get("amplitude", 1.0) <= 0:
            raise InputError("model.collocation must be >= 1 and model.amplitude > 0", source)

    @staticmethod
    def _build(name: str, rve, train: list, config: dict):
        """The sized model: EquiNO's bases and VPIONet's FE operators from the RVE and the training
        snapshots (the black box's ``stress_scale`` is their RMS σ̂ unless the config gives it)."""
        from graphfem.operators.equino import build_equino
        from graphfem.operators.equino_baselines import BlackBox, build_vpionet

        if name == "equino":
            return build_equino(rve, train, **config)
        if name == "rve_vpionet":
            return build_vpionet(rve, train, **config)
        return BlackBox(BlackBox.Config(**config))

    # ---------------------------------------------------------------- training
    def collate(self, setup: Setup, items: Sequence, rng: np.random.Generator, device: str, dtype) -> dict:
        import torch

        st = setup.state
        tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype, device=device)  # noqa: E731
        if st["name"] != "rve_blackbox":
            return {"strain": tensor(st["collocation"][list(items)])}
        sols = [st["solutions"][i] for i in items]
        return {"strain": tensor([s.strain for s in sols]), "stress": tensor([s.stress for s in sols]),
                "tangent": tensor([s.tangent for s in sols]), "scales": st["scales"],
                "weight": float(st["extras"]["tangent_weight"])}

    def loss(self, net, batch):
        from graphfem.operators.equino_baselines import sobolev_loss

        module = getattr(net, "module", net)  # DDP wraps the model
        if module.registry_name == "rve_blackbox":
            return sobolev_loss(net, batch["strain"], batch["stress"], batch["tangent"], *batch["scales"],
                                batch["weight"])
        return module.loss(batch["strain"], net(batch["strain"]))

    def validate(self, setup: Setup, model, items: Sequence, device: str) -> dict[str, float]:
        st = setup.state
        errors = self._errors(model, st["rve"], [st["solutions"][i] for i in items])
        keys = ("stress_hat",) if st["name"] == "rve_blackbox" else ("sigma", "u", "stress_hat")
        return {("rel_err_" if k == "stress_hat" else "rel_l2_") + k: float(np.mean(errors[k])) for k in keys}

    @staticmethod
    def _errors(model, rve, solutions: Sequence) -> dict[str, np.ndarray]:
        from graphfem.operators.equino import relative_errors

        pred = model.predict(np.stack([s.strain for s in solutions]))
        return relative_errors(rve, pred, solutions, SIGMA_KEY.get(model.registry_name, "sigma_nn"))

    # ---------------------------------------------------------------- inference
    def predict(self, model, meta, mesh, options, device, strict: bool = False) -> Prediction:
        """The micro fields of the RVE at the macroscopic ``--strain``; a strain component outside the
        training strains warns (:mod:`graphfem.validity`), or is refused with ``strict``. The RVE itself
        (mesh, tags, materials) must be the trained one (:func:`check_rve`)."""
        from graphfem.physics.problem import get_problem
        from graphfem.physics.rve import RVE, Material

        problem = get_problem("rve")
        given = {k: v for k, v in options.items() if v is not None and not (isinstance(v, (list, tuple)) and not v)}
        for key in given:
            opt = problem.option(key)
            if opt.role == "setting":
                raise InputError(f"{opt.cli_flag} is a setting of the FE solver; the surrogate does not use it",
                                 mesh.source)
        if model.registry_name == "rve_blackbox":
            micro_fields(model, np.zeros((1, 3)))  # refuses in one line
        params = problem.parse(mesh, given)
        try:
            rve = RVE(mesh, tuple(params["inclusion_tag"]), Material(*params["matrix"]), Material(*params["inclusion"]))
        except GraphfemError as exc:
            raise exc.with_source(mesh.source) from None
        check_rve(model, rve, mesh.source)
        strain = np.asarray(params["strain"], dtype=float)
        validity.check(*strain_case(meta, strain), strict, source=mesh.source)
        u, sigma = micro_fields(model, strain[None])
        return Prediction(mesh, rve.fields(u[0], sigma[0], strain), dict(meta["problem"]["units"]))

    def evaluate(self, model, meta, data, device, limit=0, compare_fe=False, progress=True) -> dict:
        from rich.progress import Progress

        from graphfem.datasets.simulations import problem_of
        from graphfem.physics.problem import get_problem

        if problem_of(data.family) != "rve":
            raise GraphfemError(f"the model predicts rve, the data set holds {data.family} samples", data.path)
        snaps = read_snapshots(data)
        check_rve(model, snaps.rve, data.path)
        n = len(data) if limit <= 0 else min(limit, len(data))
        key = "stress_hat" if model.registry_name == "rve_blackbox" else "sigma"
        errors, t_pred, t_fe, fe_check, inside = [], [], [], [], []
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("evaluating", total=n)
            for i in range(n):
                start = time.perf_counter()
                errors.append(float(self._errors(model, snaps.rve, snaps.solutions[i:i + 1])[key][0]))
                t_pred.append(time.perf_counter() - start)
                inside.append(validity.inside(*strain_case(meta, snaps.solutions[i].strain)))
                if compare_fe:
                    s = data.sample(i)
                    start = time.perf_counter()
                    fe = get_problem("rve").run(s.mesh, s.options).dofs["fluctuation"]
                    t_fe.append(time.perf_counter() - start)
                    stored = s.dofs["fluctuation"]
                    fe_check.append(float(np.abs(fe - stored).max() / max(np.abs(stored).max(), 1e-300)))
                bar.advance(task)
        return {"metric": f"relative L2 error of {key}",
                **evaluation_summary(errors, t_pred, device, t_fe if compare_fe else None,
                                     fe_check if compare_fe else None, inside,
                                     norm=f"L2 norm of {key} over the RVE's quadrature points")}


def strain_case(meta: Mapping[str, Any], strain: np.ndarray) -> tuple[dict, dict]:
    """The :mod:`graphfem.validity` (stored ranges, case) of a macroscopic strain (3,) (ε_xx, ε_yy, γ_xy):
    each component against the checkpoint's training ``strain_range``. The mesh is not among them: the RVE
    must be the trained one (:func:`check_rve`)."""
    lo, hi = meta["problem"]["strain_range"]
    names = [f"strain[{k}]" for k in range(len(lo))]
    stored = {"features": {n: [float(a), float(b)] for n, a, b in zip(names, lo, hi)}}
    case = {"features": {n: [float(v), float(v)] for n, v in zip(names, np.asarray(strain, float).ravel())}}
    return stored, case


__all__ = ["DERIVED", "EquiNOFamily", "FAMILY_KEYS", "SAMPLERS", "SIGMA_KEY", "Snapshots", "check_rve", "macro_material",
           "micro_fields", "read_snapshots", "strain_case", "train_config"]
