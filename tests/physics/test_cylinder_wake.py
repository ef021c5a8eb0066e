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


def test_dirichlet_data_are_the_solvers_and_survive_a_series_file(tmp_path):
    """Features.dirichlet of cylinder-wake: exactly the FE trajectory's values at the no-slip and inlet
    nodes, in every frame; a mesh read back from a PVD series (no facet tags) gets the same nodes from its
    geometry, and the inflow peak is recovered from a frame."""
    from graphfem.families import Prediction
    from graphfem.meshes.io import read_series
    from graphfem.physics.cylinder_wake import boundary_values, channel_tags, inlet_peak

    problem = get_problem("cylinder-wake")
    mesh = channel_mesh(16, order=1, centre=(0.23, 0.22), radius=0.035)
    tr = problem.run(mesh, {"u_max": 1.3, "t_end": 0.1, "dt": 0.05, "save_every": 1}).trajectory
    y = np.stack([tr.fields[k] for k in ("u", "v", "p")], -1)                  # (T, n, 3)
    f = problem.features(mesh, problem.parse(mesh, {"u_max": 1.3}))
    assert f.dirichlet.shape == (mesh.n_points, 3) and not f.dirichlet[:, 2].any()
    fixed = np.unique(np.concatenate([mesh.tag_nodes(t) for t in ("walls", "cylinder", "inlet")]))
    assert np.array_equal(np.flatnonzero(f.dirichlet[:, 0]), fixed)
    assert np.abs(y[:, f.dirichlet] - f.dirichlet_values[f.dirichlet]).max() == 0.0
    mask, values = problem.essential(mesh, {"u_max": 1.3})  # what graphfem check holds a model to
    assert np.array_equal(mask, f.dirichlet) and np.array_equal(values, f.dirichlet_values)
    Prediction(mesh, tr.fields, {}, tr.times).write(tmp_path / "ref.pvd")
    back = read_series(tmp_path / "ref.pvd")[0]
    assert "inlet" not in back.tags
    mask, values = boundary_values(channel_tags(back), 1.3)
    assert np.array_equal(mask, f.dirichlet) and np.array_equal(values, f.dirichlet_values)
    assert abs(inlet_peak(channel_tags(back), y[0, :, 0], y[0, :, 1]) - 1.3) < 1e-12
    with pytest.raises(InputError, match="no 'walls'"):
        from graphfem.meshes import Mesh

        boundary_values(Mesh.rectangle(4), 1.0)
