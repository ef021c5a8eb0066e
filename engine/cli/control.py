"""``graphfem control MODEL --target-frequency F``: the inflow peak that makes a trained NeuralStagger
model shed vortices at F, found through its differentiable rollout, checked with the MAC solver."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer

from graphfem.meshes.errors import InputError, OptionValueError


def _pair(text: str, option: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        values = tuple(float(x) for x in parts)
    except ValueError:
        values = ()
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        raise OptionValueError(f"{option}: expected two numbers X,Y, got {text!r}")
    return values


def register(app: typer.Typer) -> None:
    """Add ``control`` to ``app``."""

    @app.command("control")
    def control_cmd(model_path: Path = typer.Argument(..., help="NeuralStagger checkpoint (.safetensors)."),
                    target: float = typer.Option(..., "--target-frequency", help="Shedding frequency to hit (1/s)."),
                    u0: float = typer.Option(1.5, "--u0", help="Initial inflow peak (inside the training range)."),
                    nu: Optional[float] = typer.Option(None, "--nu", help="Viscosity (default: mid training range)."),
                    centre: str = typer.Option("0.5,0.51", "--centre", help="Cylinder centre X,Y."),
                    diameter: float = typer.Option(0.2, "--diameter", help="Cylinder diameter."),
                    probe: str = typer.Option("1.0,0.5", "--probe", help="Probe point X,Y of the transverse velocity."),
                    iterations: int = typer.Option(20, "--iterations", help="Adam iterations."),
                    lr: float = typer.Option(0.05, "--lr", help="Adam learning rate on the inflow peak."),
                    start: int = typer.Option(200, "--start-steps", help="Model steps from the impulsive start."),
                    warmup: int = typer.Option(40, "--warmup-steps", help="Steps without gradient per iteration."),
                    window: int = typer.Option(120, "--window-steps", help="Differentiable steps per iteration."),
                    verify: bool = typer.Option(True, "--verify/--no-verify", help="Run the MAC solver at the result."),
                    verify_t_end: float = typer.Option(10.0, "--verify-t-end", help="MAC run length (s)."),
                    verify_window: float = typer.Option(6.0, "--verify-window", help="MAC spectrum window (s)."),
                    output: Optional[Path] = typer.Option(None, "-o", "--output", help="JSON file of the result."),
                    device: str = typer.Option("cpu", "--device", help="cpu or cuda.")) -> None:
        """Optimise the inflow peak of a cylinder channel to a target vortex-shedding frequency through
        the model's differentiable rollout (soft spectral peak of a probe velocity), then measure the
        MAC solver's frequency at the found inflow."""
        from graphfem.analysis.shedding_control import control_model
        from graphfem.checkpoint import load_model
        from graphfem.devices import resolve_device
        from graphfem.meshes.io import atomic_path

        if output is not None and output.suffix.lower() != ".json":
            raise InputError("-o: the control result is written as .json", output)
        for name, value in (("--target-frequency", target), ("--u0", u0), ("--diameter", diameter),
                            ("--verify-t-end", verify_t_end), ("--verify-window", verify_window)):
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{name}: expected a positive number, got {value:g}")
        if nu is not None and not (math.isfinite(nu) and nu > 0):
            raise InputError(f"--nu: expected a positive viscosity, got {nu:g}")
        xy, probe_xy = _pair(centre, "--centre"), _pair(probe, "--probe")
        model, meta = load_model(model_path)
        if meta.get("model") != "neuralstagger":
            raise InputError(f"a {meta.get('model')} checkpoint; control needs a neuralstagger model", model_path)
        device = resolve_device(device)
        model = model.to(device).float()

        def log(row: dict) -> None:
            typer.echo(f"iteration {row['iteration']:>3}: u_max {row['u_max']:.4f}  soft-peak f {row['frequency']:.4f}"
                       f"  J {row['J']:.2e}")

        result = control_model(model, meta, target, u0=u0, nu=nu, centre=xy, diameter=diameter, probe=probe_xy,
                               iterations=iterations, lr=lr, start=start, warmup=warmup, window=window,
                               verify_t_end=verify_t_end, verify_window=verify_window, verify=verify, device=device,
                               log=log)
        m = result["model"]
        typer.echo(f"found u_max = {result['u_max']:.4f} (mean inflow {2 * result['u_max'] / 3:.4f}) for a target "
                   f"{target:g} 1/s at nu = {result['nu']:g}")
        shed = (f"f = {m['frequency']:.4f} 1/s, St = {m['strouhal']:.4f}" if m["shedding"] else
                f"no shedding (probe std {m['amplitude']:.2e}, peak share {m['peak_share']:.2f}); St: n/a")
        typer.echo(f"model at u_max: {shed} (FFT resolution {m['resolution']:.3f} 1/s over {window} steps)")
        if verify:
            r = result["mac"]
            ref = (f"f = {r['frequency']:.4f} 1/s, St = {r['strouhal']:.4f}, {100 * result['mac_frequency_error']:+.1f} "
                   f"% of the target" if r["shedding"] else
                   f"no shedding (probe std {r['amplitude']:.2e}); St: n/a")
            typer.echo(f"MAC solver at u_max: {ref} (FFT resolution {r['resolution']:.3f} 1/s over the last "
                       f"{verify_window:g} of {verify_t_end:g} s, {r['seconds']:.0f} s of solving)")
        if output is not None:
            clean = json.loads(json.dumps(result, default=float).replace("NaN", "null"))
            with atomic_path(output) as tmp:
                Path(tmp).write_text(json.dumps(clean, indent=1))
            typer.echo(f"wrote {output}")
