"""A MeshGraphNet surrogate of 3D linear elasticity, used as a drop-in for ``graphfem solve``.

The whole workflow runs through the command line, as a user runs it:

1. ``graphfem generate elasticity --geometry 3d``: random tetrahedral boxes
   (1-2 x 0.4-1 x 0.4-1), clamped on ``xmin``, loaded by a traction on
   ``xmax`` and/or a body force, E log-uniform in [0.3, 3], nu in [0.2, 0.4];
2. ``graphfem train examples/elasticity3d.yaml``;
3. ``graphfem solve`` and ``graphfem predict`` with the same options on the
   shipped tapered beam ``examples/meshes/beam3d.msh`` (tags ``clamp``,
   ``load``, ``top``), which no sample resembles: its tags have other names,
   its nodes are jittered and its section tapers;
4. the relative error in the FE mass norm, and renders of both fields.

Run: ``python examples/elasticity_surrogate.py`` (about 15 minutes on 2 CPU
cores: 400 samples, 40 epochs); ``--samples 8 --epochs 1`` for a smoke run.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BEAM = HERE / "meshes" / "beam3d.msh"
OPTIONS = ["--E", "2.0", "--nu", "0.3", "--fix", "clamp", "--traction", "load=0,0,-0.05"]


def beam_mesh(path: Path = BEAM) -> Path:
    """The tapered beam [0, 1.5] x [0, 0.5] x [0, 0.6 (1 - 0.2 x / 1.5)], 6 tets a side, jittered (seed 11)."""
    from graphfem.meshes import Mesh, Tag

    base = Mesh.box(6, upper=(1.5, 0.5, 0.6), cell="tetra")
    rng = np.random.default_rng(11)
    points = base.points.copy()
    inner = np.setdiff1d(np.arange(base.n_points), base.boundary_nodes())
    points[inner] += rng.uniform(-0.02, 0.02, (len(inner), 3))
    points[:, 2] *= 1 - 0.2 * points[:, 0] / 1.5
    tags = {new: Tag(new, "facet", base.tags[old].indices) for new, old in
            (("clamp", "xmin"), ("load", "xmax"), ("top", "zmax"))}
    Mesh(points, base.cell_type, base.cells, tags=tags).write(path)
    return path


def graphfem(*args) -> str:
    """Run one graphfem command; its output, or the one-line error as an exception."""
    run = subprocess.run([sys.executable, "-m", "graphfem", *map(str, args)], capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(run.stderr.strip())
    return run.stdout.strip()


def main(out: Path = Path("runs/elasticity3d"), samples: int = 400, epochs: int = 40, render: bool = True) -> dict:
    from graphfem.meshes import FESpace, read

    out.mkdir(parents=True, exist_ok=True)
    data = out / "elasticity3d.h5"
    mesh = BEAM if BEAM.exists() else beam_mesh()
    print(graphfem("generate", "elasticity", "--geometry", "3d", "-n", samples, "-o", data, "--seed", 0,
                   "--workers", 2))
    print(graphfem("train", HERE / "elasticity3d.yaml", "--set", f"data.path={data}", "--set",
                   f"run.out={out / 'model'}", "--set", f"optim.epochs={epochs}"))
    print(graphfem("solve", "elasticity", mesh, "-o", out / "fe.vtu", *OPTIONS))
    print(graphfem("predict", out / "model" / "model.safetensors", mesh, "-o", out / "nn.vtu", "--device", "cpu",
                   *OPTIONS))
    fe, nn = read(out / "fe.vtu"), read(out / "nn.vtu")
    space = FESpace(fe, order=1)
    errors = {}
    for name in ("displacement", "von_mises"):
        ref, pred = np.asarray(fe.point_data[name]), np.asarray(nn.point_data[name])
        ref, pred = ref.reshape(fe.n_points, -1)[:, :3], pred.reshape(fe.n_points, -1)[:, :3]
        num = sum(space.norm_l2(pred[:, k] - ref[:, k]) ** 2 for k in range(ref.shape[1]))
        den = sum(space.norm_l2(ref[:, k]) ** 2 for k in range(ref.shape[1]))
        errors[name] = float(np.sqrt(num / den))
        print(f"relative L2 error of {name} (FE mass norm): {100 * errors[name]:.1f} %")
    if render:
        for tag in ("fe", "nn"):
            print(graphfem("render", out / f"{tag}.vtu", "-o", out / f"{tag}_von_mises.png", "--field", "von_mises",
                           "--warp", 5))
    return errors


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/elasticity3d"))
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    main(args.out, args.samples, args.epochs)
