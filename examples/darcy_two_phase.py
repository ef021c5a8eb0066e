"""Two-phase Darcy flow (a ∈ {5, 10}, f = 10, u = 0 on the boundary): solve, check conservation, write VTU + PNG."""
from pathlib import Path

import numpy as np

from graphfem.meshes import Mesh
from graphfem.physics.darcy import darcy, interface_flux, two_phase_coefficient

out = Path("darcy_two_phase_out")
out.mkdir(exist_ok=True)
mesh = Mesh.unit_square(64)
a, a_grid = two_phase_coefficient(np.random.default_rng(0), mesh)
solution = darcy(mesh, a, 10.0)
q1, q2 = interface_flux(solution, a, 10.0, a == 10.0)
print(f"net outflow {solution.info['outflow']:.12f} (reference: integral of f = 10)")
print(f"flux out of the a=10 phase: {q1:.10f} from inside, {q2:.10f} from outside (difference {abs(q1 - q2):.1e})")
mesh.write(out / "darcy.vtu", point_data={"u": solution.fields["u"]}, cell_data={"a": a})
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, ax = plt.subplots(1, 2, figsize=(9, 4))
ax[0].tripcolor(mesh.points[:, 0], mesh.points[:, 1], mesh.cells, facecolors=a, cmap="gray")
ax[0].set_title("a (5 / 10)")
tc = ax[1].tricontourf(mesh.points[:, 0], mesh.points[:, 1], mesh.cells, solution.fields["u"], 20)
fig.colorbar(tc, ax=ax[1])
ax[1].set_title("u")
fig.savefig(out / "darcy.png", dpi=80)
print(f"wrote {out}/darcy.vtu and {out}/darcy.png")
