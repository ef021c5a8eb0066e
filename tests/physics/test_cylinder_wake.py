"""The cylinder-wake problem: boundary values of the trajectory, the caption, the geometry checks."""
from __future__ import annotations

import numpy as np
import pytest

from graphfem.meshes.errors import InputError
from graphfem.physics.channel import channel_mesh
from graphfem.physics.problem import get_problem


def test_trajectory_keeps_the_boundary_data_and_the_caption_carries_the_parameters():
    problem = get_problem("cylinder-wake")
    mesh = channel_mesh(16, order=1, centre=(0.27, 0.19), radius=0.045)
    sol = problem.run(mesh, {"u_max": 0.9, "t_end": 0.1, "dt": 0.025, "save_every": 2})
    tr = sol.trajectory
    assert np.allclose(tr.times, [0.0, 0.05, 0.1])
    assert {k: v.shape for k, v in tr.fields.items()} == {k: (3, mesh.n_points) for k in ("u", "v", "p")}
    wall = np.unique(np.concatenate([mesh.tag_nodes("cylinder"), mesh.tag_nodes("walls")]))
    assert np.abs(tr.fields["u"][:, wall]).max() < 1e-10 and np.abs(tr.fields["v"][:, wall]).max() < 1e-10
    inlet = mesh.tag_nodes("inlet")
    y = mesh.points[inlet, 1]
    assert np.allclose(tr.fields["u"][:, inlet], 4 * 0.9 * y * (0.41 - y) / 0.41 ** 2, atol=1e-10)
    params = problem.parse(mesh, {"u_max": 0.9})
    assert abs(params["radius"] - 0.045) < 1e-3 and np.allclose(params["centre"], [0.27, 0.19], atol=1e-3)
    text = problem.describe(params)
    assert "radius 0.0450" in text and "(0.270, 0.190)" in text and "0.900 m/s" in text
    assert "Reynolds number is 50" in text and "laminar" in text      # (2/3 0.9) 0.09 / 1e-3 = 54 -> 50


def test_a_wrong_geometry_or_value_is_one_line():
    problem = get_problem("cylinder-wake")
    mesh = channel_mesh(16, order=1, centre=(0.27, 0.19), radius=0.045)
    for raw, match in (({"u_max": 0.9, "radius": 0.06}, "radius 0.045"), ({"u_max": -1}, "positive"),
                       ({"u_max": 1, "centre": "0.2,0.2"}, "cylinder is at")):
        with pytest.raises(InputError, match=match):
            problem.parse(mesh, raw)
    with pytest.raises(InputError, match="cylinder"):
        from graphfem.meshes import Mesh

        problem.parse(Mesh.rectangle(4), {"u_max": 1})
