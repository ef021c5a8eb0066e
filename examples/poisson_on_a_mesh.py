"""Read a third-party gmsh mesh, solve heat conduction on it, write and render.

    python examples/poisson_on_a_mesh.py [OUT]      (default out/poisson_on_a_mesh, a few seconds)

Uses the shipped annulus (gmsh, tags `inter` and `exter`): −∇·(κ∇u) = 0 with
κ = 1, u = 1 on the inner polygon and u = 0 on the outer one, P2 elements,
on the mesh and two uniform refinements. The refinements keep the polygonal
boundary, so the discrete solutions converge to the solution on that polygon:
the change of u at a probe point between levels shrinks (slower than the P2
rate, because the corners of the polygonal hole are re-entrant), and
0 <= u <= 1 (maximum principle).
Writes OUT/u.vtu (open it in ParaView) and OUT/u.png.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from graphfem.demo import data_file
from graphfem.meshes import read
from graphfem.physics import poisson
from graphfem.render import render


def main(out: Path) -> dict:
    mesh = read(data_file("annulus.msh"))
    print(mesh)
    probe = np.array([[0.2, 0.1]])
    values = []
    for level in range(3):
        solution = poisson(mesh, f=0.0, dirichlet={"inter": 1.0, "exter": 0.0}, order=2)
        u = solution.fields["u"]
        values.append(float((solution.space.probe(probe) @ solution.dofs["u"])[0]))
        print(f"level {level}: {mesh.n_cells:5d} cells, u(0.2, 0.1) = {values[-1]:.8f}, "
              f"u in [{u.min():.3g}, {u.max():.3g}]")
        if level < 2:
            mesh = mesh.refined()
    changes = np.abs(np.diff(values))
    print(f"change between levels: {changes[0]:.2e} then {changes[1]:.2e} (ratio {changes[0] / changes[1]:.1f})")
    out.mkdir(parents=True, exist_ok=True)
    solution.write(out / "u.vtu")
    render(out / "u.vtu", out / "u.png", field="u")
    print(f"wrote {out / 'u.vtu'} and {out / 'u.png'}")
    return {"values": values, "changes": changes}


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out/poisson_on_a_mesh"))
