"""DFG 2D-1 (Schäfer & Turek 1996): steady flow around a cylinder at Re = 20.

Channel 2.2 × 0.41, cylinder r = 0.05 at (0.2, 0.2), ν = 10⁻³, parabolic inflow
with peak 0.3. Steady Navier–Stokes by Newton (Taylor–Hood P2–P1 on the
isoparametric channel mesh); drag and lift by the volume-integral formulation,
Δp = p(0.15, 0.2) − p(0.25, 0.2). Prints the Newton history and c_D, c_L, Δp
against the reference values, for two mesh sizes.

    .venv/bin/python examples/dfg_benchmark.py      (about 15 s on 2 cores)

The same from the command line (the mesh written by ``dfg_mesh(64).write("dfg.msh")``):
    graphfem solve navier-stokes dfg.msh -o dfg.vtu --nu 1e-3 --inflow inlet=0.3 \\
        --no-slip walls --no-slip cylinder --outflow outlet --obstacle cylinder
"""
from __future__ import annotations

import time

from graphfem.physics.navier_stokes import DFG_2D1, dfg_2d1


def main(sizes=(64, 96)) -> list[dict]:
    results = []
    for n in sizes:
        start = time.perf_counter()
        out = dfg_2d1(n)
        seconds = time.perf_counter() - start
        history = ", ".join(f"{h['residual']:.1e}" for h in out["solution"].info["newton"])
        print(f"n_around {n}: {out['dofs']} dofs, {seconds:.1f} s, Newton residuals {history}")
        for key in ("c_D", "c_L", "dp"):
            ref = DFG_2D1[key]
            print(f"  {key:4s} {out[key]:.5f}  reference {ref:.4f}  error {100 * (out[key] / ref - 1):+.3f} %")
        results.append({k: out[k] for k in ("c_D", "c_L", "dp", "dofs")})
    return results


if __name__ == "__main__":
    main()
