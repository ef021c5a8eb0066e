"""The time grid of the transient solvers, and its cost, settled before any work.

A run from 0 to t_end in steps of dt takes n = ⌈t_end/dt⌉ steps of
t_end / n, so that the last lands on t_end. Where that changes what was
asked, the user is told: a dt that does not divide t_end is shrunk with a
:class:`TimeStepWarning` naming the step taken; a dt longer than t_end
(which would silently become one step of t_end) is refused.

A trajectory kept in memory holds 1 + ⌈n / save_every⌉ frames (the first
and the last are always kept) of ``values`` numbers each, 8 bytes apiece:
:func:`check_trajectory_memory` refuses one that cannot fit in the free
memory before the first step, naming the size and the options that shrink
it. :class:`SavedStates` is what every transient solver saves through: kept
(checked that way) or streamed to disk state by state.
"""
from __future__ import annotations

import math
import os
import warnings

import numpy as np

from graphfem.meshes.errors import InputError

from .coefficients import constant


class TimeStepWarning(UserWarning):
    """The time step taken differs from the one given."""


def time_steps(t_end, dt) -> tuple[int, float]:
    """(n, t_end / n): the number of steps and the step actually taken.

    Raises:
        InputError: t_end or dt is not a positive number, or dt > t_end.
    """
    t_end, dt = constant(t_end, "t_end"), constant(dt, "dt")
    if not (t_end > 0 and dt > 0) or not math.isfinite(t_end) or not math.isfinite(dt):
        raise InputError(f"t_end and dt must be positive, got t_end={t_end}, dt={dt}")
    if dt > t_end * (1 + 1e-9):
        raise InputError(f"--dt {dt:g} is longer than --t-end {t_end:g} (it would be a single step of {t_end:g}); "
                         "give a step no longer than t_end")
    steps = max(1, math.ceil(t_end / dt - 1e-9))
    if abs(steps * dt - t_end) > 1e-9 * t_end:
        warnings.warn(f"--dt {dt:g} does not divide --t-end {t_end:g}: taking {steps} steps of dt = "
                      f"{t_end / steps:.6g} instead", TimeStepWarning, stacklevel=2)
    return steps, t_end / steps


def saved_frames(steps: int, save_every: int) -> int:
    """Frames in a trajectory of ``steps`` steps that keeps every ``save_every``-th (and the first and last)."""
    return 1 + math.ceil(steps / int(save_every))


def available_memory() -> int:
    """Bytes of memory free for this process now (physical pages available)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: no limit known
        return 2 ** 62


def human_bytes(count: float) -> str:
    """``1.2 GB`` style (decimal units)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if count < 1000 or unit == "PB":
            return f"{count:.3g} {unit}"
        count /= 1000
    return f"{count:.3g} PB"


def human_seconds(seconds: float) -> str:
    """``22 ms``, ``45 s``, ``12 min``, ``3.5 h`` or ``2.1 days`` (3 significant digits)."""
    if seconds < 1:
        return f"{1e3 * seconds:.3g} ms"
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def check_trajectory_memory(steps: int, save_every: int, values: int) -> None:
    """Refuse a trajectory of ``values`` numbers per frame that would not fit in half the free memory.

    Raises:
        InputError: naming the frames, the size and what to change.
    """
    frames = saved_frames(steps, save_every)
    size, free = 8.0 * frames * values, available_memory()
    if size > free / 2:
        raise InputError(f"{steps} time steps keep {frames} frames of {values} values: {human_bytes(size)}, more "
                         f"than the memory free ({human_bytes(free)}); raise --save-every or --dt")


class SavedStates:
    """The states a transient solver saves: every ``save_every``-th of ``steps`` steps, and the first and the
    last. With ``frames`` each saved state goes to ``frames(t, {name: (n,) or (n, c)})`` at once (a stream to
    disk: :func:`graphfem.meshes.io.streamed_series`) and nothing is kept; without, they are kept for a
    :class:`~graphfem.meshes.Trajectory`, and a trajectory of ``values`` numbers per frame that cannot fit in
    memory is refused before the first step (:func:`check_trajectory_memory`).

    Raises:
        InputError: save_every < 1, or the kept trajectory would not fit.
    """

    def __init__(self, steps: int, save_every, values: int, frames=None):
        if int(save_every) < 1:
            raise InputError(f"save_every must be at least 1, got {save_every}")
        self.steps, self.every, self.frames = int(steps), int(save_every), frames
        if frames is None:
            check_trajectory_memory(self.steps, self.every, values)
        self.times: list[float] = []
        self.states: list[dict] = []
        self.count = 0

    def due(self, step: int) -> bool:
        """Whether step ``step`` (1..steps) is saved."""
        return step % self.every == 0 or step == self.steps

    def save(self, t: float, fields: dict) -> None:
        """Save the state at time ``t``: name -> nodal values."""
        self.count += 1
        if self.frames is not None:
            self.frames(t, fields)
        else:
            self.times.append(float(t))
            self.states.append(fields)

    def trajectory(self, mesh, units: dict):
        """The kept :class:`~graphfem.meshes.Trajectory` (``None`` when streamed)."""
        from graphfem.meshes import Trajectory

        if self.frames is not None:
            return None
        stacked = {name: np.stack([s[name] for s in self.states]) for name in self.states[0]}
        return Trajectory(np.array(self.times), stacked, mesh, units=units)


__all__ = ["SavedStates", "TimeStepWarning", "available_memory", "check_trajectory_memory", "human_bytes", "human_seconds",
           "saved_frames", "time_steps"]
