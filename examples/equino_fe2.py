"""FE² with EquiNO (FE-OL) against the true FE² reference, on a cantilever.

The RVE: two inclusions of this example's own (an inclined ellipse and a
disc, 8 × 8 S2 quads, written as ``cell.vtu``), 20 + 2 FE snapshots of
``graphfem generate rve``; EquiNO trained by the engine's trainer (rank 8,
64 collocation strains sampled along rays from zero strain, the relative
constitutive gap, the linearised snapshots; 500 Adam + 1000 L-BFGS
iterations, float64). The macro problem, held out from training: a 2 × 1
plane-strain cantilever (8 × 4 quads) clamped on the left, its right end
moved down by 3 % of the height in two load steps: bending, so the macro
strains range from zero at the neutral axis to about 0.8 %. Solved with FE-OL
(σ̂ from σ_NN) and with nested RVE solves at every macro quadrature point.

Writes the VTUs and ``equino_fe2.png``: macro σ_xx by FE², the FE-OL − FE²
cell stress difference, σ̂ of EquiNO at the FE² macro points against the FE
homogenised stress there (per point, against the strain size), and the micro
σ_NN,xx at the most strained macro point. Returns the measured numbers.

    python examples/equino_fe2.py [OUTPUT_FOLDER]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

#: the RVE of this example: an inclined ellipse and a disc (not a preset)
INCLUSIONS = (((-0.2, 0.15), 0.22, 0.12, 0.8), ((0.25, -0.2), 0.16, None, 0.0))


def main(output: str | Path = "equino-fe2", lbfgs_iterations: int = 1000) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import TwoSlopeNorm

    from graphfem.cli.fe2 import load_model, run_fe2, write_fe2
    from graphfem.datasets.generate import generate
    from graphfem.families.equino import train_config
    from graphfem.meshes import Mesh
    from graphfem.physics.rve import RVE, Inclusion, rve_mesh
    from graphfem.training.trainer import train

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    rve = rve_mesh(8, [Inclusion(*spec) for spec in INCLUSIONS])
    rve.write(out / "cell.vtu")
    data = generate("rve", 22, out / "rve.h5", geometry=str(out / "cell.vtu"), progress=False)
    start = time.perf_counter()
    train(train_config(str(data), str(out / "run"), "equino", rank=8, collocation=64, adam_steps=500,
                       lbfgs_iterations=lbfgs_iterations, val_fraction=2 / 22, test_fraction=0.0))
    train_s = time.perf_counter() - start
    model, meta = load_model(out / "run" / "model.safetensors")
    cell = RVE(rve)
    macro = Mesh.rectangle(8, 4, 0.0, 2.0, 0.0, 1.0, cell="quad")
    bc = dict(fixed={"left": None}, displacement={"right": ("y", -0.03)}, steps=2)
    model.material("nn")(np.zeros((1, 3)))  # first torch.func call: tracing, not solving
    start = time.perf_counter()
    ol, micro_ol = run_fe2(macro, cell, model, **bc)
    t_ol = time.perf_counter() - start
    point = next(iter(micro_ol))
    start = time.perf_counter()
    ref, micro_ref = run_fe2(macro, cell, None, micro_at=[point], **bc)
    t_ref = time.perf_counter() - start
    write_fe2(out / "fe_ol.vtu", ol, cell, micro_ol)
    write_fe2(out / "fe2_reference.vtu", ref, cell, micro_ref)
    cs_ol, cs_ref = ol.cell_stress(), ref.cell_stress()
    pred = model.predict(ref.eps)
    norm = np.linalg.norm(ref.sigma, axis=1)
    err = {k: np.linalg.norm(pred[k] - ref.sigma, axis=1) / norm for k in ("stress_hat", "stress_hat_law")}
    report = {"train_seconds": train_s, "fe_ol_seconds": t_ol, "fe2_seconds": t_ref,
              "displacement_difference": float(np.linalg.norm(ol.u - ref.u) / np.linalg.norm(ref.u)),
              "stress_difference": float(np.linalg.norm(cs_ol - cs_ref) / np.linalg.norm(cs_ref)),
              "stress_hat_median": float(np.median(err["stress_hat"])), "stress_hat_max": float(err["stress_hat"].max()),
              "stress_hat_law_median": float(np.median(err["stress_hat_law"])),
              "stress_hat_law_max": float(err["stress_hat_law"].max()),
              "stress_hat_at_zero": model.predict(np.zeros((1, 3)))["stress_hat"][0].tolist(),
              "macro_strain_max": float(np.abs(ref.eps).max()),
              "validation_sigma_error": meta["provenance"]["val_rel_l2_sigma"]}

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    cells = macro.points[macro.cells]

    def field(ax, values, title, label):
        lim = float(np.abs(values).max())
        polys = PolyCollection(cells, array=values, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -lim, lim),
                               edgecolors="k", linewidths=0.3)
        ax.add_collection(polys)
        fig.colorbar(polys, ax=ax, label=label, shrink=0.8)
        ax.autoscale_view()
        ax.set_aspect("equal")
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
        ax.set_title(title)

    field(axes[0, 0], cs_ref[:, 0], "macro σ_xx, FE² reference (cell means)", "σ_xx (MPa)")
    field(axes[0, 1], cs_ol[:, 0] - cs_ref[:, 0],
          f"FE-OL − FE², σ_xx (all cells and components: {100 * report['stress_difference']:.2f} %)", "Δσ_xx (MPa)")
    ax = axes[1, 0]
    size = np.linalg.norm(ref.eps, axis=1)
    ax.semilogy(size, 100 * err["stress_hat"], "o", ms=4, label="σ̂ from σ_NN (FE-OL)")
    ax.semilogy(size, 100 * err["stress_hat_law"], "x", ms=4, label="σ̂ from σ_law")
    ax.axhline(2.0, color="k", ls="--", lw=0.8, label="2 %")
    ax.set_xlabel("‖ε̂‖ at the FE² macro point")
    ax.set_ylabel("‖σ̂_EquiNO − σ̂_FE‖ / ‖σ̂_FE‖ (%)")
    ax.set_title(f"EquiNO σ̂ at the {len(size)} macro points (median {100 * report['stress_hat_median']:.2f} %)")
    ax.legend()
    ax.grid(True, which="both", lw=0.3)
    m = cell.mesh
    micro = cell.cell_average(micro_ol[point][1])[:, 0]
    lim = float(np.abs(micro).max())
    polys = PolyCollection(m.points[m.cells], array=micro, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -lim, lim),
                           edgecolors="none")
    axes[1, 1].add_collection(polys)
    fig.colorbar(polys, ax=axes[1, 1], label="σ_xx (MPa)", shrink=0.8)
    axes[1, 1].autoscale_view()
    axes[1, 1].set_aspect("equal")
    axes[1, 1].set_xlabel("x (mm)")
    axes[1, 1].set_ylabel("y (mm)")
    axes[1, 1].set_title(f"micro σ_NN,xx at macro point {point} (EquiNO)")
    fig.tight_layout()
    fig.savefig(out / "equino_fe2.png", dpi=100)
    plt.close(fig)
    print(f"EquiNO trained in {train_s:.1f} s; FE-OL {t_ol:.3f} s, FE² {t_ref:.1f} s; sigma_hat at the macro points "
          f"median {100 * report['stress_hat_median']:.2f} %, max {100 * report['stress_hat_max']:.2f} % "
          f"(from sigma_law {100 * report['stress_hat_law_median']:.2f} %, {100 * report['stress_hat_law_max']:.2f} %); "
          f"macro cell-stress difference {100 * report['stress_difference']:.2f} %, displacement "
          f"{100 * report['displacement_difference']:.2f} %; wrote {out}")
    return report


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "equino-fe2")
