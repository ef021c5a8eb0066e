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


def warn_order(problem, mesh, params: dict) -> None:
    """Warn where ``--order 2`` on a linear mesh writes the P2 solution at the mesh's vertices only."""
    import warnings

    if params.get("order") == 2 and mesh.order == 1:
        warnings.warn(f"--order 2 on a linear {mesh.cell_type} mesh: {problem.name} is solved in P2, but the file "
                      f"holds its values at the {mesh.n_points} vertices only (the edge nodes are not written); "
                      "give a quadratic mesh to write every P2 value", stacklevel=2)


def estimate_series(mesh, output: Path, steps: int, save_every: int, components: int) -> tuple[int, float]:
    """(frames, bytes) of the series a transient solve writes: 1 + ceil(steps / save_every) frames; a
    ``.pvd`` step repeats the mesh (points and cells) in each VTU, an ``.xdmf`` stores it once.

    Raises:
        InputError: the series would not fit on the output's disk (before the first step).
    """
    import shutil

    from graphfem.physics.timesteps import human_bytes, saved_frames

    frames = saved_frames(steps, save_every)
    per_frame = 8.0 * mesh.n_points * components
    if output.suffix.lower() == ".pvd":
        per_frame += 24.0 * mesh.n_points + 9.0 * mesh.cells.size + 600  # points, connectivity, XML
    size = frames * per_frame
    folder = output.resolve().parent
    free = shutil.disk_usage(folder if folder.exists() else Path.cwd()).free
    if size > free:
        raise InputError(f"{steps} time steps write {frames} frames of {mesh.n_points} nodes: about "
                         f"{human_bytes(size)}, more than the {human_bytes(free)} free on the disk of {folder}; "
                         "raise --save-every or --dt")
    return frames, size


def _check_series_size(problem, mesh, kwargs: dict, output: Path) -> int:
    """The frames a transient solve will write (0 when its time grid is not given by t_end and dt), after
    :func:`estimate_series` has checked that they fit on the disk."""
    import warnings

    from graphfem.physics.timesteps import time_steps

    if kwargs.get("t_end") is None or kwargs.get("dt") is None:
        return 0
    with warnings.catch_warnings():  # the solver itself warns about a changed step
        warnings.simplefilter("ignore")
        steps, _ = time_steps(kwargs["t_end"], kwargs["dt"])
    frames, _ = estimate_series(mesh, output, steps, int(kwargs.get("save_every") or 1),
                                problem.output_channels(mesh))
    return frames


def _streamed_solve(problem, mesh, kwargs: dict, output: Path):
    """Solve a transient problem whose solver streams its saved states, writing each to ``output`` at once,
    with a progress bar on stderr once the run has taken more than two seconds."""
    from graphfem.meshes.io import streamed_series

    with streamed_series(output, mesh, problem.fields) as append, progress_bar(f"solving {problem.name}") as step:
        return problem.solve(mesh, **kwargs, frames=append, progress=step)


@contextlib.contextmanager
def progress_bar(label: str, after: float = 2.0) -> Iterator:
    """A ``progress(step, steps)`` callback that shows a rich progress bar (with the time left) on stderr once
    ``after`` seconds have passed, when stderr is a terminal; short runs show nothing."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    start, state = time.perf_counter(), {"bar": None, "task": None, "next": 0.0}

    def update(step: int, steps: int) -> None:
        now = time.perf_counter()
        if now < state["next"] and step < steps:  # look at the clock's cost, not rich's, on every step
            return
        state["next"] = now + 0.1
        if state["bar"] is None:
            console = Console(stderr=True)
            if now - start < after or not console.is_terminal:  # off a terminal a bar is only noise in a log
                return
            state["bar"] = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                    console=console, transient=True)
            state["bar"].start()
            state["task"] = state["bar"].add_task(label, total=steps)
        state["bar"].update(state["task"], completed=step)

    try:
        yield update
    finally:
        if state["bar"] is not None:
            state["bar"].stop()


def _parameter(opt) -> inspect.Parameter:
    """The typer parameter of one problem option (values stay strings until ``Problem.parse``)."""
    help_text = opt.help + (" (required)" if opt.required else "")
    if opt.kind == "flag":
        flags = opt.cli_flag if "/" in opt.cli_flag else f"{opt.cli_flag}/--no-{opt.cli_flag[2:]}"
        default, annotation = typer.Option(None, flags, help=help_text), Optional[bool]
    elif opt.repeatable:
        metavar = opt.metavar or {"tag-values": "TAG=VALUE", "tag-vectors": "TAG=V1,V2", "tags": "TAG"}[opt.kind]
        default, annotation = typer.Option([], opt.cli_flag, help=help_text, metavar=metavar), List[str]
    else:
        vector = ",".join(f"V{k + 1}" for k in range(opt.components)) if opt.components else "V1,V2[,V3]"
        metavar = {"field": "FIELD", "number": "NUMBER", "integer": "N", "choice": "|".join(opt.choices),
                   "vector": vector}[opt.kind]
        default, annotation = typer.Option(None, opt.cli_flag, help=help_text, metavar=metavar), Optional[str]
    return inspect.Parameter(opt.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _alias(opt, alias: str) -> inspect.Parameter:
    """The hidden typer parameter of a deprecated flag of ``opt`` (``--a`` for ``--kappa``)."""
    flag = f"--{alias.replace('_', '-')}"
    default, annotation = (typer.Option([], flag, hidden=True), List[str]) if opt.repeatable else \
        (typer.Option(None, flag, hidden=True), Optional[str])
    return inspect.Parameter(alias, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def command_for(problem):
    """The ``graphfem solve <problem>`` function, its signature built from the option specs."""

    def command(mesh: Path, output: Path, **raw) -> None:
        from graphfem.meshes import read

        m = read(mesh)
        given = problem.canonical({k: v for k, v in raw.items() if v is not None and v != []}, warn=True)
        params = problem.parse(m, given)
        transient = problem.is_transient(params)
        check_output(output, transient)
        warn_order(problem, m, params)
        start = time.perf_counter()
        kwargs = problem.kwargs(params)
        frames = _check_series_size(problem, m, kwargs, output) if transient else 0
        if transient and getattr(problem, "streams", False):
            solution = _streamed_solve(problem, m, kwargs, output)
            fields, frames = list(solution.fields), solution.info.get("frames", frames)
        else:
            with working(f"solving {problem.name} on {m.n_cells} {m.cell_type} cells"):
                solution = problem.solve(m, **kwargs)
            solution.write(output)
            fields = list(solution.trajectory.fields if solution.trajectory is not None else solution.fields)
            frames = 0 if solution.trajectory is None else len(solution.trajectory.times)
        for line in problem.report(solution):
            typer.echo(line)
        steps = f", {frames} frames" if frames else ""
        typer.echo(f"wrote {output} ({', '.join(fields)}{steps}) in {time.perf_counter() - start:.2f} s")

    series = "a time series: .pvd or .xdmf" if problem.options and any(o.role == "time" for o in problem.options) \
        else "the result: .vtu or .xdmf"
    parameters = [
        inspect.Parameter("mesh", inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                          default=typer.Argument(..., help="Mesh file (any format meshio reads).",
                                                 metavar="MESH")),
        inspect.Parameter("output", inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                          default=typer.Option(..., "-o", "--output", help=f"File to write: {series}.")),
        *(_parameter(opt) for opt in problem.options),
        *(_alias(opt, alias) for opt in problem.options for alias in opt.aliases),
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
