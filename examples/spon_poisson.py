"""SPON and SPON-MG on −∇·(κ∇u) = f on the L-shape: generate, train briefly
with the one trainer, evaluate at the training resolution and one refinement
level finer, write a VTU and a PNG. Runs in about two minutes on 2 CPU cores.

    python examples/spon_poisson.py [OUT_FOLDER]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(out: str | Path = "spon_poisson_out") -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    import graphfem
    from graphfem.datasets import spon as spon_data
    from graphfem.families import spon as spon_family
    from graphfem.training.config import DataConfig, OptimConfig, RunConfig, TrainConfig
    from graphfem.training.trainer import train

    torch.set_num_threads(2)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = spon_data.generate("spon-poisson", 120, out / "poisson.h5", resolution=1, seed=0)
    records = spon_data.read(path)
    result = {}
    for name, cfg in (("spon", {"levels": 0}), ("spon_mg", {"levels": 1, "pre": 1, "post": 1})):
        config = TrainConfig(model={"name": name, "layers": 6, "latent": 24, **cfg},
                             data=DataConfig(path=str(path), val_fraction=0.0, test_fraction=0.2, batch_size=16),
                             optim=OptimConfig(lr=3e-3, epochs=30, warmup_steps=20, min_lr_ratio=0.02),
                             run=RunConfig(out=str(out / name), seed=0, device="cpu", progress=False))
        train(config)
        surrogate = graphfem.load(out / name / "model.safetensors")
        test_idx = surrogate.meta["provenance"]["split"]["test"]
        test = [spon_family.encode(records[i], mg_levels=1) for i in test_idx]
        finer = [spon_family.encode(records[i], extra_refinements=1, mg_levels=1) for i in test_idx]
        result[name] = {"test": float(spon_family.errors(surrogate.model, test).mean()),
                        "finer": float(spon_family.errors(surrogate.model, finer).mean())}
        print(f"{name}: relative L2 {100 * result[name]['test']:.1f} % at {test[0].hierarchy.fine.n_dofs} DOFs, "
              f"{100 * result[name]['finer']:.1f} % one level finer ({finer[0].hierarchy.fine.n_dofs} DOFs)")
    s = finer[0]  # the last model (SPON-MG) on the finer mesh
    u = spon_family.coefficients(surrogate.model, [s])[0][:, 0]
    mesh = s.hierarchy.fine.mesh
    mesh.write(out / "spon_mg.vtu", point_data={"u_spon_mg": u, "u_fe": s.target[:, 0], "error": u - s.target[:, 0]})
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, (title, v) in zip(axes, (("FE", s.target[:, 0]), ("SPON-MG", u), ("error", u - s.target[:, 0]))):
        im = ax.tripcolor(mesh.points[:, 0], mesh.points[:, 1], mesh.cells, v, shading="gouraud")
        ax.set_title(title)
        ax.set_aspect("equal")
        ax.axis("off")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(out / "spon_mg.png", dpi=90)
    plt.close(fig)
    mask = s.dirichlet_mask[:, 0]
    result["boundary_max_deviation"] = float(np.abs(u[mask] - s.dirichlet_values[mask, 0]).max())
    return result


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "spon_poisson_out")
