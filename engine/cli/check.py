"""``graphfem check MODEL MESH [problem options]``: the exact properties of a surrogate on a case
(:mod:`graphfem.properties`), one line each, exit status 1 when a claimed property fails."""
from __future__ import annotations

import math
from pathlib import Path

import typer

from graphfem.meshes.errors import InputError

_EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


def register(app: typer.Typer) -> None:
    """Add ``graphfem check`` to the ``graphfem`` app."""

    @app.command(context_settings=_EXTRA)
    def check(ctx: typer.Context,
              model: Path = typer.Argument(..., help="Checkpoint (.safetensors) of a mesh surrogate."),
              mesh: Path = typer.Argument(..., help="Mesh file."),
              factor: float = typer.Option(1e-6, "--factor", help="Scale of the moved mesh, x -> FACTOR x."),
              angle: float = typer.Option(30.0, "--angle", help="Rotation of the moved mesh, in degrees."),
              device: str = typer.Option("auto", "--device", help="auto, cpu or cuda.")) -> None:
        """Check that a surrogate is exact where the physics says so, on MESH with the problem's options.

        After MESH come the options of the model's problem, as ``graphfem predict`` takes them.
        One line per property: dirichlet (the values the options fix, deviation 0.0), scale (the
        mesh scaled by --factor with the options scaled by the problem's law, the same prediction
        by that law) and rotation (the mesh turned by --angle, vector outputs turned with it),
        each pass / FAIL against its tolerance, "not claimed" with the measured deviation when
        the model does not hold it by construction, or n/a; superposition (a linear problem's
        case against the sum of its one-part cases). Exit status 1 when a claimed
        property fails."""
        from graphfem import properties
        from graphfem.checkpoint import load
        from graphfem.meshes import read
        from graphfem.physics.problem import get_problem

        from .options import parse_args

        if not (math.isfinite(factor) and factor > 0):
            raise InputError(f"--factor {factor:g}: the scale factor must be a positive number")
        if not math.isfinite(angle):
            raise InputError(f"--angle {angle}: the rotation must be a finite number of degrees")
        surrogate = load(model, device=device)
        name = surrogate.problem.get("name")
        if not name:
            raise InputError("the checkpoint names no problem whose laws could be checked", model)
        problem = get_problem(name)
        options = parse_args(problem, ctx.args, f"check ({problem.name} model)", roles=("input",))
        results = properties.check(surrogate, read(mesh), options, factor=factor, angle=math.radians(angle))
        typer.echo(f"{surrogate.meta['model']} ({problem.name}) on {mesh}:")
        for result in results:
            typer.echo(result.line())
        failed = [r.name for r in results if r.failed]
        if failed:
            typer.echo(f"failed: {', '.join(failed)}", err=True)
            raise typer.Exit(1)


__all__ = ["register"]
