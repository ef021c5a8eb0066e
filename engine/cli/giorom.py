"""``graphfem rollout``: GIOROM's dense reconstruction, the family-specific
counterpart of ``graphfem predict``.

Data come from ``graphfem generate mpm``, the stepper and the neural field
from ``graphfem train`` (models ``giorom`` and ``giorom-field``);
``graphfem predict STEPPER BODY`` rebuilds every particle by linear
interpolation, ``rollout`` with a trained neural field and at any query
points. Both take the mpm options of the body (``--material``,
``--velocity``, ``--spacing``, ``--t-end``, ``--dt``), parsed from the same
option specs as ``graphfem solve mpm``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from graphfem.meshes.errors import InputError


def register(app: typer.Typer) -> None:
    """Add ``rollout`` to the ``graphfem`` app."""

    @app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def rollout(ctx: typer.Context,
                stepper: Path = typer.Argument(..., help="Stepper checkpoint (graphfem train, model giorom)."),
                body: Path = typer.Argument(..., help="The initial body: a point cloud or mesh file."),
                output: Path = typer.Option(..., "-o", "--output", help="PVD series to write."),
                field: Optional[Path] = typer.Option(None, "--field", help="Neural-field checkpoint (model "
                                                     "giorom-field); default: linear interpolation."),
                query: Optional[Path] = typer.Option(None, "--query", help="Reference points to rebuild (default: "
                                                     "every particle of the body)."),
                device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
                threads: int = typer.Option(0, "--threads", help="Torch CPU threads (0: torch's default), as "
                                            "run.threads of graphfem train."),
                strict: bool = typer.Option(False, "--strict", help="Refuse a rollout outside the ranges the "
                                            "stepper was trained on (without it, each such input is a "
                                            "warning).")) -> None:
        """Roll out the sparse particles of BODY and write the dense reconstruction for ParaView.

        After the arguments come the mpm options of the body: --material (or
        a 'material' point field of BODY), --t-end, and optionally --velocity,
        --spacing, --dt. The JSON line reports the stepper's and the
        reconstruction's seconds (assembly of the field once, then one sparse
        product per frame) and their sum per frame. An input outside the
        stepper's training ranges (particle count, body size, positions,
        velocity, spacing, rollout time) is one warning line each."""
        from graphfem.families.giorom import load_giorom, read_body, rollout_body
        from graphfem.physics.problem import get_problem
        from graphfem.devices import resolve_device, set_threads

        from .options import parse_args

        set_threads(threads)
        device = resolve_device(device)
        options = parse_args(get_problem("mpm"), ctx.args, "rollout", roles=("input", "time"))
        model, meta = load_giorom(stepper, "giorom", device)
        field_model = None
        if field is not None:
            field_model, field_meta = load_giorom(field, "giorom-field", device)
            if field_meta["config"]["dim"] != meta["config"]["dim"]:
                raise InputError(f"--field: the field is {field_meta['config']['dim']}D, the stepper "
                                 f"{meta['config']['dim']}D", field)
        initial = read_body(body)
        if "material" not in options and "material" in initial.point_data:
            options["material"] = initial.point_data["material"]
        queries = read_body(query).points if query is not None else None
        prediction = rollout_body(model, meta, initial, options, field_model, queries, strict=strict)
        prediction.write(output)
        info = prediction.info
        typer.echo(json.dumps({"wrote": str(output), "frames": len(prediction.times), "sparse": info["sparse"],
                               "particles": info["particles"], "points": prediction.mesh.n_points,
                               **{k: round(info[k], 4) for k in ("rollout_s", "assemble_s", "reconstruct_s")},
                               "frame_s": round((info["rollout_s"] + info["reconstruct_s"]) / len(prediction.times), 6),
                               "device": device}))
