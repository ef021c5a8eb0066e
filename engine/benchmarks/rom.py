"""Benchmark: Galerkin-ROM solve time / full FE solve time at an equal accuracy target.

One run: FE snapshots of an affine problem (Poisson with a grid of piecewise
kappa regions and a load amplitude over two decades, or elasticity); a global
POD ROM and an angle-clustered local ROM (k-medoids, input k-NN classifier);
for each, the smallest N whose worst relative L2 error against the full FE
solution on held-out parameters is <= ``tol``; then the best-of-3 time of one
ROM solve (reduced assembly + solve + lift) against one full FE solve
(sum of preassembled affine operators + sparse direct solve).
"""
from __future__ import annotations


import numpy as np
import skfem

from . import machine


def run(problem: str = "poisson", n: int = 64, regions: tuple = (2, 2), n_train: int = 150, n_test: int = 20,
        k: int = 3, tol: float = 1e-3, seed: int = 0) -> str:
    """Run the benchmark and return its table (text)."""
    from graphfem.analysis.galerkin_rom import (GalerkinROM, LocalGalerkinROM, elasticity_problem,
                                                poisson_problem, relative_error, time_call)
    from graphfem.analysis.rom import InputClassifier, SnapshotSet, cluster_snapshots, pod

    m = skfem.MeshTri.init_tensor(np.linspace(0, 1, n + 1), np.linspace(0, 1, n + 1))
    prob = poisson_problem(m, regions) if problem == "poisson" else elasticity_problem(m, regions)
    rng = np.random.default_rng(seed)
    Q = prob.n_params - 1

    def draw(s):
        return np.c_[10 ** rng.uniform(-1, 1, (s, Q)), 10 ** rng.uniform(0, 2, s)]

    P_tr, P_te = draw(n_train), draw(n_test)
    U_tr = prob.snapshots(P_tr)
    U_te = prob.snapshots(P_te)
    ss = SnapshotSet(U_tr, prob.M, params=np.log10(P_tr))
    t_fe = float(np.mean([time_call(prob.solve, mu, repeat=3) for mu in P_te[:5]]))

    rows = []
    glob = pod(ss)
    grom = GalerkinROM(prob, glob.modes(ss))
    for N in range(1, glob.n_modes + 1):
        rom = grom.truncated(N)
        errs = [relative_error(prob, U_te[:, i], rom.solve(mu)) for i, mu in enumerate(P_te)]
        if max(errs) <= tol or N == glob.n_modes:
            t = float(np.mean([time_call(rom.solve, mu) for mu in P_te[:5]]))
            rows.append(("global POD", 1, N, max(errs), np.mean(errs), t))
            break

    cl = cluster_snapshots(ss, k, dissimilarity="angle", method="kmedoids", seed=seed)
    clf = InputClassifier(np.log10(P_tr), cl.labels)
    lab_te = clf.predict(np.log10(P_te))
    lbases = [pod(ss, np.flatnonzero(cl.labels == c)) for c in range(cl.k)]
    lfull = LocalGalerkinROM(prob, [(b.modes(ss), None) for b in lbases])
    for N in range(1, max(b.n_modes for b in lbases) + 1):
        loc = LocalGalerkinROM(prob, [])
        loc.roms = [r.truncated(N) for r in lfull.roms]
        errs = [relative_error(prob, U_te[:, i], loc.solve(mu, cluster=int(c))[0])
                for i, (mu, c) in enumerate(zip(P_te, lab_te))]
        if max(errs) <= tol or N == max(b.n_modes for b in lbases):
            t = float(np.mean([time_call(loc.roms[int(c)].solve, mu) for mu, c in zip(P_te[:5], lab_te[:5])]))
            rows.append((f"local POD (angle k-medoids, k-NN)", cl.k, N, max(errs), np.mean(errs), t))
            break

    lines = [f"graphfem bench rom: {problem}, {prob.n_dofs} dofs ({n}x{n} P1), {Q} kappa regions + load, "
             f"{n_train} train / {n_test} test parameters, target max rel. L2 error {tol:g}",
             f"machine: {machine()}",
             f"full FE solve: {t_fe * 1e3:.3f} ms (sum of affine operators + sparse direct solve)",
             "",
             f"{'ROM':<36} {'K':>2} {'N':>3} {'max err':>9} {'mean err':>9} {'solve ms':>9} {'ROM/FE':>8}"]
    for name, K, N, emax, emean, t in rows:
        lines.append(f"{name:<36} {K:>2} {N:>3} {emax:9.2e} {emean:9.2e} {t * 1e3:9.4f} {t / t_fe:8.4f}")
    return "\n".join(lines)

