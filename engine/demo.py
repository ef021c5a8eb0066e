"""``graphfem demo``: the README's first command, on data shipped with the package."""
from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import numpy as np


def demo_mesh_path() -> Path:
    """The shipped demo mesh (an annulus with facet tags ``inter`` and ``exter``)."""
    return Path(str(resources.files("graphfem") / "data" / "annulus.msh"))


def run_demo(output: str | Path, device: str = "auto") -> dict:
    """Solve a heat-conduction problem on the shipped annulus and write
    ``solution.vtu`` and ``solution.png`` into ``output``.

    −∇·(κ∇u) = 1 with κ = 1 + x² (a conductivity field), u = 1 on the inner
    circle and u = 0 on the outer one, P2 elements on the mesh refined twice.

    Returns:
        ``{"lines": [...], "vtu": path, "png": path, "seconds": float}``.
    """
    from .meshes import read
    from .physics import poisson
    from .render import render

    del device  # the FE demo runs on the CPU
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    mesh = read(demo_mesh_path()).refined(2)
    start = time.perf_counter()
    solution = poisson(mesh, kappa=lambda x: 1.0 + x[0] ** 2, f=1.0, dirichlet={"inter": 1.0, "exter": 0.0},
                       order=2, unit="K")
    seconds = time.perf_counter() - start
    vtu, png = output / "solution.vtu", output / "solution.png"
    solution.write(vtu)
    render(vtu, png, field="u")
    u = solution.fields["u"]
    lines = [
        f"mesh: annulus, {mesh.n_points} nodes, {mesh.n_cells} {mesh.cell_type} cells",
        f"FE solve (P2, {solution.space.n_dofs} dofs): {seconds * 1e3:.1f} ms, u in [{u.min():.4f}, {u.max():.4f}] K",
        f"wrote {vtu} and {png}",
    ]
    return {"lines": lines, "vtu": vtu, "png": png, "seconds": seconds, "max_u": float(np.max(u))}
