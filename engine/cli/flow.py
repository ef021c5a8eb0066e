"""``graphfem solve stokes|navier-stokes``: Taylor–Hood flow solves from the command line.

Boundary conditions go by tag: ``--inflow inlet=0.3`` is a parabolic profile
with peak 0.3 along the inward normal of a straight tag, ``--inflow "inlet=EXPR"``
an expression in x, y for the inward normal speed and ``--inflow "inlet=EXPR,EXPR"``
the two velocity components; ``--no-slip TAG`` and ``--outflow TAG``
(do-nothing) are repeatable.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from graphfem.cli.solve import _read, _working, solve_app
from graphfem.meshes.errors import InputError


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside parentheses: ``"maximum(x,0),y"`` -> two parts."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + [current]


def inflow_options(pairs: List[str], mesh) -> dict:
    """``["inlet=0.3"]`` -> {"inlet": 0.3} (parabolic peak); an expression gives
    the inward normal speed, two comma-separated expressions the velocity."""
    from graphfem.physics.navier_stokes import parabolic_inflow
    from graphfem.physics.options import expression

    out = {}
    for pair in pairs:
        tag, sep, value = (s.strip() for s in pair.partition("="))
        if not sep or not tag or not value:
            raise InputError(f"--inflow: expected TAG=VALUE, got {pair!r}")
        mesh.tag(tag)
        parts = _split_top_level(value)
        if len(parts) == 1:
            try:
                out[tag] = float(value)
            except ValueError:
                speed = expression(value, f"--inflow {tag}")
                normal_of = parabolic_inflow(mesh, tag, 1.0)  # its direction is the inward normal

                def profile(x, speed=speed, normal_of=normal_of):
                    direction = normal_of(x)
                    direction /= np.maximum(np.linalg.norm(direction, axis=0), 1e-300)
                    n = np.median(direction[:, np.linalg.norm(direction, axis=0) > 0.5], axis=1)
                    return n[:, None] * speed(x)[None]

                out[tag] = profile
            else:
                if not np.isfinite(out[tag]):
                    raise InputError(f"--inflow {tag}: {value!r} is not a finite number")
        elif len(parts) == 2:
            fx, fy = (expression(p.strip(), f"--inflow {tag}") for p in parts)
            out[tag] = lambda x, fx=fx, fy=fy: np.stack([fx(x), fy(x)])
        else:
            raise InputError(f"--inflow {tag}: give a peak speed, one expression or two, got {value!r}")
    return out


def _check_tags(mesh, tags: List[str]) -> None:
    for tag in tags:
        mesh.tag(tag)


def _report(solution, output: Path, seconds: float, obstacle: Optional[str], u_mean: Optional[float],
            length: Optional[float]) -> None:
    info = solution.info
    typer.echo(f"Taylor-Hood P2-P1: {info['dofs']} dofs ({info['n']} free), {info['method']} linear solver")
    for h in info.get("newton", []):
        typer.echo(f"  Newton {h['iteration']}: residual {h['residual']:.3e}"
                   + (f", step {h['step']:g}" if h["step"] else "")
                   + (f", {h['linear_iterations']} linear iterations" if h["linear_iterations"] else ""))
    if obstacle is not None:
        if "forces" in info:
            Fx, Fy = info["forces"][-1, 1:]
        else:
            Fx, Fy = solution.forces(obstacle)
        typer.echo(f"force on {obstacle}: F_x = {Fx:.6e}, F_y = {Fy:.6e}")
        if u_mean and length:
            scale = 2.0 / (u_mean ** 2 * length)
            typer.echo(f"c_D = {scale * Fx:.5f}, c_L = {scale * Fy:.5f} (mean velocity {u_mean:g}, length {length:g})")
    typer.echo(f"wrote {output} (velocity, pressure) in {seconds:.2f} s")


def _flow_command(steady: bool):
    def command(
        mesh: Path = typer.Argument(..., help="2D triangle or quad mesh file with facet tags."),
        output: Path = typer.Option(..., "-o", "--output", help="Result: .vtu/.xdmf (steady), .pvd/.xdmf (transient)."),
        inflow: List[str] = typer.Option([], "--inflow", help="TAG=UMAX (parabolic), TAG=EXPR (normal speed) or TAG=EXPR,EXPR."),
        no_slip: List[str] = typer.Option([], "--no-slip", help="Tag with u = 0 (repeatable)."),
        outflow: List[str] = typer.Option([], "--outflow", help="Tag with the do-nothing condition (repeatable)."),
        nu: float = typer.Option(..., "--nu", help="Kinematic viscosity."),
        obstacle: Optional[str] = typer.Option(None, "--obstacle", help="Tag whose drag and lift are printed."),
        u_mean: Optional[float] = typer.Option(None, "--u-mean", help="Reference velocity of c_D, c_L (default 2/3 of the parabolic peak)."),
        length: Optional[float] = typer.Option(None, "--length", help="Reference length of c_D, c_L (default: the obstacle's extent across the flow)."),
        t_end: Optional[float] = typer.Option(None, "--t-end", help="Final time: transient BDF2 (navier-stokes only)."),
        dt: Optional[float] = typer.Option(None, "--dt", help="Time step of the transient run."),
        save_every: int = typer.Option(1, "--save-every", help="Write every k-th step (transient)."),
        solver: str = typer.Option("auto", "--solver", help="Linear solver: auto, direct or iterative."),
    ) -> None:
        from graphfem.physics.navier_stokes import navier_stokes, navier_stokes_transient, stokes

        transient = t_end is not None or dt is not None
        if transient and (t_end is None or dt is None):
            raise InputError("a transient run needs both --t-end and --dt")
        if transient and not steady:
            raise InputError("stokes is steady; use navier-stokes for --t-end/--dt")
        suffix = output.suffix.lower()
        if transient and suffix not in (".pvd", ".xdmf", ".xmf"):
            raise InputError(f"-o {output}: a time series is written as .pvd or .xdmf")
        if not transient and suffix not in (".vtu", ".xdmf", ".xmf"):
            raise InputError(f"-o {output}: write a steady flow as .vtu or .xdmf")
        if solver not in ("auto", "direct", "iterative"):
            raise InputError(f"--solver must be auto, direct or iterative, got {solver!r}")
        m = _read(mesh)
        _check_tags(m, list(no_slip) + list(outflow) + ([obstacle] if obstacle else []))
        flows = inflow_options(inflow, m)
        if obstacle is not None and u_mean is None:
            peaks = [v for v in flows.values() if isinstance(v, float)]
            u_mean = 2.0 * peaks[0] / 3.0 if peaks else None
        if obstacle is not None and length is None:
            nodes = m.points[m.tag_nodes(obstacle)]
            length = float(np.ptp(nodes[:, 1])) if len(nodes) else None
        params = dict(nu=nu, inflow=flows, no_slip=list(no_slip), outflow=list(outflow), solver=solver)
        start = time.perf_counter()
        with _working(f"solving {'Navier-Stokes' if steady else 'Stokes'} on {m.n_cells} {m.cell_type} cells"):
            if transient:
                solution = navier_stokes_transient(m, t_end=t_end, dt=dt, obstacle=obstacle, save_every=save_every,
                                                   **params)
                solution.trajectory.write(output)
            else:
                solution = (navier_stokes if steady else stokes)(m, **params)
                solution.write(output)
        _report(solution, output, time.perf_counter() - start, obstacle, u_mean, length)

    return command


def register(app: typer.Typer) -> None:
    """Add ``solve stokes`` and ``solve navier-stokes`` to the existing ``solve`` group (once)."""
    existing = {c.name for c in solve_app.registered_commands}
    if "stokes" not in existing:
        solve_app.command("stokes", help="Stokes flow −νΔu + ∇p = 0, ∇·u = 0 (Taylor–Hood P2–P1); writes velocity and pressure.")(_flow_command(False))
    if "navier-stokes" not in existing:
        solve_app.command("navier-stokes", help="Incompressible Navier–Stokes: steady by Newton (history printed), or transient BDF2 with --t-end/--dt written as PVD.")(_flow_command(True))
