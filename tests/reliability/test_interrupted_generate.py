"""``graphfem generate`` killed mid-run, in a subprocess: SIGTERM stops it in one
line and leaves no hidden temporary file; after SIGTERM or SIGKILL,
``--resume`` continues from the finished simulations, removes what a kill
left half-written (saying so), and the final file equals an uninterrupted
run's: every dataset and attribute of every group, and the file's attributes
(no timing provenance is stored, so nothing is excluded).

The default run kills once per signal; ``-m slow`` kills one run again and
again until it is done."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from graphfem.datasets.generate import generate
from graphfem.datasets.writer import parts_folder

N = 7
#: a heat run of a few tenths of a second per simulation, so a kill lands between simulations
ARGS = ["generate", "heat", "-n", str(N), "-o", "h.h5", "--t-end", "0.4", "--dt", "0.0002", "--save-every", "400",
        "--seed", "13"]
OPTIONS = {"t_end": "0.4", "dt": "0.0002", "save_every": "400"}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def tree(path: Path) -> dict:
    """Every attribute and dataset of an HDF5 file, path -> value (arrays as (dtype, shape, bytes))."""
    items = {}
    with h5py.File(path, "r") as h5:
        items.update({f"/@{k}": _plain(v) for k, v in h5.attrs.items()})

        def visit(name, obj):
            items.update({f"{name}@{k}": _plain(v) for k, v in obj.attrs.items()})
            if isinstance(obj, h5py.Dataset):
                values = obj[()]
                items[name] = (values.dtype.str, values.shape, np.ascontiguousarray(values).tobytes())

        h5.visititems(visit)
    return items


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray) else value.item() if hasattr(value, "item") else value


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The uninterrupted run, in this process."""
    out = tmp_path_factory.mktemp("whole") / "h.h5"
    generate("heat", N, out, seed=13, options=OPTIONS, progress=False)
    return tree(out)


def _start(folder: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "graphfem", *ARGS, *extra], cwd=folder, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_after(proc: subprocess.Popen, parts: Path, finished: int, sig: int, timeout: float = 120) -> bool:
    """Send ``sig`` once ``parts`` holds ``finished`` more simulations than now; False if the run ended first."""
    start = len(list(parts.glob("sim_*.h5"))) if parts.exists() else 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.exists() and len(list(parts.glob("sim_*.h5"))) >= start + finished:
            proc.send_signal(sig)
            return True
        time.sleep(0.01)
    return False


def _hidden(folder: Path) -> list[str]:
    """Hidden files anywhere under ``folder``, the parts folder itself and its kept simulations aside."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if p.name != parts_folder(Path("h.h5")).name)


def test_sigterm_cleans_up_and_resume_equals_an_uninterrupted_run(tmp_path, reference):
    proc = _start(tmp_path)
    assert _kill_after(proc, tmp_path / ".h.h5.parts", 2, signal.SIGTERM), "the run ended before the kill"
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and err.count("\n") == 1, err
    assert "stopped by SIGTERM after" in err and "--resume" in err
    assert not (tmp_path / "h.h5").exists() and _hidden(tmp_path) == []  # no hidden temporary file
    kept = sorted(p.name for p in (tmp_path / ".h.h5.parts").iterdir())
    assert {"sim_000000.h5", "sim_000001.h5"} <= set(kept) and all(not k.startswith(".") for k in kept)
    done = subprocess.run([sys.executable, "-m", "graphfem", *ARGS, "--resume"], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming h.h5:" in done.stderr and f"{len(kept) - 2} finished simulations kept" in done.stderr
    assert tree(tmp_path / "h.h5") == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.h5"]


def test_sigkill_then_resume_removes_leftovers_and_equals_an_uninterrupted_run(tmp_path, reference):
    proc = _start(tmp_path)
    assert _kill_after(proc, tmp_path / ".h.h5.parts", 3, signal.SIGKILL), "the run ended before the kill"
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # what a kill during a write leaves: a half-written simulation in the parts folder and a hidden
    # temporary output file (as the writers name them), of a few bytes of junk
    (tmp_path / ".h.h5.parts" / ".sim_000005.k1ll3d00.h5").write_bytes(b"\x89HDF\r\n" + b"\0" * 4096)
    (tmp_path / ".h.a1b2c3d4.h5").write_bytes(b"\x89HDF\r\n" + b"\0" * 4096)
    done = subprocess.run([sys.executable, "-m", "graphfem", *ARGS, "--resume"], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "removed 1 hidden temporary file(s) of h.h5 left by a killed run" in done.stderr
    assert "half-written or damaged file(s) removed" in done.stderr
    assert tree(tmp_path / "h.h5") == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.h5"]


def test_resume_refuses_other_settings_and_a_fresh_run_discards_with_a_warning(tmp_path, capsys):
    from graphfem.cli import main

    out = tmp_path / "p.h5"
    parts = parts_folder(out)
    parts.mkdir()
    (parts / "manifest.json").write_text('{"problem": "poisson", "job": ["problem", "poisson", null, null, {}], '
                                         '"seed": 4, "graphfem_version": "0"}')
    (parts / "sim_000000.h5").write_bytes(b"")
    assert main(["generate", "poisson", "-n", "2", "-o", str(out), "--seed", "5", "--resume"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume: the interrupted run had other settings (seed: 4)" in err
    assert parts.is_dir() and not out.exists()  # the refusal keeps the interrupted run's work
    assert main(["generate", "poisson", "-n", "2", "-o", str(out), "--seed", "5"]) == 0
    err = capsys.readouterr().err
    assert "graphfem: warning:" in err and "discarding the 1 simulations kept by an interrupted run" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.h5"]


def test_a_second_writer_of_one_output_is_refused(tmp_path):
    import fcntl

    from graphfem.meshes.errors import InputError

    out = tmp_path / "p.h5"
    parts = parts_folder(out)
    parts.mkdir()
    with open(parts / "lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(InputError, match="another graphfem generate is writing this file now"):
            generate("poisson", 2, out, progress=False)
    assert not out.exists()


@pytest.mark.slow
def test_killed_again_and_again_until_done_equals_an_uninterrupted_run(tmp_path, reference):
    """Alternate SIGKILL and SIGTERM after every finished simulation; each run resumes the last."""
    kills = 0
    for attempt in range(4 * N):
        proc = _start(tmp_path, "--resume")
        sig = signal.SIGKILL if attempt % 2 == 0 else signal.SIGTERM
        if not _kill_after(proc, tmp_path / ".h.h5.parts", 1, sig):
            proc.communicate(timeout=60)
            assert proc.returncode == 0
            break
        proc.communicate(timeout=60)
        kills += 1
    assert kills >= N - 2
    assert tree(tmp_path / "h.h5") == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.h5"]
    print(f"killed {kills} times, resumed to an identical file")
