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

Interrupted work: see :mod:`graphfem.datasets.writer` (``--resume``).
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable

import numpy as np

from graphfem.meshes import Mesh, PointCloud
from graphfem.meshes.errors import InputError, OptionValueError

from .writer import write


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
             resolution: int | tuple[int, int] | None = None, material: str | None = None,
             options: dict | None = None, progress: bool = True, resume: bool = False) -> Path:
    """Write ``n`` simulations of ``problem`` to the HDF5 file ``out`` (atomically).

    ``resolution`` is the family's own (cells, grid points, refinements); a
    range ``(low, high)`` draws one per sample where the problem takes ranges
    (:attr:`graphfem.physics.problem.Problem.resolution_range`).

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
        raise OptionValueError(f"--material is an option of generate mpm, not of {problem}")
    if options and (problem not in registered() or problem in families()):
        raise OptionValueError(f"generate {problem} draws every input itself; it takes no problem options "
                         f"({', '.join('--' + k.replace('_', '-') for k in options)})")
    known = families()
    if isinstance(resolution, tuple) and (problem in known or (problem in registered()
                                                                and not PROBLEMS[problem].resolution_range)):
        raise OptionValueError(f"--resolution {resolution[0]}:{resolution[1]}: generate {problem} takes one "
                               "resolution, not a range (ranges: "
                               + ", ".join(p for p in registered() if PROBLEMS[p].resolution_range) + ")")
    if problem.startswith("spon-") and problem in known:  # SPON families take a geometry and keep the coarse mesh
        job = ("spon", problem, geometry, resolution or 1, {})
    elif problem in known:
        if geometry is not None:
            raise OptionValueError(f"--geometry: {problem} has one geometry; --geometry is not one of its options")
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
    return write(problem, job, n, Path(out), seed, workers, progress, resume, _simulate_star)


def _probe_sample(problem: str, geometry: str | None, resolution: int | None) -> tuple[Mesh, dict]:
    """The mesh and raw options of sample 0, to check fixed options against before any work."""
    from graphfem.physics.problem import get_problem

    extra = {} if resolution is None else {"resolution": resolution}
    return get_problem(problem).sample(np.random.default_rng([0, 0]), geometry=geometry, **extra)


def simulate(kind: str, name: str, geometry: str | None, resolution: int | None, fixed: dict | None, seed: int,
             index: int) -> dict:
    """Sample ``index`` of a data set as a dict (mesh or grid, inputs, params,
    outputs, times), deterministic in (seed, index)."""
    if kind == "spon":
        from .spon import simulate_star

        return simulate_star((kind, name, geometry, resolution, fixed, seed, index))[1]
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


__all__ = ["families", "generate", "problems", "simulate"]
