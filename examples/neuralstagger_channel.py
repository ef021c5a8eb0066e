"""NeuralStagger rollout next to the MAC solver on a channel of our own (a square block).

Generates MAC channel data (``graphfem generate mac-channel``: the grid, dt and the references),
trains the 2 x 2 staggered stepper of examples/neuralstagger.yaml **without labels**, then rolls it
out from the impulsive start on a channel no pool draw made (a square block low in the channel,
inflow peak 1.2, nu = 0.015), with every sub-solver (the fine grid) and with one sub-solver alone
(the grid of spacing 2h), and draws the speed of both next to the project's MAC solver, with the
relative L2 error of the velocity over time.

    python examples/neuralstagger_channel.py    # examples/figures/neuralstagger_channel.png (~6 min, 2-core CPU)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def channel(grid) -> np.ndarray:
    """Our test obstacle: a square block of 3 x 3 cells (of a 32 x 16 grid) below the centre line."""
    nx, ny = grid.shape
    solid = np.zeros(grid.shape, dtype=bool)
    i0, j0, w = nx // 5, ny // 2 - 3 * ny // 16, max(1, 3 * ny // 16)
    solid[i0:i0 + w, j0:j0 + w] = True
    return solid


def main(out: Path | str = HERE / "figures", work: Path | str | None = None, samples: int = 6,
         resolution: int = 16, epochs: int = 60, steps: int = 40) -> dict:
    """Train, roll out and draw; returns the fine and coarse rollout errors and the figure path."""
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    import yaml

    from graphfem.checkpoint import load_model
    from graphfem.datasets.generate import generate
    from graphfem.families.neuralstagger import rel_l2, rollout, velocity
    from graphfem.meshes import Grid
    from graphfem.physics.mac_channel import Domain, mac_reference
    from graphfem.training.config import TrainConfig, from_dict
    from graphfem.training.trainer import train

    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory() if work is None else None
    work = Path(work or tmp.name)
    data = work / "mac.h5"
    generate("mac-channel", samples, data, seed=7, resolution=resolution, progress=False)
    config = yaml.safe_load((HERE / "neuralstagger.yaml").read_text())
    config["data"]["path"] = str(data)
    config["run"].update(out=str(work / "run"), progress=False)
    config["optim"]["phases"][0]["epochs"] = epochs
    train(from_dict(TrainConfig, config))
    model, _ = load_model(work / "run" / "model.safetensors")
    model = model.float()
    c = model.config
    grid = Grid((c.nx, c.ny), (c.x_min, c.y_min), (c.x_max, c.y_max))
    domain = Domain(grid, channel(grid), 1.2, 0.015)
    A0 = domain.start()
    ref, _, _ = mac_reference(domain, A0, c.dt, steps)
    fine, _ = rollout(model, domain, A0[None], np.zeros((1, c.nx, c.ny)), steps, "cpu")
    coarse, _ = rollout(model, domain, A0[None], np.zeros((1, c.nx, c.ny)), steps, "cpu", coarsen=2)
    h = model.spacing
    u_ref, u_fine = velocity(ref, domain.psi, h), velocity(fine, domain.psi, h)
    h2 = (2 * h[0], 2 * h[1])
    u_ref2, u_coarse = velocity(ref[:, 1::2, 1::2], domain.psi[::2], h2), velocity(coarse, domain.psi[::2], h2)
    e_fine = [rel_l2(u_fine[t], u_ref[t]) for t in range(1, steps + 1)]
    e_coarse = [rel_l2(u_coarse[t], u_ref2[t]) for t in range(1, steps + 1)]

    speed = lambda u: np.hypot(u[0], u[1]).T  # noqa: E731  (ny, nx) for imshow
    extent = (c.x_min, c.x_max, c.y_min, c.y_max)
    vmax = float(speed(u_ref[-1]).max())
    fig, axes = plt.subplots(4, 1, figsize=(8.5, 11), constrained_layout=True)
    coarse_solid = domain.solid.reshape(c.nx // 2, 2, c.ny // 2, 2).any(axis=(1, 3))
    panels = [(speed(u_ref[-1]), domain.solid, f"MAC solver ({c.nx} x {c.ny})"),
              (speed(u_fine[-1]), domain.solid, f"NeuralStagger, 4 sub-solvers ({c.nx} x {c.ny})"),
              (speed(u_coarse[-1]), coarse_solid, f"one sub-solver alone ({c.nx // 2} x {c.ny // 2})")]
    for k, (field, solid, title) in enumerate(panels):
        ax = axes[k]
        im = ax.imshow(np.ma.masked_where(solid.T, field), origin="lower", extent=extent, vmin=0, vmax=vmax,
                       cmap="viridis")
        ax.set_title(f"{title}: speed |u| (m/s) at t = {steps * c.dt:.2f} s", fontsize=10)
        ax.set_ylabel("y (m)")
        ax.set_xlabel("x (m)")
        fig.colorbar(im, ax=ax, label="|u| (m/s)", shrink=0.9)
    ax = axes[3]
    t = c.dt * np.arange(1, steps + 1)
    ax.plot(t, e_fine, label="4 sub-solvers vs MAC")
    ax.plot(t, e_coarse, label="1 sub-solver vs sub-sampled MAC")
    ax.set_xlabel("t (s)")
    ax.set_ylabel("rel. L2 error of u")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    fig.suptitle(f"Channel with a square block, inflow peak 1.2 m/s, nu = 0.015 m^2/s, dt = {c.dt:g} s\n"
                 f"(NeuralStagger s = 2 trained without labels, rollout from the impulsive start)", fontsize=11)
    path = out / "neuralstagger_channel.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    if tmp is not None:
        tmp.cleanup()
    return {"fine_rel_l2": e_fine, "coarse_rel_l2": e_coarse, "figure": str(path)}


if __name__ == "__main__":
    result = main(*sys.argv[1:2])
    print(f"wrote {result['figure']}: final error {result['fine_rel_l2'][-1]:.3f} (fine), "
          f"{result['coarse_rel_l2'][-1]:.3f} (one sub-solver)")
