"""Readers of a ``.pvd`` / ``.xdmf`` series that another process is rewriting
never see a torn series, and concurrent writers of one series (or one
:func:`atomic_dir` folder) never fail.

A version k of the series has 2 + k % 4 steps at times k + 0.1 j, and every
value of its field is k; a read is torn when its times and values do not
all belong to one version, or when it fails."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from graphfem.meshes import Mesh, read_series, write_series
from graphfem.meshes.io import atomic_dir

WRITER = textwrap.dedent("""
    import sys, numpy as np
    from graphfem.meshes import Mesh, write_series
    mesh = Mesh.unit_square(6)
    path, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for k in range(first, first + count):
        steps = 2 + k % 4
        write_series(path, mesh, k + 0.1 * np.arange(steps), {"u": np.full((steps, mesh.n_points), float(k))})
        print(k, flush=True)
""")


def _version(mesh: Mesh, k: int) -> tuple[np.ndarray, dict]:
    steps = 2 + k % 4
    return k + 0.1 * np.arange(steps), {"u": np.full((steps, mesh.n_points), float(k))}


def _torn(times: np.ndarray, fields: dict) -> bool:
    """Whether one read mixes versions."""
    k = int(round(times[0]))
    steps = 2 + k % 4
    return (len(times) != steps or not np.allclose(times, k + 0.1 * np.arange(steps))
            or fields["u"].shape[0] != steps or not np.all(fields["u"] == k))


@pytest.mark.parametrize("ext", [".pvd", ".xdmf"])
def test_a_reader_never_sees_a_torn_series(tmp_path, ext):
    path = tmp_path / f"series{ext}"
    mesh = Mesh.unit_square(6)
    write_series(path, mesh, *_version(mesh, 0))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "1", "60"], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    reads, torn, failed, seen = 0, 0, [], set()
    deadline = time.monotonic() + 60
    while writer.poll() is None and time.monotonic() < deadline:
        try:
            times, fields = read_series(path)[1:]
        except Exception as exc:  # a failed read is torn too
            failed.append(f"{type(exc).__name__}: {exc}")
            continue
        finally:
            reads += 1
        torn += _torn(times, fields)
        seen.add(int(round(times[0])))
    writer.communicate(timeout=60)
    assert writer.returncode == 0
    print(f"{ext}: {torn + len(failed)} torn reads of {reads}, while {len(seen)} versions were seen")
    assert failed == [] and torn == 0
    assert reads >= 20 and len(seen) >= 3  # the reads really overlapped the rewrites
    times, fields = read_series(path)[1:]
    assert int(round(times[0])) == 60 and not _torn(times, fields)
    # the folder holds the current version and at most the one before it, nothing hidden
    folder = tmp_path / f"series_{'steps' if ext == '.pvd' else 'xdmf'}"
    assert 1 <= len(list(folder.iterdir())) <= 2 and not list(tmp_path.rglob(".*"))


@pytest.mark.parametrize("ext", [".pvd", ".xdmf"])
def test_concurrent_writers_of_one_series_all_succeed(tmp_path, ext):
    path = tmp_path / f"s{ext}"
    mesh = Mesh.unit_square(4)
    errors = []

    def write(first: int) -> None:
        for k in range(first, first + 8):
            try:
                write_series(path, mesh, *_version(mesh, k))
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=write, args=(100 * w,)) for w in range(1, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    times, fields = read_series(path)[1:]
    assert int(round(times[0])) in (107, 207, 307) and not _torn(times, fields)


def test_concurrent_atomic_dir_writers_never_fail_with_directory_not_empty(tmp_path):
    target, errors = tmp_path / "report", []

    def write(w: int) -> None:
        for k in range(20):
            try:
                with atomic_dir(target) as tmp:
                    for j in range(3):
                        (tmp / f"part{j}.txt").write_text(f"{w} {k}")
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=write, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    texts = {p.read_text() for p in target.iterdir()}
    assert len(texts) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_read_that_fails_while_the_index_is_rewritten_twice_is_retried(tmp_path, monkeypatch):
    """Two rewrites during one read can hand the new index the old one's inode number (ext4 alternates two
    numbers under os.replace), so the retry looks at the index's bytes: the read of a deleted version is retried
    and returns the newest series."""
    import graphfem.meshes.io as io

    path = tmp_path / "series.xdmf"
    mesh = Mesh.unit_square(3)
    write_series(path, mesh, *_version(mesh, 0))
    real, calls = io._read_series, []

    def racing(p):
        calls.append(p)
        if len(calls) == 1:  # meanwhile, a writer replaces the series twice, then this read fails
            same_inode = tmp_path / "same_inode"
            os.link(path, same_inode)
            write_series(path, mesh, *_version(mesh, 1))
            write_series(path, mesh, *_version(mesh, 2))
            same_inode.write_bytes(path.read_bytes())  # the newest index under the first one's inode number,
            os.replace(same_inode, path)               # as ext4 hands it out again
            raise io.GraphfemError("cannot read time series: the old heavy data is gone", p)
        return real(p)

    monkeypatch.setattr(io, "_read_series", racing)
    times, fields = read_series(path)[1:]
    assert len(calls) == 2 and int(round(times[0])) == 2 and not _torn(times, fields)
