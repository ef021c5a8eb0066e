"""``graphfem bench surrogate MODEL``: surrogate predict time against the FE
solve of the checkpoint's problem (Poisson, elasticity, hyperelastic), its error,
peak memory and the ``--refine`` time, on unit-square meshes from about 1k to 1M
cells, measured in one run; without a checkpoint (:func:`compare`), single-level
against multi-scale MeshGraphNet trained here at an equal parameter count,
and the achieved GFLOP/s of one MeshGraphNet forward against a plain matmul.

Cases (:data:`CASES`): −Δu = 1, u = 0 on the boundary (Poisson); clamped on the
left, pulled on the right (elasticity, hyperelastic). "predict" includes the graph
encoding; "FE" is the problem's own solve (assembly and the automatic direct/AMG
solve, or load-stepped Newton). Peak memory is the largest resident-set growth
above the value before each step, sampled every 2 ms (CPU), or
``torch.cuda.max_memory_allocated`` (GPU).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable, Sequence

DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000)


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory(fn: Callable[[], object]) -> tuple[object, float, float]:
    """(result, seconds, peak RSS growth in MiB) of ``fn()``."""
    base = _rss()
    peak = [base]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        result = fn()
    finally:
        seconds = time.perf_counter() - start
        done.set()
        thread.join()
    peak[0] = max(peak[0], _rss())
    return result, seconds, (peak[0] - base) / 2**20


#: the case of ``run`` per problem on the unit square: options of ``graphfem solve`` and the compared field
#: (hyperelastic: the demo's load case, :data:`graphfem.demo.DEMO_OPTIONS`)
CASES = {"poisson": ({"kappa": 1.0, "source": 1.0}, "u"),
         "elasticity": ({"E": 1.0, "nu": 0.3, "fix": ["left"], "traction": {"right": [0.01, -0.002]}}, "displacement"),
         "hyperelastic": ({"E": 1.1, "nu": 0.33, "fix": ["left"], "traction": {"right": [0.09, -0.015]},
                           "body_force": [0.01, -0.02]}, "displacement")}


def meshes_for(sizes: Sequence[int], base=None) -> list:
    """Unit squares of about ``sizes`` triangles each; or, given a ``base`` mesh, it and its
    uniform refinements (×4 cells each) up to the first one past ``max(sizes)``."""
    from graphfem.meshes import Mesh

    if base is None:
        return [Mesh.unit_square(max(2, int(round((target / 2) ** 0.5)))) for target in sizes]
    out = [base]
    while out[-1].n_cells < max(sizes):
        out.append(out[-1].refined())
    return out


def run(model_path: str, sizes: Sequence[int] = DEFAULT_SIZES, device: str = "auto", mesh_path: str | None = None
        ) -> str:
    """Measure every size in one run and return the table text: the checkpoint's predict time
    against its problem's FE solve on unit squares, or on the mesh at ``mesh_path`` refined
    (:func:`meshes_for`), for the case :data:`CASES`; the error, peak memory, and the time of
    ``--refine`` (the FE solver started from the prediction) to the FE tolerance."""
    import warnings

    import torch

    from graphfem.families.meshgraphnet import relative_error
    from graphfem.meshes import Mesh, read
    from graphfem.meshes.errors import InputError
    from graphfem.physics.problem import get_problem
    from graphfem.validity import recorded

    from . import machine
    from graphfem.checkpoint import load

    surrogate = load(model_path, device=device)
    name = surrogate.problem.get("name")
    if name not in CASES:
        raise InputError(f"bench surrogate MODEL measures {', '.join(CASES)} models; this one is "
                         f"{name or 'of no problem'}", model_path)
    options, field = CASES[name]
    problem = get_problem(name)
    cuda = surrogate.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else _no_sync
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        surrogate.predict(Mesh.unit_square(8), **options)  # warm-up
    header = (f"{'cells':>9} {'nodes':>9} {'predict s':>10} {'FE s':>8} {'FE/predict':>10} {'refine s':>9} "
              f"{'FE/(pred+ref)':>13} {'predict MiB':>11} {'FE MiB':>8} {'rel L2':>7}  range")
    given = ", ".join(f"{k} {v}" for k, v in options.items())
    where = "unit squares" if mesh_path is None else f"{mesh_path} and its uniform refinements"
    rows = [f"graphfem bench surrogate: {surrogate.meta['model']} ({name}) on {surrogate.device} ({machine()}); "
            f"{where}, {given}", header]
    for mesh in meshes_for(sizes, None if mesh_path is None else read(mesh_path)):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        with recorded() as lines:
            (prediction, _), _, mem_pred = peak_memory(lambda: surrogate.timed_prediction(mesh, **options))
        if cuda:
            mem_pred = torch.cuda.max_memory_allocated() / 2**20
        sol, _, mem_fe = peak_memory(lambda: problem.run(mesh, options))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # times without the memory watcher (its polling thread slowed small predictions), warm
            t_pred = _best_time(lambda: surrogate.prediction(mesh, **options), 3, sync, budget=2.0, spend=0.5)
            t_fe = _best_time(lambda: problem.run(mesh, options), 3, _no_sync, budget=2.0, spend=0.5)
        rel = relative_error(mesh, prediction.fields[field], sol.fields[field])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t_ref = _best_time(lambda: problem.refine(mesh, options, prediction.fields), 3, _no_sync, budget=2.0,
                                   spend=0.5)
            refine = f"{t_ref:>9.3f} {t_fe / (t_pred + t_ref):>13.2f}"
        except InputError:
            refine = f"{'n/a':>9} {'n/a':>13}"
        outside = len(lines)
        rows.append(f"{mesh.n_cells:>9} {mesh.n_points:>9} {t_pred:>10.3f} {t_fe:>8.3f} {t_fe / t_pred:>10.2f} "
                    f"{refine} {mem_pred:>11.0f} {mem_fe:>8.0f} {rel:>7.3f}  "
                    f"{'inside' if not outside else f'outside ({outside})'}")
    rows.append("times: the fastest of 3 or more warm calls (up to 50 within 0.5 s; a single one above 2 s); predict includes the features and graph encoding; "
                "refine: the problem's solver from the prediction to its usual tolerance (Newton, or AMG-CG); "
                "peak MiB (a separate call): resident-set growth (CPU) or CUDA max allocated (GPU); range: the "
                "checkpoint's domain of validity (number of warnings)")
    return "\n".join(rows)


#: ``compare`` sizes: ``small`` finishes in minutes on 2 CPU cores, ``gpu`` goes to 1M cells
SIZES = {
    "small": {"samples": 100, "epochs": 40, "batch": 8, "lr": 3e-3, "latent": 32, "levels": 2, "blocks": 1,
              "coarse_blocks": 2, "cells": (1_000, 4_000, 16_000, 64_000), "flops_nodes": (4_225,)},
    "gpu": {"samples": 1000, "epochs": 200, "batch": 16, "lr": 1e-3, "latent": 128, "levels": 3, "blocks": 2,
            "coarse_blocks": 4, "cells": (1_000, 10_000, 100_000, 1_000_000), "flops_nodes": (16_641, 263_169)},
}


def parameters(model) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def equal_size_layers(config: dict) -> int:
    """The number L of single-level MeshGraphNet blocks whose parameter count is closest to that
    of the multi-scale model ``config`` (same latent width and MLP depth; the node encoder and
    decoder are the same in both, so the node feature count does not matter)."""
    from graphfem.operators.meshgraphnet import MeshGraphNet, MeshGraphNetConfig
    from graphfem.operators.multiscale_meshgraphnet import MultiScaleMeshGraphNet, MultiScaleMeshGraphNetConfig

    target = parameters(MultiScaleMeshGraphNet(MultiScaleMeshGraphNetConfig(**config)))
    shared = {k: config[k] for k in ("latent", "mlp_layers") if k in config}
    sizes = {L: parameters(MeshGraphNet(MeshGraphNetConfig(**shared, layers=L))) for L in range(1, 64)}
    return min(sizes, key=lambda L: abs(sizes[L] - target))


def linear_shapes(model, *inputs) -> list[tuple[int, int, int]]:
    """(rows, in, out) of every ``nn.Linear`` call in one forward of ``model(*inputs)``:
    the layer costs 2 · rows · in · out floating-point operations."""
    import torch

    shapes: list[tuple[int, int, int]] = []

    def hook(module, args, output):
        shapes.append((args[0].numel() // module.in_features, module.in_features, module.out_features))

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def _no_sync() -> None:
    """The CPU's stand-in for ``torch.cuda.synchronize``."""


def _best_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None], budget: float = float("inf"),
               spend: float = 0.0) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn`` after a warm-up call (each ended by ``sync``),
    and of as many more (up to 50 in all) as fit in ``spend`` seconds: a call of a few milliseconds on a
    shared machine is often slowed by a neighbour, and three tries leave that to luck; the warm-up's own
    time when it takes more than ``budget`` seconds."""
    start = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - start
    if first > budget:
        return first
    best, calls, began = float("inf"), 0, time.perf_counter()
    while calls < repeats or (calls < 50 and time.perf_counter() - began < spend):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
        calls += 1
    return best


def throughput(nodes: int, device: str, latent: int = 128, layers: int = 15, mlp_layers: int = 3,
               repeats: int = 3) -> dict:
    """GFLOP/s of one MeshGraphNet forward (``layers`` blocks of width ``latent``, ``mlp_layers``
    linear layers per MLP: PhysicsNeMo's default configuration, whose MLPs have 2 hidden layers)
    on a unit-square mesh of about ``nodes`` nodes, and of plain
    ``torch.matmul`` calls of the same shapes (the linear layers' FLOPs, counted from their
    shapes, over the best of ``repeats`` wall times)."""
    import numpy as np
    import torch

    from graphfem.families.meshgraphnet import graph
    from graphfem.meshes import Mesh
    from graphfem.operators.meshgraphnet import MeshGraphNet, MeshGraphNetConfig

    mesh = Mesh.unit_square(max(2, int(round(nodes ** 0.5)) - 1))
    g = graph(mesh, np.random.default_rng(0).normal(size=(mesh.n_points, 7))).to(device)
    model = MeshGraphNet(MeshGraphNetConfig(in_node=7, in_edge=3, out=1, latent=latent, layers=layers,
                                            mlp_layers=mlp_layers))
    model = model.to(device).eval()
    shapes = linear_shapes(model, g.x, g.edge_index, g.edge_attr)
    flops = sum(2 * r * i * o for r, i, o in shapes)
    sync = torch.cuda.synchronize if device.startswith("cuda") else _no_sync
    with torch.no_grad():
        t_model = _best_time(lambda: model(g.x, g.edge_index, g.edge_attr), repeats, sync)
    gen = torch.Generator(device=device).manual_seed(0)
    mats = [(torch.randn(r, i, device=device, generator=gen), torch.randn(i, o, device=device, generator=gen))
            for r, i, o in shapes]
    t_mm = _best_time(lambda: [a @ b for a, b in mats], repeats, sync)
    return {"nodes": mesh.n_points, "edges": int(g.edge_index.shape[1]), "gflop": flops / 1e9,
            "forward_s": t_model, "matmul_s": t_mm, "gflops": flops / t_model / 1e9,
            "matmul_gflops": flops / t_mm / 1e9}


def _train_config(name: str, model: dict, path, out, cfg: dict, device: str):
    from graphfem.training.config import DataConfig, OptimConfig, RunConfig, TrainConfig

    return TrainConfig(model={"name": name, **model},
                       data=DataConfig(path=str(path), val_fraction=0.1, test_fraction=0.1, batch_size=cfg["batch"]),
                       optim=OptimConfig(optimizer="adamw", lr=cfg["lr"], epochs=cfg["epochs"], warmup_steps=20,
                                         min_lr_ratio=0.02, weight_decay=1e-5),
                       run=RunConfig(out=str(out), seed=0, device=device, progress=False, threads=1,
                                     checkpoint_every=cfg["epochs"]))


def compare(size: str = "small", device: str = "auto", folder: str | None = None) -> str:
    """Train single-level and multi-scale MeshGraphNet at an equal parameter count on one
    ``graphfem generate poisson`` data set; return the table of held-out errors, predict / FE
    time ratios from 1k cells up and GFLOP/s against a plain matmul (with the machine)."""
    import warnings

    import torch

    from graphfem.checkpoint import load
    from graphfem.devices import resolve_device
    from graphfem.meshes import Mesh
    from graphfem.physics import poisson
    from graphfem.training.trainer import train

    from . import machine, timed_generate, work_folder

    cfg = SIZES[size]
    device = resolve_device(device)
    torch.set_num_threads(1)
    root, tmp = work_folder(folder)
    data = root / "poisson.h5"
    t_gen = timed_generate("poisson", cfg["samples"], data, seed=0)
    multi = {k: cfg[k] for k in ("latent", "levels", "blocks", "coarse_blocks")}
    single = {"latent": cfg["latent"], "layers": equal_size_layers(multi)}
    models = []
    for name, model in (("meshgraphnet", single), ("multiscale_meshgraphnet", multi)):
        start = time.perf_counter()
        final = train(_train_config(name, model, data, root / name, cfg, device))
        surrogate = load(str(root / name / "model.safetensors"), device=device)
        models.append((name, model, surrogate, final, time.perf_counter() - start))
    lines = [f"graphfem bench surrogate: single-level vs multi-scale MeshGraphNet, size {size}, on {device} "
             f"({machine()})",
             f"Poisson data: graphfem generate poisson -n {cfg['samples']} (random 2D domains of 50-400 nodes, two "
             f"materials, random source and Dirichlet parts; {t_gen:.0f} s), 80/10/10 % train/val/test split, "
             f"{cfg['epochs']} epochs, batch {cfg['batch']}",
             f"{'model':<26}{'config':<48}{'params':>9}{'train s':>9}{'held-out rel L2 mean':>22}{'max':>7}"]
    for name, model, surrogate, final, t in models:
        text = ", ".join(f"{k} {v}" for k, v in model.items())
        lines.append(f"{name:<26}{text:<48}{parameters(surrogate.model):>9,}{t:>9.0f}"
                     f"{final['test_rel_l2_u']:>22.4f}{final['test_rel_l2_u_max']:>7.3f}")
    lines.append("unit square, kappa = 1, f = 1, u = 0 on the boundary (larger than every training mesh: "
                 "extrapolation); predict includes the graph (and hierarchy) build; FE = graphfem.physics.poisson")
    lines.append(f"{'cells':>9}{'nodes':>9}{'FE s':>8}" + "".join(f"{tag + ' s':>10}{tag + '/FE':>10}{tag + ' L2':>9}"
                                                            for tag in ("MGN", "MS")))
    for surrogate in (m[2] for m in models):  # warm-up
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            surrogate.predict(Mesh.unit_square(8))
    for target in cfg["cells"]:
        mesh = Mesh.unit_square(max(2, int(round((target / 2) ** 0.5))))
        start = time.perf_counter()
        sol = poisson(mesh, kappa=1.0, f=1.0)
        t_fe = time.perf_counter() - start
        row = f"{mesh.n_cells:>9}{mesh.n_points:>9}{t_fe:>8.3f}"
        for surrogate in (m[2] for m in models):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # outside the training ranges, as the header says
                pred, t_pred = surrogate.timed_prediction(mesh)
            rel = sol.space.relative_l2_error(pred.fields["u"], sol.fields["u"])
            row += f"{t_pred:>10.3f}{t_pred / t_fe:>10.1f}{rel:>9.3f}"
        lines.append(row)
    lines.append("one MeshGraphNet forward at PhysicsNeMo's default configuration (15 blocks, width 128, 3 linear "
                 "layers per MLP), "
                 "FLOPs of the linear layers from their shapes; matmul: torch.matmul of the same shapes")
    lines.append(f"{'nodes':>9}{'edges':>9}{'GFLOP':>8}{'forward s':>11}{'GFLOP/s':>9}{'matmul s':>10}"
                 f"{'matmul GFLOP/s':>16}{'forward/matmul':>16}")
    for nodes in cfg["flops_nodes"]:
        r = throughput(nodes, device)
        lines.append(f"{r['nodes']:>9}{r['edges']:>9}{r['gflop']:>8.1f}{r['forward_s']:>11.3f}{r['gflops']:>9.1f}"
                     f"{r['matmul_s']:>10.3f}{r['matmul_gflops']:>16.1f}{r['forward_s'] / r['matmul_s']:>15.2f}x")
    if tmp is not None:
        tmp.cleanup()
    return "\n".join(lines)


__all__ = ["CASES", "DEFAULT_SIZES", "SIZES", "compare", "equal_size_layers", "linear_shapes", "meshes_for", "parameters", "peak_memory",
           "run", "throughput"]
