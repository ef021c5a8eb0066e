"""``graphfem rom``: cluster snapshot families into local reduced bases, and solve new cases with them.

    graphfem rom cluster DATA -k K --modes N -o REPORT_DIR [--dissimilarity angle|euclidean]
                         [--method kmedoids|kmeans|agglomerative]
    graphfem rom solve REPORT_DIR MESH --param 1,2,3,4,1 [-o OUT.vtu] [--check]

The report directory is written to a temporary folder next to it and renamed
into place only when complete.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import typer

from graphfem.meshes.errors import InputError, OptionValueError

REPORT_FILES = ("summary.json", "labels.csv", "bases.npz", "errors.png")


def write_report(data, result, out: Path) -> None:
    """Write the report of an :func:`~graphfem.analysis.rom.analyse` result into folder ``out``
    (summary.json, labels.csv, bases.npz, errors.png, modes.vtu when the mesh is known,
    problem.json when the data names its problem)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ss, cl = data.snapshots, result.clustering
    s = dict(result.summary, curves=result.curves, mass=data.mass_source, efficiency_grid=result.grid)
    (out / "summary.json").write_text(json.dumps(s, indent=2))

    # labels: train = cluster, test = deployed cluster
    lab = np.full(ss.n_snapshots, -1)
    lab[cl.train_idx] = cl.labels
    lab[data.test_idx] = result.test_labels
    P = ss.params
    head = "index,split,label" + ("".join(f",param_{j}" for j in range(P.shape[1])) if P is not None else "")
    lines = [head]
    is_test = np.zeros(ss.n_snapshots, bool)
    is_test[data.test_idx] = True
    for i in np.concatenate([cl.train_idx, data.test_idx]):
        row = f"{i},{'test' if is_test[i] else 'train'},{lab[i]}"
        if P is not None:
            row += "".join(f",{v:.17g}" for v in P[i])
        lines.append(row)
    (out / "labels.csv").write_text("\n".join(lines) + "\n")

    # bases
    arrays = {"k": cl.k, "n_comp": data.n_comp, "medoids": cl.medoids,
              "train_labels": cl.labels, "method": cl.method, "dissimilarity": cl.dissimilarity}
    for c, b in enumerate(result.bases):
        arrays[f"modes_{c}"] = b.modes(ss)
        arrays[f"medoid_{c}"] = ss.U[:, cl.medoids[c]]
        if b.centre is not None:
            arrays[f"mean_{c}"] = b.mean(ss)
    arrays["global_modes"] = result.global_basis.modes(ss)
    if P is not None:
        arrays["train_params"] = P[cl.train_idx]
    np.savez(out / "bases.npz", **arrays)

    if data.problem is not None:
        (out / "problem.json").write_text(json.dumps(data.problem, indent=2))

    if data.mesh is not None and ss.n_dof == len(data.mesh[0]) * data.n_comp:
        import meshio

        pts, cells, ct = data.mesh
        pts3 = np.zeros((len(pts), 3))
        pts3[:, : pts.shape[1]] = pts
        pd = {}
        shape = (len(pts), data.n_comp) if data.n_comp > 1 else (len(pts),)
        for c, b in enumerate(result.bases):
            pd[f"medoid_{c}"] = arrays[f"medoid_{c}"].reshape(shape)
            for i in range(b.n_modes):
                pd[f"cluster{c}_mode{i}"] = arrays[f"modes_{c}"][:, i].reshape(shape)
        meshio.Mesh(pts3, [(ct, np.asarray(cells))], point_data=pd).write(out / "modes.vtu")

    cv = result.curves
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(cv["N"], cv["local_deployed_mean"], "o-", label=f"local K={cl.k}, deployed (mean)")
    ax.semilogy(cv["N"], cv["local_deployed_q90"], "o:", label="local, deployed (90% quantile)")
    ax.semilogy(cv["N"], cv["local_oracle_mean"], "^--", label="local, oracle cluster (mean)")
    ax.semilogy(cv["global_N"], cv["global_mean"], "s-", label="global POD (mean)")
    ax.semilogy(cv["global_N"], cv["global_q90"], "s:", label="global POD (90% quantile)")
    ax.axvline(result.summary["n"], color="grey", lw=0.8)
    ax.set_xlabel("basis size N (modes per cluster)")
    ax.set_ylabel("relative test projection error (M-norm)")
    ax.set_title(f"{cl.dissimilarity} {cl.method}: local vs global")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "errors.png", dpi=120)
    plt.close(fig)


def register(app: typer.Typer) -> None:
    """Add the ``rom`` sub-app (``cluster``, ``solve``) to ``app``."""
    rom = typer.Typer(help="Local reduced-order bases by physics-informed clustering; Galerkin ROM.",
                      no_args_is_help=True)

    @rom.command("cluster")
    def cluster(
        data: Path = typer.Argument(..., help="snapshots: .npz (train[, test, mass..]) or HDF5 dataset"),
        k: int = typer.Option(..., "-k", "--clusters", help="number of clusters K"),
        n: int = typer.Option(..., "--modes", help="modes per local basis N"),
        out: Path = typer.Option(..., "-o", "--output", help="report folder (replaced atomically)"),
        dissimilarity: str = typer.Option("angle", help="angle | euclidean"),
        method: str = typer.Option("kmedoids", help="kmedoids | kmeans | agglomerative"),
        affine: bool = typer.Option(False, help="centred (affine) local bases"),
        p: float = typer.Option(0.9, help="classifier accuracy assumed by the efficiency estimate"),
        tol: float = typer.Option(1e-2, help="target mean relative error for the (K, N) recommendation"),
        field: str = typer.Option(None, help="HDF5 field name (default: the first)"),
        test_fraction: float = typer.Option(0.2, help="held-out fraction when DATA has no test set"),
        seed: int = typer.Option(0, help="random seed"),
    ) -> None:
        """Cluster snapshots, build local POD bases, compare with global POD, recommend (K, N)."""
        from graphfem.analysis.rom import analyse, load_snapshot_data
        from graphfem.meshes.io import atomic_dir

        if dissimilarity not in ("angle", "euclidean"):
            raise OptionValueError(f"--dissimilarity must be angle or euclidean, got {dissimilarity!r}")
        if method not in ("kmedoids", "kmeans", "agglomerative"):
            raise OptionValueError(f"--method must be kmedoids, kmeans or agglomerative, got {method!r}")
        if k < 1 or n < 1:
            raise InputError(f"-k and --modes must be positive, got k={k}, modes={n}")
        d = load_snapshot_data(data, field, test_fraction, seed)
        if k > d.train_idx.size:
            raise InputError(f"k={k} exceeds the {d.train_idx.size} training snapshots", data)
        res = analyse(d.snapshots, d.train_idx, d.test_idx, k, n, dissimilarity, method,
                      affine=affine, p=p, tol=tol, seed=seed)
        with atomic_dir(out) as tmp:
            write_report(d, res, tmp)
        s = res.summary
        typer.echo(f"K={s['k']} N={n}: test error local {s['test_error_local']['mean']:.3e} "
                   f"(q90 {s['test_error_local']['q90']:.3e}), global N {s['test_error_global_N']['mean']:.3e}, "
                   f"global K*N {s['test_error_global_KN']['mean']:.3e}; recommended K={s['recommended']['K']} "
                   f"N={s['recommended']['N']}; report in {out}")

    @rom.command("solve")
    def solve(
        report: Path = typer.Argument(..., help="report folder written by `rom cluster`"),
        mesh: Path = typer.Argument(..., help="mesh file the bases live on"),
        param: str = typer.Option(..., help="comma-separated parameters, e.g. kappa_1,..,kappa_Q,f"),
        problem: str = typer.Option(None, help="poisson | elasticity (default: the report's problem.json)"),
        regions: str = typer.Option(None, help="region grid, e.g. 2x2"),
        nu: float = typer.Option(None, help="Poisson ratio (elasticity)"),
        select: str = typer.Option("classifier", help="cluster choice: classifier | residual"),
        cluster: int = typer.Option(None, help="force this cluster"),
        out: Path = typer.Option(None, "-o", "--output", help="write the ROM solution (VTU)"),
        check: bool = typer.Option(False, help="also run the full FE solve: error and speed-up"),
    ) -> None:
        """Solve a new case with the local Galerkin ROM stored in REPORT."""
        info = run_solve(report, mesh, param, problem, regions, nu, select, cluster, out, check)
        typer.echo(json.dumps(info))

    app.add_typer(rom, name="rom")


def run_solve(report: Path, mesh_path: Path, param: str, problem: str | None = None, regions: str | None = None,
              nu: float | None = None, select: str = "classifier", cluster: int | None = None,
              out: Path | None = None, check: bool = False) -> dict:
    """The work of ``rom solve``; returns the printed JSON record."""
    from graphfem.analysis.galerkin_rom import LocalGalerkinROM, build_problem, relative_error, time_call
    from graphfem.analysis.rom import InputClassifier
    from graphfem.meshes import Mesh

    report, mesh_path = Path(report), Path(mesh_path)
    if not (report / "bases.npz").exists():
        raise InputError("not a report folder (no bases.npz); run `graphfem rom cluster` first", report)
    config = json.loads((report / "problem.json").read_text()) if (report / "problem.json").exists() else {}
    if problem:
        config["problem"] = problem
    if regions:
        try:
            config["regions"] = [int(r) for r in regions.lower().split("x")]
        except ValueError:
            raise InputError(f"--regions must look like 2x2, got {regions!r}") from None
    if nu is not None:
        config["nu"] = nu
    if "problem" not in config:
        raise InputError("no problem.json in the report: give --problem", report)
    try:
        mu = np.array([float(v) for v in param.split(",")])
    except ValueError:
        raise OptionValueError(f"--param must be comma-separated numbers, got {param!r}") from None
    mesh = Mesh.read(mesh_path)
    prob = build_problem(mesh, config)
    with np.load(report / "bases.npz") as z:
        K = int(z["k"])
        bases = [(z[f"modes_{c}"], z[f"mean_{c}"] if f"mean_{c}" in z.files else None) for c in range(K)]
        clf = InputClassifier(z["train_params"], z["train_labels"]) if "train_params" in z.files else None
    if bases[0][0].shape[0] != prob.n_dofs:
        raise InputError(f"the report's bases have {bases[0][0].shape[0]} dofs, the {config['problem']} "
                         f"problem on this mesh has {prob.n_dofs}", mesh_path)
    if clf is not None and clf.Z.shape[1] != mu.size:
        clf = None
    if cluster is not None and not 0 <= cluster < K:
        raise InputError(f"--cluster must lie in 0..{K - 1}, got {cluster}")
    rom = LocalGalerkinROM(prob, bases, clf)
    prob.check(mu)
    t0 = time.perf_counter()
    u, c = rom.solve(mu, select, cluster)
    t_rom = time_call(rom.roms[c].solve, mu)
    info = {"problem": config["problem"], "params": mu.tolist(), "cluster": c, "n_modes": rom.roms[c].n_modes,
            "selection": "forced" if cluster is not None else (select if clf is not None or select == "residual"
                                                               else "residual (no training inputs)"),
            "residual": rom.roms[c].residual(mu, u), "rom_time_s": t_rom,
            "first_call_s": time.perf_counter() - t0}
    if check:
        u_fe = prob.solve(mu)
        t_fe = time_call(prob.solve, mu, repeat=3)
        info.update(fe_time_s=t_fe, rel_error_l2=relative_error(prob, u_fe, u), speedup=t_fe / t_rom)
    if out is not None:
        mesh.write(out, point_data={"u_rom": prob.nodal(u)})
        info["written"] = str(out)
    return info
