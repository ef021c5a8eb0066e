"""``graphfem bench equino``: EquiNO against a black-box (σ̂, Ĉ) MLP and a
VPIONet-style DeepONet on three RVEs, and FE-OL against true FE², measured
in one run.

Per RVE (preset ``rve1``, ``rve2``, ``rve3`` on an n × n S2 quad mesh): a
data set of ``graphfem generate rve`` (FE snapshots at uniform random strains
in [−0.04, 0.04]³: ``snapshots`` for training and ``n_val`` for
validation), each model trained by the engine's one trainer
(:func:`graphfem.families.equino.train_config`: Adam, then L-BFGS, float64,
one thread; EquiNO and VPIONet unsupervised on Latin-hypercube collocation
strains, the black box on the snapshots' σ̂ and Ĉ), the best validation
checkpoint read back, and held-out test strains (Latin hypercube scaled by
0.9) solved by FE. Errors are medians over the test strains of relative
L2(Ω) errors (quadrature with the FE weights): total displacement u, the
stress components of the model's stress field (EquiNO: σ_NN; VPIONet:
σ(ε(u))), and ‖Δσ̂‖/‖σ̂‖ (EquiNO: from σ_NN, and in brackets from σ_law).
"train s" is the wall time of the training run (set-up, both phases,
validation and checkpoints).

FE-OL vs FE²: the quarter plate with a hole (plane strain, top pulled by
1 % of its height), EquiNO of ``rve1`` against nested RVE Newton solves
at every macro quadrature point, same macro mesh and tolerances: the
relative difference of the macro displacement and the wall-time ratio of
the macro solves (and of the material evaluations alone).
"""
from __future__ import annotations

import time

import numpy as np

from . import machine


def _median(errs: dict, key: str) -> str:
    return f"{100 * np.median(errs[key]):.2f}" if key in errs else "-"


def run(n: int = 10, snapshots: int = 30, rank: int = 10, collocation: int = 64, adam: int = 500,
        lbfgs: int = 300, n_test: int = 20, rves: tuple[str, ...] = ("rve1", "rve2", "rve3"),
        macro: tuple[int, int] = (3, 3), seed: int = 0, n_val: int = 5) -> str:
    """Run the benchmark and return the table as text."""
    import tempfile
    from pathlib import Path

    import torch

    from graphfem.checkpoint import load_model
    from graphfem.datasets.generate import generate
    from graphfem.families.equino import train_config
    from graphfem.operators.equino import relative_errors
    from graphfem.physics.fe2 import RVEMaterial, plate_with_hole, solve_macro
    from graphfem.physics.rve import RVE, lhs_strains, rve_mesh
    from graphfem.training.trainer import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    lines = [f"graphfem bench equino: {n}x{n} S2 quads per RVE, {snapshots} FE snapshots (+{n_val} validation), "
             f"r = {rank}, {collocation} collocation strains, {adam} Adam + {lbfgs} L-BFGS steps, "
             f"{n_test} test strains", f"machine: {machine()}",
             "median relative L2 errors in %",
             f"{'RVE':5} {'model':10} {'u':>6} {'s_xx':>6} {'s_yy':>6} {'s_xy':>6} {'s_hat':>14} {'train s':>8}"]
    equino_rve1 = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in rves:
                data = generate("rve", snapshots + n_val, Path(tmp) / f"{name}.h5", seed=seed, geometry=name,
                                resolution=n, progress=False)
                cell = RVE(rve_mesh(n, name))
                strains = 0.9 * lhs_strains(n_test, 0.04, seed + 2)
                test = cell.solve_many(strains)
                for model_name, label in (("equino", "EquiNO"), ("rve_blackbox", "black box"),
                                          ("rve_vpionet", "VPIONet")):
                    out = Path(tmp) / f"{name}-{model_name}"
                    config = train_config(str(data), str(out), model_name, rank=rank, collocation=collocation,
                                          adam_steps=adam, lbfgs_iterations=lbfgs,
                                          val_fraction=n_val / (snapshots + n_val), test_fraction=0.0, seed=seed)
                    start = time.perf_counter()
                    train(config)
                    t = time.perf_counter() - start
                    model = load_model(out / "model.safetensors")[0].double()
                    pred = model.predict(strains)
                    e = relative_errors(cell, pred, test, "sigma_law" if model_name == "rve_vpionet" else "sigma_nn")
                    s_hat = _median(e, "stress_hat")
                    if model_name == "equino":
                        law = relative_errors(cell, {"stress_hat": pred["stress_hat_law"]}, test)
                        s_hat += " (" + _median(law, "stress_hat") + ")"
                        if name == "rve1":
                            equino_rve1 = (cell, model)
                    lines.append(f"{name:5} {label:10} {_median(e, 'u'):>6} {_median(e, 'sigma_xx'):>6} "
                                 f"{_median(e, 'sigma_yy'):>6} {_median(e, 'sigma_xy'):>6} {s_hat:>14} {t:8.1f}")
        if equino_rve1 is not None:
            cell, model = equino_rve1
            mesh = plate_with_hole(*macro)
            bc = dict(fixed={"left": "x", "bottom": "y"}, displacement={"top": ("y", 0.01)})
            model.material("nn")(np.zeros((1, 3)))  # warm-up of torch.func
            start = time.perf_counter()
            ol = solve_macro(mesh, model.material("nn"), **bc)
            t_ol = time.perf_counter() - start
            start = time.perf_counter()
            ref_mat = RVEMaterial(cell)
            ref = solve_macro(mesh, ref_mat, **bc)
            t_ref = time.perf_counter() - start
            du = np.linalg.norm(ol.u - ref.u) / np.linalg.norm(ref.u)
            lines += ["",
                      f"FE-OL vs FE2 (rve1, quarter plate with hole, {ol.op.n_points} macro points, "
                      f"{ref_mat.micro_solves} micro solves of {cell.n_dofs} dofs):",
                      f"  macro displacement difference {100 * du:.2f} %",
                      f"  wall time FE2 {t_ref:.2f} s, FE-OL {t_ol:.4f} s: ratio {t_ref / t_ol:.0f}x "
                      f"(material evaluations alone: {ref.material_s:.2f} s vs {ol.material_s:.4f} s, "
                      f"{ref.material_s / ol.material_s:.0f}x)"]
    finally:
        torch.set_num_threads(threads)
    return "\n".join(lines)


__all__ = ["run"]
