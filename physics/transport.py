"""Advection–diffusion (SUPG where the cell Péclet number asks for it) and viscous Burgers, 1D/2D/3D.

Advection–diffusion, ∂u/∂t + b·∇u − κΔu = f, steady or by the θ-scheme.
Galerkin FE oscillates once the cell Péclet number Pe_K = |b| h_K / (2κ)
exceeds 1; streamline-upwind Petrov–Galerkin (SUPG, Brooks & Hughes 1982)
adds the residual tested with τ b·∇v:

    (∂u/∂t + b·∇u − κΔu − f, v + τ b·∇v) + κ(∇u, ∇v) = 0 ...

with the element parameter τ = h_K/(2|b|) (coth Pe_K − 1/Pe_K) (nodally exact
in 1D steady flow) and the streamline element size h_K = 2|b| / Σ_i |b·∇φ_i|.
The Δu term vanishes on P1 elements and is dropped (P2 SUPG is therefore
only approximately consistent). ``stabilization="auto"`` uses SUPG when
max Pe_K > 1. The velocity b is a constant vector or a callable b(x)
returning (dim, ...) values, steady in time.

Burgers, ∂u/∂t + (u·∇)u − νΔu = 0 for a vector field u (a scalar in 1D),
by the θ-scheme with Newton's method (or Picard) at every step:

    M (uⁿ⁺¹ − uⁿ)/Δt + θ N(uⁿ⁺¹) + (1 − θ) N(uⁿ) = 0,
    N(u)_i = ∫ (u·∇)u·φ_i + ν ∇u:∇φ_i dx.

The Galerkin form is not stabilised: keep the mesh Reynolds number
|u| h/ν below about 2. :func:`burgers_cole_hopf` is the exact 1D solution
for u₀ = sin(πx) on (0, 1) with u(0) = u(1) = 0.

Dirichlet data may depend on time: a callable with two arguments is called
as g(x, t). Sets of fixed dofs are the same at every step.
"""
from __future__ import annotations

import inspect
import logging
import math
import time
from typing import Callable, Mapping

import numpy as np
import scipy.sparse.linalg as spl

from graphfem.meshes import FESpace, Mesh
from graphfem.meshes.errors import GraphfemError, InputError

from .coefficients import Scalar, at_points, at_quadrature, constant, nodal_dofs, vector_at_quadrature
from .linear_solvers import LinearSolver, condense
from .heat import DIRICHLET, DT, INITIAL, KAPPA, NEUMANN, SAVE_EVERY, SOURCE, T_END, THETA, check_theta, gaussian_bumps
from .options import field_value, replace_columns, tag_values, vector_field
from .poisson import ORDER, boundary_terms, diffusion_matrix, load_vector, make_space, nodal_values
from .problem import Features, Option, Problem, Solution, at_nodes, register_problem
from .timesteps import SavedStates, time_steps

logger = logging.getLogger("graphfem.physics")

STABILIZATIONS = ("auto", "supg", "none")


# ------------------------------------------------------------------ shared helpers
def _time_dependent(value) -> bool:
    """True for callables taking (x, t)."""
    if not callable(value):
        return False
    try:
        params = [p for p in inspect.signature(value).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return False
    return len(params) >= 2


def _at_time(value, t: float):
    return (lambda x: value(x, t)) if _time_dependent(value) else value


def _steps(t_end: float, dt: float) -> tuple[int, float]:
    return time_steps(t_end, dt)


def _check_theta(theta: float) -> float:
    theta = constant(theta, "theta")
    if not 0 <= theta <= 1:
        raise InputError(f"theta must lie in [0, 1], got {theta}")
    return theta


class _Dirichlet:
    """Fixed dofs D of a scalar or vector space and their values at time t.

    ``conditions``: tag -> value (number, (dim,) vector, callable g(x) or g(x, t));
    none at all means u = 0 on the whole boundary."""

    def __init__(self, space: FESpace, conditions: Mapping | None, default_zero: bool = True):
        self.space = space
        self.items = []  # (dofs, component or None, value)
        nc = space.n_components
        if not conditions:
            dofs = space.boundary_dofs() if default_zero else np.zeros(0, dtype=np.int64)
            self.items.append((dofs, None, 0.0))
        else:
            for tag, value in conditions.items():
                if space.vector:
                    for c in range(nc):
                        self.items.append((space.dofs_on(tag, component=c), c, value))
                else:
                    self.items.append((space.dofs_on(tag), None, value))
        self.D = np.unique(np.concatenate([d for d, _, _ in self.items])) if self.items else np.zeros(0, int)
        self.moving = any(_time_dependent(v) for _, _, v in self.items)

    def values(self, t: float) -> np.ndarray:
        """(n_dofs,) vector with the Dirichlet values on D (later tags win) and zeros elsewhere."""
        out = np.zeros(self.space.n_dofs)
        nc = self.space.n_components
        for dofs, c, value in self.items:
            if dofs.size == 0:
                continue
            x = self.space.dof_coordinates[dofs].T
            g = _at_time(value, t)
            if c is None:
                out[dofs] = at_points(g, x, "Dirichlet value")
            else:
                out[dofs] = at_points(g, x, "Dirichlet value", components=nc)[c]
        return out


def _initial(space: FESpace, initial) -> np.ndarray:
    """Dof vector of an initial condition: number / vector, callable of x
    (dim, k) (returning (dim, k) for vector spaces), or nodal values."""
    nc = space.n_components
    if callable(initial) or np.ndim(initial) == 0 or (space.vector and np.shape(initial) == (nc,)):
        x = np.asarray(space.scalar_basis.doflocs)
        if not space.vector:
            return np.array(at_points(initial, x, "initial condition"), dtype=float)
        values = at_points(initial, x, "initial condition", components=nc)
        return np.array(values.T, dtype=float).reshape(-1)
    if space.vector:
        values = np.asarray(initial, dtype=float).reshape(space.mesh.n_points, nc)
        return space.from_nodes(values)
    return nodal_dofs(space, initial, "initial condition")


# ------------------------------------------------------------------ advection–diffusion
def supg_parameters(space: FESpace, velocity, kappa: Scalar, basis=None) -> tuple[np.ndarray, np.ndarray]:
    """SUPG τ and the cell Péclet number at the quadrature points, each (n_cells, n_qp).

    h_K = 2|b| / Σ_i |b·∇φ_i| (the element's length along the streamline),
    Pe = |b| h_K/(2κ), τ = h_K/(2|b|)(coth Pe − 1/Pe) (0 where b = 0)."""
    basis = space.basis if basis is None else basis
    b = vector_at_quadrature(velocity, space, basis, "velocity")
    k = np.broadcast_to(at_quadrature(kappa, space, basis, "kappa"), b.shape[1:])
    speed = np.sqrt((b ** 2).sum(axis=0))
    total = np.zeros_like(speed)
    for i in range(basis.Nbfun):
        grad_phi = np.asarray(basis.basis[i][0].grad)
        total += np.abs((b * grad_phi).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(total > 0, 2 * speed / total, 0.0)
        pe = speed * h / (2 * k)
        xi = np.where(pe > 1e-6, 1 / np.tanh(np.maximum(pe, 1e-6)) - 1 / np.maximum(pe, 1e-6), pe / 3)
        tau = np.where(speed > 0, h / (2 * np.where(speed > 0, speed, 1.0)) * xi, 0.0)
    return tau, pe


def advection_matrices(space: FESpace, velocity, kappa: Scalar, f: Scalar, stabilization: str = "auto"):
    """The matrices of ∂u/∂t + b·∇u − κΔu = f, SUPG included where asked.

    Returns:
        (M, A, F, info): M (n, n) the (stabilised) mass, A = C + K (n, n) advection
        plus diffusion, F (n,) the (stabilised) load, and info with
        ``peclet_max`` and ``stabilization`` (``"supg"`` or ``"none"``).
    """
    from skfem import BilinearForm, LinearForm
    from skfem.helpers import dot, grad

    if stabilization not in STABILIZATIONS:
        raise InputError(f"unknown stabilization {stabilization!r}; choose one of {', '.join(STABILIZATIONS)}")
    basis = space.basis
    b = vector_at_quadrature(velocity, space, basis, "velocity")
    tau, pe = supg_parameters(space, velocity, kappa)
    peclet = float(pe.max()) if pe.size else 0.0
    use = stabilization == "supg" or (stabilization == "auto" and peclet > 1.0)
    M = space.mass()
    K = diffusion_matrix(space, kappa)
    C = BilinearForm(lambda u, v, w: dot(w["b"], grad(u)) * v).assemble(basis, b=b)
    F = load_vector(space, f)
    if use:
        fq = np.broadcast_to(at_quadrature(f, space, basis, "f"), tau.shape)
        M = M + BilinearForm(lambda u, v, w: u * w["tau"] * dot(w["b"], grad(v))).assemble(basis, b=b, tau=tau)
        C = C + BilinearForm(lambda u, v, w: dot(w["b"], grad(u)) * w["tau"] * dot(w["b"], grad(v))).assemble(
            basis, b=b, tau=tau)
        F = F + LinearForm(lambda v, w: w["f"] * w["tau"] * dot(w["b"], grad(v))).assemble(
            basis, b=b, tau=tau, f=np.ascontiguousarray(fq))
    info = {"peclet_max": peclet, "stabilization": "supg" if use else "none"}
    return M.tocsr(), (C + K).tocsr(), F, info


def advection_diffusion(mesh: Mesh | FESpace, velocity, kappa: Scalar = 1.0, f: Scalar = 0.0, *,
                        initial: Scalar = 0.0, t_end: float | None = None, dt: float | None = None,
                        theta: float = 0.5, dirichlet: Mapping | None = None,
                        neumann: Mapping[str, Scalar] | None = None, stabilization: str = "auto",
                        order: int | None = None, save_every: int = 1, unit: str = "1",
                        frames: Callable[[float, dict], None] | None = None,
                        progress: Callable[[int, int], None] | None = None) -> Solution:
    """Solve b·∇u − κΔu = f (``t_end=None``) or ∂u/∂t + b·∇u − κΔu = f on (0, t_end].

    Each θ-step solves (M + θΔt A) uⁿ⁺¹ = (M − (1 − θ)Δt A) uⁿ + Δt F with
    A = C + K (advection + diffusion, SUPG terms included in M, C and F);
    the (non-symmetric) matrix is LU-factorised once.

    Args:
        mesh: a :class:`Mesh` or scalar :class:`FESpace`.
        velocity: b, a (dim,) vector or a callable b(x) -> (dim, ...).
        kappa: diffusivity κ > 0 (number, callable, point or cell field).
        f: source (same forms), constant in time.
        initial: u₀ (number, callable of x, or nodal values) for the transient problem.
        t_end, dt: final time and step; ``t_end=None`` solves the steady problem.
        theta: θ-scheme weight (1 backward Euler, 0.5 Crank–Nicolson).
        dirichlet: tag -> value (number, g(x) or g(x, t)); with no
            condition at all, u = 0 on the whole boundary.
        neumann: tag -> κ∂u/∂n (outward); boundaries without a condition are insulated.
        stabilization: ``"auto"`` (SUPG where max Pe_K > 1), ``"supg"`` or ``"none"``.
        order: 1 or 2.
        save_every: keep every k-th step (the first and last are kept).
        unit: unit of u.
        frames, progress: a stream of the saved states and a ``progress(step, steps)`` callback, as in
            :func:`~graphfem.physics.heat.heat_solution` (with ``frames`` no trajectory is kept).

    Returns:
        :class:`Solution` with ``fields["u"]`` (final state, (n_points,)),
        ``trajectory`` (transient only) and ``info`` with ``peclet_max``,
        ``stabilization``, ``steps``, ``dt``, ``theta`` and solver facts.
    """
    start = time.perf_counter()
    space = make_space(mesh, order)
    M, A, F, info = advection_matrices(space, velocity, kappa, f, stabilization)
    R, r = boundary_terms(space, neumann, None)
    if R is not None:
        A = A + R
    if neumann:
        F = F + r
    bc = _Dirichlet(space, dirichlet, default_zero=not neumann)
    D = bc.D
    if t_end is None:
        x = bc.values(0.0)
        A_II, b_I, _, I = condense(A, F, D, x[D])
        solver = LinearSolver(A_II, method="direct")
        x[I] = solver.solve(b_I)
        info.update(solver.info, total_s=time.perf_counter() - start)
        logger.info("advection-diffusion (steady): Pe_max=%.3g, %s", info["peclet_max"], info["stabilization"])
        return Solution(space, {"u": x}, {"u": nodal_values(space, x)}, {"u": unit}, info)

    if dt is None:
        raise InputError("a transient solve needs dt")
    steps, dt = _steps(t_end, dt)
    theta = _check_theta(theta)
    saved = SavedStates(steps, save_every, space.mesh.n_points, frames)
    L = (M + theta * dt * A).tocsr()
    B = (M - (1 - theta) * dt * A).tocsr()
    I = np.setdiff1d(np.arange(space.n_dofs), D)
    solver = LinearSolver(L[I][:, I], method="direct", factorize=True)
    L_ID = L[I][:, D]
    u = _initial(space, initial)
    g = bc.values(0.0)
    u[D] = g[D]
    saved.save(0.0, {"u": nodal_values(space, u)})
    for step in range(1, steps + 1):
        if bc.moving:
            g = bc.values(step * dt)
        rhs = (B @ u + dt * F)[I] - L_ID @ g[D]
        u = g.copy()
        u[I] = solver.solve(rhs)
        if saved.due(step):
            saved.save(step * dt, {"u": nodal_values(space, u)})
        if progress is not None:
            progress(step, steps)
    info.update(solver.info, steps=steps, dt=dt, theta=theta, frames=saved.count, total_s=time.perf_counter() - start)
    logger.info("advection-diffusion: %d steps of dt=%g, Pe_max=%.3g, %s", steps, dt, info["peclet_max"],
                info["stabilization"])
    return Solution(space, {"u": u}, {"u": nodal_values(space, u)}, {"u": unit}, info,
                    trajectory=saved.trajectory(space.mesh, {"u": unit}))


def travelling_gaussian(x: np.ndarray, t: float, velocity, kappa: float, centre, sigma: float) -> np.ndarray:
    """Exact solution on ℝᵈ of ∂u/∂t + b·∇u = κΔu with u₀ = exp(−|x − c|²/(2σ²)):

        u = (σ²/s²)^{d/2} exp(−|x − c − b t|²/(2 s²)),  s² = σ² + 2κt.

    Shapes: x (dim, ...) -> (...)."""
    x = np.asarray(x, dtype=float)
    d = x.shape[0]
    shift = np.asarray(centre, dtype=float) + np.asarray(velocity, dtype=float) * t
    s2 = sigma ** 2 + 2 * kappa * t
    r2 = sum((x[i] - shift[i]) ** 2 for i in range(d))
    return (sigma ** 2 / s2) ** (d / 2) * np.exp(-r2 / (2 * s2))


# ------------------------------------------------------------------ Burgers
def _burgers_forms():
    from skfem import BilinearForm, LinearForm
    from skfem.helpers import dot, grad

    def convection(w):  # (w·∇)w, (dim, ...)
        return np.einsum("ij...,j...->i...", grad(w), w)

    nonlinear = LinearForm(lambda v, w: dot(convection(w["u"]), v))
    picard = BilinearForm(lambda du, v, w: dot(np.einsum("ij...,j...->i...", grad(du), w["u"]), v))
    newton = BilinearForm(lambda du, v, w: dot(np.einsum("ij...,j...->i...", grad(du), w["u"])
                                               + np.einsum("ij...,j...->i...", grad(w["u"]), du), v))
    return nonlinear, picard, newton


def burgers(mesh: Mesh | FESpace, nu: float, *, initial, t_end: float, dt: float, theta: float = 0.5,
            dirichlet: Mapping | None = None, method: str = "newton", tol: float = 1e-10, max_iter: int = 30,
            order: int | None = None, save_every: int = 1, unit: str = "1",
            frames: Callable[[float, dict], None] | None = None,
            progress: Callable[[int, int], None] | None = None) -> Solution:
    """Viscous Burgers ∂u/∂t + (u·∇)u = νΔu by the θ-scheme with Newton or Picard per step.

    In 1D u is scalar (u_t + u u_x = ν u_xx); in 2D/3D u has dim components.
    Each step solves F(u) = M(u − uⁿ)/Δt + θ N(u) + (1 − θ) N(uⁿ) = 0 from the
    guess uⁿ; Newton's Jacobian is M/Δt + θ(νK + (δu·∇)u + (u·∇)δu), Picard's
    drops (δu·∇)u. An iteration stops when the update's max-norm is below
    ``tol``·(1 + |u|_∞); a step that does not get there in ``max_iter``
    iterations raises :class:`GraphfemError` with the step, the count and the residual.

    Args:
        mesh: a :class:`Mesh` or a vector :class:`FESpace`.
        nu: viscosity ν > 0.
        initial: u₀: number/vector, callable of x (dim, k) (returning (dim, k)
            in 2D/3D), or nodal values (n_points,) / (n_points, dim).
        t_end, dt, theta, save_every, order, unit: as in :func:`advection_diffusion`.
        dirichlet: tag -> value (number, vector, g(x) or g(x, t)); none at
            all means u = 0 on the whole boundary.
        method: ``"newton"`` or ``"picard"``.
        tol, max_iter: the nonlinear iteration's stopping rule.
        frames, progress: as in :func:`advection_diffusion`.

    Returns:
        :class:`Solution` with ``dofs["u"]`` (interleaved per node for vectors),
        ``fields["u"]`` (n_points,) or (n_points, dim), the ``trajectory`` and
        ``info`` with ``steps``, ``dt``, ``theta``, ``iterations`` (per step,
        a list) and ``residuals`` (final residual per step).
    """
    start = time.perf_counter()
    nu = constant(nu, "nu")
    if nu <= 0:
        raise InputError(f"nu must be positive, got {nu}")
    if method not in ("newton", "picard"):
        raise InputError(f"method must be newton or picard, got {method!r}")
    steps, dt = _steps(t_end, dt)
    theta = _check_theta(theta)
    if isinstance(mesh, FESpace):
        space = mesh
        if not space.vector:
            raise InputError("Burgers needs a vector FESpace (one component in 1D)")
    else:
        space = FESpace(mesh, order=order, vector=True)
    saved = SavedStates(steps, save_every, space.mesh.n_points * space.n_components, frames)
    basis = space.basis
    M = space.mass()
    K = space.stiffness() * nu
    nonlinear, picard, newton = _burgers_forms()
    jacobian_form = newton if method == "newton" else picard
    bc = _Dirichlet(space, dirichlet)
    D = bc.D
    I = np.setdiff1d(np.arange(space.n_dofs), D)

    def N(u):
        return K @ u + nonlinear.assemble(basis, u=basis.interpolate(u))

    u = _initial(space, initial)
    g = bc.values(0.0)
    u[D] = g[D]

    def fields(z):  # nodal values: (n_points,) in 1D, (n_points, dim) otherwise
        values = space.to_nodes(z)
        return values[:, 0] if space.n_components == 1 else values

    saved.save(0.0, {"u": fields(u)})
    iterations, residuals = [], []
    Mdt = M / dt
    for step in range(1, steps + 1):
        old = u.copy()
        explicit = (1 - theta) * N(old) - Mdt @ old
        g = bc.values(step * dt) if bc.moving else g
        u = old.copy()
        u[D] = g[D]
        for it in range(1, max_iter + 1):
            F = Mdt @ u + theta * N(u) + explicit
            J = (Mdt + theta * (K + jacobian_form.assemble(basis, u=basis.interpolate(u)))).tocsr()
            du = np.zeros_like(u)
            du[I] = spl.spsolve(J[I][:, I].tocsc(), -F[I])
            u += du
            change = float(np.abs(du).max()) if du.size else 0.0
            if change <= tol * (1.0 + float(np.abs(u).max())):
                break
        else:
            res = float(np.linalg.norm((Mdt @ u + theta * N(u) + explicit)[I]))
            raise GraphfemError(f"Burgers {method} did not converge at step {step} (t = {step * dt:g}): "
                                f"{max_iter} iterations, last update {change:.3e}, residual {res:.3e}")
        residual = float(np.linalg.norm((Mdt @ u + theta * N(u) + explicit)[I]))
        iterations.append(it)
        residuals.append(residual)
        if not np.all(np.isfinite(u)):
            raise GraphfemError(f"Burgers blew up at step {step} (t = {step * dt:g}); reduce dt or refine the mesh")
        if saved.due(step):
            saved.save(step * dt, {"u": fields(u)})
        if progress is not None:
            progress(step, steps)
    info = {"steps": steps, "dt": dt, "theta": theta, "method": method, "iterations": iterations,
            "residuals": residuals, "frames": saved.count, "total_s": time.perf_counter() - start}
    logger.info("burgers: %d steps of dt=%g, %s iterations per step %d..%d", steps, dt, method,
                min(iterations), max(iterations))
    return Solution(space, {"u": u}, {"u": fields(u)}, {"u": unit}, info,
                    trajectory=saved.trajectory(space.mesh, {"u": unit}))


def burgers_cole_hopf(x: np.ndarray, t: float, nu: float, points: int = 4001) -> np.ndarray:
    """Exact solution of u_t + u u_x = ν u_xx on (0, 1), u(0) = u(1) = 0, u₀ = sin(πx).

    Cole–Hopf: u = −2ν φ_x/φ with φ the heat-equation solution from
    φ₀(ξ) = exp(−(1 − cos πξ)/(2πν)) (even and 2-periodic, so the whole-line
    heat kernel gives the Neumann problem):

        u(x, t) = −∫ (s/t) w(s) ds / ∫ w(s) ds,
        w(s) = exp(−(1 − cos π(x + s))/(2πν) − s²/(4νt)),

    by the trapezoidal rule on |s| ≤ 12·sqrt(4νt) (spectrally accurate for
    this smooth, decaying integrand) with the exponent shifted by its maximum,
    so small ν does not overflow or cancel (the Fourier–Bessel series does
    both). Shapes: x (...) -> (...)."""
    x = np.asarray(x, dtype=float)
    if t <= 0:
        return np.sin(np.pi * x)
    width = 12.0 * math.sqrt(4 * nu * t)
    s = np.linspace(-width, width, int(points))
    exponent = -(1 - np.cos(np.pi * (x[..., None] + s))) / (2 * np.pi * nu) - s ** 2 / (4 * nu * t)
    w = np.exp(exponent - exponent.max(axis=-1, keepdims=True))
    return -(w * s).sum(axis=-1) / (t * w.sum(axis=-1))


@register_problem
class AdvectionDiffusion(Problem):
    r"""b·∇u − κΔu = f, or ∂u/∂t + b·∇u − κΔu = f with ``t_end`` and ``dt``, SUPG
    where the cell Péclet number exceeds 1; :func:`advection_diffusion`.

    Options: the velocity b (a vector, or one expression per component), κ,
    f and u₀, Dirichlet values and fluxes κ ∂u/∂n by tag (none at all: u = 0
    on the boundary), the time stepping (steady without ``t_end``) and the
    stabilisation. Model inputs add b at the nodes to the generic encoding.

    Data sets (:meth:`sample`): a random 2D domain, a uniform velocity of
    random direction and speed in [0.5, 2] or a rigid rotation about the
    centre of the bounding box with angular speed up to 4, κ log-uniform in
    [0.005, 0.05] (cell Péclet numbers from about 0.3 to 20), u₀ one or two
    Gaussian bumps, u = 0 on the boundary; t_end = 0.2 and Δt = 0.02 for
    every sample, so a surrogate learns one step.
    """

    name = "advection-diffusion"
    fields = {"u": "1"}
    summary = "advection-diffusion du/dt + b.grad u - kappa lap u = f"
    options = (
        Option("velocity", "vector", None, "Velocity b: dim comma-separated numbers or expressions in x, y, z, "
               "e.g. 1,0.", required=True, parse=vector_field),
        KAPPA,
        SOURCE,
        INITIAL,
        Option("t_end", "number", None, "Final time; omit for the steady problem.", role="time"),
        Option("dt", "number", None, "Time step (with --t-end).", role="time"),
        THETA,
        DIRICHLET,
        NEUMANN,
        Option("stabilization", "choice", "auto", "auto (SUPG where the cell Peclet number > 1), supg or none.",
               role="setting", choices=STABILIZATIONS),
        SAVE_EVERY,
        ORDER,
    )
    geometries = ("mixed", "deformed", "perforated", "polygon", "lshape")
    #: a transient solve() takes ``frames`` and ``progress``: graphfem solve streams it to disk
    streams = True

    def check(self, mesh: Mesh, params: dict) -> None:
        if params["t_end"] is not None and params["dt"] is None:
            raise InputError("--t-end needs --dt")
        check_theta(params["theta"])

    def is_transient(self, params) -> bool:
        return params.get("t_end") is not None

    def kwargs(self, params):
        out = super().kwargs(params)
        out["f"] = out.pop("source")
        return out

    def solve(self, mesh: Mesh | FESpace, **params) -> Solution:
        return advection_diffusion(mesh, **params)

    def report(self, solution: Solution) -> list[str]:
        """The largest cell Péclet number, the stabilisation used and the linear solver."""
        info = solution.info
        return [f"cell Péclet number up to {info['peclet_max']:.3g}; stabilization: {info['stabilization']}",
                *super().report(solution)]

    def features(self, mesh: Mesh, params) -> Features:
        """The generic encoding with the velocity b (dim columns) at the nodes."""
        generic = super().features(mesh, {**params, "velocity": np.zeros(mesh.dim)})
        return replace_columns(generic, "velocity", {"velocity": at_nodes(params["velocity"], mesh, "velocity")})

    def sample(self, rng: np.random.Generator, geometry: str | None = None):
        from .geometries import random_domain

        geometry = self.geometry(geometry)
        mesh = random_domain(geometry, rng)
        if rng.random() < 0.5:
            angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 2.0)
            velocity = [float(speed * np.cos(angle)), float(speed * np.sin(angle))]
        else:  # rigid rotation about the centre of the bounding box
            (cx, cy), omega = mesh.points.min(axis=0) / 2 + mesh.points.max(axis=0) / 2, rng.uniform(-4, 4)
            velocity = f"{-omega:.4g}*(y-{cy:.4g}),{omega:.4g}*(x-{cx:.4g})"
        raw = {"velocity": velocity, "kappa": float(10 ** rng.uniform(np.log10(0.005), np.log10(0.05))),
               "initial": gaussian_bumps(rng, int(rng.integers(1, 3)), width=(0.06, 0.15)),
               "t_end": 0.2, "dt": 0.02, "order": 1}
        return mesh, raw


def random_burgers_initial(rng: np.random.Generator, mesh: Mesh) -> np.ndarray:
    """A random u₀ on a 1D mesh of (−1, 1) with u₀(±1) = 0 (DGNO's Burgers data):
    a Gaussian random field (α = 2.5, τ = 5) on the periodic box (−2, 2) ⊃ (−1, 1)
    with 4 points per mesh cell, times (1 − x²), scaled to max |u₀| uniform in
    [0.5, 1]. Returns (n_points,) nodal values."""
    from .darcy import gaussian_random_field

    x = mesh.points[:, 0]
    g = gaussian_random_field(rng, (4 * mesh.n_cells,), alpha=2.5, tau=5.0, length=4.0)
    u0 = np.interp(x, np.linspace(-2.0, 2.0, g.size, endpoint=False), g) * (1 - x ** 2)
    return u0 * rng.uniform(0.5, 1.0) / max(float(np.abs(u0).max()), 1e-12)


def _burgers_initial(raw, mesh: Mesh, option: Option):
    """u₀: in 1D a number, mesh field or expression; in 2D/3D a vector field."""
    return field_value(raw, mesh, option.cli_flag) if mesh.dim == 1 else vector_field(raw, mesh, option)


def _burgers_dirichlet(raw, mesh: Mesh, option: Option) -> dict:
    """TAG=VALUE pairs in 1D (a number or an expression), TAG=VX,VY[,VZ] in 2D/3D."""
    return tag_values(raw, option.cli_flag, mesh, components=None if mesh.dim == 1 else mesh.dim)


@register_problem
class Burgers(Problem):
    r"""Viscous Burgers ∂u/∂t + (u·∇)u = νΔu, u a scalar in 1D and a vector in
    2D/3D, by the θ-scheme with Newton or Picard per step; :func:`burgers`.

    Options: ν, u₀ (in 1D a number, mesh field or expression, in 2D/3D one
    number or expression per component), the time stepping, Dirichlet values
    by tag (none at all: u = 0 on the boundary) and the nonlinear method.

    Data sets (:meth:`sample`): DGNO's setting of
    :func:`graphfem.physics.generators.burgers` on (−1, 1) with 128 cells
    (mesh Reynolds number ≲ 2.5): ν log-uniform in [0.02/π, 0.1/π], u₀ of
    :func:`random_burgers_initial`, u(±1) = 0; t_end = 0.5 and Δt = 0.01
    for every sample.
    """

    name = "burgers"
    fields = {"u": "1"}
    vector_fields = ("u",)
    summary = "viscous Burgers du/dt + (u.grad)u = nu lap u"
    options = (
        Option("nu", "number", None, "Viscosity nu > 0.", required=True),
        Option("initial", "field", None, "u0: 1D a number, mesh field or expression; 2D/3D dim comma-separated "
               "numbers or expressions.", required=True, parse=_burgers_initial),
        T_END,
        DT,
        THETA,
        Option("dirichlet", "tag-vectors", None, "TAG=VALUE (1D) or TAG=VX,VY[,VZ] (repeatable); with none, "
               "u = 0 on the whole boundary.", parse=_burgers_dirichlet),
        Option("method", "choice", "newton", "Nonlinear iteration per step: newton or picard.", role="setting",
               choices=("newton", "picard")),
        SAVE_EVERY,
        ORDER,
    )
    geometries = ("interval",)
    #: solve() takes ``frames`` and ``progress``: graphfem solve streams it to disk
    streams = True

    def check(self, mesh: Mesh, params: dict) -> None:
        check_theta(params["theta"])

    def is_transient(self, params) -> bool:
        return True

    def solve(self, mesh: Mesh | FESpace, **params) -> Solution:
        return burgers(mesh, **params)

    def report(self, solution: Solution) -> list[str]:
        """The steps and the nonlinear iterations per step."""
        info = solution.info
        its = info["iterations"]
        return [f"{info['method']}: {info['steps']} steps, {min(its)}-{max(its)} iterations per step, "
                f"final residual {info['residuals'][-1]:.2e}"]

    def features(self, mesh: Mesh, params) -> Features:
        """The generic encoding, with Dirichlet values (numbers, expressions or vectors) at their nodes."""
        generic = super().features(mesh, {**params, "dirichlet": None})
        mask, values = np.zeros(mesh.n_points), np.zeros((mesh.n_points, mesh.dim))
        for tag, value in (params.get("dirichlet") or {}).items():
            nodes = mesh.tag_nodes(tag)
            mask[nodes] = 1.0
            values[nodes] = at_nodes(value, mesh, f"dirichlet {tag}").reshape(mesh.n_points, -1)[nodes]
        return replace_columns(generic, "dirichlet", {"dirichlet:mask": mask, "dirichlet": values})

    def sample(self, rng: np.random.Generator, geometry: str | None = None, resolution: int = 128):
        self.geometry(geometry)
        if resolution < 8:
            raise InputError(f"resolution must be at least 8, got {resolution}")
        mesh = Mesh.interval(int(resolution), -1.0, 1.0)
        nu = float(10 ** rng.uniform(np.log10(0.02 / np.pi), np.log10(0.1 / np.pi)))
        return mesh, {"nu": nu, "initial": random_burgers_initial(rng, mesh), "t_end": 0.5, "dt": 0.01, "order": 1}


__all__ = ["AdvectionDiffusion", "Burgers", "STABILIZATIONS", "advection_diffusion", "advection_matrices",
           "burgers", "burgers_cole_hopf", "random_burgers_initial", "supg_parameters", "travelling_gaussian"]
