"""The 1D nonlinear Poisson problem: FE convergence on a manufactured solution, Newton = Picard,
the torch residual against a hand-derived source, and the FE solution's strong residual."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from graphfem.meshes import Mesh
from graphfem.meshes.errors import InputError
from graphfem.physics.nonlinear_poisson import conductivity, nonlinear_poisson, residual
from graphfem.physics.problem import get_problem

torch.set_num_threads(1)

Z = np.array([0.4, -0.7, 0.3, 0.5, -0.2])


def _manufactured(x: np.ndarray, z: np.ndarray = Z) -> tuple[np.ndarray, np.ndarray]:
    """u = (1 − x²)(1 + x/2) and the w(x) that makes it exact: w = −(κ u′)′ = −(κ_x u′ + κ u″),
    κ_x = σ(u a)(u′ a + u a′) by hand."""
    cheb = np.polynomial.chebyshev
    u = (1 - x ** 2) * (1 + x / 2)
    du = -2 * x * (1 + x / 2) + (1 - x ** 2) / 2
    ddu = -2 * (1 + x / 2) - 2 * x
    a, da = cheb.chebval(x, z), cheb.chebval(x, cheb.chebder(z))
    kappa, _ = conductivity(u, x, z)
    sig = 1 / (1 + np.exp(-u * a))
    return u, -(sig * (du * a + u * da) * du + kappa * ddu)


def test_fe_converges_at_second_order_on_a_manufactured_solution():
    errors = []
    for n in (16, 32, 64):
        mesh = Mesh.interval(n, -1.0, 1.0)
        sol = nonlinear_poisson(mesh, Z, source=lambda x: _manufactured(x[0])[1])
        exact = _manufactured(mesh.points[:, 0])[0]
        errors.append(sol.space.relative_l2_error(sol.fields["u"], exact))
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(rates - 2.0) < 0.1), rates


def test_newton_and_picard_agree_to_the_tolerance():
    problem = get_problem("nonlinear-poisson")
    mesh = Mesh.interval(100, -1.0, 1.0)
    raw = {"z": "0.9,-0.8,0.7,-0.6,0.5", "w": "2"}
    newton = problem.run(mesh, raw)
    picard = problem.run(mesh, {**raw, "method": "picard"})
    assert newton.info["residual"] < 1e-10 and newton.info["iterations"] < 15
    np.testing.assert_allclose(newton.fields["u"], picard.fields["u"], atol=1e-9)
    assert newton.fields["u"][[0, -1]].tolist() == [0.0, 0.0]


def test_torch_residual_vanishes_on_the_manufactured_solution():
    x = torch.linspace(-0.99, 0.99, 57, dtype=torch.float64)[None].requires_grad_(True)
    u = (1 - x ** 2) * (1 + x / 2)
    w = torch.as_tensor(_manufactured(x.detach().numpy()[0])[1])[None]
    r = residual(x, u, torch.as_tensor(Z)[None], w)
    assert float(r.abs().max()) < 1e-6


def test_the_fe_solution_has_a_small_strong_residual():
    """A Chebyshev fit (degree 24) of the FE nodal values satisfies the strong form up to
    the FE and fit error: max |r| / w below 1 % (a wrong sign of a κ term gives O(1))."""
    problem = get_problem("nonlinear-poisson")
    mesh, raw = problem.sample(np.random.default_rng([5, 0]))
    u = problem.run(mesh, raw).fields["u"]
    coef = np.polynomial.chebyshev.chebfit(mesh.points[:, 0], u, 24)
    x = torch.linspace(-0.95, 0.95, 101, dtype=torch.float64)[None].requires_grad_(True)
    from graphfem.physics.nonlinear_poisson import chebyshev

    fit = (chebyshev(x, 25) * torch.as_tensor(coef)).sum(-1)
    r = residual(x, fit, torch.as_tensor(raw["z"])[None], torch.tensor([[raw["w"]]], dtype=torch.float64))
    assert float(r.abs().max()) / raw["w"] < 1e-2


def test_bad_input_is_one_line():
    problem = get_problem("nonlinear-poisson")
    mesh = Mesh.interval(10, -1.0, 1.0)
    for raw, words in (({"z": "1,2"}, "--z: expected 5"), ({"w": "nan"}, "--w"),
                       ({"tol": "0"}, "--tol must be positive")):
        with pytest.raises(InputError, match=words) as err:
            problem.parse(mesh, raw)
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="lives on"):
        problem.parse(Mesh.interval(10, 0.0, 2.0), {})
    with pytest.raises(InputError, match="whole interval"):
        problem.run(Mesh.interval(10, -0.5, 1.0), {})
