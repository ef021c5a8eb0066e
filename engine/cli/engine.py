"""CLI commands of the surrogate engine: ``generate``, ``train``, ``predict``, ``evaluate``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from graphfem.meshes.errors import InputError


def register(app: typer.Typer) -> None:
    """Add the engine commands to the ``graphfem`` app."""

    @app.command()
    def generate(problem: str = typer.Argument(..., help="Family: poisson, mpm, darcy-two-phase, burgers, cavity, "
                                                         "cylinder-flow, spon-poisson, spon-hyperelastic, ..."),
                 n: int = typer.Option(..., "-n", help="Number of simulations."),
                 output: Path = typer.Option(..., "-o", "--output", help="HDF5 file to write (atomically)."),
                 geometry: str = typer.Option("mixed", "--geometry",
                                              help="poisson: deformed, perforated, polygon, lshape or mixed."),
                 resolution: Optional[int] = typer.Option(None, "--resolution",
                                                          help="Mesh/grid resolution of the family (its default)."),
                 material: Optional[str] = typer.Option(None, "--material",
                                                        help="mpm: jelly, water, goo, sand or plasticine."),
                 seed: int = typer.Option(0, "--seed", help="Seed; sample i depends only on (seed, i)."),
                 workers: int = typer.Option(1, "--workers", help="Worker processes.")) -> None:
        """Generate a dataset of simulations with the project's solvers (ranks under torchrun for poisson)."""
        from graphfem.datasets.generate import generate as run

        run(problem, n, output, seed=seed, workers=workers, geometry=geometry, resolution=resolution,
            material=material)
        typer.echo(f"wrote {output} ({n} simulations of {problem})")

    @app.command()
    def train(config: Path = typer.Argument(..., help="YAML training configuration."),
              set_: List[str] = typer.Option([], "--set", help="Override a key: --set optim.lr=3e-4."),
              resume: bool = typer.Option(False, "--resume", help="Continue from <out>/state.safetensors.")) -> None:
        """Train a model (DDP under torchrun); writes model.safetensors, metrics.jsonl and curves.png."""
        from graphfem.training.config import load_config
        from graphfem.training.trainer import train as run

        final = run(load_config(config, set_), resume=resume, source=str(config))
        typer.echo(json.dumps(final))

    @app.command()
    def predict(model: Path = typer.Argument(..., help="Checkpoint (.safetensors)."),
                mesh: Path = typer.Argument(..., help="Mesh file."),
                output: Path = typer.Option(..., "-o", "--output", help="VTU/XDMF file to write."),
                kappa: Optional[str] = typer.Option(None, "--kappa", help="Number, mesh field or expression."),
                source: Optional[str] = typer.Option(None, "--source", help="Number, mesh field or expression."),
                dirichlet: List[str] = typer.Option([], "--dirichlet", help="TAG=VALUE (repeatable)."),
                neumann: List[str] = typer.Option([], "--neumann", help="TAG=0 (zero flux only)."),
                param: List[str] = typer.Option([], "--param",
                                                help="KEY=VALUE input of models with other options, e.g. SPON "
                                                     "traction=0.1,0 or u_max=0.3 (numbers, comma vectors)."),
                device: str = typer.Option("auto", "--device", help="auto, cpu or cuda.")) -> None:
        """Predict the fields on a mesh with the same options as ``solve poisson``; writes them atomically
        (SPON-MG: on the mesh refined once per coarse level, the mesh being the coarsest)."""
        from graphfem.checkpoint import load
        from graphfem.meshes import read
        from graphfem.physics.options import poisson_options, vector

        surrogate = load(model, device=device)
        m = read(mesh)
        surrogate.check_mesh(m)
        options = {}
        for pair in param:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise InputError(f"--param: expected KEY=VALUE, got {pair!r}")
            values = vector(value, len(value.split(",")), f"--param {key.strip()}")
            options[key.strip()] = float(values[0]) if values.size == 1 else values
        if "kappa" in surrogate.problem["options"]:
            opts = poisson_options(m, kappa=kappa, source=source, dirichlet=dirichlet, neumann=neumann)
            options.update(kappa=opts["kappa"], source=opts["f"], dirichlet=opts["dirichlet"],
                           neumann=opts["neumann"])
        fields, seconds = surrogate.timed_predict(m, **options)
        surrogate.output_mesh(m).write(output, point_data=fields)
        typer.echo(f"wrote {output} ({', '.join(fields)}; predicted in {1e3 * seconds:.1f} ms on {surrogate.device})")

    @app.command()
    def evaluate(model: Path = typer.Argument(..., help="Checkpoint (.safetensors)."),
                 data: Path = typer.Argument(..., help="HDF5 dataset."),
                 compare_fe: bool = typer.Option(False, "--compare-fe", help="Also time the FE solve."),
                 skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip damaged groups with a warning."),
                 limit: int = typer.Option(0, "--limit", help="Evaluate the first N samples only."),
                 device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Error statistics of a surrogate on a dataset, and FE vs surrogate times."""
        from graphfem.evaluate import evaluate as run, report

        stats = run(model, data, compare_fe=compare_fe, device=device, skip_bad=skip_bad, limit=limit)
        typer.echo(json.dumps(stats) if as_json else report(stats))
