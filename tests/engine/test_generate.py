"""``graphfem generate`` for every family: the common HDF5 layout, seeding and atomic writes."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from graphfem.datasets.generate import generate, problems
from graphfem.meshes.errors import InputError


def test_every_family_is_offered():
    names = problems()
    for name in ("poisson", "mpm", "darcy-two-phase", "burgers", "cavity", "cylinder-flow", "spon-poisson"):
        assert name in names


def test_darcy_family_layout_and_seeding(tmp_path):
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    generate("darcy-two-phase", 2, first, seed=3, resolution=8, progress=False)
    generate("darcy-two-phase", 2, second, seed=3, resolution=8, workers=2, progress=False)
    with h5py.File(first) as a, h5py.File(second) as b:
        assert sorted(a) == ["sim_000000", "sim_000001"]
        g = a["sim_000001"]
        assert g["mesh/cells"].attrs["cell_type"] == "triangle"
        assert set(np.unique(g["inputs/a"])) <= {5.0, 10.0}
        assert g["outputs/u"].shape == (g["mesh/points"].shape[0],)
        assert json.loads(g.attrs["params"])["f"] == 10.0
        assert g.attrs["index"] == 1 and g.attrs["problem"] == "darcy-two-phase"
        # sample i depends only on (seed, i), not on the number of workers
        np.testing.assert_array_equal(a["sim_000001/outputs/u"], b["sim_000001/outputs/u"])
        assert not np.array_equal(a["sim_000000/inputs/a"], a["sim_000001/inputs/a"])


def test_time_series_family_and_koopman_reader(tmp_path):
    """A generated Burgers dataset is a Koopman input as it is."""
    from graphfem.analysis import koopman

    path = tmp_path / "burgers.h5"
    generate("burgers", 2, path, resolution=16, progress=False)
    with h5py.File(path) as f:
        times, u = f["sim_000000/times"][()], f["sim_000000/outputs/u"][()]
    assert u.shape == (len(times), 17)
    pairs = koopman.load_snapshots(path)
    assert pairs is not None


def test_unknown_problem_and_bad_count(tmp_path):
    with pytest.raises(InputError, match="unknown problem 'nope'"):
        generate("nope", 1, tmp_path / "x.h5")
    with pytest.raises(InputError, match="-n must be at least 1"):
        generate("burgers", 0, tmp_path / "x.h5")
    with pytest.raises(InputError, match="--material"):
        generate("mpm", 1, tmp_path / "x.h5")
    assert not list(tmp_path.iterdir())


def test_spon_family_is_readable_by_spon_training(tmp_path):
    from graphfem.datasets.spon import read

    path = tmp_path / "spon.h5"
    generate("spon-poisson", 2, path, progress=False)
    samples = read(path)
    assert len(samples) == 2


def test_poisson_resolution_sets_the_mesh_size(tmp_path):
    """--resolution N meshes every random Poisson domain with spacing 1/N of its largest side: the median
    cell (its longest edge) lies between that spacing and 1.4 times it; the default spacing is coarser."""
    from graphfem.datasets.simulations import SimulationData

    def sizes(path):
        meshes = [SimulationData(path).sample(i).mesh for i in range(4)]
        return [float(np.median(m.cell_sizes()) / np.ptp(m.points, axis=0).max()) for m in meshes]

    generate("poisson", 4, tmp_path / "fine.h5", seed=2, resolution=30, progress=False)
    generate("poisson", 4, tmp_path / "default.h5", seed=2, progress=False)
    assert all(1 / 30 <= s <= 1.4 / 30 for s in sizes(tmp_path / "fine.h5"))
    assert min(sizes(tmp_path / "default.h5")) > 0.05
    with pytest.raises(InputError, match="--resolution 3: cells across the largest side must lie in 5..400"):
        generate("poisson", 1, tmp_path / "bad.h5", resolution=3, progress=False)
    assert not (tmp_path / "bad.h5").exists()


def test_poisson_resolution_range_spans_the_mesh_sizes(tmp_path):
    """--resolution LOW:HIGH draws one resolution per sample, log-uniform: over 24 samples of 8:32 the median
    cell sizes fill [1/32, 1.4/8] and reach both quarters of that range; a range where a family takes one
    resolution, a reversed range and a malformed value are one line each, exit 2 or 1, and leave no file."""
    from graphfem.cli import main
    from graphfem.datasets.simulations import SimulationData

    path = tmp_path / "mixed.h5"
    generate("poisson", 24, path, seed=5, resolution=(8, 32), progress=False)
    data = SimulationData(path)
    sizes = [float(np.median(m.cell_sizes()) / np.ptp(m.points, axis=0).max())
             for m in (data.sample(i).mesh for i in range(24))]
    assert all(1 / 32 <= s <= 1.4 / 8 for s in sizes)
    assert min(sizes) < 1.4 / 24 and max(sizes) > 1 / 12
    for args, code, line in ((["poisson", "--resolution", "30:8"], 1, "a range is LOW:HIGH, the low end first"),
                             (["poisson", "--resolution", "8:x"], 1, "expected an integer N or a range LOW:HIGH"),
                             (["darcy", "--resolution", "8:30"], 2, "generate darcy takes one resolution, not a range")):
        out = tmp_path / "bad.h5"
        assert main(["generate", *args, "-n", "2", "-o", str(out)]) == code
        assert not out.exists()


def _shape_family(mesh) -> str:
    """Which random family a domain looks like, from its shape alone: wavy sides (deformed), a
    rectangle with or without holes (perforated), a rectangle short of a quadrant (lshape)."""
    bottom = mesh.points[np.unique(mesh.tags["bottom"].indices)]
    if np.ptp(bottom[:, 1]) > 1e-9:
        return "deformed"
    p = mesh.points[mesh.cells]
    (ax, ay), (bx, by) = (p[:, 1] - p[:, 0]).T, (p[:, 2] - p[:, 0]).T
    area = 0.5 * np.abs(ax * by - ay * bx).sum()
    return "perforated" if "hole" in mesh.tags or area > 0.99 * np.prod(np.ptp(mesh.points, axis=0)) else "lshape"


def test_hyperelastic_2d_mixes_the_three_families(tmp_path):
    """--geometry 2d draws each sample from one of the families with left and right sides."""
    from graphfem.datasets.simulations import SimulationData

    path = tmp_path / "mixed.h5"
    generate("hyperelastic", 12, path, geometry="2d", resolution=(9, 14), seed=2, progress=False)
    data = SimulationData(path)
    families = [_shape_family(data.sample(i).mesh) for i in range(len(data))]
    assert set(families) == {"deformed", "perforated", "lshape"}, families


def test_hyperelastic_plates_are_new_random_domains(tmp_path, capsys):
    """generate hyperelastic --geometry perforated draws a new plate with holes per sample, at the resolution
    range given, clamped on its tag ``left`` (u = 0 there exactly); the fixed plate takes no resolution."""
    from graphfem.cli import main
    from graphfem.datasets.simulations import SimulationData

    path = tmp_path / "plates.h5"
    generate("hyperelastic", 3, path, geometry="perforated", resolution=(10, 20), seed=4, progress=False)
    data = SimulationData(path)
    samples = [data.sample(i) for i in range(3)]
    assert len({s.mesh.n_points for s in samples}) == 3
    for s in samples:
        assert {"left", "right", "hole"} <= set(s.mesh.tags)
        size = float(np.median(s.mesh.cell_sizes()) / np.ptp(s.mesh.points, axis=0).max())
        assert 1 / 20 <= size <= 1.4 / 10
        clamped = np.unique(s.mesh.tags["left"].indices)
        u = np.asarray(s.fields["displacement"])
        assert np.abs(u[clamped]).max() == 0.0 and np.abs(u).max() > 1e-3
    out = tmp_path / "bad.h5"
    for args, line in ((["--resolution", "12"], "--resolution: the plate is a fixed mesh"),
                       (["--geometry", "polygon"], "--geometry polygon: hyperelastic takes plate")):
        assert main(["generate", "hyperelastic", *args, "-n", "1", "-o", str(out)]) == 1
        assert line in capsys.readouterr().err
        assert not out.exists()
