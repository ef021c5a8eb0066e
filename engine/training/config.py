"""Validated training configuration (YAML -> dataclasses).

Unknown keys and wrong types give a one-line :class:`InputError` naming the
key, e.g. ``config.yaml: unknown key 'optim.lrr'; known: lr, weight_decay, ...``.
``--set key=value`` overrides use dotted keys and YAML values.
"""
from __future__ import annotations

import dataclasses
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from graphfem.meshes.errors import InputError


@dataclass
class DataConfig:
    """Where the data is and how it is split and batched."""

    path: str = "data.h5"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    batch_size: int = 4
    skip_bad: bool = False


OPTIMIZERS = ("adamw", "adam", "lbfgs")
DTYPES = ("float32", "float64")


@dataclass
class PhaseConfig:
    """One optimiser phase.

    ``adamw`` / ``adam``: ``epochs`` passes over the training items in
    batches, linear warm-up for ``warmup_steps`` then cosine decay to
    ``min_lr_ratio * lr``, gradient clipping at ``clip_norm`` (0: none).
    ``lbfgs``: ``steps`` full-batch L-BFGS steps (``max_iter`` inner
    iterations each, strong-Wolfe line search, history ``history_size``; a step
    ends early once the gradient is below ``tolerance_grad`` or the loss or
    the step changes by less than ``tolerance_change``), typically in ``float64``.
    """

    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-5
    epochs: int = 50
    steps: int = 0
    warmup_steps: int = 50
    min_lr_ratio: float = 0.01
    clip_norm: float = 1.0
    dtype: str = "float32"
    max_iter: int = 1
    history_size: int = 100
    tolerance_grad: float = 1e-7
    tolerance_change: float = 1e-9

    def check(self, source: str, where: str) -> None:
        from graphfem.meshes.errors import InputError

        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"{where}optimizer: expected one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}",
                             source)
        if self.dtype not in DTYPES:
            raise InputError(f"{where}dtype: expected float32 or float64, got {self.dtype!r}", source)
        if self.optimizer == "lbfgs" and self.steps < 1:
            raise InputError(f"{where}steps: an lbfgs phase needs steps >= 1", source)
        if self.optimizer != "lbfgs" and self.epochs < 0:
            raise InputError(f"{where}epochs: expected >= 0, got {self.epochs}", source)
        if self.lr <= 0:
            raise InputError(f"{where}lr: expected > 0, got {self.lr}", source)


@dataclass
class OptimConfig:
    """The optimiser: one AdamW phase from the fields below, or the list
    ``phases`` (each a :class:`PhaseConfig`, e.g. Adam then L-BFGS in float64)."""

    lr: float = 1e-3
    weight_decay: float = 1e-5
    epochs: int = 50
    warmup_steps: int = 50
    min_lr_ratio: float = 0.01
    clip_norm: float = 1.0
    amp: bool = True
    optimizer: str = "adamw"
    phases: list = field(default_factory=list)

    def phase_list(self, source: str = "config") -> list[PhaseConfig]:
        """The phases to run, validated."""
        if self.phases:
            phases = [from_dict(PhaseConfig, p, source, f"optim.phases[{k}].") for k, p in enumerate(self.phases)]
        else:
            phases = [PhaseConfig(optimizer=self.optimizer, lr=self.lr, weight_decay=self.weight_decay,
                                  epochs=self.epochs, warmup_steps=self.warmup_steps, min_lr_ratio=self.min_lr_ratio,
                                  clip_norm=self.clip_norm)]
        for k, p in enumerate(phases):
            p.check(source, f"optim.phases[{k}]." if self.phases else "optim.")
        return phases


@dataclass
class RunConfig:
    """Output folder, seed, device and bookkeeping."""

    out: str = "run"
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 50
    threads: int = 0
    progress: bool = True


@dataclass
class TrainConfig:
    """The whole configuration. ``model`` holds ``name`` plus the fields of
    that model's config dataclass (checked against it by the trainer)."""

    model: dict = field(default_factory=lambda: {"name": "meshgraphnet"})
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


def _check_value(value: Any, typ: Any, key: str, source: str) -> Any:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ in (int, float, str, bool, dict, list) and not (isinstance(value, typ) and not (
            typ is int and isinstance(value, bool))):
        raise InputError(f"{key}: expected {typ.__name__}, got {type(value).__name__} {value!r}", source)
    return value


def from_dict(cls, data: Mapping[str, Any] | None, source: str = "config", prefix: str = ""):
    """Build dataclass ``cls`` from a nested mapping, refusing unknown keys and wrong types."""
    data = data or {}
    if not isinstance(data, Mapping):
        raise InputError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(data).__name__}", source)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise InputError(f"unknown key '{prefix}{key}'; known: {', '.join(names)}", source)
        typ = hints[key]
        if dataclasses.is_dataclass(typ):
            kwargs[key] = from_dict(typ, value, source, f"{prefix}{key}.")
        else:
            kwargs[key] = _check_value(value, typ, f"{prefix}{key}", source)
    return cls(**kwargs)


def apply_overrides(data: dict, overrides: Sequence[str], source: str = "--set") -> dict:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a nested dict."""
    import yaml

    data = dict(data or {})
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set expects key=value, got {item!r}")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, Mapping) else {}
            node = node[part]
        node[parts[-1]] = yaml.safe_load(text)
    return data


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read, override and validate a YAML training config."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError("no such config file", path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise InputError(f"not a UTF-8 text file (byte {exc.start}): a YAML configuration is text", path) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {' '.join(str(exc).split())}"[:300], path) from None
    if not isinstance(raw, dict):
        raise InputError(f"expected a mapping of sections (model, data, optim, run), got a {type(raw).__name__}",
                         path)
    config = from_dict(TrainConfig, apply_overrides(raw, overrides), str(path))
    config.optim.phase_list(str(path))
    if config.optim.phases:  # the single-phase fields then configure nothing: say so rather than drop them
        unused = [f"optim.{f.name}" for f in dataclasses.fields(OptimConfig)
                  if f.name not in ("phases", "amp") and getattr(config.optim, f.name) != f.default]
        if unused:
            warnings.warn(f"{path}: optim.phases is given, so {', '.join(unused)} are not used (each phase "
                          "sets its own)", stacklevel=2)
    return config


def to_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)


__all__ = ["DataConfig", "OptimConfig", "PhaseConfig", "RunConfig", "TrainConfig", "apply_overrides", "from_dict", "load_config",
           "to_dict"]
