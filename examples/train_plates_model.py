"""Train the shipped plates surrogate: multi-scale MeshGraphNet on neo-Hookean plates it has never seen.

Where the demo model knows one mesh, this one is for a perforated plate of the user's own: each training
sample is a new random plate (one to three holes, 1/24 to 1/9 of its largest side per cell), clamped on
``left``, loaded by a traction on ``right`` and a body force, with random E and ν (the ranges of
``graphfem generate hyperelastic``). The script

1. generates the data with the project's load-stepped Newton solver
   (``graphfem generate hyperelastic -n 24000 --geometry perforated --resolution 9:24 --seed 0``);
2. trains ``examples/hyperelastic_plates.yaml`` on it through the one trainer, for 18 epochs
   (86,400 Adam steps of batch 4, one thread);
3. copies the best checkpoint to ``engine/assets/plates_mgn.safetensors`` (shipped as ``graphfem/assets/``).

    python examples/train_plates_model.py [--out runs/plates24k] [--samples 24000] [--epochs 18]

About an hour on the 2-core development machine (8 min of data on two workers, 50 min of training).
Everything is seeded: sample i depends only on (seed, i), and the trainer on ``run.seed``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import yaml

from graphfem.datasets.generate import generate
from graphfem.training.config import TrainConfig, from_dict
from graphfem.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "hyperelastic_plates.yaml"
TARGET = ROOT / "engine" / "assets" / "plates_mgn.safetensors"


def main(out: str | Path = "runs/plates24k", samples: int = 24000, epochs: int = 18, workers: int = 2,
         target: str | Path = TARGET, progress: bool = True) -> dict:
    """Generate, train and copy the model to ``target``; returns the trainer's final metrics with the
    seconds each stage took."""
    out = Path(out)
    data = out / "data.h5"
    start = time.perf_counter()
    if not data.exists():
        generate("hyperelastic", samples, data, geometry="perforated", resolution=(9, 24), seed=0,
                 workers=workers, progress=progress)
    generated = time.perf_counter()
    config = yaml.safe_load(CONFIG.read_text())
    config["data"]["path"] = str(data)
    config["optim"]["epochs"] = epochs
    config["run"].update(out=str(out / "run"), progress=progress)
    final = train(from_dict(TrainConfig, config))
    trained = time.perf_counter()
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "run" / "model.safetensors", target)
    return {"generate_s": round(generated - start, 1), "train_s": round(trained - generated, 1), **final}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/plates24k")
    parser.add_argument("--samples", type=int, default=24000)
    parser.add_argument("--epochs", type=int, default=18)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--target", default=str(TARGET))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    print(json.dumps(main(args.out, args.samples, args.epochs, args.workers, args.target, not args.no_progress)))
