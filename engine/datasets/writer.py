"""The writer of ``graphfem generate``: simulations computed by workers or
ranks, kept one by one, assembled into the output file atomically.

Interrupted work. Each finished simulation is kept at once in the run's
folder ``.NAME.parts/`` next to the output (one small HDF5 file per
simulation, itself written atomically), and the output is assembled from
them, atomically, when every simulation is there; then the folder goes. So
the output file appears whole or not at all. SIGTERM and Ctrl-C stop the
run with one line that says how many simulations are kept, and no hidden
temporary file stays behind; after SIGKILL, power loss or a crash the
folder holds the simulations finished until then (and possibly one hidden
half-written file). ``--resume`` continues from the kept simulations, after
checking that they were made with the same problem, seed and options, and
removes the half-written leftovers (saying how many); the result equals an
uninterrupted run's group by group (every dataset and attribute). A run
without ``--resume`` discards an interrupted run's folder, with a warning.
A lock file in the folder keeps two runs from writing one output.

Failed simulations. A simulation whose solver fails (a :class:`GraphfemError` that is not an
:class:`InputError`: Newton did not converge, a random domain could not be meshed) is skipped with a
one-line warning, and kept as ``fail_NNNNNN.json`` (its reason) so that ``--resume`` does not redo it.
The output then holds the others under their own indices (sample i stays the one of (seed, i)); its
attribute ``count`` is the number written and ``failed`` maps each skipped index to its reason (JSON).
More than :data:`MAX_FAILED_FRACTION` of ``n`` failing stops the run with one line: that is the
options, not bad luck. An :class:`InputError` stops the run at once.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator

from graphfem.meshes.errors import GraphfemError, InputError
from graphfem.meshes.io import atomic_path

from .simulations import check_group, problem_of, write_mesh, write_sample

class Terminated(BaseException):
    """Raised in the main thread by SIGTERM while a run is on (a BaseException, like KeyboardInterrupt, so
    that no ``except Exception`` swallows it)."""


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread, so that every ``finally`` and
    context manager (temporary files, worker pools) runs; the previous handler comes back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def parts_folder(out: Path) -> Path:
    """The folder that keeps a run's finished simulations until ``out`` is assembled: ``.NAME.parts``."""
    return out.with_name(f".{out.name}.parts")


def _note(message: str, progress: bool) -> None:
    if progress:
        print(f"graphfem: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _locked(folder: Path, out: Path) -> Iterator[None]:
    """An exclusive lock on ``folder/lock`` for the block (refused in one line while another run holds it)."""
    import fcntl

    with open(folder / "lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InputError("another graphfem generate is writing this file now", out) from None
        yield


def _leftovers(out: Path) -> list[Path]:
    """Hidden temporary files of ``out`` left by a killed run (``.STEM.xxxxxxxx.SUFFIX``, the names of
    :func:`graphfem.meshes.io.atomic_path`)."""
    pattern = re.compile(rf"^\.{re.escape(out.stem)}\.[A-Za-z0-9_]{{8}}{re.escape(out.suffix)}$")
    return [p for p in out.parent.iterdir() if pattern.match(p.name) and p.is_file()] if out.parent.is_dir() else []


def _kept(folder: Path, manifest: dict, resume: bool, out: Path, progress: bool) -> set[int]:
    """The indices of the simulations an interrupted run kept in ``folder`` that this run reuses (none
    without ``resume``); removes what it does not reuse (half-written files, damaged parts)."""
    import h5py

    files = sorted([*folder.glob("sim_*.h5"), *folder.glob("fail_*.json")])
    if not resume:
        if files:
            warnings.warn(f"{out}: discarding the {len(files)} simulations kept by an interrupted run "
                          f"(--resume continues such a run)", stacklevel=3)
        for p in folder.iterdir():
            if p.name != "lock":
                p.unlink()
        return set()
    stored = folder / "manifest.json"
    if stored.is_file():
        before = json.loads(stored.read_text())
        changed = [k for k in manifest if k != "graphfem_version" and before.get(k) != manifest[k]]
        if changed:
            raise InputError(f"--resume: the interrupted run had other settings ({', '.join(changed)}: "
                             f"{', '.join(json.dumps(before.get(k)) for k in changed)}); rerun with those, or "
                             "without --resume to start over", out)
    done, removed = set(), 0
    for p in folder.iterdir():
        if p.name in ("lock", "manifest.json"):
            continue
        if re.fullmatch(r"fail_\d{6}\.json", p.name):  # a simulation that failed: it would fail again
            done.add(int(p.stem[5:]))
            continue
        index = int(p.stem[4:]) if re.fullmatch(r"sim_\d{6}\.h5", p.name) else None
        if index is not None:
            try:
                with h5py.File(p, "r") as h5:
                    if check_group(h5, p.stem) is None:
                        done.add(index)
                        continue
            except OSError:
                pass
        p.unlink()
        removed += 1
    total = sum(p.stat().st_size for p in folder.glob("sim_*.h5"))
    _note(f"resuming {out}: {len(done)} finished simulations kept ({total / 1e6:.1f} MB)"
          + (f", {removed} half-written or damaged file(s) removed" if removed else ""), progress)
    return done


def write(name: str, job: tuple, n: int, out: Path, seed: int, workers: int, progress: bool, resume: bool,
          simulate: Callable[[tuple], tuple[int, dict]]) -> Path:
    """Compute and write ``n`` simulations of data set ``name`` to ``out``.

    Args:
        job: ``(kind, name, geometry, resolution, fixed)``; simulation i is
            ``simulate((*job, seed, i)) -> (i, sample dict)`` (a module-level
            function, so that worker processes can run it).
        resume: continue the interrupted run kept next to ``out``.
    """
    import h5py
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    import graphfem

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    stored = problem_of(name) if job[0] == "spon" else name  # SPON data sets name the problem they solve
    file_attrs = {"problem": stored, "seed": seed, "count": n, "graphfem_version": graphfem.__version__}
    group_attrs = {"problem": stored, "seed": seed, "graphfem_version": graphfem.__version__}
    if job[0] == "spon":
        file_attrs["family"] = group_attrs["family"] = name
    if job[2] is not None:
        file_attrs["geometry"] = job[2]
    manifest = {"problem": name, "job": json.loads(json.dumps(list(job), default=str)), "seed": seed,
                "graphfem_version": graphfem.__version__}
    folder = parts_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        done: set[int] = set()
        if rank == 0:  # refusals (another run holds the lock, --resume on other settings) leave the folder as it was
            stack.enter_context(_locked(folder, out))
            _remove_leftovers(out, progress)
            done = _kept(folder, manifest, resume, out, progress)
            (folder / "manifest.json").write_text(json.dumps(manifest))
        finished = len(done)
        try:
            stack.enter_context(sigterm_raises())
            if world > 1:
                done = _barrier_broadcast(done if rank == 0 else None)
            todo = len(range(rank, n, world)) - sum(1 for i in done if i % world == rank)
            jobs = ((*job, seed, i) for i in range(rank, n, world) if i not in done)  # lazily: n may be absurd
            columns = (TextColumn(f"generating {name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            console = Console(stderr=True)  # stdout is for the results; no bar (nor its blank line) off a terminal
            arrivals: list[float] = []  # when each simulation of this run was written
            with Progress(*columns, disable=not progress or rank != 0 or not console.is_terminal, transient=True,
                          console=console) as bar:
                task = bar.add_task("generate", total=todo)
                for index, sample, seconds in stack.enter_context(contextlib.closing(_results(jobs, todo, workers,
                                                                                              simulate))):
                    if isinstance(sample, str):  # the solver failed: record it, skip it
                        _skip(folder, index, sample, n, out)
                        finished += 1
                        bar.advance(task)
                        continue
                    with atomic_path(folder / f"sim_{index:06d}.h5") as tmp, h5py.File(tmp, "w") as h5:
                        group = h5.create_group(f"sim_{index:06d}")
                        write_sample(group, sample)
                        if sample.get("coarse") is not None:
                            write_mesh(group, "coarse", sample["coarse"])
                        group.attrs.update({**group_attrs, "index": index})
                    if finished == len(done):  # the first simulation of this run sizes the whole
                        _check_disk(out, folder / f"sim_{index:06d}.h5", n, n - len(done))
                    arrivals.append(time.perf_counter())
                    if len(arrivals) == 1 and seconds >= WARM_S:  # long simulations: sized by the first
                        _estimate(folder / f"sim_{index:06d}.h5", seconds / max(1, workers), n - finished - 1,
                                  progress and rank == 0)
                    elif len(arrivals) == 2 * max(1, workers) + 1 and seconds < WARM_S:  # past every worker's first
                        pace = (arrivals[-1] - arrivals[0]) / (len(arrivals) - 1)
                        _estimate(folder / f"sim_{index:06d}.h5", pace, n - finished - 1, progress and rank == 0)
                    finished += 1
                    bar.advance(task)
            if world > 1:
                _barrier_broadcast(None)
            if rank == 0:
                reasons = {int(p.stem[5:]): json.loads(p.read_text())["reason"] for p in folder.glob("fail_*.json")}
                with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
                    h5.attrs.update({**file_attrs, "count": n - len(reasons)})
                    if reasons:
                        h5.attrs["failed"] = json.dumps({str(i): reasons[i] for i in sorted(reasons)})
                    for i in (i for i in range(n) if i not in reasons):
                        with h5py.File(folder / f"sim_{i:06d}.h5", "r") as part:
                            part.copy(part[f"sim_{i:06d}"], h5, name=f"sim_{i:06d}")
        except (KeyboardInterrupt, Terminated) as exc:  # the user stops the run: keep the finished simulations
            what = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
            if not finished:  # nothing to keep
                if rank == 0:
                    shutil.rmtree(folder, ignore_errors=True)
                raise GraphfemError(f"stopped by {what} before any simulation finished; nothing was written",
                                    out) from None
            raise GraphfemError(f"stopped by {what} after {finished} of {n} simulations; they are kept in "
                                f"{folder.name}/, and the same command with --resume continues", out) from None
        except BaseException:  # a failure is reported and leaves no file, unless it would lose a resumed run's work
            if rank == 0 and not done:
                shutil.rmtree(folder, ignore_errors=True)
            raise
    if rank == 0:
        shutil.rmtree(folder)
    return out


#: a run stops once more than this fraction of its simulations failed (module notes)
MAX_FAILED_FRACTION = 0.1


def _timed(simulate: Callable[[tuple], tuple[int, dict]], job: tuple) -> tuple[int, dict | str, float]:
    """(index, sample, seconds the simulation took), where it ran (a worker's start-up not counted); the
    sample is the one-line reason where the solver failed (module notes)."""
    start = time.perf_counter()
    try:
        index, sample = simulate(job)
    except InputError:
        raise
    except GraphfemError as exc:
        return job[-1], str(exc), time.perf_counter() - start
    return index, sample, time.perf_counter() - start


def _skip(folder: Path, index: int, reason: str, n: int, out: Path) -> None:
    """Keep the failure of simulation ``index`` in ``folder`` and warn; stop the run (one line) once more than
    :data:`MAX_FAILED_FRACTION` of ``n`` failed. The failures are counted in the folder, which every rank
    under ``torchrun`` writes to (and a resumed run kept), so the limit holds for the run as a whole."""
    failed = len(list(folder.glob("fail_*.json"))) + 1
    if failed > MAX_FAILED_FRACTION * n:
        plural = "s" if failed > 1 else ""
        raise GraphfemError(f"{failed} simulation{plural} failed, more than {MAX_FAILED_FRACTION:.0%} of -n {n} "
                            f"(the last, simulation {index}: {reason}); the options, not bad luck: check them", out)
    with atomic_path(folder / f"fail_{index:06d}.json") as tmp:
        tmp.write_text(json.dumps({"index": index, "reason": reason}))
    warnings.warn(f"{out}: simulation {index} failed and is skipped ({reason})", stacklevel=3)


def _results(jobs: Iterator[tuple], todo: int, workers: int, simulate: Callable
             ) -> Iterator[tuple[int, dict, float]]:
    """(index, sample, seconds) of every job, in order, computed by ``workers`` spawned processes (in this one
    for 1); the jobs are handed out a few batches at a time, so that no queue ever holds all ``todo`` of them."""
    import functools
    import itertools

    simulate = functools.partial(_timed, simulate)
    if workers <= 1 or todo <= 1:
        yield from map(simulate, jobs)
        return
    import multiprocessing as mp

    pool = mp.get_context("spawn").Pool(workers)
    batch = 16 * workers
    try:
        while chunk := list(itertools.islice(jobs, batch)):
            yield from pool.imap(simulate, chunk, chunksize=max(1, min(len(chunk), todo) // (8 * workers)))
    finally:
        pool.terminate()


def _check_disk(out: Path, first: Path, n: int, remaining: int) -> None:
    """Refuse a run whose ``remaining`` simulations, sized by the ``first`` one written, cannot fit on the disk
    of ``out`` (kept parts and the assembled file exist together for a moment: twice the data).

    Raises:
        InputError: with the estimate; the caller's clean-up removes what was written.
    """
    from graphfem.physics.timesteps import human_bytes

    each = first.stat().st_size
    need, free = 2.0 * each * remaining, shutil.disk_usage(out.parent).free
    if need > free:
        left = "" if remaining == n else f" ({remaining} still to do)"
        raise InputError(f"-n {n}: simulations of about {human_bytes(each)} each{left} need about "
                         f"{human_bytes(need)} while writing (the kept simulations and the assembled file), more "
                         f"than the {human_bytes(free)} free on the disk of {out.parent}; use a smaller -n", out)


#: a run expected to take longer than this (seconds) is announced once it has been sized
ANNOUNCE_AFTER_S = 10.0
#: a simulation this long (seconds) sizes the run at once; shorter ones are timed past each worker's first,
#: whose one-time imports and set-up can take several times a simulation
WARM_S = 5.0


def _estimate(written: Path, pace: float, remaining: int, progress: bool) -> None:
    """Say how long and how large the ``remaining`` simulations of a run will be, one finishing every ``pace``
    seconds (solve and write, all workers together), each as large as the ``written`` one, when that passes
    :data:`ANNOUNCE_AFTER_S`: a long run is known to be long before it is paid for (on a terminal the progress
    bar then counts down)."""
    from graphfem.physics.timesteps import human_bytes, human_seconds

    total = pace * remaining
    if total > ANNOUNCE_AFTER_S:
        each = written.stat().st_size
        _note(f"one simulation every {human_seconds(pace)}, {human_bytes(each)} each: the {remaining} left of this "
              f"run take about {human_seconds(total)} and {human_bytes(each * remaining)}", progress)


def _remove_leftovers(out: Path, progress: bool) -> None:
    """Delete the hidden temporary files of ``out`` that a killed run left, and say so."""
    stale = _leftovers(out)
    if stale:
        size = sum(p.stat().st_size for p in stale)
        for p in stale:
            p.unlink()
        _note(f"removed {len(stale)} hidden temporary file(s) of {out} left by a killed run ({size / 1e6:.1f} MB)",
              progress)


def _barrier_broadcast(value):
    """Under torchrun: wait for every rank, and hand rank 0's ``value`` to all."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


__all__ = ["Terminated", "parts_folder", "sigterm_raises", "write"]
