"""Model families: the contract that makes graphfem one engine.

A family is **a model** (one module in :mod:`graphfem.operators`, registered
by name) **plus an adapter** (one module here, a :class:`Family` subclass
registered with :func:`register_family`). The adapter says

* what the family consumes (:attr:`Family.consumes`: a mesh graph, an FE
  space, particle windows, RVE snapshots, ...) and which data it trains on
  (:meth:`Family.trains_on`);
* how a data set becomes a sized model and training items (:meth:`Family.setup`);
* how items become a batch (:meth:`Family.collate`) and the loss of a batch
  (:meth:`Family.loss`): supervised in the FE norm, a residual, an energy, ...;
* its validation metrics (:meth:`Family.validate`);
* how a prediction becomes fields on the user's mesh (:meth:`Family.predict`)
  and how it is evaluated on a data set (:meth:`Family.evaluate`).

The one :class:`~graphfem.training.trainer.Trainer` trains every family, and
``graphfem predict`` / ``graphfem evaluate`` / :func:`graphfem.load` serve
every checkpoint through its family. Nothing else in the engine knows which
family it holds: a new family is a model module plus an adapter module,
listed in :data:`_BUILTIN`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from graphfem import validity
from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError, InputError


@dataclass
class Setup:
    """What :meth:`Family.setup` gives the trainer.

    Attributes:
        model: the sized ``nn.Module`` (randomly initialised from the seed).
        meta: JSON-ready checkpoint metadata besides the model name and config:
            at least ``problem`` (name, dim, cell types, fields, ...) and the
            family's normalisation; the trainer adds ``family`` and provenance.
        train: the training items (anything the family's :meth:`Family.collate` takes).
        val: validation items (passed to :meth:`Family.validate`).
        test: test items.
        state: anything else the family keeps between calls (encoded samples, caches).
    """

    model: Any
    meta: dict
    train: list
    val: list
    test: list
    state: dict = field(default_factory=dict)


@dataclass
class Prediction:
    """Fields predicted on a mesh: ``fields`` name -> (n, ...) values at the
    nodes of ``mesh``, or, for a time series, ``times`` (T,) with fields (T, n, ...)."""

    mesh: Mesh
    fields: dict[str, np.ndarray]
    units: dict[str, str] = field(default_factory=dict)
    times: np.ndarray | None = None

    def write(self, path) -> None:
        """VTU/XDMF for one state; a time series as PVD (or an XDMF series)."""
        from graphfem.meshes.io import write_series

        suffix = str(path).lower().rsplit(".", 1)[-1]
        if self.times is None:
            if suffix == "pvd":
                raise InputError(f"-o {path}: one steady state is written as .vtu or .xdmf, not .pvd")
            self.mesh.write(path, point_data=self.fields, units=self.units)
            return
        if suffix not in ("pvd", "xdmf", "xmf"):
            raise InputError(f"-o {path}: a time series is written as .pvd or .xdmf")
        write_series(path, self.mesh, self.times, self.fields, units=self.units)


class Family:
    """The adapter of one model family (see the module docstring)."""

    #: the family's name (``graphfem train`` reads it from the model name)
    name: str = ""
    #: the registered operator names this adapter trains and serves
    models: tuple[str, ...] = ()
    #: what the family consumes, in words (for errors and the README)
    consumes: str = ""
    #: whether checkpoints store training ranges that :meth:`predict` checks
    #: (:mod:`graphfem.validity`); such a family's ``predict`` takes ``strict``
    checks_validity: bool = False
    #: whether ``predict`` always refuses an input outside the training ranges (hard ranges such as
    #: NeuralStagger's ν and inflow): ``--strict`` then holds without stored ranges
    refuses_outside: bool = False

    # ---------------------------------------------------------------- data
    def trains_on(self, data) -> bool:
        """Whether the family can train on ``data`` (a :class:`~graphfem.datasets.simulations.SimulationData`)."""
        raise NotImplementedError

    def setup(self, data, split: Mapping[str, Sequence[int]], model_config: Mapping[str, Any],
              source: str) -> Setup:
        """A sized model, its metadata and the train/val/test items from the
        sample indices of ``split`` ("train", "val", "test")."""
        raise NotImplementedError

    def collate(self, setup: Setup, items: Sequence, rng: np.random.Generator, device: str, dtype) -> Any:
        """A batch of ``items`` on ``device``; every random choice (noise,
        test-function centres) is drawn from ``rng``, which the trainer seeds
        from (seed, phase, step) so a resumed run draws the same numbers."""
        raise NotImplementedError

    def loss(self, net, batch) -> Any:
        """The scalar training loss of ``batch``. Call the model as ``net(...)``
        (its ``forward``): under DDP that call synchronises the gradients."""
        raise NotImplementedError

    def validate(self, setup: Setup, model, items: Sequence, device: str) -> dict[str, float]:
        """Validation metrics of ``items``; the first entry is the one the
        best checkpoint is chosen by (lower is better)."""
        raise NotImplementedError

    def check_meta(self, model, meta: Mapping[str, Any], source: str | None) -> None:
        """Refuse, in one line, checkpoint metadata this family cannot serve (a normalisation of
        the wrong length, say); :func:`graphfem.checkpoint.check_metadata` has checked what every
        family shares. This base refuses stored training ranges (``meta["validity"]``) that do
        not hold one [min, max] per name of ``meta["problem"]["inputs"]``
        (:func:`graphfem.validity.check_stored`)."""
        validity.check_stored(meta.get("validity"), meta.get("problem", {}).get("inputs", []), source)

    # ---------------------------------------------------------------- inference
    def claims(self, meta: Mapping[str, Any]) -> frozenset[str]:
        """The exact properties of :mod:`graphfem.properties` this checkpoint's predictions hold
        by construction: ``dirichlet`` (the values the options fix, exactly), ``scale`` (the
        same prediction, by the problem's scaling law, on the mesh scaled by any factor),
        ``rotation`` (vector outputs turn with the mesh). A property not claimed is measured
        and reported, never passed."""
        return frozenset()

    def full_options(self, meta: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
        """The problem's options a prediction with ``options`` answers: those given, plus any
        the model holds fixed (the values every training sample shared)."""
        return dict(options)

    def predict(self, model, meta: Mapping[str, Any], mesh: Mesh, options: Mapping[str, Any],
                device: str) -> Prediction:
        """The model's fields on ``mesh`` for the problem's ``options`` (raw
        values, as :meth:`graphfem.physics.Problem.parse` takes them). An
        option the model does not use is refused in one line."""
        raise GraphfemError(f"{self.name} checkpoints predict through their own command, not graphfem predict")

    def evaluate(self, model, meta: Mapping[str, Any], data, device: str, limit: int = 0,
                 compare_fe: bool = False, progress: bool = True) -> dict[str, Any]:
        """Errors on a data set: ``samples``, ``rel_l2_mean``, ``rel_l2_median``,
        ``rel_l2_p90``, ``rel_l2_max``, ``errors``, ``norm``, ``predict_s_mean`` (and
        ``fe_s_mean`` with ``compare_fe``)."""
        raise NotImplementedError


def standard_deviation(a: np.ndarray) -> np.ndarray:
    """The per-column standard deviation (F,) of samples ``a`` (N, F) for standardising inputs, with 1 for
    a column that is constant up to round-off (std ≤ 1e-6 max|a|): a constant input such as ν = 0.001 in
    every sample has a std of 1e-19 from round-off, and dividing by it would make any other ν enormous."""
    s = a.std(axis=0)
    return np.where(s > 1e-6 * max(float(np.abs(a).max()), 1e-30), s, 1.0)


def evaluation_summary(errors: Sequence[float], predict_s: Sequence[float], device: str,
                       fe_s: Sequence[float] | None = None, fe_check: Sequence[float] | None = None,
                       inside: Sequence[bool] | None = None, *, norm: str) -> dict[str, Any]:
    """What :meth:`Family.evaluate` returns, from per-sample relative errors
    (N,) in the ``norm`` that names them (``"FE mass-matrix norm"``, ...), predict times and,
    with an FE comparison, FE solve times and the
    FE re-solve's deviation from the stored solution. With ``inside`` (N,)
    (whether each sample lies in the model's training ranges) the errors are
    also summarised apart: ``inside`` / ``outside`` {samples, rel_l2_mean, rel_l2_max}."""
    e = np.asarray(errors, dtype=float)
    out = {"samples": int(e.size), "rel_l2_mean": float(e.mean()), "rel_l2_median": float(np.median(e)),
           "rel_l2_p90": float(np.quantile(e, 0.9)), "rel_l2_max": float(e.max()),
           "predict_s_mean": float(np.mean(predict_s)), "errors": e.tolist(), "device": device, "norm": norm}
    if fe_s is not None:
        out.update(fe_s_mean=float(np.mean(fe_s)), fe_vs_stored_max=float(np.max(fe_check)))
    if inside is not None:
        mask = np.asarray(inside, dtype=bool)
        for key, part in (("inside", e[mask]), ("outside", e[~mask])):
            out[key] = {"samples": int(part.size), "rel_l2_mean": float(part.mean()) if part.size else None,
                        "rel_l2_max": float(part.max()) if part.size else None}
    return out


# ---------------------------------------------------------------------- registry
#: name -> family adapter instance
FAMILIES: dict[str, Family] = {}

#: modules that register the built-in adapters (imported on first look-up)
_BUILTIN = ("graphfem.families.meshgraphnet", "graphfem.families.spon", "graphfem.families.giorom",
            "graphfem.families.equino", "graphfem.families.dgno", "graphfem.families.rgnp",
            "graphfem.families.neuralstagger", "graphfem.families.text2pde")


def register_family(cls: type[Family]) -> type[Family]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    if not cls.name or not cls.models:
        raise TypeError(f"{cls.__qualname__} needs a name and the models it serves")
    FAMILIES[cls.name] = cls()
    return cls


def _load_builtin() -> None:
    for module in _BUILTIN:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def families() -> dict[str, Family]:
    """Every registered family by name."""
    _load_builtin()
    return dict(FAMILIES)


def family_of_model(model_name: str, source: str | None = None) -> Family:
    """The family that serves the registered model ``model_name``."""
    for family in families().values():
        if model_name in family.models:
            return family
    known = sorted(m for f in FAMILIES.values() for m in f.models)
    raise InputError(f"model.name: no family trains {model_name!r}; models: {', '.join(known)}", source)


def families_for(data) -> list[str]:
    """Names of the models whose family can train on ``data``."""
    return sorted(m for f in families().values() if f.trains_on(data) for m in f.models)


def model_config(config: Mapping[str, Any], family_keys: Mapping[str, Any], source=None) -> tuple[type, dict, dict]:
    """Split a ``model:`` section into (model class, its config fields, family options).

    ``name`` picks the registered model; the keys of ``family_keys`` are the
    family's own options (filled with these defaults); every other key must
    be a field of the model's ``Config`` with a value of the default's type.
    An unknown key or a wrong type is one line naming it."""
    import dataclasses

    from graphfem.operators import get_model

    rest = dict(config)
    name = rest.pop("name")
    extras = {k: rest.pop(k, v) for k, v in family_keys.items()}
    cls = get_model(name)
    known = {f.name for f in dataclasses.fields(cls.Config)}
    for key, value in rest.items():
        if key not in known:
            raise InputError(f"unknown key 'model.{key}'; {name} takes: {', '.join(sorted(known | set(family_keys)))}",
                             source)
        default = getattr(cls.Config, key, None)
        if type(default) in (int, float, bool) and not isinstance(value, type(default)) and not (
                type(default) is float and type(value) is int):
            raise InputError(f"model.{key}: expected {type(default).__name__}, got {value!r}", source)
    return cls, rest, extras


def check_options(given: Mapping[str, Any], accepted: Sequence[str], what: str, source=None) -> None:
    """Refuse, in one line, an option the model does not use."""
    extra = sorted(k for k, v in given.items() if v is not None and not (hasattr(v, "__len__") and not isinstance(
        v, (str, np.ndarray)) and len(v) == 0) and k not in accepted)
    if extra:
        flag = "--" + extra[0].replace("_", "-")
        takes = ", ".join("--" + a.replace("_", "-") for a in accepted) or "no options"
        raise InputError(f"{flag}: {what} does not use this option; it takes {takes}", source)


__all__ = ["FAMILIES", "Family", "Prediction", "Setup", "check_options", "evaluation_summary", "families",
           "families_for", "family_of_model", "model_config", "register_family", "standard_deviation"]
