"""Tests for physics-informed clustering of local reduced bases and the Galerkin ROM.

Known answers from shared/methods/rom_clustering.md.
"""
import itertools
import json

import numpy as np
import pytest
import skfem
import typer
from typer.testing import CliRunner

from graphfem.analysis.galerkin_rom import (GalerkinROM, elasticity_problem, poisson_problem,
                                            relative_error)
from graphfem.analysis.rom import (InputClassifier, SnapshotSet, angle_dissimilarity, assign,
                                   cluster_snapshots, efficiency_estimate, grassmann_dissimilarity,
                                   kmedoids, pod, principal_angles, projection_error, projection_errors)
from graphfem.cli.rom import register


def line_mass(x):
    """P1 mass matrix on the 1-D mesh with nodes x."""
    m = skfem.MeshLine(np.asarray(x, dtype=float))
    return skfem.BilinearForm(lambda u, v, w: u * v).assemble(skfem.Basis(m, skfem.ElementLineP1())).tocsr()


def front_family(x, n, rng, width=0.03):
    """Moving front a * tanh((x - s) / width): s uniform in [0.1, 0.9], amplitude a over two decades."""
    s = rng.uniform(0.1, 0.9, n)
    a = 10 ** rng.uniform(0, 2, n)
    return (a[:, None] * np.tanh((x[None, :] - s[:, None]) / width)), np.c_[s, a]


def same_partition(a, b):
    return len(set(zip(a, b))) == len(set(a)) == len(set(b))


# --------------------------------------------------------------------------- angle dissimilarity
def test_angle_equals_projection_error_and_is_scale_invariant():
    rng = np.random.default_rng(1)
    x = np.sort(np.r_[0, 1, rng.uniform(0, 1, 198)])
    M = line_mass(x)
    U = rng.standard_normal((200, 6))
    ss = SnapshotSet(U, M)
    D = angle_dissimilarity(ss)
    for i, j in itertools.product(range(6), range(6)):
        v = U[:, j] / np.sqrt(U[:, j] @ M @ U[:, j])
        assert abs(D[i, j] - projection_error(U[:, i], v[:, None], M)) < 1e-12
    alpha, beta = -3.7e3, 2.0e-4
    ss2 = SnapshotSet(np.c_[alpha * U[:, 0], beta * U[:, 1]], M)
    assert abs(angle_dissimilarity(ss2)[0, 1] - D[0, 1]) < 1e-12


def test_angle_nearly_parallel_has_no_cancellation():
    rng = np.random.default_rng(2)
    x = np.linspace(0, 1, 101)
    M = line_mass(x)
    u, w = rng.standard_normal(101), rng.standard_normal(101)
    w -= (u @ M @ w) / (u @ M @ u) * u                          # M-orthogonal to u
    for eps in (1e-5, 1e-9, 1e-12):
        v = u + eps * w
        nu2, nw2 = u @ M @ u, w @ M @ w
        exact = eps * np.sqrt(nw2) / np.sqrt(nu2 + eps**2 * nw2)
        d = angle_dissimilarity(SnapshotSet(np.c_[u, v], M))
        assert abs(d[0, 1] - exact) < 1e-12 * max(1, exact) and abs(d[1, 0] - exact) < 1e-12
        assert abs(d[0, 1] / exact - 1) < 1e-3                   # relative accuracy, too


def test_rescaling_keeps_angle_clusters_but_changes_euclidean_kmeans():
    rng = np.random.default_rng(3)
    x = np.linspace(0, 1, 201)
    M = line_mass(x)
    X, _ = front_family(x, 120, rng)
    f = 10 ** rng.uniform(-2, 2, len(X))
    a, b = SnapshotSet.from_rows(X, M), SnapshotSet.from_rows(X * f[:, None], M)
    assert np.abs(angle_dissimilarity(a) - angle_dissimilarity(b)).max() < 1e-6
    la = cluster_snapshots(a, 4, seed=0).labels
    lb = cluster_snapshots(b, 4, seed=0).labels
    assert np.array_equal(la, lb)
    ka = cluster_snapshots(a, 4, method="kmeans", seed=0).labels
    kb = cluster_snapshots(b, 4, method="kmeans", seed=0).labels
    assert not same_partition(ka, kb)


# --------------------------------------------------------------------------- clustering
def test_kmedoids_finds_the_exhaustive_optimum():
    rng = np.random.default_rng(4)
    P = rng.standard_normal((11, 2))
    D = np.linalg.norm(P[:, None] - P[None], axis=2) ** 1.5     # not a metric: still fine
    best = min(D[:, list(c)].min(axis=1).sum() for c in itertools.combinations(range(11), 3))
    labels, med, cost = kmedoids(D, 3, n_init=5, seed=0)
    assert cost == pytest.approx(best, rel=1e-12)
    assert np.array_equal(labels, D[:, med].argmin(axis=1))


def test_grassmann_distances_and_simulation_clustering():
    rng = np.random.default_rng(5)
    n = 80
    M = line_mass(np.linspace(0, 1, n))
    A, B = rng.standard_normal((n, 2)), rng.standard_normal((n, 2))
    cols, groups = [], []
    for s in range(6):                                          # 3 simulations in span(A), 3 in span(B)
        base = A if s < 3 else B
        cols.append(base @ rng.standard_normal((2, 5)) + 1e-6 * rng.standard_normal((n, 5)))
        groups += [s] * 5
    ss = SnapshotSet(np.hstack(cols), M, groups=np.array(groups))
    D, ids = grassmann_dissimilarity(ss, n_modes=2)
    assert D[0, 1] < 1e-4 and D[3, 4] < 1e-4 and D[0, 4] > 0.1
    labels, _, _ = kmedoids(D, 2, seed=0)
    assert same_partition(labels, [0, 0, 0, 1, 1, 1])
    # Gram-based angles agree with the vector-based principal angles
    Pa = pod(ss, np.flatnonzero(ss.groups == 0), n_modes=2).modes(ss)
    Pb = pod(ss, np.flatnonzero(ss.groups == 4), n_modes=2).modes(ss)
    assert np.linalg.norm(principal_angles(Pa, Pb, M)) == pytest.approx(D[0, 4], abs=1e-8)
    assert np.allclose(principal_angles(Pa, Pa @ np.array([[0.6, 0.8], [-0.8, 0.6]]), M), 0, atol=1e-7)


def test_input_classifier_and_efficiency_estimate():
    X = np.array([[0.0, 100.0], [0.1, 300.0], [1.0, 120.0], [1.1, 310.0]])
    clf = InputClassifier(X, np.array([0, 0, 1, 1]), k=1)
    assert clf.predict(np.array([[0.05, 280.0], [1.05, 110.0]])).tolist() == [0, 1]
    errors = np.array([[0.1, 0.5, 0.3], [0.4, 0.2, 0.6], [0.9, 0.8, 0.2]])
    est = efficiency_estimate(errors, np.array([0, 1, 2]), p=0.75)
    assert est["E_local"] == pytest.approx((0.1 + 0.2 + 0.2) / 3)
    assert est["E_miss"] == pytest.approx((0.4 + 0.5 + 0.3) / 3)
    assert est["E_p"] == pytest.approx(0.75 * est["E_local"] + 0.25 * est["E_miss"])


# --------------------------------------------------------------------------- POD
def test_pod_is_m_orthonormal_and_affine_variant_is_exact_on_training():
    rng = np.random.default_rng(6)
    x = np.linspace(0, 1, 151)
    M = line_mass(x)
    X, _ = front_family(x, 30, rng)
    ss = SnapshotSet.from_rows(X, M)
    b = pod(ss, n_modes=8)
    Phi = b.modes(ss)
    assert np.abs(Phi.T @ M @ Phi - np.eye(8)).max() < 1e-10
    e_gram = projection_errors(ss, b)
    e_vec = [projection_error(X[i], Phi, M) for i in range(30)]
    assert np.allclose(e_gram, e_vec, atol=1e-7)
    assert pod(ss, energy=0.99).n_modes < pod(ss, energy=0.9999).n_modes
    ba = pod(ss, np.arange(10), affine=True)
    assert ba.n_modes == 9
    assert projection_errors(ss, ba, np.arange(10)).max() < 1e-6
    mean = ba.mean(ss)
    assert projection_error(X[3], ba.modes(ss), M, mean) < 1e-10


def graded(n):
    return np.linspace(0, 1, n + 1) ** 3                        # nodes crowd near x = 0


def test_mass_pod_is_stable_under_refinement_and_nodal_pod_is_not():
    centres = np.linspace(0, 1, 8)
    s_mass, s_nodal, ns = [], [], []
    for n in (100, 200, 400, 800):
        x = graded(n)
        U = np.exp(-((x[:, None] - centres[None, :]) / 0.15) ** 2)
        s_mass.append(pod(SnapshotSet(U, line_mass(x))).sigma[:3])
        s_nodal.append(pod(SnapshotSet(U)).sigma[:3])
        ns.append(n + 1)
    s_mass, s_nodal = np.array(s_mass), np.array(s_nodal)
    assert np.abs(s_mass[-1] / s_mass[0] - 1).max() < 5e-3      # converges (O(h^2)): no growth
    ratio = s_nodal[1:, 0] / s_nodal[:-1, 0]
    assert np.allclose(ratio, np.sqrt(np.array(ns[1:]) / np.array(ns[:-1])), rtol=0.02)


def test_nodal_pod_picks_the_wrong_first_mode_on_a_locally_refined_mesh():
    x = graded(400)
    M = line_mass(x)
    left = np.exp(-((x - 0.02) / 0.03) ** 2)                    # small in L2, on many nodes
    right = np.exp(-((x - 0.7) / 0.2) ** 2)                     # large in L2, on few nodes
    U = np.c_[left, right, 0.9 * left + 0.1 * right, 0.1 * left + 0.9 * right]

    def cos_m(a, b):
        return abs(a @ M @ b) / np.sqrt((a @ M @ a) * (b @ M @ b))

    assert (right @ M @ right) > 3 * (left @ M @ left) and left @ left > 1.5 * (right @ right)
    mode_m = pod(SnapshotSet(U, M), n_modes=1).modes(SnapshotSet(U, M))[:, 0]
    mode_n = pod(SnapshotSet(U), n_modes=1).modes(SnapshotSet(U))[:, 0]
    assert cos_m(mode_m, right) > 0.99
    assert cos_m(mode_n, right) < 0.6 and cos_m(mode_n, left) > 0.85


# --------------------------------------------------------------------------- local vs Euclidean
def test_angle_local_bases_beat_euclidean_kmeans_on_a_moving_front():
    rng = np.random.default_rng(7)
    x = np.linspace(0, 1, 301)
    M = line_mass(x)
    Xtr, _ = front_family(x, 200, rng)
    Xte, _ = front_family(x, 100, rng)
    ss = SnapshotSet.from_rows(np.vstack([Xtr, Xte]), M)
    tr, te = np.arange(200), np.arange(200, 300)
    K, N = 4, 3
    err = {}
    for name, dis, meth in (("angle", "angle", "kmedoids"), ("kmeans", "euclidean", "kmeans")):
        cl = cluster_snapshots(ss, K, tr, dis, meth, seed=0)
        bases = [pod(ss, tr[cl.labels == c], n_modes=N) for c in range(K)]
        lab = assign(ss, cl, te)
        err[name] = np.mean([projection_errors(ss, bases[c], [j])[0] for c, j in zip(lab, te)])
    assert err["angle"] < 0.5 * err["kmeans"]


# --------------------------------------------------------------------------- Galerkin ROM
@pytest.mark.parametrize("make", [lambda m: poisson_problem(m, (2, 2)), lambda m: elasticity_problem(m, (2, 1))])
def test_galerkin_rom_exact_in_span_and_accurate_for_new_parameters(make):
    m = skfem.MeshTri.init_tensor(np.linspace(0, 2, 25), np.linspace(0, 1, 13))
    prob = make(m)
    rng = np.random.default_rng(8)
    Q = prob.n_params - 1
    P = np.c_[10 ** rng.uniform(-1, 1, (30, Q)), 10 ** rng.uniform(0, 2, 30)]
    U = prob.snapshots(P)
    ss = SnapshotSet(U, prob.M, params=P)
    Phi = U[:, :8].copy()                                        # exact span: M-Gram-Schmidt, twice
    for _ in range(2):
        for j in range(8):
            Phi[:, j] -= Phi[:, :j] @ (Phi[:, :j].T @ (prob.M @ Phi[:, j]))
            Phi[:, j] /= np.sqrt(Phi[:, j] @ prob.M @ Phi[:, j])
    full = GalerkinROM(prob, Phi)
    for i in range(8):
        assert relative_error(prob, U[:, i], full.solve(P[i])) < 1e-9
    # linear in the load: a scaled load is also in the span
    mu = P[0].copy()
    mu[-1] *= 7.3
    assert relative_error(prob, prob.solve(mu), full.solve(mu)) < 1e-9
    rom = GalerkinROM(prob, pod(ss, n_modes=20).modes(ss))
    mu = np.r_[10 ** rng.uniform(-1, 1, Q), 5.0]
    assert relative_error(prob, prob.solve(mu), rom.solve(mu)) < 1e-3
    # the affine pieces add up to the whole-domain operator
    A1 = prob.operator(np.r_[np.ones(Q), 1.0])
    if prob.name == "poisson":
        whole = skfem.BilinearForm(lambda u, v, w: skfem.helpers.dot(skfem.helpers.grad(u), skfem.helpers.grad(v)))
        assert abs(A1 - whole.assemble(prob.basis)).max() < 1e-12


# --------------------------------------------------------------------------- CLI
@pytest.fixture()
def poisson_data(tmp_path):
    from graphfem.meshes import Mesh

    mesh = Mesh.unit_square(12)
    mesh_path = tmp_path / "square.vtu"
    mesh.write(mesh_path)
    prob = poisson_problem(mesh, (2, 2))
    rng = np.random.default_rng(9)
    P = np.c_[10 ** rng.uniform(-1, 1, (50, 4)), 10 ** rng.uniform(0, 2, 50)]
    U = prob.snapshots(P).T
    data = tmp_path / "family.npz"
    np.savez(data, train=U[:40], test=U[40:], train_params=P[:40], test_params=P[40:],
             mass_data=prob.M.data, mass_indices=prob.M.indices, mass_indptr=prob.M.indptr,
             points=mesh.points, cells=mesh.cells, cell_type=mesh.cell_type, problem=json.dumps(prob.config))
    return data, mesh_path


def cli():
    app = typer.Typer()
    register(app)

    @app.command()
    def version() -> None:                                       # keeps `rom` a sub-command
        pass
    return app


def test_cli_cluster_and_solve(poisson_data, tmp_path):
    data, mesh_path = poisson_data
    rep = tmp_path / "report"
    r = CliRunner().invoke(cli(), ["rom", "cluster", str(data), "-k", "3", "--modes", "6", "-o", str(rep)])
    assert r.exit_code == 0, r.output
    for f in ("summary.json", "labels.csv", "bases.npz", "errors.png", "modes.vtu", "problem.json"):
        assert (rep / f).exists()
    s = json.loads((rep / "summary.json").read_text())
    for key in ("test_error_local", "test_error_global_N", "test_error_global_KN"):
        assert {"mean", "q90"} <= set(s[key])
    assert s["test_error_global_KN"]["mean"] <= s["test_error_global_N"]["mean"]
    assert {"K", "N"} == set(s["recommended"])
    assert "not the paper" in s["efficiency_estimate"]["name"]
    assert len((rep / "labels.csv").read_text().splitlines()) == 51
    r = CliRunner().invoke(cli(), ["rom", "solve", str(rep), str(mesh_path), "--param", "1,2,0.5,3,10",
                                   "--check", "-o", str(tmp_path / "u.vtu")])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output.strip().splitlines()[-1])
    assert info["n_modes"] == 6 and info["rel_error_l2"] < 0.5 and (tmp_path / "u.vtu").exists()


def test_cli_bad_input_is_one_line_and_leaves_no_report(tmp_path, capsys):
    from graphfem.cli import main

    bad = tmp_path / "bad.npz"
    np.savez(bad, snapshots=np.ones((4, 3)))
    rep = tmp_path / "report"
    assert main(["rom", "cluster", str(bad), "-k", "2", "--modes", "1", "-o", str(rep)]) == 1
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("graphfem: error: ") and str(bad) in lines[0], lines
    assert "train" in lines[0]
    assert not rep.exists() and not any(p.name.startswith(".report") for p in tmp_path.iterdir())
    assert main(["rom", "cluster", str(tmp_path / "missing.npz"), "-k", "2", "--modes", "1", "-o", str(rep)]) == 1
    assert "missing.npz" in capsys.readouterr().err and not rep.exists()


def test_hdf5_dataset_with_mesh_gets_the_p1_mass(tmp_path):
    import h5py

    from graphfem.analysis.rom import load_snapshot_data

    m = skfem.MeshTri.init_tensor(np.linspace(0, 1, 9), np.linspace(0, 1, 9))
    rng = np.random.default_rng(10)
    path = tmp_path / "sims.h5"
    with h5py.File(path, "w") as f:
        f["mesh/points"] = m.p.T
        f["mesh/cells"] = m.t.T
        for s in range(5):
            g = f.create_group(f"sim{s}")
            g["outputs/u"] = rng.standard_normal((4, m.p.shape[1], 2))        # (T, n, c)
            g.attrs["params"] = [s, 2.0 * s]
            g.attrs["split"] = "test" if s == 4 else "train"
    d = load_snapshot_data(path)
    assert d.snapshots.U.shape == (2 * m.p.shape[1], 20) and d.n_comp == 2
    assert d.test_idx.tolist() == [16, 17, 18, 19] and d.snapshots.params.shape == (20, 2)
    ones = np.ones(2 * m.p.shape[1])
    assert ones @ d.snapshots.M @ ones == pytest.approx(2.0)                 # area x 2 components
    assert d.snapshots.groups.tolist() == sum([[s] * 4 for s in range(5)], [])
