"""``graphfem bench equino``: EquiNO against a black-box (σ̂, Ĉ) MLP and a
VPIONet-style DeepONet on three RVEs, and FE-OL against true FE², measured
in one run.

Per RVE (preset ``rve1``, ``rve2``, ``rve3`` on an n × n S2 quad mesh): a
data set of ``graphfem generate rve`` (FE snapshots at uniform random strains
in [−0.04, 0.04]³: ``snapshots`` for training and ``n_val`` for
validation), each model trained by the engine's one trainer
(:func:`graphfem.families.equino.train_config`: Adam, then L-BFGS, float64,
one thread; EquiNO and VPIONet unsupervised on the default collocation
strains, stratified in magnitude and direction, EquiNO with its relative
loss and the linearised snapshots; the black box on the snapshots' σ̂ and Ĉ), the best validation
checkpoint read back, and held-out test strains (Latin hypercube scaled by
0.9) solved by FE. Errors are medians over the test strains of relative
L2(Ω) errors (quadrature with the FE weights): total displacement u, the
stress components of the model's stress field (EquiNO: σ_NN; VPIONet:
σ(ε(u))), and ‖Δσ̂‖/‖σ̂‖ (EquiNO: from σ_NN, and in brackets from σ_law).
"train s" is the wall time of the training run (set-up, both phases,
validation and checkpoints).

FE-OL vs FE²: the quarter plate with a hole (plane strain, top pulled by
1 % of its height, two load steps), a held-out macro problem: EquiNO of
``rve1`` (on an ``fe2_n`` × ``fe2_n`` mesh, trained like the others when
``fe2_n`` differs from ``n``) against nested RVE Newton solves at every macro
quadrature point, same macro mesh and tolerances. Reported: σ̂ of EquiNO at
the converged FE² macro strains against the FE homogenised stress there
(median and max over the macro points of ‖Δσ̂‖/‖σ̂‖), the relative
difference of the macro displacement and of the macro cell stresses
(‖Δσ_cell‖/‖σ_cell‖ over all cells and components), each with σ̂ from σ_NN
(``fe2 --stress nn``) and from σ_law (``--stress law``), and the wall-time
ratio of the macro solves (and of the material evaluations alone).
"""
from __future__ import annotations

import time

import numpy as np

from . import machine


def _median(errs: dict, key: str) -> str:
    return f"{100 * np.median(errs[key]):.2f}" if key in errs else "-"


def _fe_ol_vs_fe2(cell, model, macro: tuple[int, int], n: int) -> list[str]:
    """The FE-OL vs FE² lines of the benchmark (see the module docstring)."""
    from graphfem.physics.fe2 import RVEMaterial, plate_with_hole, solve_macro

    mesh = plate_with_hole(*macro)
    bc = dict(fixed={"left": "x", "bottom": "y"}, displacement={"top": ("y", 0.01)}, steps=2)
    start = time.perf_counter()
    ref_mat = RVEMaterial(cell)
    ref = solve_macro(mesh, ref_mat, **bc)
    t_ref = time.perf_counter() - start
    zero = model.predict(np.zeros((1, 3)))
    lines = ["", f"FE-OL vs FE2 (rve1 at {n}x{n}, quarter plate with hole, {ref.op.n_points} macro points, "
                 f"{ref_mat.micro_solves} micro solves of {cell.n_dofs} dofs):",
             f"  sigma_hat(0) = {zero['stress_hat'][0].tolist()} (sigma_NN), {zero['stress_hat_law'][0].tolist()} "
             "(sigma_law)"]
    pred = model.predict(ref.eps)
    cs_ref = ref.cell_stress()
    for source, key in (("nn", "stress_hat"), ("law", "stress_hat_law")):
        e = np.linalg.norm(pred[key] - ref.sigma, axis=1) / np.linalg.norm(ref.sigma, axis=1)
        model.material(source)(np.zeros((1, 3)))  # warm-up of torch.func
        start = time.perf_counter()
        ol = solve_macro(mesh, model.material(source), **bc)
        t_ol = time.perf_counter() - start
        du = np.linalg.norm(ol.u - ref.u) / np.linalg.norm(ref.u)
        ds = np.linalg.norm(ol.cell_stress() - cs_ref) / np.linalg.norm(cs_ref)
        lines += [f"  sigma_{source}: sigma_hat at the FE2 macro points vs FE homogenisation median "
                  f"{100 * np.median(e):.2f} %, max {100 * e.max():.2f} %; macro displacement difference "
                  f"{100 * du:.2f} %, macro cell-stress difference {100 * ds:.2f} %",
                  f"    wall time FE2 {t_ref:.2f} s, FE-OL {t_ol:.4f} s: ratio {t_ref / t_ol:.0f}x "
                  f"(material evaluations alone: {ref.material_s:.2f} s vs {ol.material_s:.4f} s, "
                  f"{ref.material_s / ol.material_s:.0f}x)"]
    return lines


def run(n: int = 10, snapshots: int = 30, rank: int = 10, collocation: int = 64, adam: int = 500,
        lbfgs: int = 1000, n_test: int = 20, rves: tuple[str, ...] = ("rve1", "rve2", "rve3"),
        macro: tuple[int, int] = (3, 3), seed: int = 0, n_val: int = 5, fe2_n: int = 20) -> str:
    """Run the benchmark and return the table as text."""
    import tempfile
    from pathlib import Path

    import torch

    from graphfem.checkpoint import load_model
    from graphfem.datasets.generate import generate
    from graphfem.families.equino import train_config
    from graphfem.operators.equino import relative_errors
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

    def fit(tmp, name: str, resolution: int, model_name: str):
        """(trained model, training wall time) of one model on ``name`` at ``resolution``."""
        data = Path(tmp) / f"{name}-{resolution}.h5"
        if not data.exists():
            generate("rve", snapshots + n_val, data, seed=seed, geometry=name, resolution=resolution, progress=False)
        out = Path(tmp) / f"{name}-{resolution}-{model_name}"
        config = train_config(str(data), str(out), model_name, rank=rank, collocation=collocation,
                              adam_steps=adam, lbfgs_iterations=lbfgs,
                              val_fraction=n_val / (snapshots + n_val), test_fraction=0.0, seed=seed)
        start = time.perf_counter()
        train(config)
        return load_model(out / "model.safetensors")[0].double(), time.perf_counter() - start

    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in rves:
                cell = RVE(rve_mesh(n, name))
                strains = 0.9 * lhs_strains(n_test, 0.04, seed + 2)
                test = cell.solve_many(strains)
                for model_name, label in (("equino", "EquiNO"), ("rve_blackbox", "black box"),
                                          ("rve_vpionet", "VPIONet")):
                    model, t = fit(tmp, name, n, model_name)
                    pred = model.predict(strains)
                    e = relative_errors(cell, pred, test, "sigma_law" if model_name == "rve_vpionet" else "sigma_nn")
                    s_hat = _median(e, "stress_hat")
                    if model_name == "equino":
                        law = relative_errors(cell, {"stress_hat": pred["stress_hat_law"]}, test)
                        s_hat += " (" + _median(law, "stress_hat") + ")"
                        if name == "rve1" and fe2_n == n:
                            equino_rve1 = (cell, model)
                    lines.append(f"{name:5} {label:10} {_median(e, 'u'):>6} {_median(e, 'sigma_xx'):>6} "
                                 f"{_median(e, 'sigma_yy'):>6} {_median(e, 'sigma_xy'):>6} {s_hat:>14} {t:8.1f}")
            if "rve1" in rves and fe2_n != n:
                model, t = fit(tmp, "rve1", fe2_n, "equino")
                equino_rve1 = (RVE(rve_mesh(fe2_n, "rve1")), model)
                lines.append(f"(EquiNO on rve1 at {fe2_n}x{fe2_n} for FE-OL: trained in {t:.1f} s)")
        if equino_rve1 is not None:
            lines += _fe_ol_vs_fe2(*equino_rve1, macro, fe2_n)
    finally:
        torch.set_num_threads(threads)
    return "\n".join(lines)


__all__ = ["run"]
