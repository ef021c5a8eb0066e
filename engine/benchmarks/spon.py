"""``graphfem bench spon``: SPON, SPON-MG and MeshGraphNet on the same FE data, measured in one run.

For each family (Poisson/Darcy on the L-shape; neo-Hookean plate):

1. test relative L² error (FE mass-matrix norm of V_h) of plain SPON, SPON-MG
   (equal depth) and the MeshGraphNet baseline (same DOF graph, features,
   loss and epochs, but its output is used as it is: no exact decoder);
2. the same models evaluated one refinement level finer than training
   (inputs re-encoded on the finer mesh, reference re-solved by FE; SPON-MG
   keeps its trained coarse level, prolonged straight to the finer mesh), and
   the ratio to the training-level error;
3. inference time (encoding + one forward pass, one sample) against the FE
   solve (sparse direct for Poisson, load-stepped Newton for the plate) at
   growing mesh sizes.

``size="small"`` finishes in about 5 minutes on 2 CPU cores; ``size="gpu"`` is the
larger configuration for one GPU.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

# small: ~5 min on 2 loaded CPU cores (one torch thread). Fewer samples overfit (hyperelastic with 80 training
# samples: 15 % train, 38 % test error) and fewer steps stop near the untrained level.
SIZES = {
    "small": {"poisson": dict(n=300, resolution=1, epochs=50, latent=24, layers=6, batch=8, mg=1),
              "hyper": dict(n=200, resolution=1, epochs=40, latent=24, layers=6, batch=8, mg=1),
              "timing_levels": (1, 2, 3, 4), "hyper_timing_levels": (1, 2, 3)},
    "gpu": {"poisson": dict(n=1000, resolution=2, epochs=150, latent=64, layers=12, batch=16, mg=2),
            "hyper": dict(n=600, resolution=2, epochs=150, latent=64, layers=12, batch=16, mg=2),
            "timing_levels": (2, 3, 4, 5, 6), "hyper_timing_levels": (2, 3, 4, 5)},
}


def _mgn(samples, latent: int, layers: int):
    import torch
    from torch import nn

    from graphfem.operators.meshgraphnet import MeshGraphNet, MeshGraphNetConfig
    from graphfem.operators.spon import decode, fe_relative_error

    feats = np.concatenate([s.features() for s in samples])
    out = samples[0].dirichlet_mask.shape[1]

    class MGN(nn.Module):
        """MeshGraphNet with the SPON normalisation, decoded as s·y without the Dirichlet overwrite."""

        def __init__(self):
            super().__init__()
            self.net = MeshGraphNet(MeshGraphNetConfig(in_node=feats.shape[1], in_edge=3, out=out, latent=latent,
                                                       layers=layers))
            self.register_buffer("mean", torch.as_tensor(feats.mean(0), dtype=torch.float32))
            std = feats.std(0)
            self.register_buffer("std", torch.as_tensor(np.where(std > 1e-6, std, 1.0), dtype=torch.float32))
            self.config = type("C", (), {"levels": 0})()

        def predict(self, batch):
            y = self.net((batch.x - self.mean) / self.std, batch.edge_index, batch.edge_attr)
            return decode(y, batch.scale, torch.zeros_like(batch.mask), batch.values)

        def loss(self, batch):
            u = self.predict(batch)
            return fe_relative_error(u.reshape(-1), batch.target.reshape(-1), batch.norm, batch.dof_batch,
                                     batch.n_graphs)

    return MGN()


def _family(family: str, cfg: dict, folder: Path, seed: int, lines: list) -> dict:
    import torch

    from graphfem.datasets import spon as spon_data
    from graphfem.families import spon as spon_train

    path = folder / f"{family}.h5"
    t0 = time.perf_counter()
    spon_data.generate(family, cfg["n"], path, resolution=cfg["resolution"], seed=seed)
    t_gen = time.perf_counter() - t0
    records = spon_data.read(path)
    train_idx, test_idx = spon_train.split(len(records), 0.2, seed)
    mg = cfg["mg"]
    samples = [spon_train.encode(r, mg_levels=mg) for r in records]
    train, test = [samples[i] for i in train_idx], [samples[i] for i in test_idx]
    fine_test = [spon_train.encode(records[i], extra_refinements=1, mg_levels=mg) for i in test_idx]
    L = cfg["layers"]
    models = {
        "SPON": spon_train.build("spon", train, layers=L, latent=cfg["latent"], levels=0),
        "SPON-MG": spon_train.build("spon_mg", train, layers=L, latent=cfg["latent"], levels=mg, pre=1, post=1),
        "MeshGraphNet": _mgn(train, cfg["latent"], L),
    }
    out = {"n_dofs": int(samples[0].hierarchy.fine.n_dofs), "fine_n_dofs": int(fine_test[0].hierarchy.fine.n_dofs),
           "train": len(train), "test": len(test), "generate_s": t_gen, "models": {}}
    for name, model in models.items():
        r = spon_train.fit(model, train, epochs=cfg["epochs"], lr=3e-3, batch_size=cfg["batch"], seed=seed)
        e = spon_train.errors(model, test)
        e_fine = spon_train.errors(model, fine_test)
        bc = max(float(np.abs(u[s.dirichlet_mask] - s.dirichlet_values[s.dirichlet_mask]).max())
                 for s, u in zip(test, spon_train.predict(model, test)))
        out["models"][name] = {"test": float(e.mean()), "fine": float(e_fine.mean()), "train_s": r["seconds"],
                               "bc": bc, "params": sum(p.numel() for p in model.parameters())}
        lines.append(f"  {family} {name}: trained in {r['seconds']:.0f} s")
    out["record"] = records[test_idx[0]]
    out["model"] = models["SPON-MG"]
    return out


def _timing(result: dict, levels, family: str, device: str) -> list[tuple]:
    """(n_dofs, FE solve s, SPON-MG encode + forward s) per refinement level of one test sample."""
    import torch

    from graphfem.datasets import spon as spon_data
    from graphfem.families import spon as spon_train
    from graphfem.operators.spon import collate

    rec, model = result["record"], result["model"].to(device)
    mg = model.config.levels
    rows = []
    for level in levels:
        extra = level - int(rec.params["levels"])
        mesh = rec.coarse.refined(level)
        t = time.perf_counter()
        spon_data.solve_case(family, mesh, rec.params, 1)
        t_fe = time.perf_counter() - t
        spon_train.encode(rec, extra_refinements=extra, mg_levels=mg, with_target=False)  # builds the hierarchy
        t = time.perf_counter()
        s = spon_train.encode(rec, extra_refinements=extra, mg_levels=mg, with_target=False)
        batch = collate([s], mg, device)
        t_enc = time.perf_counter() - t
        with torch.no_grad():
            model.predict(batch)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(3):
                model.predict(batch)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t_net = (time.perf_counter() - t) / 3
        rows.append((s.hierarchy.fine.n_dofs, t_fe, t_enc, t_net))
    return rows


def run(size: str = "small", seed: int = 0, device: str = "auto") -> str:
    """Run the benchmark and return the table text (see the module docstring)."""
    import torch

    from graphfem.meshes.errors import InputError

    from . import machine
    from graphfem.surrogate import resolve_device

    if size not in SIZES:
        raise InputError(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    device = resolve_device(device)
    if device == "cpu":
        torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    cfg = SIZES[size]
    log: list[str] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results = {"spon-poisson": _family("spon-poisson", cfg["poisson"], Path(tmp), seed, log),
                   "spon-hyperelastic": _family("spon-hyperelastic", cfg["hyper"], Path(tmp), seed, log)}
        timing = {"spon-poisson": _timing(results["spon-poisson"], cfg["timing_levels"], "spon-poisson", device),
                  "spon-hyperelastic": _timing(results["spon-hyperelastic"], cfg["hyper_timing_levels"],
                                               "spon-hyperelastic", device)}
    lines = [f"graphfem bench spon --size {size} (device {device}); machine: {machine()}", ""]
    for family, r in results.items():
        fc = cfg['poisson' if family == 'spon-poisson' else 'hyper']
        lines.append(f"{family}: P1, {r['n_dofs']} DOFs (finer level {r['fine_n_dofs']}), {r['train']} train / "
                     f"{r['test']} test samples, depth {fc['layers']}, width {fc['latent']}, {fc['epochs']} epochs "
                     f"of batch {fc['batch']}")
        lines.append(f"  {'model':<14}{'params':>8}{'rel L2 test':>13}{'one level finer':>17}{'ratio':>7}"
                     f"{'max |u-g| on Dirichlet':>24}{'train s':>9}")
        for name, m in r["models"].items():
            lines.append(f"  {name:<14}{m['params']:>8}{100 * m['test']:>12.2f}%{100 * m['fine']:>16.2f}%"
                         f"{m['fine'] / m['test']:>7.2f}{m['bc']:>24.1e}{m['train_s']:>9.0f}")
        lines.append("")
    for family, rows in timing.items():
        fe = "FE solve (sparse LU)" if family == "spon-poisson" else "FE Newton solve"
        lines.append(f"{family}: SPON-MG inference vs {fe}, one sample")
        lines.append(f"  {'DOFs':>8}{'FE s':>10}{'encode s':>10}{'network s':>11}{'FE / (encode+net)':>19}"
                     f"{'FE / net':>10}")
        for n, t_fe, t_enc, t_net in rows:
            lines.append(f"  {n:>8}{t_fe:>10.4f}{t_enc:>10.4f}{t_net:>11.4f}{t_fe / (t_enc + t_net):>19.2f}"
                         f"{t_fe / t_net:>10.1f}")
        lines.append("")
    lines.append(f"total {time.perf_counter() - start:.0f} s")
    return "\n".join(lines)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m graphfem.benchmarks.spon")
    parser.add_argument("--size", default="small", choices=sorted(SIZES))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    print(run(args.size, device=args.device))


if __name__ == "__main__":
    main()
