"""RGNP on the 1D nonlinear Poisson problem: the mean ± 2σ band against FE, and the posterior over z.

Generates FE references (``graphfem generate nonlinear-poisson``), trains an RGNP with
examples/rgnp_poisson1d.yaml (physics only: prior draws of z and w on random grids redrawn
every step), then, on three held-out samples, draws the predicted mean and ±2σ band of u
against the FE solution, and the GICNet posterior over z (given the FE solution at the
interior nodes) against the true z.

    python examples/rgnp_poisson1d.py      # writes examples/figures/rgnp_poisson1d.png (~5 min, 2-core CPU)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(out: Path | str = HERE / "figures", work: Path | str | None = None, samples: int = 40,
         epochs: int = 40) -> dict:
    """Train, predict and draw; returns the test ``rel_l2_u``, ``coverage_u``, ``z_rel_err``,
    ``coverage_z`` (means over the test split) and the ``figure`` path."""
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    import yaml

    from graphfem.checkpoint import load_model
    from graphfem.datasets.generate import generate
    from graphfem.datasets.simulations import SimulationData
    from graphfem.families.rgnp import field_at, posterior, read_sample, scores
    from graphfem.training.config import TrainConfig, from_dict
    from graphfem.training.trainer import split_indices, train

    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(work or tempfile.mkdtemp())
    data = work / "np1d.h5"
    generate("nonlinear-poisson", samples, data, seed=11, progress=False)
    raw = yaml.safe_load((HERE / "rgnp_poisson1d.yaml").read_text())
    raw["data"]["path"], raw["run"]["out"] = str(data), str(work / "run")
    raw["run"]["progress"] = False
    raw["optim"]["phases"][0]["epochs"] = epochs
    config = from_dict(TrainConfig, raw)
    train(config)
    model, _ = load_model(work / "run" / "model.safetensors")
    model.eval()
    d = SimulationData(data)
    test = split_indices(len(d), config.data.val_fraction, config.data.test_fraction, config.run.seed)["test"]
    rows = [read_sample(d, i) for i in test]
    got = [scores(model, s) for s in rows]
    result = {k: float(np.mean([g[k] for g in got])) for k in got[0]}

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for ax, s, g in zip(axes[:3], rows[:3], got[:3]):
        x = s["space"].mesh.points[:, 0]
        mean, std = field_at(model, x, s["z"], s["w"])
        ax.fill_between(x, mean - 2 * std, mean + 2 * std, color="C0", alpha=0.3, label="RGNP mean ± 2σ")
        ax.plot(x, mean, "C0", lw=1.5, label="RGNP mean")
        ax.plot(x, s["u"], "k--", lw=1.2, label="FE reference (P1, 200 cells)")
        ax.set_xlabel("x")
        ax.set_ylabel("u (dimensionless)")
        ax.set_title(f"w = {s['w']:.2f}: rel-L2 {g['rel_l2_u']:.3f}, {100 * g['coverage_u']:.0f} % in ±2σ",
                     fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower center")
    ax = axes[3]
    k = np.arange(model.config.n_z)
    for j, s in enumerate(rows[:3]):
        x = s["space"].mesh.points[:, 0]
        inner = np.abs(x) < 1 - 1e-12
        mz, sz = posterior(model, x[inner], s["u"][inner], s["w"])
        shift = (j - 1) * 0.22
        ax.errorbar(k + shift, mz, yerr=2 * sz, fmt="o", color=f"C{j}", ms=4, capsize=3,
                    label=f"sample {j + 1}: q(z | u) mean ± 2σ")
        ax.plot(k + shift, s["z"], "x", color=f"C{j}", ms=8, mew=2)
    ax.set_xticks(k, [f"z{n}" for n in k])
    ax.set_ylabel("Chebyshev coefficient of a(x)")
    ax.set_title(f"inverse (x: truth): test z rel. error {result['z_rel_err']:.2f}", fontsize=10)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.suptitle(f"RGNP, 1D nonlinear Poisson (κ(u)u')' + w = 0: {len(test)} test samples, rel-L2 of μ "
                 f"{result['rel_l2_u']:.3f}, {100 * result['coverage_u']:.0f} % of FE nodes inside ±2σ", fontsize=11)
    fig.tight_layout()
    figure = out / "rgnp_poisson1d.png"
    fig.savefig(figure, dpi=110)
    plt.close(fig)
    result["figure"] = figure
    return result


if __name__ == "__main__":
    print(main(*sys.argv[1:2]))
