"""``graphfem generate-text "PROMPT" --mesh MESH -o traj.pvd``: a whole trajectory from a text (or a first frame)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from graphfem.meshes.errors import InputError, OptionValueError

#: where ``graphfem train examples/text2pde_text.yaml`` writes the text model
DEFAULT_MODEL = Path("runs/text2pde-text/model.safetensors")


def read_first_frame(path: Path, fields, mesh) -> np.ndarray:
    """(n, C) the point fields ``fields`` of a mesh file (VTU, ...), or of the first frame of a series (PVD,
    XDMF), with ``mesh``'s node count; one line otherwise."""
    from graphfem.meshes import Mesh
    from graphfem.meshes.io import read_series

    if Path(path).suffix.lower() in (".pvd", ".xdmf", ".xmf"):
        frame_mesh, _, series = read_series(path)
        n, data = frame_mesh.n_points, {k: np.asarray(v)[0] for k, v in series.items()}
    else:
        frame = Mesh.read(path)
        n, data = frame.n_points, dict(frame.point_data)
    missing = [k for k in fields if k not in data]
    if missing:
        raise InputError(f"no point field {', '.join(missing)} (it has {', '.join(data) or 'none'})", path)
    if n != mesh.n_points:
        raise InputError(f"{n} nodes; the --mesh has {mesh.n_points}", path)
    y0 = np.stack([np.asarray(data[k], float).reshape(-1) for k in fields], -1)
    if not np.isfinite(y0).all():
        raise InputError("the first frame has non-finite values", path)
    return y0


def register(app: typer.Typer) -> None:
    """Add ``generate-text`` to ``app``."""

    @app.command("generate-text")
    def generate_text(prompt: Optional[str] = typer.Argument(None, help="The caption, with the numbers the model "
                                                             "was trained on (radius, position, inlet velocity)."),
                      mesh_path: Optional[Path] = typer.Option(None, "--mesh", help="Mesh to generate on (default: "
                                                               "the --first-frame file's)."),
                      output: Path = typer.Option(..., "-o", "--output", help="PVD series to write (u, v, p)."),
                      model_path: Path = typer.Option(DEFAULT_MODEL, "--model", help="text2pde-ldm checkpoint."),
                      first_frame: Optional[Path] = typer.Option(None, "--first-frame", help="VTU with u, v, p at "
                                                                 "t = 0, or a PVD series (its first frame)."),
                      seed: int = typer.Option(0, "--seed", help="Seed of the initial noise."),
                      sampler_steps: Optional[int] = typer.Option(None, "--sampler-steps", metavar="N",
                                                                  help="Denoising steps of the sampler (default "
                                                                       "20)."),
                      steps: Optional[int] = typer.Option(None, "--steps", hidden=True,
                                                          help="Deprecated name of --sampler-steps."),
                      sampler: str = typer.Option("ddim", "--sampler", help="ddim or dpm++2m."),
                      guidance: float = typer.Option(1.0, "--guidance", help="Classifier-free guidance scale "
                                                     "(1: conditional only)."),
                      strict: bool = typer.Option(False, "--strict", help="Refuse conditioning outside the "
                                                  "model's training ranges (default: a warning per number)."),
                      device: str = typer.Option("auto", "--device", help="auto, cpu or cuda.")) -> None:
        """Generate a whole trajectory with a Text2PDE latent diffusion model (templated captions: parameter
        conditioning, not language understanding)."""
        import time

        from graphfem.checkpoint import load_model
        from graphfem.devices import resolve_device
        from graphfem.families.text2pde import generate
        from graphfem.meshes import Mesh
        from graphfem.physics.problem import DeprecatedOption

        if steps is not None:  # --steps means load steps elsewhere (solve hyperelastic, fe2)
            if sampler_steps is not None:
                raise InputError("--steps and --sampler-steps are one option; give --sampler-steps only")
            warnings.warn("--steps is deprecated: use --sampler-steps (the same option of generate-text)",
                          DeprecatedOption, stacklevel=2)
        steps = sampler_steps if sampler_steps is not None else 20 if steps is None else steps
        if output.suffix.lower() not in (".pvd", ".xdmf", ".xmf"):
            raise InputError("-o: a trajectory is written as .pvd (or .xdmf)", output)
        if sampler not in ("ddim", "dpm++2m"):
            raise OptionValueError(f"--sampler {sampler!r}: ddim or dpm++2m")
        if not np.isfinite(guidance):
            raise InputError(f"--guidance must be finite, got {guidance}")
        if (prompt is None) == (first_frame is None):
            raise InputError("give a PROMPT or --first-frame FILE (one of them)")
        if mesh_path is None and first_frame is None:
            raise InputError("--mesh is required with a PROMPT")
        if not Path(model_path).is_file():
            raise InputError("no such checkpoint (train one: graphfem train examples/text2pde_text.yaml)", model_path)
        model, meta = load_model(model_path)
        if meta.get("model") != "text2pde-ldm":
            raise InputError(f"a {meta.get('model')} checkpoint; generate-text needs a text2pde-ldm model", model_path)
        device = resolve_device(device)
        model = model.to(device)
        if mesh_path is None and Path(first_frame).suffix.lower() in (".pvd", ".xdmf", ".xmf"):
            from graphfem.meshes.io import read_series

            mesh = read_series(first_frame)[0]
        else:
            mesh = Mesh.read(mesh_path or first_frame)
        y0 = read_first_frame(first_frame, meta["problem"]["fields"], mesh) if first_frame else None
        start = time.perf_counter()
        pred = generate(model, meta, mesh, prompt=prompt, first_frame=y0, seeds=[seed], steps=steps,
                        sampler=sampler, guidance=guidance, device=device, strict=strict)[0]
        took = time.perf_counter() - start
        pred.write(output)
        typer.echo(f"wrote {output}: {', '.join(pred.fields)} at {mesh.n_points} nodes, {len(pred.times)} frames "
                   f"t = {pred.times[0]:g}..{pred.times[-1]:g} ({sampler}, {steps} steps, seed {seed}, {took:.2f} s)")
