"""``graphfem solve PROBLEM MESH -o OUT [options]``: one command per registered problem.

Each command is built from its problem's :class:`~graphfem.physics.problem.Option`
specs (the same specs ``graphfem predict`` and ``graphfem generate`` parse),
so a surrogate takes exactly the options of the solver it replaces. The
command reads the mesh, parses the options against it, solves with a
spinner on stderr, writes the result atomically (VTU/XDMF for one state,
PVD/XDMF for a time series) and prints the problem's report lines.
"""
from __future__ import annotations

import contextlib
import inspect
import time
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from graphfem.meshes.errors import InputError

solve_app = typer.Typer(help="Solve a PDE with finite elements on a mesh file and write the solution.",
                        no_args_is_help=True)

_SERIES = (".pvd", ".xdmf", ".xmf")
_STEADY = (".vtu", ".xdmf", ".xmf")


@contextlib.contextmanager
def working(message: str) -> Iterator[None]:
    """A spinner on stderr while a solve runs."""
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


def check_output(output: Path, series: bool) -> None:
    """Refuse an output suffix that cannot hold the result (before any work)."""
    suffix = output.suffix.lower()
    if series and suffix not in _SERIES:
        raise InputError(f"-o {output}: a time series is written as .pvd or .xdmf")
    if not series and suffix not in _STEADY:
        raise InputError(f"-o {output}: a steady result is written as .vtu or .xdmf")


def _parameter(opt) -> inspect.Parameter:
    """The typer parameter of one problem option (values stay strings until ``Problem.parse``)."""
    help_text = opt.help + (" (required)" if opt.required else "")
    if opt.kind == "flag":
        flags = opt.cli_flag if "/" in opt.cli_flag else f"{opt.cli_flag}/--no-{opt.cli_flag[2:]}"
        default, annotation = typer.Option(None, flags, help=help_text), Optional[bool]
    elif opt.repeatable:
        metavar = {"tag-values": "TAG=VALUE", "tag-vectors": "TAG=V1,V2", "tags": "TAG"}[opt.kind]
        default, annotation = typer.Option([], opt.cli_flag, help=help_text, metavar=metavar), List[str]
    else:
        vector = ",".join(f"V{k + 1}" for k in range(opt.components)) if opt.components else "V1,V2[,V3]"
        metavar = {"field": "FIELD", "number": "NUMBER", "integer": "N", "choice": "|".join(opt.choices),
                   "vector": vector}[opt.kind]
        default, annotation = typer.Option(None, opt.cli_flag, help=help_text, metavar=metavar), Optional[str]
    return inspect.Parameter(opt.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def command_for(problem):
    """The ``graphfem solve <problem>`` function, its signature built from the option specs."""

    def command(mesh: Path, output: Path, **raw) -> None:
        from graphfem.meshes import read

        m = read(mesh)
        given = {k: v for k, v in raw.items() if v is not None and v != []}
        params = problem.parse(m, given)
        check_output(output, problem.is_transient(params))
        start = time.perf_counter()
        with working(f"solving {problem.name} on {m.n_cells} {m.cell_type} cells"):
            solution = problem.solve(m, **problem.kwargs(params))
            solution.write(output)
        for line in problem.report(solution):
            typer.echo(line)
        fields = solution.trajectory.fields if solution.trajectory is not None else solution.fields
        typer.echo(f"wrote {output} ({', '.join(fields)}) in {time.perf_counter() - start:.2f} s")

    series = "a time series: .pvd or .xdmf" if problem.options and any(o.role == "time" for o in problem.options) \
        else "the result: .vtu or .xdmf"
    parameters = [
        inspect.Parameter("mesh", inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                          default=typer.Argument(..., help="Mesh file (any format meshio reads).",
                                                 metavar="MESH")),
        inspect.Parameter("output", inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                          default=typer.Option(..., "-o", "--output", help=f"File to write: {series}.")),
        *(_parameter(opt) for opt in problem.options),
    ]
    command.__signature__ = inspect.Signature(parameters)
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__name__ = f"solve_{problem.name.replace('-', '_')}"
    command.__doc__ = (problem.summary[:1].upper() + problem.summary[1:] + ".\n\n" if problem.summary else "") + \
        "The same options drive graphfem predict (a surrogate of this problem) and graphfem generate." + \
        (" A TAG is a tag of the mesh (graphfem info lists them), boundary (every boundary facet) or a condition "
         "on the coordinates selecting boundary facets: --dirichlet \"x<1e-9\"=0."
         if any(o.repeatable for o in problem.options) else "")
    return command


def _register_problems() -> None:
    from graphfem.physics.problem import PROBLEMS, problems

    for name in problems():
        problem = PROBLEMS[name]
        if problem.solve_command and problem.options:
            solve_app.command(name)(command_for(problem))


_register_problems()


def register(app: typer.Typer) -> None:
    """Add ``solve`` to the main app."""
    app.add_typer(solve_app, name="solve")
