"""The compute device: ``device="auto"`` takes CUDA when present."""
from __future__ import annotations

import ctypes
import sys

from graphfem.meshes.errors import InputError, OptionValueError

#: glibc's mallopt parameters (malloc.h): M_TRIM_THRESHOLD, M_MMAP_MAX
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
#: keep up to 16 GiB of freed memory instead of handing it back to the kernel
_TRIM_THRESHOLD = 16 << 30


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; refuses ``cuda`` without a GPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise OptionValueError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available")
    return device


def set_threads(threads: int) -> None:
    """Torch's CPU threads for a command's ``--threads`` (as ``run.threads`` of ``graphfem train``): 0 keeps
    torch's default.

    Raises:
        InputError: a negative count.
    """
    if threads < 0:
        raise InputError(f"--threads must be >= 0, got {threads}")
    if threads:
        import torch

        torch.set_num_threads(threads)


def tune_cpu_runtime() -> dict[str, bool]:
    """A measured CPU lever (``PERFORMANCE.md`` in the design notes), for the command line:
    glibc ``mallopt`` keeps large temporaries off ``mmap`` and stops trimming freed memory, so
    the edge-sized tensors of a message-passing step are not page-faulted in again at every
    layer (6-11 million faults per timed loop before; forward 1.9x faster at 16k nodes, about
    250 MiB more resident memory). Skipped off glibc.

    ``OMP_WAIT_POLICY=PASSIVE``, the note's other lever for shared machines, is not set: on
    the idle 2-core machine it made the demo's 407-node prediction 3-4x slower with two
    threads (124-175 ms against 41-43 ms; one thread 46 ms either way), since every parallel
    region then wakes sleeping threads.

    Returns:
        ``{"malloc": ...}``: whether the setting took effect.
    """
    malloc = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            malloc = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
        except (OSError, AttributeError):  # musl or another libc: no mallopt
            malloc = False
    return {"malloc": malloc}


__all__ = ["resolve_device", "set_threads", "tune_cpu_runtime"]
