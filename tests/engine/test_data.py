"""Datasets: generation is deterministic and atomic, reading is lazy, damaged groups are named."""
import h5py
import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from graphfem.datasets.simulations import SimulationDataset, generate
from graphfem.meshes import FESpace
from graphfem.meshes.errors import GraphfemError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("d") / "data.h5"
    generate("poisson", 4, path, seed=3, progress=False)
    return path


def test_groups_hold_mesh_inputs_outputs_and_provenance(data):
    ds = SimulationDataset(data)
    assert len(ds) == 4
    s = ds.sample(2)
    assert s.mesh.dim == 2 and s.mesh.tags and s.provenance["seed"] == 3 and s.provenance["problem"] == "poisson"
    assert s.case.kappa.shape == (s.mesh.n_cells,) and len(set(np.round(s.case.kappa, 12))) <= 2
    # the stored solution satisfies the Dirichlet data it records (the last tag wins on shared nodes)
    tag, value = list(s.case.dirichlet.items())[-1]
    np.testing.assert_allclose(s.fields["u"][s.mesh.tag_nodes(tag)], value, atol=1e-9)
    # lumped mass reproduces the consistent P1 mass on constants: sum = area
    g = ds[2]
    assert float(g.mass.sum()) == pytest.approx(FESpace(s.mesh).mass().sum(), rel=1e-6)
    np.testing.assert_allclose(g.y[:, 0].numpy() * float(g.scale), s.fields["u"], rtol=1e-5, atol=1e-6)


def test_batches_of_graphs(data):
    batch = next(iter(DataLoader(SimulationDataset(data), batch_size=3)))
    assert batch.num_graphs == 3 and batch.x.shape[1] == 8 and batch.y.shape == (batch.num_nodes, 1)


def test_generation_is_independent_of_workers(data, tmp_path):
    other = tmp_path / "w2.h5"
    generate("poisson", 4, other, seed=3, workers=2, progress=False)
    a, b = SimulationDataset(data), SimulationDataset(other)
    for i in range(4):
        np.testing.assert_array_equal(a.sample(i).fields["u"], b.sample(i).fields["u"])


def test_damaged_group_is_named_and_skipped_only_on_request(data, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(data.read_bytes())
    with h5py.File(bad, "a") as h5:
        del h5["sim_000001/outputs/u"]
    with pytest.raises(GraphfemError, match="group 'sim_000001' is damaged.*--skip-bad") as err:
        SimulationDataset(bad)
    assert str(bad) in str(err.value)
    with pytest.warns(UserWarning, match="sim_000001"):
        ds = SimulationDataset(bad, skip_bad=True)
    assert ds.names == ["sim_000000", "sim_000002", "sim_000003"]


def test_failed_generation_leaves_no_file(tmp_path, monkeypatch):
    import graphfem.datasets.simulations as data_mod

    def boom(*args):
        raise RuntimeError("solver crashed")

    monkeypatch.setattr(data_mod, "simulate", boom)
    out = tmp_path / "x.h5"
    with pytest.raises(RuntimeError):
        generate("poisson", 2, out, progress=False)
    assert list(tmp_path.iterdir()) == []
