r"""1D nonlinear Poisson with a u-dependent conductivity (the RGNP paper's first problem).

    (κ(u, x) u′)′ + w = 0 on (−1, 1),   u(±1) = 0,
    κ(u, x) = log(1 + exp(u a(x))) + 0.1,   a(x) = Σ_{n=0}^{4} z_n T_n(x)

with T_n the Chebyshev polynomials, z ∈ R⁵ and w a constant source. κ ≥ 0.1, so the
problem is uniformly elliptic whatever u.

The FE reference (:func:`nonlinear_poisson`) is P1 on the given mesh of [−1, 1]:
find u ∈ V₀ with ∫ κ(u) u′ v′ dx = ∫ w v dx for all v ∈ V₀, by Newton's method with
a backtracking line search on the residual norm (or damped Picard on κ(u)), to an
increment below ``tol``. :func:`residual` is the strong-form residual in torch for
physics-informed models (autograd in x).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from graphfem.meshes import FESpace, Mesh
from graphfem.meshes.errors import InputError, OptionValueError

from .problem import Option, Problem, Solution, register_problem

#: the sampler's box: z ~ U(Z_LOW, Z_HIGH)⁵, w ~ U(W_LOW, W_HIGH)
Z_LOW, Z_HIGH, W_LOW, W_HIGH = -1.0, 1.0, 1.0, 2.0
#: number of Chebyshev coefficients z_0..z_4
N_Z = 5
#: the floor of κ
KAPPA_MIN = 0.1


def conductivity(u: np.ndarray, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """κ(u, x) and ∂κ/∂u at matching arrays u, x (any shape); z (5,)."""
    from scipy.special import expit

    a = np.polynomial.chebyshev.chebval(x, np.asarray(z, float))
    s = u * a
    return np.logaddexp(0.0, s) + KAPPA_MIN, expit(s) * a


def nonlinear_poisson(mesh: Mesh | FESpace, z, w: float = 1.0, *, method: str = "newton", tol: float = 1e-10,
                      max_iter: int = 200, damping: float = 0.7, source=None) -> Solution:
    r"""Solve (κ(u)u′)′ + w = 0 on a mesh of [−1, 1] with u(±1) = 0 (module docstring).

    Args:
        mesh: a 1D line mesh spanning exactly [−1, 1] (or its P1 :class:`FESpace`).
        z: (5,) Chebyshev coefficients of a(x).
        w: the source.
        method: ``"newton"`` (Jacobian ∫ (κ δu′ + ∂κ/∂u δu u′) v′, backtracking on ‖R‖) or
            ``"picard"`` (u ← u + θ (K(κ(u))⁻¹ b − u), θ = ``damping``).
        tol: stop once ‖δu‖_∞ ≤ tol (1 + ‖u‖_∞).
        source: a callable f(x) (x (1, ...)) replacing w, for manufactured solutions.

    Returns:
        :class:`Solution` with ``fields["u"]`` at the nodes and ``info`` (method, iterations,
        the final increment and residual norm, total_s).
    """
    import skfem
    from skfem.helpers import dot, grad

    from .coefficients import scalar_node_dofs

    start = time.perf_counter()
    space = mesh if isinstance(mesh, FESpace) else FESpace(mesh, order=1)
    z = np.asarray(z, float)
    if space.mesh.dim != 1 or z.shape != (N_Z,) or not np.isfinite(z).all() or not np.isfinite(w):
        raise InputError(f"nonlinear-poisson needs a 1D mesh, {N_Z} finite z and a finite w", space.mesh.source)
    if method not in ("newton", "picard"):
        raise InputError(f"--method must be newton or picard, got {method!r}")
    basis = skfem.Basis(space.skfem_mesh, skfem.ElementLineP1(), intorder=4)
    f = (lambda x: source(x)) if source is not None else (lambda x: w + 0 * x[0])

    @skfem.BilinearForm
    def stiffness(du, v, p):
        kappa, _ = conductivity(np.asarray(p["u"]), p.x[0], z)
        return kappa * dot(grad(du), grad(v))

    @skfem.BilinearForm
    def jacobian(du, v, p):
        kappa, dkappa = conductivity(np.asarray(p["u"]), p.x[0], z)
        return kappa * dot(grad(du), grad(v)) + dkappa * du * dot(grad(p["u"]), grad(v))

    @skfem.LinearForm
    def residual_form(v, p):
        kappa, _ = conductivity(np.asarray(p["u"]), p.x[0], z)
        return kappa * dot(grad(p["u"]), grad(v)) - f(p.x) * v

    load = skfem.LinearForm(lambda v, p: f(p.x) * v).assemble(basis)
    D = basis.get_dofs().all()
    u = np.zeros(basis.N)

    def res(vec: np.ndarray) -> np.ndarray:
        r = residual_form.assemble(basis, u=basis.interpolate(vec))
        r[D] = 0.0
        return r

    step, r_norm = np.inf, np.inf
    for it in range(1, max_iter + 1):
        ui = basis.interpolate(u)
        if method == "picard":
            full = skfem.solve(*skfem.condense(stiffness.assemble(basis, u=ui), load, D=D, x=np.zeros(basis.N)))
            delta = damping * (full - u)
            u = u + delta
        else:
            r = res(u)
            r_norm = float(np.linalg.norm(r))
            J = jacobian.assemble(basis, u=ui)
            d = skfem.solve(*skfem.condense(J, -r, D=D, x=np.zeros(basis.N)))
            t = 1.0
            while t > 1e-4 and np.linalg.norm(res(u + t * d)) > (1 - 1e-4 * t) * r_norm:
                t *= 0.5
            delta = t * d
            u = u + delta
        step = float(np.abs(delta).max())
        if step <= tol * (1.0 + np.abs(u).max()):
            break
    else:
        raise InputError(f"nonlinear-poisson: {method} did not converge in {max_iter} iterations (last increment "
                         f"{step:.1e})", space.mesh.source)
    r_norm = float(np.linalg.norm(res(u)))
    nodes = u[scalar_node_dofs(space)]
    info = {"method": method, "iterations": it, "increment": step, "residual": r_norm,
            "total_s": time.perf_counter() - start}
    return Solution(space, {"u": u}, {"u": nodes}, {"u": "1"}, info)


def chebyshev(x, n: int):
    """T_0..T_{n−1} at x by the recurrence T_{k+1} = 2x T_k − T_{k−1}: torch (...,) -> (..., n)."""
    import torch

    terms = [torch.ones_like(x), x]
    while len(terms) < n:
        terms.append(2 * x * terms[-1] - terms[-2])
    return torch.stack(terms[:n], -1)


def residual(x, u, z, w):
    r"""The strong residual r = (κ(u, x) u′)′ + w in torch, by autograd in x.

    Args:
        x: (B, N) points (``requires_grad``), u: (B, N) values computed from x (one point's
            value depends on that point alone), z: (B, 5), w: (B, 1) or (B, N).

    Returns:
        r: (B, N), differentiable in everything u depends on (``create_graph``).
    """
    import torch

    (du,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    a = (chebyshev(x, z.shape[-1]) * z[:, None, :]).sum(-1)
    kappa = torch.nn.functional.softplus(u * a) + KAPPA_MIN
    (dflux,) = torch.autograd.grad((kappa * du).sum(), x, create_graph=True)
    return dflux + w


def _z_values(raw, mesh: Mesh, option: Option) -> np.ndarray:
    """``"z0,z1,z2,z3,z4"`` (or a sequence of 5 numbers) -> array (5,)."""
    from .options import vector

    if isinstance(raw, str):
        return vector(raw, N_Z, option.cli_flag)
    values = np.asarray(raw, dtype=float).ravel()
    if values.shape != (N_Z,) or not np.isfinite(values).all():
        raise OptionValueError(f"{option.cli_flag}: expected {N_Z} finite comma-separated numbers, got {raw!r}")
    return values


@register_problem
class NonlinearPoisson(Problem):
    r"""(κ(u)u′)′ + w = 0 on [−1, 1], u(±1) = 0, κ = log(1 + exp(u Σ z_n T_n(x))) + 0.1;
    :func:`nonlinear_poisson`.

    Data sets (:meth:`sample`): the interval [−1, 1] with ``resolution`` (200) P1 cells,
    z ~ U(−1, 1)⁵, w ~ U(1, 2).
    """

    name = "nonlinear-poisson"
    fields = {"u": "1"}
    summary = "1D nonlinear Poisson (kappa(u) u')' + w = 0 on [-1, 1], kappa = log(1 + exp(u sum z_n T_n)) + 0.1"
    dims = (1,)
    options = (
        Option("z", "vector", np.zeros(N_Z), "Chebyshev coefficients z0,...,z4 of the conductivity (default 0).",
               parse=_z_values),
        Option("w", "number", 1.0, "Source w (default 1)."),
        Option("method", "choice", "newton", "Nonlinear iteration: newton or picard.", role="setting",
               choices=("newton", "picard")),
        Option("tol", "number", 1e-10, "Stop once the increment is below tol (1 + max|u|).", role="setting"),
    )
    geometries = ("interval",)

    def check(self, mesh: Mesh, params: dict[str, Any]) -> None:
        x = mesh.points[:, 0]
        if x.min() < -1 - 1e-12 or x.max() > 1 + 1e-12:
            raise InputError(f"nonlinear-poisson lives on [-1, 1]; the mesh spans [{x.min():g}, {x.max():g}]",
                             mesh.source)
        if params["tol"] <= 0:
            raise InputError(f"--tol must be positive, got {params['tol']}")

    def solve(self, mesh: Mesh | FESpace, **params) -> Solution:
        m = mesh.mesh if isinstance(mesh, FESpace) else mesh
        x = m.points[:, 0]
        if abs(x.min() + 1) > 1e-12 or abs(x.max() - 1) > 1e-12:
            raise InputError(f"the FE solve needs a mesh of the whole interval [-1, 1] (u(-1) = u(1) = 0); this "
                             f"one spans [{x.min():g}, {x.max():g}]", m.source)
        return nonlinear_poisson(mesh, **params)

    def report(self, solution: Solution) -> list[str]:
        info = solution.info
        return [f"{info['method']}: {info['iterations']} iterations, last increment {info['increment']:.1e}, "
                f"residual {info['residual']:.1e}"]

    def sample(self, rng: np.random.Generator, geometry: str | None = None, resolution: int = 200):
        self.geometry(geometry)
        if resolution < 8:
            raise InputError(f"--resolution must be at least 8, got {resolution}")
        mesh = Mesh.interval(int(resolution), -1.0, 1.0)
        z = rng.uniform(Z_LOW, Z_HIGH, N_Z)
        return mesh, {"z": [float(v) for v in z], "w": float(rng.uniform(W_LOW, W_HIGH))}


__all__ = ["KAPPA_MIN", "NonlinearPoisson", "N_Z", "W_HIGH", "W_LOW", "Z_HIGH", "Z_LOW", "chebyshev",
           "conductivity", "nonlinear_poisson", "residual"]
