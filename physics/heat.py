"""Heat equation ∂u/∂t − ∇·(κ∇u) = f by the θ-scheme in time and Lagrange FE in space."""
from __future__ import annotations

import logging
import time
from typing import Callable, Mapping

import numpy as np

from graphfem.meshes import FESpace, Mesh, Trajectory
from graphfem.meshes.errors import InputError

from .coefficients import Scalar, at_points, constant, nodal_dofs
from .linear_solvers import LinearSolver, condense
from .poisson import (ORDER, SOLVER, boundary_conditions, boundary_terms, diffusion_matrix, load_vector, make_space,
                      nodal_values)
from .problem import Option, Problem, Solution, register_problem
from .timesteps import SavedStates, time_steps

logger = logging.getLogger("graphfem.physics")


def _initial_dofs(space: FESpace, initial) -> np.ndarray:
    """Dof vector of the initial condition: a number, a callable of x (dim, k)
    (interpolated at the dof locations) or values at the mesh nodes (n_points,)."""
    if callable(initial) or np.ndim(initial) == 0:
        x = np.asarray(space.scalar_basis.doflocs)
        return np.array(at_points(initial, x, "initial condition"), dtype=float)
    return nodal_dofs(space, initial, "initial condition")


def heat_solution(mesh: Mesh | FESpace, *, t_end: float, dt: float, kappa: Scalar = 1.0, f: Scalar = 0.0,
                  initial: Scalar = 0.0, dirichlet: Mapping[str, Scalar] | None = None,
                  neumann: Mapping[str, Scalar] | None = None,
                  robin: Mapping[str, tuple[Scalar, Scalar]] | None = None, theta: float = 1.0,
                  order: int | None = None, save_every: int = 1, solver: str = "auto", rtol: float = 1e-10,
                  unit: str = "1", frames: Callable[[float, dict[str, np.ndarray]], None] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Solution:
    r"""Solve ∂u/∂t − ∇·(κ∇u) = f, u(0) = u₀, on (0, t_end] with the θ-scheme.

    With M the mass and K the diffusion matrix (Robin terms included) and b
    the load (source, Neumann and Robin data, constant in time), each step is

        (M + θ Δt K) uⁿ⁺¹ = (M − (1 − θ) Δt K) uⁿ + Δt b,

    θ = 1 backward Euler (first order, L-stable), θ = 1/2 Crank–Nicolson
    (second order). Dirichlet values are imposed at every step (and replace the
    initial values on those dofs). The matrix is factorised (or its AMG
    hierarchy built) once and reused for every step.

    Args:
        mesh: a :class:`Mesh` or a scalar :class:`FESpace` to reuse.
        t_end: final time > 0.
        dt: time step in (0, t_end]; the number of steps is ⌈t_end/dt⌉ and
            the step is shrunk to t_end / steps so that the last step lands
            on t_end (with a warning when that changes dt;
            :func:`~graphfem.physics.timesteps.time_steps`).
        kappa, f: diffusivity and (time-independent) source, as in
            :func:`~graphfem.physics.poisson.poisson`.
        initial: u₀, a number, a callable of x (dim, k), or values at the mesh
            nodes (n_points,).
        dirichlet, neumann, robin: boundary conditions by tag, as in
            :func:`~graphfem.physics.poisson.poisson`; with none at all u = 0 on
            the whole boundary.
        theta: in [0, 1]; values below 1/2 are only conditionally stable.
        order: 1 or 2 (default: the mesh's order).
        save_every: keep every k-th step in the trajectory (the first and the
            last state are always kept).
        solver, rtol: linear solver (see :mod:`graphfem.physics.linear_solvers`).
        unit: unit of u.
        frames: called as ``frames(t, {"u": (n_points,)})`` for every saved
            state instead of keeping it (a stream to disk:
            :func:`graphfem.meshes.io.streamed_series`); the trajectory is
            then not kept. Without it the trajectory is kept in memory, and
            one that cannot fit is refused before the first step.
        progress: called as ``progress(step, steps)`` after every step.

    Returns:
        :class:`Solution` whose ``trajectory`` holds times (T,) and
        ``fields["u"]`` (T, n_points) at the mesh nodes (``None`` with
        ``frames``); ``dofs["u"]`` and ``fields["u"]`` hold the final state;
        ``info`` has the solver method, the number of steps, the step, the
        saved frames and the total iteration count.
    """
    start = time.perf_counter()
    theta = constant(theta, "theta")
    if not 0 <= theta <= 1:
        raise InputError(f"theta must lie in [0, 1], got {theta}")
    steps, dt = time_steps(t_end, dt)
    space = make_space(mesh, order)
    saved = SavedStates(steps, save_every, space.mesh.n_points, frames)
    M = space.mass()
    K = diffusion_matrix(space, kappa)
    R, r = boundary_terms(space, neumann, robin)
    if R is not None:
        K = K + R
    b = load_vector(space, f) + r
    D, values = boundary_conditions(space, dirichlet, neumann, robin, allow_pure_neumann=True)

    A = (M + theta * dt * K).tocsr()
    B = (M - (1 - theta) * dt * K).tocsr()
    A_II, _, _, I = condense(A, np.zeros(space.n_dofs), D, values)
    fixed = np.zeros(space.n_dofs)
    fixed[D] = values
    lift = A[I] @ fixed  # A_ID u_D: the Dirichlet contribution moved to the right-hand side
    linear = LinearSolver(A_II, method=solver, rtol=rtol, dim=space.mesh.dim, factorize=True)

    u = _initial_dofs(space, initial)
    u[D] = values
    saved.save(0.0, {"u": nodal_values(space, u)})
    iterations, previous = 0, None
    for step in range(1, steps + 1):
        rhs = (B @ u + dt * b)[I] - lift
        u = fixed.copy()
        u[I] = previous = linear.solve(rhs, x0=previous)  # warm start for the iterative solvers
        iterations += linear.info.get("iterations", 0)
        if saved.due(step):
            saved.save(step * dt, {"u": nodal_values(space, u)})
        if progress is not None:
            progress(step, steps)
    info = dict(linear.info, steps=steps, dt=dt, theta=theta, iterations=iterations, frames=saved.count,
                total_s=time.perf_counter() - start)
    logger.info("heat: %d steps of dt=%g (theta=%g), linear solver %s, %d iterations in all",
                steps, dt, theta, linear.method, iterations)
    final = nodal_values(space, u)
    return Solution(space, {"u": u}, {"u": final}, {"u": unit}, info,
                    trajectory=saved.trajectory(space.mesh, {"u": unit}))


def heat(mesh: Mesh | FESpace, **params) -> Trajectory:
    """The heat equation's time series at the mesh nodes; parameters and math
    as in :func:`heat_solution` (which also returns the solver info).
    ``heat(...).write("out.pvd")`` writes it for ParaView."""
    return heat_solution(mesh, **params).trajectory


def gaussian_bumps(rng: np.random.Generator, count: int, amplitude: float = 1.0, width=(0.05, 0.2)) -> str:
    """An expression in x, y: the sum of ``count`` Gaussian bumps
    a·exp(−|x − c|²/(2w²)), a uniform in [−amplitude, amplitude], c in
    [0.2, 0.8]², w uniform in ``width`` (random initial values and sources)."""
    terms = []
    for _ in range(int(count)):
        a, (cx, cy), w = rng.uniform(-amplitude, amplitude), rng.uniform(0.2, 0.8, 2), rng.uniform(*width)
        terms.append(f"{a:.4g}*exp(-((x-{cx:.4g})**2+(y-{cy:.4g})**2)/{2 * w * w:.4g})")
    return " + ".join(terms) or "0"


def check_theta(theta: float) -> None:
    """Refuse a θ outside [0, 1] in one line naming ``--theta``."""
    if not 0.0 <= theta <= 1.0:
        raise InputError(f"--theta must lie in [0, 1], got {theta}")


#: options shared by the time-dependent diffusion problems (heat, advection-diffusion)
KAPPA = Option("kappa", "field", 1.0, "Diffusivity kappa: number, mesh field or expression (default 1).")
SOURCE = Option("source", "field", 0.0, "Source f: number, mesh field or expression (default 0).")
INITIAL = Option("initial", "field", 0.0, "Initial value u0: number, mesh field or expression (default 0).")
DIRICHLET = Option("dirichlet", "tag-values", None, "TAG=VALUE: u = VALUE on the tag (repeatable); with no "
                   "boundary option u = 0 on the whole boundary.")
NEUMANN = Option("neumann", "tag-values", None, "TAG=VALUE: flux kappa du/dn = VALUE on the tag.")
THETA = Option("theta", "number", 0.5, "theta-scheme: 1 backward Euler, 0.5 Crank-Nicolson (default).",
               role="setting")
SAVE_EVERY = Option("save_every", "integer", 1, "Keep every k-th step in the time series.", role="time")
T_END = Option("t_end", "number", None, "Final time.", role="time", required=True)
DT = Option("dt", "number", None, "Time step.", role="time", required=True)


@register_problem
class Heat(Problem):
    r"""∂u/∂t − ∇·(κ∇u) = f, u(0) = u₀, by the θ-scheme; :func:`heat_solution`.

    Options: the final time and step, κ, f and u₀ (numbers, mesh fields or
    expressions), Dirichlet values u = g and fluxes κ ∂u/∂n = g by tag (no
    condition at all: u = 0 on the boundary; a boundary left without one is
    insulated), θ and the save interval.

    Data sets (:meth:`sample`): a random 2D domain, κ log-uniform in [0.3, 3],
    u₀ one to three Gaussian bumps, a bump source half of the time, u = 0 on
    the boundary or random values on some tags (the others insulated);
    t_end = 0.05 and Δt = 0.005 for every sample, so a surrogate learns one
    step, by backward Euler (θ = 1: Crank–Nicolson overshoots the data by up
    to a third of their range at this step on these meshes).
    """

    name = "heat"
    fields = {"u": "1"}
    summary = "the heat equation du/dt - div(kappa grad u) = f"
    options = (
        T_END,
        DT,
        KAPPA,
        SOURCE,
        INITIAL,
        DIRICHLET,
        NEUMANN,
        THETA,
        SAVE_EVERY,
        ORDER,
        SOLVER,
    )
    geometries = ("mixed", "deformed", "perforated", "polygon", "lshape")
    #: solve() takes ``frames`` (a stream of saved states) and ``progress``: graphfem solve streams to disk
    streams = True

    def check(self, mesh: Mesh, params: dict) -> None:
        check_theta(params["theta"])

    def is_transient(self, params) -> bool:
        return True

    def kwargs(self, params):
        out = super().kwargs(params)
        out["f"] = out.pop("source")
        return out

    def solve(self, mesh: Mesh | FESpace, **params) -> Solution:
        return heat_solution(mesh, **params)

    def sample(self, rng: np.random.Generator, geometry: str | None = None):
        from .geometries import random_domain

        geometry = self.geometry(geometry)
        mesh = random_domain(geometry, rng)
        raw = {"t_end": 0.05, "dt": 0.005, "theta": 1.0, "kappa": float(10 ** rng.uniform(-0.5, 0.5)),
               "initial": gaussian_bumps(rng, int(rng.integers(1, 4))), "order": 1}
        if rng.random() < 0.5:
            raw["source"] = gaussian_bumps(rng, 1, amplitude=20.0)
        if rng.random() < 0.5:
            tags = [t.name for t in mesh.tags.values() if t.kind == "facet"]
            chosen = [t for t in tags if rng.random() < 0.5] or [tags[int(rng.integers(len(tags)))]]
            raw["dirichlet"] = {t: float(rng.uniform(-1, 1)) for t in chosen}
        return mesh, raw
