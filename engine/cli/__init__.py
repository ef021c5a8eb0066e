"""The ``graphfem`` command line (typer).

Every user error (bad file, bad option, bad value) ends as one line on
stderr, ``graphfem: error: <file>: <problem>``, and a non-zero exit code
(1 for bad input, 2 for a wrong command line); ``--debug`` shows the
traceback. Commands that write files write them atomically.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer

from graphfem.devices import tune_cpu_runtime
from graphfem.meshes.errors import GraphfemError, OptionValueError

app = typer.Typer(
    name="graphfem",
    help="Graph-based PDE surrogates on finite-element meshes: solve, train, predict, analyse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
bench_app = typer.Typer(help="Benchmarks that print ratios measured in one run.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

#: Modules that add their commands with ``register(app)``.
_COMMAND_MODULES = ("mesh", "solve", "koopman", "rom", "engine", "fe2", "giorom", "invert", "rgnp", "control",
                    "text2pde", "check")

_state = {"debug": False}


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context,
          debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
          version: bool = typer.Option(False, "--version", help="Print the version and exit."),
          allow_outside_includes: bool = typer.Option(
              False, "--allow-outside-includes",
              help="Follow Abaqus *INCLUDE files outside the deck's folder (refused by default), in every "
                   "command that reads a mesh.")) -> None:
    """graphfem: read meshes, solve PDEs with FE, train and run neural surrogates."""
    from graphfem import __version__
    from graphfem.meshes.io import ALLOW_OUTSIDE_ENV

    if version:
        typer.echo(__version__)
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    _state["debug"] = debug
    if allow_outside_includes:  # in the environment, so that worker processes (generate --workers) follow it too
        os.environ[ALLOW_OUTSIDE_ENV] = "1"
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(message)s",
                        handlers=[_rich_handler()])


def _rich_handler() -> logging.Handler:
    from rich.logging import RichHandler

    return RichHandler(show_time=False, show_path=False, markup=False)


# ---------------------------------------------------------------------- info
def mesh_summary(path: Path) -> dict:
    """The facts ``graphfem info`` prints, as a JSON-ready dict."""
    from graphfem.meshes import read

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mesh = read(path)
    lower, upper = mesh.bounding_box
    quality = mesh.quality()
    return {
        "file": str(path),
        "dimension": mesh.dim,
        "nodes": mesh.n_points,
        "cells": {mesh.cell_type: mesh.n_cells},
        "tags": {t.name: {"kind": t.kind, "size": t.size} for t in mesh.tags.values()},
        "bounding_box": {"lower": lower.tolist(), "upper": upper.tolist()},
        "worst_quality": float(quality.min()),
        "point_fields": sorted(mesh.point_data),
        "cell_fields": sorted(mesh.cell_data),
        "warnings": [str(w.message) for w in caught],
    }


@app.command()
def info(mesh: Path = typer.Argument(..., help="Mesh file (any format meshio reads)."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Dimension, nodes, cells, tags, bounding box, worst element quality and warnings of a mesh."""
    summary = mesh_summary(mesh)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(soft_wrap=True)  # a long path stays on its line (the terminal wraps it, scripts can grep it)
    console.print(f"[bold]{escape(str(summary['file']))}[/bold]: {summary['dimension']}D, {summary['nodes']} nodes, "
                  + ", ".join(f"{n} {t}" for t, n in summary["cells"].items()))
    lo, hi = summary["bounding_box"]["lower"], summary["bounding_box"]["upper"]
    console.print("bounding box: " + " x ".join(f"[{a:.6g}, {b:.6g}]" for a, b in zip(lo, hi)), markup=False)
    console.print(f"worst element quality: {summary['worst_quality']:.3f} (1 = regular)")
    if summary["tags"]:
        table = Table("tag", "kind", "size")
        for name, t in summary["tags"].items():
            table.add_row(name, t["kind"], str(t["size"]))
        console.print(table)
    else:
        console.print("no tags")
    for w in summary["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {w}", markup=True)


# ---------------------------------------------------------------------- render
@app.command()
def render(result: Path = typer.Argument(..., help="A VTU file (e.g. written by solve or predict)."),
           output: Path = typer.Option(..., "-o", "--output", help="PNG to write."),
           field: Optional[str] = typer.Option(None, "--field", help="Field to colour by (default: the first)."),
           warp: Optional[float] = typer.Option(None, "--warp", help="Warp by a vector field times this factor."),
           edges: Optional[bool] = typer.Option(None, "--edges/--no-edges",
                                                help="Draw cell edges (default: below 5000 cells)."),
           zoom: float = typer.Option(1.0, "--zoom", help="Camera zoom; > 1 magnifies.")) -> None:
    """Render a result file to a PNG off-screen, with a scalar bar."""
    from graphfem.render import render as render_png

    if zoom <= 0:
        raise GraphfemError(f"--zoom must be positive, got {zoom}")
    drawn = render_png(result, output, field=field, warp=warp, edges=edges, zoom=zoom)
    typer.echo(f"wrote {output} ({drawn})")


# ---------------------------------------------------------------------- demo
@app.command()
def demo(output: Path = typer.Option(Path("graphfem-demo"), "-o", "--output", help="Folder for the results."),
         device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
         threads: int = typer.Option(1, "--threads", help="Torch CPU threads (0: torch's default). One is as fast "
                                     "as two on the demo's 407 nodes and does not slow down 2-8x when other jobs "
                                     "share the cores.")) -> None:
    """Run the main job on built-in data: the shipped surrogate against the FE solver on a shipped mesh.

    Writes a VTU with prediction, reference and error, PNG renders of each, and
    prints the error and both timings."""
    from graphfem.demo import run_demo
    from graphfem.devices import set_threads

    set_threads(threads)
    report = run_demo(output, device=device)
    for line in report["lines"]:
        typer.echo(line)


# ---------------------------------------------------------------------- bench
def _integers(option: str, text: str) -> list[int]:
    """A comma-separated list of integers, or the one-line error naming ``option``."""
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise OptionValueError(f"{option} must be comma-separated integers, got {text!r}") from None


@bench_app.command("fe")
def bench_fe(max_cells: int = typer.Option(1_000_000, "--max-cells", help="Largest mesh, in triangles."),
             repeat: int = typer.Option(3, "--repeat", help="Timings per size; the minimum is kept.")) -> None:
    """P1 Poisson on unit squares: graphfem solve / scikit-fem solve, and to_graph / one assembly."""
    from graphfem.benchmarks.fe import run

    typer.echo(run(max_cells=max_cells, repeat=repeat))


@bench_app.command("koopman")
def bench_koopman(grid: int = typer.Option(200, "--grid", help="Grid points per axis of the pseudospectrum."),
                  n_dict: int = typer.Option(200, "--n-dict", help="Dictionary size N."),
                  snapshots: int = typer.Option(2000, "--snapshots", help="Snapshot pairs M."),
                  naive_points: int = typer.Option(100, "--naive-points",
                                                   help="Grid points timed for the naive methods (scaled up).")
                  ) -> None:
    """Pseudospectrum: one QR + small SVDs against the naive per-point problems."""
    from graphfem.benchmarks.koopman import run

    typer.echo(run(n_grid=grid, n_dict=n_dict, n_snapshots=snapshots, naive_points=naive_points))


@bench_app.command("rom")
def bench_rom(problem: str = typer.Option("poisson", "--problem", help="poisson or elasticity."),
              n: int = typer.Option(64, "--n", help="Cells per side of the unit-square mesh."),
              tol: float = typer.Option(1e-3, "--tol", help="Accuracy target (max relative L2 error).")) -> None:
    """Galerkin-ROM solve time / full FE solve time at an equal accuracy target."""
    from graphfem.benchmarks.rom import run

    if problem not in ("poisson", "elasticity"):
        raise OptionValueError(f"--problem must be poisson or elasticity, got {problem!r}")
    typer.echo(run(problem=problem, n=n, tol=tol))


@bench_app.command("surrogate")
def bench_surrogate(model: Optional[Path] = typer.Argument(None, help="Checkpoint (.safetensors); without one, "
                                                                     "single-level vs multi-scale MeshGraphNet."),
                    sizes: str = typer.Option("1000,10000,100000,1000000", "--sizes", help="Target cell counts "
                                                                                             "(with MODEL)."),
                    size: str = typer.Option("small", "--size", help="Without MODEL: small (2 CPU cores, minutes, "
                                                                      "to 64k cells) or gpu (to 1M cells)."),
                    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
                    mesh: Optional[Path] = typer.Option(None, "--mesh", help="With MODEL: this mesh and its uniform "
                                                        "refinements up to the largest of --sizes, instead of unit "
                                                        "squares."),
                    threads: Optional[int] = typer.Option(None, "--threads", help="With MODEL: torch CPU threads "
                                                          "(0: torch's default; default 1, as graphfem demo).")
                    ) -> None:
    """Surrogate predict time / FE solve time, 1k cells up, in one run: a checkpoint's (with its error, peak
    memory and the --refine time to FE tolerance), or
    single-level against multi-scale MeshGraphNet trained on Poisson at an equal parameter count (held-out
    error, time ratio, GFLOP/s of one forward against a plain matmul)."""
    from graphfem.benchmarks.surrogate import compare, run
    from graphfem.devices import set_threads

    if model is None:
        if threads is not None:
            raise OptionValueError("--threads is for a MODEL's bench; the comparison trains and times on one thread")
        if size not in ("small", "gpu"):
            raise OptionValueError(f"--size must be small or gpu, got {size!r}")
        typer.echo(compare(size=size, device=device))
        return
    cells = _integers("--sizes", sizes)
    set_threads(1 if threads is None else threads)
    typer.echo(run(str(model), cells, device, None if mesh is None else str(mesh)))


@bench_app.command("physicsnemo")
def bench_physicsnemo(cells: str = typer.Option("64,128", "--cells", help="Unit squares of this many cells per "
                                                                         "side (4,225 and 16,641 nodes)."),
                      repeats: int = typer.Option(3, "--repeats", help="Timed calls per model; the fastest is kept.")
                      ) -> None:
    """Our MeshGraphNet vs NVIDIA PhysicsNeMo's (15 blocks, width 128), the same network on the same graphs: its
    weights loaded into ours, inference and one training step timed in one run (needs nvidia-physicsnemo)."""
    from graphfem.benchmarks.physicsnemo import run

    sizes = _integers("--cells", cells)
    if not 1 <= repeats <= 100:
        raise OptionValueError(f"--repeats must lie in 1..100, got {repeats}")
    typer.echo(run(sizes, repeats))


@bench_app.command("equino")
def bench_equino(n: int = typer.Option(10, "--resolution", metavar="CELLS", help="RVE cells per side."),
                 rank: int = typer.Option(10, "--rank", help="POD rank r."),
                 fe2_n: int = typer.Option(20, "--fe2-resolution", metavar="CELLS",
                                           help="rve1 cells per side for FE-OL vs FE².")) -> None:
    """EquiNO vs black box vs VPIONet on three RVEs, and FE-OL vs FE² (one run)."""
    from graphfem.benchmarks.equino import run

    typer.echo(run(n=n, rank=rank, fe2_n=fe2_n))


@bench_app.command("spon")
def bench_spon(size: str = typer.Option("small", "--size", help="small (2 CPU cores, minutes) or gpu."),
               device: str = typer.Option("auto", "--device", help="auto, cpu or cuda.")) -> None:
    """SPON vs SPON-MG vs MeshGraphNet on the same FE data, one level finer, inference vs FE/Newton time."""
    from graphfem.benchmarks.spon import run

    typer.echo(run(size=size, device=device))


@bench_app.command("giorom")
def bench_giorom(size: str = typer.Option("small", "--size", help="small (CPU, minutes) or gpu (3D, larger)."),
                 device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
                 threads: int = typer.Option(0, "--threads", help="Torch CPU threads (0: torch's default; the CLI "
                                             "rollouts then take 1), as run.threads of graphfem train.")) -> None:
    """GIOROM: rollout errors per material (sparse vs dense GNS), step times, reconstruction vs query count."""
    from graphfem.benchmarks.giorom import run

    if size not in ("small", "gpu"):
        raise OptionValueError(f"--size must be small or gpu, got {size!r}")
    typer.echo(run(size=size, device=device, threads=threads))


@bench_app.command("dgno")
def bench_dgno(size: str = typer.Option("small", "--size", help="small (2 CPU cores, minutes) or gpu (paper size)."),
               device: str = typer.Option("auto", "--device", help="auto, cpu or cuda.")) -> None:
    """DGNO (no labels) vs supervised MultiONet on two-phase and smooth Darcy, and the inverse problem at 25 dB."""
    from graphfem.benchmarks.dgno import run

    if size not in ("small", "gpu"):
        raise OptionValueError(f"--size must be small or gpu, got {size!r}")
    typer.echo(run(size=size, device=device))


@bench_app.command("rgnp")
def bench_rgnp(size: str = typer.Option("small", "--size", help="small (2 CPU cores, minutes) or gpu (paper size)."),
               device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
               only: Optional[str] = typer.Option(None, "--only", help="Comma-separated rows: rgnp, fixed-grid, "
                                                  "eps-0.1, lr, learned-eps, burgers, cavity (default all)."),
               folder: Optional[Path] = typer.Option(None, "--folder", help="Keep the data and runs here.")) -> None:
    """RGNP vs a fixed-grid PDDLVM on 1D nonlinear Poisson, calibration variants, Burgers and the lid-driven
    cavity: forward and inverse errors, 2-sigma coverage, time."""
    from graphfem.benchmarks.rgnp import ROWS, run

    if size not in ("small", "gpu"):
        raise OptionValueError(f"--size must be small or gpu, got {size!r}")
    rows = tuple(k.strip() for k in only.split(",")) if only else ()
    bad = [k for k in rows if k not in ROWS]
    if bad:
        raise GraphfemError(f"--only: unknown row {bad[0]!r}; the rows are {', '.join(ROWS)}")
    run(size=size, device=device, folder=None if folder is None else str(folder), only=rows, echo=typer.echo)


@bench_app.command("flow")
def bench_flow() -> None:
    """DFG 2D-1 solve time against dofs with the direct and the iterative solver; one BDF2 step at ~100k dofs."""
    from graphfem.benchmarks.flow import run

    typer.echo(run())


@bench_app.command("neuralstagger")
def bench_neuralstagger(size: str = typer.Option("small", "--size", help="small (2 CPU cores, minutes) or gpu "
                                                                     "(paper-size channel)."),
                        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
                        case: str = typer.Option("all", "--case", help="all, channel or cylinder (Strouhal numbers "
                                                                       "and the shedding control).")) -> None:
    """Vanilla physics-constrained MAC stepper vs NeuralStagger s=2: errors vs the MAC solver, time per step,
    Strouhal numbers past a cylinder and the control of the shedding frequency."""
    from graphfem.benchmarks.neuralstagger import CASES, run

    if size not in ("small", "gpu"):
        raise OptionValueError(f"--size must be small or gpu, got {size!r}")
    if case not in CASES:
        raise OptionValueError(f"--case must be one of {', '.join(CASES)}, got {case!r}")
    typer.echo(run(size=size, device=device, case=case))


@bench_app.command("text2pde")
def bench_text2pde(size: str = typer.Option("small", "--size", help="small (2 CPU cores; the example configs) or "
                                                                "gpu (written, not run)."),
                   device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
                   folder: Optional[Path] = typer.Option(None, "--folder", help="Work folder: data and runs/ kept; "
                                                         "models trained there with the same settings are reused.")
                   ) -> None:
    """Text2PDE latent diffusion (first frame, text, parameters) vs an autoregressive MeshGraphNet on flow past a
    cylinder: rel. L2 of u, v, p over the trajectory (mean +- spread over sampling seeds), time per trajectory."""
    from graphfem.benchmarks.text2pde import run

    if size not in ("small", "gpu"):
        raise OptionValueError(f"--size must be small or gpu, got {size!r}")
    typer.echo(run(size=size, device=device, folder=None if folder is None else str(folder)))


def _register_commands() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"graphfem.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"graphfem.cli.{name}":
                continue
            raise
        module.register(app)


_register_commands()


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as ``graphfem: warning: ...`` lines on stderr."""
    typer.echo(f"graphfem: warning: {message}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: runs the app and turns user errors into one line."""
    tune_cpu_runtime()
    warnings.showwarning = _one_line_warning
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # libraries' notes to developers, not users
    try:
        from typer._click import exceptions as click_errors  # typer >= 0.29 vendors click
    except ImportError:  # older typer runs on click itself
        from click import exceptions as click_errors

    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    for flag in ("--allow-outside-includes", "--debug"):  # accepted anywhere on the line, handled by the root
        if flag in args:
            args = [flag] + [a for a in args if a != flag]
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="graphfem", standalone_mode=False)
    except GraphfemError as exc:
        if debug:
            raise
        typer.echo(f"graphfem: error: {exc}", err=True)
        return 2 if isinstance(exc, OptionValueError) else 1  # a value of the wrong form: a wrong command line
    except getattr(click_errors, "NoArgsIsHelpError", ()) as exc:
        typer.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
        return 2
    except click_errors.UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx else ""
        typer.echo(f"graphfem: error: {where}{exc.format_message()}", err=True)
        return 2
    except tuple({typer.Exit, getattr(click_errors, "Exit", typer.Exit)}) as exc:
        return exc.exit_code
    except (typer.Abort, getattr(click_errors, "Abort", typer.Abort), KeyboardInterrupt):
        typer.echo("graphfem: aborted", err=True)
        return 130
    except BrokenPipeError:  # the reader went away (graphfem info x | head -1): nothing more to say
        sys.stdout = open(os.devnull, "w")
        return 0
    except OSError as exc:
        if debug:
            raise
        target = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        typer.echo(f"graphfem: error: {target}{exc.strerror or exc}", err=True)
        return 1
    except MemoryError:
        typer.echo("graphfem: error: out of memory; use a smaller size", err=True)
        return 1
    except Exception as exc:  # a bug or an unforeseen input: one line, the traceback with --debug
        if debug:
            raise
        detail = " ".join(str(exc).split()) or "no message"
        typer.echo(f"graphfem: error: unexpected {type(exc).__name__}: {detail} (run with --debug for the "
                   "traceback)", err=True)
        return 1
    return code if isinstance(code, int) else 0


def run() -> None:
    """``python -m graphfem`` and the console script."""
    sys.exit(main())
