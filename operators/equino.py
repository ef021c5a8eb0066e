r"""EquiNO: an equilibrium neural operator for the periodic RVE problem
(Eivazi, Tröger, Wittek, Hartmann, Rausch, "EquiNO: A Physics-Informed
Neural Operator for Multiscale Simulations", arXiv 2504.07976).

Given a macro strain ε̂ = (ε̂_xx, ε̂_yy, γ̂_xy) (engineering shear), the model
returns the full micro fields of :class:`graphfem.physics.rve.RVE` on the
mesh and quadrature of the FE snapshots it was built from:

    u(ε̂)   = A ε̂ + Σ_k b_k(ε̂) φ_k                  (dofs; A ε̂ = Ê (x − x_c))
    ε(ε̂)   = ε̂ + Σ_k b_k(ε̂) ε(φ_k)                 (quadrature points)
    σ_law  = σ(ε)                                     (the material law, per phase)
    σ_NN   = Σ_k b_s,k(ε̂) ψ_k                         (quadrature points)
    σ̂      = Σ_k b_s,k(ε̂) ⟨ψ_k⟩,  ⟨ψ⟩ = (1/|Ω|) Σ_ip ψ(x_ip) w_ip,   Ĉ = ∂σ̂/∂ε̂ (torch.func).

**Bases.** φ_k: uncentred POD (rank r_u) of the FE fluctuations ũ = T a. As
T has orthogonal 0/1 columns (TᵀT = M, the multiplicity of each periodic
unknown), the POD of the nodal snapshots T A equals T M^{-1/2} POD(M^{1/2} A);
the modes are stored as T φ^red, so left/right and bottom/top values are
identical copies and the pinned corner is exactly 0 (no node-0 shift needed).
ψ_k: uncentred POD (rank r_s) of the FE stresses at the quadrature points.

**Equilibrium, the exact sense.** Every FE stress snapshot satisfies, up to
its Newton tolerance, the discrete periodic weak equilibrium

    G σ := Tᵀ Σ_ip B(x_ip)ᵀ σ(x_ip) w_ip = 0,

i.e. ∫_h σ : ε(v) dΩ = 0 for every periodic FE test function v, with the
snapshots' quadrature (weakly divergence-free with anti-periodic tractions).
The stress modes are linear combinations of snapshots; their residual is then
removed exactly by the w-orthogonal projection onto ker G,
ψ ← ψ − B T K₀⁻¹ G ψ with K₀ = Tᵀ Bᵀ W B T (a correction of the size of the
snapshot residuals). Hence every σ_NN = Σ b_s,k ψ_k satisfies G σ_NN = 0 to
rounding, for *any* coefficients. The guarantee is discrete: same mesh, same
quadrature, span of the modes. σ_law is not in equilibrium; the training
loss drives it towards σ_NN.

**Branches, zero at zero strain.** Each branch is an MLP N: 3 → depth × width
→ 3r (SiLU) read as an r × 3 matrix, applied to x = ε̂/strain_scale:

    b(ε̂) = s ⊙ (N(x) x),    s_k = RMS_snap(b_k) / RMS_snap(‖x‖),

so b(0) = 0 exactly (0 times a finite number), hence ε̂ = 0 gives u = 0,
ε = 0, σ_law = σ_NN = 0 and σ̂ = 0 bit for bit, whatever the weights.
With ``linear_snapshots`` (default) the bases also span the FE response
linearised at ε̂ = 0 (:func:`linear_response`) and N(x) is replaced by
G + N(x) − N(0), G that response projected onto the modes in the energy
norms: the small-strain limit is FE's up to the projection, and the network
learns the nonlinear part. (Only starting N at G and training N(0) gave
outliers of 5-20 % in σ̂ at small and at corner strains.) Any smooth map with b(0) = 0 has this form
(b(x) = ∫₀¹ ∂b(tx) dt · x); N(x) is a secant map, constant for a linear
RVE. The reference instead de-standardises N(x) with the mean and std of
the snapshots' coefficients: its bias and the mean offset give b(0) ≠ 0,
a stress at zero strain (σ̂(0) of order 0.1-1 MPa here), which is a large
relative error at the small strains of a macro problem.

**Loss** (unsupervised, constitutive gap, :meth:`EquiNO.loss`): ``"mse"``, the
reference's mean over quadrature points and the 3 components of
(σ_law − σ_NN)², or ``"cre"`` (default), the quadrature-weighted
constitutive relation error (see :class:`EquiNOConfig`), per strain; then
either divided by a global stress scale² (``relative=False``, the
reference's weighting, dominated by the large strains) or, per strain, by
the linear-response size at that strain (``relative=True``, default):
ε̂ᵀ Ĉ₀ ε̂ for ``"cre"``, ‖Ĉ₀ ε̂‖²/3 for ``"mse"``, with Ĉ₀ the FE homogenised
tangent at ε̂ = 0, so that every strain counts by its relative error.
It is trained by the engine's one trainer (Adam, then L-BFGS with strong
Wolfe line search, in float64) through :mod:`graphfem.families.equino`.

Material law (torch): σ = K tr ε I + (α/(β + ‖dev ε‖) + 2G) dev ε with the
full plane-strain deviator (see :mod:`graphfem.physics.rve`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import scipy.sparse.linalg as spl
import torch
from torch import nn

from graphfem.physics.rve import RVE, RVESolution, stress_tangent

from .layers import MLP
from .registry import register


def law_stress(eps: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Torch σ(ε): eps (..., N, 3) Voigt, params (N, 4) of (K, α, β, G) -> (..., N, 3)."""
    K, alpha, beta, G = params.unbind(-1)
    tr = eps[..., 0] + eps[..., 1]
    dxx, dyy, dxy = eps[..., 0] - tr / 3, eps[..., 1] - tr / 3, 0.5 * eps[..., 2]
    s = torch.sqrt(dxx ** 2 + dyy ** 2 + (tr / 3) ** 2 + 2 * dxy ** 2 + 1e-30)
    g = alpha / (beta + s) + 2 * G
    return torch.stack([K * tr + g * dxx, K * tr + g * dyy, g * dxy], dim=-1)


def law_energy(eps: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Torch W(ε) = K tr²/2 + α (s − β ln(1 + s/β)) + G s²: (..., N, 3) -> (..., N)."""
    K, alpha, beta, G = params.unbind(-1)
    tr = eps[..., 0] + eps[..., 1]
    dxx, dyy, dxy = eps[..., 0] - tr / 3, eps[..., 1] - tr / 3, 0.5 * eps[..., 2]
    s = torch.sqrt(dxx ** 2 + dyy ** 2 + (tr / 3) ** 2 + 2 * dxy ** 2 + 1e-30)
    return 0.5 * K * tr ** 2 + alpha * (s - beta * torch.log1p(s / beta)) + G * s ** 2


def pod(X: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Uncentred POD: (modes (n, r), coefficients (r, n_snap) = diag(S) Vᵀ) of X (n, n_snap)."""
    U, S, Vt = np.linalg.svd(X, full_matrices=False)
    r = min(rank, len(S))
    return U[:, :r], S[:r, None] * Vt[:r]


def equilibrate(rve: RVE, modes: np.ndarray) -> np.ndarray:
    """Project stress modes (N, 3, k) onto ker G, G ψ = Tᵀ Σ_ip Bᵀ ψ w, in the w-weighted norm:
    ψ − B T K₀⁻¹ G ψ with K₀ = Tᵀ Bᵀ W B T (identity material)."""
    eye = np.broadcast_to(np.eye(3), (rve.n_points, 3, 3))
    K0 = rve.op.stiffness(eye, rve.dofmap, rve.n_red)
    lam = spl.splu(K0.tocsc()).solve(rve.equilibrium_residual(modes))
    return modes - rve.op.strain(rve.T @ lam)


@dataclass
class EquiNOConfig:
    """Sizes of an :class:`EquiNO` (the bases are buffers, filled by :func:`build_equino` or a checkpoint).

    Attributes:
        n_dofs, n_points: RVE dofs and quadrature points.
        rank_u, rank_s: POD ranks of displacement and stress.
        width, depth: hidden width and number of hidden layers of each branch.
        strain_scale: input normalisation ε̂ / strain_scale.
        volume: |Ω|.
        loss: ``"mse"``, the reference's unweighted mean of (σ_law − σ_NN)² over
            points and components, or ``"cre"``, the constitutive relation error
            Σ_ip w Δσᵀ S₀ Δσ / |Ω| with S₀ the initial (ε = 0) compliance of the
            point's phase: quadrature-weighted and in energy units, so the stiff
            inclusions do not dominate and the shear component counts by its
            compliance.
        relative: divide each strain's loss by its linear-response size
            (ε̂ᵀ Ĉ₀ ε̂ for ``"cre"``, ‖Ĉ₀ ε̂‖²/3 for ``"mse"``): the relative error per
            strain, so small strains count as much as large ones. ``False`` is the
            reference's weighting (one global stress scale).
        linear_snapshots: add to the FE snapshots the three of the response linearised at
            ε̂ = 0 (:func:`linear_response`) before the POD (the small-strain fields, which the
            snapshots at strains of a few percent do not span), and fix each branch's
            derivative at ε̂ = 0 to that response: b = s ⊙ (G + N(x) − N(0)) x (the
            reference: ``False``, b = s ⊙ N(x) x).
    """

    n_dofs: int
    n_points: int
    rank_u: int = 16
    rank_s: int = 16
    width: int = 64
    depth: int = 4
    strain_scale: float = 0.04
    volume: float = 1.0
    loss: str = "cre"
    relative: bool = True
    linear_snapshots: bool = True


def through_zero(net: nn.Module, x: torch.Tensor, rows: int, gain: torch.Tensor | None = None) -> torch.Tensor:
    """N(x) x: the network output (B, rows · 3) read as (B, rows, 3) matrices times x (B, 3);
    exactly 0 at x = 0 for any weights. With ``gain`` G (rows, 3): (G + N(x) − N(0)) x, whose
    derivative at 0 is G exactly. Shapes: x (B, 3) -> (B, rows)."""
    n = net(x).reshape(len(x), rows, 3)
    if gain is not None:
        n = n - net(torch.zeros_like(x[:1])).reshape(1, rows, 3) + gain
    return torch.einsum("bkj,bj->bk", n, x)


@register("equino")
class EquiNO(nn.Module):
    """Equilibrium neural operator; see the module docstring for the equations.

    Shapes:
        strain (B, 3) -> coefficients (B, r_u), (B, r_s); :meth:`fields` returns
        u (B, n_dofs), eps / sigma_law / sigma_nn (B, N, 3).
    """

    Config = EquiNOConfig

    def __init__(self, config: EquiNOConfig):
        super().__init__()
        self.config = config
        c = config
        dt = torch.float64
        self.branch_u = MLP(3, c.width, 3 * c.rank_u, n_layers=c.depth + 1, layer_norm=False).to(dt)
        self.branch_s = MLP(3, c.width, 3 * c.rank_s, n_layers=c.depth + 1, layer_norm=False).to(dt)
        for name, shape in (("phi", (c.n_dofs, c.rank_u)), ("eps_phi", (c.n_points, 3, c.rank_u)),
                            ("psi", (c.n_points, 3, c.rank_s)), ("psi_hat", (3, c.rank_s)),
                            ("affine", (c.n_dofs, 3)), ("params", (c.n_points, 4)), ("w", (c.n_points,)),
                            ("compliance", (c.n_points, 3, 3)), ("tangent0", (3, 3)),
                            ("coef_u_scale", (c.rank_u,)), ("coef_s_scale", (c.rank_s,)),
                            ("gain_u", (c.rank_u, 3)), ("gain_s", (c.rank_s, 3)), ("stress_scale", ())):
            self.register_buffer(name, torch.zeros(shape, dtype=dt))

    # ------------------------------------------------------------ coefficients
    def coefficients(self, strain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(b_u (B, r_u), b_s (B, r_s)) for strains (B, 3); both exactly 0 at zero strain."""
        x = strain / self.config.strain_scale
        return (self._branch(self.branch_u, x, self.gain_u) * self.coef_u_scale,
                self._branch(self.branch_s, x, self.gain_s) * self.coef_s_scale)

    def _branch(self, net: nn.Module, x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """N(x) x, or (G + N(x) − N(0)) x with ``linear_snapshots`` (G the linearised response)."""
        return through_zero(net, x, len(gain), gain if self.config.linear_snapshots else None)

    def forward(self, strain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The POD coefficients (b_u, b_s) of :meth:`coefficients`."""
        return self.coefficients(strain)

    def stress_hat(self, strain: torch.Tensor, source: str = "nn") -> torch.Tensor:
        """σ̂ (B, 3): Σ b_s,k ⟨ψ_k⟩ (``"nn"``, stress branch only) or ⟨σ_law⟩ (``"law"``)."""
        if source == "nn":
            x = strain / self.config.strain_scale
            return (self._branch(self.branch_s, x, self.gain_s) * self.coef_s_scale) @ self.psi_hat.T
        f = self.fields(strain)
        return torch.einsum("n,bnc->bc", self.w, f["sigma_law"]) / self.config.volume

    def fields(self, strain: torch.Tensor, coefficients: tuple[torch.Tensor, torch.Tensor] | None = None
               ) -> dict[str, torch.Tensor]:
        """Micro fields: ``u`` (B, n_dofs), ``eps``, ``sigma_law``, ``sigma_nn`` (B, N, 3), from the
        strains (B, 3) and their coefficients (default: :meth:`coefficients` of them)."""
        b_u, b_s = self.coefficients(strain) if coefficients is None else coefficients
        u = strain @ self.affine.T + b_u @ self.phi.T
        eps = strain[:, None, :] + torch.einsum("nck,bk->bnc", self.eps_phi, b_u)
        return {"u": u, "eps": eps, "sigma_law": law_stress(eps, self.params),
                "sigma_nn": torch.einsum("nck,bk->bnc", self.psi, b_s)}

    def loss(self, strain: torch.Tensor, coefficients: tuple[torch.Tensor, torch.Tensor] | None = None
             ) -> torch.Tensor:
        """Constitutive gap between σ_law and σ_NN (``config.loss``), averaged over the batch, per
        strain divided by its linear-response size (``config.relative``) or globally by
        stress_scale² (times the mean compliance for ``"cre"``), so that it is O(relative error²).
        ``coefficients`` as in :meth:`fields` (the trainer passes the output of ``forward``)."""
        f = self.fields(strain, coefficients)
        gap = f["sigma_law"] - f["sigma_nn"]
        c = self.config
        if c.loss == "mse":
            per = (gap ** 2).mean(dim=(1, 2))
            ref = ((strain @ self.tangent0.T) ** 2).mean(-1) if c.relative else None
            scale = self.stress_scale ** 2
        else:
            per = torch.einsum("n,bni,nij,bnj->b", self.w, gap, self.compliance, gap) / c.volume
            ref = torch.einsum("bi,ij,bj->b", strain, self.tangent0, strain) if c.relative else None
            scale = torch.einsum("n,nii->", self.w, self.compliance) / (3 * c.volume) * self.stress_scale ** 2
        if ref is None:
            return per.mean() / scale
        # ε̂ = 0 has a zero gap by construction (b(0) = 0): it contributes 0, not 0/0
        return torch.where(ref > 0, per / torch.where(ref > 0, ref, 1.0), 0.0).mean()

    def stress_and_tangent(self, strain: torch.Tensor, source: str = "nn") -> tuple[torch.Tensor, torch.Tensor]:
        """(σ̂ (B, 3), Ĉ (B, 3, 3)) in one batched ``vmap(jacrev)`` call."""
        return stress_and_tangent(lambda e: self.stress_hat(e, source), strain)

    def material(self, source: str = "nn") -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """A macro material callback ``ε̂ (N, 3) -> (σ̂, Ĉ)`` (see :func:`material`)."""
        return material(lambda e: self.stress_and_tangent(e, source), self.affine)

    def predict(self, strains: np.ndarray) -> dict[str, np.ndarray]:
        """Numpy (float64) fields of :meth:`fields` and ``stress_hat`` (from σ_NN) and
        ``stress_hat_law`` (from σ_law), (B, 3), for strains (B, 3)."""
        e = as_strains(strains, self.affine)
        with torch.no_grad():
            f = {k: v.double().cpu().numpy() for k, v in self.fields(e).items()}
            f["stress_hat"] = self.stress_hat(e, "nn").double().cpu().numpy()
        w = self.w.double().cpu().numpy()
        f["stress_hat_law"] = np.einsum("n,bnc->bc", w, f["sigma_law"]) / self.config.volume
        return f


def as_strains(strains: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """Strains (B, 3) (or (3,)) as a tensor with the dtype and device of ``like``."""
    return torch.as_tensor(np.asarray(strains, dtype=float).reshape(-1, 3), dtype=like.dtype, device=like.device)


def stress_and_tangent(stress_hat: Callable[[torch.Tensor], torch.Tensor], strain: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(σ̂ (B, 3), Ĉ = ∂σ̂/∂ε̂ (B, 3, 3)) of a map ε̂ (B, 3) -> σ̂ (B, 3) with no coupling
    across the batch, in one batched ``vmap(jacrev)`` call."""
    from torch.func import jacrev, vmap

    def one(e):
        s = stress_hat(e[None])[0]
        return s, s

    C, s = vmap(jacrev(one, has_aux=True))(strain)
    return s, C


def material(response: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], like: torch.Tensor
             ) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The macro material callback ``ε̂ (N, 3) -> (σ̂ (N, 3), Ĉ (N, 3, 3))`` in numpy float64 of a
    surrogate's batched ``response`` ε̂ -> (σ̂, Ĉ) (tensors of the dtype and device of ``like``)."""

    def call(strains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, C = response(as_strains(strains, like))
        return s.detach().double().cpu().numpy(), C.detach().double().cpu().numpy()

    return call


def linear_response(rve: RVE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The FE response of the RVE linearised at ε̂ = 0 (the unstrained state is the exact solution):
    with C₀ = ∂σ/∂ε(0) per point, K₀ = Tᵀ Bᵀ W C₀ B T and L₀ = Tᵀ Bᵀ W C₀ (columns e_j),

        X = −K₀⁻¹ L₀ (n_red, 3),  the reduced fluctuation of unit strain e_j (ũ(ε̂) ≈ T X ε̂),
        S (N, 3, 3),              σ = C₀ (e_j + B T X e_j), each column in discrete equilibrium,
        Ĉ₀ = (Σ w C₀ + L₀ᵀ X)/|Ω| (3, 3), the homogenised tangent at zero strain.

    These are the limits of FE snapshots as ε̂ → 0, scaled by 1/‖ε̂‖."""
    C0 = stress_tangent(np.zeros((rve.n_points, 3)), rve.params)[1]
    K0 = rve.op.stiffness(C0, rve.dofmap, rve.n_red)
    L0 = rve.op.force(C0, rve.dofmap, rve.n_red)
    X = -spl.splu(K0.tocsc()).solve(L0)
    eps = np.eye(3)[None] + rve.op.strain(rve.T @ X).transpose(0, 2, 1)  # (N, j, 3): strain of unit e_j
    S = np.einsum("nik,njk->nij", C0, eps)  # (N, 3 components, 3 strains)
    return X, S, (np.einsum("n,nij->ij", rve.op.w, C0) + L0.T @ X) / rve.volume


def snapshot_matrices(rve: RVE, solutions: Sequence[RVESolution]) -> tuple[np.ndarray, np.ndarray]:
    """(reduced fluctuations A (n_red, S), stresses Σ (3N, S)) of FE solutions."""
    A = np.stack([s.a for s in solutions], axis=1)
    Sig = np.stack([s.sigma.reshape(-1) for s in solutions], axis=1)
    return A, Sig


def build_equino(rve: RVE, solutions: Sequence[RVESolution], rank_u: int = 16, rank_s: int = 16,
                 width: int = 64, depth: int = 4, strain_scale: float = 0.04, loss: str = "cre",
                 relative: bool = True, linear_snapshots: bool = True) -> EquiNO:
    """An :class:`EquiNO` whose bases come from FE snapshots on ``rve`` (see the module docstring);
    with ``linear_snapshots`` the three snapshots of the linearised response at ε̂ = 0
    (:func:`linear_response`, at the snapshots' RMS strain size h) join them, and each branch
    is b = s ⊙ (G + N(x) − N(0)) x with G the energy-norm projection of the linearised response
    onto the modes (buffers ``gain_u``, ``gain_s``): the tangent at ε̂ = 0 is FE's up to the
    projection, the network learns the nonlinear part and starts from 0 (its last layer's
    weight is 0). The other branch weights are drawn from torch's global generator (seed it first)."""
    A, Sig = snapshot_matrices(rve, solutions)
    strains = np.stack([s.strain for s in solutions])
    X, S0, C0 = linear_response(rve)
    C0_points = stress_tangent(np.zeros((rve.n_points, 3)), rve.params)[1]
    if linear_snapshots:
        h = float(np.sqrt(np.mean(np.sum(strains ** 2, axis=1))))
        A = np.concatenate([A, h * X], axis=1)
        Sig = np.concatenate([Sig, h * S0.reshape(-1, 3)], axis=1)
        strains = np.concatenate([strains, h * np.eye(3)])
    mult = np.asarray(rve.T.sum(axis=0)).ravel()  # TᵀT = diag(mult)
    Ured, coef_u = pod(np.sqrt(mult)[:, None] * A, rank_u)
    phi = rve.T @ (Ured / np.sqrt(mult)[:, None])
    psi_flat, coef_s = pod(Sig, rank_s)
    psi = equilibrate(rve, psi_flat.reshape(rve.n_points, 3, -1))
    eps_phi = rve.op.strain(phi)
    cfg = EquiNOConfig(rve.n_dofs, rve.n_points, phi.shape[1], psi.shape[2], width, depth, strain_scale,
                       rve.volume, loss, relative, linear_snapshots)
    model = EquiNO(cfg)
    x_rms = np.sqrt(np.mean(np.sum((strains / strain_scale) ** 2, axis=1)))
    values = {"phi": phi, "eps_phi": eps_phi, "psi": psi,
              "psi_hat": np.einsum("n,nck->ck", rve.op.w, psi) / rve.volume,
              "affine": np.stack([rve.affine(e) for e in np.eye(3)], axis=1), "params": rve.params,
              "w": rve.op.w, "compliance": np.linalg.inv(C0_points),
              "tangent0": C0,
              "coef_u_scale": np.sqrt(np.mean(coef_u ** 2, axis=1)) / x_rms + 1e-12,
              "coef_s_scale": np.sqrt(np.mean(coef_s ** 2, axis=1)) / x_rms + 1e-12,
              "stress_scale": np.sqrt(np.mean(Sig ** 2))}
    with torch.no_grad():
        for name, v in values.items():
            getattr(model, name).copy_(torch.as_tensor(np.asarray(v), dtype=torch.float64))
        if linear_snapshots:  # G = the linearised response; N − N(0) starts at 0 (last weight 0)
            # its energy-norm projections onto the modes: b_u = (Φᵀ K₀ Φ)⁻¹ Φᵀ K₀ T X ε̂ (K₀ = Σ Bᵀ W C₀ B) and
            # b_s = (Ψᵀ W S Ψ)⁻¹ Ψᵀ W S S₀ ε̂ (S = C₀⁻¹ per point), the norms the loss and the solve minimise
            K0 = rve.op.stiffness(C0_points)
            KPhi = K0 @ phi
            lin_u = np.linalg.solve(phi.T @ KPhi, KPhi.T @ (rve.T @ X))
            Wpsi = np.einsum("n,nij,njk->nik", rve.op.w, values["compliance"], psi).reshape(-1, psi.shape[2])
            flat = psi.reshape(-1, psi.shape[2])
            lin_s = np.linalg.solve(flat.T @ Wpsi, Wpsi.T @ S0.transpose(0, 1, 2).reshape(-1, 3))
            for gain, net, lin, scale in ((model.gain_u, model.branch_u, lin_u, values["coef_u_scale"]),
                                          (model.gain_s, model.branch_s, lin_s, values["coef_s_scale"])):
                gain.copy_(torch.as_tensor(lin * strain_scale / scale[:, None]))
                net[-1].weight.zero_()
    return model


def relative_errors(rve: RVE, pred: dict[str, np.ndarray], solutions: Sequence[RVESolution],
                    sigma_key: str = "sigma_nn") -> dict[str, np.ndarray]:
    """Per-sample relative L2(Ω) errors (quadrature with the snapshot weights):
    ``u`` (total displacement at the quadrature points), ``sigma`` (all 3 components),
    ``sigma_xx``, ``sigma_yy``, ``sigma_xy`` (of ``pred[sigma_key]``) and ``stress_hat``
    (Euclidean over 3 components, from ``pred["stress_hat"]``). Missing predictions are skipped."""
    w = rve.op.w
    out: dict[str, list] = {}

    def rel(a, b):
        return float(np.sqrt(np.sum(w @ (a - b).reshape(len(w), -1) ** 2) / np.sum(w @ b.reshape(len(w), -1) ** 2)))

    for i, sol in enumerate(solutions):
        if "u" in pred:
            out.setdefault("u", []).append(rel(rve.op.values(pred["u"][i]), rve.op.values(sol.u)))
        if sigma_key in pred:
            out.setdefault("sigma", []).append(rel(pred[sigma_key][i], sol.sigma))
            for c, name in enumerate(("sigma_xx", "sigma_yy", "sigma_xy")):
                out.setdefault(name, []).append(rel(pred[sigma_key][i][:, c], sol.sigma[:, c]))
        if "stress_hat" in pred:
            out.setdefault("stress_hat", []).append(
                float(np.linalg.norm(pred["stress_hat"][i] - sol.stress) / np.linalg.norm(sol.stress)))
    return {k: np.asarray(v) for k, v in out.items()}


__all__ = ["EquiNO", "EquiNOConfig", "as_strains", "build_equino", "equilibrate", "law_energy", "linear_response",
           "law_stress", "material", "pod", "relative_errors", "snapshot_matrices", "stress_and_tangent",
           "through_zero"]
