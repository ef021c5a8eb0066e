"""Two-phase Darcy flow (a ∈ {5, 10}, f = 10, u = 0 on the boundary): solve, check conservation, write VTU + PNG.

    python examples/darcy_two_phase.py [OUT]     (default out/darcy_two_phase, about 5 s)

Checks: the net outflow equals ∫f = 10, and the flux out of the a = 10 phase
computed from inside and from outside agree (flux continuity across the
phase interface).
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from graphfem.meshes import Mesh  # noqa: E402
from graphfem.physics.darcy import darcy, interface_flux, two_phase_coefficient  # noqa: E402


def main(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    mesh = Mesh.unit_square(64)
    a, _ = two_phase_coefficient(np.random.default_rng(0), mesh)
    solution = darcy(mesh, a, 10.0)
    inside, outside = interface_flux(solution, a, 10.0, a == 10.0)
    print(f"net outflow {solution.info['outflow']:.12f} (reference: integral of f = 10)")
    print(f"flux out of the a=10 phase: {inside:.10f} from inside, {outside:.10f} from outside "
          f"(difference {abs(inside - outside):.1e})")
    mesh.write(out / "darcy.vtu", point_data={"u": solution.fields["u"]}, cell_data={"a": a})
    fig, ax = plt.subplots(1, 2, figsize=(9, 4))
    ax[0].tripcolor(mesh.points[:, 0], mesh.points[:, 1], mesh.cells, facecolors=a, cmap="gray")
    ax[0].set_title("a (5 / 10)")
    contours = ax[1].tricontourf(mesh.points[:, 0], mesh.points[:, 1], mesh.cells, solution.fields["u"], 20)
    fig.colorbar(contours, ax=ax[1])
    ax[1].set_title("u")
    fig.savefig(out / "darcy.png", dpi=80)
    plt.close(fig)
    print(f"wrote {out}/darcy.vtu and {out}/darcy.png")
    return {"outflow": solution.info["outflow"], "interface_fluxes": (inside, outside)}


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out/darcy_two_phase"))
