"""EquiNO in the small configuration of the method note (8 × 8 S2 quads, one
disc, 20 FE snapshots from ``graphfem generate rve``, r = 8, 64 collocation
strains, 500 Adam + 300 L-BFGS iterations, float64, one thread; trained by the
engine's trainer), and the two baselines."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from graphfem.checkpoint import load_model
from graphfem.datasets.generate import generate
from graphfem.datasets.simulations import SimulationData
from graphfem.families.equino import read_snapshots, train_config
from graphfem.operators.equino import law_energy, law_stress, relative_errors
from graphfem.operators.equino_baselines import sobolev_loss
from graphfem.physics.fe2 import plate_with_hole, solve_macro
from graphfem.physics.rve import INCLUSION, MATRIX, energy_density, lhs_strains, stress
from graphfem.training.trainer import split_indices, train

torch.set_num_threads(1)


def _trained(folder, name: str, **recipe):
    """(model, meta) of ``name`` trained on the data set in ``folder``."""
    train(train_config(str(folder / "rve.h5"), str(folder / name), name, val_fraction=2 / 22, test_fraction=0.0,
                       **recipe))
    model, meta = load_model(folder / name / "model.safetensors")
    return model.double(), meta


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("equino")
    generate("rve", 22, folder / "rve.h5", seed=1, geometry="disc", resolution=8, progress=False)
    data = SimulationData(folder / "rve.h5")
    snaps = read_snapshots(data, tangent=True)
    split = split_indices(len(data), 2 / 22, 0.0, 0)
    cell, train_sols = snaps.rve, [snaps.solutions[i] for i in split["train"]]
    test_strains = 0.9 * lhs_strains(10, seed=2)
    test = cell.solve_many(test_strains)
    model, _ = _trained(folder, "equino", rank=8, collocation=64, adam_steps=500, lbfgs_iterations=300)
    return cell, train_sols, test_strains, test, model, folder


def test_torch_law_matches_numpy():
    rng = np.random.default_rng(0)
    eps = rng.normal(size=(8, 3)) * 0.03
    params = np.stack([MATRIX.as_array()] * 4 + [INCLUSION.as_array()] * 4)
    t_eps, t_par = torch.as_tensor(eps), torch.as_tensor(params)
    np.testing.assert_allclose(law_stress(t_eps, t_par).numpy(), stress(eps, params), rtol=1e-12)
    np.testing.assert_allclose(law_energy(t_eps, t_par).numpy(), energy_density(eps, params), rtol=1e-12)


def test_sigma_nn_is_equilibrated_and_sigma_law_is_not(setup):
    cell, train, strains, test, model, _ = setup
    psi = model.psi.numpy()
    for k in range(psi.shape[2]):
        mode = psi[:, :, k]
        assert np.linalg.norm(cell.equilibrium_residual(mode)) < 1e-10 * np.sqrt(np.mean(mode ** 2))
    pred = model.predict(strains)
    for s_nn, s_law in zip(pred["sigma_nn"], pred["sigma_law"]):
        scale = np.sqrt(np.mean(s_nn ** 2))
        assert np.linalg.norm(cell.equilibrium_residual(s_nn)) <= 1e-6 * scale
        assert np.linalg.norm(cell.equilibrium_residual(s_law)) > 1e-3 * scale


def test_displacement_is_periodic_to_1e12(setup):
    cell, _, strains, _, model, _ = setup
    u = model.predict(strains)["u"]
    x = cell.dof_points
    for e, ui in zip(strains, u):
        E = np.array([[e[0], e[2] / 2], [e[2] / 2, e[1]]])
        moved = np.flatnonzero(cell.master != np.arange(cell.n_dofs))
        jump = ui[moved] - ui[cell.master[moved]]
        dx = x[moved] - x[cell.master[moved]]
        expected = np.einsum("ij,nj->ni", E, dx)[np.arange(moved.size), cell.component[moved]]
        assert np.abs(jump - expected).max() < 1e-12


def test_tangent_matches_finite_difference_of_surrogate(setup):
    _, _, strains, test, model, _ = setup
    e = torch.as_tensor(strains[:3])
    for source in ("nn", "law"):
        _, C = model.stress_and_tangent(e, source)
        h = 1e-6
        Cfd = torch.stack([(model.stress_hat(e + h * d, source) - model.stress_hat(e - h * d, source)) / (2 * h)
                           for d in torch.eye(3, dtype=torch.float64)], -1)
        assert (C - Cfd).abs().max() < 1e-6 * C.abs().max()
    _, C = model.stress_and_tangent(e, "law")
    for Ci, sol in zip(C.detach().numpy(), test[:3]):
        assert np.linalg.norm(Ci - sol.tangent) < 0.1 * np.linalg.norm(sol.tangent)


def test_homogenised_stress_within_5_percent(setup):
    cell, _, strains, test, model, _ = setup
    pred = model.predict(strains)
    ref = np.stack([s.stress for s in test])
    for key in ("stress_hat", "stress_hat_law"):
        err = np.linalg.norm(pred[key] - ref, axis=1) / np.linalg.norm(ref, axis=1)
        assert np.median(err) < 0.05 and err.max() < 0.1, (key, err)
    errs = relative_errors(cell, pred, test)
    assert np.median(errs["u"]) < 0.05 and np.median(errs["sigma_xx"]) < 0.05


def test_zero_strain_gives_exactly_zero(setup):
    cell, _, strains, _, model, _ = setup
    # ε̂ = 0 in a batch with other strains: every field and both σ̂ are exactly 0 (b = N(x) x)
    e = np.concatenate([np.zeros((1, 3)), strains[:2]])
    pred = model.predict(e)
    for key in ("u", "eps", "sigma_law", "sigma_nn", "stress_hat", "stress_hat_law"):
        assert not np.any(pred[key][0]), (key, pred[key][0])
        assert np.abs(pred[key][1]).max() > 0
    for source in ("nn", "law"):
        s, C = model.material(source)(np.zeros((4, 3)))
        assert not np.any(s) and np.isfinite(C).all()
    # the tangent at zero is the trained one, close to the FE tangent there (within 5 %)
    from graphfem.operators.equino import linear_response

    C0 = linear_response(cell)[2]
    _, C = model.material("law")(np.zeros((1, 3)))
    assert np.linalg.norm(C[0] - C0) < 0.05 * np.linalg.norm(C0)
    np.testing.assert_array_equal(model.tangent0.numpy(), C0)


def test_small_strains_are_relatively_accurate(setup):
    cell, _, strains, _, model, _ = setup
    # the relative loss and the linearised snapshots: strains 20-100x below the training amplitude
    small = strains[:6] / np.linalg.norm(strains[:6], axis=1, keepdims=True) * np.array([[4e-4], [1e-3], [2e-3]] * 2)
    ref = np.stack([s.stress for s in cell.solve_many(small)])
    pred = model.predict(small)
    for key in ("stress_hat", "stress_hat_law"):
        err = np.linalg.norm(pred[key] - ref, axis=1) / np.linalg.norm(ref, axis=1)
        assert err.max() < 0.03, (key, err)


def test_pure_shear(setup):
    cell, _, _, _, model, _ = setup
    e = np.array([[0.0, 0.0, 0.03]])
    fe = cell.solve(e[0]).stress
    pred = model.predict(e)
    # engineering shear in, tensor shear in the fields: a factor-2 slip would be 50-100 % off
    for key in ("stress_hat", "stress_hat_law"):
        assert abs(pred[key][0, 2] - fe[2]) < 0.08 * abs(fe[2]), (key, pred[key][0], fe)


def test_fe_ol_macro_newton_converges(setup):
    _, _, _, _, model, _ = setup
    sol = solve_macro(plate_with_hole(2, 2), model.material("nn"), fixed={"left": "x", "bottom": "y"},
                      displacement={"top": ("y", 0.01)}, rtol=1e-12)
    r = sol.newton[0]
    assert r[-1] <= 1e-12 and len(r) <= 7
    assert sol.material_calls == len(r) + 1  # and one at zero strain: the tangent predictor's


def test_bases_come_from_the_training_snapshots(setup):
    cell, train, _, _, model, _ = setup
    # the training stresses lie in the span of the (equilibrated) stress modes, up to the POD truncation
    psi = model.psi.numpy().reshape(-1, model.config.rank_s)
    S = np.stack([s.sigma.reshape(-1) for s in train], 1)
    residual = S - psi @ np.linalg.lstsq(psi, S, rcond=None)[0]
    assert np.linalg.norm(residual) < 0.02 * np.linalg.norm(S)


def test_baselines(setup):
    cell, train_sols, strains, test, _, folder = setup
    bb, meta = _trained(folder, "rve_blackbox", adam_steps=200, lbfgs_iterations=100)
    assert meta["model"] == "rve_blackbox" and meta["family"] == "equino"
    e = torch.as_tensor(strains[:2])
    _, C = bb.stress_and_tangent(e)
    Cfd = torch.stack([(bb.stress_hat(e + 1e-6 * d) - bb.stress_hat(e - 1e-6 * d)) / 2e-6
                       for d in torch.eye(3, dtype=torch.float64)], -1)
    assert (C - Cfd).abs().max() < 1e-6 * C.abs().max()
    assert np.median(relative_errors(cell, bb.predict(strains), test)["stress_hat"]) < 0.05
    # the training loss's autograd tangent is the one inference uses
    S, Ct = bb.stress_and_tangent(e)
    assert float(sobolev_loss(bb, e, S.detach(), Ct.detach(), 1.0, 1.0).detach()) < 1e-20
    vp, _ = _trained(folder, "rve_vpionet", collocation=32, adam_steps=50, lbfgs_iterations=0)
    # σ̂(0) = 0 and u(0) = 0 exactly for both baselines, whatever their weights
    zero = np.zeros((1, 3))
    assert not np.any(bb.predict(zero)["stress_hat"]) and not np.any(bb.material()(zero)[0])
    assert not np.any(vp.predict(zero)["u"]) and not np.any(vp.predict(zero)["stress_hat"])
    u = vp.predict(strains[:2])["u"]
    fluct = u - strains[:2] @ vp.affine.numpy().T
    assert np.abs(fluct - fluct[:, cell.master]).max() < 1e-12 * max(np.abs(fluct).max(), 1e-30)
