"""The one HDF5 layout of simulation data sets, and its lazy reader.

Written by ``graphfem generate`` (:mod:`graphfem.datasets.generate`) for
every problem and data family; read by every model family::

    /                       attrs: problem, graphfem_version, seed, count (and geometry, family)
    /sim_000000/            attrs: problem, params (JSON), graphfem_version, seed, index
        mesh/points         (n, dim) float64
        mesh/cells          (m, k) int64        attrs: cell_type
        mesh/tags/<name>    int64 indices       attrs: kind (node | facet | cell)
                            (particle data: no mesh, positions in outputs/x (T, N, d))
        inputs/<name>       array-valued options and input fields (point or cell values)
        outputs/<name>      the reference fields at the nodes: (n,) / (n, c), or (T, n) / (T, n, c)
        dofs/<name>         FE coefficient vectors of outputs, where the problem keeps them
                            (``Problem.stored_dofs``: rve's fluctuation) or the family does (SPON)
        times               (T,) for time series

Grid families store the attributes ``grid_shape``, ``grid_lower``,
``grid_upper`` instead of ``mesh/``. The options of a registered problem are
the ``params`` entries and ``inputs`` arrays named like its options;
everything else in ``params`` is provenance.

:class:`SimulationData` checks every group when it opens the file: a damaged
group (a missing or misshapen array, NaN or infinite values, text where
numbers belong) is named in a one-line error that lists every damaged group,
or skipped with a one-line warning per group when ``skip_bad=True``. A group
of another problem is not damaged: it is refused as that problem, with or
without ``skip_bad``.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphfem.meshes import Grid, Mesh, Tag
from graphfem.meshes.errors import GraphfemError

#: data families stored under another name than the problem they solve: name -> (problem, renamed inputs)
ALIASES = {"darcy-two-phase": ("darcy", {}), "darcy-smooth": ("darcy", {}), "spon-poisson": ("poisson", {}),
           "spon-hyperelastic": ("hyperelastic", {}), "spon-flow": ("navier-stokes", {}),
           "cylinder-flow": ("navier-stokes", {})}


@dataclass
class Sample:
    """One simulation of a data set.

    Attributes:
        name: the group name (``sim_000000``).
        mesh: the mesh (``None`` for grid families).
        options: the problem's options as stored (raw values: numbers, dicts,
            point/cell arrays), ready for :meth:`graphfem.physics.Problem.parse`.
        fields: output name -> values at the nodes, (n, ...) or (T, n, ...).
        times: (T,) for time series, else ``None``.
        params: the group's ``params`` JSON (options and provenance).
        inputs: every stored input array.
        provenance: the group's attributes.
        dofs: the stored FE coefficient vectors (``dofs/``), name -> (n_dofs,).
    """

    name: str
    mesh: Mesh | None
    options: dict[str, Any]
    fields: dict[str, np.ndarray]
    times: np.ndarray | None
    params: dict[str, Any]
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    dofs: dict[str, np.ndarray] = field(default_factory=dict)


def read_mesh(group, prefix: str, source: str) -> Mesh:
    """The :class:`Mesh` stored under ``group[prefix]`` (points, cells, tags)."""
    tags = {k: Tag(k, str(d.attrs["kind"]), d[()]) for k, d in group[f"{prefix}/tags"].items()} \
        if f"{prefix}/tags" in group else {}
    return Mesh(group[f"{prefix}/points"][()], str(group[f"{prefix}/cells"].attrs["cell_type"]),
                group[f"{prefix}/cells"][()], tags=tags, source=source)


def write_mesh(group, prefix: str, mesh: Mesh) -> None:
    """Store ``mesh`` under ``group[prefix]`` (the inverse of :func:`read_mesh`)."""
    group.create_dataset(f"{prefix}/points", data=mesh.points)
    group.create_dataset(f"{prefix}/cells", data=mesh.cells).attrs["cell_type"] = mesh.cell_type
    for tag in mesh.tags.values():
        group.create_dataset(f"{prefix}/tags/{tag.name}", data=tag.indices).attrs["kind"] = tag.kind


def problem_of(name: str) -> str:
    """The registered problem a data family's samples solve (the name itself when it is one)."""
    return ALIASES.get(name, (name, {}))[0]


class SimulationData:
    """Lazy reader of a data set in the common layout.

    Args:
        path: the HDF5 file.
        skip_bad: skip damaged groups with a warning instead of raising.

    Attributes:
        problem: the data set's problem or data family name (file attribute ``problem``).
        family: the data family (``spon-poisson``, ``darcy-two-phase``, ...) or the problem name.
        names: the usable groups, in order.

    Raises:
        GraphfemError: the file is missing or unreadable, holds no usable
            group, a group is damaged and ``skip_bad`` is off (every damaged
            group named), or a group holds another problem.
    """

    def __init__(self, path: str | Path, skip_bad: bool = False):
        self.path = Path(path)
        if not self.path.is_file():
            raise GraphfemError("no such dataset file", self.path)
        self.attrs, self.names, self.bad = scan(self.path)
        self.problem = str(self.attrs.get("problem", "poisson"))
        self.family = str(self.attrs.get("family", self.problem))
        if self.bad and not skip_bad:
            listed = "; ".join(f"{name} ({problem})" for name, problem in list(self.bad.items())[:4])
            more = f"; and {len(self.bad) - 4} more" if len(self.bad) > 4 else ""
            raise GraphfemError(f"{len(self.bad)} damaged group{'s' if len(self.bad) > 1 else ''}: {listed}{more}; "
                                f"pass --skip-bad to skip {'them' if len(self.bad) > 1 else 'it'}", self.path)
        for name, problem in self.bad.items():
            warnings.warn(f"{self.path}: skipping damaged group {name!r} ({problem})", stacklevel=2)
        if not self.names:
            raise GraphfemError("the dataset holds no usable simulation", self.path)
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

    def group(self, i: int):
        """The h5py group of sample i (for families with extra stored arrays)."""
        return self._file()[self.names[i]]

    def sample(self, i: int) -> Sample:
        """Simulation i as core structures."""
        name = self.names[i]
        try:
            g = self._file()[name]
            mesh = read_mesh(g, "mesh", f"{self.path}:{name}") if "mesh" in g else None
            params = json.loads(g.attrs.get("params", "{}"))
            inputs = {k: d[()] for k, d in g["inputs"].items()} if "inputs" in g else {}
            fields = {k: d[()] for k, d in g["outputs"].items()} if "outputs" in g else {}
            times = g["times"][()] if "times" in g else None
            dofs = {k: d[()] for k, d in g["dofs"].items()} if "dofs" in g else {}
            prov = {k: (v.tolist() if isinstance(v, np.ndarray) else v.item() if hasattr(v, "item") else v)
                    for k, v in g.attrs.items()}  # grid families: grid_shape etc. are arrays
        except GraphfemError as exc:  # the core structures refuse what check_group let through: say where
            raise (exc if exc.source else GraphfemError(f"group {name!r}: {exc.problem}", self.path)) from None
        except Exception as exc:
            raise GraphfemError(f"group {name!r} cannot be read: {' '.join(str(exc).split())}", self.path) from None
        return Sample(name, mesh, self._options(params, inputs), fields, times, params, inputs, prov, dofs)

    def _options(self, params: dict, inputs: dict) -> dict[str, Any]:
        """The stored values of the problem's options (params and inputs named like them)."""
        from graphfem.physics.problem import PROBLEMS, problems

        problem_name, renamed = ALIASES.get(self.family, ALIASES.get(self.problem, (self.problem, {})))
        problems()
        if problem_name not in PROBLEMS:
            return {}
        problem = PROBLEMS[problem_name]
        names = {o.name for o in problem.options}
        values = {renamed.get(k, k): v for k, v in {**params, **inputs}.items()}
        return {k: v for k, v in problem.canonical(values).items() if k in names}  # earlier names read too

    def __getstate__(self):  # picklable for worker processes: reopen the file lazily
        state = dict(self.__dict__)
        state["_h5"] = None
        return state


#: seconds without progress after which the scan of a data set is given up (HDF5 can loop on damaged metadata)
SCAN_STALL_S = 60.0


def scan(path: Path) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """(file attributes, usable group names in index order, damaged group -> what is wrong) of a data set.

    The scan reads every array, in a forked process watched for progress:
    damaged HDF5 metadata can send the HDF5 library into a loop that no
    signal interrupts, and a file that stalls for :data:`SCAN_STALL_S`
    seconds (or crashes the library) is refused as damaged.

    Raises:
        GraphfemError: the file is unreadable, stalls, or holds a group of another problem.
    """
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods():
        return _scan(path, lambda: None)
    context = mp.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_scan_child, args=(path, send), daemon=True)
    child.start()
    send.close()
    answer = None
    try:
        while answer is None:
            if not receive.poll(SCAN_STALL_S):
                raise GraphfemError(f"reading the file stalls in the HDF5 library (no progress for {SCAN_STALL_S:g} "
                                    "s): its metadata is damaged", path)
            message = receive.recv()
            if message[0] != "progress":
                answer = message
    except EOFError:
        raise GraphfemError("reading the file crashed the HDF5 library: it is damaged", path) from None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()
    if answer[0] == "error":
        raise GraphfemError(answer[1], path)
    return answer[1]


def _scan_child(path: Path, send) -> None:
    try:
        send.send(("done", _scan(path, lambda: send.send(("progress",)))))
    except GraphfemError as exc:
        send.send(("error", exc.problem))
    except BaseException as exc:  # whatever the library raises on a damaged file
        send.send(("error", f"cannot read HDF5 dataset: {' '.join(str(exc).split()) or type(exc).__name__}"))


def _scan(path: Path, progress) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """:func:`scan` in this process; ``progress()`` is called after every group."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in h5.attrs.items()}
            problem = str(attrs.get("problem", "poisson"))
            names = sorted((k for k in h5.keys() if k.startswith("sim_")),
                           key=lambda k: (len(k), k))  # by index: sim_999999 before sim_1000000
            usable, bad = [], {}
            for name in names:
                foreign = foreign_problem(h5, name, problem)
                if foreign is not None:  # not damaged: another problem's data, which --skip-bad does not hide
                    raise GraphfemError(f"group {name!r} holds a simulation of {foreign}, but the data set is "
                                        f"{problem}; one data set holds one problem", path)
                what = check_group(h5, name)
                if what is None:
                    usable.append(name)
                else:
                    bad[name] = what
                progress()
    except (OSError, RuntimeError, KeyError, ValueError) as exc:  # h5py's answers to a damaged file
        raise GraphfemError(f"cannot read HDF5 dataset: {' '.join(str(exc).split())}", path) from None
    return attrs, usable, bad


def foreign_problem(h5, name: str, problem: str) -> str | None:
    """The problem of group ``name`` where it names another than the data set's ``problem``, else None."""
    try:
        own = h5[name].attrs.get("problem", problem)
    except Exception:  # an unreadable group is damaged, which check_group reports
        return None
    own = own.decode() if isinstance(own, bytes) else str(own)
    return own if own != problem else None


def _non_finite(value: Any, where: str = "") -> str | None:
    """The first key path in a parsed ``params`` JSON that holds NaN or an infinity, else None."""
    if isinstance(value, float) and not np.isfinite(value):
        return where or "a value"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def check_group(h5, name: str) -> str | None:
    """None if group ``name`` is usable, else what is wrong with it: a missing
    mesh or output, cells naming nodes the mesh lacks, arrays whose first axis
    fits neither the nodes nor the cells (nor T for series), non-numeric
    (text, object) or non-finite values in the arrays or in ``params``,
    unreadable ``params``. (A group of another problem is not damaged; see
    :func:`foreign_problem`.)"""
    try:
        g = h5[name]
        try:
            params = json.loads(g.attrs.get("params", "{}"))
        except (TypeError, ValueError):
            return "params is not JSON"
        bad = _non_finite(params)
        if bad:
            return f"params {bad} is NaN or infinite"
        if "outputs" not in g or not len(g["outputs"]):
            return "missing outputs"
        n = m = None
        if "mesh" in g:
            for key in ("mesh/points", "mesh/cells"):
                if key not in g:
                    return f"missing {key}"
            n, m = g["mesh/points"].shape[0], g["mesh/cells"].shape[0]
            for key in ("mesh/points", "mesh/cells"):
                if g[key].dtype.kind not in "biuf":
                    return f"{key} holds {_kind(g[key].dtype)}, not numbers"
            if not np.isfinite(g["mesh/points"][()]).all():
                return "mesh/points holds NaN or infinite values"
            cells = g["mesh/cells"][()]
            if cells.size and (cells.min() < 0 or cells.max() >= n):
                return f"mesh/cells names node {int(cells.max() if cells.max() >= n else cells.min())}, " \
                       f"the mesh has nodes 0..{n - 1}"
            for key, d in (g["mesh/tags"].items() if "mesh/tags" in g else ()):
                problem = _bad_tag(key, d, n, m)
                if problem:
                    return problem
        T = g["times"].shape[0] if "times" in g else None
        for section in ("inputs", "outputs", "dofs"):
            for key, d in (g[section].items() if section in g else ()):
                if not hasattr(d, "dtype"):
                    return f"{section}/{key} is a group, not an array"
                if d.dtype.kind not in "biuf":
                    return f"{section}/{key} holds {_kind(d.dtype)}, not numbers"
                values = d[()]
                if not np.isfinite(values).all():
                    return f"{section}/{key} holds NaN or infinite values"
                if n is None or section == "dofs" or key.endswith("_grid") or key.endswith("_faces"):
                    continue
                lead = values.shape[:2] if section == "outputs" and T is not None else values.shape[:1]
                if section == "outputs":
                    expected = (T, n) if T is not None else (n,)
                    if tuple(lead) != expected:
                        return f"{key} has shape {values.shape}, expected {expected} first"
                elif values.ndim and values.shape[0] not in (n, m) and values.size > 3:
                    return f"inputs/{key} has {values.shape[0]} values for {n} nodes and {m} cells"
    except Exception as exc:  # h5py raises KeyError/OSError/RuntimeError on damaged objects
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def _bad_tag(name: str, d, n: int, m: int) -> str | None:
    """What is wrong with the stored tag ``name`` (node or facet indices into the n nodes, cell indices
    into the m cells), or None."""
    if not hasattr(d, "dtype"):
        return f"mesh/tags/{name} is a group, not an array"
    kind = d.attrs.get("kind")
    kind = kind.decode() if isinstance(kind, bytes) else kind
    if kind not in ("node", "facet", "cell"):
        return f"mesh/tags/{name} has kind {kind!r}, not node, facet or cell"
    if d.dtype.kind not in "iu":
        return f"mesh/tags/{name} holds {_kind(d.dtype) if d.dtype.kind not in 'biuf' else d.dtype}, not indices"
    values, limit = d[()], m if kind == "cell" else n
    if values.size and (values.min() < 0 or values.max() >= limit):
        return f"mesh/tags/{name} names {'cell' if kind == 'cell' else 'node'} {int(values.max())} of 0..{limit - 1}"
    return None


def _kind(dtype: np.dtype) -> str:
    """A dtype in words: ``text (|S1)``, ``objects (object)``, ``bool``..."""
    words = {"S": "text", "U": "text", "O": "objects", "V": "raw records", "c": "complex numbers", "M": "dates",
             "m": "time spans"}
    return f"{words.get(dtype.kind, 'values')} ({dtype.str if dtype.kind in 'SUV' else dtype})"


def _json_default(value: Any):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in params")


def write_sample(group, sample: dict) -> None:
    """One sample dict (``mesh`` or ``grid``, ``inputs``, ``params``, ``outputs``, ``dofs``, ``times``)
    into ``group``."""
    mesh: Mesh | None = sample.get("mesh")
    if mesh is not None:
        write_mesh(group, "mesh", mesh)
    grid: Grid | None = sample.get("grid")
    if grid is not None:
        group.attrs.update({"grid_shape": grid.shape, "grid_lower": grid.lower, "grid_upper": grid.upper})
    for section in ("inputs", "outputs", "dofs"):
        for key, value in sample.get(section, {}).items():
            group.create_dataset(f"{section}/{key}", data=np.asarray(value))
    if sample.get("times") is not None:
        group.create_dataset("times", data=np.asarray(sample["times"], dtype=float))
    group.attrs["params"] = json.dumps(sample.get("params", {}), default=_json_default)


__all__ = ["ALIASES", "SCAN_STALL_S", "Sample", "SimulationData", "check_group", "foreign_problem", "problem_of",
           "read_mesh", "scan", "write_mesh", "write_sample"]
