"""Validated training configuration (YAML -> dataclasses).

Unknown keys and wrong types give a one-line :class:`InputError` naming the
key, e.g. ``config.yaml: unknown key 'optim.lrr'; known: lr, weight_decay, ...``.
``--set key=value`` overrides use dotted keys and YAML values.
"""
from __future__ import annotations

import dataclasses
import typing
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


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then cosine decay to ``min_lr_ratio * lr``."""

    lr: float = 1e-3
    weight_decay: float = 1e-5
    epochs: int = 50
    warmup_steps: int = 50
    min_lr_ratio: float = 0.01
    clip_norm: float = 1.0
    amp: bool = True


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
    if typ in (int, float, str, bool, dict) and not (isinstance(value, typ) and not (
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
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {' '.join(str(exc).split())}", path) from None
    return from_dict(TrainConfig, apply_overrides(raw, overrides), str(path))


def to_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)


__all__ = ["DataConfig", "OptimConfig", "RunConfig", "TrainConfig", "apply_overrides", "from_dict", "load_config",
           "to_dict"]
