"""Text2PDE figure: a prompt, the generated trajectory and the FE reference, frame by frame.

    python examples/text2pde_figure.py traj.pvd ref.pvd "PROMPT" examples/figures/text2pde.png

Rows: u generated, u reference, v generated, v reference (velocity components in m/s; v on a diverging
map centred on 0); columns: five frames. The title is the prompt and the relative L2 errors of u, v, p over
the whole trajectory (lumped P1 mass norm).
"""
from __future__ import annotations

import sys
import textwrap

import numpy as np


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
    stack = lambda f: np.stack([f[k] for k in ("u", "v", "p")], -1)  # noqa: E731
    err = relative_errors(mesh, stack(gen), stack(ref), ["u", "v", "p"])
    tri = Triangulation(mesh.points[:, 0], mesh.points[:, 1], mesh.corner_cells)
    cols = np.unique(np.linspace(0, len(times) - 1, 5).round().astype(int))
    fig, axes = plt.subplots(4, len(cols), figsize=(3.2 * len(cols), 5.6), sharex=True, sharey=True)
    rows = [("u", gen, "generated"), ("u", ref, "FE reference"), ("v", gen, "generated"), ("v", ref, "FE reference")]
    for r, (name, series, what) in enumerate(rows):
        both = np.concatenate([gen[name].ravel(), ref[name].ravel()])
        if name == "v":
            lim = float(np.abs(both).max())
            kw = {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim}
        else:
            kw = {"cmap": "viridis", "vmin": float(both.min()), "vmax": float(both.max())}
        for c, k in enumerate(cols):
            ax = axes[r, c]
            im = ax.tripcolor(tri, series[name][k], shading="gouraud", **kw)
            ax.set_aspect("equal")
            if r == 0:
                ax.set_title(f"t = {times[k]:.2f} s", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{name} {what}\ny (m)", fontsize=8)
            if r == 3:
                ax.set_xlabel("x (m)", fontsize=8)
            ax.tick_params(labelsize=7)
        fig.colorbar(im, ax=axes[r, :], shrink=0.9, pad=0.01).set_label(f"{name} (m/s)", fontsize=8)
    fig.suptitle("\n".join(textwrap.wrap(f"prompt: {prompt}", 130))
                 + f"\nrelative L2 over the trajectory: u {err['u']:.3f}, v {err['v']:.3f}, p {err['p']:.3f}",
                 fontsize=9)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return err


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    print(main(*sys.argv[1:]))
