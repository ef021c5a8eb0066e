"""RGNP's deterministic properties: KIP invariances, the Gaussian log-densities against torch's,
exact hard boundary conditions, and the ELBO's terms."""
from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as dist

from graphfem.operators.rgnp import KIP, RGNP, RGNPConfig, boundary_factor

torch.set_num_threads(1)

SMALL = dict(fourier=8, width=16, depth=2, lift=6, lift_depth=2, grid=10, conv=2, filters=8, gic_dense=(16,),
             w_dense=8, head=(16,))


def _model(**kw) -> RGNP:
    torch.manual_seed(0)
    return RGNP(RGNPConfig(**{**SMALL, **kw})).double()


def _inputs(b: int = 3, n: int = 11, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, n, 1, generator=g, dtype=torch.float64) * 2 - 1
    z = torch.rand(b, 5, generator=g, dtype=torch.float64) * 2 - 1
    w = 1 + torch.rand(b, 1, generator=g, dtype=torch.float64)
    return x, z, w


def test_kip_is_invariant_to_the_order_and_nearly_to_the_number_of_points():
    torch.manual_seed(0)
    kip = KIP(torch.linspace(-1, 1, 20)[:, None].double(), 12)
    with torch.no_grad():
        kip.log_ls.copy_(torch.linspace(math.log(0.05), 0.0, 12))  # lengthscales the points resolve
    x, _, _ = _inputs(2, 40)
    v = torch.randn(2, 40, 12, dtype=torch.float64)
    h = kip(x, v)
    perm = torch.randperm(40)
    assert torch.allclose(kip(x[:, perm], v[:, perm]), h, atol=1e-6, rtol=0)
    dup = kip(torch.cat([x, x], 1), torch.cat([v, v], 1))
    assert float((dup - h).abs().max()) < 1e-4 * float(h.abs().max())
    # padding: masked points do not count
    mask = torch.cat([torch.ones(2, 40), torch.zeros(2, 5)], 1).double()
    padded = kip(torch.cat([x, torch.zeros(2, 5, 1).double()], 1), torch.cat([v, 9 * torch.ones(2, 5, 12)], 1), mask)
    assert torch.allclose(padded, h, atol=1e-12)
    # the initial lengthscales span 1e-3..1
    fresh = KIP(torch.zeros(3, 1), 12)
    assert math.isclose(math.exp(fresh.log_ls[0].item()), 1e-3, rel_tol=1e-5)
    assert math.isclose(math.exp(fresh.log_ls[-1].item()), 1.0, rel_tol=1e-5)


def test_low_rank_log_density_equals_torch_and_the_dense_gaussian():
    model = _model(covariance="lr", rank=2)
    x, z, w = _inputs()
    q = model.distribution(x, z, w)
    mu, var, cf = model.heads(x, z, w)
    assert isinstance(q, dist.LowRankMultivariateNormal)
    sample = mu + 0.3 * torch.randn_like(mu)
    ref = dist.LowRankMultivariateNormal(mu, cf, var).log_prob(sample)
    dense = dist.MultivariateNormal(mu, covariance_matrix=torch.diag_embed(var) + cf @ cf.transpose(-1, -2))
    torch.testing.assert_close(q.log_prob(sample), ref, atol=1e-10, rtol=0)
    torch.testing.assert_close(q.log_prob(sample), dense.log_prob(sample), atol=1e-8, rtol=0)
    assert torch.all(var >= model.config.var_floor) and torch.all(var <= 1)


def test_diagonal_log_density_is_a_sum_of_normals():
    model = _model()
    x, z, w = _inputs()
    mu, var, cf = model.heads(x, z, w)
    assert cf is None
    sample = mu + 0.3 * torch.randn_like(mu)
    want = dist.Normal(mu, var.sqrt()).log_prob(sample).sum(-1)
    torch.testing.assert_close(model.distribution(x, z, w).log_prob(sample), want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("covariance", ["diag", "lr"])
def test_hard_boundary_conditions_are_exact_for_the_mean_and_samples(covariance):
    model = _model(covariance=covariance)
    x = torch.tensor([[[-1.0], [0.3], [1.0]]], dtype=torch.float64)
    _, z, w = _inputs(1)
    mean, std = model.field(x, z, w)
    assert mean[0, 0].item() == 0.0 and mean[0, 2].item() == 0.0
    assert std[0, 0].item() == 0.0 and std[0, 2].item() == 0.0
    assert boundary_factor(torch.tensor([-1.0, 1.0])).tolist() == [0.0, 0.0]
    torch.testing.assert_close(boundary_factor(x[..., 0]), torch.cos(math.pi * x[..., 0] / 2))
    ut = model.distribution(x, z, w).sample((50,))
    assert torch.all(boundary_factor(x[..., 0]) * ut == boundary_factor(x[..., 0]) * ut * torch.tensor([0, 1, 0]))


def test_elbo_terms_and_the_reparameterised_sample():
    """ELBO = physics + inverse + entropy; the residual is the physics residual of Dũ at the
    sample; the entropy term is −log q_α of the sample; all gradients finite."""
    from graphfem.physics.nonlinear_poisson import residual

    model = _model(covariance="lr", learn_eps=True, eps=1e-4, eps_min=1e-2)
    x, z, w = _inputs()
    noise, noise_lr = torch.randn(3, 11, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    out = model(x, z, w, noise, noise_lr)
    torch.testing.assert_close(out["elbo"], out["physics"] + out["inverse"] + out["entropy"])
    mu, var, cf = model.heads(x, z, w)
    ut = mu + var.sqrt() * noise + (cf @ noise_lr[..., None])[..., 0]
    torch.testing.assert_close(out["entropy"], -model.distribution(x, z, w).log_prob(ut))
    assert float(model.eps) == pytest.approx(1e-2)  # clamped at eps_min
    xs = x[..., 0].clone().requires_grad_(True)
    mu, var, cf = model.heads(xs[..., None], z, w)
    r = residual(xs, boundary_factor(xs) * (mu + var.sqrt() * noise + (cf @ noise_lr[..., None])[..., 0]), z, w)
    torch.testing.assert_close(out["residual"], r)
    torch.testing.assert_close(out["physics"], dist.Normal(0.0, 1e-2).log_prob(r).sum(-1))
    (-out["elbo"].mean()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert float(model.gicnet.kip.log_ls.grad.abs().sum()) > 0  # the lengthscales train


def test_data_likelihood_and_the_posterior_from_u():
    model = _model(covariance="lr")
    x, z, w = _inputs(2, 7)
    y = torch.randn(2, 7, dtype=torch.float64) * 0.1
    mu, var, cf = model.heads(x, z, w)
    d = boundary_factor(x[..., 0])
    cov = torch.diag_embed(d ** 2 * var + 0.05 ** 2) + (d[..., None] * cf) @ (d[..., None] * cf).transpose(-1, -2)
    want = dist.MultivariateNormal(d * mu, covariance_matrix=cov).log_prob(y)
    torch.testing.assert_close(model.data_log_likelihood(x, y, z, w), want, atol=1e-8, rtol=0)
    # u/D at the boundary is dropped, not divided by zero
    xb = torch.cat([x, torch.tensor([[[1.0]], [[-1.0]]], dtype=torch.float64)], 1)
    ub = torch.cat([y, torch.ones(2, 1, dtype=torch.float64)], 1)
    q = model.posterior_from_u(xb, ub, w)
    torch.testing.assert_close(q.mean, model.posterior_from_u(x, y, w).mean)
    assert q.mean.shape == (2, 5) and torch.all(q.stddev > 0) and torch.all(q.stddev <= 1)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="diag or lr"):
        RGNP(RGNPConfig(covariance="full"))
    with pytest.raises(ValueError, match="var_floor"):
        RGNP(RGNPConfig(var_floor=0.0))


def test_burgers_conditions_are_exact_and_the_kip_grid_is_2d():
    model = _model(pde="burgers", n_z=2, z_low=[0.01, 0.5], z_high=[0.1, 1.0], w_low=0.5, w_high=2.0,
                   grid=6, conv=2)
    x = torch.tensor([[[0.0, 0.4], [1.0, 0.7], [0.3, 0.0], [0.8, 0.0], [0.5, 0.5]]], dtype=torch.float64)
    z, w = torch.tensor([[0.05, 0.7]], dtype=torch.float64), torch.tensor([[1.3]], dtype=torch.float64)
    mean, std = model.field(x, z, w)
    assert mean[0, 0].item() == 0.0 and mean[0, 1].item() == 0.0 and std[0, :4].tolist() == [0.0] * 4
    u0 = torch.sin(2 * math.pi * 1.3 * x[0, 2:4, 0]) * torch.sin(math.pi * x[0, 2:4, 0])
    torch.testing.assert_close(mean[0, 2:4], u0, atol=1e-15, rtol=0)                    # u(x, 0) = u0 exactly
    assert model.gicnet.kip.grid.shape == (36, 2)
    out = model(x, z, w, torch.randn(1, 5, dtype=torch.float64))
    assert torch.isfinite(out["elbo"]).all()
    q = model.posterior_from_u(x, mean, w)                  # the points with D = 0 are masked, not divided
    assert torch.isfinite(q.mean).all() and q.mean.shape == (1, 2)
    lo, hi = model.z_box(q.mean)
    assert lo.tolist() == [0.01, 0.5] and hi.tolist() == [0.1, 1.0]
