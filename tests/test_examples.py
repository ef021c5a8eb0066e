"""Every example runs as a user would run it (the docs are tests).

Each example is a script with a ``main(out)`` function; running it writes
into a temporary folder. The long ones are marked slow.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_poisson_on_a_mesh(tmp_path):
    result = load("poisson_on_a_mesh").main(tmp_path)
    assert (tmp_path / "u.vtu").exists() and (tmp_path / "u.png").exists()
    changes = result["changes"]
    assert changes[1] < changes[0] < 1e-3  # the solutions converge under refinement
    assert all(0.0 < v < 1.0 for v in result["values"])
    assert np.isfinite(result["values"]).all()
