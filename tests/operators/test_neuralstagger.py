"""NeuralStagger's exact parts: the stagger round trip (bitwise, every factor dividing the grid,
per MAC variable with its halo, masks), the grouped network against a loop over its sub-nets, the
independence of a solver from the other sub-lattices, a divergence-free velocity from any
potential, and the fine loss of the exact discrete IMEX step at round-off."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from graphfem.meshes import Grid
from graphfem.operators.neuralstagger import (INPUTS, GroupedUNet, NeuralStagger, NeuralStaggerConfig, stagger,
                                              stagger_mac, unstagger_mac)
from graphfem.physics.grid import mac_divergence, mac_operators
from graphfem.physics.mac_channel import (developed_state, full_potential, potential_from_velocity, random_domain,
                                          velocity_from_potential)

torch.set_num_threads(1)

GRID = Grid((24, 12), (0.0, 0.0), (2.0, 1.0))


def _randomised(net: GroupedUNet) -> GroupedUNet:
    """The head starts at zero (persistence); give it weights so that the checks see every layer."""
    torch.nn.init.normal_(net.head.weight, std=0.3)
    torch.nn.init.normal_(net.head.bias, std=0.3)
    return net


def _divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


def test_stagger_round_trip_is_bitwise_for_every_factor_and_mac_lattice():
    gen = torch.Generator().manual_seed(0)
    nx, ny = GRID.shape
    fields = {"p": (torch.randn(2, nx, ny, generator=gen, dtype=torch.float64), (0, 0)),
              "u": (torch.randn(2, nx + 1, ny, generator=gen, dtype=torch.float64), (1, 0)),
              "v": (torch.randn(2, nx, ny + 1, generator=gen), (0, 1)),
              "a": (torch.randn(2, nx + 1, ny + 1, generator=gen), (1, 1)),
              "mask": (torch.as_tensor(random_domain(np.random.default_rng(3), GRID).solid), (0, 0))}
    for s_h in _divisors(nx):
        for s_w in _divisors(ny):
            for name, (x, halo) in fields.items():
                pieces, rows, cols = stagger_mac(x, s_h, s_w, halo)
                assert pieces.shape[-3:] == (s_h * s_w, nx // s_h, ny // s_w)
                assert torch.equal(unstagger_mac(pieces, rows, cols, s_h, s_w), x), (name, s_h, s_w)
    # piece (i, j) holds x[i + s_h m, j + s_w n]
    x = fields["p"][0]
    assert torch.equal(stagger(x, 3, 2)[:, 1 * 2 + 1], x[:, 1::3, 1::2])
    with pytest.raises(ValueError, match="does not split"):
        stagger(x, 5, 1)


def test_grouped_network_equals_the_loop_over_its_sub_nets_and_solvers_are_independent():
    torch.manual_seed(0)
    G, C = 6, len(INPUTS)
    net = _randomised(GroupedUNet(G, C, 2, width=4, levels=2).double())
    x = torch.randn(3, G * C, 8, 12, dtype=torch.float64)
    out = net(x)
    for g in range(G):
        alone = net.sub_net(g)(x[:, g * C:(g + 1) * C])
        assert torch.allclose(alone, out[:, 2 * g:2 * g + 2], atol=1e-6, rtol=0)
    # perturbing every other solver's input leaves solver 2's output unchanged
    y = x.clone()
    y[:, [c for c in range(G * C) if not 2 * C <= c < 3 * C]] += 10.0
    assert torch.equal(net(y)[:, 4:6], out[:, 4:6])


def test_a_sub_solver_sees_only_its_sub_lattice_of_the_fine_state():
    torch.manual_seed(1)
    model = NeuralStagger(NeuralStaggerConfig(nx=24, ny=12, s_h=2, s_w=3, s_t=2, width=4, levels=1)).double()
    _randomised(model.net)
    domain = random_domain(np.random.default_rng(0), GRID)
    A = torch.as_tensor(np.repeat(domain.a_base[None, None], 2, 1)) + 0.01 * torch.randn(1, 2, 24, 12,
                                                                                        dtype=torch.float64)
    p = torch.randn(1, 2, 24, 12, dtype=torch.float64)
    cond = model.conditions([domain], A)
    A1, p1 = model.step(A, p, cond)
    B = A.clone()
    B[:, :, 0::2, :] += 1.0          # every sub-lattice with i = 0 changes, in both frames
    B[:, :, 1::2, 0::3] += 1.0       # and (1, 0)
    A2, p2 = model.step(B, p, cond)
    keep = (slice(None), slice(None), slice(1, None, 2), slice(1, None, 3))   # piece (1, 1) of both frames
    assert torch.equal(A2[keep] - B[keep], A1[keep] - A[keep]) and torch.equal(p2[keep], p1[keep])
    assert not torch.equal(p2[:, :, 0::2], p1[:, :, 0::2])
    assert model.subset(1) == list(range(6))


def test_coarse_subset_runs_alone_and_matches_the_full_step():
    torch.manual_seed(2)
    model = NeuralStagger(NeuralStaggerConfig(nx=24, ny=12, s_h=2, s_w=2, width=4, levels=1)).double()
    _randomised(model.net)
    domain = random_domain(np.random.default_rng(1), GRID)
    A = torch.as_tensor(domain.a_base[None, None]).clone()
    p = torch.zeros_like(A)
    cond = model.conditions([domain], A)
    assert model.subset(2) == [3]
    full_a, full_p = model.rollout(A, p, cond, 3, coarsen=1)
    coarse_a, coarse_p = model.rollout(A, p, cond, 3, coarsen=2)
    assert coarse_a.shape[-3:] == (1, 12, 6)
    assert torch.allclose(coarse_a, full_a[:, :, :, [3]], atol=1e-12) and torch.allclose(
        coarse_p, full_p[:, :, :, [3]], atol=1e-12)
    # the coarse piece's corners are the corners of the grid of spacing 2h
    fine = full_potential(A[0, 0].numpy(), domain.psi)
    assert np.array_equal(stagger(A, 2, 2)[0, 0, 3].numpy(), fine[2::2, 2::2])


def test_curl_of_any_potential_is_discretely_divergence_free():
    domain = random_domain(np.random.default_rng(4), GRID)
    hx, hy = GRID.spacing
    a = full_potential(torch.randn(24, 12, dtype=torch.float64), domain.psi)
    u, v = velocity_from_potential(a, hx, hy)
    div = mac_divergence(u, v, domain.geometry)
    assert div.abs().max() < 1e-12 * (u.abs().max() / hx)
    assert torch.allclose(u[0], torch.as_tensor(domain.inflow), atol=1e-12)     # inflow exact
    assert torch.equal(v[:, 0], torch.zeros(24, dtype=torch.float64))            # bottom wall exact
    # the potential of a divergence-free MAC velocity gives it back
    A0 = developed_state(domain, 0.2, 0.025)
    u0, v0 = velocity_from_potential(full_potential(A0, domain.psi), hx, hy)
    a0 = potential_from_velocity(u0, hy)
    assert np.allclose(velocity_from_potential(a0, hx, hy)[1], v0, atol=1e-12)


def test_fine_loss_of_the_exact_imex_step_is_round_off():
    """The θ = 1/2 MAC step solved to round-off (fixed point of the project's projection around
    the midpoint operators) has a zero momentum residual and boundary term."""
    domain = random_domain(np.random.default_rng(5), GRID)
    g = domain.geometry
    hx, hy = GRID.spacing
    dt = 0.01
    A0 = developed_state(domain, 0.2, 0.025)
    u0, v0 = velocity_from_potential(full_potential(A0, domain.psi), hx, hy)
    u, v = u0.copy(), v0.copy()
    for _ in range(100):
        fu, fv = mac_operators(torch.from_numpy(0.5 * (u + u0)), torch.from_numpy(0.5 * (v + v0)), domain.nu, g)
        us = np.where(g.u_free, u0 - dt * fu.numpy(), g.u_fixed)
        vs = np.where(g.v_free, v0 - dt * fv.numpy(), g.v_fixed)
        un, vn, p = g.project(us, vs, dt)
        change = max(np.abs(un - u).max(), np.abs(vn - v).max())
        u, v = un, vn
        if change < 1e-15:
            break
    model = NeuralStagger(NeuralStaggerConfig(nx=24, ny=12, dt=dt, width=4, levels=1)).double()
    A1 = potential_from_velocity(u, hy)[1:, 1:]
    t = lambda x: torch.as_tensor(x)[None, None]  # noqa: E731
    out = model.physics_loss(t(A1), t(p), t(A0), [domain])
    assert out["nav"] < 1e-24 and out["bnd"] < 1e-26
    # a perturbed step is not
    bad = model.physics_loss(t(A1 + 1e-3), t(p), t(A0), [domain])
    assert bad["nav"] > 1e-6 and bad["loss"] > out["loss"] + 20


def test_config_refuses_a_grid_the_factors_do_not_split():
    with pytest.raises(ValueError, match="does not split"):
        NeuralStaggerConfig(nx=24, ny=12, s_h=4, s_w=4, levels=1)
