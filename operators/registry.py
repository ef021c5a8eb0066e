"""A plain name -> model-class registry, filled by a decorator.

Checkpoints store the *name* of a model and its config as JSON, never the
class itself, so nothing is ever pickled: loading looks the name up here.

    @register("meshgraphnet")
    class MeshGraphNet(nn.Module):
        Config = MeshGraphNetConfig
        ...

A model class registered here has a ``Config`` dataclass attribute and is
built as ``cls(cls.Config(**config))``.
"""
from __future__ import annotations

import importlib
from typing import Callable, TypeVar

from graphfem.meshes.errors import GraphfemError

#: name -> model class
MODELS: dict[str, type] = {}

#: modules that register the built-in models (imported on first look-up)
_BUILTIN = ("graphfem.operators.meshgraphnet", "graphfem.operators.spon", "graphfem.operators.equino",
            "graphfem.operators.equino_baselines", "graphfem.operators.giorom",
            "graphfem.operators.multionet", "graphfem.operators.dgno", "graphfem.operators.rgnp",
            "graphfem.operators.neuralstagger", "graphfem.operators.multiscale_meshgraphnet",
            "graphfem.operators.text2pde")

T = TypeVar("T", bound=type)


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make the model available under ``name``."""

    def deco(cls: T) -> T:
        if name in MODELS and MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered by {MODELS[name].__qualname__}")
        if not hasattr(cls, "Config"):
            raise TypeError(f"{cls.__qualname__} needs a Config dataclass attribute to be registered")
        MODELS[name] = cls
        cls.registry_name = name
        return cls

    return deco


def _load_builtin() -> None:
    for module in _BUILTIN:
        importlib.import_module(module)


def get_model(name: str) -> type:
    """The class registered under ``name``; a one-line error lists the known names."""
    _load_builtin()
    try:
        return MODELS[name]
    except KeyError:
        raise GraphfemError(f"unknown model {name!r}; registered models: {', '.join(sorted(MODELS))}") from None


def available() -> list[str]:
    """Sorted names of all registered models."""
    _load_builtin()
    return sorted(MODELS)


__all__ = ["MODELS", "available", "get_model", "register"]
