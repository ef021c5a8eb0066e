"""Benchmarks behind ``graphfem bench``: each module's ``run(...)`` returns a table as text."""
from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path


def machine() -> str:
    """One line naming the machine a benchmark ran on: CPU model, cores,
    numpy and torch versions, and the GPU when CUDA is available."""
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = f"{cpu}, {os.cpu_count()} cores, numpy {np.__version__}"
    try:
        import torch
    except ImportError:
        return text
    threads = torch.get_num_threads()
    text += f", torch {torch.__version__} ({threads} thread{'s' if threads != 1 else ''})"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def work_folder(folder: str | None) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    """(the folder a benchmark writes its data and runs into, the temporary directory to clean up
    at the end or None): ``folder`` when given (created, kept), else a fresh temporary one."""
    tmp = tempfile.TemporaryDirectory() if folder is None else None
    root = Path(folder or tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    return root, tmp


def timed_generate(problem: str, n: int, path: Path, seed: int = 0, **options) -> float:
    """Write ``n`` samples of ``problem`` to ``path`` with ``graphfem generate``'s writer (no
    progress bar); returns the seconds it took."""
    from graphfem.datasets.generate import generate

    start = time.perf_counter()
    generate(problem, n, path, seed=seed, progress=False, **options)
    return time.perf_counter() - start
