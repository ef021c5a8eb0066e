"""``graphfem generate``, ``train``, ``predict``, ``evaluate``: the one engine for every problem and family.

``predict`` and ``generate`` take the problem's own options after the fixed
arguments, parsed by :mod:`graphfem.cli.options` from the same
:class:`~graphfem.physics.problem.Option` specs as ``graphfem solve``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from graphfem.meshes.errors import InputError

_EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


def _resolution(text: str | None) -> int | tuple[int, int] | None:
    """``--resolution``: ``N`` or a range ``LOW:HIGH`` of integers."""
    if text is None:
        return None
    parts = text.split(":")
    if len(parts) > 2 or not all(part.strip().lstrip("-").isdigit() for part in parts):
        raise InputError(f"--resolution {text!r}: expected an integer N or a range LOW:HIGH of integers")
    values = tuple(int(part) for part in parts)
    return values[0] if len(values) == 1 else values


def register(app: typer.Typer) -> None:
    """Add the engine commands to the ``graphfem`` app."""

    @app.command(context_settings=_EXTRA)
    def generate(ctx: typer.Context,
                 problem: str = typer.Argument(..., help="A problem (poisson, elasticity, heat, darcy, "
                                               "advection-diffusion, burgers, stokes, navier-stokes, hyperelastic) "
                                               "or a data family (darcy-two-phase, darcy-smooth, cavity, "
                                               "cylinder-flow, spon-poisson, spon-hyperelastic, spon-flow, mpm, "
                                               "rve)."),
                 n: int = typer.Option(..., "-n", help="Number of simulations."),
                 output: Path = typer.Option(..., "-o", "--output", help="HDF5 file to write (atomically)."),
                 geometry: Optional[str] = typer.Option(None, "--geometry",
                                                        help="Where the samples live, one vocabulary for every "
                                                             "generator: random families (a new domain per "
                                                             "sample) mixed, deformed, perforated, polygon, lshape; "
                                                             "fixed shapes lshape-fixed, perforated-fixed, plate, square, "
                                                             "channel, interval; SPON families also take a mesh "
                                                             "file. A name the problem does not take is refused, "
                                                             "listing those it does."),
                 resolution: Optional[str] = typer.Option(None, "--resolution", metavar="N|LOW:HIGH",
                                                          help="Mesh/grid resolution of the family (its default); "
                                                               "poisson and hyperelastic also take a range "
                                                               "LOW:HIGH, one resolution drawn per sample."),
                 material: Optional[str] = typer.Option(None, "--material",
                                                        help="mpm: jelly, water, goo, sand or plasticine."),
                 seed: int = typer.Option(0, "--seed", help="Seed; sample i depends only on (seed, i)."),
                 workers: int = typer.Option(1, "--workers", help="Worker processes."),
                 resume: bool = typer.Option(False, "--resume",
                                             help="Continue a run stopped by SIGTERM, Ctrl-C or a kill, from the "
                                                  "simulations it finished (same problem, seed and options).")
                 ) -> None:
        """Generate a data set with the project's solvers (ranks under torchrun).

        Further options of a problem (those of ``graphfem solve PROBLEM``, e.g.
        ``--kappa 2``) fix that input for every sample instead of drawing it."""
        from graphfem.datasets.generate import generate as run
        from graphfem.physics.problem import PROBLEMS, problems

        options = {}
        if ctx.args:
            if problem not in problems():
                raise InputError(f"generate {problem}: unexpected arguments {' '.join(ctx.args)}")
            from .options import parse_args

            options = parse_args(PROBLEMS[problem], ctx.args, f"generate {problem}", roles=("input", "time"))
        run(problem, n, output, seed=seed, workers=workers, geometry=geometry, resolution=_resolution(resolution),
            material=material, options=options, resume=resume)
        import h5py

        with h5py.File(output, "r") as h5:
            count, failed = int(h5.attrs["count"]), len(json.loads(h5.attrs.get("failed", "{}")))
        skipped = f"; {failed} failed and were skipped, listed in its attribute 'failed'" if failed else ""
        typer.echo(f"wrote {output} ({count} simulations of {problem}{skipped})")

    @app.command()
    def train(config: Path = typer.Argument(..., help="YAML training configuration."),
              set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                                 help="Override a key: --set optim.lr=3e-4 (repeatable)."),
              resume: bool = typer.Option(False, "--resume", help="Continue from <out>/state.safetensors."),
              skip_bad: bool = typer.Option(False, "--skip-bad",
                                            help="Skip damaged groups of the data set with a warning each "
                                                 "(the config's data.skip_bad).")) -> None:
        """Train any model family (DDP under torchrun); writes model.safetensors, metrics.jsonl and curves.png."""
        from graphfem.training.config import load_config
        from graphfem.training.trainer import train as run

        final = run(load_config(config, [*set_, *(["data.skip_bad=true"] if skip_bad else [])]), resume=resume,
                    source=str(config))
        typer.echo(json.dumps(final))

    @app.command(context_settings=_EXTRA)
    def predict(ctx: typer.Context,
                model: Path = typer.Argument(..., help="Checkpoint (.safetensors) of any family."),
                mesh: Path = typer.Argument(..., help="Mesh file."),
                output: Path = typer.Option(..., "-o", "--output",
                                            help="VTU/XDMF file to write; .pvd or .xdmf for a time series."),
                device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
                threads: int = typer.Option(0, "--threads",
                                            help="Torch CPU threads (0: torch's default). One is as fast on meshes "
                                                 "of a few thousand nodes and steadier when other jobs share the "
                                                 "cores."),
                strict: bool = typer.Option(False, "--strict",
                                            help="Refuse a case outside the ranges the model was trained on "
                                                 "(without it, each such input is a warning)."),
                refine: bool = typer.Option(False, "--refine",
                                            help="Start the problem's FE solver from the prediction (Newton, or "
                                                 "preconditioned CG) and write its converged solution: solve's "
                                                 "result, sooner. Takes solve's settings (--solver, --order, ...).")
                ) -> None:
        """Predict the fields on a mesh, as a drop-in for ``graphfem solve PROBLEM``.

        After MESH come the options of the problem the model was trained on,
        exactly as ``graphfem solve PROBLEM`` takes them (e.g. ``--kappa 2
        --dirichlet left=1``). An option the model does not use is refused.
        An input outside the model's training ranges (mesh size, node count,
        aspect, coefficients, loads) is one warning line each. The file is
        written atomically."""
        from graphfem.checkpoint import load
        from graphfem.devices import set_threads
        from graphfem.meshes import read
        from graphfem.physics.problem import get_problem

        from .options import parse_args

        set_threads(threads)
        surrogate = load(model, device=device)
        name = surrogate.problem.get("name")
        problem = get_problem(name) if name else None
        if problem is None:
            raise InputError("the checkpoint names no problem; predict with its family's own command", model)
        options = parse_args(problem, ctx.args, f"predict ({problem.name} model)")
        m = read(mesh)
        if refine:
            solution, predict_s, refine_s = surrogate.refine(m, strict=strict, **options)
            solution.write(output)
            for line in problem.report(solution):
                typer.echo(line)
            typer.echo(f"wrote {output} ({', '.join(solution.fields)}; refined from the {surrogate.meta['model']} "
                       f"prediction: predicted in {1e3 * predict_s:.1f} ms on {surrogate.device}, FE solver "
                       f"from it {refine_s:.2f} s)")
            return
        prediction, seconds = surrogate.timed_prediction(m, strict=strict, **options)
        prediction.write(output)
        steps = "" if prediction.times is None else f", {len(prediction.times)} frames"
        typer.echo(f"wrote {output} ({', '.join(prediction.fields)}{steps}; predicted in {1e3 * seconds:.1f} ms "
                   f"on {surrogate.device})")

    @app.command()
    def evaluate(model: Path = typer.Argument(..., help="Checkpoint (.safetensors)."),
                 data: Path = typer.Argument(..., help="HDF5 dataset."),
                 compare_fe: bool = typer.Option(False, "--compare-fe", help="Also time the FE solve."),
                 skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip damaged groups with a warning."),
                 limit: int = typer.Option(0, "--limit", help="Evaluate the first N samples only."),
                 device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Error statistics of any surrogate on a data set, and FE vs surrogate times."""
        from graphfem.evaluate import evaluate as run, report

        stats = run(model, data, compare_fe=compare_fe, device=device, skip_bad=skip_bad, limit=limit)
        typer.echo(json.dumps(stats) if as_json else report(stats))
