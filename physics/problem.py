"""Problems as data: the :class:`Problem` base, its :class:`Option` specs, the
registry, and the :class:`Solution` value every FE solver returns.

A problem declares, once, everything the rest of graphfem needs to know:

* :attr:`Problem.options`: one :class:`Option` per keyword, parsed by the
  same code for ``graphfem solve``, ``graphfem generate`` and ``graphfem
  predict`` (strings from the command line, or Python values from the API);
* :meth:`Problem.solve`: the verified FE reference solution;
* :attr:`Problem.fields`: the output fields with their units;
* :meth:`Problem.sample`: a random mesh and options for data sets;
* :meth:`Problem.features`: how a mesh plus options become model inputs
  (node, facet, cell and global values, as one (n, F) node array);
* :meth:`Problem.describe`: one sentence.

Registered by name with :func:`register_problem`; :func:`get_problem` looks a
name up (one line listing the known names otherwise).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from graphfem.meshes import FESpace, Mesh, Trajectory
from graphfem.meshes.errors import InputError, OptionValueError


@dataclass(eq=False)
class Solution:
    """The result of one FE solve.

    Attributes:
        space: the :class:`~graphfem.meshes.FESpace` the solution lives in.
        dofs: name -> dof vector (n_dofs,) in ``space`` (for example ``"u"``,
            ``"displacement"`` with dofs interleaved per node).
        fields: name -> values at the mesh nodes, (n_points,) or (n_points, c).
        units: field name -> unit string.
        info: solver facts: the linear solver's ``method``, ``iterations``,
            ``residual``, timings, and problem-specific entries.
        trajectory: the time series, for time-dependent problems (else ``None``).
    """

    space: FESpace
    dofs: dict[str, np.ndarray]
    fields: dict[str, np.ndarray]
    units: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    trajectory: Trajectory | None = None

    @property
    def mesh(self) -> Mesh:
        return self.space.mesh

    def write(self, path) -> None:
        """Write the nodal fields (with units) to a VTU/XDMF file, atomically;
        a ``.pvd`` or ``.xdmf`` path writes the whole trajectory of a
        time-dependent solution (a series ``graphfem koopman`` reads)."""
        if self.trajectory is not None and Path(path).suffix.lower() in (".pvd", ".xdmf", ".xmf"):
            self.trajectory.write(path)
            return
        self.mesh.write(path, point_data=self.fields, units=self.units)


# ---------------------------------------------------------------------- options
#: option kinds and what a value of each is
KINDS = {
    "field": "a number, a point/cell field of the mesh or an expression in x, y, z",
    "number": "a number",
    "integer": "a whole number",
    "choice": "one of the listed words",
    "flag": "on/off",
    "tag-values": "TAG=VALUE pairs, VALUE a number or an expression (repeatable)",
    "tag-vectors": "TAG=V1,V2[,V3] pairs (repeatable)",
    "tags": "tag names (repeatable)",
    "vector": "comma-separated numbers, one per dimension",
}

#: what an option is to a surrogate: a model input, or a setting of the FE solver that no model uses
ROLES = ("input", "setting", "time")


@dataclass(frozen=True)
class Option:
    """One option of a problem.

    Attributes:
        name: the keyword (``"kappa"``); the command-line flag is ``--`` plus
            the name with ``_`` as ``-`` unless ``flag`` is given.
        kind: one of :data:`KINDS`.
        default: the value when the option is not given (``None``: absent).
        help: one line for ``--help``.
        role: ``"input"`` (a model input), ``"setting"`` (how the FE solver
            works: order, linear solver; a surrogate refuses it) or ``"time"``
            (time stepping: a rollout uses it).
        required: the option must be given.
        choices: the words of a ``choice`` option.
        components: values per pair of a ``tag-vectors`` option (default: the
            mesh dimension).
        flag: the command-line flag, when not derived from ``name``.
        parse: a custom parser ``(value, mesh, option) -> value`` for values the
            kinds do not cover (it receives strings from the command line).
        aliases: earlier names of the option (``("a",)`` for Darcy's ``kappa``): stored
            data sets, checkpoints and API calls that use one still read, silently,
            and its flag (``--a``) is a deprecated spelling that warns in one line.
        metavar: the value's form in ``--help``, when not the kind's (``TAG[:x|y|z]``).
    """

    name: str
    kind: str
    default: Any = None
    help: str = ""
    role: str = "input"
    required: bool = False
    choices: tuple[str, ...] = ()
    components: int | None = None
    flag: str | None = None
    parse: Callable[[Any, Mesh, "Option"], Any] | None = None
    aliases: tuple[str, ...] = ()
    metavar: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"option {self.name!r}: unknown kind {self.kind!r}")
        if self.role not in ROLES:
            raise ValueError(f"option {self.name!r}: unknown role {self.role!r}")

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def repeatable(self) -> bool:
        return self.kind in ("tag-values", "tag-vectors", "tags")

    def value(self, raw: Any, mesh: Mesh) -> Any:
        """The parsed value of ``raw`` (a command-line string or list of
        strings, or a Python value) on ``mesh``; one-line :class:`InputError`
        naming the flag otherwise."""
        from . import options as parse

        flag = self.cli_flag
        if self.parse is not None:
            return self.parse(raw, mesh, self)
        if self.kind == "field":
            if isinstance(raw, str):
                return parse.coefficient(raw, mesh, flag, self.default)
            return parse.field_value(raw, mesh, flag)
        if self.kind == "number":
            return parse.number(raw, flag)
        if self.kind == "integer":
            value = parse.integer(raw, flag)
            if self.choices and str(value) not in self.choices:
                raise OptionValueError(f"{flag} must be {' or '.join(self.choices)}, got {value}")
            return value
        if self.kind == "choice":
            if raw not in self.choices:
                raise OptionValueError(f"{flag} must be one of {', '.join(self.choices)}, got {raw!r}")
            return raw
        if self.kind == "flag":
            if not isinstance(raw, (bool, np.bool_)):
                raise OptionValueError(f"{flag} is on or off, got {raw!r}")
            return bool(raw)
        if self.kind == "tag-values":
            return parse.tag_values(raw, flag, mesh)
        if self.kind == "tag-vectors":
            return parse.tag_values(raw, flag, mesh, components=self.components or mesh.dim)
        if self.kind == "tags":
            names = [raw] if isinstance(raw, str) else list(raw)
            for name in names:
                mesh.tag(str(name))
            return [str(n) for n in names]
        if self.kind == "vector":
            if isinstance(raw, str):
                return parse.vector(raw, mesh.dim, flag)
            return parse.vector(",".join(str(float(v)) for v in np.ravel(raw)), mesh.dim, flag)
        raise AssertionError(self.kind)


class NoLaw(InputError):
    """A law the problem declares does not map this case (:meth:`Problem.rotated` of a support
    along the mesh's axes, ``--fix bottom:y``, which does not turn with the mesh): a property
    check reports it n/a with this line."""


class DeprecatedOption(UserWarning):
    """An option given by a deprecated flag (still honoured, under its current name)."""


# ---------------------------------------------------------------------- features
@dataclass
class Features:
    """Model inputs of one problem instance on one mesh.

    Attributes:
        x: (n, F) node features: input fields at the nodes (cell values
            averaged onto them), masks and values of boundary conditions on
            tagged nodes, global numbers repeated on every node, and the
            boundary flag and local mesh size.
        names: the F feature names.
        scale: (c,) output scale per channel: the model predicts y / scale
            (1 where the problem has no scaling law).
        dirichlet: (n, c) bool mask of output values fixed by the options, or None.
        dirichlet_values: (n, c) those values (0 elsewhere), or None.
        parts: superposition of a linear problem, or None: pairs (x_k (n, F), r_k) with the
            same F columns as ``x``, each the features of the problem with only part k of its
            data (Poisson: the Dirichlet values alone, the source alone), and r_k ≥ 0 that
            part's own scale over ``scale``; a model U then predicts
            y / scale = Σ_k r_k U(x_k), exactly linear in each part's data.
        case: numbers of order one that say where the data of the case sit and that no input
            column carries (description -> value: the elastic problems' supported and loaded
            sides); not model inputs, but the domain of validity keeps their training ranges.
    """

    x: np.ndarray
    names: list[str]
    scale: np.ndarray
    dirichlet: np.ndarray | None = None
    dirichlet_values: np.ndarray | None = None
    parts: tuple[tuple[np.ndarray, float], ...] | None = None
    case: dict[str, float] = field(default_factory=dict)


def node_average(mesh: Mesh, cell_values: np.ndarray) -> np.ndarray:
    """(n, ...) mean of per-cell values over the cells around each node."""
    corners = mesh.corner_cells
    k = corners.shape[1]
    flat = np.repeat(np.asarray(cell_values, dtype=float).reshape(mesh.n_cells, -1), k, axis=0)
    total = np.zeros((mesh.n_points, flat.shape[1]))
    np.add.at(total, corners.ravel(), flat)
    count = np.bincount(corners.ravel(), minlength=mesh.n_points)[:, None]
    out = total / np.maximum(count, 1)
    return out.reshape((mesh.n_points,) + np.shape(cell_values)[1:])


def at_nodes(value: Any, mesh: Mesh, name: str) -> np.ndarray:
    """A parsed field value (number, point or cell array, callable of x (dim, n))
    at the mesh nodes, (n,) or (n, c)."""
    if callable(value):  # f(x) with x (dim, n) -> (n,) or (c, n)
        return np.asarray(value(mesh.points.T), dtype=float).T
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(mesh.n_points, float(arr))
    if arr.shape[0] == mesh.n_points:
        return arr
    if arr.shape[0] == mesh.n_cells:
        return node_average(mesh, arr)
    if arr.ndim == 1 and arr.size == mesh.dim:
        return np.broadcast_to(arr, (mesh.n_points, mesh.dim)).copy()
    raise InputError(f"{name} has shape {arr.shape}; expected a number, {mesh.n_points} point or "
                     f"{mesh.n_cells} cell values", mesh.source)


def local_mesh_size(mesh: Mesh) -> np.ndarray:
    """(n,) mean length of the mesh edges at each node."""
    from graphfem.meshes.graph import mesh_edges

    edges = mesh_edges(mesh)
    length = np.linalg.norm(mesh.points[edges[0]] - mesh.points[edges[1]], axis=1)
    count = np.bincount(edges[1], minlength=mesh.n_points)
    return np.bincount(edges[1], weights=length, minlength=mesh.n_points) / np.maximum(count, 1)


@dataclass
class Superposition:
    """A case of a linear problem as a sum of cases: what :meth:`Problem.superposed` gives.

    Attributes:
        mesh: the mesh (tags of the options stored by name).
        whole: the options of the case.
        parts: options of cases that each keep one part of the data (the rest zero), whose
            solutions add up to the whole case's solution.
        fields: the output fields that add up (a stress norm such as von Mises does not).
        names: one short name per part (``dirichlet``, ``traction on right``, ...).
    """

    mesh: Mesh
    whole: dict[str, Any]
    parts: list[dict[str, Any]]
    fields: tuple[str, ...]
    names: list[str]


@dataclass
class Transformed:
    """The same physics on a moved mesh: what :meth:`Problem.scaled` and
    :meth:`Problem.rotated` give.

    Attributes:
        mesh: the mesh with x ↦ c R x (tags of the options stored by name).
        options: the options on it, changed by the problem's law.
        factors: output field name -> c^k, the factor the law multiplies that field by
            (absent: 1).
        rotation: (dim, dim) R that vector fields are turned by, or None.
        vector_fields: the fields ``rotation`` turns (the problem's vector fields).
    """

    mesh: Mesh
    options: dict[str, Any]
    factors: dict[str, float] = field(default_factory=dict)
    rotation: np.ndarray | None = None
    vector_fields: tuple[str, ...] = ()

    def expected(self, fields: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The fields of the moved case by the law, from those of the original:
        v ↦ factor · v, and v_i ↦ R v_i at every node for a vector field."""
        out = {}
        for name, value in fields.items():
            v = np.asarray(value, dtype=float) * self.factors.get(name, 1.0)
            if self.rotation is not None and name in self.vector_fields:
                v = v @ self.rotation.T
            out[name] = v
        return out


# ---------------------------------------------------------------------- problems
class Problem:
    """A PDE problem (see the module docstring).

    Subclasses set :attr:`name`, :attr:`fields`, :attr:`options` and
    :attr:`summary`, and implement :meth:`solve` (taking the parsed options
    as keywords) and :meth:`sample`; they may override :meth:`kwargs`
    (parsed options -> solver keywords), :meth:`features` and :meth:`check`.
    """

    name: str = ""
    #: output field name -> unit
    fields: Mapping[str, str] = {}
    #: the options, in the order ``--help`` lists them
    options: tuple[Option, ...] = ()
    #: one line for ``graphfem solve --help``
    summary: str = ""
    #: mesh dimensions the solver accepts
    dims: tuple[int, ...] = (1, 2, 3)
    #: ``Solution.dofs`` entries that ``graphfem generate`` stores beside the nodal fields
    stored_dofs: tuple[str, ...] = ()
    #: whether ``graphfem solve`` offers the problem (its input is a mesh file)
    solve_command: bool = True
    #: the ``--geometry`` names :meth:`sample` takes (default first), from
    #: :data:`graphfem.physics.geometries.GEOMETRIES`
    geometries: tuple[str, ...] = ()
    #: whether :meth:`features` are dimensionless: the same physics on a mesh in
    #: micrometres and in metres (options scaled by the problem's law) gives the
    #: same model inputs, so the domain's size is no limit of a surrogate's validity
    dimensionless: bool = False
    #: whether :meth:`sample` takes a range ``(low, high)`` of resolutions
    #: (``graphfem generate --resolution LOW:HIGH``), one drawn per sample
    resolution_range: bool = False

    # ---------------------------------------------------------------- options
    def option(self, name: str) -> Option:
        for opt in self.options:
            if opt.name == name:
                return opt
        raise InputError(f"{self.name} has no option {name!r}; it takes {', '.join(o.name for o in self.options)}")

    def parse(self, mesh: Mesh, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Parsed option values (defaults filled in) from ``raw``: command-line
        strings or Python values by option name. Unknown names, missing
        required options and bad values are one-line :class:`InputError`."""
        if mesh.dim not in self.dims:
            raise InputError(f"{self.name} is solved on {' or '.join(f'{d}D' for d in self.dims)} meshes, "
                             f"this mesh is {mesh.dim}D", mesh.source)
        raw = self.canonical(raw)
        known = {o.name for o in self.options}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InputError(f"{self.name} has no option {unknown[0]!r}; it takes {', '.join(sorted(known))}")
        out: dict[str, Any] = {}
        for opt in self.options:
            value = raw.get(opt.name)
            if opt.repeatable and value is not None and len(value) == 0:
                value = None
            if value is None:
                if opt.required:
                    raise InputError(f"{self.name}: {opt.cli_flag} is required ({opt.help})")
                out[opt.name] = opt.default
                continue
            out[opt.name] = opt.value(value, mesh)
        self.check(mesh, out)
        return out

    def canonical(self, raw: Mapping[str, Any], warn: bool = False) -> dict[str, Any]:
        """``raw`` with every option given by an earlier name (:attr:`Option.aliases`) under its
        name; with ``warn`` (the command line) each such flag is a one-line
        :class:`DeprecatedOption` warning naming the flag to use.

        Raises:
            InputError: an option given under two names.
        """
        import warnings

        out = dict(raw)
        for opt in self.options:
            for alias in opt.aliases:
                if alias not in out:
                    continue
                value = out.pop(alias)
                if value is None or (opt.repeatable and not value):
                    continue
                if out.get(opt.name) not in (None, [], ()):
                    raise InputError(f"--{alias.replace('_', '-')} and {opt.cli_flag} are one option of "
                                     f"{self.name}; give {opt.cli_flag} only")
                if warn:
                    warnings.warn(f"--{alias.replace('_', '-')} is deprecated: use {opt.cli_flag} (the same "
                                  f"option of {self.name})", DeprecatedOption, stacklevel=2)
                out[opt.name] = value
        return out

    def current_feature(self, name: str) -> str:
        """A model-input column name as this version calls it: a column stored under an option's
        earlier name (``a``, ``a[0]``, ``a:mask``) gets the option's name, so checkpoints keep reading."""
        for opt in self.options:
            for alias in opt.aliases:
                if name == alias or name.startswith((alias + "[", alias + ":")):
                    return opt.name + name[len(alias):]
        return name

    def geometry(self, name: str | None) -> str:
        """The ``--geometry`` a sample is drawn on: ``name``, or the default; a
        name the problem does not take is one line listing those it does."""
        from .geometries import check_geometry

        if not self.geometries:
            raise InputError(f"--geometry: {self.name} has no geometry to choose")
        name = name or self.geometries[0]
        check_geometry(name, self.geometries, self.name)
        return name

    def check(self, mesh: Mesh, params: dict[str, Any]) -> None:
        """Problem-specific checks of parsed options (one-line :class:`InputError`)."""

    def kwargs(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Solver keywords from parsed options (default: the same names, ``None`` dropped)."""
        return {k: v for k, v in params.items() if v is not None}

    def is_transient(self, params: Mapping[str, Any]) -> bool:
        """Whether these options ask for a time series."""
        return False

    # ---------------------------------------------------------------- solve
    def solve(self, mesh: Mesh, **params) -> Solution:
        """The FE reference solution on ``mesh`` for the given parameters."""
        raise NotImplementedError

    def run(self, mesh: Mesh, raw: Mapping[str, Any]) -> Solution:
        """Parse ``raw`` options and solve: what ``graphfem solve`` does."""
        return self.solve(mesh, **self.kwargs(self.parse(mesh, raw)))

    def refine(self, mesh: Mesh, raw: Mapping[str, Any], guess: Mapping[str, np.ndarray]) -> Solution:
        """The FE solution of ``raw`` options started from ``guess`` (nodal fields, a
        surrogate's prediction): the problem's own solver iterates from there to its
        usual tolerance, so the result is :meth:`run`'s within that tolerance and the
        guess only buys time. A solver that takes no starting point refuses in one line."""
        raise InputError(f"--refine: the {self.name} solver takes no starting guess; refine is offered for "
                         f"{', '.join(sorted(p.name for p in PROBLEMS.values() if type(p).refine is not Problem.refine))}")

    # ---------------------------------------------------------------- exact properties
    def essential(self, mesh: Mesh, raw: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
        """The output values the options fix, as the FE solver imposes them: (n, c) mask
        and (n, c) values of the stacked output fields at the mesh nodes, or None when the
        problem has no essential (Dirichlet) condition."""
        return None

    def portable(self, mesh: Mesh, raw: Mapping[str, Any]) -> tuple[Mesh, dict[str, Any]]:
        """The same case with nothing left that depends on where the mesh sits: the given
        options parsed, expressions in x evaluated at the nodes, and every tag an option
        names (``boundary``, a condition such as ``"x<1e-9"``) stored on the mesh under
        that name. Moving the mesh then moves the case with it."""
        params = self.parse(mesh, raw)
        tags, out = {}, {}
        for opt in self.options:
            value = params[opt.name]
            if raw.get(opt.name) is None or value is None:
                continue
            if opt.kind == "field" and callable(value):
                value = at_nodes(value, mesh, opt.name)
            elif opt.repeatable:
                names = list(value or ())
                tags.update({t: mesh.tag(t) for t in names})
                if opt.kind == "tag-values":
                    value = {t: at_nodes(v, mesh, f"{opt.name} {t}") if callable(v) else v for t, v in value.items()}
            out[opt.name] = value
        return moved_mesh(mesh, mesh.points, tags), out

    def scaled(self, mesh: Mesh, raw: Mapping[str, Any], factor: float) -> Transformed:
        """The case on the mesh x ↦ c x (c = ``factor``) that the PDE maps onto this one,
        options changed by the problem's scaling law, with how the outputs change."""
        raise InputError(f"{self.name} declares no scaling law; laws are declared for "
                         f"{', '.join(_declaring('scaled'))}")

    def rotated(self, mesh: Mesh, raw: Mapping[str, Any], rotation: np.ndarray) -> Transformed:
        """The case on the mesh x ↦ R x (R a (dim, dim) rotation): an isotropic problem
        turns its vector options and vector outputs by R."""
        raise InputError(f"{self.name} declares no rotation law; laws are declared for "
                         f"{', '.join(_declaring('rotated'))}")

    def declares(self, law: str) -> bool:
        """Whether the problem defines the method ``law`` (``scaled``, ``rotated``, ``superposed``,
        ``frame``, ...) itself rather than inheriting the base class's refusal or default."""
        return getattr(type(self), law) is not getattr(Problem, law)

    def frame(self, mesh: Mesh, raw: Mapping[str, Any]) -> np.ndarray | None:
        """A rotation R (dim, dim) that turns the case into the problem's own frame, or None where
        it has none. A surrogate trained and served in that frame (the case on x ↦ R x by
        :meth:`rotated`, its vector outputs turned back by Rᵀ) predicts a turned case as the
        turned prediction, whatever orientation its training data had."""
        return None

    def superposed(self, mesh: Mesh, raw: Mapping[str, Any]) -> Superposition:
        """A linear problem's case split into cases of one data part each, whose solutions
        sum to this one's (raises :class:`NoLaw` for a case with a single part)."""
        raise InputError(f"{self.name} declares no superposition law; laws are declared for "
                         f"{', '.join(_declaring('superposed'))}")

    def report(self, solution: Solution) -> list[str]:
        """Lines ``graphfem solve`` prints about a solve (the linear solver by default)."""
        from .linear_solvers import describe

        return [f"solver: {describe(solution.info)}"] if "method" in solution.info else []

    # ---------------------------------------------------------------- data
    def sample(self, rng: np.random.Generator) -> tuple[Mesh, dict[str, Any]]:
        """A random mesh and raw options for a data set (only ``rng`` is random).
        Option values are JSON-ready numbers, strings, lists and dicts, or
        point/cell arrays of the mesh."""
        raise NotImplementedError(f"{self.name} has no sampler")

    def features(self, mesh: Mesh, params: Mapping[str, Any]) -> Features:
        """Model inputs from parsed options, by option kind (``input`` options only):

        * ``field``: its value at the nodes (cell values averaged);
        * ``tag-values`` / ``tag-vectors``: a mask of the tagged nodes and the values there;
        * ``tags``: a mask of the tagged nodes;
        * ``number``, ``vector``, ``flag``, ``choice``: the value on every node
          (a choice as one-hot);

        then the boundary flag and the local mesh size relative to the domain size.
        """
        n = mesh.n_points
        columns: list[np.ndarray] = []
        names: list[str] = []

        def add(name: str, values: np.ndarray) -> None:
            values = np.asarray(values, dtype=float).reshape(n, -1)
            columns.append(values)
            names.extend([name] if values.shape[1] == 1 else [f"{name}[{k}]" for k in range(values.shape[1])])

        for opt in self.options:
            if opt.role != "input":
                continue
            value = params.get(opt.name)
            if opt.kind == "field":
                add(opt.name, at_nodes(opt.default if value is None else value, mesh, opt.name))
            elif opt.kind in ("tag-values", "tag-vectors", "tags"):
                width = 0 if opt.kind == "tags" else (1 if opt.kind == "tag-values" else opt.components or mesh.dim)
                mask = np.zeros(n)
                vals = np.zeros((n, max(width, 1)))
                items = {t: None for t in (value or ())} if opt.kind == "tags" else dict(value or {})
                for tag, v in items.items():
                    nodes = mesh.tag_nodes(tag)
                    mask[nodes] = 1.0
                    if width == 1:
                        vals[nodes, 0] = at_nodes(v, mesh, f"{opt.name} {tag}")[nodes]
                    elif width:
                        vals[nodes] = np.asarray(v, dtype=float).reshape(1, width)
                add(f"{opt.name}:mask", mask)
                if width:
                    add(opt.name, vals)
            elif opt.kind == "choice":
                add(opt.name, np.tile([float(value == c) for c in opt.choices], (n, 1)))
            elif opt.kind == "vector":
                v = np.zeros(mesh.dim) if value is None else np.asarray(value, dtype=float)
                add(opt.name, np.tile(v, (n, 1)))
            else:  # number, integer, flag
                add(opt.name, np.full(n, float(0.0 if value is None else value)))
        lo, hi = mesh.bounding_box
        extent = float(np.max(hi - lo))
        boundary = np.zeros(n)
        boundary[mesh.boundary_nodes()] = 1.0
        add("boundary", boundary)
        add("h", local_mesh_size(mesh) / extent)
        x = np.concatenate(columns, axis=1) if columns else np.zeros((n, 0))
        return Features(x, names, np.ones(self.output_channels(mesh)))

    def features_in(self, mesh: Mesh, params: Mapping[str, Any], names: Sequence[str]) -> Features:
        """:meth:`features` in the layout of a model trained with the input columns ``names``
        (a checkpoint's, after :meth:`current_feature`): this version's, or an earlier layout
        the problem still writes so that its checkpoints keep working (the elastic supports
        before ``fix[k]``). Default: this version's; the caller refuses a mismatch."""
        return self.features(mesh, params)

    def output_channels(self, mesh: Mesh) -> int:
        """Channels of the stacked output fields on ``mesh`` (vector fields have ``mesh.dim``)."""
        return sum(self.field_width(name, mesh) for name in self.fields)

    def field_width(self, name: str, mesh: Mesh) -> int:
        """Channels of output field ``name``: 1, or the mesh dimension for vector fields."""
        return mesh.dim if name in self.vector_fields else 1

    #: output fields with one component per space dimension
    vector_fields: tuple[str, ...] = ()

    def describe(self, params: Mapping[str, Any] | None = None) -> str:
        """One sentence saying what is solved with which options."""
        given = ", ".join(f"{k}={_short(v)}" for k, v in (params or {}).items() if v is not None)
        return f"{self.summary or self.name}" + (f" with {given}" if given else "") + "."


def moved_mesh(mesh: Mesh, points: np.ndarray, tags: Mapping[str, Any] | None = None) -> Mesh:
    """``mesh`` with new node coordinates (n, dim) (same cells, fields) and extra tags."""
    from dataclasses import replace

    return replace(mesh, points=points, tags={**mesh.tags, **(tags or {})})


def _declaring(method: str) -> list[str]:
    return sorted(p.name for p in PROBLEMS.values() if p.declares(method))


def rotation_matrix(angle: float, dim: int) -> np.ndarray:
    """(dim, dim) rotation by ``angle`` radians: in the plane for dim = 2, about the axis
    (1, 1, 1)/√3 for dim = 3 (so that no coordinate axis is kept)."""
    c, s = np.cos(angle), np.sin(angle)
    if dim == 2:
        return np.array([[c, -s], [s, c]])
    if dim != 3:
        raise InputError(f"rotation of a {dim}D mesh: rotations are for 2D and 3D meshes")
    k = np.ones(3) / np.sqrt(3.0)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * K + (1 - c) * K @ K


def _short(value: Any) -> str:
    if callable(value):
        return "a function of x"
    if isinstance(value, np.ndarray) and value.size > 4:
        return f"a field in [{value.min():.3g}, {value.max():.3g}]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, np.ndarray):
        return "(" + ", ".join(f"{v:.3g}" for v in value.ravel()) + ")"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------- registry
#: name -> problem instance
PROBLEMS: dict[str, Problem] = {}

#: modules that register the built-in problems (imported on first look-up)
_BUILTIN = ("graphfem.physics.poisson", "graphfem.physics.elasticity", "graphfem.physics.heat",
            "graphfem.physics.darcy", "graphfem.physics.transport", "graphfem.physics.navier_stokes",
            "graphfem.physics.hyperelasticity", "graphfem.physics.mpm", "graphfem.physics.rve",
            "graphfem.physics.nonlinear_poisson", "graphfem.physics.parametric_burgers",
            "graphfem.physics.lid_cavity", "graphfem.physics.cylinder_wake")


def register_problem(cls: type[Problem]) -> type[Problem]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__qualname__} has no name")
    if cls.name in PROBLEMS and type(PROBLEMS[cls.name]) is not cls:
        raise ValueError(f"problem {cls.name!r} is already registered by {type(PROBLEMS[cls.name]).__qualname__}")
    PROBLEMS[cls.name] = cls()
    return cls


def _load_builtin() -> None:
    for module in _BUILTIN:
        importlib.import_module(module)


def get_problem(name: str) -> Problem:
    """The problem registered under ``name``; one line listing the known names otherwise."""
    _load_builtin()
    try:
        return PROBLEMS[name]
    except KeyError:
        raise InputError(f"unknown problem {name!r}; choose one of {', '.join(sorted(PROBLEMS))}") from None


def problems() -> list[str]:
    """Sorted names of every registered problem."""
    _load_builtin()
    return sorted(PROBLEMS)


def stack_fields(problem: Problem, mesh: Mesh, fields: Mapping[str, np.ndarray]) -> np.ndarray:
    """(n, c) the output fields of ``problem`` side by side (the order of :attr:`Problem.fields`)."""
    return np.concatenate([np.asarray(fields[name], dtype=float).reshape(mesh.n_points, -1)
                           for name in problem.fields], axis=1)


def field_slices(problem: Problem, mesh: Mesh) -> dict[str, tuple[int, int]]:
    """name -> (first, last + 1) of the field's columns in :func:`stack_fields`' (n, c) layout."""
    out, k = {}, 0
    for name in problem.fields:
        w = problem.field_width(name, mesh)
        out[name] = (k, k + w)
        k += w
    return out


def split_fields(problem: Problem, mesh: Mesh, y: np.ndarray) -> dict[str, np.ndarray]:
    """The inverse of :func:`stack_fields`: (n, c) -> name -> (n,) or (n, dim)."""
    return {name: y[:, a] if b - a == 1 and name not in problem.vector_fields else y[:, a:b]
            for name, (a, b) in field_slices(problem, mesh).items()}


__all__ = ["DeprecatedOption", "Features", "KINDS", "NoLaw", "Option", "PROBLEMS", "Problem", "Solution", "Superposition", "Transformed",
           "at_nodes", "field_slices", "get_problem", "local_mesh_size", "moved_mesh", "node_average", "problems", "register_problem",
           "rotation_matrix", "split_fields", "stack_fields"]
