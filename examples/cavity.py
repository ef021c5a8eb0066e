"""Lid-driven cavity at Re = 100 on a MAC grid against Ghia, Ghia & Shin (1982); writes VTU + PNG.

    python examples/cavity.py [OUT]     (default out/cavity, about 10 s)
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from graphfem.physics.grid import lid_driven_cavity, vertical_centreline_u  # noqa: E402

#: Ghia, Ghia & Shin (1982), Table I, Re = 100: u on the vertical centreline.
GHIA_Y = np.array([0.9766, 0.9531, 0.8516, 0.7344, 0.6172, 0.5, 0.4531, 0.2813, 0.1719, 0.1016, 0.0625])
GHIA_U = np.array([0.84123, 0.68717, 0.23151, 0.00332, -0.13641, -0.20581, -0.21090, -0.15662, -0.10150,
                   -0.06434, -0.04192])


def main(out: Path, n: int = 48) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    state = lid_driven_cavity(n, re=100)
    u = vertical_centreline_u(state, GHIA_Y)
    print(f"   y      u (MAC {n}x{n})   u (Ghia)")
    for yi, a, b in zip(GHIA_Y, u, GHIA_U):
        print(f"{yi:.4f}  {a:+.5f}       {b:+.5f}")
    error = float(np.abs(u - GHIA_U).max())
    print(f"max |u - Ghia| = {error:.4f} (lid speed 1); max |div u| = {state.info['max_divergence']:.1e}; "
          f"{state.info['steps']} steps")
    state.write(out / "cavity.vtu")
    uc, vc = state.cell_velocity()
    xs = (np.arange(n) + 0.5) / n
    fig = plt.figure()
    plt.streamplot(xs, xs, uc.T, vc.T, density=1.5)
    fig.savefig(out / "cavity.png", dpi=80)
    plt.close(fig)
    print(f"wrote {out}/cavity.vtu and {out}/cavity.png")
    return {"max_error": error, "max_divergence": state.info["max_divergence"]}


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out/cavity"))
