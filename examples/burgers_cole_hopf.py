"""1D viscous Burgers (u0 = sin(πx), ν = 0.01) against the Cole–Hopf solution under refinement; writes PVD + PNG.

    python examples/burgers_cole_hopf.py [OUT]     (default out/burgers, about 10 s)
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from graphfem.meshes import Mesh  # noqa: E402
from graphfem.physics.transport import burgers, burgers_cole_hopf  # noqa: E402


def main(out: Path, cells=(50, 100, 200, 400)) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    nu, t_end = 0.01, 0.5
    errors = []
    for n in cells:
        mesh = Mesh.interval(n)
        solution = burgers(mesh, nu, initial=lambda x: np.sin(np.pi * x[0]), t_end=t_end, dt=1.0 / n)
        errors.append(float(np.abs(solution.fields["u"] - burgers_cole_hopf(mesh.points[:, 0], t_end, nu)).max()))
        print(f"{n:4d} cells: max error {errors[-1]:.2e}, Newton iterations per step "
              f"<= {max(solution.info['iterations'])}")
    solution.write(out / "burgers.pvd")
    x = mesh.points[:, 0]
    fig = plt.figure()
    for k in range(0, solution.trajectory.n_steps, 50):
        t = solution.trajectory.times[k]
        plt.plot(x, solution.trajectory.fields["u"][k], label=f"t={t:.2f}")
        plt.plot(x, burgers_cole_hopf(x, t, nu), "k:", lw=1)
    plt.legend()
    fig.savefig(out / "burgers.png", dpi=80)
    plt.close(fig)
    print(f"wrote {out}/burgers.pvd and {out}/burgers.png")
    return {"cells": list(cells), "errors": errors}


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out/burgers"))
