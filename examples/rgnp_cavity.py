"""RGNP on the lid-driven cavity: the mean ± 2σ band of the velocity against the Taylor–Hood reference.

Takes a model trained with examples/rgnp_cavity.yaml (``graphfem train``), solves the cavity
at (ν, w) with the project's FE flow solver (``graphfem solve lid-cavity``'s solver, 32 × 32 × 2
triangles, P2–P1) and draws u along the vertical centreline x = 0.5 and v along the horizontal
centreline y = 0.5 (RGNP mean, ±2σ band, FE), and the stream function of both.

    python examples/rgnp_cavity.py runs/rgnp_cavity/model.safetensors [NU] [LID]
        # writes examples/figures/rgnp_cavity.png (seconds)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(model_path: Path | str, out: Path | str = HERE / "figures", viscosity: float = 0.035, lid: float = 0.9,
         resolution: int = 32) -> dict:
    """Draw the figure; returns the velocity's ``rel_l2`` (P1 mass norm at the FE nodes),
    ``coverage`` (interior node components inside ±2σ) and the ``figure`` path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from graphfem.checkpoint import load_model
    from graphfem.families.rgnp import check_inputs, field_at, velocity_at
    from graphfem.meshes import FESpace, Mesh
    from graphfem.physics.lid_cavity import lid_cavity

    model, _ = load_model(model_path)
    model.eval()
    z = np.array([viscosity])
    check_inputs(model, z, lid, model_path)
    fe = lid_cavity(Mesh.rectangle(resolution), viscosity, lid)
    pts = fe.mesh.points[:, :2]
    mean, std = velocity_at(model, pts, z, lid)
    ref = fe.fields["velocity"]
    M = FESpace(fe.mesh, order=1).mass()
    e = mean - ref
    rel = float(np.sqrt(sum(e[:, c] @ (M @ e[:, c]) for c in range(2)) / sum(ref[:, c] @ (M @ ref[:, c])
                                                                           for c in range(2))))
    inner = ((pts > 1e-12) & (pts < 1 - 1e-12)).all(1)
    coverage = float(np.mean(np.abs(e[inner]) <= 2 * std[inner]))

    s = np.linspace(0, 1, 201)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    for ax, comp, line, label in ((axes[0], 0, np.stack([0.5 + 0 * s, s], 1), "u along x = 0.5"),
                                  (axes[1], 1, np.stack([s, 0.5 + 0 * s], 1), "v along y = 0.5")):
        m, sd = velocity_at(model, line, z, lid)
        want = fe.velocity_at(line)[:, comp]
        ax.fill_between(s, m[:, comp] - 2 * sd[:, comp], m[:, comp] + 2 * sd[:, comp], color="C0", alpha=0.3,
                        label="RGNP mean ± 2σ")
        ax.plot(s, m[:, comp], "C0", lw=1.5, label="RGNP mean")
        ax.plot(s, want, "k--", lw=1.2, label=f"FE (Taylor–Hood, {resolution}² × 2 cells)")
        ax.axhline(0, color="0.6", lw=0.8)
        ax.set_xlabel("y (m)" if comp == 0 else "x (m)")
        ax.set_ylabel(f"{'u' if comp == 0 else 'v'} (m/s)")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    ax = axes[2]
    g = np.linspace(0, 1, 81)
    X, Y = np.meshgrid(g, g)
    grid = np.stack([X.ravel(), Y.ravel()], 1)
    psi_model = field_at(model, grid, z, lid)[0].reshape(X.shape)
    psi_fe = (fe.flow.scalar.probe(grid) @ fe.dofs["stream"]).reshape(X.shape)
    levels = np.linspace(min(psi_fe.min(), psi_model.min()), 0, 9)[:-1]
    ax.contour(X, Y, psi_fe, levels=levels, colors="k", linestyles="--", linewidths=1.0)
    ax.contour(X, Y, psi_model, levels=levels, colors="C0", linestyles="solid", linewidths=1.2)
    ax.plot([], [], "k--", label="FE")
    ax.plot([], [], "C0", label="RGNP mean")
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(f"stream function ψ (m²/s), levels {levels[0]:.3f} .. {levels[-1]:.3f}", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"RGNP, lid-driven cavity, ν = {viscosity:g} m²/s, lid {lid:g} m/s (Re = {lid / viscosity:.1f}): "
                 f"velocity rel-L2 {rel:.3f}, {100 * coverage:.0f} % of interior FE node components inside ±2σ",
                 fontsize=11)
    fig.tight_layout()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figure = out / "rgnp_cavity.png"
    fig.savefig(figure, dpi=110)
    plt.close(fig)
    return {"rel_l2": rel, "coverage": coverage, "figure": figure}


if __name__ == "__main__":
    args = sys.argv[1:]
    print(main(args[0], HERE / "figures", *(float(a) for a in args[1:3])))
