"""Optimisers, the learning-rate schedule, and optimiser state as safetensors-ready tensors."""
from __future__ import annotations

import math
from typing import Any

from .config import PhaseConfig


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based):
    linear warm-up over ``warmup`` steps, then cosine decay to ``min_ratio`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(phase: PhaseConfig, parameters):
    """The torch optimiser of one phase."""
    import torch

    params = list(parameters)
    if phase.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=phase.lr, weight_decay=phase.weight_decay)
    if phase.optimizer == "adam":
        return torch.optim.Adam(params, lr=phase.lr, weight_decay=phase.weight_decay)
    return torch.optim.LBFGS(params, lr=phase.lr, max_iter=phase.max_iter, history_size=phase.history_size,
                             tolerance_grad=phase.tolerance_grad, tolerance_change=phase.tolerance_change,
                             line_search_fn="strong_wolfe")


def state_tensors(optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, JSON meta) of an optimiser's state: tensors stay tensors,
    lists of tensors (L-BFGS history; its scratch list ``al`` also holds
    ``None``) become numbered tensors, numbers go to meta."""
    import torch

    state = optimizer.state_dict()
    tensors, layout = {}, {}
    for idx, entry in state["state"].items():
        kept = {}
        for key, value in entry.items():
            name = f"optim.{idx}.{key}"
            if isinstance(value, torch.Tensor):
                tensors[name] = value
                kept[key] = "tensor"
            elif isinstance(value, list) and all(isinstance(v, torch.Tensor) or v is None for v in value):
                for j, v in enumerate(value):
                    if v is not None:
                        tensors[f"{name}.{j}"] = v
                kept[key] = ["list", len(value), [j for j, v in enumerate(value) if v is None]]
            else:
                kept[key] = ["value", value]
        layout[str(idx)] = kept
    return tensors, {"layout": layout, "param_groups": state["param_groups"]}


def load_state_tensors(optimizer, tensors: dict, meta: dict, device: str) -> None:
    """Restore what :func:`state_tensors` saved into ``optimizer``."""
    state = {}
    for idx, kept in meta["layout"].items():
        entry = {}
        for key, how in kept.items():
            name = f"optim.{idx}.{key}"
            if how == "tensor":
                value = tensors[name]
                entry[key] = value if key == "step" else value.to(device)  # Adam keeps 'step' on the CPU
            elif how[0] == "list":
                empty = set(how[2]) if len(how) > 2 else set()
                entry[key] = [None if j in empty else tensors[f"{name}.{j}"].to(device) for j in range(how[1])]
            else:
                entry[key] = how[1]
        state[int(idx)] = entry
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


__all__ = ["load_state_tensors", "lr_factor", "make_optimizer", "state_tensors"]
