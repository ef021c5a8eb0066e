"""Known-answer tests for graphfem.analysis.koopman (method note shared/methods/koopman.md)."""
from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest
import scipy.linalg as sla

from graphfem.analysis import koopman as kp

A_LIN = np.array([[0.9, -0.2], [0.1, 0.7]])
a_, b_, c_ = 0.9, 0.5, 1.0


def invariant_pairs(m: int, seed: int = 0):
    """x+ = a x, y+ = b y + c x^2 sampled uniformly on [-1, 1]^2."""
    X = np.random.default_rng(seed).uniform(-1, 1, (m, 2))
    return X, np.c_[a_ * X[:, 0], b_ * X[:, 1] + c_ * X[:, 0] ** 2]


def nearest(values, targets):
    return np.min(np.abs(np.asarray(values)[:, None] - np.asarray(targets)[None, :]), axis=1)


# --------------------------------------------------------------------- known answers
def test_linear_map_eigenvalues_and_residuals():
    X = np.random.default_rng(0).uniform(-1, 1, (100, 2))
    r = kp.edmd(X, X @ A_LIN.T, dictionary="linear")
    assert np.allclose(np.sort_complex(r.eigenvalues), [0.8 - 0.1j, 0.8 + 0.1j], atol=1e-13)
    assert r.residual_kind == "train" and r.residuals.max() < 1e-12
    assert r.state_residuals.max() < 1e-12
    assert r.reconstruction_error < 1e-12


def test_invariant_subspace_flags_spurious_eigenvalues():
    X, Y = invariant_pairs(1000)
    r = kp.edmd(X, Y, dictionary="monomial:2")  # {1, x, y, x^2, xy, y^2}
    true = np.array([1.0, a_, b_, a_ ** 2])
    good = nearest(r.eigenvalues, true) < 1e-12
    assert good.sum() == 4
    assert r.residuals[good].max() < 1e-13
    assert r.residuals[~good].min() > 0.1


def test_circle_rotation_fourier():
    omega, M = 0.7, 64
    x = 2 * np.pi * np.arange(M) / M  # trapezoid rule on the circle
    r = kp.edmd(x[:, None], ((x + omega) % (2 * np.pi))[:, None], dictionary="fourier:10")
    exact = np.exp(1j * np.arange(-10, 11) * omega)
    assert len(r.eigenvalues) == 21
    assert nearest(r.eigenvalues, exact).max() < 1e-12
    assert r.residuals.max() < 1e-12
    # same rotation with states in [0, 1)
    r1 = kp.edmd((x / (2 * np.pi))[:, None], (((x + omega) % (2 * np.pi)) / (2 * np.pi))[:, None],
                 dictionary="fourier:10:unit")
    assert nearest(r1.eigenvalues, exact).max() < 1e-12


def test_pencil_matches_direct_svd_and_both_numpy_paths():
    X, Y = invariant_pairs(300, seed=1)
    d = kp.Monomial(4).fit(X, None)
    PX, PY, w = d(X), d(Y), np.full(300, 1 / 300)
    P = kp.pencil(PX, PY, w)
    R = np.linalg.qr(np.sqrt(w)[:, None] * PX)[1]
    z = np.array([0.3 + 0.2j, 0.9, 1.1 - 0.5j, -0.4 + 0.8j])
    direct = [np.linalg.svd(np.sqrt(w)[:, None] * (PY - zi * PX) @ np.linalg.inv(R), compute_uv=False)[-1]
              for zi in z]
    exact_path = kp._sigma_min_triangular_pairs(P, z, small=64)
    iter_path = kp._sigma_min_triangular_pairs(P, z, small=0)
    assert np.allclose(exact_path, direct, rtol=1e-9, atol=1e-14)
    assert np.all(iter_path >= exact_path * (1 - 1e-12) - 1e-14)  # the Lanczos estimate is an upper bound
    assert np.allclose(iter_path, exact_path, rtol=1e-6, atol=1e-14)


def test_certified_spectrum_of_rotation():
    omega, M = 0.7, 64
    x = 2 * np.pi * np.arange(M) / M
    r = kp.edmd(x[:, None], ((x + omega) % (2 * np.pi))[:, None], dictionary="fourier:3")
    re, im, tau = kp.pseudospectrum(r, (-1.2, 1.2, -1.2, 1.2, 121))
    pts, vals, E = kp.certified_spectrum(re, im, tau, measure_preserving=True)
    exact = np.exp(1j * np.arange(-3, 4) * omega)
    assert E < 0.02  # grid spacing 0.02
    assert nearest(pts, exact).max() <= E + 1e-12  # every certified point is within E of the spectrum
    assert nearest(exact, pts).max() < 0.03  # and every eigenvalue is found


# --------------------------------------------------------------------- heat equation
@pytest.fixture(scope="module")
def heat():
    """Graded P1 mesh of [0, 1] x [0, 0.7], Dirichlet; exact propagator
    P = V diag(exp(-lam dt)) V^T M from K v = lam M v."""
    import skfem
    from skfem.models.poisson import laplace, mass

    x = np.linspace(0, 1, 16) ** 2
    y = 0.7 * np.linspace(0, 1, 12) ** 1.5
    basis = skfem.Basis(skfem.MeshTri.init_tensor(x, y), skfem.ElementTriP1())
    inner = basis.complement_dofs(basis.get_dofs())
    K = laplace.assemble(basis)[inner][:, inner]
    M = mass.assemble(basis)[inner][:, inner].tocsr()
    lam, V = sla.eigh(K.toarray(), M.toarray())
    dt = 0.002
    mu = np.exp(-lam * dt)
    return {"M": M, "V": V, "mu": mu, "P": V @ np.diag(mu) @ V.T @ M}


def _run(P, x0, steps):
    out = [x0]
    for _ in range(steps):
        out.append(P @ out[-1])
    return np.array(out)


def test_heat_dmd_eigenvalues_exact_on_invariant_subspace(heat):
    r = 6
    x0 = heat["V"][:, :r] @ np.random.default_rng(1).uniform(0.5, 1.5, r)
    res = kp.edmd([_run(heat["P"], x0, 25)], dictionary=f"pod:{r}", mass_matrix=heat["M"], residuals_on="train")
    assert np.abs(res.eigenvalues.imag).max() < 1e-12
    assert np.abs(np.sort(res.eigenvalues.real)[::-1] - heat["mu"][:r]).max() < 1e-10
    assert res.residuals.max() < 1e-10
    assert res.state_residuals.max() < 1e-10


def test_heat_m_pod_ritz_values_real_below_and_bounded(heat):
    """Truncated M-orthonormal POD: Galerkin projection of an M-self-adjoint
    propagator, so the Ritz values are real, lie below the true eigenvalues
    (Cauchy interlacing) and each is within its state-space residual of the
    spectrum. The Euclidean nodal inner product on the same graded mesh is worse."""
    mu, M = heat["mu"], heat["M"]
    coeffs = np.random.default_rng(2).standard_normal(len(mu)) / (1 + np.arange(len(mu)))
    traj = _run(heat["P"], heat["V"] @ coeffs, 40)
    r = 8
    mres = kp.edmd([traj], dictionary=f"pod:{r}", mass_matrix=M, residuals_on="train")
    theta = mres.eigenvalues
    assert np.abs(theta.imag).max() < 1e-12
    ritz = np.sort(theta.real)[::-1]
    assert np.all(ritz <= mu[:r] + 1e-13)
    assert np.all(nearest(theta, mu) <= mres.state_residuals * (1 + 1e-10))

    # Euclidean POD from the same data (modes and errors measured in the M norm)
    eres = kp.edmd(kp.snapshot_pairs([traj]), dictionary=f"pod:{r}", residuals_on="train")
    data_m = kp.snapshot_pairs([traj], mass_matrix=M)
    _, vl = sla.eig(eres.K, left=True, right=False)
    order = np.argsort(-np.abs(sla.eigvals(eres.K)), kind="stable")
    e_ss = kp.state_space_residuals(data_m, eres.dictionary(traj[:-1]), eres.eigenvalues, np.conj(vl[:, order]))
    assert np.all(nearest(eres.eigenvalues, mu) <= e_ss * (1 + 1e-10))  # the bound is metric independent
    err_m = abs(theta[0] - mu[0])
    err_e = abs(eres.eigenvalues[0] - mu[0])
    assert err_e > 10 * err_m  # measured: 1.4e-4 (Euclidean) vs 7.0e-6 (M) for the dominant eigenvalue


# --------------------------------------------------------------------- held-out residuals
def test_heldout_residuals_when_dictionary_exceeds_snapshots():
    X, Y = invariant_pairs(20, seed=3)
    with pytest.warns(kp.KoopmanWarning, match="certify nothing"):
        tr = kp.edmd(X, Y, dictionary="monomial:6", residuals_on="train")  # 28 functions, 20 pairs
    assert tr.residuals.max() < 1e-10  # trivially ~0
    auto = kp.edmd(X, Y, dictionary="monomial:6")
    assert auto.residual_kind == "heldout"
    assert auto.residual_data.n_pairs + auto.data.n_pairs == 20
    assert np.median(auto.residuals) > 1e-3


def test_kernel_dictionary_polynomial_recovers_invariant_subspace():
    X, Y = invariant_pairs(400, seed=4)
    r = kp.edmd(X, Y, dictionary="kernel:polynomial:6")  # feature space = monomials of degree <= 2
    assert r.residual_kind == "heldout"
    good = nearest(r.eigenvalues, [1.0, a_, b_, a_ ** 2]) < 1e-10
    assert good.sum() == 4
    assert r.residuals[good].max() < 1e-12 and r.residuals[~good].min() > 0.1
    for spec in ("kernel:gaussian:20", "kernel:laplacian:20", "rbf:20"):
        g = kp.edmd(X, Y, dictionary=spec)
        assert np.isfinite(g.residuals).all() and g.residuals.min() < 0.05


def test_continuous_exponents_and_alias_warning():
    lam = np.array([np.exp(-0.1 + 0.5j), -0.9])
    with pytest.warns(kp.KoopmanWarning, match="aliased"):
        om = kp.continuous_exponents(lam, dt=0.5)
    assert np.isclose(om[0], (-0.1 + 0.5j) / 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kp.continuous_exponents(lam[:1], dt=0.5)


def test_pairs_never_cross_trajectories():
    t1 = np.arange(5.0)[:, None]
    t2 = 100 + np.arange(3.0)[:, None]
    d = kp.snapshot_pairs([t1, t2])
    assert d.n_pairs == 6
    assert np.all(d.Y - d.X == 1.0)
    assert np.allclose(d.weights, 1 / 6)


# --------------------------------------------------------------------- report and CLI
def test_report_on_mesh_writes_modes(tmp_path):
    import meshio
    from graphfem.meshes import Mesh, Trajectory

    mesh = Mesh.unit_square(6)
    x = mesh.points[:, 0]
    times = 0.1 * np.arange(30)
    u = np.array([np.cos(2 * np.pi * (x - 0.3 * t)) for t in times])  # travelling wave, 3 POD modes
    r = kp.edmd(Trajectory(times, {"u": u}, mesh), dictionary="pod:2", residuals_on="train")
    assert r.data.mass_matrix is not None
    assert nearest(r.eigenvalues, np.exp(np.array([1j, -1j]) * 2 * np.pi * 0.3 * 0.1)).max() < 1e-10
    assert r.forecast_error < 1e-10
    summary = kp.write_report(r, tmp_path / "rep", grid=(-1.2, 1.2, -1.2, 1.2, 40))
    vtu = meshio.read(tmp_path / "rep" / "modes.vtu")
    assert {"mode0_real", "mode0_imag", "mode0_modulus", "mode0_phase"} <= set(vtu.point_data)
    assert (tmp_path / "rep" / "eigenvalues.png").stat().st_size > 1000
    assert summary["certificate"] < 0.1


def _cli_app():
    import typer
    from graphfem.cli.koopman import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer in multi-command mode
        pass

    return app


def test_cli_npz(tmp_path):
    from typer.testing import CliRunner

    X, Y = invariant_pairs(500, seed=5)
    np.savez(tmp_path / "d.npz", X=X, Y=Y, dt=0.1)
    out = tmp_path / "report"
    res = CliRunner().invoke(_cli_app(), ["koopman", str(tmp_path / "d.npz"), "-o", str(out),
                                          "--dictionary", "monomial:2", "--grid", "-1.2,1.2,-1.2,1.2,50"])
    assert res.exit_code == 0, res.output
    with open(out / "eigenvalues.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["real", "imag", "residual"] and len(rows) == 6
    spec = json.loads((out / "spectrum.json").read_text())
    assert spec["certified"] and spec["certificate"] >= 0
    assert (out / "eigenvalues.png").exists()


def test_cli_bad_input_one_line_no_report(tmp_path, capsys):
    from graphfem.cli import main

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a zip archive")
    out = tmp_path / "report"
    code = main(["koopman", str(bad), "-o", str(out)])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code != 0
    assert len(err) == 1 and str(bad) in err[0]
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.npz"]  # no half-written temp folder


def test_hdf5_layout(tmp_path):
    import h5py
    from graphfem.meshes import Mesh

    mesh = Mesh.unit_square(4)
    x = mesh.points[:, 0]
    with h5py.File(tmp_path / "sims.h5", "w") as f:
        for s, phase in enumerate([0.0, 0.5]):
            g = f.create_group(f"sim{s}")
            times = 0.1 * np.arange(12)
            g["times"] = times
            g["outputs/u"] = np.array([np.cos(2 * np.pi * (x - 0.3 * t) + phase) for t in times])
            g["mesh/points"] = mesh.points
            g["mesh/cells"] = mesh.cells
    d = kp.load_snapshots(tmp_path / "sims.h5")
    assert d.n_pairs == 22 and len(d.trajectories) == 2 and d.mass_matrix is not None
    assert np.isclose(d.dt, 0.1)
