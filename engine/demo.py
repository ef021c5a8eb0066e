"""The surrogate demo: the shipped MeshGraphNet against the FE solver on a
shipped mesh, with no data and no training needed.

Problem on the annulus of ``graphfem/assets/annulus.msh`` (refined once):
−∇·(κ∇u) = 2 with κ = 1 for x < 0 and κ = 3 for x ≥ 0 (two materials),
u = 1 on the inner circle ``inter`` and u = 0 on the outer circle ``exter``.
"""
from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import numpy as np

DEMO_MODEL = "demo_mgn.safetensors"
DEMO_MESH = "annulus.msh"


def data_file(name: str) -> Path:
    """Path of a file shipped in ``graphfem/assets``."""
    return Path(str(resources.files("graphfem") / "assets" / name))


def run_demo(out_dir: str | Path, device: str = "auto") -> dict:
    """Predict with the shipped surrogate, solve with FE, compare.

    Writes ``<out_dir>/demo_surrogate.vtu`` (point fields ``prediction``,
    ``reference``, ``error``) and one PNG per field.

    Returns:
        dict with ``rel_l2`` (FE mass-matrix norm), ``predict_s``, ``fe_s``,
        ``vtu``, ``pngs`` and printable ``lines``.
    """
    import warnings

    from graphfem.meshes import FESpace, read
    from graphfem.physics import poisson

    from graphfem.checkpoint import load

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    surrogate = load(data_file(DEMO_MODEL), device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mesh = read(data_file(DEMO_MESH)).refined()
    centroid_x = mesh.points[mesh.corner_cells].mean(axis=1)[:, 0]
    options = {"kappa": np.where(centroid_x < 0, 1.0, 3.0), "source": 2.0, "dirichlet": {"inter": 1.0, "exter": 0.0}}
    surrogate.predict(mesh, **options)  # warm-up (first call builds kernels)
    prediction, predict_s = surrogate.timed_prediction(mesh, **options)
    start = time.perf_counter()
    solution = poisson(mesh, kappa=options["kappa"], f=options["source"], dirichlet=options["dirichlet"], order=1)
    fe_s = time.perf_counter() - start
    u_hat, u = prediction.fields["u"], solution.fields["u"]
    rel = FESpace(mesh, order=1).relative_l2_error(u_hat, u)
    vtu = out / "demo_surrogate.vtu"
    fields = {"prediction": u_hat, "reference": u, "error": u_hat - u}
    mesh.write(vtu, point_data=fields)
    pngs = []
    try:
        from graphfem.render import render
    except ImportError:
        render = None
    if render is not None:
        titles = {"prediction": "u, surrogate", "reference": "u, FE solve", "error": "u_surrogate - u_FE"}
        for name in fields:
            png = out / f"demo_surrogate_{name}.png"
            render(vtu, png, field=name, title=titles[name], signed=name == "error")
            pngs.append(str(png))
    lines = [f"surrogate ({surrogate.meta['model']}) vs FE on {mesh.n_points} nodes, {mesh.n_cells} cells:",
             f"  relative L2 error (FE mass norm): {100 * rel:.2f} %",
             f"  surrogate predict: {1e3 * predict_s:.1f} ms on {surrogate.device};  FE solve: {1e3 * fe_s:.1f} ms",
             f"  wrote {vtu}" + (f" and {len(pngs)} PNG renders" if pngs else "")]
    return {"rel_l2": rel, "predict_s": predict_s, "fe_s": fe_s, "vtu": str(vtu), "pngs": pngs, "lines": lines}


__all__ = ["data_file", "run_demo"]
