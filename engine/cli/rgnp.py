"""``graphfem posterior MODEL OBSERVATIONS --w W -o Z.json``: the RGNP posterior over z from observed u.

The posterior q_β(z | u/D, w, X) is a distribution over the problem's unknown inputs, not
a field on a mesh, so it has its own command rather than ``graphfem predict`` (whose
contract is the problem's options in, fields on the mesh out). With ``--mesh`` and
``--fields`` it also writes the posterior predictive mean and std of u on that mesh.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from graphfem.meshes.errors import GraphfemError, InputError


def read_observations(path: Path, field: str = "u", low: tuple = (-1.0,), high: tuple = (1.0,),
                      columns: tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(points (K, d), u (K,)) from a ``.csv`` with a header naming the coordinates ``columns``
    (default ``x``, and ``t`` when the model's domain is (x, t), d = 2; ``x, y`` for the cavity)
    and ``field``, or (1D) a mesh/point file meshio reads with the point field ``field``. Non-finite values, points outside the box [low, high] and fewer
    than 2 points inside it are refused in one line."""
    path = Path(path)
    columns = columns or ("x", "t")[:len(low)]
    if not path.is_file():
        raise InputError("no such observations file", path)
    if path.suffix.lower() == ".csv":
        try:
            table = np.atleast_1d(np.genfromtxt(path, delimiter=",", names=True, dtype=float))
        except ValueError as exc:
            raise InputError(f"not a CSV table of numbers: {' '.join(str(exc).split())}", path) from None
        names = table.dtype.names or ()
        missing = [k for k in (*columns, field) if k not in names]
        if missing:
            raise InputError(f"the CSV header lacks {', '.join(missing)} (it has {', '.join(names) or 'nothing'})",
                             path)
        x, u = np.stack([np.asarray(table[k], float) for k in columns], 1), np.asarray(table[field], float)
    elif len(columns) > 1:
        raise InputError(f"observations in ({', '.join(columns)}) are read from a .csv with columns "
                         f"{', '.join(columns)} and the field", path)
    else:
        from graphfem.meshes import read_meshio

        m = read_meshio(path)  # one-line MeshError on any damage
        if field not in m.point_data:
            raise InputError(f"no point field {field!r} (it has {', '.join(m.point_data) or 'none'})", path)
        x, u = np.asarray(m.points[:, :1], float), np.asarray(m.point_data[field], float).reshape(-1)
    bad = int((~np.isfinite(x).all(1) | ~np.isfinite(u)).sum())
    if bad:
        raise InputError(f"{bad} observation(s) with NaN or infinite values", path)
    lo, hi = np.array(low), np.array(high)
    box = " x ".join(f"[{a:g}, {b:g}]" for a, b in zip(lo, hi))
    if ((x < lo - 1e-12) | (x > hi + 1e-12)).any():
        raise InputError(f"observation points lie outside {box}, the model's domain", path)
    if int(((x > lo + 1e-3) & (x < hi - 1e-3)).all(1).sum()) < 2:
        raise InputError(f"{len(x)} observation(s), fewer than 2 inside {box}; give more", path)
    return x, u


def register(app: typer.Typer) -> None:
    """Add ``posterior`` to ``app``."""

    @app.command("posterior")
    def posterior_cmd(model_path: Path = typer.Argument(..., help="RGNP checkpoint (.safetensors)."),
                      observations: Path = typer.Argument(..., help="Observed u: .csv (x,u; x,t,u for Burgers; "
                                                          "x,y,stream for the cavity) or a 1D .vtu."),
                      w: float = typer.Option(..., "--w", help="The known input w of the observed state (Burgers: "
                                              "the frequency; cavity: the lid speed)."),
                      output: Path = typer.Option(..., "-o", "--output", help="JSON file with z's mean and std."),
                      field: Optional[str] = typer.Option(None, "--field", help="Name of the observed value field "
                                                          "(default u; stream for the cavity)."),
                      mesh_path: Optional[Path] = typer.Option(None, "--mesh", help="1D mesh of the problem's "
                                                               "interval for --fields (steady problems)."),
                      fields: Optional[Path] = typer.Option(None, "--fields", help="VTU to write the posterior "
                                                            "predictive u, u_std on --mesh."),
                      truth: Optional[str] = typer.Option(None, "--truth", help="The true z (comma-separated), "
                                                          "for the error."),
                      draws: int = typer.Option(64, "--draws", help="Draws of z for the predictive.")) -> None:
        """The GICNet posterior over the unknown z of an RGNP model from observations of u."""
        from graphfem.checkpoint import load_model
        from graphfem.families.rgnp import z_box, check_inputs, posterior, predictive
        from graphfem.meshes import Mesh

        if output.suffix.lower() != ".json":
            raise InputError("-o: the posterior is written as .json", output)
        if (mesh_path is None) != (fields is None):
            raise InputError("--mesh and --fields go together (the predictive u is written on the mesh)")
        if fields is not None and fields.suffix.lower() != ".vtu":
            raise InputError("--fields: write the predictive fields as .vtu", fields)
        if draws < 1:
            raise InputError(f"--draws must be >= 1, got {draws}")
        model, meta = load_model(model_path)
        if meta.get("model") != "rgnp":
            raise InputError(f"a {meta.get('model')} checkpoint; posterior needs an rgnp model", model_path)
        check_inputs(model, z_box(model)[0], w, model_path)
        if mesh_path is not None and model.pde.dim != 1:
            raise InputError("--mesh/--fields: the predictive field is offered for the 1D Poisson model; predict "
                             "Burgers and the cavity with graphfem predict at the posterior mean", mesh_path)
        z_true = None
        if truth is not None:
            from graphfem.physics.options import vector

            z_true = vector(truth, model.config.n_z, "--truth")
        mesh = Mesh.read(mesh_path) if mesh_path is not None else None
        lo, hi = model.pde.low, model.pde.high
        if mesh is not None and (mesh.dim != 1 or mesh.points[:, 0].min() < lo[0] - 1e-12
                                 or mesh.points[:, 0].max() > hi[0] + 1e-12):
            raise InputError(f"--mesh: the model predicts on 1D meshes with nodes in [{lo[0]:g}, {hi[0]:g}]",
                             mesh_path)
        x, u = read_observations(observations, field or model.pde.field, lo, hi, model.pde.coords)
        mean, std = posterior(model.float(), x, u, w)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise GraphfemError("the posterior is not finite; no file written", model_path)
        record = {"z_mean": mean.tolist(), "z_std": std.tolist(), "w": w, "observations": int(len(x)),
                  "model": str(model_path)}
        if z_true is not None:
            record.update(z_true=z_true.tolist(), z_rel_err=float(np.linalg.norm(mean - z_true) / np.linalg.norm(
                z_true)), z_inside_2std=int(np.sum(np.abs(z_true - mean) <= 2 * std)))
        if mesh is not None:
            um, us = predictive(model, mean, std, w, mesh.points[:, 0], draws=draws)
            mesh.write(fields, point_data={"u": um, "u_std": us}, units={"u": "1", "u_std": "1"})
        from graphfem.meshes.io import atomic_path

        with atomic_path(output) as tmp:
            Path(tmp).write_text(json.dumps(record, indent=1) + "\n")
        typer.echo(f"wrote {output}: posterior of z from {len(x)} observations"
                   + (f" and {fields} (predictive u, u_std at {mesh.n_points} nodes)" if mesh is not None else ""))
        for k, (m_k, s_k) in enumerate(zip(mean, std)):
            typer.echo(f"  z_{k} = {m_k:+.4f} +- {s_k:.4f}" + (f"  (true {z_true[k]:+.4f})" if z_true is not None
                                                               else ""))
        if z_true is not None:
            typer.echo(f"relative error of the posterior mean {record['z_rel_err']:.4f}; "
                       f"{record['z_inside_2std']}/{len(mean)} true values inside +-2 std")
