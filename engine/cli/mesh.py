"""``graphfem mesh``: the standard shapes the README and the examples use, written as mesh files,
so that every command runs in a plain clone.

    graphfem mesh interval -o line.msh [--resolution 64] [--lower -1 --upper 1]
    graphfem mesh rectangle -o square.msh [--resolution 16] [--lower 0,0 --upper 1,1] [--cell quad] [--order 2]
    graphfem mesh box -o box.msh [--resolution 6] [--lower 0,0,0 --upper 2,1,1]
    graphfem mesh plate-hole -o plate.msh [--resolution 3]     # the quarter plate with a hole of fe2
    graphfem mesh lshape -o lshape.msh [--resolution 8]        # [-1, 1]^2 minus a quadrant
    graphfem mesh perforated -o holes.msh --seed 3             # a random family (deformed, perforated, polygon)

Facet tags: ``left``, ``right``, ``bottom``, ``top`` (``xmin`` ... ``zmax`` for a box; the
interval's end points as its Mesh.interval names them), ``hole``
where there is one, and ``boundary``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import typer

from graphfem.meshes import Mesh, Tag
from graphfem.meshes.errors import InputError, OptionValueError

#: shape -> what it is (the help text and the refusal list)
SHAPES = {
    "interval": "[lower, upper] of the line (default [0, 1]), --resolution cells",
    "rectangle": "[lower, upper] of 2D space (default the unit square), --resolution cells per side",
    "box": "[lower, upper] of 3D space (default the unit cube), tetrahedra",
    "plate-hole": "the quarter of a square plate [0, 1]^2 with a hole of radius 0.3 at the origin (quads)",
    "lshape": "the L-shape [-1, 1]^2 minus the quadrant x, y > 0 (triangles; its facet tags follow the "
              "outward normal, so right and top hold the inner corner's edges too)",
    "deformed": "a rectangle with smooth random sides (--seed)",
    "perforated": "a rectangle with one to three random circular holes (--seed)",
    "polygon": "a random star-shaped polygon (--seed)",
}
#: the largest --resolution accepted (cells per side): 8 million triangles in 2D, 48 million tetrahedra in 3D
MAX_RESOLUTION = {2: 2000, 3: 200}


def _corners(text: str | None, dim: int, default: float, option: str) -> tuple[float, ...]:
    if text is None:
        return (default,) * dim
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise OptionValueError(f"{option} {text!r}: expected {dim} comma-separated numbers") from None
    if len(values) != dim:
        raise OptionValueError(f"{option} {text!r}: expected {dim} comma-separated numbers")
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{option} {text!r}: expected {dim} finite comma-separated numbers")
    return values


def _linear_mesh(shape: str, resolution: int, lower: str | None, upper: str | None, cell: str, seed: int) -> Mesh:
    import skfem

    from graphfem.physics.fe2 import plate_with_hole
    from graphfem.physics.geometries import random_domain, tag_boundary

    if shape not in SHAPES:
        raise OptionValueError(f"unknown shape {shape!r}; graphfem mesh makes {', '.join(SHAPES)}")
    largest = MAX_RESOLUTION[3 if shape == "box" else 2]
    if not 1 <= resolution <= largest:
        raise InputError(f"--resolution {resolution}: cells per side of a {shape} must lie in 1..{largest}")
    if (lower is not None or upper is not None) and shape not in ("interval", "rectangle", "box"):
        raise InputError(f"--lower/--upper: only interval, rectangle and box take corners, not {shape}")
    if cell != "triangle" and shape != "rectangle":
        raise InputError(f"--cell {cell}: only a rectangle takes a cell type")
    if shape in ("interval", "rectangle", "box"):
        dim = {"interval": 1, "rectangle": 2, "box": 3}[shape]
        lo, hi = _corners(lower, dim, 0.0, "--lower"), _corners(upper, dim, 1.0, "--upper")
        if any(b <= a for a, b in zip(lo, hi)):
            raise InputError(f"--upper {','.join(f'{v:g}' for v in hi)} must exceed --lower "
                             f"{','.join(f'{v:g}' for v in lo)} in every coordinate")
        if dim == 1:
            return Mesh.interval(resolution, lo[0], hi[0])
        if dim == 3:
            return Mesh.box(resolution, lo, hi)
        if cell not in ("triangle", "quad"):
            raise OptionValueError(f"--cell {cell!r}: expected triangle or quad")
        extent = np.subtract(hi, lo)
        ny = max(1, round(resolution * extent[1] / extent[0]))  # square cells
        return Mesh.rectangle(resolution, ny, lo[0], hi[0], lo[1], hi[1], cell=cell)
    if shape == "plate-hole":
        mesh = plate_with_hole(resolution, resolution)
    elif shape == "lshape":
        refinements = max(0, round(math.log2(max(resolution, 1) / 2)))
        mesh = tag_boundary(Mesh.from_skfem(skfem.MeshTri.init_lshaped().refined(refinements)))
    else:
        mesh = random_domain(shape, np.random.default_rng(seed), h=1.0 / resolution)
    if "boundary" not in mesh.tags:
        mesh = mesh.with_tags(boundary=Tag("boundary", "facet", mesh.boundary_facets()))
    return mesh


def standard_mesh(shape: str, resolution: int, lower: str | None = None, upper: str | None = None,
                  cell: str = "triangle", seed: int = 0, order: int = 1) -> Mesh:
    """The mesh of a :data:`SHAPES` name (see the module docstring), with quadratic cells for ``order``
    2 (mid-side nodes on the straight edges); bad values are one-line errors."""
    if order not in (1, 2):
        raise OptionValueError(f"--order {order}: expected 1 (linear cells) or 2 (quadratic cells)")
    mesh = _linear_mesh(shape, resolution, lower, upper, cell, seed)
    if order == 2 and mesh.dim == 1:
        raise InputError("--order 2: quadratic cells are made for 2D and 3D shapes")
    return mesh.quadratic() if order == 2 else mesh


def register(app: typer.Typer) -> None:
    """Add ``graphfem mesh`` to ``app``."""

    @app.command("mesh")
    def mesh_cmd(shape: str = typer.Argument(..., metavar="SHAPE", help="One of: " + "; ".join(
                     f"{name}: {what}" for name, what in SHAPES.items()) + "."),
                 output: Path = typer.Option(..., "-o", "--output", help="Mesh file to write (.msh keeps the tags)."),
                 resolution: int = typer.Option(16, "--resolution", metavar="CELLS",
                                                help="Cells per side (1/h for the random shapes)."),
                 lower: str = typer.Option(None, "--lower", metavar="X,Y[,Z]", help="Lower corner (rectangle, box)."),
                 upper: str = typer.Option(None, "--upper", metavar="X,Y[,Z]", help="Upper corner (rectangle, box)."),
                 cell: str = typer.Option("triangle", "--cell", help="triangle or quad (rectangle)."),
                 seed: int = typer.Option(0, "--seed", help="Seed of the random shapes."),
                 order: int = typer.Option(1, "--order", help="1: linear cells; 2: quadratic (triangle6, quad9, "
                                                              "tetra10), mid-side nodes on straight edges.")) -> None:
        """Write a standard shape as a mesh file with facet tags (left/right/bottom/top, boundary, ...)."""
        mesh = standard_mesh(shape, resolution, lower, upper, cell, seed, order)
        mesh.write(output)
        tags = ", ".join(name for name, tag in mesh.tags.items() if tag.kind == "facet")
        typer.echo(f"wrote {output}: {mesh.dim}D, {mesh.n_points} nodes, {mesh.n_cells} {mesh.cell_type} cells; "
                   f"facet tags {tags}")


__all__ = ["MAX_RESOLUTION", "SHAPES", "register", "standard_mesh"]
