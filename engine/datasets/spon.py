"""Data families for SPON: FE input/output pairs on nested meshes, written to HDF5.

Families (each a generator ``(rng, resolution, **options) -> dict`` in the
convention of :mod:`graphfem.physics.generators`, added to its
``GENERATORS`` registry under the names below). Each sample is an instance
of a registered problem (:data:`graphfem.datasets.simulations.ALIASES`), and
its ``params`` hold that problem's options, so ``graphfem solve`` /
``graphfem predict`` take exactly what the data varies:

* ``spon-poisson`` (problem ``poisson``): −∇·(κ∇u) = f on a 2D domain (the
  L-shape, a perforated plate, a random domain of
  :mod:`graphfem.physics.geometries`, or any mesh file), u = g₀ (a random
  constant, zero half of the time) on the whole boundary. f is a random sum
  of 12 Fourier modes; κ is smooth (exp of 6 Fourier modes) or two-phase (a
  disc inclusion, contrast up to 25): Darcy-type. The functions are stored
  as their Fourier parameters (``params["f"]``, ``params["kappa"]``) and, for
  the ``poisson`` options, as values (``inputs/kappa`` per cell,
  ``inputs/source`` at the nodes).
* ``spon-hyperelastic`` (problem ``hyperelastic``): a neo-Hookean plate
  1 × 0.5 (plane strain, E = 1, ν = 0.3, :data:`HYPER`), clamped on the left
  (``fix``), under a random dead traction on the right edge (tension
  t_x ∈ [0, 0.12], shear t_y ∈ [−0.03, 0.03]) and a random constant dead
  body force (each component in [−0.05, 0.05]), solved by the problem's
  load-stepped Newton (2 steps; strains up to ~20 %).
* ``spon-flow`` (problem ``navier-stokes``): steady incompressible
  Navier–Stokes past a cylinder in a channel 1 × 0.41 (ν = 10⁻³), with a
  random cylinder centre (c_x ∈ [0.15, 0.3], c_y ∈ [0.15, 0.26]), radius
  r ∈ [0.03, 0.06] and parabolic inflow peak U ∈ [0.1, 0.45] on ``inlet``
  (Re = (2U/3)(2r)/ν ∈ [2, 36], steady), no slip on ``walls`` and
  ``cylinder``, do-nothing ``outlet``; velocity in vector P2 (Taylor–Hood).
  The coarse mesh (16 cells around the cylinder, straight edges) differs
  from sample to sample; refinement keeps the fine nodes of the cylinder on
  the coarse chords, so the hierarchy stays exactly nested.

Every input can be evaluated on any mesh, so that evaluation one
refinement level finer than training re-encodes the same inputs there. The
fine mesh is ``coarse.refined(levels)`` (``resolution`` = levels), which
makes the SPON-MG hierarchy exact.

HDF5 layout: the common one of :mod:`graphfem.datasets.simulations`
(file attributes ``problem`` the registered problem and ``family`` the data
family), plus each sample's coarse mesh and FE coefficients::

    /sim_000000/  attrs: problem, family, params (JSON: the problem's options, order, levels, provenance)
        mesh/points, mesh/cells, mesh/tags/<name>   the fine (training) mesh
        coarse/points, coarse/cells, coarse/tags/<name>
        dofs/<field>     coefficients in V_h (vector fields interleaved)
        inputs/..., outputs/<field> (values at the nodes)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from graphfem.meshes import Mesh, Tag
from graphfem.meshes.errors import GraphfemError, InputError

FAMILIES = ("spon-poisson", "spon-hyperelastic", "spon-flow")
#: the output field of each family (stored under ``dofs/<field>``)
FIELDS = {"spon-poisson": "u", "spon-hyperelastic": "displacement", "spon-flow": "velocity"}
#: the options of each family's problem that the samples vary (the model's inputs)
INPUTS = {"spon-poisson": ("kappa", "source", "dirichlet", "neumann"),
          "spon-hyperelastic": ("traction", "body_force"), "spon-flow": ("inflow",)}
#: the options every sample of a family shares (a model trained on them predicts for these values only)
FIXED = {"spon-poisson": (), "spon-hyperelastic": ("E", "nu", "fix"), "spon-flow": ("nu", "no_slip", "outflow")}
#: the plate of ``spon-hyperelastic``: material, clamped and loaded tags, load steps
HYPER = {"E": 1.0, "nu": 0.3, "fix": ["left"], "loaded": "right", "steps": 2}
#: the channel of ``spon-flow``
FLOW = {"length": 1.0, "height": 0.41, "nu": 1e-3, "n_around": 16}


# ------------------------------------------------------------------ geometries
#: the ``--geometry`` names each SPON family takes (the vocabulary of
#: :data:`graphfem.physics.geometries.GEOMETRIES`, or a mesh file), default first
GEOMETRIES = {"spon-poisson": ("lshape-fixed", "mixed", "deformed", "perforated", "polygon", "lshape",
                               "perforated-fixed", "plate"),
              "spon-hyperelastic": ("plate", "perforated-fixed", "mixed", "deformed", "perforated", "polygon",
                                    "lshape"),
              "spon-flow": ("channel",)}


def coarse_mesh(geometry: str, rng: np.random.Generator | None = None, family: str = "spon-poisson") -> Mesh:
    """The level-0 mesh of a ``--geometry`` of ``family`` (:data:`GEOMETRIES`):
    ``lshape-fixed`` (21 nodes), ``plate`` (1 × 0.5, 8 × 4 squares split),
    ``perforated-fixed`` (the unit square with a hole), a random family of
    :mod:`graphfem.physics.geometries` (h = 0.2, drawn from ``rng``), or a mesh file."""
    import skfem

    from graphfem.physics.geometries import check_geometry, random_domain

    if geometry not in GEOMETRIES[family]:
        path = Path(geometry)
        if not path.is_file():
            if path.suffix:
                raise InputError(f"--geometry {geometry}: no such mesh file")
            check_geometry(geometry, GEOMETRIES[family] + ("a mesh file",), family)
        from graphfem.meshes import read

        mesh = read(path)
    elif geometry == "lshape-fixed":
        mesh = Mesh.from_skfem(skfem.MeshTri.init_lshaped().refined(1))
    elif geometry == "plate":
        mesh = Mesh.rectangle(8, 4, 0.0, 1.0, 0.0, 0.5)
    elif geometry == "perforated-fixed":
        from graphfem.physics.geometries import _resample, mesh_domain

        outer = _resample(np.array([[0, 0], [1, 0], [1, 1], [0, 1.0]]), 0.17)
        mesh = mesh_domain(outer, np.array([[0.5, 0.5, 0.2]]), 0.17, np.random.default_rng(7))
    else:
        mesh = random_domain(geometry, rng if rng is not None else np.random.default_rng(0), h=0.2)
    if "boundary" not in mesh.tags:
        mesh = mesh.with_tags(boundary=Tag("boundary", "facet", mesh.boundary_facets()))
    return mesh


# ------------------------------------------------------------------ random input functions
def fourier(params: dict) -> Callable[[np.ndarray], np.ndarray]:
    """x (2, ...) -> Σ_k a_k sin(2π ω_k·x + φ_k) for params {a, omega (k, 2), phase}."""
    a, w, p = np.asarray(params["a"]), np.asarray(params["omega"]), np.asarray(params["phase"])

    def f(x):
        arg = 2 * np.pi * np.tensordot(w, x, axes=(1, 0)) + p.reshape((-1,) + (1,) * (x.ndim - 1))
        return np.tensordot(a, np.sin(arg), axes=(0, 0))

    return f


def _draw_fourier(rng: np.random.Generator, k: int, spread: float, amplitude: float) -> dict:
    omega = rng.uniform(-spread, spread, (k, 2))
    a = rng.normal(0.0, amplitude, k) / (1.0 + np.linalg.norm(omega, axis=1))
    return {"a": a.tolist(), "omega": omega.tolist(), "phase": rng.uniform(0, 2 * np.pi, k).tolist()}


def kappa_function(params: dict) -> Callable[[np.ndarray], np.ndarray]:
    """κ(x) from its parameters: ``smooth`` exp(Fourier) or a two-phase disc inclusion."""
    if params["kind"] == "smooth":
        g = fourier(params["field"])
        return lambda x: np.exp(g(x))
    c, r, k1, k2 = np.asarray(params["centre"]), params["radius"], params["k_out"], params["k_in"]
    return lambda x: np.where(((x[0] - c[0]) ** 2 + (x[1] - c[1]) ** 2) < r * r, k2, k1)


def draw_poisson(rng: np.random.Generator, mesh: Mesh) -> dict:
    """Random f, κ and boundary value g₀ (see the module docstring), as JSON parameters."""
    lo, hi = mesh.bounding_box
    f = _draw_fourier(rng, 12, 2.0 / float(np.max(hi - lo)), 10.0)
    if rng.random() < 0.5:
        kappa = {"kind": "smooth", "field": _draw_fourier(rng, 6, 1.5 / float(np.max(hi - lo)), 0.8)}
    else:
        kappa = {"kind": "inclusion", "centre": rng.uniform(lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo)).tolist(),
                 "radius": float(rng.uniform(0.1, 0.3) * np.max(hi - lo)),
                 "k_out": float(10 ** rng.uniform(-0.7, 0.7)), "k_in": float(10 ** rng.uniform(-0.7, 0.7))}
    g0 = float(rng.uniform(-1, 1)) if rng.random() < 0.5 else 0.0
    return {"f": f, "kappa": kappa, "dirichlet": {"boundary": g0}}


def solve_poisson_case(mesh: Mesh, params: dict, order: int = 1):
    """The FE reference solution (a :class:`~graphfem.physics.problem.Solution`)."""
    from graphfem.physics import poisson

    return poisson(mesh, kappa=kappa_function(params["kappa"]), f=fourier(params["f"]),
                   dirichlet=params["dirichlet"], order=order, solver="direct")


def draw_hyperelastic(rng: np.random.Generator) -> dict:
    """Random dead loads on the plate, as ``hyperelastic`` options: a traction on
    the right edge and a constant body force; E, ν, the clamp and the load
    steps of :data:`HYPER`."""
    # tension only: a compressed slender plate buckles and Newton then has no unique branch to follow
    t = [float(rng.uniform(0.0, 0.12)), float(rng.uniform(-0.03, 0.03))]
    return {"E": HYPER["E"], "nu": HYPER["nu"], "fix": list(HYPER["fix"]), "traction": {HYPER["loaded"]: t},
            "body_force": rng.uniform(-0.05, 0.05, 2).tolist(), "steps": HYPER["steps"]}


def problem_options(family: str, params: dict) -> dict:
    """The entries of ``params`` that are options of the family's problem."""
    from graphfem.physics.problem import get_problem

    from .simulations import problem_of

    names = {o.name for o in get_problem(problem_of(family)).options}
    return {k: v for k, v in params.items() if k in names}


def solve_hyperelastic_case(mesh: Mesh, params: dict, order: int = 1):
    """The ``hyperelastic`` problem's solution for the stored options on ``mesh``."""
    from graphfem.physics.problem import get_problem

    return get_problem("hyperelastic").run(mesh, {**problem_options("spon-hyperelastic", params), "order": order})


def draw_flow(rng: np.random.Generator) -> dict:
    """Random cylinder (centre, radius) and inflow peak of ``spon-flow``, with the
    ``navier-stokes`` options of the sample."""
    u_max = float(rng.uniform(0.1, 0.45))
    return {"centre": [float(rng.uniform(0.15, 0.3)), float(rng.uniform(0.15, 0.26))],
            "radius": float(rng.uniform(0.03, 0.06)), "u_max": u_max, "nu": FLOW["nu"], "inflow": {"inlet": u_max},
            "no_slip": ["walls", "cylinder"], "outflow": ["outlet"]}


def flow_coarse_mesh(params: dict) -> Mesh:
    """The level-0 channel of a ``spon-flow`` sample (tags inlet, outlet, walls, cylinder)."""
    from graphfem.physics.channel import channel_mesh

    return channel_mesh(FLOW["n_around"], order=1, length=FLOW["length"], height=FLOW["height"],
                        centre=tuple(params["centre"]), radius=params["radius"])


def solve_flow_case(mesh: Mesh, params: dict, order: int = 2):
    """The steady ``navier-stokes`` solution (Taylor–Hood; ``order`` must be 2) for the stored options."""
    from graphfem.physics.problem import get_problem

    if order != 2:
        raise InputError(f"spon-flow: the velocity is Taylor-Hood P2, order must be 2, got {order}")
    return get_problem("navier-stokes").run(mesh, problem_options("spon-flow", params))


def solve_case(family: str, mesh: Mesh, params: dict, order: int):
    """The FE reference solution of a stored sample's parameters on ``mesh``."""
    solver = {"spon-poisson": solve_poisson_case, "spon-hyperelastic": solve_hyperelastic_case,
              "spon-flow": solve_flow_case}[family]
    return solver(mesh, params, order)


# ------------------------------------------------------------------ generators
def spon_poisson(rng: np.random.Generator, resolution: int = 1, order: int = 1,
                 geometry: str = "lshape-fixed") -> dict:
    """One ``spon-poisson`` sample on ``coarse_mesh(geometry).refined(resolution)``."""
    coarse = coarse_mesh(geometry, rng)
    mesh = coarse.refined(resolution)
    params = draw_poisson(rng, mesh)
    sol = solve_poisson_case(mesh, params, order)
    centroids = mesh.points[mesh.corner_cells].mean(axis=1).T
    return {"mesh": mesh, "coarse": coarse,
            "inputs": {"kappa": kappa_function(params["kappa"])(centroids),
                       "source": fourier(params["f"])(mesh.points.T)},
            "params": {**params, "order": order, "levels": resolution, "geometry": geometry},
            "outputs": {"u": sol.fields["u"]}, "dofs": {"u": sol.dofs["u"]}}


def spon_hyperelastic(rng: np.random.Generator, resolution: int = 1, order: int = 1, geometry: str = "plate") -> dict:
    """One ``spon-hyperelastic`` sample on ``coarse_mesh(geometry)`` (the plate) refined ``resolution`` times."""
    coarse = coarse_mesh(geometry, rng, "spon-hyperelastic")
    mesh = coarse.refined(resolution)
    params = draw_hyperelastic(rng)
    sol = solve_hyperelastic_case(mesh, params, order)
    return {"mesh": mesh, "coarse": coarse, "inputs": {},
            "params": {**params, "order": order, "levels": resolution, "geometry": geometry,
                       "newton_iterations": sol.info["newton_iterations"]},
            "outputs": {"displacement": sol.fields["displacement"]}, "dofs": {"displacement": sol.dofs["displacement"]}}


def spon_flow(rng: np.random.Generator, resolution: int = 1, order: int = 2, geometry: str = "channel") -> dict:
    """One ``spon-flow`` sample on its channel refined ``resolution`` times (velocity in vector P2)."""
    from graphfem.physics.geometries import check_geometry

    check_geometry(geometry, GEOMETRIES["spon-flow"], "spon-flow")
    params = draw_flow(rng)
    coarse = flow_coarse_mesh(params)
    mesh = coarse.refined(resolution)
    sol = solve_flow_case(mesh, params, order)
    return {"mesh": mesh, "coarse": coarse, "inputs": {},
            "params": {**params, "order": order, "levels": resolution, "geometry": geometry,
                       "newton_iterations": sol.info["newton_iterations"]},
            "outputs": {"velocity": sol.fields["velocity"], "pressure": sol.fields["pressure"]},
            "dofs": {"velocity": sol.dofs["velocity"], "pressure": sol.dofs["pressure"]}}


GENERATORS = {"spon-poisson": spon_poisson, "spon-hyperelastic": spon_hyperelastic, "spon-flow": spon_flow}


def _register() -> None:
    from graphfem.physics.generators import GENERATORS as shared

    for name, fn in GENERATORS.items():
        shared.setdefault(name, fn)


_register()


# ------------------------------------------------------------------ files
def generate(family: str, n: int, out: str | Path, resolution: int = 1, order: int | None = None,
             geometry: str | None = None, seed: int = 0) -> Path:
    """Write ``n`` samples of ``family`` to ``out`` atomically (the writer of
    ``graphfem generate``, so a stopped run resumes); sample i depends only on
    (seed, i). ``order`` defaults to the family's (1; 2 for the Taylor–Hood
    velocity of ``spon-flow``)."""
    from .writer import write

    if family not in GENERATORS:
        raise InputError(f"unknown SPON family {family!r}; choose one of {', '.join(GENERATORS)}")
    fixed = {} if order is None else {"order": order}
    return write(family, ("spon", family, geometry, resolution, fixed), n, Path(out), seed, 1, False, False,
                 simulate_star)


def simulate_star(args: tuple) -> tuple[int, dict]:
    """``(index, sample)`` of the job ``("spon", family, geometry, resolution, fixed options, seed, index)``."""
    _, family, geometry, resolution, fixed, seed, index = args
    where = {} if geometry is None else {"geometry": geometry}
    return index, GENERATORS[family](np.random.default_rng([seed, index]), resolution, **where, **(fixed or {}))


@dataclass
class Record:
    """One stored sample: meshes, parameters and reference coefficients.

    Attributes:
        family: the data family (``spon-poisson``, ...).
        coarse: the level-0 mesh; ``mesh`` is ``coarse.refined(params["levels"])``.
        params: the stored parameters (the problem's options, order, levels, provenance).
        dofs: (n_dofs,) the reference coefficients of :data:`FIELDS` [family] in V_h.
    """

    family: str
    coarse: Mesh
    mesh: Mesh
    params: dict
    dofs: np.ndarray


def record(group, family: str, source: str) -> Record:
    """The :class:`Record` of one HDF5 group of a SPON data file."""
    from .simulations import read_mesh

    if "coarse" not in group or f"dofs/{FIELDS[family]}" not in group:
        raise GraphfemError("the group has no coarse mesh or V_h coefficients: not written by a SPON generator",
                            source)
    return Record(family, read_mesh(group, "coarse", source), read_mesh(group, "mesh", source),
                  json.loads(group.attrs["params"]), group[f"dofs/{FIELDS[family]}"][()])


def read(path: str | Path) -> list[Record]:
    """All samples of a SPON data file."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise GraphfemError("no such dataset file", path)
    with h5py.File(path, "r") as h5:
        family = str(h5.attrs.get("family", ""))
        if family not in GENERATORS:
            raise GraphfemError(f"not a SPON data file (family {family!r})", path)
        return [record(h5[name], family, f"{path}:{name}") for name in sorted(k for k in h5 if k.startswith("sim_"))]


__all__ = ["FAMILIES", "FIELDS", "FIXED", "FLOW", "GENERATORS", "HYPER", "INPUTS", "Record", "coarse_mesh",
           "draw_flow", "draw_hyperelastic", "draw_poisson", "flow_coarse_mesh", "fourier", "generate",
           "kappa_function", "problem_options", "read", "record", "solve_case", "solve_flow_case",
           "simulate_star", "solve_hyperelastic_case", "solve_poisson_case", "spon_flow", "spon_hyperelastic",
           "spon_poisson"]
