"""``graphfem solve darcy | advection-diffusion | burgers``: transport solves from the command line.

Same conventions as ``graphfem solve poisson``: coefficients are numbers,
mesh fields or expressions in x, y, z; boundary conditions are ``TAG=VALUE``
pairs; results are written atomically (VTU for steady, PVD/XDMF for time
series); a bad option ends as one line on stderr.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from graphfem.cli.solve import _ORDER, _check_order, _read, _report, _working, solve_app
from graphfem.meshes.errors import InputError

_SERIES = (".pvd", ".xdmf", ".xmf")


def _vector_option(text: str, mesh, option: str):
    """``"1,0.5"`` -> array (dim,), or comma-separated expressions -> callable b(x) -> (dim, ...)."""
    from graphfem.physics.options import coefficient

    parts = [p.strip() for p in text.split(",")]
    if len(parts) != mesh.dim or not all(parts):
        raise InputError(f"{option}: expected {mesh.dim} comma-separated components, got {text!r}")
    comps = [coefficient(p, mesh, f"{option} component {i + 1}", 0.0) for i, p in enumerate(parts)]
    if any(isinstance(c, np.ndarray) for c in comps):
        raise InputError(f"{option}: components must be numbers or expressions, not mesh fields")
    if all(isinstance(c, float) for c in comps):
        return np.array(comps)

    def value(x):
        return np.stack([np.broadcast_to(c(x) if callable(c) else c, np.shape(x[0])) for c in comps])

    return value


def _check_output(output: Path, series: bool) -> None:
    suffix = output.suffix.lower()
    if series and suffix not in _SERIES:
        raise InputError(f"-o {output}: a time series is written as .pvd or .xdmf")
    if not series and suffix not in (".vtu", ".xdmf", ".xmf"):
        raise InputError(f"-o {output}: a steady result is written as .vtu or .xdmf")


@solve_app.command("darcy")
def solve_darcy(
    mesh: Path = typer.Argument(..., help="Mesh file."),
    output: Path = typer.Option(..., "-o", "--output", help="Result file: .vtu or .xdmf."),
    a: Optional[str] = typer.Option(None, "--a", help="Permeability: number, point/cell field of the mesh or expression (default 1)."),
    source: Optional[str] = typer.Option(None, "--source", help="Source f: number, field or expression (default 10)."),
    dirichlet: List[str] = typer.Option([], "--dirichlet", help="TAG=VALUE: u = VALUE on the tag (repeatable)."),
    neumann: List[str] = typer.Option([], "--neumann", help="TAG=VALUE: flux a∂u/∂n = VALUE on the tag."),
    order: Optional[int] = _ORDER,
    solver: str = typer.Option("auto", "--solver", help="Linear solver: auto, direct, amg or cg."),
) -> None:
    """−∇·(a∇u) = f. With no boundary option, u = 0 on the whole boundary. Writes u; prints the net outflow."""
    from graphfem.physics.darcy import darcy
    from graphfem.physics.options import coefficient, tag_values

    _check_order(order)
    _check_output(output, series=False)
    m = _read(mesh)
    perm = coefficient(a, m, "--a", 1.0)
    f = coefficient(source, m, "--source", 10.0)
    start = time.perf_counter()
    with _working(f"solving Darcy on {m.n_cells} {m.cell_type} cells"):
        solution = darcy(m, perm, f, dirichlet=tag_values(dirichlet, "--dirichlet", m) or None,
                         neumann=tag_values(neumann, "--neumann", m) or None, order=order, solver=solver)
        solution.write(output)
    if "outflow" in solution.info:
        typer.echo(f"net outflow of q = -a grad u: {solution.info['outflow']:.6g}")
    _report(solution, output, time.perf_counter() - start)


@solve_app.command("advection-diffusion")
def solve_advection_diffusion(
    mesh: Path = typer.Argument(..., help="Mesh file."),
    output: Path = typer.Option(..., "-o", "--output", help=".vtu (steady) or .pvd/.xdmf (with --t-end)."),
    velocity: str = typer.Option(..., "--velocity", help="b: dim comma-separated numbers or expressions, e.g. 1,0."),
    kappa: Optional[str] = typer.Option(None, "--kappa", help="Diffusivity: number, field or expression (default 1)."),
    source: Optional[str] = typer.Option(None, "--source", help="Source: number, field or expression (default 0)."),
    initial: Optional[str] = typer.Option(None, "--initial", help="Initial value (transient): number, field or expression (default 0)."),
    t_end: Optional[float] = typer.Option(None, "--t-end", help="Final time; omit for the steady problem."),
    dt: Optional[float] = typer.Option(None, "--dt", help="Time step (with --t-end)."),
    theta: float = typer.Option(0.5, "--theta", help="θ-scheme: 1 backward Euler, 0.5 Crank–Nicolson."),
    dirichlet: List[str] = typer.Option([], "--dirichlet", help="TAG=VALUE (repeatable); default u = 0 on the boundary."),
    neumann: List[str] = typer.Option([], "--neumann", help="TAG=VALUE: flux κ∂u/∂n on the tag."),
    stabilization: str = typer.Option("auto", "--stabilization", help="auto (SUPG where the cell Péclet number > 1), supg or none."),
    save_every: int = typer.Option(1, "--save-every", help="Write every k-th step."),
    order: Optional[int] = _ORDER,
) -> None:
    """b·∇u − κΔu = f (steady), or ∂u/∂t + b·∇u − κΔu = f with --t-end and --dt."""
    from graphfem.physics.transport import advection_diffusion
    from graphfem.physics.options import coefficient, tag_values

    _check_order(order)
    transient = t_end is not None
    _check_output(output, series=transient)
    if transient and dt is None:
        raise InputError("--t-end needs --dt")
    m = _read(mesh)
    params = dict(kappa=coefficient(kappa, m, "--kappa", 1.0), f=coefficient(source, m, "--source", 0.0),
                  dirichlet=tag_values(dirichlet, "--dirichlet", m) or None,
                  neumann=tag_values(neumann, "--neumann", m) or None)
    if transient:
        params.update(initial=coefficient(initial, m, "--initial", 0.0), t_end=t_end, dt=dt, theta=theta,
                      save_every=save_every)
    b = _vector_option(velocity, m, "--velocity")
    start = time.perf_counter()
    with _working(f"solving advection-diffusion on {m.n_cells} {m.cell_type} cells"):
        solution = advection_diffusion(m, b, stabilization=stabilization, order=order, **params)
        solution.write(output)
    typer.echo(f"cell Péclet number up to {solution.info['peclet_max']:.3g}; stabilization: "
               f"{solution.info['stabilization']}")
    _report(solution, output, time.perf_counter() - start)


@solve_app.command("burgers")
def solve_burgers(
    mesh: Path = typer.Argument(..., help="Mesh file (1D: scalar u; 2D/3D: vector u)."),
    output: Path = typer.Option(..., "-o", "--output", help="Time series: .pvd or .xdmf."),
    nu: float = typer.Option(..., "--nu", help="Viscosity ν > 0."),
    initial: str = typer.Option(..., "--initial", help="u0: 1D a number, field or expression; 2D/3D dim comma-separated numbers or expressions."),
    t_end: float = typer.Option(..., "--t-end", help="Final time."),
    dt: float = typer.Option(..., "--dt", help="Time step."),
    theta: float = typer.Option(0.5, "--theta", help="θ-scheme: 1 backward Euler, 0.5 Crank–Nicolson."),
    dirichlet: List[str] = typer.Option([], "--dirichlet", help="TAG=VALUE (1D) or TAG=VX,VY (2D); default u = 0 on the boundary."),
    method: str = typer.Option("newton", "--method", help="newton or picard."),
    save_every: int = typer.Option(1, "--save-every", help="Write every k-th step."),
    order: Optional[int] = _ORDER,
) -> None:
    """∂u/∂t + (u·∇)u = νΔu by the θ-scheme with Newton per step; prints the iteration counts."""
    from graphfem.physics.transport import burgers
    from graphfem.physics.options import coefficient, tag_values

    _check_order(order)
    _check_output(output, series=True)
    m = _read(mesh)
    if m.dim == 1:
        u0 = coefficient(initial, m, "--initial", 0.0)
        bc = tag_values(dirichlet, "--dirichlet", m)
    else:
        u0 = _vector_option(initial, m, "--initial")
        bc = tag_values(dirichlet, "--dirichlet", m, components=m.dim)
    start = time.perf_counter()
    with _working(f"time stepping Burgers to t = {t_end:g} on {m.n_cells} {m.cell_type} cells"):
        solution = burgers(m, nu, initial=u0, t_end=t_end, dt=dt, theta=theta, dirichlet=bc or None,
                           method=method, save_every=save_every, order=order)
        solution.write(output)
    its = solution.info["iterations"]
    typer.echo(f"{method}: {solution.info['steps']} steps, {min(its)}-{max(its)} iterations per step, "
               f"final residual {solution.info['residuals'][-1]:.2e}")
    typer.echo(f"wrote {output} (u) in {time.perf_counter() - start:.2f} s")


def register(app: typer.Typer) -> None:
    """The commands are added to ``solve_app`` on import; ``solve`` itself is registered by cli_solve."""
