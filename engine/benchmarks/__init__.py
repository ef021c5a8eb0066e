"""Benchmarks behind ``graphfem bench``: each module's ``run(...)`` returns a table as text."""
from __future__ import annotations

import os
import platform


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
    text += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text
