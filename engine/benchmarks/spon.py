"""``graphfem bench spon``: SPON, SPON-MG and MeshGraphNet on the same FE data, measured in one run.

For each family (Poisson/Darcy on the L-shape; neo-Hookean plate):

1. test relative L² error (FE mass-matrix norm of V_h) of plain SPON, SPON-MG
   (equal depth) and the MeshGraphNet baseline, all three trained by the one
   trainer on the same file, split, optimiser and epochs (MeshGraphNet through
   its own adapter: mesh graph, features of the problem's options,
   lumped-mass loss, and its output used as it is: no exact decoder);
2. the same models evaluated one refinement level finer than training
   (reference re-solved by FE there), SPON and SPON-MG served as ``graphfem
   predict`` serves them (:func:`graphfem.families.spon.serve`: the trained
   levels found below the finer mesh, the prediction prolonged to it), and
   the ratio to the training-level error, next to the floor of that
   construction: the FE solution of the training level prolonged;
3. predict time as ``graphfem predict`` spends it (one sample) against the
   FE solve (sparse direct for Poisson, load-stepped Newton for the plate) at
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
    "small": {"poisson": dict(n=300, resolution=2, epochs=50, latent=24, layers=6, batch=8, mg=1),
              "hyper": dict(n=200, resolution=1, epochs=40, latent=24, layers=6, batch=8, mg=1),
              "timing_levels": (2, 3, 4, 5), "hyper_timing_levels": (1, 2, 3)},
    "gpu": {"poisson": dict(n=1000, resolution=2, epochs=150, latent=64, layers=12, batch=16, mg=2),
            "hyper": dict(n=600, resolution=2, epochs=150, latent=64, layers=12, batch=16, mg=2),
            "timing_levels": (2, 3, 4, 5, 6), "hyper_timing_levels": (2, 3, 4, 5)},
}


def _train(name: str, path: Path, cfg: dict, folder: Path, seed: int, device: str, **model):
    """A :class:`~graphfem.surrogate.Surrogate` trained by the one trainer on ``path``
    (AdamW, warm-up then cosine decay, seeded; 20 % test, no validation: the
    final weights), and its training time."""
    import graphfem
    from graphfem.training.config import DataConfig, OptimConfig, RunConfig, TrainConfig
    from graphfem.training.trainer import train

    out = folder / f"{path.stem}_{name}_{model.get('levels', 0)}"
    config = TrainConfig(model={"name": name, "latent": cfg["latent"], "layers": cfg["layers"], **model},
                         data=DataConfig(path=str(path), val_fraction=0.0, test_fraction=0.2,
                                         batch_size=cfg["batch"]),
                         optim=OptimConfig(lr=3e-3, epochs=cfg["epochs"], warmup_steps=20, min_lr_ratio=0.02,
                                           weight_decay=1e-5),
                         run=RunConfig(out=str(out), seed=seed, device=device, progress=False))
    start = time.perf_counter()
    train(config)
    return graphfem.load(out / "model.safetensors", device=device), time.perf_counter() - start


def _mgn_coefficients(mgn, records, samples) -> list[np.ndarray]:
    """MeshGraphNet's prediction for each record with the problem's options, on
    the fine mesh of its SPON sample, as (n, c) coefficients of that sample's P1 space."""
    from graphfem.families.spon import case_options

    field = mgn.problem["fields"][0]
    out = []
    for r, s in zip(records, samples):
        space = s.hierarchy.fine
        values = mgn.predict(space.mesh, **case_options(r))[field]
        out.append(space.from_nodes(values).reshape(s.target.shape))
    return out


def _mean_error(samples, coefficients) -> float:
    """Mean relative L² error (consistent mass norm of each sample's V_h) of (n, c) coefficients."""
    return float(np.mean([s.hierarchy.fine.relative_l2_error(u.reshape(-1), s.target.reshape(-1))
                          for s, u in zip(samples, coefficients)]))


def _family(family: str, cfg: dict, folder: Path, seed: int, device: str, lines: list) -> dict:
    from graphfem.datasets import spon as spon_data
    from graphfem.families import spon as spon_family
    from graphfem.operators.spon import prolongation

    path = folder / f"{family}.h5"
    t0 = time.perf_counter()
    spon_data.generate(family, cfg["n"], path, resolution=cfg["resolution"], seed=seed)
    t_gen = time.perf_counter() - t0
    records = spon_data.read(path)
    mg = cfg["mg"]
    models = {"SPON": _train("spon", path, cfg, folder, seed, device, levels=0),
              "SPON-MG": _train("spon_mg", path, cfg, folder, seed, device, levels=mg, pre=1, post=1),
              "MeshGraphNet": _train("meshgraphnet", path, cfg, folder, seed, device)}
    test_idx = models["SPON"][0].meta["provenance"]["split"]["test"]  # one seed, one split for all three
    test = [spon_family.encode(records[i], mg_levels=mg) for i in test_idx]
    finer = [spon_family.encode(records[i], extra_refinements=1, mg_levels=mg) for i in test_idx]
    out = {"n_dofs": int(test[0].hierarchy.fine.n_dofs), "fine_n_dofs": int(finer[0].hierarchy.fine.n_dofs),
           "train": len(records) - len(test_idx), "test": len(test_idx), "generate_s": t_gen, "models": {}}
    for name, (surrogate, seconds) in models.items():
        if name == "MeshGraphNet":
            u = _mgn_coefficients(surrogate, [records[i] for i in test_idx], test)
            u_fine = _mgn_coefficients(surrogate, [records[i] for i in test_idx], finer)
        else:  # one level finer through the levels graphfem predict chooses (spon_family.serve)
            u = spon_family.coefficients(surrogate.model, test, device=device)
            u_fine = [spon_family.serve(surrogate.model, surrogate.problem, s.hierarchy.fine.mesh,
                                        spon_family.case_options(records[i]), device)[1]
                      for i, s in zip(test_idx, finer)]
        bc = max(float(np.abs(a[s.dirichlet_mask] - s.dirichlet_values[s.dirichlet_mask]).max())
                 for s, a in zip(test, u))
        out["models"][name] = {"test": _mean_error(test, u), "fine": _mean_error(finer, u_fine), "train_s": seconds,
                               "bc": bc, "params": sum(p.numel() for p in surrogate.model.parameters())}
        lines.append(f"  {family} {name}: trained in {seconds:.0f} s")
    out["floor"] = _mean_error(finer, [prolongation(s.hierarchy.fine, f.hierarchy.fine) @ s.target
                                       for s, f in zip(test, finer)])
    out["record"] = records[test_idx[0]]
    out["surrogate"] = models["SPON-MG"][0]
    return out


def _timing(result: dict, levels, family: str, device: str) -> list[tuple]:
    """(n_dofs, FE solve s, first predict s, predict s) per refinement level of
    one test sample, SPON-MG served as ``graphfem predict`` serves it
    (:func:`graphfem.families.spon.serve`): the first call also finds the
    trained levels below the mesh, later calls reuse them."""
    from graphfem.datasets import spon as spon_data
    from graphfem.families import spon as spon_family

    rec, surrogate = result["record"], result["surrogate"]
    options = spon_family.case_options(rec)
    rows = []
    for level in levels:
        mesh = rec.coarse.refined(level)
        t = time.perf_counter()
        spon_data.solve_case(family, mesh, rec.params, 1)
        t_fe = time.perf_counter() - t
        t = time.perf_counter()
        space, _ = spon_family.serve(surrogate.model, surrogate.problem, mesh, options, device)
        t_first = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(3):
            spon_family.serve(surrogate.model, surrogate.problem, mesh, options, device)
        rows.append((space.n_dofs, t_fe, t_first, (time.perf_counter() - t) / 3))
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
        results = {"spon-poisson": _family("spon-poisson", cfg["poisson"], Path(tmp), seed, device, log),
                   "spon-hyperelastic": _family("spon-hyperelastic", cfg["hyper"], Path(tmp), seed, device, log)}
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
        lines.append(f"  FE solution of the training level prolonged one level finer: {100 * r['floor']:.2f}% "
                     "(the floor of a model served on the trained levels)")
        lines.append("")
    for family, rows in timing.items():
        fe = "FE solve (sparse LU)" if family == "spon-poisson" else "FE Newton solve"
        lines.append(f"{family}: SPON-MG predict (on the trained levels, prolonged to the mesh) vs {fe}, one sample")
        lines.append(f"  {'DOFs':>8}{'FE s':>10}{'1st predict s':>15}{'predict s':>11}{'FE / predict':>14}")
        for n, t_fe, t_first, t_pred in rows:
            lines.append(f"  {n:>8}{t_fe:>10.4f}{t_first:>15.4f}{t_pred:>11.4f}{t_fe / t_pred:>14.2f}")
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
