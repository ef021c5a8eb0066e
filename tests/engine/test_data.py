"""Data sets: generation is deterministic and atomic, reading is lazy, damaged groups are named."""
import h5py
import numpy as np
import pytest

from graphfem.datasets.generate import generate
from graphfem.datasets.simulations import SimulationData
from graphfem.families.meshgraphnet import graph, lumped_mass
from graphfem.meshes import FESpace
from graphfem.meshes.errors import GraphfemError
from graphfem.physics.problem import get_problem


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("d") / "data.h5"
    generate("poisson", 4, path, seed=3, progress=False)
    return path


def test_groups_hold_mesh_options_outputs_and_provenance(data):
    ds = SimulationData(data)
    assert len(ds) == 4 and ds.problem == "poisson"
    s = ds.sample(2)
    assert s.mesh.dim == 2 and s.mesh.tags and s.provenance["seed"] == 3 and s.provenance["problem"] == "poisson"
    kappa = s.options["kappa"]
    assert kappa.shape == (s.mesh.n_cells,) and len(set(np.round(kappa, 12))) <= 2
    # the stored solution satisfies the Dirichlet data it records (the last tag wins on shared nodes)
    tag, value = list(s.options["dirichlet"].items())[-1]
    np.testing.assert_allclose(s.fields["u"][s.mesh.tag_nodes(tag)], value, atol=1e-9)
    # re-solving the stored options reproduces the stored solution
    again = get_problem("poisson").run(s.mesh, s.options)
    np.testing.assert_allclose(again.fields["u"], s.fields["u"], atol=1e-12)


def test_graph_of_a_sample(data):
    s = SimulationData(data).sample(1)
    g = graph(s.mesh, np.zeros((s.mesh.n_points, 3)))
    # lumped mass reproduces the consistent P1 mass on constants: sum = area
    assert float(g.mass.sum()) == pytest.approx(FESpace(s.mesh).mass().sum(), rel=1e-6)
    assert lumped_mass(s.mesh).sum() == pytest.approx(s.mesh.cell_measures().sum())
    assert g.edge_index.shape[0] == 2 and g.edge_attr.shape[1] == 3


def test_generation_is_independent_of_workers(data, tmp_path):
    other = tmp_path / "w2.h5"
    generate("poisson", 4, other, seed=3, workers=2, progress=False)
    a, b = SimulationData(data), SimulationData(other)
    for i in range(4):
        np.testing.assert_array_equal(a.sample(i).fields["u"], b.sample(i).fields["u"])


@pytest.mark.parametrize("damage, message", [
    (lambda g: g.__delitem__("outputs/u"), "missing outputs"),
    (lambda g: g["outputs/u"].__setitem__(0, np.nan), "outputs/u holds NaN"),
    (lambda g: g["inputs/kappa"].__setitem__(0, np.inf), "inputs/kappa holds NaN or infinite"),
])
def test_damaged_group_is_named_and_skipped_only_on_request(data, tmp_path, damage, message):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(data.read_bytes())
    with h5py.File(bad, "a") as h5:
        damage(h5["sim_000001"])
    with pytest.raises(GraphfemError, match="1 damaged group: sim_000001 .*--skip-bad") as err:
        SimulationData(bad)
    assert str(bad) in str(err.value) and message in str(err.value) and "\n" not in str(err.value)
    with pytest.warns(UserWarning, match="sim_000001"):
        ds = SimulationData(bad, skip_bad=True)
    assert ds.names == ["sim_000000", "sim_000002", "sim_000003"]


def test_failed_generation_leaves_no_file(tmp_path, monkeypatch):
    from graphfem.physics.poisson import Poisson

    def boom(self, *args, **kwargs):
        raise RuntimeError("solver crashed")

    monkeypatch.setattr(Poisson, "solve", boom)
    out = tmp_path / "x.h5"
    with pytest.raises(RuntimeError):
        generate("poisson", 2, out, progress=False)
    assert list(tmp_path.iterdir()) == []
