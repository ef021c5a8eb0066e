"""``graphfem generate NAME``: one entry point for every problem and data family.

* every registered problem (:func:`graphfem.physics.problem.problems`):
  ``Problem.sample(rng)`` draws a mesh and options, ``Problem.run`` solves;
* the data families of :data:`graphfem.physics.generators.GENERATORS`
  (``darcy-two-phase``, ``cavity``), ``cylinder-flow`` and
  SPON's ``spon-poisson``, ``spon-hyperelastic``, ``spon-flow`` (which also
  store each sample's coarse mesh and FE coefficients);
* ``mpm`` is a registered problem like the others; ``--material`` is
  required. Particle data has no mesh: positions in ``outputs/x`` (T, N, d),
  the particles' ``material`` ids in ``inputs/``, the walls and frame step
  (the run's ``scene``) in ``params``.

All are written in the layout of :mod:`graphfem.datasets.simulations`.
Sample i depends only on (seed, i), whatever the number of workers or
ranks; under ``torchrun`` rank r computes the samples i ≡ r (mod world
size).

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
"""
from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import shutil
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from graphfem.meshes import Mesh, PointCloud
from graphfem.meshes.errors import GraphfemError, InputError
from graphfem.meshes.io import atomic_path

from .simulations import check_group, problem_of, write_mesh, write_sample


def _cylinder_flow(rng: np.random.Generator, resolution: int = 48) -> dict:
    """Steady flow past a random cylinder in the DFG channel (Reynolds number in params)."""
    from graphfem.physics.navier_stokes import generate_cylinder_flow

    mesh, params, fields = generate_cylinder_flow(rng, resolution)
    options = {"inflow": {"inlet": params["u_max"]}, "no_slip": ["walls", "cylinder"], "outflow": ["outlet"],
               "nu": params["nu"]}  # the navier-stokes options that reproduce the sample
    return {"mesh": mesh, "inputs": {}, "params": {**params, **options}, "outputs": fields}


def families() -> dict[str, Callable[..., dict]]:
    """Name -> ``(rng, resolution) -> sample dict`` for the data families."""
    from graphfem.physics.generators import GENERATORS

    from .spon import GENERATORS as SPON

    return {**GENERATORS, **SPON, "cylinder-flow": _cylinder_flow}


def problems() -> tuple[str, ...]:
    """Every name ``graphfem generate`` accepts."""
    from graphfem.physics.problem import problems as registered

    return tuple(sorted({*families(), *registered()}))


def generate(problem: str, n: int, out: str | Path, *, seed: int = 0, workers: int = 1, geometry: str | None = None,
             resolution: int | None = None, material: str | None = None, options: dict | None = None,
             progress: bool = True, resume: bool = False) -> Path:
    """Write ``n`` simulations of ``problem`` to the HDF5 file ``out`` (atomically).

    ``options`` (registered problems only) fixes options for every sample,
    in place of the sampled values: ``{"kappa": "2"}`` (raw values, as
    ``graphfem solve`` takes them). ``resume`` continues an interrupted run
    of the same problem, seed and options (see the module notes); ``n`` may
    differ from that run's.

    Raises:
        InputError: a bad option, or ``resume`` on a run of other settings.
        GraphfemError: the run was stopped (SIGTERM, Ctrl-C); the line says
            how many simulations are kept for ``resume``.
    """
    from graphfem.physics.problem import PROBLEMS, problems as registered

    if n < 1:
        raise InputError(f"-n must be at least 1, got {n}")
    if problem == "mpm":  # the material of the bodies is not drawn
        if material is None:
            raise InputError("generate mpm needs --material (jelly, water, goo, sand or plasticine)")
        options = {**(options or {}), "material": material}
    elif material is not None:
        raise InputError(f"--material is an option of generate mpm, not of {problem}")
    if options and (problem not in registered() or problem in families()):
        raise InputError(f"generate {problem} draws every input itself; it takes no problem options "
                         f"({', '.join('--' + k.replace('_', '-') for k in options)})")
    known = families()
    if problem.startswith("spon-") and problem in known:  # SPON families take a geometry and keep the coarse mesh
        job = ("spon", problem, geometry, resolution or 1, {})
    elif problem in known:
        if geometry is not None:
            raise InputError(f"--geometry: {problem} has one geometry; --geometry is not one of its options")
        job = ("family", problem, None, resolution, None)
    elif problem in registered():
        sampler = inspect.signature(PROBLEMS[problem].sample).parameters
        if resolution is not None and "resolution" not in sampler:
            raise InputError(f"--resolution is not an option of generate {problem}")
        if options:
            mesh, raw = _probe_sample(problem, geometry, resolution)
            PROBLEMS[problem].parse(mesh, {**raw, **options})
        job = ("problem", problem, geometry, resolution, dict(options or {}))
    else:
        raise InputError(f"unknown problem {problem!r}; choose one of {', '.join(problems())}")
    return _write(problem, job, n, Path(out), seed, workers, progress, resume)


def _probe_sample(problem: str, geometry: str | None, resolution: int | None) -> tuple[Mesh, dict]:
    """The mesh and raw options of sample 0, to check fixed options against before any work."""
    from graphfem.physics.problem import get_problem

    extra = {} if resolution is None else {"resolution": resolution}
    return get_problem(problem).sample(np.random.default_rng([0, 0]), geometry=geometry, **extra)


def simulate(kind: str, name: str, geometry: str | None, resolution: int | None, fixed: dict | None, seed: int,
             index: int) -> dict:
    """Sample ``index`` of a data set as a dict (mesh or grid, inputs, params,
    outputs, times), deterministic in (seed, index)."""
    rng = np.random.default_rng([seed, index])
    if kind == "spon":
        where = {} if geometry is None else {"geometry": geometry}
        return families()[name](rng, resolution, **where, **(fixed or {}))
    if kind == "family":
        function = families()[name]
        return function(rng) if resolution is None else function(rng, resolution)
    from graphfem.physics.problem import get_problem

    problem = get_problem(name)
    extra = {} if resolution is None else {"resolution": resolution}
    mesh, raw = problem.sample(rng, geometry=geometry, **extra)
    raw.update(fixed or {})
    solution = problem.run(mesh, raw)
    inputs = {k: np.asarray(v) for k, v in raw.items() if isinstance(v, np.ndarray)}
    params = {k: v for k, v in raw.items() if k not in inputs}
    if geometry is not None:
        params["geometry"] = geometry
    if isinstance(mesh, PointCloud):  # particles: no mesh; their fields are inputs, the run's scene is in params
        inputs.update({k: np.asarray(v) for k, v in solution.mesh.point_data.items()})
        params.update(solution.scene)
        mesh = None
    sample = {"mesh": mesh, "inputs": inputs, "params": params}
    if solution.trajectory is not None:
        sample.update(outputs={k: np.asarray(v) for k, v in solution.trajectory.fields.items()},
                      times=np.asarray(solution.trajectory.times))
    else:
        sample["outputs"] = {k: np.asarray(v) for k, v in solution.fields.items()}
    kept = problem.stored_dofs  # problems whose families need the FE coefficients (rve)
    if kept:
        sample["dofs"] = {k: np.asarray(solution.dofs[k]) for k in kept}
    return sample


def _simulate_star(args) -> tuple[int, dict]:
    sample = simulate(*args)
    return args[-1], sample


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

    files = sorted(folder.glob("sim_*.h5"))
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


def _write(name: str, job: tuple, n: int, out: Path, seed: int, workers: int, progress: bool,
           resume: bool = False) -> Path:
    import h5py
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
            jobs = [(*job, seed, i) for i in range(rank, n, world) if i not in done]
            columns = (TextColumn(f"generating {name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, disable=not progress or rank != 0, transient=True) as bar:
                task = bar.add_task("generate", total=len(jobs))
                for index, sample in stack.enter_context(contextlib.closing(_results(jobs, workers))):
                    with atomic_path(folder / f"sim_{index:06d}.h5") as tmp, h5py.File(tmp, "w") as h5:
                        group = h5.create_group(f"sim_{index:06d}")
                        write_sample(group, sample)
                        if sample.get("coarse") is not None:
                            write_mesh(group, "coarse", sample["coarse"])
                        group.attrs.update({**group_attrs, "index": index})
                    finished += 1
                    bar.advance(task)
            if world > 1:
                _barrier_broadcast(None)
            if rank == 0:
                with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
                    h5.attrs.update(file_attrs)
                    for i in range(n):
                        with h5py.File(folder / f"sim_{i:06d}.h5", "r") as part:
                            part.copy(part[f"sim_{i:06d}"], h5, name=f"sim_{i:06d}")
        except (KeyboardInterrupt, Terminated) as exc:  # the user stops the run: keep the finished simulations
            what = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
            raise GraphfemError(f"stopped by {what} after {finished} of {n} simulations; they are kept in "
                                f"{folder.name}/, and the same command with --resume continues", out) from None
        except BaseException:  # a failure is reported and leaves no file, unless it would lose a resumed run's work
            if rank == 0 and not done:
                shutil.rmtree(folder, ignore_errors=True)
            raise
    if rank == 0:
        shutil.rmtree(folder)
    return out


def _results(jobs: list[tuple], workers: int) -> Iterator[tuple[int, dict]]:
    """(index, sample) of every job, in order, computed by ``workers`` spawned processes (in this one for 1)."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_simulate_star, jobs)
        return
    import multiprocessing as mp

    pool = mp.get_context("spawn").Pool(workers)
    try:
        yield from pool.imap(_simulate_star, jobs, chunksize=max(1, len(jobs) // (8 * workers)))
    finally:
        pool.terminate()


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


__all__ = ["families", "generate", "problems", "simulate"]
