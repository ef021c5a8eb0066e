"""Text2PDE figure: a prompt, the generated trajectory and the FE reference, frame by frame.

    python examples/text2pde_figure.py traj.pvd ref.pvd "PROMPT" examples/figures/text2pde.png

Rows: u, v and p, each generated and FE reference on one colour scale (velocities in m/s, the kinematic
pressure p in m²/s²); u, the streamwise velocity, on a sequential map, the signed v and p on a diverging map
centred on 0; columns: five frames. The title is the prompt and the relative L2 errors of u, v, p over the
whole trajectory (lumped P1 mass norm).
"""
from __future__ import annotations

import sys
import textwrap

import numpy as np

#: field -> (unit, signed: a diverging map centred on 0)
FIELDS = {"u": ("m/s", False), "v": ("m/s", True), "p": ("m²/s²", True)}


def main(generated: str, reference: str, prompt: str, out: str) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.tri import Triangulation

    from graphfem.families.text2pde import relative_errors
    from graphfem.meshes.io import read_series

    mesh, times, gen = read_series(generated)
    ref_mesh, ref_times, ref = read_series(reference)
    if ref_mesh.n_points != mesh.n_points or len(ref_times) != len(times):
        raise SystemExit("the two series are not on one mesh with one set of frames")
    stack = lambda f: np.stack([f[k] for k in FIELDS], -1)  # noqa: E731
    err = relative_errors(mesh, stack(gen), stack(ref), list(FIELDS))
    tri = Triangulation(mesh.points[:, 0], mesh.points[:, 1], mesh.corner_cells)
    cols = np.unique(np.linspace(0, len(times) - 1, 5).round().astype(int))
    lo, hi = mesh.points.min(0), mesh.points.max(0)
    panel = 2.9 * (hi[1] - lo[1]) / (hi[0] - lo[0])  # inches high of a 2.9-inch-wide panel
    fig, axes = plt.subplots(2 * len(FIELDS), len(cols), sharex=True, sharey=True, layout="constrained",
                             figsize=(2.9 * len(cols) + 1.2, 2 * len(FIELDS) * (panel + 0.32) + 0.9))
    for f, (name, (unit, signed)) in enumerate(FIELDS.items()):
        both = np.concatenate([gen[name].ravel(), ref[name].ravel()])
        if signed:
            lim = float(np.abs(both).max())
            kw = {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim}
        else:
            kw = {"cmap": "viridis", "vmin": float(both.min()), "vmax": float(both.max())}
        for s, (series, what) in enumerate(((gen, "generated"), (ref, "FE reference"))):
            r = 2 * f + s
            for c, k in enumerate(cols):
                ax = axes[r, c]
                im = ax.tripcolor(tri, series[name][k], shading="gouraud", **kw)
                ax.set_aspect("equal")
                ax.set_xlim(lo[0], hi[0])
                ax.set_ylim(lo[1], hi[1])
                ax.set_facecolor("0.6")  # the cylinder, apart from the white 0 of the diverging maps
                if r == 0:
                    ax.set_title(f"t = {times[k]:.2f} s", fontsize=10)
                if c == 0:
                    ax.set_ylabel(f"{name}, {what}\n\ny (m)", fontsize=9, rotation=0, ha="right", va="center")
                if r == 2 * len(FIELDS) - 1:
                    ax.set_xlabel("x (m)", fontsize=9)
                ax.tick_params(labelsize=8)
        bar = fig.colorbar(im, ax=axes[2 * f:2 * f + 2, :], shrink=0.85, aspect=12, pad=0.01)
        bar.set_label(f"{name} ({unit})", fontsize=9)
        bar.ax.tick_params(labelsize=8)
    fig.suptitle("\n".join(textwrap.wrap(f"prompt: {prompt}", 120))
                 + f"\nrelative L2 over the trajectory: u {err['u']:.3f}, v {err['v']:.3f}, p {err['p']:.3f}",
                 fontsize=10)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return err


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    print(main(*sys.argv[1:]))
