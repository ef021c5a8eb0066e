"""``graphfem solve poisson|elasticity|heat``: FE reference solves from the command line."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from graphfem.meshes.errors import InputError

solve_app = typer.Typer(help="Solve a PDE with finite elements on a mesh file and write the solution.",
                        no_args_is_help=True)

_OUTPUT = typer.Option(..., "-o", "--output", help="Result file: .vtu or .xdmf (.pvd for heat).")
_ORDER = typer.Option(None, "--order", help="Polynomial order 1 or 2 (default: P1 on linear, P2 on quadratic cells).")
_SOLVER = typer.Option("auto", "--solver", help="Linear solver: auto, direct, amg or cg.")


@contextlib.contextmanager
def _working(message: str) -> Iterator[None]:
    """A spinner on stderr while a solve runs."""
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


def _read(path: Path):
    from graphfem.meshes import read

    return read(path)


def _check_order(order: Optional[int]) -> None:
    if order not in (None, 1, 2):
        raise InputError(f"--order must be 1 or 2, got {order}")


def _report(solution, output: Path, seconds: float) -> None:
    from graphfem.physics.linear_solvers import describe

    typer.echo(f"solver: {describe(solution.info)}" if "method" in solution.info else "solver: done")
    typer.echo(f"wrote {output} ({', '.join(solution.fields)}) in {seconds:.2f} s")


@solve_app.command("poisson")
def solve_poisson(
    mesh: Path = typer.Argument(..., help="Mesh file."),
    output: Path = _OUTPUT,
    kappa: Optional[str] = typer.Option(None, "--kappa", help="Conductivity: number, mesh field or expression in x, y, z (default 1)."),
    source: Optional[str] = typer.Option(None, "--source", help="Source f: number, mesh field or expression (default 1)."),
    dirichlet: List[str] = typer.Option([], "--dirichlet", help="TAG=VALUE: u = VALUE on the tag (repeatable)."),
    neumann: List[str] = typer.Option([], "--neumann", help="TAG=VALUE: flux κ∂u/∂n = VALUE on the tag."),
    robin: List[str] = typer.Option([], "--robin", help="TAG=ALPHA,G: κ∂u/∂n + ALPHA u = G on the tag."),
    order: Optional[int] = _ORDER,
    solver: str = _SOLVER,
) -> None:
    """−∇·(κ∇u) = f. With no boundary option, u = 0 on the whole boundary. Writes the point field u."""
    from graphfem.physics import poisson
    from graphfem.physics.options import poisson_options

    _check_order(order)
    m = _read(mesh)
    options = poisson_options(m, kappa, source, dirichlet, neumann, robin)
    start = time.perf_counter()
    with _working(f"solving Poisson on {m.n_cells} {m.cell_type} cells"):
        solution = poisson(m, order=order, solver=solver, **options)
        solution.write(output)
    _report(solution, output, time.perf_counter() - start)


@solve_app.command("elasticity")
def solve_elasticity(
    mesh: Path = typer.Argument(..., help="Mesh file (2D or 3D)."),
    output: Path = _OUTPUT,
    E: float = typer.Option(..., "--E", help="Young's modulus."),
    nu: float = typer.Option(..., "--nu", help="Poisson's ratio."),
    plane_stress: bool = typer.Option(True, "--plane-stress/--plane-strain", help="2D model (default plane stress)."),
    fix: List[str] = typer.Option([], "--fix", help="Tag with zero displacement (repeatable)."),
    traction: List[str] = typer.Option([], "--traction", help="TAG=tx,ty[,tz]: surface traction on the tag."),
    body_force: Optional[str] = typer.Option(None, "--body-force", help="fx,fy[,fz]: force per volume."),
    order: Optional[int] = _ORDER,
    solver: str = _SOLVER,
) -> None:
    """Small-strain linear elasticity. Writes the point fields displacement and von_mises."""
    from graphfem.physics import elasticity
    from graphfem.physics.options import tag_values, vector

    _check_order(order)
    m = _read(mesh)
    for tag in fix:
        m.tag(tag)
    if not fix:
        raise InputError("--fix: give at least one tag to hold the body in place")
    tractions = tag_values(traction, "--traction", m, components=m.dim)
    start = time.perf_counter()
    with _working(f"solving elasticity on {m.n_cells} {m.cell_type} cells"):
        solution = elasticity(m, E=E, nu=nu, plane="stress" if plane_stress else "strain", fixed=list(fix),
                              traction=tractions or None, body_force=vector(body_force, m.dim, "--body-force"),
                              order=order, solver=solver)
        solution.write(output)
    _report(solution, output, time.perf_counter() - start)


@solve_app.command("heat")
def solve_heat(
    mesh: Path = typer.Argument(..., help="Mesh file."),
    output: Path = typer.Option(..., "-o", "--output", help="Time series: .pvd or .xdmf."),
    t_end: float = typer.Option(..., "--t-end", help="Final time."),
    dt: float = typer.Option(..., "--dt", help="Time step."),
    kappa: Optional[str] = typer.Option(None, "--kappa", help="Diffusivity: number, mesh field or expression (default 1)."),
    source: Optional[str] = typer.Option(None, "--source", help="Source: number, mesh field or expression (default 0)."),
    initial: Optional[str] = typer.Option(None, "--initial", help="Initial value: number, mesh field or expression (default 0)."),
    dirichlet: List[str] = typer.Option([], "--dirichlet", help="TAG=VALUE (repeatable); default u = 0 on the boundary."),
    neumann: List[str] = typer.Option([], "--neumann", help="TAG=VALUE: flux on the tag."),
    theta: float = typer.Option(0.5, "--theta", help="θ-scheme: 1 backward Euler, 0.5 Crank–Nicolson."),
    save_every: int = typer.Option(1, "--save-every", help="Write every k-th step."),
    order: Optional[int] = _ORDER,
    solver: str = _SOLVER,
) -> None:
    """∂u/∂t − ∇·(κ∇u) = f with the θ-scheme; writes u over time as PVD/XDMF."""
    from graphfem.physics import heat_solution
    from graphfem.physics.options import coefficient, tag_values

    _check_order(order)
    if not output.suffix.lower() in (".pvd", ".xdmf", ".xmf"):
        raise InputError(f"-o {output}: a time series is written as .pvd or .xdmf")
    if not (0.0 <= theta <= 1.0):
        raise InputError(f"--theta must lie in [0, 1], got {theta}")
    m = _read(mesh)
    params = dict(
        kappa=coefficient(kappa, m, "--kappa", 1.0), f=coefficient(source, m, "--source", 0.0),
        initial=coefficient(initial, m, "--initial", 0.0),
        dirichlet=tag_values(dirichlet, "--dirichlet", m) or None,
        neumann=tag_values(neumann, "--neumann", m) or None)
    start = time.perf_counter()
    with _working(f"time stepping to t = {t_end:g} on {m.n_cells} {m.cell_type} cells"):
        solution = heat_solution(m, t_end=t_end, dt=dt, theta=theta, save_every=save_every, order=order,
                                 solver=solver, **params)
        solution.write(output)
    _report(solution, output, time.perf_counter() - start)


def register(app: typer.Typer) -> None:
    """Add ``solve`` to the main app."""
    app.add_typer(solve_app, name="solve")
