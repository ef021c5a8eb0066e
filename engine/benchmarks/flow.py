"""``graphfem bench flow``: DFG 2D-1 solve time against dofs, direct and iterative.

Steady DFG 2D-1 (Re = 20, Newton from Stokes) on the isoparametric channel
mesh at growing ``n_around``, solved with sparse LU (SuperLU, COLAMD) and with
FGMRES + block preconditioner (ILU velocity block, least-squares-commutator
Schur complement), measured in one run; the c_D error shows both give the same
answer. Then one BDF2 Navier–Stokes step (the DFG 2D-2 Oseen system) on a mesh
of about ``step_dofs`` dofs with both solvers: neither ever forms a dense matrix.
"""
from __future__ import annotations

import time

import numpy as np

from . import machine


def run(sizes: tuple[int, ...] = (32, 48, 64, 96, 128), iterative_max_dofs: int = 20_000,
        step_dofs: int = 100_000) -> str:
    """Run the benchmark and return the table as text."""
    from graphfem.physics.channel import dfg_mesh
    from graphfem.physics.navier_stokes import DFG_2D1, TaylorHood, dfg_2d1, dfg_setup, navier_stokes_transient, stokes

    lines = [f"DFG 2D-1 (Re 20), Taylor-Hood P2-P1, Newton from Stokes; {machine()}",
             f"{'n_around':>8} {'dofs':>8} {'solver':>10} {'time s':>8} {'Newton':>6} {'lin. it':>8} "
             f"{'c_D err %':>9}"]
    for n in sizes:
        mesh = dfg_mesh(n)
        for solver in ("direct", "iterative"):
            th = TaylorHood(mesh)
            if solver == "iterative" and th.n > iterative_max_dofs:
                continue
            start = time.perf_counter()
            out = dfg_2d1(solver=solver, mesh=mesh)
            seconds = time.perf_counter() - start
            newton = out["solution"].info["newton"]
            linear = sum(h["linear_iterations"] for h in newton)
            lines.append(f"{n:>8} {out['dofs']:>8} {solver:>10} {seconds:>8.2f} {len(newton) - 1:>6} "
                         f"{linear:>8} {100 * (out['c_D'] / DFG_2D1['c_D'] - 1):>+9.4f}")
    n = int(8 * round(128 * np.sqrt(step_dofs / 55_084) / 8))
    th = TaylorHood(dfg_mesh(n))
    start = stokes(th, nu=1e-3, **dfg_setup(1.5))
    lines.append(f"one BDF2 step of DFG 2D-2 (dt 0.005) from the Stokes flow, {th.n} dofs (n_around {n}):")
    for solver in ("direct", "iterative"):
        begin = time.perf_counter()
        sol = navier_stokes_transient(th, nu=1e-3, t_end=0.005, dt=0.005, solver=solver, initial=start,
                                      **dfg_setup(1.5))
        lines.append(f"  {solver:>10}: {time.perf_counter() - begin:.2f} s, {sol.info['iterations']} FGMRES iterations")
    return "\n".join(lines)
