r"""Baselines for EquiNO on the same RVE data.

**Black box** (``"rve_blackbox"``): an MLP ε̂ ↦ σ̂ trained on FE labels with a
Sobolev loss on σ̂ and the tangent,

    L = mean ‖σ̂_NN − σ̂_FE‖² / s_σ² + λ mean ‖∂σ̂_NN/∂ε̂ − Ĉ_FE‖² / s_C²,

Ĉ by ``torch.func`` Jacobians. It gives σ̂ and Ĉ only, no micro fields.

**VPIONet-style DeepONet** (``"rve_vpionet"``): fluctuation
ũ_c(x) = Σ_k β_{c,k}(ε̂) τ_k(x) − (same at the pinned corner), with a trunk τ
fed periodic features cos/sin(2π (m·x)/L) (|m_i| ≤ n_harmonics), so ũ is
periodic for every input; it is evaluated at the FE dofs and
differentiated with the FE B matrix. Loss: the potential energy
Π = (1/|Ω|) Σ_ip W(ε̂ + B ũ) w_ip (no labels); its stationary point is weak
equilibrium in the network's span only. σ = σ(ε(u)) by the material law.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from graphfem.physics.rve import RVE, RVESolution

from .equino import law_energy, law_stress
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
    """σ̂ = stress_scale · MLP(ε̂ / strain_scale). Shapes: (B, 3) -> (B, 3)."""

    Config = BlackBoxConfig

    def __init__(self, config: BlackBoxConfig):
        super().__init__()
        self.config = config
        self.net = MLP(3, config.width, 3, n_layers=config.depth + 1, layer_norm=False).double()

    def stress_hat(self, strain: torch.Tensor) -> torch.Tensor:
        return self.config.stress_scale * self.net(strain / self.config.strain_scale)

    def forward(self, strain: torch.Tensor) -> torch.Tensor:
        return self.stress_hat(strain)

    def stress_and_tangent(self, strain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from torch.func import jacrev, vmap

        def one(e):
            s = self.stress_hat(e[None])[0]
            return s, s

        C, s = vmap(jacrev(one, has_aux=True))(strain)
        return s, C

    def predict(self, strains: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {"stress_hat": self.stress_hat(torch.as_tensor(strains, dtype=torch.float64)).numpy()}


def blackbox_loss(solutions: list[RVESolution], tangent_weight: float = 1.0):
    """Sobolev loss on (σ̂, Ĉ) of the FE solutions, for :func:`graphfem.operators.equino.fit`
    (called with the indices of the solutions as "strains")."""
    S = torch.as_tensor(np.stack([s.stress for s in solutions]))
    Cs = torch.as_tensor(np.stack([s.tangent for s in solutions]))
    E = torch.as_tensor(np.stack([s.strain for s in solutions]))
    s_sig, s_C = S.pow(2).mean().sqrt(), Cs.pow(2).mean().sqrt()

    def loss(model: BlackBox, idx: torch.Tensor) -> torch.Tensor:
        i = idx[:, 0].long()
        s, C = model.stress_and_tangent(E[i])
        return ((s - S[i]) ** 2).mean() / s_sig ** 2 + tangent_weight * ((C - Cs[i]) ** 2).mean() / s_C ** 2

    return loss


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
        self.branch = MLP(3, c.width, 2 * c.n_basis, n_layers=c.depth + 1, layer_norm=False).double()
        self.trunk = MLP(2 * len(waves), c.width, c.n_basis, n_layers=c.depth + 1, layer_norm=False).double()
        dt = torch.float64
        for name, shape in (("dof_x", (c.n_dofs, 2)), ("component", (c.n_dofs,)), ("pinned", (c.n_dofs,)),
                            ("affine", (c.n_dofs, 3)), ("params", (c.n_points, 4)), ("w", (c.n_points,)),
                            ("b_rows", (c.nnz_b,)), ("b_cols", (c.nnz_b,)), ("b_vals", (c.nnz_b,)), ("u_scale", ())):
            self.register_buffer(name, torch.zeros(shape, dtype=dt))

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        L = torch.tensor([self.config.length_x, self.config.length_y], dtype=x.dtype)
        phase = 2 * np.pi * (x / L) @ self.waves.T
        return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)

    def _B(self) -> torch.Tensor:
        """The FE strain matrix, dense (built once from the COO buffers; faster than torch's
        sparse products here, and small for RVE meshes)."""
        key = (self.b_vals.data_ptr(), self.b_vals.numel())
        if getattr(self, "_B_key", None) != key:
            B = torch.zeros(3 * self.config.n_points, self.config.n_dofs, dtype=torch.float64)
            B.index_put_((self.b_rows.long(), self.b_cols.long()), self.b_vals, accumulate=True)
            self._B_cache = B
            self._B_key = key
        return self._B_cache

    def displacement(self, strain: torch.Tensor) -> torch.Tensor:
        """Total displacement at the dofs (B, n_dofs)."""
        c = self.config
        t = self.trunk(self._features(self.dof_x))  # (n_dofs, p)
        t = t - t[self.pinned.bool()][:1]  # zero at the pinned corner (both components share locations)
        beta = self.branch(strain / c.strain_scale).reshape(-1, 2, c.n_basis)  # (B, 2, p)
        comp = self.component.long()
        fluct = torch.einsum("np,bnp->bn", t, beta[:, comp, :])
        return strain @ self.affine.T + self.u_scale * fluct

    def strain(self, strain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u (B, n_dofs), ε (B, N, 3)) at the dofs and quadrature points."""
        u = self.displacement(strain)
        return u, (self._B() @ u.T).T.reshape(len(strain), -1, 3)

    def fields(self, strain: torch.Tensor) -> dict[str, torch.Tensor]:
        u, eps = self.strain(strain)
        return {"u": u, "eps": eps, "sigma_law": law_stress(eps, self.params)}

    def forward(self, strain: torch.Tensor) -> torch.Tensor:
        return self.displacement(strain)

    def loss(self, strain: torch.Tensor) -> torch.Tensor:
        """Potential energy (1/|Ω|) Σ_ip W w, averaged over the batch, relative to the affine energy."""
        eps = self.strain(strain)[1]
        energy = torch.einsum("n,bn->b", self.w, law_energy(eps, self.params))
        ref = torch.einsum("n,bn->b", self.w, law_energy(strain[:, None, :].expand(-1, self.config.n_points, 3),
                                                          self.params))
        return (energy / ref.detach()).mean()

    def predict(self, strains: np.ndarray) -> dict[str, np.ndarray]:
        e = torch.as_tensor(np.asarray(strains, dtype=float).reshape(-1, 3))
        with torch.no_grad():
            f = {k: v.numpy() for k, v in self.fields(e).items()}
        f["stress_hat"] = np.einsum("n,bnc->bc", self.w.numpy(), f["sigma_law"]) / self.config.volume
        return f


def build_vpionet(rve: RVE, solutions: list[RVESolution] | None = None, n_basis: int = 32, width: int = 64,
                  depth: int = 4, n_harmonics: int = 2, strain_scale: float = 0.04, seed: int = 0) -> VPIONet:
    """A :class:`VPIONet` on the RVE's dofs and quadrature; ``solutions`` only set the fluctuation scale."""
    torch.manual_seed(seed)
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


__all__ = ["BlackBox", "BlackBoxConfig", "VPIONet", "VPIONetConfig", "blackbox_loss", "build_vpionet"]
