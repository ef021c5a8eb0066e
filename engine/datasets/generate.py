"""``graphfem generate PROBLEM``: one entry point for every data family.

* ``poisson``: steady heat conduction on random 2D domains, the MeshGraphNet
  baseline's training set (:func:`graphfem.datasets.simulations.generate`).
* ``mpm``: MLS-MPM particle trajectories (GIOROM's data; ``--material``).
* ``spon-poisson``, ``spon-hyperelastic``, ``spon-flow``: SPON's families
  (:func:`graphfem.datasets.spon.generate`: the common layout plus each sample's
  coarse mesh and FE coefficients);
* every other family of :data:`graphfem.physics.generators.GENERATORS`
  (``darcy-two-phase``, ``burgers``, ``cavity``) and ``cylinder-flow``:
  written by :func:`write_family` in the common layout.

The common layout, one HDF5 group ``sim_<index>`` per simulation:
``mesh/points``, ``mesh/cells`` (attribute ``cell_type``), ``mesh/tags/<name>``
(attribute ``kind``) — or, for grid families, the attributes ``grid_shape``,
``grid_lower``, ``grid_upper`` —; ``inputs/<name>``; ``outputs/<name>`` (time
series lead with T); ``times`` for time series; and the attributes
``problem``, ``params`` (JSON), ``graphfem_version``, ``seed``, ``index``.
Sample i depends only on (seed, i), whatever the number of workers.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from graphfem.meshes import Grid
from graphfem.meshes.errors import InputError
from graphfem.meshes.io import atomic_path


def _cylinder_flow(rng: np.random.Generator, resolution: int = 48) -> dict:
    """Steady flow past a random cylinder in the DFG channel (Reynolds number in params)."""
    from graphfem.physics.navier_stokes import generate_cylinder_flow

    mesh, params, fields = generate_cylinder_flow(rng, resolution)
    return {"mesh": mesh, "inputs": {}, "params": params, "outputs": fields}


def families() -> dict[str, Callable[..., dict]]:
    """Name -> ``(rng, resolution) -> sample dict`` for the common-layout families."""
    from graphfem.physics.generators import GENERATORS
    from graphfem.datasets import spon as spon_data  # noqa: F401  (adds the SPON families to GENERATORS)

    return {**GENERATORS, "cylinder-flow": _cylinder_flow}


def problems() -> tuple[str, ...]:
    """Every name ``graphfem generate`` accepts."""
    return ("poisson", "mpm", *sorted(families()))


def generate(problem: str, n: int, out: str | Path, *, seed: int = 0, workers: int = 1, geometry: str = "mixed",
             resolution: int | None = None, material: str | None = None, progress: bool = True) -> Path:
    """Write ``n`` simulations of ``problem`` to the HDF5 file ``out`` (atomically)."""
    if n < 1:
        raise InputError(f"-n must be at least 1, got {n}")
    if problem == "poisson":
        from graphfem.datasets.simulations import generate as generate_poisson

        return generate_poisson(problem, n, out, geometry=geometry, seed=seed, workers=workers, progress=progress)
    if problem == "mpm":
        from graphfem.cli.giorom import generate_mpm

        if material is None:
            raise InputError("generate mpm needs --material (jelly, water, goo, sand or plasticine)")
        generate_mpm(material, n, Path(out), seed=seed)
        return Path(out)
    if problem.startswith("spon-"):  # SPON samples also carry their coarse mesh and FE coefficients
        from graphfem.datasets.spon import generate as generate_spon

        return generate_spon(problem, n, out, resolution=resolution or 1,
                             geometry=None if geometry == "mixed" else geometry, seed=seed)
    known = families()
    if problem not in known:
        raise InputError(f"unknown problem {problem!r}; choose one of {', '.join(problems())}")
    return write_family(problem, known[problem], n, out, seed=seed, workers=workers, resolution=resolution,
                        progress=progress)


def _sample(args) -> dict:
    name, seed, index, resolution = args
    function = families()[name]
    rng = np.random.default_rng([seed, index])
    sample = function(rng) if resolution is None else function(rng, resolution)
    mesh = sample.get("mesh")
    if mesh is not None:  # plain arrays cross the process boundary cheaply
        sample["mesh"] = (mesh.points, mesh.cell_type, mesh.cells,
                          [(t.name, t.kind, t.indices) for t in mesh.tags.values()])
    return sample


def write_family(name: str, function: Callable[..., dict], n: int, out: str | Path, *, seed: int = 0,
                 workers: int = 1, resolution: int | None = None, progress: bool = True) -> Path:
    """Run ``function`` for samples 0..n−1 (in ``workers`` processes) and write
    them in the common layout, with a progress bar; the file appears only
    when every sample is written."""
    import h5py
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    import graphfem

    out = Path(out)
    jobs = [(name, seed, i, resolution) for i in range(n)]
    columns = (TextColumn(f"generating {name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5, Progress(*columns, disable=not progress,
                                                                        transient=True) as bar:
        h5.attrs.update({"problem": name, "seed": seed, "count": n, "graphfem_version": graphfem.__version__})
        task = bar.add_task("generate", total=n)
        pool = None
        if workers > 1:
            import multiprocessing as mp

            pool = mp.get_context("spawn").Pool(workers)
            results = pool.imap(_sample, jobs)
        else:
            results = map(_sample, jobs)
        try:
            for index, sample in enumerate(results):
                _write_sample(h5.create_group(f"sim_{index:06d}"), sample)
                h5[f"sim_{index:06d}"].attrs.update({"problem": name, "seed": seed, "index": index,
                                                     "graphfem_version": graphfem.__version__})
                bar.advance(task)
        finally:
            if pool is not None:
                pool.terminate()
    return out


def _write_sample(group, sample: dict) -> None:
    if sample.get("mesh") is not None:
        points, cell_type, cells, tags = sample["mesh"]
        group.create_dataset("mesh/points", data=points)
        group.create_dataset("mesh/cells", data=cells).attrs["cell_type"] = cell_type
        for tag_name, kind, indices in tags:
            group.create_dataset(f"mesh/tags/{tag_name}", data=indices).attrs["kind"] = kind
    grid: Grid | None = sample.get("grid")
    if grid is not None:
        group.attrs.update({"grid_shape": grid.shape, "grid_lower": grid.lower, "grid_upper": grid.upper})
    for section in ("inputs", "outputs"):
        for key, value in sample.get(section, {}).items():
            group.create_dataset(f"{section}/{key}", data=np.asarray(value))
    if "times" in sample:
        group.create_dataset("times", data=np.asarray(sample["times"], dtype=float))
    group.attrs["params"] = json.dumps(sample.get("params", {}), default=float)
