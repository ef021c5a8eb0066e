"""The compute device and the CPU runtime lever of the command line."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from graphfem.devices import resolve_device
from graphfem.meshes.errors import InputError


def test_malloc_lever_applies_on_glibc_and_leaves_openmp_alone():
    probe = ("from graphfem.devices import tune_cpu_runtime; import os; r = tune_cpu_runtime(); "
             "print(r['malloc'], os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    malloc, policy = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                                    check=True).stdout.split()
    assert malloc == ("True" if sys.platform.startswith("linux") else "False")
    assert policy == "None"  # PASSIVE slowed small predictions 3-4x (engine/devices.py)


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(InputError, match="--device must be"):
        resolve_device("tpu")
