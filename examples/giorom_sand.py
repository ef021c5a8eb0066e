"""GIOROM on collapsing sand columns: MPM data, a sparse stepper, a dense rollout, a picture.

1. MLS-MPM (Drucker–Prager sand, φ = 30°, wall friction 0.5) collapses three
   random columns standing in the corner of the box (``graphfem generate mpm
   --geometry column``): the training data, in the common HDF5 layout.
2. The one trainer (:func:`graphfem.training.trainer.train`) fits a small
   GIOROM stepper on 20 % of the particles (farthest-point sample) and,
   apart from it, the neural field that rebuilds all particles.
3. A held-out column is rolled out from its first 6 frames and rebuilt
   densely; the PNG compares it with MPM at three times.

Run: ``python examples/giorom_sand.py [OUT]`` (about a minute on one core).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def render(path: Path, truth: np.ndarray, pred: np.ndarray, reference: np.ndarray, frames: list[int]) -> None:
    """Two rows (MPM, GIOROM) of point clouds coloured by displacement magnitude."""
    import pyvista as pv

    pv.OFF_SCREEN = True
    plotter = pv.Plotter(off_screen=True, shape=(2, len(frames)), window_size=(360 * len(frames), 620))
    vmax = float(np.linalg.norm(truth[frames[-1]] - reference, axis=1).max())
    lo = reference.min(axis=0)
    frame_box = pv.Box((lo[0], lo[0] + 0.5, lo[1], lo[1] + 0.3, 0, 0)).outline()
    for row, (name, data) in enumerate((("MPM", truth), ("GIOROM", pred))):
        for col, k in enumerate(frames):
            plotter.subplot(row, col)
            pts = np.pad(data[k], ((0, 0), (0, 1)))
            cloud = pv.PolyData(pts)
            cloud["displacement magnitude (box units)"] = np.linalg.norm(data[k] - reference, axis=1)
            plotter.add_mesh(cloud, scalars="displacement magnitude (box units)", clim=(0, vmax), point_size=6,
                             render_points_as_spheres=True, cmap="copper",
                             show_scalar_bar=(row == 1 and col == len(frames) - 1),
                             scalar_bar_args={"n_labels": 3, "fmt": "%.2f", "title_font_size": 14,
                                              "label_font_size": 12, "position_x": 0.25, "width": 0.5})
            plotter.add_text(f"{name} frame {k}", font_size=9)
            plotter.add_mesh(frame_box, color="grey")
            plotter.view_xy()
    plotter.screenshot(str(path))
    plotter.close()


def main(out: str | Path = "giorom-sand", frames: int = 30, epochs: int = 25) -> dict:
    """Run the example into ``out``; returns errors and timings."""
    import torch

    from graphfem.datasets.generate import generate
    from graphfem.datasets.simulations import SimulationData
    from graphfem.families.giorom import chamfer, dense_rollout, load_giorom, sparse_subset
    from graphfem.training.config import DataConfig, OptimConfig, RunConfig, TrainConfig
    from graphfem.training.trainer import train

    torch.set_num_threads(1)  # small graphs: one thread avoids OpenMP spin on shared cores
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scene = {"t_end": frames * 0.01, "friction": 0.5}
    t0 = time.perf_counter()
    generate("mpm", 3, out / "columns.h5", material="sand", geometry="column", options=scene, progress=False)
    generate("mpm", 1, out / "held_out.h5", material="sand", geometry="column", options=scene, seed=1,
             progress=False)
    t_mpm = time.perf_counter() - t0

    def fit(model: dict, name: str, n_epochs: int, lr: float, batch: int) -> Path:
        config = TrainConfig(model=model, data=DataConfig(path=str(out / "columns.h5"), batch_size=batch,
                                                          val_fraction=0.0, test_fraction=0.0),
                             optim=OptimConfig(optimizer="adam", lr=lr, weight_decay=0.0, epochs=n_epochs,
                                               warmup_steps=20, min_lr_ratio=0.05),
                             run=RunConfig(out=str(out / name), device="cpu", threads=1, progress=False))
        train(config)
        return out / name

    stepper_run = fit({"name": "giorom", "sparse": 0.2, "radius": 0.12, "hidden": 48, "grid": 8, "gno_radius": 0.15,
                       "noise_std": 3e-4}, "stepper", epochs, 2e-3, 2)
    field_run = fit({"name": "giorom-field", "sparse": 0.2, "hidden": 32}, "field", 10, 3e-3, 8)
    t_train = time.perf_counter() - t0 - t_mpm
    stepper, meta = load_giorom(stepper_run / "model.safetensors", "giorom")
    field, _ = load_giorom(field_run / "model.safetensors", "giorom-field")

    test = SimulationData(out / "held_out.h5").sample(0)
    x, material = test.fields["x"], test.inputs["material"]
    W = stepper.config.window
    idx = sparse_subset(x[0], meta["family_options"], W + 2)
    _, dense, timing = dense_rollout(stepper, field, x[:W + 1], material, x.shape[0] - W - 1, idx)
    mse = float(np.mean((dense[W + 1:] - x[W + 1:]) ** 2))
    final_chamfer = chamfer(dense[-1], x[-1])
    losses = [r["loss"] for r in map(json.loads, (stepper_run / "metrics.jsonl").read_text().splitlines())
              if "loss" in r]
    png = out / "giorom_sand.png"
    render(png, x, dense, x[0], [W, (W + x.shape[0]) // 2, x.shape[0] - 1])
    result = {"particles": int(x.shape[1]), "sparse": int(len(idx)), "rollout_mse": mse,
              "final_chamfer": final_chamfer, "first_loss": float(np.mean(losses[:20])),
              "last_loss": float(np.mean(losses[-20:])), "mpm_s": t_mpm, "train_s": t_train, **timing,
              "png": str(png)}
    for k, v in result.items():
        print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    return result


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "giorom-sand")
