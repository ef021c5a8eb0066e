"""Verified Koopman analysis of the DFG 2D-2 vortex street (Re = 100).

    python examples/koopman_vortex_street.py [OUT] [--data OUT/vortex_street.h5]

Without ``--data`` it first runs ``examples/vortex_street.py`` (about 7-20
minutes on 2 cores). The velocity snapshots (every 0.05 time units) from
t >= T0 = 5, where the shedding is periodic, are analysed with M-orthonormal
POD coordinates (the P1 mass matrix of the mesh as the inner product). A
periodic flow has Koopman eigenvalues exp(i k ω Δt) on the unit circle, ω the
shedding frequency: the script checks that the best-resolved eigenvalues lie
near the unit circle, at multiples of the frequency measured from the lift
history, with small residuals. Writes OUT/report/ (eigenvalues.csv,
spectrum.json, eigenvalues.png, modes.vtu) and OUT/modes.png.

The same report from the command line, on the whole series:
    graphfem koopman OUT/vortex_street.h5 -o OUT/report --dictionary pod:20 --field velocity
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import h5py
import numpy as np

from graphfem.analysis import koopman as kp
from graphfem.meshes import Mesh, Trajectory

T0 = 5.0


def shedding_frequency(forces_csv: Path) -> float:
    """Angular frequency of the lift c_L(t) after T0, from its zero crossings."""
    t, _, c_l = np.loadtxt(forces_csv, delimiter=",", skiprows=1).T
    keep = t >= T0
    t, c_l = t[keep], c_l[keep] - c_l[keep].mean()
    up = np.flatnonzero((c_l[:-1] < 0) & (c_l[1:] >= 0))
    crossings = t[up] - c_l[up] * (t[up + 1] - t[up]) / (c_l[up + 1] - c_l[up])
    return 2 * np.pi / np.mean(np.diff(crossings))


def main(out: Path, data: Path | None = None, rank: int = 20) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        spec = importlib.util.spec_from_file_location("vortex_street", Path(__file__).with_name("vortex_street.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main(out)
        data = out / "vortex_street.h5"
    with h5py.File(data, "r") as f:
        g = f["sim0"]
        times = g["times"][()]
        velocity = g["outputs/velocity"][()]
        cell_type = g["mesh/cells"].attrs["cell_type"]
        mesh = Mesh(g["mesh/points"][()], str(cell_type), g["mesh/cells"][()])
    keep = times >= T0
    trajectory = Trajectory(times[keep], {"velocity": velocity[keep]}, mesh, units={"velocity": "m/s"})
    dt = float(np.diff(trajectory.times).mean())
    result = kp.edmd(kp.snapshot_pairs([trajectory], field="velocity"), dictionary=f"pod:{rank}", dt=dt)
    summary = kp.write_report(result, out / "report", grid=(-1.3, 1.3, -1.3, 1.3, 161))

    omega = shedding_frequency(data.with_name("forces.csv"))
    angles = np.angle(result.eigenvalues)
    best = np.argsort(result.residuals)[:7]
    print(f"{result.dictionary.describe()}: {len(result.eigenvalues)} eigenvalues from "
          f"{trajectory.n_steps - 1} pairs (t >= {T0}), dt = {dt:g}; shedding ω Δt = {omega * dt:.4f} rad "
          f"(Strouhal {omega / (2 * np.pi) * 0.1:.4f})")
    print("   lambda                  |lambda|   angle/(ω Δt)   residual")
    for j in best:
        lam = result.eigenvalues[j]
        print(f"  {lam.real:+.6f}{lam.imag:+.6f}i   {abs(lam):.5f}   {angles[j] / (omega * dt):+8.3f}     "
              f"{result.residuals[j]:.2e}")
    print(f"certified points {len(summary['certified'])}, certificate E = {summary['certificate']:.3g}")
    kp.plot_modes(out / "modes.png", result, mesh, [j for j in best if result.eigenvalues[j].imag > 0][:3],
                  component=1)
    print(f"report: {out / 'report'}; modes: {out / 'modes.png'}")
    return {"eigenvalues": result.eigenvalues[best], "residuals": result.residuals[best],
            "harmonics": angles[best] / (omega * dt)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="out/koopman_vortex_street", type=Path)
    parser.add_argument("--data", type=Path, default=None, help="vortex_street.h5 written by vortex_street.py")
    args = parser.parse_args()
    main(args.out, args.data)
