r"""Optimal control of the vortex-shedding frequency through a differentiable rollout of a trained
NeuralStagger model (the control task of NeuralStagger's abstract, in Wandel et al. 2021's pattern:
the inflow speed is the only variable, the objective a spectral measure of a probe velocity).

**Control variable.** The inflow peak u (parabolic profile, mean ū = ⅔u). Everything of the
channel that depends on it is linear in it: the inflow potential ψ = u ψ₁, the Poiseuille potential
A_base = u A_base,1, the impulsive start A₀ = u A₀,₁ (its projection is linear) and the input
channel u/u_ref. So a model rollout is differentiable in u (:class:`ModelShedding`).

**One iteration.** The flow carries over from the previous iteration, its potential rescaled by
u/u_prev (so the walls' flux matches the new inflow exactly); ``warmup`` steps without gradients let
it adapt; then ``window`` differentiable steps give the probe's transverse velocity s (R,) at
spacing Δt. The **soft spectral peak**, a differentiable surrogate of the shedding frequency:

    P_k = |Σ_n w_n (s_n − s̄) e^{−2πi k n/(pad·R)}|²  (w the Hann window, k ≥ 1),
    f̄ = Σ_k f_k P_k^β / Σ_k P_k^β,   f_k = k/(pad·R·Δt)

(β → ∞ gives the peak of the zero-padded spectrum that :func:`graphfem.physics.mac_channel.strouhal`
measures). Objective J = (f̄/f* − 1)², minimised over u by Adam, u clipped to the model's training range.

This file optimises an *input* (the inflow), never the model's weights; it is listed in
tests/test_one_loop.py's EXCEPTIONS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from graphfem.meshes import Grid
from graphfem.meshes.errors import InputError


def soft_peak_frequency(signal: torch.Tensor, dt: float, beta: float = 8.0, pad: int = 8) -> torch.Tensor:
    """The soft spectral peak f̄ of the module docstring of a signal (R,) sampled every ``dt``
    (differentiable; a 0-d tensor, in 1/time units)."""
    n = signal.shape[-1]
    x = (signal - signal.mean()) * torch.hann_window(n, periodic=False, dtype=signal.dtype, device=signal.device)
    spectrum = torch.fft.rfft(x, pad * n)
    power = spectrum.real ** 2 + spectrum.imag ** 2  # not |z|², whose gradient is NaN at z = 0
    freq = torch.fft.rfftfreq(pad * n, dt, dtype=signal.dtype, device=signal.device)
    peak = power[1:].max().detach()
    logp = torch.log(power[1:] + 1e-12 * peak + 1e-30) - torch.log(peak + 1e-30)  # finite for a flat signal
    weights = torch.softmax(beta * logp, dim=0)
    return (weights * freq[1:]).sum()


@dataclass
class ControlResult:
    """The optimisation's history: u, the surrogate frequency f̄ and J per iteration, the final u."""

    u: float
    history: list[dict]
    target: float

    def as_dict(self) -> dict:
        return {"u_max": self.u, "target_frequency": self.target, "history": self.history}


def control(simulate: Callable[[torch.Tensor], torch.Tensor], u0: float, target: float, dt: float,
            bounds: tuple[float, float], iterations: int = 30, lr: float = 0.05, beta: float = 8.0,
            tol: float = 0.0, log: Callable[[dict], None] | None = None) -> ControlResult:
    """Minimise J(u) = (f̄(simulate(u))/target − 1)² over the inflow peak u by Adam (learning rate
    ``lr``), u clipped to ``bounds``; ``simulate`` maps a 0-d tensor u to the probe signal (R,),
    differentiably. Stops early when |f̄/target − 1| < ``tol``. The final u is the iterate of the
    smallest J."""
    if not target > 0:
        raise InputError(f"--target-frequency: expected a positive frequency, got {target:g}")
    lo, hi = bounds
    if not lo <= u0 <= hi:
        raise InputError(f"--u0: {u0:g} is outside the model's inflow range [{lo:g}, {hi:g}]")
    u = torch.tensor(float(u0), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([u], lr=lr)
    history = []
    for it in range(iterations):
        opt.zero_grad()
        f = soft_peak_frequency(simulate(u).double(), dt, beta)
        J = (f / target - 1.0) ** 2
        J.backward()
        row = {"iteration": it, "u_max": float(u.detach()), "frequency": float(f.detach()), "J": float(J.detach()),
               "grad": float(u.grad)}
        history.append(row)
        if log is not None:
            log(row)
        if not np.isfinite(row["J"]) or abs(row["frequency"] / target - 1.0) < tol:
            break
        opt.step()
        with torch.no_grad():
            u.clamp_(lo, hi)
    best = min((r for r in history if np.isfinite(r["J"])), key=lambda r: r["J"], default=history[-1])
    return ControlResult(best["u_max"], history, target)


class ModelShedding:
    """A trained :class:`~graphfem.operators.neuralstagger.NeuralStagger` rolled out on a channel as
    a differentiable function of the inflow peak u (the module docstring): ``self(u)`` returns the
    probe's transverse velocity over ``window`` steps (at least; whole windows of s_t frames).

    Args:
        model: the trained model (its grid, Δt, u_ref, ν_ref).
        solid: (nx, ny) bool obstacle cells on the model's grid; nu: the viscosity.
        probe: the probe point (a y-face of :func:`graphfem.physics.mac_channel.probe_index`, not in
            the first cell column).
        start: steps of the first run from the impulsive start (no gradient).
        warmup, window: steps per iteration without and with gradient.
    """

    def __init__(self, model, solid: np.ndarray, nu: float, probe: tuple[float, float], start: int = 200,
                 warmup: int = 40, window: int = 120, device: str = "cpu"):
        from graphfem.physics.mac_channel import Domain, probe_index

        c = model.config
        self.model, self.device = model.eval().requires_grad_(False), device  # frozen: only u is optimised
        self.grid = Grid((c.nx, c.ny), (c.x_min, c.y_min), (c.x_max, c.y_max))
        self.probe = probe
        if probe_index(self.grid, probe)[0] < 1:
            raise InputError(f"the probe {tuple(probe)} lies in the inflow column; place it behind the obstacle")
        self.unit = Domain(self.grid, np.asarray(solid, bool), 1.0, float(nu))
        self.dtype = next(model.parameters()).dtype
        tensor = lambda x: torch.as_tensor(np.asarray(x), dtype=self.dtype, device=device)  # noqa: E731
        cond = model.conditions([self.unit], tensor(np.zeros(1)))            # (1, 6, nx, ny) at u = 1
        self.cond_base, self.cond_static = cond[:, :1], cond[:, 1:]
        self.start1 = tensor(self.unit.start())
        self.windows = lambda steps: -(-steps // c.s_t)  # noqa: E731
        self.first, self.warmup, self.window = start, warmup, window
        self.state: tuple[torch.Tensor, torch.Tensor, float] | None = None

    def conditions(self, u: torch.Tensor) -> torch.Tensor:
        """(1, 6, nx, ny) conditions of the channel at inflow peak u (differentiable in u)."""
        c = self.model.config
        static, scale = self.cond_static, (u / c.u_ref).to(self.dtype)
        return torch.cat([self.cond_base * u.to(self.dtype), static[:, :3], scale.expand_as(static[:, 3:4]),
                          static[:, 4:]], dim=1)

    def signal(self, A: torch.Tensor) -> torch.Tensor:
        """Probe v of frames A (F, nx, ny); the ψ column is not read (the probe is past column 0)."""
        from graphfem.physics.mac_channel import probe_signal

        return probe_signal(A, self.unit.psi, self.grid, self.probe)

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        c, model = self.model.config, self.model
        cond = self.conditions(u)
        if self.state is None:
            A = (self.start1 * float(u.detach()))[None, None].expand(1, c.s_t, c.nx, c.ny).contiguous()
            p = torch.zeros_like(A)
            with torch.no_grad():
                for _ in range(self.windows(self.first)):
                    A, p = model.step(A, p, cond.detach())
            self.state = (A, p, float(u.detach()))
        A, p, u_prev = self.state
        A = A * (u.to(self.dtype) / u_prev)
        with torch.no_grad():
            for _ in range(self.windows(self.warmup)):
                A, p = model.step(A.detach(), p, cond.detach())
        frames = []
        for _ in range(self.windows(self.window)):
            A, p = model.step(A, p, cond)
            frames.append(A[0])
        self.state = (A.detach(), p.detach(), float(u.detach()))
        return self.signal(torch.cat(frames))


def control_model(model, meta: dict, target: float, *, u0: float = 1.5, nu: float | None = None,
                  centre: tuple[float, float] = (0.5, 0.51), diameter: float = 0.2,
                  probe: tuple[float, float] = (1.0, 0.5), iterations: int = 20, lr: float = 0.05,
                  start: int = 200, warmup: int = 40, window: int = 120, verify_t_end: float = 10.0,
                  verify_window: float = 6.0, verify: bool = True, device: str = "cpu",
                  log: Callable[[dict], None] | None = None) -> dict:
    """Control a trained NeuralStagger model's shedding frequency (``target``, 1/s) on the cylinder
    channel of :func:`graphfem.physics.mac_channel.cylinder_domain`, then (``verify``) run the
    project's MAC solver at the found inflow peak and measure its shedding frequency
    (:func:`graphfem.physics.mac_channel.shedding_reference`: the last ``verify_window`` of
    ``verify_t_end`` time units). ν defaults to the middle of the training range; ν and u0 must lie
    inside it. Returns the JSON-ready result: u_max, the history, the model's measured shedding
    (:func:`~graphfem.physics.mac_channel.strouhal` of its last window at the found u) and the MAC one."""
    from graphfem.meshes.errors import GraphfemError
    from graphfem.physics.mac_channel import cylinder_domain, shedding_reference, strouhal

    if meta.get("model") != "neuralstagger":
        raise InputError(f"a {meta.get('model')} checkpoint; control needs a neuralstagger model")
    ranges = meta["problem"]["ranges"]
    nu = float(np.mean(ranges["nu"])) if nu is None else float(nu)
    lo, hi = ranges["nu"]
    if not lo <= nu <= hi:
        raise InputError(f"--nu: {nu:g} is outside the model's training range [{lo:g}, {hi:g}]")
    for name, value in (("--iterations", iterations), ("--window-steps", window), ("--start-steps", start + 1),
                        ("--warmup-steps", warmup + 1)):
        if value < 1:
            raise InputError(f"{name}: expected a positive count, got {value}")
    if window < 16:
        raise InputError(f"--window-steps: {window} steps are too few for a spectrum; give at least 16")
    if not (np.isfinite(lr) and lr > 0):
        raise InputError(f"--lr: expected a positive learning rate, got {lr:g}")
    c = model.config
    grid = Grid((c.nx, c.ny), (c.x_min, c.y_min), (c.x_max, c.y_max))
    domain = cylinder_domain(grid, u0, nu, centre, diameter)
    shed = ModelShedding(model, domain.solid, nu, probe, start, warmup, window, device)
    result = control(shed, u0, target, c.dt, tuple(ranges["u_max"]), iterations, lr, log=log)
    if not np.isfinite(result.history[-1]["J"]):
        raise GraphfemError("the model's rollout became non-finite during the control; no result written")
    with torch.no_grad():  # the model's own shedding at the found u, measured as the MAC solver's is
        u = torch.tensor(result.u, dtype=torch.float64)
        shed.state = None
        model_signal = shed(u).double().numpy()
    out = {"u_max": result.u, "target_frequency": target, "nu": nu, "centre": list(centre), "diameter": diameter,
           "probe": list(probe), "dt": c.dt, "history": result.history,
           "model": strouhal(model_signal, c.dt, diameter, 2.0 * result.u / 3.0)}
    if verify:
        ref = shedding_reference(cylinder_domain(grid, result.u, nu, centre, diameter), c.dt, verify_t_end, probe,
                                 verify_window)
        ref["signal"] = ref["signal"].tolist()  # the probe's whole history, every dt
        out["mac"] = ref
        out["mac_frequency_error"] = (ref["frequency"] / target - 1.0) if ref["shedding"] else float("nan")
    return out


__all__ = ["ControlResult", "ModelShedding", "control", "control_model", "soft_peak_frequency"]
