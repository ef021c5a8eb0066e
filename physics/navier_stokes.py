r"""Stokes and incompressible Navier–Stokes with Taylor–Hood elements.

Equations (density 1, kinematic viscosity ν):

    −νΔu + (u·∇)u + ∇p = f,   ∇·u = 0   in Ω ⊂ R²,

with u given on Dirichlet tags (inflow profiles, no-slip walls) and the
do-nothing condition ν ∂u/∂n − p n = 0 on outflow tags (and on any boundary
left without a condition). Stokes drops (u·∇)u.

Discretisation: Taylor–Hood, continuous P2 velocity and P1 pressure on
triangles (Q2–Q1 on quadrilaterals), inf-sup stable; isoparametric on
quadratic (``triangle6``) meshes. With K the vector Laplacian, C(w) the
convection matrix C(w)_ij = ∫ (w·∇φ_j)·φ_i, B_kj = −∫ q_k ∇·φ_j and M the
velocity mass matrix, the discrete steady problem is

    R(u, p) = [ (νK + C(u)) u + Bᵀp − F ;  B u ] = 0.

* Steady Navier–Stokes: Newton's method from the Stokes solution, the
  Jacobian adds N(u)_ij = ∫ ((φ_j·∇)u)·φ_i to νK + C(u); each step is damped by a
  backtracking line search on ||R|| (Armijo). The residual history is returned;
  a run that does not converge raises :class:`GraphfemError` naming the iteration
  count and the residual.
* Transient Navier–Stokes: BDF2 (BDF1 for the first step) with the
  convection linearised by extrapolation, w = 2uⁿ − uⁿ⁻¹ (semi-implicit: one
  linear Oseen solve per step, second order in time):

      (3uⁿ⁺¹ − 4uⁿ + uⁿ⁻¹)/(2Δt) + (w·∇)uⁿ⁺¹ − νΔuⁿ⁺¹ + ∇pⁿ⁺¹ = f.

* Forces on a tagged obstacle S by the volume-integral (Babuška–Miller)
  formulation: with v_c the finite-element function equal to the unit vector
  e_c at the velocity dofs on S and zero at every other dof,

      F_c = −[ (∂_t u, v_c) + ν(∇u, ∇v_c) + ((u·∇)u, v_c) − (p, ∇·v_c) − (f, v_c) ],

  which equals ∫_S (−p n + ν ∂u/∂n)·e_c ds for the exact solution but converges
  at the rate of the energy error (the boundary integral loses a power of h).

The saddle-point systems are solved by sparse LU (``"direct"``) or by
flexible GMRES with a block upper-triangular preconditioner (``"iterative"``):
an incomplete LU (or AMG, see ``VELOCITY_PRECONDITIONER``) of the scalar
velocity operator σM + νK + C(w), applied per component (AMG V-cycle for
Stokes), and a Schur-complement
approximation: ν M_p⁻¹ for Stokes, Cahouet–Chabard −ν M_p⁻¹ − σ L_p⁻¹ for time
steps (σ = α₀/Δt, pressure Laplacian L_p by AMG, p = 0 on outflows), and the
least-squares commutator −(BQ⁻¹Bᵀ)⁻¹BQ⁻¹FQ⁻¹Bᵀ(BQ⁻¹Bᵀ)⁻¹ (Q = diag M) for the
steady Newton systems. Steady Newton steps use inexact linear solves with
tolerance min(10⁻⁴, 0.1·||R||/||R₀||). ``"auto"`` is direct up to
``DIRECT_MAX_DOFS`` free dofs; in 2D, measured here, LU beats the iterative
solver for steady problems at every size that fits in memory (see
``graphfem bench flow``). Neither ever forms a dense matrix.

When the velocity is prescribed on the whole boundary the pressure is fixed
at one dof during the solve and then shifted to zero mean.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence, Union

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl

from graphfem.meshes import FESpace, Mesh, Trajectory
from graphfem.meshes.errors import GraphfemError, InputError, OptionValueError

from .coefficients import constant, vector_at_quadrature
from .linear_solvers import solver_option
from .options import expression, number, replace_columns, split_pair, split_top_level
from .problem import Features, Option, Problem, Solution, register_problem
from .timesteps import SavedStates, time_steps

logger = logging.getLogger("graphfem.physics")

#: A prescribed velocity: a number (parabolic profile with this peak, along the
#: inward normal of a straight tag), a constant vector, or a callable x (2, k) -> (2, k).
VelocityData = Union[float, Sequence[float], Callable[[np.ndarray], np.ndarray]]

#: Velocity-block preconditioner of the iterative solver for Oseen/Newton blocks: ``"ilu"``
#: (scipy's incomplete LU, drop tolerance 1e-4, per component) or ``"amg"`` (pyamg smoothed
#: aggregation, nonsymmetric, symmetric Gauss–Seidel). Measured on DFG at 14k dofs: ILU needs
#: 22 FGMRES iterations per BDF2 step and ~150 per Newton step, AMG 36 and ~300, at 2-5x the time.
VELOCITY_PRECONDITIONER = "ilu"

#: Largest number of free dofs that ``solver="auto"`` solves with sparse LU.
DIRECT_MAX_DOFS = 250_000

_ELEMENTS = {"triangle": ("ElementTriP2", "ElementTriP1"), "triangle6": ("ElementTriP2", "ElementTriP1"),
             "quad": ("ElementQuad2", "ElementQuad1"), "quad9": ("ElementQuad2", "ElementQuad1")}


# ---------------------------------------------------------------------- discretisation
class TaylorHood:
    """P2–P1 (Q2–Q1) Taylor–Hood spaces on a 2D mesh and the matrices that do not change.

    Unknowns are ordered x = [u; p]: velocity dofs interleaved per scalar P2
    dof (u_x of dof s at 2s, u_y at 2s + 1, as in scikit-fem's ``ElementVector``
    and :class:`FESpace` with ``vector=True``), then the P1 pressure dofs.

    Attributes:
        velocity: the vector P2 :class:`FESpace` (probes, nodal values, norms).
        scalar: the scalar P2 :class:`FESpace` (pressure probes through the P1 ⊂ P2 embedding).
        n_u, n_p: numbers of velocity and pressure dofs.
        K, M: (n_u, n_u) vector Laplacian ∫ ∇φ_i : ∇φ_j and mass ∫ φ_i·φ_j.
        B: (n_p, n_u) B_kj = −∫ q_k ∇·φ_j.
        Mp: (n_p, n_p) pressure mass; P1_to_P2: (N, n_p) the embedding of P1 into P2.
    """

    def __init__(self, mesh: Mesh):
        import skfem
        from skfem import BilinearForm
        from skfem.helpers import dot, grad

        if mesh.dim != 2 or mesh.cell_type not in _ELEMENTS:
            raise InputError(f"Taylor-Hood flow solvers need a 2D triangle or quad mesh, got {mesh.cell_type} "
                             f"cells in {mesh.dim}D", mesh.source)
        self.mesh = mesh
        self.scalar = FESpace(mesh, order=2)
        self.velocity = FESpace(mesh, order=2, vector=True)
        velocity_element, pressure_element = (getattr(skfem, name)() for name in _ELEMENTS[mesh.cell_type])
        # degree 5 integrates the trilinear convection form exactly on affine triangles
        intorder = 5 if mesh.cell_type == "triangle" else 6
        sk = self.scalar.skfem_mesh
        self.ub = skfem.Basis(sk, velocity_element, intorder=intorder)
        self.pb = skfem.Basis(sk, pressure_element, intorder=intorder)
        self.N = int(self.ub.N)
        self.n_u, self.n_p = 2 * self.N, int(self.pb.N)
        self.n = self.n_u + self.n_p
        self.Ks = BilinearForm(lambda u, v, w: dot(grad(u), grad(v))).assemble(self.ub).tocsr()
        self.Ms = BilinearForm(lambda u, v, w: u * v).assemble(self.ub).tocsr()
        self.K, self.M = _vector(self.Ks), _vector(self.Ms)
        Bx = BilinearForm(lambda u, v, w: -u.grad[0] * v).assemble(self.ub, self.pb)
        By = BilinearForm(lambda u, v, w: -u.grad[1] * v).assemble(self.ub, self.pb)
        self.B = (sp.kron(Bx, sp.csr_matrix([[1.0, 0.0]])) + sp.kron(By, sp.csr_matrix([[0.0, 1.0]]))).tocsr()
        self.Mp = BilinearForm(lambda u, v, w: u * v).assemble(self.pb).tocsr()
        self.Lp = BilinearForm(lambda u, v, w: dot(grad(u), grad(v))).assemble(self.pb).tocsr()
        self.P1_to_P2 = _embedding(self.ub, self.pb)
        self.area = float(self.Mp.sum())
        self.h = float(np.sqrt(self.area / mesh.n_cells))

    # ------------------------------------------------------------ matrices depending on the flow
    def _components(self, u: np.ndarray):
        return self.ub.interpolate(u[0::2]), self.ub.interpolate(u[1::2])

    def convection_scalar(self, w: np.ndarray) -> sp.csr_matrix:
        """(N, N) C_s(w)_st = ∫ (w·∇φ_t) φ_s for a velocity dof vector w (n_u,)."""
        from skfem import BilinearForm

        wx, wy = self._components(w)
        form = BilinearForm(lambda u, v, p: (p["wx"] * u.grad[0] + p["wy"] * u.grad[1]) * v)
        return form.assemble(self.ub, wx=wx, wy=wy).tocsr()

    def newton_term(self, u: np.ndarray) -> sp.csr_matrix:
        """(n_u, n_u) N(u)_ij = ∫ ((φ_j·∇)u)·φ_i, the derivative of C(u)u beyond C(u)."""
        from skfem import BilinearForm

        ux, uy = self._components(u)
        mass = BilinearForm(lambda a, b, p: p["g"] * a * b)
        out = None
        for i, ui in enumerate((ux, uy)):
            for j in range(2):
                block = mass.assemble(self.ub, g=ui.grad[j])
                unit = sp.csr_matrix(([1.0], ([i], [j])), shape=(2, 2))
                term = sp.kron(block, unit)
                out = term if out is None else out + term
        return out.tocsr()

    def load(self, f) -> np.ndarray:
        """(n_u,) F_i = ∫ f·φ_i for a body force f (vector or callable), or zeros for ``None``."""
        if f is None:
            return np.zeros(self.n_u)
        from skfem import LinearForm

        fq = vector_at_quadrature(f, self.scalar, self.ub, "body force f")
        out = np.zeros(self.n_u)
        for c in range(2):
            out[c::2] = LinearForm(lambda v, p: p["f"] * v).assemble(self.ub, f=fq[c])
        return out

    # ------------------------------------------------------------ values
    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x[: self.n_u], x[self.n_u:]

    def velocity_nodes(self, u: np.ndarray) -> np.ndarray:
        """(n_points, 2) velocity at the mesh nodes."""
        return self.velocity.to_nodes(u)

    def pressure_nodes(self, p: np.ndarray) -> np.ndarray:
        """(n_points,) pressure at the mesh nodes."""
        return self.scalar.to_nodes(self.P1_to_P2 @ p)

    def __repr__(self) -> str:
        return f"TaylorHood({self.mesh.n_cells} {self.mesh.cell_type}, {self.n_u} + {self.n_p} dofs)"


def _vector(A: sp.spmatrix) -> sp.csr_matrix:
    """The componentwise operator on interleaved vector dofs: A ⊗ I₂."""
    return sp.kron(A, sp.identity(2), format="csr")


def _embedding(ub, pb) -> sp.csr_matrix:
    """(N, n_p) the exact embedding of the pressure space into the scalar
    velocity space: each P2 dof takes the P1 function's value at its
    reference location (the same in every cell, so isoparametric cells too)."""
    X = np.asarray(ub.elem.doflocs).T  # (2, nb) reference locations of the P2 dofs
    values = np.array([pb.elem.lbasis(X, k)[0] for k in range(pb.Nbfun)])  # (nb_p, nb)
    rows = np.repeat(ub.element_dofs[:, :, None], pb.Nbfun, axis=2)          # (nb, cells, nb_p)
    cols = np.repeat(pb.element_dofs.T[None], ub.Nbfun, axis=0)
    data = np.broadcast_to(values.T[:, None, :], rows.shape)
    P = sp.coo_matrix((data.ravel(), (rows.ravel(), cols.ravel())), shape=(ub.N, pb.N)).tocsr()
    P.sum_duplicates()
    counts = np.bincount(ub.element_dofs.ravel(), minlength=ub.N).astype(float)
    return sp.diags(1.0 / counts) @ P  # a dof shared by c cells got the same value c times


# ---------------------------------------------------------------------- boundary data
def parabolic_inflow(mesh: Mesh, tag: str, u_max: float) -> Callable[[np.ndarray], np.ndarray]:
    """The parabolic profile u = u_max · 4s(1 − s) · n_in on a straight facet tag,
    s ∈ [0, 1] the position along the tag and n_in the unit normal pointing
    into the domain (towards the mesh's centroid). Returns x (2, k) -> (2, k)."""
    nodes = mesh.points[mesh.tag_nodes(tag)]
    if len(nodes) < 2:
        raise InputError(f"inflow tag {tag!r} has fewer than two nodes", mesh.source)
    centre = nodes.mean(axis=0)
    _, _, vt = np.linalg.svd(nodes - centre)
    tangent = vt[0]
    s = (nodes - centre) @ tangent
    if np.abs((nodes - centre) @ vt[1]).max() > 1e-6 * np.ptp(s):
        raise InputError(f"a parabolic inflow needs a straight tag; {tag!r} is not straight "
                         "(give the inflow velocity as an expression)", mesh.source)
    lo, width = s.min(), np.ptp(s)
    normal = np.array([-tangent[1], tangent[0]])
    if (mesh.points.mean(axis=0) - centre) @ normal < 0:
        normal = -normal
    u_max = constant(u_max, f"inflow peak on {tag!r}")

    def profile(x: np.ndarray) -> np.ndarray:
        t = np.clip(((x.T - centre) @ tangent - lo) / width, 0.0, 1.0)
        speed = 4.0 * u_max * t * (1.0 - t)
        return normal[:, None] * speed[None]

    profile.u_max = u_max  # type: ignore[attr-defined]
    profile.width = width  # type: ignore[attr-defined]
    profile.normal = normal  # type: ignore[attr-defined]
    return profile


def inflow_velocity(mesh: Mesh, tag: str, data: VelocityData, x: np.ndarray) -> np.ndarray:
    """(2, k) the prescribed velocity ``data`` of ``tag`` (see :data:`VelocityData`) at points x (2, k)."""
    if callable(data):
        u = np.asarray(data(x), dtype=float)
    elif np.ndim(data) == 0:
        u = parabolic_inflow(mesh, tag, float(data))(x)
    else:
        v = np.asarray(data, dtype=float).reshape(-1)
        if v.shape != (2,):
            raise InputError(f"inflow on {tag!r}: a velocity needs 2 components, got {v.size}")
        u = np.broadcast_to(v[:, None], x.shape)
    if u.shape != x.shape or not np.isfinite(u).all():
        raise InputError(f"inflow on {tag!r} must give 2 finite components at each point, got shape {u.shape}")
    return u


def inflow_options(pairs, mesh: Mesh, option: "Option | str" = "--inflow") -> dict[str, VelocityData]:
    """Inflow velocities by tag from ``TAG=VALUE`` strings (or a mapping tag -> value).

    VALUE is a number (the peak of the parabolic profile of
    :func:`parabolic_inflow`), one expression in x, y (the speed along the
    inward normal of a straight tag) or two comma-separated expressions (the
    velocity components); mapping values may also be a (2,) vector or a
    callable x (2, k) -> (2, k). ``"inlet=0.3"`` -> {"inlet": 0.3}.
    ``option`` is the :class:`~graphfem.physics.problem.Option` (or its flag)
    that errors name, so this is an ``Option.parse``.
    """
    flag = option if isinstance(option, str) else option.cli_flag
    if isinstance(pairs, str):
        pairs = [pairs]
    if isinstance(pairs, Mapping):
        items = [(str(tag), value) for tag, value in pairs.items()]
    else:
        items = []
        for pair in pairs:
            tag, value = split_pair(str(pair))
            if not tag or not value:
                raise OptionValueError(f"{flag}: expected TAG=VALUE, got {pair!r}")
            items.append((tag, value))
    out: dict[str, VelocityData] = {}
    for tag, value in items:
        mesh.tag(tag)
        where = f"{flag} {tag}"
        if callable(value):
            out[tag] = value
        elif isinstance(value, str):
            out[tag] = _inflow_text(value, mesh, tag, where)
        elif np.ndim(value) == 0:
            out[tag] = number(value, where)
        else:
            out[tag] = np.array([number(v, where) for v in np.ravel(value)])
    return out


def _inflow_text(text: str, mesh: Mesh, tag: str, where: str) -> VelocityData:
    """One ``--inflow`` value: a peak speed, a normal speed expression or two component expressions."""
    parts = [part.strip() for part in split_top_level(text)]
    if len(parts) == 2:
        fx, fy = (expression(part, where) for part in parts)
        return lambda x: np.stack([fx(x), fy(x)])
    if len(parts) != 1:
        raise InputError(f"{where}: give a peak speed, one expression or two, got {text!r}")
    try:
        float(text)
    except ValueError:
        speed = expression(text, where)
        normal = parabolic_inflow(mesh, tag, 1.0).normal  # the inward unit normal of the straight tag
        return lambda x: normal[:, None] * speed(x)[None]
    return number(text, where)


@dataclass
class _Boundary:
    """Dirichlet data of one flow problem on a :class:`TaylorHood` space."""

    fixed: np.ndarray          # global dofs (velocity and, for enclosed flows, one pressure dof)
    values: np.ndarray         # their values
    enclosed: bool             # velocity prescribed on the whole boundary: pressure up to a constant
    outflow_pressure: np.ndarray  # pressure dofs on the outflow tags
    free: np.ndarray = field(init=False)          # the other global dofs, sorted (velocity first)
    free_scalar: np.ndarray = field(init=False)   # scalar P2 dofs whose velocity is free


def _boundary(th: TaylorHood, inflow: Mapping[str, VelocityData] | None, no_slip: Sequence[str],
              outflow: Sequence[str]) -> _Boundary:
    mesh = th.mesh
    values = np.zeros(th.n)
    fixed = np.zeros(th.N, dtype=bool)
    for tag in list(outflow):
        if mesh.tag(tag).kind != "facet":
            raise InputError(f"outflow tag {tag!r} must be a facet tag", mesh.source)
    for tag, data in (inflow or {}).items():
        dofs = th.scalar.dofs_on(tag)
        u = inflow_velocity(mesh, tag, data, th.scalar.dof_coordinates[dofs].T)
        values[2 * dofs], values[2 * dofs + 1] = u[0], u[1]
        fixed[dofs] = True
    for tag in no_slip:
        dofs = th.scalar.dofs_on(tag)
        values[2 * dofs] = values[2 * dofs + 1] = 0.0
        fixed[dofs] = True
    overlap = set(outflow) & (set(no_slip) | set(inflow or {}))
    if overlap:
        raise InputError(f"tag(s) {', '.join(sorted(overlap))} given both a velocity and an outflow condition")
    scalar_fixed = np.flatnonzero(fixed)
    if scalar_fixed.size == 0:
        raise InputError("no velocity is prescribed anywhere (give inflow or no-slip tags)", mesh.source)
    enclosed = bool(np.isin(th.scalar.boundary_dofs(), scalar_fixed).all())
    dofs = np.concatenate([2 * scalar_fixed, 2 * scalar_fixed + 1])
    if enclosed:
        dofs = np.append(dofs, th.n_u)  # pressure dof 0 pinned, the mean is removed afterwards
    dofs = np.sort(dofs)
    on_outflow = [th.pb.get_dofs(th.scalar.facets_of(tag)).flatten() for tag in outflow]
    b = _Boundary(dofs, values[dofs], enclosed, np.unique(np.concatenate(on_outflow or [np.zeros(0, int)])))
    b.free = np.setdiff1d(np.arange(th.n), dofs)
    b.free_scalar = np.setdiff1d(np.arange(th.N), scalar_fixed)
    return b


# ---------------------------------------------------------------------- linear algebra
def fgmres(A, b: np.ndarray, precondition: Callable[[np.ndarray], np.ndarray], rtol: float = 1e-8,
           restart: int = 80, maxiter: int = 1000, x0: np.ndarray | None = None) -> tuple[np.ndarray, int, float]:
    """Flexible (right-preconditioned) GMRES for A x = b.

    Convergence is judged on the true relative residual ||b − Ax|| / ||b||.
    Returns (x, iterations, relative residual).
    """
    n = b.shape[0]
    x = np.zeros(n) if x0 is None else np.array(x0, dtype=float)
    bnorm = float(np.linalg.norm(b)) or 1.0
    total = 0
    r = b - A @ x
    beta = float(np.linalg.norm(r))
    while beta > rtol * bnorm and total < maxiter:
        m = min(restart, maxiter - total)
        V = np.zeros((m + 1, n))
        Z = np.zeros((m, n))
        H = np.zeros((m + 1, m))
        cs, sn = np.zeros(m), np.zeros(m)
        g = np.zeros(m + 1)
        g[0] = beta
        V[0] = r / beta
        k = 0
        for j in range(m):
            Z[j] = precondition(V[j])
            w = A @ Z[j]
            for i in range(j + 1):  # modified Gram–Schmidt
                H[i, j] = w @ V[i]
                w -= H[i, j] * V[i]
            H[j + 1, j] = np.linalg.norm(w)
            if H[j + 1, j] > 0:
                V[j + 1] = w / H[j + 1, j]
            for i in range(j):  # previous Givens rotations
                H[i, j], H[i + 1, j] = cs[i] * H[i, j] + sn[i] * H[i + 1, j], -sn[i] * H[i, j] + cs[i] * H[i + 1, j]
            rho = math.hypot(H[j, j], H[j + 1, j])
            cs[j], sn[j] = (H[j, j] / rho, H[j + 1, j] / rho) if rho > 0 else (1.0, 0.0)
            H[j, j], H[j + 1, j] = rho, 0.0
            g[j], g[j + 1] = cs[j] * g[j], -sn[j] * g[j]
            k, total = j + 1, total + 1
            if abs(g[j + 1]) <= rtol * bnorm or H[j, j] == 0:
                break
        y = np.linalg.solve(np.triu(H[:k, :k]), g[:k]) if k else np.zeros(0)
        x += Z[:k].T @ y
        r = b - A @ x
        beta = float(np.linalg.norm(r))
    return x, total, beta / bnorm


class SaddleSolver:
    """Solver for one condensed saddle-point matrix J_II = [[A, Bᵀ], [B, 0]] (free dofs).

    Args:
        J: (n_free, n_free) condensed matrix, velocity dofs first.
        th, bc: the discretisation and its boundary data.
        method: ``"auto"``, ``"direct"`` or ``"iterative"``.
        nu: viscosity; w: the advecting velocity (n_u,) of the preconditioner's
            Oseen operator (``None`` for Stokes); sigma: its mass coefficient (α₀/Δt).
        rtol: relative residual of the iterative method.
    """

    def __init__(self, J: sp.spmatrix, th: TaylorHood, bc: _Boundary, method: str = "auto", nu: float = 1.0,
                 w: np.ndarray | None = None, sigma: float = 0.0, rtol: float = 1e-8, maxiter: int = 2000):
        start = time.perf_counter()
        if method not in ("auto", "direct", "iterative"):
            why = " (a saddle-point system is not symmetric positive definite: no CG)" if method in ("amg", "cg") \
                else ""
            raise InputError(f"flow solver {method!r} cannot be used{why}; choose auto, direct or iterative")
        self.J = J.tocsr()
        n = self.J.shape[0]
        self.method = ("direct" if n <= DIRECT_MAX_DOFS else "iterative") if method == "auto" else method
        self.rtol, self.maxiter = rtol, maxiter
        self.iterations = 0
        if self.method == "direct":
            self._lu = spl.splu(self.J.tocsc(), permc_spec="COLAMD")
        else:
            self._setup_preconditioner(th, bc, nu, w, sigma)
        self.setup_s = time.perf_counter() - start

    def _setup_preconditioner(self, th: TaylorHood, bc: _Boundary, nu: float, w, sigma: float) -> None:
        import pyamg

        Is = bc.free_scalar
        A = nu * th.Ks + sigma * th.Ms
        if w is not None:
            A = A + th.convection_scalar(w)
        A = A.tocsr()[Is][:, Is].tocsr()
        n_uf = self._n_uf = 2 * Is.size
        if w is None:
            self._amg = pyamg.smoothed_aggregation_solver(A, symmetry="hermitian").aspreconditioner(cycle="V")
        elif VELOCITY_PRECONDITIONER == "ilu":
            self._amg = spl.spilu(A.tocsc(), drop_tol=1e-4, fill_factor=5).solve
        else:  # the default smoother of the nonsymmetric hierarchy stalls on P2 Oseen blocks; symmetric GS does not
            gs = ("gauss_seidel_nr", {"sweep": "symmetric"})
            self._amg = pyamg.smoothed_aggregation_solver(A, symmetry="nonsymmetric", presmoother=gs,
                                                          postsmoother=gs).aspreconditioner(cycle="V")
        self._Bt, self._B, self._F = self.J[:n_uf, n_uf:], self.J[n_uf:, :n_uf], self.J[:n_uf, :n_uf]
        free_p = bc.free[bc.free >= th.n_u] - th.n_u
        if w is not None and sigma == 0:
            # steady Oseen/Newton: least-squares commutator, Q = diag(velocity mass)
            self.schur = "lsc"
            self._Q = np.repeat(th.Ms.diagonal()[Is], 2)
            BQB = (self._B @ sp.diags(1.0 / self._Q) @ self._Bt).tocsr()
            self._bqb = pyamg.smoothed_aggregation_solver(BQB).aspreconditioner(cycle="V")
            return
        self.schur = "cahouet-chabard" if sigma > 0 else "mass"
        self._schur_mass = nu / np.asarray(th.Mp.sum(axis=1)).ravel()[free_p]
        self._lp = None
        if sigma > 0:
            # L_p with p = 0 on the outflow (the pressure's Dirichlet boundary); enclosed flows pin
            # one dof instead, so L_p restricted to the free dofs is nonsingular either way
            Lp = th.Lp.tocsr()[free_p][:, free_p].tolil()
            on_outflow = np.flatnonzero(np.isin(free_p, bc.outflow_pressure))
            Lp[on_outflow, :] = 0.0
            Lp[:, on_outflow] = 0.0
            Lp[on_outflow, on_outflow] = 1.0
            self._lp = pyamg.smoothed_aggregation_solver(Lp.tocsr()).aspreconditioner(cycle="V")
            self._sigma = sigma

    def _schur_inverse(self, rp: np.ndarray) -> np.ndarray:
        """z_p ≈ S⁻¹ r_p for S = −B F⁻¹ Bᵀ."""
        if self.schur == "lsc":  # S⁻¹ ≈ −(BQ⁻¹Bᵀ)⁻¹ (BQ⁻¹FQ⁻¹Bᵀ) (BQ⁻¹Bᵀ)⁻¹
            y = self._Bt @ self._bqb(rp)
            return -self._bqb(self._B @ ((self._F @ (y / self._Q)) / self._Q))
        zp = -self._schur_mass * rp
        if self._lp is not None:
            zp -= self._sigma * self._lp(rp)
        return zp

    def _precondition(self, r: np.ndarray) -> np.ndarray:
        """Block upper-triangular preconditioner: z_p = S⁻¹r_p, z_u = F⁻¹(r_u − Bᵀz_p)."""
        ru, rp = r[: self._n_uf], r[self._n_uf:]
        zp = self._schur_inverse(rp)
        rhs = (ru - self._Bt @ zp).reshape(-1, 2)
        zu = np.stack([self._amg(np.ascontiguousarray(rhs[:, c])) for c in range(2)], axis=1).ravel()
        return np.concatenate([zu, zp])

    def solve(self, b: np.ndarray, x0: np.ndarray | None = None) -> np.ndarray:
        if self.method == "direct":
            x = self._lu.solve(b)
            self.iterations = 0
        else:
            x, self.iterations, res = fgmres(self.J, b, self._precondition, rtol=self.rtol, maxiter=self.maxiter,
                                             x0=x0)
            if res > self.rtol:
                raise GraphfemError(f"GMRES did not converge: {self.iterations} iterations, relative residual "
                                    f"{res:.2e} > {self.rtol:.1e}")
        if not np.isfinite(x).all():
            raise GraphfemError("the flow solve produced non-finite values (singular system?)")
        return x


# ---------------------------------------------------------------------- the solution value
@dataclass(eq=False)
class FlowSolution(Solution):
    """A flow :class:`Solution`: ``dofs`` holds ``"velocity"`` (n_u,) in
    ``space`` (vector P2) and ``"pressure"`` (n_p,) P1 dofs; ``fields`` holds
    ``"velocity"`` (n_points, 2) and ``"pressure"`` (n_points,) at the mesh nodes.
    ``info`` has the Newton history (steady) or the force history (transient)."""

    flow: TaylorHood | None = None
    nu: float = 1.0
    body_force: np.ndarray | None = None

    def pressure_at(self, points: np.ndarray) -> np.ndarray:
        """(k,) pressure at points (k, 2) inside the mesh."""
        th = self.flow
        return th.scalar.probe(points) @ (th.P1_to_P2 @ self.dofs["pressure"])

    def velocity_at(self, points: np.ndarray) -> np.ndarray:
        """(k, 2) velocity at points (k, 2) inside the mesh."""
        return (self.flow.velocity.probe(points) @ self.dofs["velocity"]).reshape(-1, 2)

    def forces(self, obstacle: str) -> np.ndarray:
        """(2,) force (F_x, F_y) of the fluid on the facet tag ``obstacle``,
        by the volume-integral formulation (see the module docstring)."""
        return _forces(self.flow, self.dofs["velocity"], self.dofs["pressure"], self.nu, obstacle,
                       self.body_force)

    def drag_lift(self, obstacle: str, u_mean: float, length: float) -> tuple[float, float]:
        """Drag and lift coefficients c = 2F / (ū² L) (density 1)."""
        F = self.forces(obstacle)
        return tuple(float(v) for v in 2.0 * F / (u_mean ** 2 * length))


def _forces(th: TaylorHood, u: np.ndarray, p: np.ndarray, nu: float, obstacle: str, F: np.ndarray | None,
            mass_term: np.ndarray | None = None, w: np.ndarray | None = None) -> np.ndarray:
    """−R(v_c) for the unit test functions v_c on the obstacle's velocity dofs.
    ``mass_term`` (n_u,) is M ∂_t u for transient flows; ``w`` the advecting velocity (default u)."""
    if th.mesh.tag(obstacle).kind != "facet":
        raise InputError(f"obstacle tag {obstacle!r} must be a facet tag", th.mesh.source)
    on = th.scalar.dofs_on(obstacle)
    C = _vector(th.convection_scalar(u if w is None else w))
    R = nu * (th.K @ u) + C @ u + th.B.T @ p
    if F is not None:
        R = R - F
    if mass_term is not None:
        R = R + mass_term
    return -np.array([R[2 * on].sum(), R[2 * on + 1].sum()])


def _solution(th: TaylorHood, x: np.ndarray, bc: _Boundary, nu: float, F, info: dict,
              trajectory: Trajectory | None = None) -> FlowSolution:
    u, p = th.split(x)
    if bc.enclosed:
        p = p - (th.Mp @ p).sum() / th.area
    fields = {"velocity": th.velocity_nodes(u), "pressure": th.pressure_nodes(p)}
    return FlowSolution(th.velocity, {"velocity": u, "pressure": p}, fields,
                        {"velocity": "m/s", "pressure": "m^2/s^2"}, info, trajectory=trajectory, flow=th, nu=nu,
                        body_force=F)


def _check_nu(nu) -> float:
    nu = constant(nu, "nu")
    if nu <= 0:
        raise InputError(f"nu must be positive, got {nu}")
    return nu


def _discretise(mesh: Mesh | TaylorHood) -> TaylorHood:
    return mesh if isinstance(mesh, TaylorHood) else TaylorHood(mesh)


# ---------------------------------------------------------------------- steady solvers
def stokes(mesh: Mesh | TaylorHood, *, nu: float = 1.0, inflow: Mapping[str, VelocityData] | None = None,
           no_slip: Sequence[str] = (), outflow: Sequence[str] = (), f=None, solver: str = "auto",
           rtol: float = 1e-10) -> FlowSolution:
    """Solve the Stokes problem −νΔu + ∇p = f, ∇·u = 0 (Taylor–Hood).

    Args:
        mesh: a 2D triangle/quad :class:`Mesh` (linear or quadratic), or a
            :class:`TaylorHood` to reuse.
        nu: kinematic viscosity > 0.
        inflow: tag -> prescribed velocity: a number (the peak of a parabolic
            profile along the inward normal of a straight tag), a vector (2,), or a
            callable x (2, k) -> (2, k). Any Dirichlet velocity goes here.
        no_slip: tags with u = 0 (they win over ``inflow`` where tags share nodes).
        outflow: tags with the do-nothing condition ν ∂u/∂n − p n = 0 (every
            boundary left without a condition behaves so).
        f: body force: a vector (2,) or a callable x (2, ...) -> (2, ...).
        solver: ``"auto"``, ``"direct"`` (sparse LU) or ``"iterative"`` (FGMRES + block AMG).
        rtol: relative residual of the iterative solver.

    Returns:
        :class:`FlowSolution` (velocity and pressure dofs and nodal fields;
        ``info`` with the solver, dofs and timings).
    """
    start = time.perf_counter()
    nu = _check_nu(nu)
    th = _discretise(mesh)
    bc = _boundary(th, inflow, no_slip, outflow)
    F = th.load(f)
    x, info = _stokes_solve(th, bc, nu, F, solver, rtol)
    info["total_s"] = time.perf_counter() - start
    return _solution(th, x, bc, nu, None if f is None else F, info)


def _saddle(A_u: sp.spmatrix, th: TaylorHood) -> sp.csr_matrix:
    """The full (n, n) matrix [[A_u, Bᵀ], [B, 0]]."""
    return sp.bmat([[A_u, th.B.T], [th.B, None]], format="csr")


def _stokes_solve(th: TaylorHood, bc: _Boundary, nu: float, F: np.ndarray, solver: str, rtol: float):
    J = _saddle(nu * th.K, th)
    x = np.zeros(th.n)
    x[bc.fixed] = bc.values
    rhs = np.concatenate([F, np.zeros(th.n_p)]) - J @ x
    I = bc.free
    linear = SaddleSolver(J[I][:, I], th, bc, solver, nu=nu, rtol=rtol)
    x[I] = linear.solve(rhs[I])
    info = {"method": linear.method, "n": int(I.size), "dofs": th.n, "velocity_dofs": th.n_u,
            "pressure_dofs": th.n_p, "iterations": linear.iterations, "setup_s": linear.setup_s}
    return x, info


def _residual(th: TaylorHood, x: np.ndarray, nu: float, F: np.ndarray) -> np.ndarray:
    u, p = th.split(x)
    Ru = nu * (th.K @ u) + _vector(th.convection_scalar(u)) @ u + th.B.T @ p - F
    return np.concatenate([Ru, th.B @ u])


def _start(mesh, initial, inflow, no_slip, outflow, f):
    """Discretisation, boundary data, load and starting state of a flow solve:
    (TaylorHood, boundary conditions, F, x) with x the state of a previous
    :class:`FlowSolution` (boundary values of this run imposed) or ``None``."""
    th = initial.flow if isinstance(initial, FlowSolution) else _discretise(mesh)
    bc = _boundary(th, inflow, no_slip, outflow)
    x = None
    if isinstance(initial, FlowSolution):
        x = np.concatenate([initial.dofs["velocity"], initial.dofs["pressure"]])
        x[bc.fixed] = bc.values
    return th, bc, th.load(f), x


def navier_stokes(mesh: Mesh | TaylorHood, *, nu: float, inflow: Mapping[str, VelocityData] | None = None,
                  no_slip: Sequence[str] = (), outflow: Sequence[str] = (), f=None, solver: str = "auto",
                  rtol: float = 1e-10, atol: float = 1e-13, max_iter: int = 25,
                  initial: FlowSolution | None = None) -> FlowSolution:
    r"""Solve the steady incompressible Navier–Stokes equations by Newton's method.

    Starting from the Stokes solution (or ``initial``), each step solves
    J(xᵏ) δ = −R(xᵏ) with the exact Jacobian and takes xᵏ⁺¹ = xᵏ + λδ, λ the
    first of 1, 1/2, 1/4, ... with ||R(xᵏ⁺¹)|| ≤ (1 − 10⁻⁴λ)||R(xᵏ)||; it stops when
    ||R|| ≤ max(atol, rtol·||R(x⁰)||) on the free dofs. Arguments as in
    :func:`stokes`, and:

    Args:
        rtol, atol: the stopping test above (and ``rtol`` for the iterative linear solver).
        max_iter: Newton iterations allowed.
        initial: a previous :class:`FlowSolution` on the same discretisation to start from.

    Returns:
        :class:`FlowSolution`; ``info["newton"]`` lists per iteration the
        residual norm before the step, the step length λ and the linear solver's iterations.

    Raises:
        GraphfemError: no convergence in ``max_iter`` iterations or a failed line
            search (the message names the iteration and the residual).
    """
    start = time.perf_counter()
    nu = _check_nu(nu)
    th, bc, F, x = _start(mesh, initial, inflow, no_slip, outflow, f)
    base = {}
    if x is None:
        x, base = _stokes_solve(th, bc, nu, F, solver, rtol)
    I = bc.free
    history = []
    R = _residual(th, x, nu, F)[I]
    r0 = float(np.linalg.norm(R))
    tol = max(atol, rtol * r0)
    linear = None
    for it in range(max_iter + 1):
        r = float(np.linalg.norm(R))
        if r <= tol:
            history.append({"iteration": it, "residual": r, "step": 0.0, "linear_iterations": 0})
            break
        if it == max_iter:
            trail = ", ".join(f"{h['residual']:.1e}" for h in history)
            raise GraphfemError(f"Newton did not converge in {max_iter} iterations: residual {r:.3e} "
                                f"> tolerance {tol:.1e} (residuals {trail})")
        u = x[: th.n_u]
        J = _saddle(nu * th.K + _vector(th.convection_scalar(u)) + th.newton_term(u), th)[I][:, I]
        # inexact Newton: the linear tolerance shrinks with the residual, which keeps the convergence quadratic
        linear = SaddleSolver(J, th, bc, solver, nu=nu, w=u, rtol=min(1e-4, max(1e-12, 0.1 * r / r0)))
        delta = linear.solve(-R)
        step = 1.0
        while True:
            trial = x.copy()
            trial[I] += step * delta
            R_new = _residual(th, trial, nu, F)[I]
            if np.linalg.norm(R_new) <= (1 - 1e-4 * step) * r:
                break
            step *= 0.5
            if step < 1e-4:
                raise GraphfemError(f"Newton line search failed at iteration {it + 1}: residual {r:.3e} does "
                                    f"not decrease along the Newton direction")
        history.append({"iteration": it, "residual": r, "step": step, "linear_iterations": linear.iterations})
        logger.info("Newton %d: residual %.3e, step %.3g, %d linear iterations", it, r, step, linear.iterations)
        x, R = trial, R_new
    info = {**base, "method": linear.method if linear else base.get("method"), "n": int(I.size), "dofs": th.n,
            "velocity_dofs": th.n_u, "pressure_dofs": th.n_p, "newton": history,
            "newton_iterations": len(history) - 1, "residual": history[-1]["residual"],
            "total_s": time.perf_counter() - start}
    return _solution(th, x, bc, nu, None if f is None else F, info)


# ---------------------------------------------------------------------- transient solver
def navier_stokes_transient(mesh: Mesh | TaylorHood, *, nu: float, t_end: float, dt: float,
                            inflow: Mapping[str, VelocityData] | None = None, no_slip: Sequence[str] = (),
                            outflow: Sequence[str] = (), f=None, initial: FlowSolution | str | None = "stokes",
                            obstacle: str | None = None, save_every: int = 1, solver: str = "auto",
                            rtol: float = 1e-8, progress: Callable[[int, int], None] | None = None,
                            frames: Callable[[float, dict], None] | None = None) -> FlowSolution:
    r"""Time-dependent Navier–Stokes by BDF2 with extrapolated convection.

    Each step solves the Oseen problem (see the module docstring)

        [[α₀/Δt M + νK + C(w), Bᵀ], [B, 0]] [uⁿ⁺¹; pⁿ⁺¹] = [M(−α₁uⁿ − α₂uⁿ⁻¹)/Δt + F; 0],

    (α₀, α₁, α₂) = (3/2, −2, 1/2), w = 2uⁿ − uⁿ⁻¹ (BDF1 and w = uⁿ on the first step).

    Args:
        mesh, nu, inflow, no_slip, outflow, f, solver: as in :func:`stokes`
            (boundary data are constant in time).
        t_end, dt: final time and step (shrunk so that t_end is hit).
        initial: ``"stokes"`` (the Stokes flow with these boundary data, a smooth
            start), ``None`` (rest, velocity data imposed from the first step) or a
            steady :class:`FlowSolution` on the same discretisation.
        obstacle: a facet tag whose forces are recorded every step.
        save_every: keep every k-th step in the trajectory (first and last always).
        rtol: relative residual of the iterative linear solver.
        progress: called as progress(step, steps) after every step.
        frames: called as ``frames(t, {"velocity": (n_points, 2), "pressure": (n_points,)})`` for every
            saved state instead of keeping it (a stream to disk,
            :class:`~graphfem.physics.timesteps.SavedStates`); the trajectory is then ``None``.

    Returns:
        :class:`FlowSolution` of the final state whose ``trajectory`` holds
        ``velocity`` (T, n_points, 2) and ``pressure`` (T, n_points); with an
        obstacle, ``info["forces"]`` is (steps + 1, 3): t, F_x, F_y.
    """
    start = time.perf_counter()
    nu = _check_nu(nu)
    steps, dt = time_steps(t_end, dt)
    if not (initial is None or initial == "stokes" or isinstance(initial, FlowSolution)):
        raise InputError(f"initial must be 'stokes', None or a FlowSolution, got {initial!r}")
    th, bc, F, x = _start(mesh, initial, inflow, no_slip, outflow, f)
    saved = SavedStates(steps, save_every, th.mesh.n_points * (th.mesh.dim + 1), frames)  # velocity, pressure
    if x is None:
        x = _stokes_solve(th, bc, nu, F, solver, rtol)[0] if initial == "stokes" else np.zeros(th.n)
    I, n_u = bc.free, th.n_u
    fixed = np.zeros(th.n)
    fixed[bc.fixed] = bc.values
    u_prev = x[:n_u].copy()

    def record(x) -> dict:
        u, p = th.split(x)
        if bc.enclosed:
            p = p - (th.Mp @ p).sum() / th.area
        return {"velocity": th.velocity_nodes(u), "pressure": th.pressure_nodes(p)}

    saved.save(0.0, record(x))
    forces = []
    if obstacle is not None:
        th.mesh.tag(obstacle)
        forces.append([0.0, np.nan, np.nan])
    iterations, linear, guess = 0, None, None
    for step in range(1, steps + 1):
        u_n = x[:n_u]
        if step == 1:
            a0, a1, a2, w = 1.0, -1.0, 0.0, u_n
        else:
            a0, a1, a2, w = 1.5, -2.0, 0.5, 2.0 * u_n - u_prev
        history = (a1 * u_n + a2 * u_prev) / dt
        A_u = (a0 / dt) * th.M + nu * th.K + _vector(th.convection_scalar(w))
        J = _saddle(A_u, th)
        rhs = np.concatenate([F - th.M @ history, np.zeros(th.n_p)]) - J @ fixed
        linear = SaddleSolver(J[I][:, I], th, bc, solver, nu=nu, w=w, sigma=a0 / dt, rtol=rtol)
        x_new = fixed.copy()
        x_new[I] = guess = linear.solve(rhs[I], x0=guess)
        iterations += linear.iterations
        if obstacle is not None:
            u_new, p_new = th.split(x_new)
            mass = th.M @ (a0 * u_new / dt + history)
            Fx, Fy = _forces(th, u_new, p_new, nu, obstacle, None if f is None else F, mass_term=mass, w=w)
            forces.append([step * dt, Fx, Fy])
        u_prev, x = u_n.copy(), x_new
        if not np.isfinite(x).all():
            raise GraphfemError(f"transient Navier-Stokes blew up at step {step} (t = {step * dt:g}); reduce dt")
        if saved.due(step):
            saved.save(step * dt, record(x))
        if progress is not None:
            progress(step, steps)
    trajectory = saved.trajectory(th.mesh, {"velocity": "m/s", "pressure": "m^2/s^2"})
    info = {"method": linear.method, "n": int(I.size), "dofs": th.n, "steps": steps, "dt": dt,
            "iterations": iterations, "frames": saved.count, "total_s": time.perf_counter() - start}
    if obstacle is not None:
        info["forces"] = np.array(forces)
    logger.info("transient Navier-Stokes: %d steps of dt=%g, %s solver", steps, dt, linear.method)
    return _solution(th, x, bc, nu, None if f is None else F, info, trajectory=trajectory)


# ---------------------------------------------------------------------- benchmarks and exact solutions
#: Schäfer & Turek (1996) DFG 2D-1 reference values (John & Matthies 2001 digits).
DFG_2D1 = {"c_D": 5.5795, "c_L": 0.0106, "dp": 0.1175}
#: DFG 2D-2 (Re = 100) reference values: Strouhal number and maximum drag.
DFG_2D2 = {"strouhal": 0.2995, "c_D_max": 3.22, "c_L_max": 1.0}


def dfg_setup(u_max: float) -> dict:
    """Boundary data of the DFG channel (:func:`graphfem.physics.channel.dfg_mesh`) with a parabolic
    inflow of peak ``u_max``: keyword arguments for the flow solvers."""
    return {"inflow": {"inlet": u_max}, "no_slip": ["walls", "cylinder"], "outflow": ["outlet"]}


def dfg_2d1(n_around: int = 64, solver: str = "auto", mesh: Mesh | None = None) -> dict:
    """DFG 2D-1 (ν = 10⁻³, parabolic inflow with peak 0.3, Re = 20): steady
    Navier–Stokes on the channel mesh; returns c_D, c_L, Δp = p(0.15, 0.2) −
    p(0.25, 0.2), the solution and the Newton history."""
    from .channel import dfg_mesh

    mesh = dfg_mesh(n_around) if mesh is None else mesh
    sol = navier_stokes(mesh, nu=1e-3, solver=solver, **dfg_setup(0.3))
    c_D, c_L = sol.drag_lift("cylinder", u_mean=0.2, length=0.1)
    p = sol.pressure_at(np.array([[0.15, 0.2], [0.25, 0.2]]))
    return {"c_D": c_D, "c_L": c_L, "dp": float(p[0] - p[1]), "solution": sol, "dofs": sol.info["dofs"]}


def shedding(forces: np.ndarray, u_mean: float = 1.0, length: float = 0.1, periods: int = 3) -> dict:
    """Strouhal number, maximum c_D and c_L from a force history (k, 3) of
    t, F_x, F_y over the last ``periods`` lift periods (upward zero crossings,
    located by linear interpolation)."""
    t, cd, cl = forces[1:, 0], 2 * forces[1:, 1] / (u_mean ** 2 * length), 2 * forces[1:, 2] / (u_mean ** 2 * length)
    up = np.flatnonzero((cl[:-1] < 0) & (cl[1:] >= 0))
    crossings = t[up] - cl[up] * (t[up + 1] - t[up]) / (cl[up + 1] - cl[up])
    if len(crossings) < periods + 1:
        raise GraphfemError(f"only {len(crossings)} lift oscillations recorded; run longer to measure shedding")
    window = crossings[-(periods + 1):]
    period = (window[-1] - window[0]) / periods
    last = (t >= window[0]) & (t <= window[-1])
    return {"strouhal": length / (u_mean * period), "period": period, "c_D_max": float(cd[last].max()),
            "c_L_max": float(cl[last].max()), "c_L_min": float(cl[last].min())}


def kovasznay(Re: float = 40.0) -> tuple[Callable, Callable, float]:
    """Kovasznay's exact Navier–Stokes flow (ν = 1/Re), λ = Re/2 − √(Re²/4 + 4π²):

        u = 1 − e^{λx} cos 2πy,  v = λ/(2π) e^{λx} sin 2πy,  p = −e^{2λx}/2 (+ const).

    Returns (velocity x (2, ...) -> (2, ...), pressure x -> (...), ν)."""
    lam = Re / 2 - math.sqrt(Re ** 2 / 4 + 4 * math.pi ** 2)

    def velocity(x):
        e = np.exp(lam * x[0])
        return np.stack([1 - e * np.cos(2 * np.pi * x[1]), lam / (2 * np.pi) * e * np.sin(2 * np.pi * x[1])])

    def pressure(x):
        return -0.5 * np.exp(2 * lam * x[0])

    return velocity, pressure, 1.0 / Re


# ---------------------------------------------------------------------- dataset generator
def random_cylinder(rng: np.random.Generator) -> tuple[tuple[float, float], float, float]:
    """A random cylinder in the DFG channel and inflow peak: ((cx, cy), r, U) with
    cx ∈ [0.15, 0.35], cy ∈ [0.15, 0.26], r ∈ [0.03, 0.06], U ∈ [0.1, 0.45]."""
    cx, cy = float(rng.uniform(0.15, 0.35)), float(rng.uniform(0.15, 0.26))
    return (cx, cy), float(rng.uniform(0.03, 0.06)), float(rng.uniform(0.1, 0.45))


def generate_cylinder_flow(rng: np.random.Generator, resolution: int = 48) -> tuple[Mesh, dict, dict]:
    """One steady flow past a randomly placed and sized cylinder in the DFG channel.

    Draws the centre cx ∈ [0.15, 0.35], cy ∈ [0.15, 0.26], radius r ∈ [0.03, 0.06]
    and the inflow peak U ∈ [0.1, 0.45] (ν = 10⁻³, so Re = (2U/3)(2r)/ν ∈ [2, 36],
    below the onset of shedding), meshes the channel with ``resolution`` cells
    around the cylinder (straight triangles) and solves steady Navier–Stokes.

    Returns:
        mesh (tags inlet, outlet, walls, cylinder), params (geometry, u_max, nu,
        reynolds, c_D, c_L, Newton iterations) and fields ``velocity``
        (n_points, 2) and ``pressure`` (n_points,).
    """
    from .channel import channel_mesh

    (cx, cy), r, u_max = random_cylinder(rng)
    nu = 1e-3
    resolution = int(8 * max(2, round(resolution / 8)))
    mesh = channel_mesh(resolution, order=1, centre=(cx, cy), radius=r)
    sol = navier_stokes(mesh, nu=nu, **dfg_setup(u_max))
    u_mean = 2.0 * u_max / 3.0
    c_D, c_L = sol.drag_lift("cylinder", u_mean=u_mean, length=2 * r)
    params = {"centre": [cx, cy], "radius": r, "u_max": u_max, "nu": nu, "reynolds": u_mean * 2 * r / nu,
              "c_D": c_D, "c_L": c_L, "newton_iterations": sol.info["newton_iterations"],
              "length": 2.2, "height": 0.41}
    return mesh, params, dict(sol.fields)


# ---------------------------------------------------------------------- problems
def _obstacle(raw, mesh: Mesh, option: Option) -> str:
    """The one tag of ``--obstacle``, checked against the mesh."""
    names = [raw] if isinstance(raw, str) else [str(name) for name in raw]
    if len(names) != 1:
        raise InputError(f"{option.cli_flag}: give one tag, got {', '.join(names) or 'none'}")
    mesh.tag(names[0])
    return names[0]


#: the options of the steady flows; :class:`NavierStokes` adds the time stepping
FLOW_OPTIONS = (
    Option("inflow", "tag-values", None, "TAG=UMAX (parabolic profile with peak UMAX along the inward normal of a "
           "straight tag), TAG=EXPR (speed along that normal) or TAG=EXPR,EXPR (the velocity).",
           parse=inflow_options),
    Option("no_slip", "tags", None, "Tag with u = 0 (repeatable)."),
    Option("outflow", "tags", None, "Tag with the do-nothing condition nu du/dn - p n = 0 (repeatable)."),
    Option("nu", "number", None, "Kinematic viscosity nu > 0.", required=True),
    Option("obstacle", "tags", None, "Tag whose drag and lift are printed.", role="setting", parse=_obstacle),
    Option("u_mean", "number", None, "Reference velocity of c_D, c_L (default 2/3 of the parabolic peak).",
           role="setting"),
    Option("length", "number", None, "Reference length of c_D, c_L (default: the obstacle's extent across the "
           "flow).", role="setting"),
)
FLOW_SOLVER = solver_option(("auto", "direct", "iterative"), "FGMRES with a block preconditioner",
                            "a saddle-point system is not symmetric positive definite: no CG",
                            "the Taylor-Hood flow solver")


class _Flow(Problem):
    """What Stokes and Navier–Stokes share: Taylor–Hood on 2D meshes, the
    boundary options, the force report and the inflow encoding.

    Data sets (:meth:`sample`): the DFG channel 2.2 × 0.41 of
    :func:`graphfem.physics.channel.channel_mesh` with a random cylinder
    (:func:`random_cylinder`), 16, 24 or 32 straight cells around it (130 to
    450 nodes), a parabolic inflow of peak U ∈ [0.1, 0.45], ν log-uniform in
    [10⁻³, 10⁻²] (Re = (2U/3)(2r)/ν ∈ [0.4, 36], steady), no slip on the
    walls and the cylinder, do-nothing outflow.
    """

    fields = {"velocity": "m/s", "pressure": "m^2/s^2"}
    vector_fields = ("velocity",)
    dims = (2,)
    geometries = ("channel",)

    def _solved(self, solution: FlowSolution, obstacle: str | None, u_mean: float | None, length: float | None,
                inflow) -> FlowSolution:
        """``solution`` with ``info["obstacle"]``: the force F on ``obstacle``
        (the last one recorded, for a time series) and the reference velocity
        and length of c = 2F/(ū²L): by default 2/3 of the first parabolic peak
        and the obstacle's extent in y."""
        if obstacle is None:
            return solution
        info = solution.info
        force = info["forces"][-1, 1:] if "forces" in info else solution.forces(obstacle)
        if u_mean is None:
            peaks = [v for v in (inflow or {}).values() if isinstance(v, float)]
            u_mean = 2.0 * peaks[0] / 3.0 if peaks else None
        if length is None:
            nodes = solution.mesh.points[solution.mesh.tag_nodes(obstacle)]
            length = float(np.ptp(nodes[:, 1])) if len(nodes) else None
        info["obstacle"] = {"tag": obstacle, "force": tuple(float(f) for f in force), "u_mean": u_mean,
                            "length": length}
        return solution

    def report(self, solution: Solution) -> list[str]:
        """The discretisation, the Newton history and the forces on the obstacle."""
        info = solution.info
        lines = [f"Taylor-Hood P2-P1: {info['dofs']} dofs ({info['n']} free), {info['method']} linear solver"]
        for h in info.get("newton", []):
            lines.append(f"  Newton {h['iteration']}: residual {h['residual']:.3e}"
                         + (f", step {h['step']:g}" if h["step"] else "")
                         + (f", {h['linear_iterations']} linear iterations" if h["linear_iterations"] else ""))
        if "obstacle" in info:
            ob = info["obstacle"]
            (fx, fy), u_mean, length = ob["force"], ob["u_mean"], ob["length"]
            lines.append(f"force on {ob['tag']}: F_x = {fx:.6e}, F_y = {fy:.6e}")
            if u_mean and length:
                scale = 2.0 / (u_mean ** 2 * length)
                lines.append(f"c_D = {scale * fx:.5f}, c_L = {scale * fy:.5f} (mean velocity {u_mean:g}, "
                             f"length {length:g})")
        return lines

    def features(self, mesh: Mesh, params) -> Features:
        """The generic encoding with the inflow as a mask of its nodes and the velocity (2 columns) there."""
        tags = {name: params.get(name) or [] for name in ("no_slip", "outflow")}
        generic = super().features(mesh, {**params, **tags, "inflow": None})
        mask, velocity = np.zeros(mesh.n_points), np.zeros((mesh.n_points, 2))
        for tag, data in (params.get("inflow") or {}).items():
            nodes = mesh.tag_nodes(tag)
            mask[nodes] = 1.0
            velocity[nodes] = inflow_velocity(mesh, tag, data, mesh.points[nodes].T).T
        return replace_columns(generic, "inflow", {"inflow:mask": mask, "inflow": velocity})

    def sample(self, rng: np.random.Generator, geometry: str | None = None):
        from .channel import channel_mesh

        geometry = self.geometry(geometry)
        centre, radius, u_max = random_cylinder(rng)
        mesh = channel_mesh(8 * int(rng.integers(2, 5)), order=1, centre=centre, radius=radius)
        return mesh, {"nu": float(10 ** rng.uniform(-3, -2)), **dfg_setup(u_max)}


@register_problem
class Stokes(_Flow):
    r"""Stokes flow −νΔu + ∇p = 0, ∇·u = 0 (Taylor–Hood P2–P1); :func:`stokes`.

    Options: inflow velocities, no-slip and do-nothing outflow tags, ν, and
    the obstacle whose force (and c_D, c_L) the report gives.
    """

    name = "stokes"
    summary = "Stokes flow -nu lap u + grad p = 0, div u = 0"
    options = FLOW_OPTIONS + (FLOW_SOLVER,)

    def solve(self, mesh: Mesh, obstacle: str | None = None, u_mean: float | None = None,
              length: float | None = None, **params) -> FlowSolution:
        return self._solved(stokes(mesh, **params), obstacle, u_mean, length, params.get("inflow"))


@register_problem
class NavierStokes(_Flow):
    r"""Incompressible Navier–Stokes −νΔu + (u·∇)u + ∇p = 0, ∇·u = 0 (Taylor–Hood):
    steady by Newton (:func:`navier_stokes`), or with ``t_end`` and ``dt`` by
    BDF2 from the Stokes flow (:func:`navier_stokes_transient`).

    Options: those of :class:`Stokes`, and the final time, step and save interval.
    """

    name = "navier-stokes"
    summary = "incompressible Navier-Stokes (u.grad)u - nu lap u + grad p = 0, div u = 0"
    options = FLOW_OPTIONS + (
        Option("t_end", "number", None, "Final time: transient BDF2 (omit for the steady flow).", role="time"),
        Option("dt", "number", None, "Time step of the transient run.", role="time"),
        Option("save_every", "integer", None, "Keep every k-th step (transient; default 1).", role="time"),
        FLOW_SOLVER,
    )
    #: a transient solve() takes ``frames`` and ``progress``: graphfem solve streams it to disk
    streams = True

    def check(self, mesh: Mesh, params: dict) -> None:
        if (params["t_end"] is None) != (params["dt"] is None):
            raise InputError("a transient run needs both --t-end and --dt")

    def is_transient(self, params) -> bool:
        return params.get("t_end") is not None

    def solve(self, mesh: Mesh, obstacle: str | None = None, u_mean: float | None = None,
              length: float | None = None, **params) -> FlowSolution:
        if "t_end" in params:
            solution = navier_stokes_transient(mesh, obstacle=obstacle, **params)
        else:
            solution = navier_stokes(mesh, **params)
        return self._solved(solution, obstacle, u_mean, length, params.get("inflow"))
