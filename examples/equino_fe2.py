"""FE² with EquiNO (FE-OL) against the true FE² reference, on a small problem.

Generates FE snapshots of one RVE (8 × 8 S2 quads, a central disc;
``graphfem generate rve``: 20 for training and 2 for validation), trains a
small EquiNO with the engine's trainer (rank 8, 64 collocation strains,
500 Adam + 300 L-BFGS iterations, float64: ``examples/equino.yaml``), solves
the quarter plate with a hole (plane strain, top pulled by 1 %) with FE-OL
and with nested RVE solves at every macro quadrature point, and writes VTUs
and a PNG of the macro stress σ_yy and the micro stress σ_yy at the most
strained macro point.

    python examples/equino_fe2.py [OUTPUT_FOLDER]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np


def main(output: str | Path = "equino-fe2") -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    from graphfem.cli.fe2 import load_model, run_fe2, write_fe2
    from graphfem.datasets.generate import generate
    from graphfem.families.equino import train_config
    from graphfem.physics.fe2 import plate_with_hole
    from graphfem.physics.rve import RVE, rve_mesh
    from graphfem.training.trainer import train

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    data = generate("rve", 22, out / "rve.h5", geometry="disc", resolution=8, progress=False)
    start = time.perf_counter()
    train(train_config(str(data), str(out / "run"), "equino", rank=8, collocation=64, adam_steps=500,
                               lbfgs_iterations=300, val_fraction=2 / 22, test_fraction=0.0))
    train_s = time.perf_counter() - start
    model, meta = load_model(out / "run" / "model.safetensors")
    cell = RVE(rve_mesh(8, "disc"))
    macro = plate_with_hole(3, 3)
    model.material("nn")(np.zeros((1, 3)))  # first torch.func call: tracing, not solving
    start = time.perf_counter()
    ol, micro_ol = run_fe2(macro, cell, model)
    t_ol = time.perf_counter() - start
    point = next(iter(micro_ol))
    start = time.perf_counter()
    ref, micro_ref = run_fe2(macro, cell, None, micro_at=[point])
    t_ref = time.perf_counter() - start
    write_fe2(out / "fe_ol.vtu", ol, cell, micro_ol)
    write_fe2(out / "fe2_reference.vtu", ref, cell, micro_ref)
    du = float(np.linalg.norm(ol.u - ref.u) / np.linalg.norm(ref.u))

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, sol, title in ((axes[0], ol, "macro σ_yy, FE-OL (EquiNO)"), (axes[1], ref, "macro σ_yy, FE² reference")):
        polys = PolyCollection(macro.points[macro.cells], array=sol.cell_stress()[:, 1], cmap="viridis",
                               edgecolors="k", linewidths=0.3)
        ax.add_collection(polys)
        fig.colorbar(polys, ax=ax)
        ax.set_title(title)
    m = cell.mesh
    polys = PolyCollection(m.points[m.cells], array=cell.cell_average(micro_ol[point][1])[:, 1], cmap="magma",
                           edgecolors="none")
    axes[2].add_collection(polys)
    fig.colorbar(polys, ax=axes[2])
    axes[2].set_title(f"micro σ_NN,yy at macro point {point} (EquiNO)")
    for ax in axes:
        ax.autoscale_view()
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(out / "equino_fe2.png", dpi=110)
    plt.close(fig)
    report = {"train_seconds": train_s, "fe_ol_seconds": t_ol, "fe2_seconds": t_ref, "displacement_difference": du,
              "validation_sigma_error": meta["provenance"]["val_rel_l2_sigma"]}
    print(f"EquiNO trained in {train_s:.1f} s (validation σ error {100 * report['validation_sigma_error']:.2f} %); "
          f"FE-OL {t_ol:.3f} s, FE² {t_ref:.1f} s; macro displacement difference {100 * du:.2f} %; wrote {out}")
    return report


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "equino-fe2")
