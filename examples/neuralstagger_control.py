"""Shedding-frequency control through a NeuralStagger rollout, checked with the MAC solver.

Generates ``graphfem generate mac-cylinder`` data (the grid, dt and the channel distribution: discs
of diameter 0.2 at Re ~ 64 .. 160), trains the stepper of examples/neuralstagger_cylinder.yaml
**without labels** (the vanilla model, which sheds; or takes a trained ``model``), then
optimises the inflow peak of a cylinder channel of our own (centre (0.5, 0.49), nu = 0.0018) by
Adam through the model's differentiable rollout to a target shedding frequency
(:func:`graphfem.analysis.shedding_control.control_model`: soft spectral peak of the probe's
transverse velocity), runs the project's MAC solver at the found inflow and draws the control's
history, both probe signals and their spectra.

    python examples/neuralstagger_control.py [MODEL]   # examples/figures/neuralstagger_control.png
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CASE = {"centre": (0.5, 0.49), "diameter": 0.2, "probe": (1.0, 0.5), "nu": 0.0018}


def main(out: Path | str = HERE / "figures", work: Path | str | None = None, model: Path | str | None = None,
         samples: int = 3, resolution: int = 24, epochs: int | None = None, target: float = 1.1,
         iterations: int = 20, window: int = 200, t_end: float = 20.0, spectrum_window: float = 14.0) -> dict:
    """Train (unless ``model``; ``epochs`` None: the config's), control, verify and draw; returns the control
    result and the figure."""
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    import yaml

    from graphfem.analysis.shedding_control import ModelShedding, control_model
    from graphfem.checkpoint import load_model
    from graphfem.meshes import Grid
    from graphfem.physics.mac_channel import cylinder_domain

    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory() if work is None else None
    work = Path(work or tmp.name)
    if model is None:
        from graphfem.datasets.generate import generate
        from graphfem.training.config import TrainConfig, from_dict
        from graphfem.training.trainer import train

        data = work / "cylinder.h5"
        generate("mac-cylinder", samples, data, seed=7, resolution=resolution, progress=False)
        config = yaml.safe_load((HERE / "neuralstagger_cylinder.yaml").read_text())
        config["data"]["path"] = str(data)
        config["run"].update(out=str(work / "run"), progress=False)
        if epochs is not None:
            config["optim"]["phases"][0]["epochs"] = epochs
        train(from_dict(TrainConfig, config))
        model = work / "run" / "model.safetensors"
    net, meta = load_model(model)
    net = net.float()
    result = control_model(net, meta, target, u0=1.5, nu=CASE["nu"], centre=CASE["centre"],
                           diameter=CASE["diameter"], probe=CASE["probe"], iterations=iterations, window=window,
                           verify_t_end=t_end, verify_window=spectrum_window)
    c = net.config
    grid = Grid((c.nx, c.ny), (c.x_min, c.y_min), (c.x_max, c.y_max))
    u = result["u_max"]
    domain = cylinder_domain(grid, u, CASE["nu"], CASE["centre"], CASE["diameter"])
    ref = result["mac"]
    keep = int(round(spectrum_window / c.dt))
    shed = ModelShedding(net, domain.solid, CASE["nu"], CASE["probe"], start=int(round(t_end / c.dt)) - keep,
                         warmup=0, window=keep)
    with torch.no_grad():
        learned = shed(torch.tensor(u, dtype=torch.float64)).double().numpy()
    mac = np.asarray(ref["signal"])[-keep:]
    name = "learned, vanilla" if c.s_h * c.s_w * c.s_t == 1 else f"NeuralStagger {c.s_h} x {c.s_w} x {c.s_t}"

    fig, axes = plt.subplots(3, 1, figsize=(8.5, 10), constrained_layout=True)
    hist = result["history"]
    it = [r["iteration"] for r in hist]
    ax = axes[0]
    ax.plot(it, [r["frequency"] for r in hist], "o-", label="model's soft spectral peak f (1/s)")
    ax.axhline(target, color="k", ls="--", lw=1, label=f"target {target:g} 1/s")
    if ref["shedding"]:
        ax.axhline(ref["frequency"], color="C3", ls=":", label=f"MAC solver at the found u_max: {ref['frequency']:.3f}")
    ax.set_xlabel("Adam iteration")
    ax.set_ylabel("frequency (1/s)")
    twin = ax.twinx()
    twin.plot(it, [r["u_max"] for r in hist], "s-", color="C2", label="inflow peak u_max (m/s)")
    twin.set_ylabel("u_max (m/s)", color="C2")
    ax.legend(loc="lower left", fontsize=8)
    twin.legend(loc="upper right", fontsize=8)
    ax.set_title("control of the shedding frequency through the differentiable rollout", fontsize=10)
    ax.grid(alpha=0.3)
    t = t_end - spectrum_window + c.dt * np.arange(1, keep + 1)
    ax = axes[1]
    ax.plot(t, mac, label="MAC solver")
    ax.plot(t, learned, label=name)
    ax.set_xlabel("t (s)")
    ax.set_ylabel("probe v (m/s)")
    ax.set_title(f"transverse velocity at {CASE['probe']} behind the cylinder, u_max = {u:.3f} m/s", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[2]
    freq = np.fft.rfftfreq(keep, c.dt)
    for sig, label in ((mac, "MAC solver"), (learned, name)):
        x = (sig - sig.mean()) * np.hanning(keep)
        ax.semilogy(freq, np.abs(np.fft.rfft(x)) / keep + 1e-12, label=label)
    ax.axvline(target, color="k", ls="--", lw=1, label="target")
    ax.set_xlim(0, 5)
    ax.set_xlabel(f"frequency (1/s), bin width {1 / spectrum_window:.3f} 1/s")
    ax.set_ylabel("|FFT| of the windowed probe v (m/s)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    m = result["model"]
    fig.suptitle(f"Cylinder D = {CASE['diameter']:g} at {CASE['centre']}, nu = {CASE['nu']:g} m^2/s, dt = {c.dt:g} s, "
                 f"{c.nx} x {c.ny} cells\nmodel: "
                 + (f"St {m['strouhal']:.3f}" if m["shedding"] else "no shedding (St n/a)")
                 + "; MAC solver: " + (f"St {ref['strouhal']:.3f}" if ref["shedding"] else "no shedding"),
                 fontsize=11)
    path = out / "neuralstagger_control.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    if tmp is not None:
        tmp.cleanup()
    return {**result, "figure": str(path)}


if __name__ == "__main__":
    result = main(model=sys.argv[1] if len(sys.argv) > 1 else None)
    mac = result["mac"]
    print(f"wrote {result['figure']}: u_max {result['u_max']:.4f}; MAC solver there "
          + (f"f = {mac['frequency']:.4f} 1/s ({100 * result['mac_frequency_error']:+.1f} % of the target)"
             if mac["shedding"] else "does not shed"))
