"""``graphfem invert MODEL OBSERVATIONS -o OUT.vtu``: recover a from sparse observations of u with a DGNO."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError, InputError


def read_observations(path: Path, field: str = "u") -> tuple[np.ndarray, np.ndarray]:
    """(x (K, 2), u (K,)) from a point-cloud file: ``.csv`` with a header naming ``x``, ``y`` and
    ``field``, or any mesh/point file meshio reads (``.vtu``, ``.vtk``, ...) with the point field
    ``field``. Non-finite values, points outside [0, 1]² or fewer than 2 points are refused."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such observations file", path)
    if path.suffix.lower() == ".csv":
        try:
            table = np.genfromtxt(path, delimiter=",", names=True, dtype=float)
        except ValueError as exc:
            raise InputError(f"not a CSV table of numbers: {exc}", path) from None
        names = table.dtype.names or ()
        missing = [k for k in ("x", "y", field) if k not in names]
        if missing:
            raise InputError(f"the CSV header lacks {', '.join(missing)} (it has {', '.join(names)})", path)
        table = np.atleast_1d(table)
        x, u = np.stack([table["x"], table["y"]], 1), np.asarray(table[field], float)
    else:
        from graphfem.meshes import read_meshio

        m = read_meshio(path)  # one-line MeshError on any damage
        if field not in m.point_data:
            raise InputError(f"no point field {field!r} (it has {', '.join(m.point_data) or 'none'})", path)
        x, u = np.asarray(m.points[:, :2], float), np.asarray(m.point_data[field], float).reshape(-1)
    if len(u) < 2:
        raise InputError(f"{len(u)} observation(s); give at least 2", path)
    if not (np.isfinite(x).all() and np.isfinite(u).all()):
        bad = int((~np.isfinite(u)).sum() + (~np.isfinite(x)).any(1).sum())
        raise InputError(f"{bad} observation(s) with NaN or infinite values", path)
    if (x < 0).any() or (x > 1).any():
        raise InputError("observation points lie outside the unit square [0, 1]^2 of the model", path)
    return x, u


def register(app: typer.Typer) -> None:
    """Add ``invert`` to ``app``."""

    @app.command("invert")
    def invert_cmd(model_path: Path = typer.Argument(..., help="DGNO checkpoint (.safetensors)."),
                   observations: Path = typer.Argument(..., help="Point cloud with values: .csv (x,y,u) or .vtu."),
                   output: Path = typer.Option(..., "-o", "--output", help="VTU to write (a, a_spread, p_high, u)."),
                   field: str = typer.Option("u", "--field", help="Name of the observed value field."),
                   mesh_path: Optional[Path] = typer.Option(None, "--mesh", help="Mesh of [0,1]^2 to write on "
                                                            "(default: the model's input grid)."),
                   truth: Optional[Path] = typer.Option(None, "--truth", help="Mesh file with the true a (cell or "
                                                        "point field --truth-field) for the error."),
                   truth_field: str = typer.Option("a", "--truth-field", help="Field of --truth holding a."),
                   restarts: int = typer.Option(4, "--restarts", help="Independent optimisations (spread)."),
                   iterations: int = typer.Option(500, "--iterations", help="Adam iterations per restart."),
                   seed: int = typer.Option(0, "--seed", help="Seed of the restarts and test functions.")) -> None:
        """Recover a from noisy sparse u with the frozen DGNO decoders (MAP over β, several restarts)."""
        import torch

        from graphfem.checkpoint import load_model
        from graphfem.families.dgno import _check_square, inverse_fields

        if restarts < 1 or iterations < 1:
            raise InputError(f"--restarts and --iterations must be >= 1, got {restarts}, {iterations}")
        if output.suffix.lower() != ".vtu":
            raise InputError("-o: write the recovered fields as .vtu", output)
        model, meta = load_model(model_path)
        if meta.get("model") != "dgno":
            raise InputError(f"a {meta.get('model')} checkpoint; invert needs a dgno model (its decoder of a)",
                             model_path)
        x, u = read_observations(observations, field)
        mesh = Mesh.read(mesh_path) if mesh_path else Mesh.rectangle(model.config.grid - 1)
        _check_square(mesh, mesh_path)
        a_true = None
        if truth is not None:
            tm = Mesh.read(truth)
            _check_square(tm, truth)
            values = tm.cell_data.get(truth_field, tm.point_data.get(truth_field))
            if values is None:
                raise InputError(f"no cell or point field {truth_field!r}", truth)
            values = np.asarray(values, float)
            from graphfem.families.dgno import Lookup

            a_true = Lookup(tm).values(values, np.clip(mesh.points[:, :2], 1e-9, 1 - 1e-9))
        torch.set_num_threads(max(1, torch.get_num_threads()))
        fields, numbers = inverse_fields(model.float(), x, u, mesh, truth=a_true, restarts=restarts,
                                         iterations=iterations, seed=seed)
        if not all(np.isfinite(v).all() for v in fields.values()):
            raise GraphfemError("the inversion diverged (non-finite fields); no file written", model_path)
        Mesh.write(mesh, output, point_data=fields)
        typer.echo(f"wrote {output}: a, a_spread, p_high, u at {mesh.n_points} nodes from {len(u)} observations")
        if "a_rel_l2" in numbers:
            typer.echo(f"recovered a: relative L2 error {numbers['a_rel_l2']:.4f}")
        typer.echo(f"posterior spread of a (restarts and p(a|beta)): mean std {numbers['spread_mean']:.4f}; "
                   f"over {restarts} restarts alone {numbers['restart_std_mean']:.4f}")
