"""``graphfem fe2`` and ``graphfem rve-mesh``: FE² with an RVE surrogate (FE-OL) or nested RVE solves.

The surrogates (EquiNO and its two baselines) are trained like every model,
``graphfem generate rve`` then ``graphfem train`` (see ``examples/equino.yaml``
and :mod:`graphfem.families.equino`); ``fe2`` reads the same checkpoint
(one safetensors file, never pickled) that ``graphfem predict`` serves.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from graphfem.meshes import Mesh, Tag
from graphfem.meshes.errors import GraphfemError, InputError, OptionValueError

_SIDES = ("left", "right", "bottom", "top")


# ---------------------------------------------------------------------- checkpoints
def load_model(path: str | Path):
    """(model in float64, metadata) of an RVE surrogate checkpoint (EquiNO or a baseline)."""
    from graphfem.checkpoint import load_model as load_checkpoint

    model, meta = load_checkpoint(path)
    if meta.get("family") != "equino":
        raise InputError(f"a {meta.get('family') or meta['model']} checkpoint, not an RVE surrogate (equino, "
                         "rve_blackbox, rve_vpionet)", path)
    return model.double(), meta


# ---------------------------------------------------------------------- meshes
def with_sides(mesh: Mesh) -> Mesh:
    """``mesh`` with facet tags left/right/bottom/top of its bounding box added where missing
    (files written without physical groups lose their tags)."""
    missing = [s for s in _SIDES if s not in mesh.tags]
    if not missing:
        return mesh
    lo, hi = mesh.bounding_box
    tol = 1e-9 * float((hi - lo).max())
    preds = {"left": lambda x: np.abs(x[:, 0] - lo[0]) < tol, "right": lambda x: np.abs(x[:, 0] - hi[0]) < tol,
             "bottom": lambda x: np.abs(x[:, 1] - lo[1]) < tol, "top": lambda x: np.abs(x[:, 1] - hi[1]) < tol}
    return mesh.with_boundary_tags(**{s: preds[s] for s in missing})


def read_rve(path: Path, inclusion_tag: str = "inclusion", materials: dict | None = None):
    """An :class:`~graphfem.physics.rve.RVE` from a mesh file; the inclusions are the cell tag
    ``inclusion_tag``, or the cells where the cell field ``tag:<name>`` (as graphfem writes
    cell tags) or ``phase`` is 1. ``materials``: ``matrix`` and ``inclusion`` (K, α, β, G)
    (a checkpoint's ``problem.rve``; default the paper's)."""
    from graphfem.physics.rve import INCLUSION, MATRIX, RVE, Material

    mesh = Mesh.read(path)
    if inclusion_tag not in mesh.tags:
        field = next((mesh.cell_data[k] for k in (f"tag:{inclusion_tag}", "phase") if k in mesh.cell_data), None)
        if field is None:
            raise InputError(f"no cell tag or cell field {inclusion_tag!r} marks the inclusions", path)
        mesh = mesh.with_tags(**{inclusion_tag: Tag(inclusion_tag, "cell",
                                                    np.flatnonzero(np.asarray(field).reshape(-1) > 0.5))})
    laws = {"matrix": MATRIX, "inclusion": INCLUSION}
    laws.update({k: Material(*v) for k, v in (materials or {}).items() if k in laws})
    try:
        return RVE(mesh, inclusion_tags=(inclusion_tag,), matrix=laws["matrix"], inclusion=laws["inclusion"])
    except GraphfemError as exc:
        raise exc.with_source(path) from None


def _bc(specs: list[str], with_value: bool, option: str) -> dict:
    """{tag: component} from ``--fix TAG[:x|y|xy]`` (a bare TAG holds both components, as in
    ``solve elasticity --fix``) or {tag: (component, value)} from ``--displacement TAG:x|y:VALUE``."""
    out = {}
    for spec in specs:
        parts = spec.split(":")
        if not with_value and len(parts) == 1:
            parts.append("xy")
        if len(parts) != (3 if with_value else 2) or parts[1] not in ("x", "y", "xy") or not parts[0]:
            form = "TAG:x|y:VALUE" if with_value else "TAG or TAG:x|y|xy"
            raise OptionValueError(f"{option} {spec!r}: expected {form}")
        comp = None if parts[1] == "xy" else parts[1]
        if parts[0] in out:
            raise InputError(f"{option} {spec!r}: the tag {parts[0]!r} is given twice (one {option} per tag)")
        try:
            out[parts[0]] = (comp, float(parts[2])) if with_value else comp
        except ValueError:
            raise InputError(f"{option} {spec!r}: {parts[2]!r} is not a number") from None
    return out


# ---------------------------------------------------------------------- workflows
def run_fe2(macro: Mesh, rve, model=None, fixed: dict | None = None, displacement: dict | None = None,
            steps: int = 1, micro_at: list[int] | None = None, source: str = "nn"):
    """FE-OL (``model`` given: one batched surrogate call per macro Newton iteration) or the
    FE² reference (``model is None``: nested RVE Newton at every macro point).

    Returns (macro solution, {macro point: (u (n_dofs,), σ (N, 3), strain (3,))}); the black box
    has no micro fields (an empty dict, refused with ``micro_at``).
    """
    from graphfem.families.equino import check_rve, macro_material, micro_fields
    from graphfem.physics.fe2 import RVEMaterial, solve_macro

    fixed = fixed if fixed is not None else {"left": "x", "bottom": "y"}
    displacement = displacement if displacement is not None else {"top": ("y", 0.01)}
    fields = model is None or model.registry_name != "rve_blackbox"
    if model is not None:
        check_rve(model, rve, rve.mesh.source)
        if not fields and micro_at:
            micro_fields(model, np.zeros((1, 3)))  # refuses in one line
    material = macro_material(model, source) if model is not None else RVEMaterial(rve, keep=micro_at or ())
    sol = solve_macro(macro, material, fixed=fixed, displacement=displacement, steps=steps)
    n = sol.op.n_points
    points = [int(i) for i in (micro_at if micro_at is not None else [int(np.argmax(np.abs(sol.eps).sum(1)))])]
    bad = [i for i in points if not 0 <= i < n]
    if bad:
        raise InputError(f"macro point {bad[0]} out of range 0..{n - 1}")
    micro = {}
    if model is not None and fields:
        u, sigma = micro_fields(model, sol.eps[points], source)
        micro = {i: (u[k], sigma[k], sol.eps[i]) for k, i in enumerate(points)}
    elif model is None:
        for i in points:
            s = material.kept.get(i) or rve.solve(sol.eps[i])
            micro[i] = (s.u, s.sigma, sol.eps[i])
    return sol, micro


def write_fe2(output: Path, sol, rve, micro: dict) -> list[Path]:
    """Write the macro VTU and one ``<stem>_micro_<point>.vtu`` per micro field; returns the paths."""
    sol.write(output)
    paths = [output]
    for i, (u, sigma, strain) in micro.items():
        p = output.with_name(f"{output.stem}_micro_{i}{output.suffix}")
        rve.write(p, u, sigma)
        paths.append(p)
    return paths


def register(app: typer.Typer) -> None:
    """Add ``fe2`` and ``rve-mesh`` to ``app``."""

    @app.command("rve-mesh")
    def rve_mesh_cmd(output: Path = typer.Option(..., "-o", "--output", help="Mesh file to write (.vtu, .msh)."),
                     preset: str = typer.Option("disc", "--preset", help="disc | rve1 | rve2 | rve3."),
                     n: int = typer.Option(16, "--resolution", metavar="CELLS",
                                           help="Cells per side (as generate rve --resolution).")) -> None:
        """A periodic structured quad RVE of [-0.5, 0.5]^2 with inclusions (cell field tag:inclusion)."""
        from graphfem.physics.rve import rve_mesh

        mesh = rve_mesh(n, preset)
        mesh.write(output)
        typer.echo(f"wrote {output}: {mesh.n_cells} cells, {mesh.tag('inclusion').size} in inclusions")

    @app.command("fe2")
    def fe2(macro_path: Path = typer.Argument(..., help="Macro mesh (2D, plane strain)."),
            rve_path: Path = typer.Option(..., "--rve", help="RVE mesh file."),
            model_path: Optional[Path] = typer.Option(None, "--model", help="RVE surrogate checkpoint (FE-OL): "
                                                      "equino, rve_blackbox or rve_vpionet."),
            reference: bool = typer.Option(False, "--reference", help="True FE²: nested RVE solves."),
            output: Path = typer.Option(..., "-o", "--output", help="Macro VTU to write."),
            inclusion_tag: str = typer.Option("inclusion", "--inclusion-tag", help="Cell tag of the inclusions."),
            fix: list[str] = typer.Option(["left:x", "bottom:y"], "--fix", metavar="TAG[:x|y|xy]",
                                          help="Displacement held at zero (repeatable; a bare TAG: both components)."),
            displacement: list[str] = typer.Option(["top:y:0.01"], "--displacement", metavar="TAG:x|y:VALUE",
                                                   help="Displacement component prescribed on a tag (repeatable)."),
            steps: int = typer.Option(1, "--steps", help="Load steps (as solve hyperelastic's --steps)."),
            micro_at: list[int] = typer.Option([], "--micro-at", metavar="POINT", help="Macro quadrature points for micro VTUs "
                                                                      "(default: the most strained one)."),
            stress_source: str = typer.Option("nn", "--stress", help="EquiNO's stress: nn (equilibrated "
                                              "σ_NN) | law.")) -> None:
        """Macro plane-strain solve with an RVE surrogate (FE-OL) or the FE² reference; writes macro
        displacement and stress, and micro fields as OUT_micro_<point>.vtu (not for the black box)."""
        if (model_path is None) == (not reference):
            raise InputError("give exactly one of --model and --reference")
        if stress_source not in ("nn", "law"):
            raise OptionValueError(f"--stress must be nn or law, got {stress_source!r}")
        model, meta = load_model(model_path) if model_path is not None else (None, {})
        if model is not None and stress_source != "nn" and model.registry_name != "equino":
            raise InputError(f"--stress {stress_source}: only EquiNO has two stress fields")
        rve = read_rve(rve_path, inclusion_tag, meta.get("problem", {}).get("rve"))
        macro = with_sides(Mesh.read(macro_path))
        fixed, prescribed = _bc(fix, False, "--fix"), _bc(displacement, True, "--displacement")
        try:
            sol, micro = run_fe2(macro, rve, model, fixed, prescribed, steps,
                                 micro_at or None, stress_source)
        except GraphfemError as exc:
            raise exc.with_source(macro_path) from None
        paths = write_fe2(output, sol, rve, micro)
        its = ", ".join(str(len(r) - 1) for r in sol.newton)
        typer.echo(f"{'FE-OL' if model is not None else 'FE2'}: {sol.op.n_points} macro points, Newton "
                   f"iterations per step {its}, {sol.total_s:.3f} s; wrote " + ", ".join(str(p) for p in paths))


__all__ = ["load_model", "read_rve", "register", "run_fe2", "with_sides", "write_fe2"]
