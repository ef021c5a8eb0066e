"""Local reduced bases for a Poisson family with a moving kappa interface (runs in well under a minute).

Family: -div(kappa grad u) = f on the unit square, u = 0 on the boundary, kappa
constant on 16 vertical strips, kappa_q = 10^(2 * sigmoid((x_q - s) / 0.04)):
a smooth jump of two decades located at s in [0.1, 0.9] (the "front"), and a
load f over two decades. Every snapshot is a scikit-fem FE solve.

The script clusters the snapshots with the angle dissimilarity (k-medoids) and
with Euclidean k-means, builds local POD bases, compares them with global POD,
prints our (K, N) recommendation, writes a `rom cluster`-style report, and solves
a new case with the local Galerkin ROM (cluster recommended by the k-NN
classifier on the inputs (s, log10 f)). It also writes the family as
``family.npz`` and its mesh as ``square.vtu``, the inputs of ``graphfem rom
cluster`` and ``graphfem rom solve``.

    python examples/rom_clusters.py [--out out/rom_example]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import skfem  # noqa: E402

from graphfem.analysis.galerkin_rom import GalerkinROM, poisson_problem, relative_error, time_call  # noqa: E402
from graphfem.analysis.rom import SnapshotData, SnapshotSet, analyse  # noqa: E402
from graphfem.cli.rom import write_report  # noqa: E402
from graphfem.meshes import Mesh  # noqa: E402

STRIPS = 16


def kappa_params(s: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Problem parameters (kappa_1..kappa_16, f) for interface positions s and loads f."""
    xq = (np.arange(STRIPS) + 0.5) / STRIPS
    kap = 10 ** (2.0 / (1.0 + np.exp(-(xq[None, :] - s[:, None]) / 0.04)))
    return np.c_[kap, f]


def main(out: Path, n: int = 40, n_train: int = 240, n_test: int = 60, K: int = 4, N: int = 4) -> dict:
    t0 = time.perf_counter()
    mesh = skfem.MeshTri.init_tensor(np.linspace(0, 1, n + 1), np.linspace(0, 1, n + 1))
    prob = poisson_problem(mesh, (STRIPS, 1))
    rng = np.random.default_rng(0)
    s = rng.uniform(0.1, 0.9, n_train + n_test)
    f = 10 ** rng.uniform(0, 2, n_train + n_test)
    P = kappa_params(s, f)
    U = prob.snapshots(P)
    t_fe_all = time.perf_counter() - t0
    inputs = np.c_[s, np.log10(f)]                      # what the classifier sees
    ss = SnapshotSet(U, prob.M, params=inputs)
    tr, te = np.arange(n_train), np.arange(n_train, n_train + n_test)

    res = {}
    for name, dis, meth in (("angle k-medoids", "angle", "kmedoids"), ("Euclidean k-means", "euclidean", "kmeans")):
        res[name] = analyse(ss, tr, te, K, N, dis, meth, p=0.9, tol=1e-2, n_max=12, seed=0)

    out.mkdir(parents=True, exist_ok=True)
    # the family as `graphfem rom cluster` reads it (family.npz), and its mesh for `graphfem rom solve`
    M = prob.M.tocsr()
    np.savez(out / "family.npz", train=U[:, tr].T, test=U[:, te].T, train_params=inputs[tr], test_params=inputs[te],
             mass_data=M.data, mass_indices=M.indices, mass_indptr=M.indptr, points=mesh.p.T, cells=mesh.t.T,
             cell_type="triangle", n_comp=1, problem=json.dumps(prob.config))
    Mesh.from_skfem(mesh).write(out / "square.vtu")
    a = res["angle k-medoids"]
    data = SnapshotData(ss, tr, te, (mesh.p.T, mesh.t.T, "triangle"), 1, prob.config, "P1 mass")
    report = out / "report"
    report.mkdir(exist_ok=True)
    write_report(data, a, report)

    # figure: clusters in input space + local vs global curves
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    cl = a.clustering
    for c in range(cl.k):
        m = cl.labels == c
        ax[0].scatter(s[tr][m], f[tr][m], s=12, label=f"cluster {c}")
    ax[0].set_yscale("log")
    ax[0].set_xlabel("interface position s")
    ax[0].set_ylabel("load f")
    ax[0].set_title(f"angle k-medoids clusters (K={cl.k})")
    ax[0].legend(fontsize=7)
    for name, r in res.items():
        ax[1].semilogy(r.curves["N"], r.curves["local_deployed_mean"], "o-", label=f"local, {name} (k-NN)")
    g = a.curves
    ax[1].semilogy(g["global_N"][:30], g["global_mean"][:30], "s-", label="global POD")
    ax[1].axhline(1e-2, color="grey", lw=0.8, ls=":")
    ax[1].set_xlabel("modes per basis N")
    ax[1].set_ylabel("mean relative test projection error")
    ax[1].set_title(f"K={K}: local vs global")
    ax[1].grid(True, which="both", alpha=0.3)
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "local_vs_global.png", dpi=120)
    plt.close(fig)

    # Galerkin ROM for a new case on the recommended cluster basis
    s_new, f_new = 0.37, 25.0
    mu = kappa_params(np.array([s_new]), np.array([f_new]))[0]
    c = int(a.classifier.predict(np.array([[s_new, np.log10(f_new)]]))[0])
    rom = GalerkinROM(prob, a.bases[c].modes(ss))
    u_fe, u_rom = prob.solve(mu), rom.solve(mu)
    t_fe, t_rom = time_call(prob.solve, mu, repeat=3), time_call(rom.solve, mu)

    rec = a.summary["efficiency_estimate"]["recommended"]
    out_json = {
        "snapshots": {"n_dofs": int(prob.n_dofs), "train": n_train, "test": n_test, "fe_seconds": t_fe_all},
        "test_error_K{}_N{}".format(K, N): {name: r.summary["test_error_local"] for name, r in res.items()},
        "global_N": a.summary["test_error_global_N"], "global_KN": a.summary["test_error_global_KN"],
        "recommended": rec,
        "rom_new_case": {"s": s_new, "f": f_new, "cluster": c, "N": rom.n_modes,
                         "rel_error_l2": relative_error(prob, u_fe, u_rom), "speedup": t_fe / t_rom},
    }
    (out / "example.json").write_text(json.dumps(out_json, indent=2))
    return out_json


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/rom_example"))
    t = time.perf_counter()
    r = main(ap.parse_args().out)
    print(json.dumps(r, indent=2))
    print(f"done in {time.perf_counter() - t:.1f} s")
