"""``graphfem koopman``: verified Koopman analysis (EDMD + ResDMD) of snapshot data."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from graphfem.meshes.errors import GraphfemError


def register(app: typer.Typer) -> None:
    """Add the ``koopman`` command to ``app``."""

    @app.command("koopman")
    def koopman(
        data: Path = typer.Argument(..., help="Snapshot data: .npz (X, Y[, weights, dt]), .pvd/.xdmf series "
                                              "or .h5 dataset (groups with times, outputs/<name>, mesh/)."),
        output: Path = typer.Option(..., "-o", "--output", help="Report folder (replaced atomically)."),
        rank: Optional[int] = typer.Option(None, "--rank", help="POD rank / kernel dictionary size."),
        dictionary: str = typer.Option("auto", "--dictionary",
                                       help="linear | pod[:R] | monomial:DEG | fourier:KMAX[:unit] | rbf:N | "
                                            "kernel:gaussian|laplacian|polynomial[:N]; auto = pod for mesh "
                                            "data, linear otherwise."),
        grid: str = typer.Option("auto", "--grid", help="Pseudospectrum grid re_min,re_max,im_min,im_max,n[,n_im]."),
        field: Optional[str] = typer.Option(None, "--field", help="Field to analyse when the data hold several."),
        residuals: str = typer.Option("auto", "--residuals", help="auto | train | heldout."),
        measure_preserving: bool = typer.Option(False, "--measure-preserving",
                                                help="Certify with max(tau, |1-|z||)."),
        backend: str = typer.Option("numpy", "--backend", help="numpy | torch (batched, CUDA if present)."),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Eigenvalues with residuals, pseudospectrum and certified spectrum of the
        Koopman operator learned from DATA; writes eigenvalues.csv, spectrum.json,
        eigenvalues.png (and modes.vtu for mesh data) into OUTPUT. Bad input is
        refused in one line (exit code 1), with nothing written."""
        import warnings

        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        from graphfem.analysis import koopman as kp

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", kp.KoopmanWarning)
            snaps = kp.load_snapshots(data, field=field)
            try:
                result = kp.edmd(snaps, dictionary=dictionary, rank=rank, residuals_on=residuals, seed=seed)
                kp.grid_points(grid, result.eigenvalues)  # validate before the long part
            except GraphfemError as exc:
                raise exc.with_source(data) from None
            with Progress(TextColumn("tau(z) on grid"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                          TimeRemainingColumn(), transient=True, console=None) as bar:
                task = bar.add_task("grid", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                summary = kp.write_report(result, output, grid=grid, backend=backend,
                                          measure_preserving=measure_preserving, progress=progress)
        for w in caught:
            typer.echo(f"graphfem: warning: {w.message}", err=True)
        best = sorted(summary["eigenvalues"], key=lambda e: e["residual"])[:5]
        typer.echo(f"{summary['dictionary']}: {len(summary['eigenvalues'])} eigenvalues, "
                   f"{summary['residual_kind']} residuals; certified {len(summary['certified'])} points, "
                   f"E = {summary['certificate']:.3g}; report in {output}")
        for e in best:
            typer.echo(f"  lambda = {e['real']:+.6f} {e['imag']:+.6f}i  residual {e['residual']:.2e}")
        sys.stdout.flush()
