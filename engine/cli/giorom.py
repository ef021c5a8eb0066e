"""CLI of GIOROM: ``rollout`` (sparse rollout + dense reconstruction as a PVD
series), ``giorom-train`` and ``generate-mpm`` (MPM trajectories to HDF5;
:func:`generate_mpm` is what ``generate mpm`` calls once the engine's
``generate`` dispatches to it)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from graphfem.meshes.errors import InputError


def generate_mpm(material: str, n: int, output: Path, frames: int = 40, frame_dt: float = 0.01, dim: int = 2,
                 n_grid: int = 32, seed: int = 0, device: str = "auto") -> Path:
    """Write ``n`` MPM trajectories of ``material`` to an HDF5 file (atomically)."""
    from graphfem.physics.mpm import MATERIALS

    from graphfem.families.giorom import mpm_dataset, write_trajectories

    if material not in MATERIALS:
        raise InputError(f"unknown material {material!r}; choose one of {', '.join(MATERIALS)}")
    if n < 1 or frames < 7:
        raise InputError(f"need -n >= 1 and --frames >= 7, got {n} and {frames}")
    trajs, attrs = mpm_dataset(material, n, frames=frames, frame_dt=frame_dt, seed=seed, dim=dim, n_grid=n_grid,
                               device=device)
    return write_trajectories(output, trajs, attrs)


def register(app: typer.Typer) -> None:
    """Add ``rollout``, ``giorom-train`` and ``generate-mpm`` to the ``graphfem`` app."""

    @app.command("generate-mpm")
    def generate_mpm_cmd(material: str = typer.Option(..., "--material",
                                                      help="jelly, water, goo, sand or plasticine."),
                         n: int = typer.Option(..., "-n", help="Number of trajectories."),
                         output: Path = typer.Option(..., "-o", "--output", help="HDF5 file to write."),
                         frames: int = typer.Option(40, "--frames", help="Frames per trajectory."),
                         frame_dt: float = typer.Option(0.01, "--frame-dt", help="Time between frames."),
                         dim: int = typer.Option(2, "--dim", help="2 or 3."),
                         n_grid: int = typer.Option(32, "--grid", help="MPM grid cells per axis."),
                         seed: int = typer.Option(0, "--seed", help="Seed; trajectory i depends on (seed, i)."),
                         device: str = typer.Option("auto", "--device", help="auto, cpu or cuda.")) -> None:
        """Simulate random bodies of one material with MLS-MPM and write their trajectories to HDF5."""
        generate_mpm(material, n, output, frames, frame_dt, dim, n_grid, seed, device)
        typer.echo(f"wrote {output} ({n} {material} trajectories)")

    @app.command("giorom-train")
    def giorom_train(data: Path = typer.Argument(..., help="HDF5 trajectories (generate-mpm)."),
                     output: Path = typer.Option(..., "-o", "--output", help="Checkpoint (.safetensors)."),
                     sparse: float = typer.Option(0.1, "--sparse", help="Fraction (<= 1) or count of particles."),
                     steps: int = typer.Option(1000, "--steps", help="Optimiser steps of the stepper."),
                     field_steps: int = typer.Option(200, "--field-steps", help="Optimiser steps of the field."),
                     radius: float = typer.Option(0.1, "--radius", help="Particle-graph radius."),
                     hidden: int = typer.Option(64, "--hidden", help="Latent width."),
                     seed: int = typer.Option(0, "--seed", help="Seed.")) -> None:
        """Train the sparse stepper and the neural field on a trajectory file; write one checkpoint."""
        from graphfem.families.giorom import read_trajectories, save_pipeline, train_field, train_stepper

        trajs, attrs = read_trajectories(data)
        dim = trajs[0].fields["x"].shape[2]
        lo, hi, grid = float(attrs["wall_lower"]), float(attrs["wall_upper"]), 8
        config = dict(dim=dim, radius=radius, hidden=hidden, wall_lower=lo, wall_upper=hi, grid=grid,
                      gno_radius=0.75 * dim ** 0.5 * (hi - lo) / grid)  # 1.5x the half cell diagonal
        stepper, losses = train_stepper(trajs, config, sparse=sparse, steps=steps, seed=seed)
        refs = [t.fields["x"][0] for t in trajs]
        field, flosses = train_field(refs, [t.fields["x"] - t.fields["x"][:1] for t in trajs], stepper.subsets,
                                     dict(dim=dim, radius=3 * radius), steps=field_steps, seed=seed)
        save_pipeline(output, stepper, field, {"sparse": sparse, "sampling": "fps",
                                               "frame_dt": float(attrs["frame_dt"]),
                                               "provenance": {"data": str(data), "steps": steps, "seed": seed,
                                                              "final_loss": float(np.mean(losses[-20:])),
                                                              "field_loss": float(np.mean(flosses[-20:]))}})
        typer.echo(f"wrote {output} (stepper loss {np.mean(losses[-20:]):.4f}, field loss {np.mean(flosses[-20:]):.4f})")

    @app.command()
    def rollout(model: Path = typer.Argument(..., help="GIOROM checkpoint (giorom-train)."),
                initial: Path = typer.Argument(..., help="Point cloud or mesh file: the initial body."),
                output: Path = typer.Option(..., "-o", "--output", help="PVD series to write."),
                steps: int = typer.Option(50, "--steps", help="Frames to predict."),
                query: Optional[Path] = typer.Option(None, "--query", help="Points (reference config.) to rebuild."),
                material: Optional[str] = typer.Option(None, "--material", help="Material name (else the "
                                                       "'material' point field)."),
                velocity: Optional[str] = typer.Option(None, "--velocity", help="Initial velocity 'vx,vy[,vz]'."),
                seed: int = typer.Option(0, "--seed", help="Seed of the sampling.")) -> None:
        """Roll out the sparse particles of INITIAL and write the dense reconstruction for ParaView."""
        from graphfem.operators.giorom import sample_particles
        from graphfem.physics.mpm import MATERIALS

        from graphfem.families.giorom import dense_rollout, load_pipeline, read_points, write_cloud_series

        if steps < 1:
            raise InputError(f"--steps must be at least 1, got {steps}")
        stepper, field, meta = load_pipeline(model)
        c = stepper.config
        X, data = read_points(initial, c.dim)
        if material is not None:
            if material not in MATERIALS:
                raise InputError(f"unknown material {material!r}; choose one of {', '.join(MATERIALS)}")
            mat = np.full(len(X), MATERIALS[material])
        elif "material" in data:
            mat = np.asarray(data["material"]).reshape(-1).astype(np.int64)
        else:
            raise InputError("give --material or a 'material' point field", initial)
        v = np.zeros(c.dim)
        if velocity is not None:
            try:
                v = np.array([float(p) for p in velocity.split(",")])
            except ValueError:
                raise InputError(f"--velocity expects {c.dim} comma-separated numbers, got {velocity!r}") from None
            if v.shape != (c.dim,):
                raise InputError(f"--velocity expects {c.dim} numbers, got {velocity!r}")
        lo, hi = c.wall_lower, c.wall_upper
        if X.min() < lo or X.max() > hi:
            raise InputError(f"INITIAL must lie inside the walls [{lo:.4g}, {hi:.4g}]^{c.dim}", initial)
        dt = float(meta.get("frame_dt", 0.01))
        history = X[None] + np.arange(c.window + 1)[:, None, None] * (v * dt)  # frame 0 is the reference
        sparse = meta.get("sparse", 0.1)
        n = int(sparse) if sparse > 1 else max(c.window + 2, int(round(sparse * len(X))))
        idx = sample_particles(X, min(n, len(X)), "fps", seed)
        queries = read_points(query, c.dim)[0] if query is not None else None
        _, dense, timing = dense_rollout(stepper, field, history, mat, steps, idx, queries)
        times = dt * np.arange(dense.shape[0])
        ref = X if queries is None else queries
        write_cloud_series(output, times, dense, {"displacement": dense - ref[None]})
        typer.echo(json.dumps({"wrote": str(output), "frames": int(dense.shape[0]), "sparse": int(len(idx)),
                               "points": int(dense.shape[1]), **{k: round(v, 4) for k, v in timing.items()}}))
