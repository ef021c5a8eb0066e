"""Single-file, self-describing, unpicklable checkpoints.

A checkpoint is one ``.safetensors`` file:

* tensors: the model's ``state_dict`` (plus, for training state, the
  optimizer's moments);
* metadata ``"graphfem"``: JSON with ``format``, ``model`` (registered
  name), ``config`` (the model's config dataclass as a dict),
  ``normalisation`` (feature and target mean/std), ``problem`` (name, dim,
  cell types, features, options), ``graphfem_version`` and ``provenance``
  (data file, split, seed, epochs, metrics, time);
* metadata ``"sha256"``: digest of every tensor's name, dtype, shape and
  bytes, so a tampered or damaged file is refused.

Loading never unpickles: safetensors parses a JSON header and raw buffers,
and the model class comes from :mod:`graphfem.operators.registry` by name.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from graphfem.meshes.errors import GraphfemError
from graphfem.meshes.io import atomic_path

FORMAT = "graphfem-checkpoint/1"
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


def save_tensors(path: str | Path, tensors: Mapping[str, "torch.Tensor"], meta: Mapping[str, Any]) -> None:  # noqa: F821
    """Write tensors and JSON metadata to one safetensors file, atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {"graphfem": json.dumps({"format": FORMAT, **meta}, sort_keys=True), "sha256": tensor_digest(tensors)}
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
    if meta.get("format") != FORMAT:
        raise GraphfemError(f"unknown checkpoint format {meta.get('format')!r} (this graphfem reads {FORMAT})", path)
    if header.get("sha256") != tensor_digest(tensors):
        raise GraphfemError("checksum mismatch: the weights were modified or damaged after saving", path)
    return tensors, meta


def save(path: str | Path, model, meta: Mapping[str, Any]) -> None:
    """Save a registered model: its weights plus ``meta`` (normalisation,
    problem, provenance); ``model`` name, ``config`` and version are added."""
    from dataclasses import asdict

    import graphfem

    full = {"model": model.registry_name, "config": asdict(model.config),
            "graphfem_version": graphfem.__version__, **meta}
    save_tensors(path, model.state_dict(), full)


def build_model(name: str, config: Mapping[str, Any], source: str | Path | None = None):
    """Instantiate a registered model from its name and config dict."""
    from graphfem.operators import get_model

    try:
        cls = get_model(name)
    except GraphfemError as exc:
        raise exc.with_source(source) if source else exc from None
    try:
        return cls(cls.Config(**config))
    except TypeError as exc:
        raise GraphfemError(f"config does not fit model {name!r}: {exc}", source) from None


def load_model(path: str | Path, required: tuple[str, ...] = ("model", "config")):
    """(model, metadata) of a checkpoint: the registered model rebuilt from
    its name and config, with every weight loaded (never unpickles). A
    missing metadata key in ``required`` or a weight mismatch is a one-line
    :class:`GraphfemError` naming the file."""
    tensors, meta = read_tensors(path)
    for key in required:
        if key not in meta:
            raise GraphfemError(f"checkpoint metadata lacks {key!r}", path)
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


__all__ = ["FORMAT", "build_model", "load", "load_model", "read_tensors", "save", "save_tensors", "tensor_digest"]
