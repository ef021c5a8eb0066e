"""NeuralStagger where the answer is known (issue 14; the method note's prototype): periodic advection–diffusion,
∂u/∂t + c·∇u = νΔu, c = (1, 0.5), ν = 0.01, on a 32 × 32 grid, Δt = 0.02, the Crank–Nicolson residual as the
only loss (no labels), and the exact discrete CN step by FFT as the independent reference.

On band-limited fields (|k_i| ≤ 3, resolved on every 2-fold sub-lattice) the four 16 × 16 sub-solvers lose no
information, so the staggered model must come close to the vanilla fine one, and one sub-solver alone must track
the sub-sampled reference. Both models: the same grouped U-Net per solver (width 16, one pooling), the same pool of
256 fields with the predictions written back (projected on the band, which keeps the pool band-limited), 600 Adam
steps. Measured on this machine: one-step error 0.0085 (vanilla) and 0.0112 (s = 2, 1.32x), 20-step rollouts 0.068
and 0.080; one sub-solver alone 0.082 over 20 steps (persistence 1.85). With two poolings the ratio was 1.97x (README).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from graphfem.operators.neuralstagger import PeriodicStagger, stagger
from graphfem.physics.darcy import gaussian_random_field
from graphfem.physics.grid import periodic_advection_diffusion_residual, periodic_advection_diffusion_step

torch.set_num_threads(1)

N, DT, C, NU, K_MAX = 32, 0.02, (1.0, 0.5), 0.01, 3
H = 1.0 / N


def band_limited(rng: np.random.Generator, k_max: int = K_MAX) -> np.ndarray:
    return gaussian_random_field(rng, (N, N), alpha=3.0, tau=2 * np.pi, k_max=k_max)


def project_on_band(u: np.ndarray) -> np.ndarray:
    k = np.abs(np.fft.fftfreq(N, 1.0 / N))
    spectrum = np.fft.fft2(u)
    spectrum[..., (k[:, None] > K_MAX) | (k[None, :] > K_MAX)] = 0.0
    return np.fft.ifft2(spectrum).real


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_the_fft_step_zeroes_the_finite_difference_residual():
    """Two independent codes of one scheme: the spectral solve and the stencil residual (torch.roll)."""
    u0 = band_limited(np.random.default_rng(0), k_max=15)
    for theta in (0.5, 1.0):
        u1 = periodic_advection_diffusion_step(u0, DT, C, NU, H, theta)
        r = periodic_advection_diffusion_residual(torch.tensor(u1), torch.tensor(u0), DT, C, NU, H, theta)
        assert float(r.abs().max()) < 1e-11 * float(np.abs(u0).max() / DT)
        assert rel(u1, u0) > 0.05  # the step moves the field


def test_a_band_limited_field_has_no_mode_above_the_band():
    u = band_limited(np.random.default_rng(1))
    k = np.abs(np.fft.fftfreq(N, 1.0 / N))
    spectrum = np.abs(np.fft.fft2(u))
    assert spectrum[(k[:, None] > K_MAX) | (k[None, :] > K_MAX)].max() < 1e-12 * spectrum.max()
    assert spectrum[(k[:, None] <= K_MAX) & (k[None, :] <= K_MAX)].max() > 1.0


def _train(s: int, steps: int = 600, batch: int = 16, pool_size: int = 256) -> PeriodicStagger:
    """The label-free training of both models: the squared CN residual of the reassembled step, a pool whose
    slots follow the model's own predictions (reset with probability 0.1 per visit)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = PeriodicStagger(s, DT, width=16, levels=1)
    pool = np.stack([band_limited(rng) for _ in range(pool_size)])
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    for _ in range(steps):
        slots = rng.choice(pool_size, batch, replace=False)
        u = torch.tensor(pool[slots], dtype=torch.float32)
        u_new = model(u)
        loss = (periodic_advection_diffusion_residual(u_new, u, DT, C, NU, H) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        pool[slots] = project_on_band(u_new.detach().double().numpy())
        for slot in slots[rng.random(batch) < 0.1]:
            pool[slot] = band_limited(rng)
    return model.eval()


@pytest.fixture(scope="module")
def models():
    return {s: _train(s) for s in (1, 2)}


def _errors(model: PeriodicStagger, steps: int = 20) -> tuple[float, float]:
    """Mean one-step and ``steps``-step relative errors against the exact CN step on 16 unseen fields."""
    rng = np.random.default_rng(99)
    one, many = [], []
    with torch.no_grad():
        for _ in range(16):
            u = band_limited(rng)
            pred = model(torch.tensor(u[None], dtype=torch.float32))
            one.append(rel(pred[0].double().numpy(), periodic_advection_diffusion_step(u, DT, C, NU, H)))
            ref = u.copy()
            for _ in range(steps - 1):
                ref = periodic_advection_diffusion_step(ref, DT, C, NU, H)
                pred = model(pred)
            ref = periodic_advection_diffusion_step(ref, DT, C, NU, H)
            assert torch.isfinite(pred).all()
            many.append(rel(pred[0].double().numpy(), ref))
    return float(np.mean(one)), float(np.mean(many))


def test_the_staggered_model_comes_within_1_5x_of_the_vanilla_one_on_band_limited_fields(models):
    vanilla, staggered = _errors(models[1]), _errors(models[2])
    assert vanilla[0] < 5e-2 and staggered[0] < 5e-2, (vanilla, staggered)
    assert staggered[0] < 1.5 * vanilla[0], (vanilla, staggered)       # one step
    assert staggered[1] < 1.5 * vanilla[1], (vanilla, staggered)       # 20 steps


def test_one_sub_solver_alone_tracks_the_sub_sampled_reference(models):
    """Solver 0 stepped on its own 16 x 16 piece for 20 steps (the other three never run) against the exact
    fine solution sampled on that piece's lattice."""
    model, rng = models[2], np.random.default_rng(7)
    errors, persistence = [], []
    with torch.no_grad():
        for _ in range(8):
            u = band_limited(rng)
            piece = stagger(torch.tensor(u[None], dtype=torch.float32), 2, 2)[:, 0]
            ref = u.copy()
            for _ in range(20):
                ref = periodic_advection_diffusion_step(ref, DT, C, NU, H)
                piece = model.sub_step(piece, 0)
            errors.append(rel(piece[0].double().numpy(), ref[0::2, 0::2]))
            persistence.append(rel(u[0::2, 0::2], ref[0::2, 0::2]))
    assert np.mean(errors) < 0.15 and np.mean(errors) < 0.1 * np.mean(persistence), (errors, persistence)
