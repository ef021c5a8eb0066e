"""HDF5 simulation datasets: one group per simulation, read lazily.

Layout of a file written by :func:`generate`::

    /                       attrs: problem, graphfem_version, seed, geometry, count
    /sim_000000/            attrs: problem, params (JSON), graphfem_version, seed, geometry
        mesh/points         (n, dim) float64
        mesh/cells          (m, k) int64        attrs: cell_type
        mesh/tags/<name>    int64 indices       attrs: kind (node | facet | cell)
        inputs/kappa        (m,) conductivity per cell
        inputs/source       (n,) source at the nodes
        outputs/u           (n,) FE solution at the nodes

Dirichlet values are in ``params`` ({"dirichlet": {tag: value}}).
A :class:`SimulationDataset` checks every group's structure when it opens
the file; a damaged group is named in a one-line error, or skipped with a
warning when ``skip_bad=True``.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from graphfem.meshes import Mesh, Tag
from graphfem.meshes.errors import GraphfemError, InputError
from graphfem.meshes.io import atomic_path

from graphfem.physics.poisson_encoding import PoissonCase, poisson_graph, sample_poisson, solve_poisson

PROBLEMS = ("poisson",)
_REQUIRED = ("mesh/points", "mesh/cells", "inputs/kappa", "inputs/source", "outputs/u")


@dataclass
class Sample:
    """One simulation: its mesh, inputs, solution fields and provenance."""

    name: str
    mesh: Mesh
    case: PoissonCase
    fields: dict[str, np.ndarray]
    provenance: dict


# ------------------------------------------------------------------ writing
def _write_group(h5, name: str, mesh: Mesh, case: PoissonCase, fields: dict, provenance: dict) -> None:
    g = h5.create_group(name)
    for key, value in provenance.items():
        g.attrs[key] = value if not isinstance(value, dict) else json.dumps(value)
    g.create_dataset("mesh/points", data=mesh.points)
    g.create_dataset("mesh/cells", data=mesh.cells).attrs["cell_type"] = mesh.cell_type
    for tag in mesh.tags.values():
        g.create_dataset(f"mesh/tags/{tag.name}", data=tag.indices).attrs["kind"] = tag.kind
    g.create_dataset("inputs/kappa", data=case.kappa)
    g.create_dataset("inputs/source", data=case.source)
    for key, value in fields.items():
        g.create_dataset(f"outputs/{key}", data=value)


def simulate(problem: str, geometry: str, seed: int, index: int) -> tuple:
    """Simulation ``index`` of a dataset: deterministic in (seed, index),
    whatever the number of workers. Returns (mesh, case, fields, provenance)."""
    import graphfem
    from graphfem.physics.geometries import random_domain

    rng = np.random.default_rng([seed, index])
    mesh = random_domain(geometry, rng)
    case = sample_poisson(mesh, rng)
    u = solve_poisson(mesh, case)
    provenance = {"problem": problem, "params": {**case.params(), "geometry": geometry},
                  "graphfem_version": graphfem.__version__, "seed": seed, "index": index}
    return mesh, case, {"u": u}, provenance


def _simulate_star(args):
    """:func:`simulate` for a pool worker; the mesh travels as plain arrays
    (``Mesh`` holds mapping proxies, which do not pickle)."""
    mesh, case, fields, prov = simulate(*args)
    tags = [(t.name, t.kind, np.asarray(t.indices)) for t in mesh.tags.values()]
    return (np.asarray(mesh.points), mesh.cell_type, np.asarray(mesh.cells), tags), case, fields, prov


def _as_mesh(plain) -> Mesh:
    points, cell_type, cells, tags = plain
    return Mesh(points, cell_type, cells, tags={n: Tag(n, k, i) for n, k, i in tags})


def generate(problem: str, n: int, out: str | Path, geometry: str = "mixed", seed: int = 0, workers: int = 1,
             progress: bool = True) -> Path:
    """Write ``n`` simulations to the HDF5 file ``out`` atomically.

    Simulations run in ``workers`` processes; under ``torchrun`` every rank
    computes the indices i ≡ rank (mod world size) into a part file and
    rank 0 merges the parts. The result does not depend on either.
    """
    import h5py

    if problem not in PROBLEMS:
        raise InputError(f"unknown problem {problem!r}; choose one of {', '.join(PROBLEMS)}")
    if n < 1:
        raise InputError(f"-n must be at least 1, got {n}")
    from graphfem.physics.geometries import FAMILIES

    if geometry not in FAMILIES + ("mixed",):
        raise InputError(f"unknown geometry family {geometry!r}; choose one of {', '.join(FAMILIES + ('mixed',))}")
    out = Path(out)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    indices = list(range(rank, n, world))
    target = out if world == 1 else out.with_name(f".{out.name}.rank{rank}")
    with atomic_path(target) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.attrs.update({"problem": problem, "seed": seed, "geometry": geometry, "count": n})
            import graphfem

            h5.attrs["graphfem_version"] = graphfem.__version__
            for plain, case, fields, prov in _run(problem, geometry, seed, indices, workers, progress):
                _write_group(h5, f"sim_{prov['index']:06d}", _as_mesh(plain), case, fields, prov)
    if world > 1:
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
    return out


def _run(problem, geometry, seed, indices, workers, progress):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    jobs = [(problem, geometry, seed, i) for i in indices]
    columns = (TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task("generate", total=len(jobs))
        if workers <= 1:
            results = map(_simulate_star, jobs)
            pool = None
        else:
            import multiprocessing as mp

            pool = mp.get_context("spawn").Pool(workers)
            results = pool.imap(_simulate_star, jobs, chunksize=max(1, len(jobs) // (8 * workers)))
        try:
            for r in results:
                bar.advance(task)
                yield r
        finally:
            if pool is not None:
                pool.terminate()


# ------------------------------------------------------------------ reading
class SimulationDataset:
    """Lazy reader of a dataset file; item i is the encoded PyG graph of
    simulation i (``x``, ``edge_index``, ``edge_attr``, ``y`` = u/s, ``mass``,
    ``scale``), batched with ``torch_geometric.loader.DataLoader``.

    Args:
        path: the HDF5 file.
        skip_bad: skip damaged groups with a warning instead of raising.
        cache: keep encoded graphs in memory after first use.

    Raises:
        GraphfemError: the file is missing or unreadable, or a group is
            damaged (named in the message) and ``skip_bad`` is off.
    """

    def __init__(self, path: str | Path, skip_bad: bool = False, cache: bool = True):
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise GraphfemError("no such dataset file", self.path)
        try:
            with h5py.File(self.path, "r") as h5:
                self.problem = str(h5.attrs.get("problem", "poisson"))
                names = sorted(k for k in h5.keys() if k.startswith("sim_"))
                self.names, self.bad = [], {}
                for name in names:
                    problem = _check_group(h5, name)
                    if problem is None:
                        self.names.append(name)
                    else:
                        self.bad[name] = problem
        except OSError as exc:
            raise GraphfemError(f"cannot read HDF5 dataset: {' '.join(str(exc).split())}", self.path) from None
        for name, problem in self.bad.items():
            if not skip_bad:
                raise GraphfemError(f"group {name!r} is damaged ({problem}); pass --skip-bad to skip it", self.path)
            warnings.warn(f"{self.path}: skipping damaged group {name!r} ({problem})", stacklevel=2)
        if not self.names:
            raise GraphfemError("the dataset holds no usable simulation", self.path)
        self.cache = {} if cache else None
        self._h5 = None
        self._pid = None

    def __len__(self) -> int:
        return len(self.names)

    def _file(self):
        import h5py

        if self._h5 is None or self._pid != os.getpid():  # one handle per process (fork-safe)
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5

    def sample(self, i: int) -> Sample:
        """Simulation i as core structures."""
        name = self.names[i]
        try:
            g = self._file()[name]
            tags = {k: Tag(k, str(d.attrs["kind"]), d[()]) for k, d in g["mesh/tags"].items()} if "mesh/tags" in g else {}
            mesh = Mesh(g["mesh/points"][()], str(g["mesh/cells"].attrs["cell_type"]), g["mesh/cells"][()], tags=tags,
                        source=f"{self.path}:{name}")
            params = json.loads(g.attrs.get("params", "{}"))
            case = PoissonCase(g["inputs/kappa"][()], g["inputs/source"][()], params.get("dirichlet", {}))
            fields = {k: d[()] for k, d in g["outputs"].items()}
            prov = {k: (v.item() if hasattr(v, "item") else v) for k, v in g.attrs.items()}
        except GraphfemError:
            raise
        except Exception as exc:
            raise GraphfemError(f"group {name!r} cannot be read: {' '.join(str(exc).split())}", self.path) from None
        return Sample(name, mesh, case, fields, prov)

    def __getitem__(self, i: int):
        import torch

        if self.cache is not None and i in self.cache:
            return self.cache[i]
        s = self.sample(i)
        graph = poisson_graph(s.mesh, s.case)
        graph.y = torch.as_tensor(s.fields["u"] / float(graph.scale), dtype=torch.float32)[:, None]
        graph.index = torch.tensor([i])
        if self.cache is not None:
            self.cache[i] = graph
        return graph

    def subset(self, indices: Sequence[int]) -> "_Subset":
        return _Subset(self, list(indices))

    def __getstate__(self):  # picklable for DataLoader workers: reopen the file lazily
        state = dict(self.__dict__)
        state["_h5"] = None
        return state


class _Subset:
    def __init__(self, base: SimulationDataset, indices: list[int]):
        self.base, self.indices = base, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.base[self.indices[i]]


def _check_group(h5, name: str) -> str | None:
    """None if the group has every dataset with consistent shapes, else what is wrong."""
    try:
        g = h5[name]
        for key in _REQUIRED:
            if key not in g:
                return f"missing {key}"
        n, m = g["mesh/points"].shape[0], g["mesh/cells"].shape[0]
        if g["inputs/kappa"].shape != (m,):
            return f"inputs/kappa has shape {g['inputs/kappa'].shape}, expected ({m},)"
        for key in ("inputs/source", "outputs/u"):
            if g[key].shape != (n,):
                return f"{key} has shape {g[key].shape}, expected ({n},)"
        json.loads(g.attrs.get("params", "{}"))
    except Exception as exc:  # h5py raises KeyError/OSError/RuntimeError on damaged objects
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


__all__ = ["PROBLEMS", "Sample", "SimulationDataset", "generate", "simulate"]
