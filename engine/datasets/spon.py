"""Data families for SPON: FE input/output pairs on nested meshes, written to HDF5.

Families (each a generator ``(rng, resolution, **options) -> dict`` in the
convention of :mod:`graphfem.physics.generators`, added to its
``GENERATORS`` registry under the names below):

* ``spon-poisson``: −∇·(κ∇u) = f on a 2D domain (the L-shape, a perforated
  plate, a random domain of :mod:`graphfem.physics.geometries`, or any mesh file),
  u = g₀ (a random constant, zero half of the time) on the whole boundary.
  f is a random sum of 12 Fourier modes; κ is smooth (exp of 6 Fourier
  modes) or two-phase (a disc inclusion, contrast up to 25): Darcy-type.
* ``spon-hyperelastic``: a neo-Hookean plate 1 × 0.5 (plane strain,
  E = 1, ν = 0.3), clamped on the left, under a random dead traction on
  the right edge (tension t_x ∈ [0, 0.12], shear t_y ∈ [−0.03, 0.03]) and a random smooth body force, solved by
  :func:`graphfem.physics.hyperelasticity.neo_hookean` (strains up to ~20 %).
* ``spon-flow``: steady incompressible Navier–Stokes past a cylinder in a
  channel 1 × 0.41 (ν = 10⁻³), with a random cylinder centre
  (c_x ∈ [0.15, 0.3], c_y ∈ [0.15, 0.26]), radius r ∈ [0.03, 0.06] and
  parabolic inflow peak U ∈ [0.1, 0.45] (Re = (2U/3)(2r)/ν ∈ [2, 36],
  steady), no slip on the walls and the cylinder, do-nothing outflow;
  velocity in vector P2 (Taylor–Hood, :func:`graphfem.physics.navier_stokes.navier_stokes`).
  The coarse mesh (16 cells around the cylinder, straight edges) differs
  from sample to sample; refinement keeps the fine nodes of the cylinder on
  the coarse chords, so the hierarchy stays exactly nested.

Every input function is stored as its parameters, so that it can be
evaluated (and L²-projected) on any mesh: evaluation one refinement level
finer than training re-encodes the same inputs there. The fine mesh is
``coarse.refined(levels)`` (``resolution`` = levels), which makes the
SPON-MG hierarchy exact.

HDF5 layout (``spon-poisson`` groups also hold what
:class:`graphfem.datasets.simulations.SimulationDataset` reads: ``mesh/``,
``inputs/kappa`` per cell, ``inputs/source`` and ``outputs/u`` at the nodes,
and ``params["dirichlet"]``)::

    /sim_000000/  attrs: problem, params (JSON: input functions, order, levels, dirichlet)
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
from graphfem.meshes.io import atomic_path

FAMILIES = ("spon-poisson", "spon-hyperelastic", "spon-flow")
#: the output field of each family (stored under ``dofs/<field>``)
FIELDS = {"spon-poisson": "u", "spon-hyperelastic": "displacement", "spon-flow": "velocity"}
#: the channel of ``spon-flow``
FLOW = {"length": 1.0, "height": 0.41, "nu": 1e-3, "n_around": 16}


# ------------------------------------------------------------------ geometries
def coarse_mesh(geometry: str, rng: np.random.Generator | None = None) -> Mesh:
    """The level-0 mesh of a geometry: ``lshape`` (21 nodes), ``plate``
    (1 × 0.5, 8 × 4 squares split), ``perforated`` (the unit square with a
    hole, fixed), ``random:<family>`` (a random domain of
    :mod:`graphfem.physics.geometries`, h = 0.2, drawn from ``rng``), or a mesh file."""
    import skfem

    if geometry == "lshape":
        mesh = Mesh.from_skfem(skfem.MeshTri.init_lshaped().refined(1))
    elif geometry == "plate":
        mesh = Mesh.rectangle(8, 4, 0.0, 1.0, 0.0, 0.5)
    elif geometry == "perforated":
        from graphfem.physics.geometries import _resample, mesh_domain

        outer = _resample(np.array([[0, 0], [1, 0], [1, 1], [0, 1.0]]), 0.17)
        mesh = mesh_domain(outer, np.array([[0.5, 0.5, 0.2]]), 0.17, np.random.default_rng(7))
    elif geometry.startswith("random:"):
        from graphfem.physics.geometries import random_domain

        mesh = random_domain(geometry.split(":", 1)[1], rng if rng is not None else np.random.default_rng(0), h=0.2)
    else:
        path = Path(geometry)
        if not path.is_file():
            raise InputError(f"unknown geometry {geometry!r}: use lshape, plate, perforated, random:<family> or a "
                             "mesh file")
        from graphfem.meshes import read

        mesh = read(path)
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
    """Random dead loads on the plate: traction (right edge) and body force."""
    # tension only: a compressed slender plate buckles and Newton then has no unique branch to follow
    t = [float(rng.uniform(0.0, 0.12)), float(rng.uniform(-0.03, 0.03))]
    b = [_draw_fourier(rng, 4, 1.5, 0.08) for _ in range(2)]
    return {"traction": t, "body": b, "E": 1.0, "nu": 0.3}


def body_force(params: dict) -> Callable[[np.ndarray], np.ndarray]:
    fx, fy = fourier(params["body"][0]), fourier(params["body"][1])
    return lambda x: np.stack([fx(x), fy(x)])


def solve_hyperelastic_case(mesh: Mesh, params: dict, order: int = 1):
    from graphfem.physics.hyperelasticity import neo_hookean

    return neo_hookean(mesh, E=params["E"], nu=params["nu"], fixed=["left"], traction={"right": params["traction"]},
                       body_force=body_force(params), order=order, steps=2)


def draw_flow(rng: np.random.Generator) -> dict:
    """Random cylinder (centre, radius) and inflow peak of ``spon-flow``."""
    return {"centre": [float(rng.uniform(0.15, 0.3)), float(rng.uniform(0.15, 0.26))],
            "radius": float(rng.uniform(0.03, 0.06)), "u_max": float(rng.uniform(0.1, 0.45)), "nu": FLOW["nu"]}


def flow_coarse_mesh(params: dict) -> Mesh:
    """The level-0 channel of a ``spon-flow`` sample (tags inlet, outlet, walls, cylinder)."""
    from graphfem.physics.channel import channel_mesh

    return channel_mesh(FLOW["n_around"], order=1, length=FLOW["length"], height=FLOW["height"],
                        centre=tuple(params["centre"]), radius=params["radius"])


def solve_flow_case(mesh: Mesh, params: dict, order: int = 2):
    """Steady Navier–Stokes (Taylor–Hood; ``order`` must be 2) on a ``spon-flow`` mesh."""
    from graphfem.physics.navier_stokes import dfg_setup, navier_stokes

    if order != 2:
        raise InputError(f"spon-flow: the velocity is Taylor-Hood P2, order must be 2, got {order}")
    return navier_stokes(mesh, nu=params["nu"], **dfg_setup(params["u_max"]))


def solve_case(family: str, mesh: Mesh, params: dict, order: int):
    """The FE reference solution of a stored sample's parameters on ``mesh``."""
    solver = {"spon-poisson": solve_poisson_case, "spon-hyperelastic": solve_hyperelastic_case,
              "spon-flow": solve_flow_case}[family]
    return solver(mesh, params, order)


# ------------------------------------------------------------------ generators
def spon_poisson(rng: np.random.Generator, resolution: int = 1, order: int = 1, geometry: str = "lshape") -> dict:
    """One ``spon-poisson`` sample on ``coarse_mesh(geometry).refined(resolution)``."""
    coarse = coarse_mesh(geometry, rng)
    mesh = coarse.refined(resolution)
    params = draw_poisson(rng, mesh)
    sol = solve_poisson_case(mesh, params, order)
    centroids = mesh.points[mesh.corner_cells].mean(axis=1).T
    return {"mesh": mesh, "coarse": coarse,
            "inputs": {"kappa": kappa_function(params["kappa"])(centroids), "source": fourier(params["f"])(mesh.points.T)},
            "params": {**params, "order": order, "levels": resolution, "geometry": geometry},
            "outputs": {"u": sol.fields["u"]}, "dofs": {"u": sol.dofs["u"]}}


def spon_hyperelastic(rng: np.random.Generator, resolution: int = 1, order: int = 1, geometry: str = "plate") -> dict:
    """One ``spon-hyperelastic`` sample on the plate refined ``resolution`` times."""
    coarse = coarse_mesh(geometry, rng)
    mesh = coarse.refined(resolution)
    params = draw_hyperelastic(rng)
    sol = solve_hyperelastic_case(mesh, params, order)
    return {"mesh": mesh, "coarse": coarse, "inputs": {"body_force": body_force(params)(mesh.points.T).T},
            "params": {**params, "order": order, "levels": resolution, "geometry": geometry,
                       "newton_iterations": sol.info["newton_iterations"]},
            "outputs": {"displacement": sol.fields["displacement"]}, "dofs": {"displacement": sol.dofs["displacement"]}}


def spon_flow(rng: np.random.Generator, resolution: int = 1, order: int = 2, geometry: str = "channel") -> dict:
    """One ``spon-flow`` sample on its channel refined ``resolution`` times (velocity in vector P2)."""
    if geometry != "channel":
        raise InputError(f"spon-flow has one geometry, channel (a random cylinder), got {geometry!r}")
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
def _write_mesh(g, prefix: str, mesh: Mesh) -> None:
    g.create_dataset(f"{prefix}/points", data=mesh.points)
    g.create_dataset(f"{prefix}/cells", data=mesh.cells).attrs["cell_type"] = mesh.cell_type
    for tag in mesh.tags.values():
        g.create_dataset(f"{prefix}/tags/{tag.name}", data=tag.indices).attrs["kind"] = tag.kind


def _read_mesh(g, prefix: str, source: str) -> Mesh:
    tags = {k: Tag(k, str(d.attrs["kind"]), d[()]) for k, d in g[f"{prefix}/tags"].items()} \
        if f"{prefix}/tags" in g else {}
    return Mesh(g[f"{prefix}/points"][()], str(g[f"{prefix}/cells"].attrs["cell_type"]), g[f"{prefix}/cells"][()],
                tags=tags, source=source)


def generate(family: str, n: int, out: str | Path, resolution: int = 1, order: int | None = None,
             geometry: str | None = None, seed: int = 0) -> Path:
    """Write ``n`` samples of ``family`` to ``out`` atomically; sample i
    depends only on (seed, i). ``order`` defaults to the family's (1; 2 for
    the Taylor–Hood velocity of ``spon-flow``)."""
    import h5py

    import graphfem

    if family not in GENERATORS:
        raise InputError(f"unknown SPON family {family!r}; choose one of {', '.join(GENERATORS)}")
    options = {"resolution": resolution}
    if order is not None:
        options["order"] = order
    if geometry is not None:
        options["geometry"] = geometry
    out = Path(out)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update({"problem": "poisson" if family == "spon-poisson" else family, "family": family,
                         "seed": seed, "count": n, "graphfem_version": graphfem.__version__})
        for i in range(n):
            s = GENERATORS[family](np.random.default_rng([seed, i]), **options)
            g = h5.create_group(f"sim_{i:06d}")
            g.attrs.update({"problem": h5.attrs["problem"], "family": family, "seed": seed, "index": i,
                            "params": json.dumps(s["params"]), "graphfem_version": graphfem.__version__})
            _write_mesh(g, "mesh", s["mesh"])
            _write_mesh(g, "coarse", s["coarse"])
            for group in ("inputs", "outputs", "dofs"):
                for key, value in s[group].items():
                    g.create_dataset(f"{group}/{key}", data=value)
    return out


@dataclass
class Record:
    """One stored sample: meshes, parameters and reference coefficients."""

    family: str
    coarse: Mesh
    mesh: Mesh
    params: dict
    dofs: np.ndarray


def read(path: str | Path) -> list[Record]:
    """All samples of a SPON data file."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise GraphfemError("no such dataset file", path)
    records = []
    with h5py.File(path, "r") as h5:
        family = str(h5.attrs.get("family", ""))
        if family not in GENERATORS:
            raise GraphfemError(f"not a SPON data file (family {family!r})", path)
        for name in sorted(k for k in h5 if k.startswith("sim_")):
            g = h5[name]
            field = FIELDS[family]
            records.append(Record(family, _read_mesh(g, "coarse", f"{path}:{name}"), _read_mesh(g, "mesh", f"{path}:{name}"),
                                  json.loads(g.attrs["params"]), g[f"dofs/{field}"][()]))
    return records


__all__ = ["FAMILIES", "FIELDS", "FLOW", "GENERATORS", "Record", "coarse_mesh", "draw_flow", "draw_hyperelastic",
           "draw_poisson", "flow_coarse_mesh", "fourier", "generate", "kappa_function", "read", "solve_case",
           "solve_flow_case", "solve_hyperelastic_case", "solve_poisson_case", "spon_flow", "spon_hyperelastic",
           "spon_poisson"]
