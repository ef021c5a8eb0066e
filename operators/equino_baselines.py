r"""Baselines for EquiNO on the same RVE data.

**Black box** (``"rve_blackbox"``): an MLP ε̂ ↦ σ̂, σ̂ = s_σ N(x) x with
x = ε̂/strain_scale and N(x) a 3 × 3 secant matrix (exactly σ̂(0) = 0, see
:func:`~graphfem.operators.equino.through_zero`), trained on FE labels with a
Sobolev loss on σ̂ and the tangent,

    L = mean ‖σ̂_NN − σ̂_FE‖² / s_σ² + λ mean ‖∂σ̂_NN/∂ε̂ − Ĉ_FE‖² / s_C²,

Ĉ by autograd in training (:func:`sobolev_loss`) and by ``torch.func`` Jacobians
in inference. It gives σ̂ and Ĉ only, no micro fields.

**VPIONet-style DeepONet** (``"rve_vpionet"``): fluctuation
ũ_c(x) = Σ_k β_{c,k}(ε̂) τ_k(x) − (same at the pinned corner), β = N(ε̂/s) ε̂/s
(exactly 0 at ε̂ = 0, so u(0) = 0 and σ̂(0) = 0), with a trunk τ
fed periodic features cos/sin(2π (m·x)/L) (|m_i| ≤ n_harmonics), so ũ is
periodic for every input; it is evaluated at the FE dofs and
differentiated with the FE B matrix. Loss: the potential energy
Π = (1/|Ω|) Σ_ip W(ε̂ + B ũ) w_ip (no labels); its stationary point is weak
equilibrium in the network's span only. σ = σ(ε(u)) by the material law.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from graphfem.physics.rve import RVE, RVESolution

from .equino import as_strains, law_energy, law_stress, material, stress_and_tangent, through_zero
from .layers import MLP
from .registry import register


@dataclass
class BlackBoxConfig:
    """width/depth of the MLP, input scale, output stress scale."""

    width: int = 64
    depth: int = 4
    strain_scale: float = 0.04
    stress_scale: float = 100.0


@register("rve_blackbox")
class BlackBox(nn.Module):
    """σ̂ = stress_scale · N(x) x, x = ε̂ / strain_scale, N an MLP 3 → 3 × 3. Shapes: (B, 3) -> (B, 3)."""

    Config = BlackBoxConfig

    def __init__(self, config: BlackBoxConfig):
        super().__init__()
        self.config = config
        self.net = MLP(3, config.width, 9, n_layers=config.depth + 1, layer_norm=False).double()

    def stress_hat(self, strain: torch.Tensor) -> torch.Tensor:
        """σ̂ (B, 3), exactly 0 at ε̂ = 0."""
        return self.config.stress_scale * through_zero(self.net, strain / self.config.strain_scale, 3)

    def forward(self, strain: torch.Tensor) -> torch.Tensor:
        return self.stress_hat(strain)

    def stress_and_tangent(self, strain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(σ̂ (B, 3), Ĉ (B, 3, 3)) in one batched ``vmap(jacrev)`` call."""
        return stress_and_tangent(self.stress_hat, strain)

    def material(self) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """A macro material callback ``ε̂ (N, 3) -> (σ̂, Ĉ)`` (:func:`~graphfem.operators.equino.material`)."""
        return material(self.stress_and_tangent, next(self.parameters()))

    def predict(self, strains: np.ndarray) -> dict[str, np.ndarray]:
        """``stress_hat`` (B, 3) in numpy float64 for strains (B, 3)."""
        e = as_strains(strains, next(self.parameters()))
        with torch.no_grad():
            return {"stress_hat": self.stress_hat(e).double().cpu().numpy()}


def sobolev_loss(net: Callable[[torch.Tensor], torch.Tensor], strain: torch.Tensor, stress: torch.Tensor,
                 tangent: torch.Tensor, stress_scale: float, tangent_scale: float, tangent_weight: float = 1.0
                 ) -> torch.Tensor:
    """mean ‖σ̂ − σ̂_FE‖² / s_σ² + λ mean ‖∂σ̂/∂ε̂ − Ĉ_FE‖² / s_C² of a map ε̂ (B, 3) -> σ̂ (B, 3)
    with no coupling across the batch (called as ``net(strain)``: the tangent rows are
    ∂(Σ_b σ̂_b,i)/∂ε̂, by autograd with ``create_graph``).

    Shapes: strain, stress (B, 3); tangent (B, 3, 3)."""
    e = strain.detach().requires_grad_(True)
    s = net(e)
    C = torch.stack([torch.autograd.grad(s[:, i].sum(), e, create_graph=True)[0] for i in range(3)], dim=1)
    return ((s - stress) ** 2).mean() / stress_scale ** 2 + tangent_weight * ((C - tangent) ** 2).mean() / \
        tangent_scale ** 2


@dataclass
class VPIONetConfig:
    """Sizes of :class:`VPIONet`; the FE operators are buffers (filled by :func:`build_vpionet`)."""

    n_dofs: int
    n_points: int
    n_basis: int = 32
    width: int = 64
    depth: int = 4
    n_harmonics: int = 2
    strain_scale: float = 0.04
    volume: float = 1.0
    length_x: float = 1.0
    length_y: float = 1.0
    nnz_b: int = 0


@register("rve_vpionet")
class VPIONet(nn.Module):
    """DeepONet with a periodic trunk and an energy loss (see the module docstring).

    Shapes: strain (B, 3) -> u (B, n_dofs); :meth:`fields` adds eps, sigma_law (B, N, 3).
    """

    Config = VPIONetConfig

    def __init__(self, config: VPIONetConfig):
        super().__init__()
        self.config = config
        c = config
        m = np.arange(-c.n_harmonics, c.n_harmonics + 1)
        waves = np.array([(i, j) for i in m for j in m if (i, j) > (0, 0) or (i == 0 and j > 0)], dtype=float)
        self.register_buffer("waves", torch.as_tensor(waves))
        self.branch = MLP(3, c.width, 6 * c.n_basis, n_layers=c.depth + 1, layer_norm=False).double()
        self.trunk = MLP(2 * len(waves), c.width, c.n_basis, n_layers=c.depth + 1, layer_norm=False).double()
        dt = torch.float64
        for name, shape in (("dof_x", (c.n_dofs, 2)), ("component", (c.n_dofs,)), ("pinned", (c.n_dofs,)),
                            ("affine", (c.n_dofs, 3)), ("params", (c.n_points, 4)), ("w", (c.n_points,)),
                            ("b_rows", (c.nnz_b,)), ("b_cols", (c.nnz_b,)), ("b_vals", (c.nnz_b,)), ("u_scale", ())):
            self.register_buffer(name, torch.zeros(shape, dtype=dt))

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        L = torch.tensor([self.config.length_x, self.config.length_y], dtype=x.dtype, device=x.device)
        phase = 2 * np.pi * (x / L) @ self.waves.T
        return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)

    def _B(self) -> torch.Tensor:
        """The FE strain matrix, dense (built once from the COO buffers; faster than torch's
        sparse products here, and small for RVE meshes)."""
        key = (self.b_vals.data_ptr(), self.b_vals.numel(), self.b_vals.dtype)
        if getattr(self, "_B_key", None) != key:
            B = torch.zeros(3 * self.config.n_points, self.config.n_dofs, dtype=self.b_vals.dtype,
                            device=self.b_vals.device)
            B.index_put_((self.b_rows.long(), self.b_cols.long()), self.b_vals, accumulate=True)
            self._B_cache = B
            self._B_key = key
        return self._B_cache

    def displacement(self, strain: torch.Tensor) -> torch.Tensor:
        """Total displacement at the dofs (B, n_dofs)."""
        c = self.config
        t = self.trunk(self._features(self.dof_x))  # (n_dofs, p)
        t = t - t[self.pinned.bool()][:1]  # zero at the pinned corner (both components share locations)
        beta = through_zero(self.branch, strain / c.strain_scale, 2 * c.n_basis).reshape(-1, 2, c.n_basis)  # (B, 2, p)
        comp = self.component.long()
        fluct = torch.einsum("np,bnp->bn", t, beta[:, comp, :])
        return strain @ self.affine.T + self.u_scale * fluct

    def strain_of(self, u: torch.Tensor) -> torch.Tensor:
        """ε = B u (B, N, 3) at the quadrature points of displacements u (B, n_dofs)."""
        return (self._B() @ u.T).T.reshape(len(u), -1, 3)

    def strain(self, strain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u (B, n_dofs), ε (B, N, 3)) at the dofs and quadrature points."""
        u = self.displacement(strain)
        return u, self.strain_of(u)

    def fields(self, strain: torch.Tensor) -> dict[str, torch.Tensor]:
        u, eps = self.strain(strain)
        return {"u": u, "eps": eps, "sigma_law": law_stress(eps, self.params)}

    def forward(self, strain: torch.Tensor) -> torch.Tensor:
        """The total displacement (B, n_dofs) of :meth:`displacement`."""
        return self.displacement(strain)

    def loss(self, strain: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
        """Potential energy (1/|Ω|) Σ_ip W(ε(u)) w of the displacements ``u`` (B, n_dofs) (default:
        :meth:`displacement` of ``strain``; the trainer passes the output of ``forward``), averaged
        over the batch, relative to the energy of the affine state."""
        eps = self.strain_of(self.displacement(strain) if u is None else u)
        energy = torch.einsum("n,bn->b", self.w, law_energy(eps, self.params))
        ref = torch.einsum("n,bn->b", self.w, law_energy(strain[:, None, :].expand(-1, self.config.n_points, 3),
                                                          self.params))
        return (energy / ref.detach()).mean()

    def stress_hat(self, strain: torch.Tensor) -> torch.Tensor:
        """σ̂ = (1/|Ω|) Σ_ip σ(ε(u)) w (B, 3)."""
        return torch.einsum("n,bnc->bc", self.w, self.fields(strain)["sigma_law"]) / self.config.volume

    def stress_and_tangent(self, strain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(σ̂ (B, 3), Ĉ (B, 3, 3)) in one batched ``vmap(jacrev)`` call."""
        return stress_and_tangent(self.stress_hat, strain)

    def material(self) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """A macro material callback ``ε̂ (N, 3) -> (σ̂, Ĉ)`` (:func:`~graphfem.operators.equino.material`)."""
        return material(self.stress_and_tangent, self.affine)

    def predict(self, strains: np.ndarray) -> dict[str, np.ndarray]:
        """Numpy (float64) ``u``, ``eps``, ``sigma_law`` of :meth:`fields` and ``stress_hat``, for strains (B, 3)."""
        e = as_strains(strains, self.affine)
        with torch.no_grad():
            f = {k: v.double().cpu().numpy() for k, v in self.fields(e).items()}
        w = self.w.double().cpu().numpy()
        f["stress_hat"] = np.einsum("n,bnc->bc", w, f["sigma_law"]) / self.config.volume
        return f


def build_vpionet(rve: RVE, solutions: list[RVESolution] | None = None, n_basis: int = 32, width: int = 64,
                  depth: int = 4, n_harmonics: int = 2, strain_scale: float = 0.04) -> VPIONet:
    """A :class:`VPIONet` on the RVE's dofs and quadrature; ``solutions`` only set the fluctuation
    scale. The weights are drawn from torch's global generator (seed it first)."""
    B = rve.op.matrix().tocoo()
    cfg = VPIONetConfig(rve.n_dofs, rve.n_points, n_basis, width, depth, n_harmonics, strain_scale, rve.volume,
                        float(rve.length[0]), float(rve.length[1]), int(B.nnz))
    model = VPIONet(cfg)
    pinned = np.zeros(rve.n_dofs)
    pinned[rve.pinned] = 1.0
    scale = (np.sqrt(np.mean([np.mean(s.fluctuation ** 2) for s in solutions])) if solutions else
             1e-2 * strain_scale)
    values = {"dof_x": rve.dof_points, "component": rve.component, "pinned": pinned,
              "affine": np.stack([rve.affine(e) for e in np.eye(3)], axis=1), "params": rve.params, "w": rve.op.w,
              "b_rows": B.row, "b_cols": B.col, "b_vals": B.data, "u_scale": scale}
    for name, v in values.items():
        setattr(model, name, torch.as_tensor(np.asarray(v, dtype=float)))
    return model


__all__ = ["BlackBox", "BlackBoxConfig", "VPIONet", "VPIONetConfig", "build_vpionet", "sobolev_loss"]
