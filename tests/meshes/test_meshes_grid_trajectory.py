"""Grid <-> mesh consistency, tensors, point clouds and trajectories."""
from __future__ import annotations

import numpy as np
import pytest

from graphfem.meshes import FESpace, Grid, Mesh, MeshError, PointCloud, Trajectory, read_series


@pytest.mark.parametrize("shape, lower, upper", [((5,), (0.0,), (2.0,)), ((4, 3), (0.0, -1.0), (2.0, 1.0)),
                                                 ((2, 3, 4), (0.0, 0.0, 0.0), (1.0, 3.0, 2.0))])
def test_grid_mesh_cells_follow_cell_centres(shape, lower, upper):
    grid = Grid(shape, lower, upper)
    mesh = grid.to_mesh()
    assert mesh.n_cells == int(np.prod(shape))
    assert mesh.n_points == int(np.prod(np.array(shape) + 1))
    centres = grid.cell_centres()
    assert centres.shape == (*shape, len(shape))
    np.testing.assert_allclose(mesh.points[mesh.cells].mean(axis=1), centres.reshape(-1, len(shape)), atol=1e-12)
    np.testing.assert_allclose(mesh.cell_measures(), np.prod(grid.spacing), rtol=1e-12)
    volume = np.prod(np.subtract(upper, lower))
    assert FESpace(mesh).mass().sum() == pytest.approx(volume, rel=1e-12)
    # a cell field in C order lands on the right cells
    field = centres[..., 0]
    np.testing.assert_allclose(field.reshape(-1), mesh.points[mesh.cells][:, :, 0].mean(axis=1), atol=1e-12)


def test_grid_tensors():
    import torch
    grid = Grid((4, 3))
    c = grid.cell_centres()
    t = grid.to_tensor({"x": c[..., 0], "y": c[..., 1]})
    assert t.shape == (2, 4, 3) and t.dtype == torch.float32
    assert grid.to_tensor([c[..., 0]]).shape == (1, 4, 3)
    back = grid.cell_data_from_tensor(t, ["x", "y"])
    mesh = grid.to_mesh()
    np.testing.assert_allclose(back["x"], mesh.points[mesh.cells][:, :, 0].mean(1), atol=1e-6)
    with pytest.raises(MeshError):
        grid.to_tensor([np.zeros((3, 4))])
    with pytest.raises(MeshError):
        grid.cell_data_from_tensor(t, ["x"])


@pytest.mark.parametrize("args", [((0, 2),), ((2, 2), (0, 0), (0, 1)), ((1, 2, 3, 4),), ((2, 2), (0,), (1,))])
def test_grid_validation(args):
    with pytest.raises(MeshError):
        Grid(*args)


def test_point_cloud():
    cloud = PointCloud(np.zeros((4, 2)), {"a": np.arange(4)})
    assert cloud.n_points == 4 and cloud.dim == 2
    with pytest.raises(MeshError):
        PointCloud(np.zeros((4, 2)), {"a": np.arange(3)})
    with pytest.raises(MeshError):
        PointCloud(np.array([[0.0, np.nan]]))
    mesh = Mesh.unit_square(2).with_point_data(u=np.ones(9))
    assert PointCloud.from_mesh(mesh).point_data["u"].shape == (9,)


def test_point_cloud_write(tmp_path):
    import meshio

    cloud = PointCloud(np.random.default_rng(0).uniform(size=(5, 2)), {"a": np.arange(5.0)})
    cloud.write(tmp_path / "c.vtu")
    back = meshio.read(tmp_path / "c.vtu")
    np.testing.assert_allclose(back.points[:, :2], cloud.points)
    np.testing.assert_allclose(back.point_data["a"], np.arange(5.0))


def test_trajectory_validation_and_write(tmp_path):
    mesh = Mesh.unit_square(2)
    times = np.array([0.0, 0.5, 1.0])
    u = np.random.default_rng(0).normal(size=(3, mesh.n_points))
    traj = Trajectory(times, {"u": u}, mesh, units={"u": "K"})
    assert traj.n_steps == 3 and traj.snapshots("u").shape == (3, mesh.n_points)
    v = np.zeros((3, mesh.n_points, 2))
    assert Trajectory(times, {"v": v}, mesh).snapshots("v").shape == (3, 2 * mesh.n_points)
    for bad_times in ([0.0, 0.0, 1.0], [1.0, 0.5, 0.0], [0.0, np.nan, 1.0], []):
        with pytest.raises(MeshError):
            Trajectory(bad_times, {}, mesh)
    with pytest.raises(MeshError):
        Trajectory(times, {"u": u[:2]}, mesh)
    with pytest.raises(MeshError):
        Trajectory(times, {"u": u[:, :-1]}, mesh)
    traj.write(tmp_path / "t.pvd")
    back, t, fields = read_series(tmp_path / "t.pvd")
    np.testing.assert_allclose(t, times)
    np.testing.assert_allclose(fields["u"], u)
    with pytest.raises(MeshError):
        Trajectory(times, {}, PointCloud(np.zeros((2, 2)))).write(tmp_path / "c.pvd")


def test_structures_pickle_for_worker_processes():
    """Meshes, clouds and trajectories cross process boundaries (multiprocessing)."""
    import pickle

    mesh = Mesh.unit_square(3).with_point_data(u=np.arange(16.0))
    back = pickle.loads(pickle.dumps(mesh))
    assert np.array_equal(back.points, mesh.points) and np.array_equal(back.cells, mesh.cells)
    assert set(back.tags) == set(mesh.tags) and np.array_equal(back.point_data["u"], mesh.point_data["u"])
    cloud = pickle.loads(pickle.dumps(PointCloud(mesh.points, {"u": np.ones(16)})))
    assert cloud.point_data["u"].sum() == 16
    traj = Trajectory([0.0, 1.0], {"u": np.zeros((2, 16))}, mesh, units={"u": "K"})
    assert pickle.loads(pickle.dumps(traj)).units["u"] == "K"
