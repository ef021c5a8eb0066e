r"""Transient flow past a cylinder in the DFG channel: the Text2PDE data problem.

The channel [0, 2.2] × [0, 0.41] minus a disc of radius r about (cx, cy)
(:func:`graphfem.physics.channel.channel_mesh`, straight triangles), a parabolic
inflow of peak U on ``inlet``, no slip on ``walls`` and ``cylinder``, do-nothing
``outlet``; ν = 10⁻³ by default. From the Stokes flow with these data, BDF2 with
extrapolated convection (:func:`graphfem.physics.navier_stokes.navier_stokes_transient`)
runs to ``t_end`` and keeps every ``save_every``-th step: with the defaults
(t_end = 2, Δt = 0.025, every 10th) a trajectory of 9 frames. The Reynolds number
is Re = ū·2r/ν with the mean inflow ū = 2U/3.

Fields: ``u``, ``v`` (the velocity components, m/s) and ``p`` (kinematic
pressure, m²/s²), (T, n) at the mesh nodes.

:meth:`CylinderWake.sample` draws cx ∈ [0.15, 0.35], cy ∈ [0.15, 0.26],
r ∈ [0.03, 0.06], U ∈ [0.75, 1.5] (Re ∈ [30, 120]) and 16 or 24 cells around
the cylinder (about 130 to 280 nodes); a trajectory takes seconds on one core.
:meth:`CylinderWake.describe` writes the templated caption of Text2PDE's cylinder
data (radius, position, inlet velocity, Re rounded to 10, a regime word): its
numbers are the parameters, so conditioning on it is parameter conditioning.

Dirichlet data (:func:`boundary_values`, :meth:`CylinderWake.features`): u = v = 0 on
``walls`` and ``cylinder``, the parabolic profile of peak U on ``inlet``, p free; constant
in time, and what a generated trajectory is made to hold exactly.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

from graphfem.meshes import Mesh, Trajectory
from graphfem.meshes.errors import InputError

from .problem import Features, Option, Problem, Solution, register_problem

#: ν of the data sets
NU = 1e-3


def cylinder_of(mesh: Mesh) -> tuple[tuple[float, float], float]:
    """((cx, cy), r) of the mesh's ``cylinder`` facet tag: the least-squares circle through its nodes
    (x² + y² + D x + E y + F = 0, exact for nodes on a circle)."""
    try:
        nodes = mesh.points[mesh.tag_nodes("cylinder")][:, :2]
    except Exception:  # noqa: BLE001 - a mesh without the tag: one line
        nodes = np.zeros((0, 2))
    if len(nodes) < 3:
        raise InputError("cylinder-wake needs a channel mesh with a 'cylinder' facet tag (graphfem mesh channel)",
                         mesh.source)
    A = np.column_stack([nodes, np.ones(len(nodes))])
    D, E, F = np.linalg.lstsq(A, -(nodes ** 2).sum(1), rcond=None)[0]
    cx, cy = -D / 2, -E / 2
    return (float(cx), float(cy)), float(np.sqrt(max(cx ** 2 + cy ** 2 - F, 0.0)))


def cylinder_mismatch(cylinder: tuple[tuple[float, float], float], radius: float | None, centre) -> str | None:
    """Why a stated ``radius`` or ``centre`` (None: not stated) is not the mesh's ``cylinder`` ((cx, cy), r)
    of :func:`cylinder_of`: a radius off by more than 5 % or a centre by more than 0.2 r; None when both fit."""
    (cx, cy), r = cylinder
    if radius is not None and abs(radius - r) > 0.05 * r:
        return f"radius {radius:g}: the mesh's cylinder has radius {r:.4g}"
    if centre is not None and np.hypot(centre[0] - cx, centre[1] - cy) > 0.2 * r:
        return f"centre ({centre[0]:g}, {centre[1]:g}): the mesh's cylinder is at ({cx:.4g}, {cy:.4g})"
    return None


def reynolds(u_max: float, radius: float, nu: float = NU) -> float:
    """Re = ū·2r/ν with ū = 2U/3 the mean of the parabolic inflow of peak U."""
    return 2.0 * u_max / 3.0 * 2.0 * radius / nu


def regime(re: float) -> str:
    """Text2PDE's regime word: laminar below 200, transitional below 350, else turbulent."""
    return "laminar" if re < 200 else ("transitional" if re < 350 else "turbulent")


def boundary_values(mesh: Mesh, u_max: float) -> tuple[np.ndarray, np.ndarray]:
    """The Dirichlet data of the fields (u, v, p) at the nodes, the solver's
    (:func:`graphfem.physics.navier_stokes.dfg_setup`): u = v = 0 on ``walls`` and
    ``cylinder``, (u, v) = U·4s(1 − s)·n_in on ``inlet`` (zero at its ends, where it meets
    the walls), p free.

    Returns:
        mask (n, 3) bool (True = a value the problem fixes), values (n, 3) (0 elsewhere).
    """
    from .navier_stokes import inflow_velocity

    mask, values = np.zeros((mesh.n_points, 3), bool), np.zeros((mesh.n_points, 3))
    for tag in ("walls", "cylinder", "inlet"):
        if tag not in mesh.tags:
            raise InputError(f"cylinder-wake needs the facet tags inlet, walls and cylinder (graphfem mesh channel); "
                             f"the mesh has no {tag!r}", mesh.source)
        nodes = mesh.tag_nodes(tag)
        mask[nodes, :2] = True
        values[nodes, :2] = 0.0 if tag != "inlet" else inflow_velocity(mesh, tag, float(u_max),
                                                                       mesh.points[nodes, :2].T).T
    return mask, values


def channel_tags(mesh: Mesh) -> Mesh:
    """``mesh`` with the channel's facet tags from its geometry where one of ``inlet``, ``outlet``,
    ``walls``, ``cylinder`` is missing (a mesh read back from a VTU/PVD series carries none): inlet
    x = x_min, outlet x = x_max, walls y = y_min or y_max, cylinder the rest of the boundary."""
    if all(t in mesh.tags for t in ("inlet", "outlet", "walls", "cylinder")):
        return mesh
    (x0, y0), (x1, y1) = (np.asarray(v, float)[:2] for v in mesh.bounding_box)
    tol = 1e-9 * max(x1 - x0, y1 - y0)
    on = {"inlet": lambda x: np.abs(x[:, 0] - x0) < tol, "outlet": lambda x: np.abs(x[:, 0] - x1) < tol,
          "walls": lambda x: (np.abs(x[:, 1] - y0) < tol) | (np.abs(x[:, 1] - y1) < tol)}
    box = lambda x: on["inlet"](x) | on["outlet"](x) | on["walls"](x)  # noqa: E731
    return mesh.with_boundary_tags(**on, cylinder=lambda x: ~box(x))


def inlet_peak(mesh: Mesh, u: np.ndarray, v: np.ndarray) -> float:
    """The peak U of the parabolic inflow that best fits the velocity (u, v) (n,) on ``inlet``:
    U = ⟨w, φ⟩/⟨φ, φ⟩ over the inlet nodes, φ the profile of peak 1 and w the velocity there."""
    _, unit = boundary_values(mesh, 1.0)
    nodes = mesh.tag_nodes("inlet")
    phi, w = unit[nodes, :2].ravel(), np.column_stack([u, v])[nodes].ravel()
    return float(w @ phi / (phi @ phi))


#: the caption's numbers, in order, with the words that introduce them
CAPTION_NUMBERS = ("radius", "x", "y", "inlet velocity", "Reynolds number")

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def parse_caption(text: str) -> dict[str, float]:
    """The numbers of a caption by keyword: ``radius R``, ``at (X, Y)``, ``velocity U`` (or ``speed U``),
    optionally ``Reynolds number RE``. A missing one is a one-line :class:`InputError` naming it."""
    found: dict[str, float] = {}
    patterns = {"radius": rf"radius\s*(?:of\s*|=\s*)?({_NUMBER})",
                "position": rf"at\s*\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)",
                "inlet velocity": rf"(?:velocity|speed)\s*(?:of\s*|=\s*)?({_NUMBER})",
                "Reynolds number": rf"reynolds\s*number\s*(?:of\s*|is\s*|=\s*)?({_NUMBER})"}
    for name, pattern in patterns.items():
        m = re.search(pattern, text, flags=re.IGNORECASE)
        if m is None:
            if name == "Reynolds number":
                continue
            example = {"radius": "'radius 0.05'", "position": "'at (0.2, 0.2)'",
                       "inlet velocity": "'inlet velocity 1.2'"}[name]
            raise InputError(f"prompt: no {name} in {text!r} (say {example})")
        if name == "position":
            found["x"], found["y"] = float(m.group(1)), float(m.group(2))
        else:
            found[name] = float(m.group(1))
    return found


@register_problem
class CylinderWake(Problem):
    """Transient Navier–Stokes past a cylinder (see the module docstring)."""

    name = "cylinder-wake"
    summary = "transient flow past a cylinder in the DFG channel (BDF2 Taylor-Hood)"
    fields = {"u": "m/s", "v": "m/s", "p": "m^2/s^2"}
    dims = (2,)
    geometries = ("channel",)
    options = (
        Option("u_max", "number", None, "Peak U of the parabolic inflow on 'inlet' (m/s).", required=True),
        Option("nu", "number", NU, "Kinematic viscosity nu > 0."),
        Option("radius", "number", None, "Cylinder radius (checked against the mesh's 'cylinder' tag; default: "
               "the mesh's)."),
        Option("centre", "vector", None, "Cylinder centre CX,CY (checked against the mesh; default: the mesh's)."),
        Option("t_end", "number", 2.0, "Final time.", role="time"),
        Option("dt", "number", 0.025, "Time step.", role="time"),
        Option("save_every", "integer", 10, "Keep every k-th step.", role="time"),
    )

    def check(self, mesh: Mesh, params: dict) -> None:
        (cx, cy), r = cylinder = cylinder_of(mesh)
        mismatch = cylinder_mismatch(cylinder, params["radius"], params["centre"])
        if mismatch:
            raise InputError(f"--{mismatch}", mesh.source)
        if not params["u_max"] > 0 or not params["nu"] > 0:
            raise InputError("--u-max and --nu must be positive", mesh.source)
        if not params["dt"] > 0 or not params["t_end"] > params["dt"] or params["save_every"] < 1:
            raise InputError("need 0 < --dt < --t-end and --save-every >= 1", mesh.source)
        params["radius"] = float(r if params["radius"] is None else params["radius"])
        params["centre"] = np.array([cx, cy]) if params["centre"] is None else np.asarray(params["centre"], float)

    def is_transient(self, params) -> bool:
        return True

    def features(self, mesh: Mesh, params) -> Features:
        """The generic encoding, with the Dirichlet data of :func:`boundary_values` (n, 3)."""
        from dataclasses import replace

        mask, values = boundary_values(mesh, params["u_max"])
        return replace(super().features(mesh, params), dirichlet=mask, dirichlet_values=values)

    def essential(self, mesh: Mesh, raw):
        """(n, 3) mask and values of u, v, p the solver fixes in every frame (:func:`boundary_values`)."""
        return boundary_values(mesh, self.parse(mesh, raw)["u_max"])

    def solve(self, mesh: Mesh, *, u_max: float, nu: float = NU, radius: float | None = None, centre=None,
              t_end: float = 2.0, dt: float = 0.025, save_every: int = 10) -> Solution:
        """The BDF2 trajectory (T frames) with fields u, v, p (T, n)."""
        from .navier_stokes import dfg_setup, navier_stokes_transient

        sol = navier_stokes_transient(mesh, nu=nu, t_end=t_end, dt=dt, save_every=save_every, initial="stokes",
                                      **dfg_setup(u_max))
        tr = sol.trajectory
        vel, p = np.asarray(tr.fields["velocity"]), np.asarray(tr.fields["pressure"])
        fields = {"u": vel[..., 0], "v": vel[..., 1], "p": p}
        trajectory = Trajectory(tr.times, fields, mesh, units=dict(self.fields))
        last = {k: v[-1] for k, v in fields.items()}
        return Solution(sol.space, sol.dofs, last, dict(self.fields), sol.info, trajectory)

    def sample(self, rng: np.random.Generator, geometry: str | None = None, resolution: int | None = None):
        """A random cylinder and inflow; 16 or 24 cells around the cylinder, or ``resolution`` (rounded to a
        multiple of 8; 64 gives about 2,000 nodes)."""
        from .channel import channel_mesh

        self.geometry(geometry)
        cx, cy, r = float(rng.uniform(0.15, 0.35)), float(rng.uniform(0.15, 0.26)), float(rng.uniform(0.03, 0.06))
        u_max = float(rng.uniform(0.75, 1.5))
        n_around = 8 * int(rng.integers(2, 4)) if resolution is None else 8 * max(2, round(int(resolution) / 8))
        mesh = channel_mesh(n_around, order=1, centre=(cx, cy), radius=r)
        return mesh, {"u_max": u_max, "nu": NU, "radius": r, "centre": [cx, cy]}

    def describe(self, params: Mapping[str, Any] | None = None) -> str:
        """The templated caption: 'Fluid passes over a cylinder of radius R at (X, Y) with an inlet velocity
        of U m/s; the Reynolds number is RE, so the flow is laminar.' (Re rounded to 10)."""
        p = dict(params or {})
        missing = [k for k in ("u_max", "radius", "centre") if p.get(k) is None]
        if missing:
            raise InputError(f"describe: cylinder-wake needs {', '.join(missing)}")
        r, (cx, cy), u = float(p["radius"]), (float(v) for v in p["centre"]), float(p["u_max"])
        re_ = round(reynolds(u, r, float(p.get("nu") or NU)), -1)
        return (f"Fluid passes over a cylinder of radius {r:.4f} at ({cx:.3f}, {cy:.3f}) with an inlet velocity "
                f"of {u:.3f} m/s; the Reynolds number is {re_:.0f}, so the flow is {regime(re_)}.")


__all__ = ["CAPTION_NUMBERS", "CylinderWake", "NU", "boundary_values", "channel_tags", "cylinder_mismatch",
           "cylinder_of", "inlet_peak", "parse_caption", "regime", "reynolds"]
