"""The compute device and the CPU runtime levers of the command line."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from graphfem.devices import resolve_device
from graphfem.meshes.errors import InputError

PROBE = ("from graphfem.devices import tune_cpu_runtime; import os; r = tune_cpu_runtime(); "
         "import torch; print(r['omp_passive'], r['malloc'], os.environ.get('OMP_WAIT_POLICY'))")


def _probe(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


def test_passive_wait_policy_is_set_before_torch_and_a_users_choice_is_kept():
    omp, malloc, policy = _probe()
    assert (omp, policy) == ("True", "PASSIVE")
    assert malloc == ("True" if sys.platform.startswith("linux") else "False")
    omp, _, policy = _probe(OMP_WAIT_POLICY="ACTIVE")
    assert (omp, policy) == ("False", "ACTIVE")


def test_a_late_call_leaves_the_environment_alone():
    """Once torch is imported, OpenMP has read its settings: the variable would be a lie."""
    out = subprocess.run([sys.executable, "-c", "import torch; " + PROBE.replace("import torch; ", "")],
                         env={k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "False" and out[2] == "None"


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(InputError, match="--device must be"):
        resolve_device("tpu")
