"""Single-file, self-describing, unpicklable checkpoints.

A checkpoint is one ``.safetensors`` file:

* tensors: the model's ``state_dict`` (plus, for training state, the
  optimizer's moments);
* metadata ``"graphfem"``: JSON with ``format``, ``model`` (registered
  name), ``config`` (the model's config dataclass as a dict),
  ``normalisation`` (feature and target mean/std), ``problem`` (name, dim,
  cell types, features, options), ``graphfem_version`` and ``provenance``
  (data file, split, seed, epochs, metrics, time);
* metadata ``"sha256"``: digest of the JSON metadata and of every tensor's
  name, dtype, shape and bytes (:func:`checkpoint_digest`), so a damaged or
  edited file is refused, its header included (files of format 1 carry a
  digest of the tensors only, and are read with that check).

Before any weight is allocated, the model is built on PyTorch's ``meta``
device from its stored config and its parameter shapes are compared with the
stored tensors: a header that asks for a model other than its weights is
refused without allocating it.

Loading never unpickles: safetensors parses a JSON header and raw buffers,
and the model class comes from :mod:`graphfem.operators.registry` by name.
"""
from __future__ import annotations

import hashlib
import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Mapping

from graphfem.meshes.errors import GraphfemError
from graphfem.meshes.io import atomic_path

FORMAT = "graphfem-checkpoint/2"
#: the first format: its digest covers the tensors only
FORMAT_1 = "graphfem-checkpoint/1"
_PICKLE_HINT = ("pickle-based checkpoints (torch.save) are refused because loading them can run arbitrary code; "
                "re-save it with graphfem.checkpoint.save")


def tensor_digest(tensors: Mapping[str, "torch.Tensor"]) -> str:  # noqa: F821
    """sha256 over (name, dtype, shape, bytes) of each tensor, in name order."""
    import torch

    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def checkpoint_digest(meta_json: str, tensors: Mapping[str, "torch.Tensor"]) -> str:  # noqa: F821
    """sha256 over the metadata JSON text, then :func:`tensor_digest` of the tensors."""
    return hashlib.sha256(meta_json.encode() + b"|" + tensor_digest(tensors).encode()).hexdigest()


def save_tensors(path: str | Path, tensors: Mapping[str, "torch.Tensor"], meta: Mapping[str, Any]) -> None:  # noqa: F821
    """Write tensors and JSON metadata to one safetensors file, atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    text = json.dumps({**meta, "format": FORMAT}, sort_keys=True)
    header = {"graphfem": text, "sha256": checkpoint_digest(text, tensors)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)


def read_tensors(path: str | Path) -> tuple[dict, dict]:
    """(tensors, metadata) of a checkpoint, verified; one-line
    :class:`GraphfemError` naming the file for a missing, truncated,
    tampered, pickle-based or foreign file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise GraphfemError("no such checkpoint file", path)
    with open(path, "rb") as fh:
        head = fh.read(9)
    # safetensors: an 8-byte little-endian header length N, then N bytes of JSON
    header_length = int.from_bytes(head[:8], "little") if len(head) >= 8 else -1
    looks_safetensors = len(head) == 9 and head[8:9] == b"{" and 8 + header_length <= path.stat().st_size
    if not looks_safetensors and (head[:2] == b"PK" or head[:1] == b"\x80"):  # zip (torch.save) or pickle
        raise GraphfemError(f"not a safetensors file: {_PICKLE_HINT}", path)
    try:
        tensors = {}
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            for name in f.keys():
                tensors[name] = f.get_tensor(name)
    except Exception as exc:  # safetensors raises SafetensorError and others on damaged files
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise GraphfemError(f"not a valid safetensors checkpoint (truncated or damaged?): {detail}", path) from None
    if "graphfem" not in header:
        raise GraphfemError("a safetensors file without graphfem metadata, not a graphfem checkpoint", path)
    try:
        meta = json.loads(header["graphfem"])
    except json.JSONDecodeError as exc:
        raise GraphfemError(f"damaged checkpoint metadata: {exc}", path) from None
    if not isinstance(meta, dict) or meta.get("format") not in (FORMAT, FORMAT_1):
        found = meta.get("format") if isinstance(meta, dict) else None
        raise GraphfemError(f"unknown checkpoint format {found!r} (this graphfem reads {FORMAT} and {FORMAT_1})",
                            path)
    expected = tensor_digest(tensors) if meta["format"] == FORMAT_1 else checkpoint_digest(header["graphfem"], tensors)
    if header.get("sha256") != expected:
        raise GraphfemError("checksum mismatch: the weights or the metadata were modified or damaged after saving",
                            path)
    return tensors, meta


def save(path: str | Path, model, meta: Mapping[str, Any]) -> None:
    """Save a registered model: its weights plus ``meta`` (normalisation,
    problem, provenance); ``model`` name, ``config`` and version are added."""
    from dataclasses import asdict

    import graphfem

    full = {"model": model.registry_name, "config": asdict(model.config),
            "graphfem_version": graphfem.__version__, **meta}
    save_tensors(path, model.state_dict(), full)


def build_model(name: str, config: Mapping[str, Any], source: str | Path | None = None, device: str | None = None):
    """Instantiate a registered model from its name and config dict (on
    ``device``, e.g. ``"meta"`` to size it without allocating)."""
    import torch

    from graphfem.operators import get_model

    if not isinstance(name, str) or not isinstance(config, Mapping):
        raise GraphfemError("checkpoint metadata: 'model' must be a name and 'config' a mapping", source)
    try:
        cls = get_model(name)
    except GraphfemError as exc:
        raise exc.with_source(source) if source else exc from None
    # on the meta device a RuntimeError may only mean a constructor that computes on values
    errors = (TypeError, ValueError, OverflowError, GraphfemError) + (() if device == "meta" else (RuntimeError,))
    try:
        with torch.device(device or "cpu"):
            return cls(cls.Config(**config))
    except errors as exc:
        detail = " ".join(str(exc).split())
        raise GraphfemError(f"config does not fit model {name!r}: {detail}", source) from None


class _Oversized(Exception):
    """A model being sized registers more tensors or elements than the checkpoint stores."""


@contextmanager
def _registration_limit(tensors: Mapping[str, Any]):
    """Abort a model's construction once it registers more parameters and buffers (in count or
    elements) than twice what ``tensors`` holds, plus a margin for non-persistent buffers: a
    config of a million layers is stopped after a few hundred registrations, not built."""
    from torch.nn.modules.module import (register_module_buffer_registration_hook,
                                         register_module_parameter_registration_hook)

    limit = (2 * len(tensors) + 64, 2 * sum(t.numel() for t in tensors.values()) + 2 ** 20)
    seen = [0, 0]

    def count(module, name, tensor):
        if tensor is not None:
            seen[0], seen[1] = seen[0] + 1, seen[1] + tensor.numel()
            if seen[0] > limit[0] or seen[1] > limit[1]:
                raise _Oversized
    handles = [register_module_parameter_registration_hook(count), register_module_buffer_registration_hook(count)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _check_shapes(name: str, config: Mapping[str, Any], tensors: Mapping[str, Any], source) -> None:
    """Refuse, before allocating, a config whose model has other parameter shapes than the stored tensors."""
    try:
        with _registration_limit(tensors):
            sized = build_model(name, config, source, device="meta").state_dict()
    except _Oversized:
        raise GraphfemError(f"the stored config builds a {name} larger than the {len(tensors)} stored tensors: "
                            "config and weights do not belong together", source) from None
    except (NotImplementedError, RuntimeError):  # a model whose constructor computes on values: no dry run
        return
    for key, t in sized.items():
        if key in tensors and tuple(t.shape) != tuple(tensors[key].shape):
            raise GraphfemError(f"the stored config gives {key} the shape {tuple(t.shape)}, the stored weights "
                                f"{tuple(tensors[key].shape)}: config and weights do not belong together", source)


def _finite_leaves(value: Any) -> bool:
    """Whether every number in a JSON value (nested lists and mappings) is finite."""
    if isinstance(value, Mapping):
        return all(_finite_leaves(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite_leaves(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


def check_metadata(meta: Mapping[str, Any], source: str | Path | None = None) -> None:
    """Refuse, in one line, metadata every family relies on when it is absurd: ``problem`` must
    name a registered problem with its ``fields`` (a non-empty list of names) and ``dim`` 1-3;
    ``normalisation``, where present, must hold finite numbers. Each family checks the rest
    (:meth:`graphfem.families.Family.check_meta`)."""
    from graphfem.physics.problem import problems

    problem = meta.get("problem")
    if not isinstance(problem, Mapping):
        raise GraphfemError("checkpoint metadata: 'problem' is missing or not a mapping", source)
    if problem.get("name") not in problems():
        raise GraphfemError(f"checkpoint metadata names the problem {problem.get('name')!r}, "
                            f"which this graphfem does not have", source)
    fields = problem.get("fields")
    if not (isinstance(fields, list) and fields and all(isinstance(f, str) for f in fields)):
        raise GraphfemError(f"checkpoint metadata: problem fields {fields!r} must be a non-empty list of names",
                            source)
    if problem.get("dim") not in (1, 2, 3):
        raise GraphfemError(f"checkpoint metadata: problem dim {problem.get('dim')!r} must be 1, 2 or 3", source)
    if "normalisation" in meta and not (isinstance(meta["normalisation"], Mapping)
                                        and _finite_leaves(meta["normalisation"])):
        raise GraphfemError("checkpoint metadata: the normalisation holds NaN, infinite or misplaced values",
                            source)


def load_model(path: str | Path, required: tuple[str, ...] = ("model", "config")):
    """(model, metadata) of a checkpoint: the registered model rebuilt from
    its name and config, with every weight loaded (never unpickles). A
    missing metadata key in ``required`` or a weight mismatch is a one-line
    :class:`GraphfemError` naming the file."""
    tensors, meta = read_tensors(path)
    for key in required:
        if key not in meta:
            raise GraphfemError(f"checkpoint metadata lacks {key!r}", path)
    check_metadata(meta, path)
    _check_shapes(meta["model"], meta["config"], tensors, path)
    model = build_model(meta["model"], meta["config"], path)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise GraphfemError(f"weights do not match model {meta['model']!r}: missing {len(missing)}, "
                            f"unexpected {len(unexpected)} tensor(s)", path)
    return model.eval(), meta


def load(path: str | Path, device: str = "cpu"):
    """Load a checkpoint as a :class:`graphfem.surrogate.Surrogate` (never unpickles)."""
    from graphfem.surrogate import Surrogate

    model, meta = load_model(path, required=("model", "config"))
    return Surrogate(model, meta, device=device, source=str(path))


__all__ = ["FORMAT", "FORMAT_1", "build_model", "check_metadata", "checkpoint_digest", "load", "load_model",
           "read_tensors", "save", "save_tensors", "tensor_digest"]
