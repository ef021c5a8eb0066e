r"""Linear elastodynamics on a mesh by lumped-mass central differences: a
mesh-based source of Lagrangian trajectories (the FE nodes are the particles).

.. math::
    M_L \ddot u + K u = f, \qquad
    u^{n+1} = 2u^n - u^{n-1} + Δt^2 M_L^{-1}(f - K u^n)

with M_L the row-sum lumped mass (density ρ), K the small-strain stiffness of
:func:`graphfem.physics.elasticity.elasticity` (plane stress/strain in 2D),
f = ρ g (gravity along −e_{d−1}) and u = 0 on the ``fixed`` tags. The start
uses u^{−1} = u^0 − Δt v^0 + Δt²/2 a^0 (second order). The scheme is stable
for Δt < 2/ω_max, ω_max² the largest eigenvalue of M_L⁻¹K (computed by
Lanczos); a larger Δt raises :class:`GraphfemError`.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from graphfem.meshes import Mesh, Trajectory
from graphfem.meshes.errors import GraphfemError, InputError

from .elasticity import _fixed_dofs, lame
from .poisson import make_space


def _initial(value, x: np.ndarray, dim: int, name: str) -> np.ndarray:
    """(n, dim) values from None, a (dim,) vector, an (n, dim) array or a callable of (n, dim) points."""
    if value is None:
        return np.zeros((len(x), dim))
    v = value(x) if callable(value) else np.asarray(value, dtype=float)
    v = np.broadcast_to(np.asarray(v, dtype=float), (len(x), dim))
    if not np.isfinite(v).all():
        raise InputError(f"{name} holds non-finite values")
    return np.array(v)


def elastodynamics(mesh: Mesh, frames: int, frame_dt: float, *, E: float = 1.0e3, nu: float = 0.3,
                   rho: float = 1.0, plane: str = "strain", fixed: Iterable[str] = (), gravity: float = 0.0,
                   u0: np.ndarray | Callable | None = None, v0: np.ndarray | Callable | None = None,
                   dt: float | None = None, safety: float = 0.8) -> Trajectory:
    """Explicit P1 elastodynamics; returns the :class:`Trajectory` of
    ``x`` = X + u and ``displacement`` u (T = frames + 1, n, d) on ``mesh``.

    Args:
        mesh: a linear 2D/3D mesh (its nodes are the particles).
        frames, frame_dt: the output frames; each is an integer number of steps.
        E, nu, rho: Young's modulus, Poisson's ratio and density.
        fixed: tags clamped to u = 0.
        gravity: g along −e_{d−1}.
        u0, v0: initial displacement and velocity (vector, (n, d) array or
            callable of the (n, d) node coordinates).
        dt: step; default ``safety · 2/ω_max``.

    Raises:
        GraphfemError: ``dt`` breaks the stability limit 2/ω_max.
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import eigsh
    from skfem import BilinearForm
    from skfem.helpers import ddot, sym_grad, trace

    space = make_space(mesh, 1, vector=True)
    dim = mesh.dim
    if plane not in ("stress", "strain"):
        raise InputError(f"plane must be 'stress' or 'strain', got {plane!r}")
    lam, mu = lame(E, nu, dim, plane)

    @BilinearForm
    def stiffness(u, v, w):
        eu = sym_grad(u)
        return 2 * mu * ddot(eu, sym_grad(v)) + lam * trace(eu) * trace(sym_grad(v))

    K = stiffness.assemble(space.basis).tocsr()
    m = rho * np.asarray(space.mass(lumped=True).diagonal())
    fixed_dofs, _ = _fixed_dofs(space, list(fixed), None)
    free = np.setdiff1d(np.arange(space.n_dofs), fixed_dofs)
    g = np.zeros(dim)
    g[-1] = -gravity
    f = m * np.tile(g, space.n_dofs // dim)
    d = 1 / np.sqrt(m[free])
    A = sp.diags(d) @ K[free][:, free] @ sp.diags(d)
    omega_max = float(np.sqrt(eigsh(A, k=1, which="LA", return_eigenvectors=False, tol=1e-6)[0]))
    limit = 2.0 / omega_max
    step = safety * limit if dt is None else float(dt)
    if step >= limit:
        raise GraphfemError(f"elastodynamics step {step:.3e} breaks the central-difference limit "
                            f"2/omega_max = {limit:.3e}; lower dt or coarsen the mesh", mesh.source)
    substeps = max(1, int(np.ceil(frame_dt / step - 1e-9)))
    step = frame_dt / substeps
    nodes = space.node_dofs()  # (n, d) dof per node
    X = mesh.points[:, :dim]
    u = np.zeros(space.n_dofs)
    v = np.zeros(space.n_dofs)
    u[nodes] = _initial(u0, X, dim, "u0")
    v[nodes] = _initial(v0, X, dim, "v0")
    u[fixed_dofs] = 0.0
    v[fixed_dofs] = 0.0

    def accel(u):
        a = (f - K @ u) / m
        a[fixed_dofs] = 0.0
        return a

    prev = u - step * v + 0.5 * step ** 2 * accel(u)
    out = [u[nodes]]
    for _ in range(frames):
        for _ in range(substeps):
            u, prev = 2 * u - prev + step ** 2 * accel(u), u
        out.append(u[nodes])
    disp = np.stack(out)
    if not np.isfinite(disp).all():
        raise GraphfemError("elastodynamics state became non-finite", mesh.source)
    times = frame_dt * np.arange(frames + 1)
    return Trajectory(times, {"x": X[None] + disp, "displacement": disp}, mesh,
                      units={"x": "m", "displacement": "m"})


__all__ = ["elastodynamics"]
