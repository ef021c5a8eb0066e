"""DGNO and MultiONet: the test functions, the disc quadrature, the weak residual, the decoders, hard BCs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graphfem.operators.dgno import (DGNO, DGNOConfig, boundary_distance, csrbf, disc_points, gaussian_kl,
                                     lhs_centres, wendland)
from graphfem.operators.multionet import MultiONet, MultiONetConfig, deeponet_forward

torch.set_num_threads(1)


def test_wendland_derivative_matches_autograd():
    r = torch.linspace(0.01, 0.99, 97, dtype=torch.float64, requires_grad=True)
    phi, dphi_r = wendland(r)
    (grad,) = torch.autograd.grad(phi.sum(), r)
    assert torch.allclose(grad / r, dphi_r, atol=1e-6, rtol=0)
    one, _ = wendland(torch.tensor([0.0, 1.0, 1.5], dtype=torch.float64))
    assert one.tolist() == [1.0, 0.0, 0.0]  # φ(0) = 3/3, compact support


def test_disc_quadrature_mean_gradient_vanishes():
    for n, count in ((7, 25), (9, 45)):
        xi = torch.as_tensor(disc_points(n), dtype=torch.float64)
        assert xi.shape == (count, 2) and (xi.norm(dim=1) < 1).all()
        _, dphi = csrbf(xi, 1e-4)
        assert dphi.mean(0).abs().max() < 1e-9 * dphi.abs().max()


@pytest.mark.parametrize("n, bound", [(7, 0.02), (9, 0.003)])
def test_manufactured_weak_residual_small(n, bound):
    """u = sin πx sin πy, a = 3, s = a∇u, f = −∇·(a∇u) = 2π²a u: |r_j| / mean(fφ_j) is the rule's error."""
    xi = torch.as_tensor(disc_points(n), dtype=torch.float64)
    R = 0.05
    phi, dphi = csrbf(xi, R)
    rng = np.random.default_rng(1)
    for xc in torch.as_tensor(lhs_centres(rng, 20, 0.2), dtype=torch.float64):
        x = xc + R * xi
        a = 3.0
        sx, sy = torch.sin(math.pi * x).T
        cx, cy = torch.cos(math.pi * x).T
        s = a * math.pi * torch.stack([cx * sy, sx * cy], -1)
        f = 2 * math.pi ** 2 * a * sx * sy
        r = (s * dphi).sum(-1).mean() - (f * phi).mean()
        assert abs(float(r / (f * phi).mean())) < bound


def test_multionet_one_layer_is_deeponet_and_fresh_is_zero():
    torch.manual_seed(0)
    net = MultiONet(MultiONetConfig(in_branch=6, in_trunk=2, width=8, depth=3, n_layers_sum=1))
    beta, x = torch.randn(3, 6), torch.rand(5, 2)
    assert torch.count_nonzero(net(beta, x)) == 0  # w_k = b = 0 at the start
    torch.nn.init.normal_(net.weights)
    torch.nn.init.normal_(net.bias)
    assert torch.allclose(net(beta, x), deeponet_forward(net, beta, x), atol=1e-6)
    multi = MultiONet(MultiONetConfig(6, 2, 8, 3, 3))
    multi.load_state_dict({k: v for k, v in net.state_dict().items() if k not in ("weights",)}, strict=False)
    multi.weights.data[:] = torch.tensor([[0.0], [0.0], [3 * float(net.weights[0, 0].detach())]])
    assert torch.allclose(multi(beta, x), net(beta, x), atol=1e-6)  # l = 3 with the first two weights 0
    vec = MultiONet(MultiONetConfig(6, 2, 8, 3, 2, n_out=2))
    assert vec(beta, x).shape == (3, 5, 2)


def test_mollified_u_vanishes_on_boundary():
    torch.manual_seed(0)
    model = DGNO(DGNOConfig(grid=5, latent=4, encoder=(8,), width=8, depth=2, n_layers_sum=2))
    for p in model.parameters():
        torch.nn.init.normal_(p) if p.dim() < 2 else None
    beta = model(torch.rand(2, 25) * 5 + 5)
    t = torch.linspace(0, 1, 11)
    edges = torch.cat([torch.stack([t, 0 * t], 1), torch.stack([t, 0 * t + 1], 1),
                       torch.stack([0 * t, t], 1), torch.stack([0 * t + 1, t], 1)])
    inside = model.u(beta, torch.full((1, 2), 0.4))
    assert inside.abs().min() > 0
    assert torch.count_nonzero(model.u(beta, edges)) == 0  # exactly 0, not to round-off
    assert torch.allclose(model.mollifier(torch.tensor([[0.3, 0.8]])),
                          torch.tensor([math.sin(0.3 * math.pi) * math.sin(0.8 * math.pi)]))
    model.config.bc = "distance"
    model.segments = torch.tensor([[[0.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [1.0, 1.0]], [[1.0, 1.0], [0.0, 1.0]],
                                   [[0.0, 1.0], [0.0, 0.0]]])
    assert torch.count_nonzero(model.u(beta, edges).abs() > 1e-12) == 0
    assert torch.allclose(boundary_distance(torch.tensor([[0.25, 0.5]]), model.segments), torch.tensor([0.25]))


def test_dgno_loss_needs_no_labels_and_is_finite():
    torch.manual_seed(0)
    model = DGNO(DGNOConfig(grid=5, latent=4, encoder=(8,), width=8, depth=2, n_layers_sum=2, centres=6))
    rng = np.random.default_rng(0)
    centres = torch.as_tensor(np.stack([lhs_centres(rng, 6, 1e-4)] * 2), dtype=torch.float32)
    a = torch.where(torch.rand(2, 25) > 0.5, 10.0, 5.0)
    out = model.loss(a, centres, torch.full((2, 6 * 25), 5.0))
    assert abs(out["data"].item() - math.log(2)) < 1e-6  # fresh decoders: sigmoid(0) = 1/2
    assert torch.isfinite(out["loss"]) and out["pde"].item() > 0
    out["loss"].backward()
    assert model.dec_u.weights.grad.abs().sum() > 0 or model.dec_s.weights.grad.abs().sum() > 0


def test_variational_kl_is_the_normal_kl():
    """The KL term equals torch.distributions' KL(N(μ, σ²) ‖ N(0, 1)), summed over d_β, averaged over B."""
    torch.manual_seed(0)
    model = DGNO(DGNOConfig(grid=5, latent=6, encoder=(8,), width=8, depth=2, n_layers_sum=2, centres=4,
                            variational=True, kl_weight=0.3))
    torch.nn.init.normal_(model.logvar_head.weight, std=2.0)  # some ln σ² reach the clamp
    a = torch.where(torch.rand(3, 25) > 0.5, 10.0, 5.0)
    mu, logvar = model.encode(a)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, torch.exp(0.5 * logvar)),
                                            torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    assert torch.allclose(gaussian_kl(mu, logvar), ref.sum(-1).mean(), rtol=1e-5)
    assert logvar.detach().min() >= -10 and logvar.detach().max() <= 2
    centres = torch.full((3, 4, 2), 0.5)
    eps = torch.randn(3, 6)
    out = model.loss(a, centres, torch.full((3, 4 * 25), 7.5), eps)
    assert torch.allclose(out["loss"], out["data"] + out["pde"] + 0.3 * out["kl"])
    assert torch.allclose(model(a), torch.tanh(mu))  # inference: β = tanh(μ), no draw


def test_variational_off_is_the_deterministic_model():
    """variational: false has no ln σ² head, β = tanh(E(a)) and no KL; a variational model with the same
    weights gives the same β and (with ε = 0) the same data and PDE losses."""
    torch.manual_seed(0)
    cfg = dict(grid=5, latent=4, encoder=(8, 6), width=8, depth=2, n_layers_sum=2, centres=3)
    off = DGNO(DGNOConfig(**cfg))
    for p in off.parameters():
        torch.nn.init.normal_(p, std=0.5)
    assert not any(k.startswith("logvar_head") for k in off.state_dict())
    a = torch.where(torch.rand(2, 25) > 0.5, 10.0, 5.0)
    assert torch.equal(off(a), torch.tanh(off.encoder_net((a - 7.5) / 2.5)))
    centres = torch.as_tensor(np.stack([lhs_centres(np.random.default_rng(2), 3, 1e-4)] * 2), dtype=torch.float32)
    a_q = torch.full((2, 3 * 25), 5.0)
    plain = off.loss(a, centres, a_q, torch.randn(2, 4))  # ε is ignored without the variational encoder
    assert set(plain) == {"loss", "data", "pde"}
    on = DGNO(DGNOConfig(**cfg, variational=True))
    missing = on.load_state_dict(off.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["logvar_head.bias", "logvar_head.weight"]
    assert torch.equal(on(a), off(a))
    mean = on.loss(a, centres, a_q)
    assert torch.equal(mean["data"], plain["data"]) and torch.equal(mean["pde"], plain["pde"])


def test_fe_solution_weak_residual_vanishes_away_from_interfaces():
    """The mixed-form residual r_j = mean(s·∇φ_j) − mean(fφ_j) (DGNO.weak_residuals, the loss's) of the P1
    FE solution of −∇·(a∇u) = 10, u = 0, a = 10 on the inclusion [1/4, 3/4]² and 5 outside (on element
    edges of a 128² mesh), with s = a∇u_h by element lookup at the quadrature points.

    For the exact u, r_j = 0 for every φ_j supported in Ω: ∫ s·∇φ = −∫ (∇·s) φ = ∫ fφ, across the
    interface as well (s ∈ H(div): only its normal component is continuous, which is all the mixed form
    needs). What is left is discretisation error: the P1 flux is piecewise constant, off by O(h |D²u|)
    pointwise, and the plain-mean rule samples it at Q points. With R = 0.1 (12.8 h) and the 41 × 41 rule
    (Q = 1245), |r_j| / mean(fφ_j) is 0.44 % on average and 2.2 % at most over the 42 discs inside one
    phase (bounds 1 % and 3 %; 0.4 % for a constant a, approached as (h/R)²: 2.0 % at h = 1/64). Straddling
    discs have the same zero target, and the mixed form predicts no jump there: 0.52 % mean, 2.7 % max over
    31 discs (bounds 2 % and 10 %: the rule samples the tangential jump of s, about twice the inside error on
    a 400-disc draw). The flux of a wrong u (the solution for a = 7.5 everywhere) leaves 33 %; at the
    reference's R = 1e-4 a disc lies inside one element, s is constant there and r_j = −mean(fφ_j)
    exactly (relative residual 1): the strong-form trap."""
    from graphfem.families.dgno import Lookup
    from graphfem.meshes import Mesh
    from graphfem.physics.darcy import darcy

    mesh = Mesh.unit_square(128)
    centroids = mesh.points[mesh.corner_cells].mean(1)[:, :2]
    a = np.where((np.abs(centroids - 0.5) < 0.25).all(1), 10.0, 5.0)
    tri = mesh.points[mesh.corner_cells][:, :, :2]
    edges = np.stack([tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]], 1)  # (n_cells, 2, 2)

    def cell_gradients(u):  # ∇u_h of P1 per cell: edges · ∇u = differences of the vertex values
        du = u[mesh.corner_cells]
        return np.linalg.solve(edges, np.stack([du[:, 1] - du[:, 0], du[:, 2] - du[:, 0]], 1)[..., None])[..., 0]

    grad_h = cell_gradients(darcy(mesh, a, 10.0, order=1).fields["u"])
    grad_wrong = cell_gradients(darcy(mesh, 7.5, 10.0, order=1).fields["u"])
    look = Lookup(mesh)

    def relative_residuals(radius, quad, centres, *grads):
        model = DGNO(DGNOConfig(grid=3, latent=2, encoder=(), width=2, depth=1, n_layers_sum=1, radius=radius,
                                quad=quad, source=10.0)).double()
        x = model.quadrature(torch.as_tensor(centres)[None])[0].numpy()
        cells = np.concatenate([look.cells(x[i:i + 4000]) for i in range(0, len(x), 4000)])
        flux = torch.as_tensor(np.stack([a[cells, None] * g[cells] for g in grads]))
        phi, _ = csrbf(model.xi, radius)
        return np.abs(model.weak_residuals(flux, len(centres)).numpy()) / (10.0 * float(phi.mean()))

    R = 0.1
    centres = lhs_centres(np.random.default_rng(0), 100, R)
    gap = np.abs(centres - 0.5) - 0.25  # signed distance to the inclusion's boundary
    dist = np.abs(np.linalg.norm(np.maximum(gap, 0), axis=1) + np.minimum(gap.max(1), 0))
    one, straddle = dist > R, dist < 0.5 * R
    assert one.sum() >= 25 and straddle.sum() >= 20
    rel, wrong = relative_residuals(R, 41, centres, grad_h, grad_wrong)
    assert rel[one].mean() < 0.01 and rel[one].max() < 0.03
    assert rel[straddle].mean() < 0.02 and rel[straddle].max() < 0.1
    assert wrong[one].mean() > 10 * rel[one].mean()
    (strong,) = relative_residuals(1e-4, 7, centres[one][:10], grad_h)
    assert np.allclose(strong, 1.0, atol=1e-6)


def test_continuous_coefficient_decoder():
    """coefficient: continuous: E[a | β] = a_mean + a_std a_ψ (a_mean for a fresh decoder) and L_data the mean
    squared misfit of a_ψ and the standardised a; the inverse problem refuses it (two-phase draws)."""
    torch.manual_seed(0)
    model = DGNO(DGNOConfig(grid=5, latent=4, encoder=(8,), width=8, depth=2, n_layers_sum=2, form="primal",
                            coefficient="continuous", a_mean=2.0, a_std=0.5))
    a = torch.exp(torch.randn(2, 25))
    beta = model(a)
    x = model.grid_points()
    assert torch.equal(model.a_mean_field(beta, x), torch.full((2, 25), 2.0))
    assert torch.allclose(model.data_loss(beta, a), (((a - 2.0) / 0.5) ** 2).mean())
    with pytest.raises(ValueError, match="continuous"):
        from graphfem.operators.dgno import invert

        invert(model, np.full((3, 2), 0.5), np.ones(3), np.full((2, 2), 0.5), iterations=1)
    with pytest.raises(ValueError, match="two-phase or continuous"):
        DGNO(DGNOConfig(grid=5, latent=4, encoder=(8,), width=8, depth=2, n_layers_sum=2, coefficient="smooth"))
