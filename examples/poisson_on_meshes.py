"""A Poisson surrogate against `graphfem solve poisson` on mesh files of any origin.

    python examples/poisson_on_meshes.py MODEL MESH [MESH ...]

For every 2D mesh: the relative L2 error of the prediction against the FE solve (consistent mass norm of the
mesh's nodal space: P1, or P2 on quadratic cells, which a model of linear cells serves on their corners), for
two cases with u = 0 on the whole boundary: κ = 1, f = 1, and κ = 1 + x², f = sin 3x + 1; and the number of
domain-of-validity warnings the prediction gave. A mesh the model cannot serve (3D) is reported in one line
instead. The README's table of third-party meshes was made this way.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

#: the two cases of every mesh (options of graphfem solve poisson)
CASES = ({"kappa": 1.0, "source": 1.0}, {"kappa": "1+x*x", "source": "sin(3*x)+1"})


def main(model_path: str | Path, meshes: list[str | Path]) -> dict[str, list[float] | str]:
    """{mesh file name: [relative error per case] or the reason it was not served}, printed one line a mesh."""
    import graphfem
    from graphfem import validity
    from graphfem.families.meshgraphnet import relative_error
    from graphfem.meshes import read
    from graphfem.meshes.errors import GraphfemError
    from graphfem.physics.problem import get_problem

    model = graphfem.load(model_path)
    if model.problem.get("name") != "poisson":
        raise SystemExit(f"{model_path}: a {model.problem.get('name')} model, not a Poisson one")
    problem = get_problem("poisson")
    results: dict[str, list[float] | str] = {}
    for path in map(Path, meshes):
        with validity.recorded() as outside:  # counted, not shown (so are the mesh readers' warnings)
            try:
                mesh = read(path)
                if mesh.dim != 2:
                    raise GraphfemError(f"a {mesh.dim}D mesh")
                errors = []
                for case in CASES:
                    u = np.asarray(model.predict(mesh, **case)["u"], dtype=float)
                    ref = np.asarray(problem.run(mesh, case).fields["u"], dtype=float)
                    errors.append(relative_error(mesh, u[:, None], ref[:, None]))
            except GraphfemError as exc:
                results[path.name] = f"not served: {exc}"
                print(f"{path.name:28s} {results[path.name]}")
                continue
        results[path.name] = errors
        print(f"{path.name:28s} {mesh.n_points:6d} nodes  rel L2 " + "  ".join(f"{e:.3f}" for e in errors)
              + f"  ({len(outside)} domain-of-validity warnings)")
    return results


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__.strip().splitlines()[2].strip())
    main(sys.argv[1], sys.argv[2:])
