"""``graphfem bench equino``: EquiNO against a black-box (σ̂, Ĉ) MLP and a
VPIONet-style DeepONet on three RVEs, and FE-OL against true FE², measured
in one run.

Per RVE (preset ``rve1``, ``rve2``, ``rve3`` on an n × n S2 quad mesh):
FE snapshots at Latin-hypercube strains in [−0.04, 0.04]³, POD rank r,
unsupervised training on collocation strains (Adam, then L-BFGS, float64,
one thread), and held-out test strains (scaled by 0.9). Errors are medians
over the test strains of relative L2(Ω) errors (quadrature with the FE
weights): total displacement u, the stress components of the model's stress
field (EquiNO: σ_NN; VPIONet: σ(ε(u))), and ‖Δσ̂‖/‖σ̂‖ (EquiNO: from σ_NN,
and in brackets from σ_law).

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
        macro: tuple[int, int] = (3, 3), seed: int = 0) -> str:
    """Run the benchmark and return the table as text."""
    import torch

    from graphfem.operators.equino import build_equino, fit, relative_errors
    from graphfem.operators.equino_baselines import BlackBox, BlackBoxConfig, blackbox_loss, build_vpionet
    from graphfem.physics.fe2 import RVEMaterial, plate_with_hole, solve_macro
    from graphfem.physics.rve import RVE, lhs_strains, rve_mesh

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    lines = [f"graphfem bench equino: {n}x{n} S2 quads per RVE, {snapshots} FE snapshots, r = {rank}, "
             f"{collocation} collocation strains, {adam} Adam + {lbfgs} L-BFGS steps, {n_test} test strains",
             f"machine: {machine()}",
             "median relative L2 errors in %",
             f"{'RVE':5} {'model':10} {'u':>6} {'s_xx':>6} {'s_yy':>6} {'s_xy':>6} {'s_hat':>14} {'train s':>8}"]
    equino_rve1 = None
    try:
        for name in rves:
            cell = RVE(rve_mesh(n, name))
            train = cell.solve_many(lhs_strains(snapshots, 0.04, seed + 1), rtol=1e-12)
            strains = 0.9 * lhs_strains(n_test, 0.04, seed + 2)
            test = cell.solve_many(strains)
            coll = lhs_strains(collocation, 0.04, seed + 3)
            model = build_equino(cell, train, rank, rank, seed=seed)
            t = fit(model, coll, adam, lbfgs, seed=seed)["seconds"]
            pred = model.predict(strains)
            e = relative_errors(cell, pred, test)
            law = relative_errors(cell, {"stress_hat": pred["stress_hat_law"]}, test)
            lines.append(f"{name:5} {'EquiNO':10} {_median(e, 'u'):>6} {_median(e, 'sigma_xx'):>6} "
                         f"{_median(e, 'sigma_yy'):>6} {_median(e, 'sigma_xy'):>6} "
                         f"{_median(e, 'stress_hat') + ' (' + _median(law, 'stress_hat') + ')':>14} {t:8.1f}")
            if name == "rve1":
                equino_rve1 = (cell, model)
            bb = BlackBox(BlackBoxConfig(stress_scale=float(np.sqrt(np.mean([s.stress ** 2 for s in train])))))
            t = fit(bb, np.arange(snapshots)[:, None] * np.ones(3), adam, lbfgs, loss=blackbox_loss(train),
                    seed=seed)["seconds"]
            e = relative_errors(cell, bb.predict(strains), test)
            lines.append(f"{name:5} {'black box':10} {'-':>6} {'-':>6} {'-':>6} {'-':>6} "
                         f"{_median(e, 'stress_hat'):>14} {t:8.1f}")
            vp = build_vpionet(cell, train, seed=seed)
            t = fit(vp, coll, adam, lbfgs, seed=seed)["seconds"]
            e = relative_errors(cell, vp.predict(strains), test, "sigma_law")
            lines.append(f"{name:5} {'VPIONet':10} {_median(e, 'u'):>6} {_median(e, 'sigma_xx'):>6} "
                         f"{_median(e, 'sigma_yy'):>6} {_median(e, 'sigma_xy'):>6} "
                         f"{_median(e, 'stress_hat'):>14} {t:8.1f}")
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
