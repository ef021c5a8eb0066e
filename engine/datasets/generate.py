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
size) into a part file and rank 0 merges them. The file appears only when
every sample is written.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Callable

import numpy as np

from graphfem.meshes import Mesh, PointCloud
from graphfem.meshes.errors import InputError
from graphfem.meshes.io import atomic_path

from .simulations import write_sample


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
             progress: bool = True) -> Path:
    """Write ``n`` simulations of ``problem`` to the HDF5 file ``out`` (atomically).

    ``options`` (registered problems only) fixes options for every sample,
    in place of the sampled values: ``{"kappa": "2"}`` (raw values, as
    ``graphfem solve`` takes them)."""
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
    if problem.startswith("spon-"):
        from .spon import generate as generate_spon

        return generate_spon(problem, n, out, resolution=resolution or 1, geometry=geometry, seed=seed)
    known = families()
    if problem in known:
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
    return _write(problem, job, n, Path(out), seed, workers, progress)


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


def _write(name: str, job: tuple, n: int, out: Path, seed: int, workers: int, progress: bool) -> Path:
    import h5py
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    import graphfem

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    target = out if world == 1 else out.with_name(f".{out.name}.rank{rank}")
    jobs = [(*job, seed, i) for i in range(rank, n, world)]
    columns = (TextColumn(f"generating {name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    file_attrs = {"problem": name, "seed": seed, "count": n, "graphfem_version": graphfem.__version__}
    if job[2] is not None:
        file_attrs["geometry"] = job[2]
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as h5, \
            Progress(*columns, disable=not progress or rank != 0, transient=True) as bar:
        h5.attrs.update(file_attrs)
        task = bar.add_task("generate", total=len(jobs))
        pool = None
        if workers > 1:
            import multiprocessing as mp

            pool = mp.get_context("spawn").Pool(workers)
            results = pool.imap(_simulate_star, jobs, chunksize=max(1, len(jobs) // (8 * workers)))
        else:
            results = map(_simulate_star, jobs)
        try:
            for index, sample in results:
                group = h5.create_group(f"sim_{index:06d}")
                write_sample(group, sample)
                group.attrs.update({"problem": name, "seed": seed, "index": index,
                                    "graphfem_version": graphfem.__version__})
                bar.advance(task)
        finally:
            if pool is not None:
                pool.terminate()
    if world > 1:
        _merge_ranks(out, n, rank, world)
    return out


def _merge_ranks(out: Path, n: int, rank: int, world: int) -> None:
    """Rank 0 merges the part files of every rank into ``out`` (atomically)."""
    import h5py
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    dist.barrier()
    if rank == 0:
        parts = [out.with_name(f".{out.name}.rank{r}") for r in range(world)]
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
            with h5py.File(parts[0], "r") as first:
                h5.attrs.update(dict(first.attrs))
            for i in range(n):
                with h5py.File(parts[i % world], "r") as part:
                    part.copy(part[f"sim_{i:06d}"], h5, name=f"sim_{i:06d}")
        for p in parts:
            p.unlink()
    dist.barrier()


__all__ = ["families", "generate", "problems", "simulate"]
