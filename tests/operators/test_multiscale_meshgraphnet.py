"""Multi-scale MeshGraphNet: the coarse hierarchy (coarser, connected, label- and unit-free),
permutation equivariance, information across a long thin mesh, and training through ``graphfem train``."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components, shortest_path
from torch_geometric.data import Batch, Data

from graphfem.meshes import Mesh
from graphfem.meshes.graph import mesh_edges
from graphfem.operators import available
from graphfem.operators.checks import assert_permutation_equivariant
from graphfem.operators.meshgraphnet import MeshGraphNet, MeshGraphNetConfig
from graphfem.operators.multiscale_meshgraphnet import (MultiScaleMeshGraphNet, MultiScaleMeshGraphNetConfig,
                                                        coarse_hierarchy, levels_of, with_hierarchy)

torch.set_num_threads(1)


def _adjacency(edges: np.ndarray, n: int) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(edges.shape[1]), (edges[0], edges[1])), shape=(n, n))


def _data(mesh: Mesh, features: int = 3, seed: int = 0) -> Data:
    from graphfem.families.meshgraphnet import graph

    x = np.random.default_rng(seed).normal(size=(mesh.n_points, features))
    return graph(mesh, x)


def _perforated() -> Mesh:
    from graphfem.physics.geometries import random_domain

    return random_domain("perforated", np.random.default_rng(11), h=0.05)


def test_registered_and_served_by_the_meshgraphnet_family():
    from graphfem.families import family_of_model

    assert "multiscale_meshgraphnet" in available()
    assert family_of_model("multiscale_meshgraphnet").name == "meshgraphnet"


@pytest.mark.parametrize("mesh", [Mesh.unit_square(24), _perforated(), Mesh.rectangle(40, 2, x1=20.0)],
                         ids=["square", "perforated", "strip"])
def test_coarse_levels_are_coarser_connected_and_cover_the_level_below(mesh):
    edges = mesh_edges(mesh)
    n_fine, levels = mesh.n_points, coarse_hierarchy(mesh.points, edges, 3)
    n, fine_edges = n_fine, edges
    for level in levels:
        m = len(level["pos"])
        assert m <= n / 2.5  # an independent set of a triangle graph: at most ~n / 3.5 in practice
        A = _adjacency(level["edge_index"], m)
        assert connected_components(A, directed=False)[0] == 1
        assert (A != A.T).nnz == 0 and A.diagonal().sum() == 0
        assert level["edge_index"].shape[1] / m < 12  # bounded degree, unlike bi-stride's A^2
        kept = level["kept"]
        fine = _adjacency(fine_edges, n)
        assert fine[kept][:, kept].nnz == 0  # no two kept nodes are neighbours
        down = level["down_index"]
        assert set(down[0]) == set(range(n)) and set(down[1]) == set(range(m))  # every node has a kept one
        n, fine_edges = m, level["edge_index"]
    assert len(levels[-1]["pos"]) < n_fine / 20  # 4-5x per level in 2D, 3x along a strip


def test_hierarchy_depends_on_geometry_only_not_on_labels_or_units():
    mesh = _perforated()
    edges = mesh_edges(mesh)
    ref = coarse_hierarchy(mesh.points, edges, 2)
    scaled = coarse_hierarchy(mesh.points * 1e-6 + 2e-6, edges, 2)  # the same mesh in micrometres, shifted
    perm = np.random.default_rng(0).permutation(mesh.n_points)
    inverse = np.argsort(perm)
    relabelled = coarse_hierarchy(mesh.points[perm], inverse[edges], 2)
    for a, b, c in zip(ref, scaled, relabelled):
        assert np.array_equal(a["kept"], b["kept"])
        np.testing.assert_allclose(a["edge_attr"], b["edge_attr"], atol=1e-6)
        assert sorted(map(tuple, a["pos"])) == sorted(map(tuple, c["pos"]))  # the same nodes, other labels
        assert a["edge_index"].shape == c["edge_index"].shape


class _WithPositions(torch.nn.Module):
    """model(x, edge_index, edge_attr) with the positions as the last ``dim`` columns of x,
    so that the permutation check relabels the hierarchy's input as well."""

    def __init__(self, model: MultiScaleMeshGraphNet, dim: int):
        super().__init__()
        self.model, self.dim = model, dim

    def forward(self, x, edge_index, edge_attr):
        K = self.model.config.levels
        g = with_hierarchy(Data(x=x[:, :-self.dim], edge_index=edge_index, edge_attr=edge_attr, num_nodes=len(x)),
                           x[:, -self.dim:].numpy(), K)
        return self.model(g.x, edge_index, edge_attr, levels_of(g, K, x.dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_permutation_equivariant(dtype):
    torch.manual_seed(0)
    mesh = _perforated()
    g = _data(mesh, 4)
    model = MultiScaleMeshGraphNet(MultiScaleMeshGraphNetConfig(in_node=4, in_edge=3, out=2, latent=16,
                                                                levels=2)).to(dtype)
    x = torch.cat([g.x, g.pos], dim=1).to(dtype)
    diff = assert_permutation_equivariant(_WithPositions(model, 2), x, g.edge_index, g.edge_attr.to(dtype))
    assert diff < (1e-9 if dtype == torch.float64 else 1e-4)


def test_a_batch_is_its_graphs_side_by_side():
    torch.manual_seed(0)
    model = MultiScaleMeshGraphNet(MultiScaleMeshGraphNetConfig(in_node=3, in_edge=3, out=1, latent=8, levels=2))
    graphs = [with_hierarchy(_data(m), m.points, 2) for m in (Mesh.unit_square(7), _perforated())]
    batch = Batch.from_data_list(graphs)
    with torch.no_grad():
        together = model(batch.x, batch.edge_index, batch.edge_attr, levels_of(batch, 2))
        apart = torch.cat([model(g.x, g.edge_index, g.edge_attr, levels_of(g, 2)) for g in graphs])
    torch.testing.assert_close(together, apart, atol=1e-5, rtol=0)


def test_information_crosses_a_long_thin_mesh():
    """On a 60 x 1 strip (122 nodes, 60 hops long), the output at the left end depends on
    inputs farther away than the L = 8 hops of a single-level MeshGraphNet of the same
    number of processor blocks: measured by the gradient of y_0 with respect to x."""
    torch.manual_seed(0)
    mesh = Mesh.rectangle(60, 1, x1=60.0)
    g = _data(mesh)
    hops = shortest_path(_adjacency(g.edge_index.numpy(), mesh.n_points), unweighted=True, indices=[0])[0]
    cfg = dict(in_node=3, in_edge=3, out=1, latent=16)
    single = MeshGraphNet(MeshGraphNetConfig(**cfg, layers=8)).double()
    multi = MultiScaleMeshGraphNet(MultiScaleMeshGraphNetConfig(**cfg, levels=3, blocks=1, coarse_blocks=2)).double()
    assert 2 * 3 * 1 + 2 == 8  # the same number of processor blocks
    levels = levels_of(with_hierarchy(g, mesh.points, 3), 3, torch.float64)

    def reach(forward) -> float:
        x = g.x.double().requires_grad_(True)
        (grad,) = torch.autograd.grad(forward(x)[0, 0], x)
        return float(hops[grad.abs().sum(dim=1).numpy() > 0].max())

    ea = g.edge_attr.double()
    assert reach(lambda x: single(x, g.edge_index, ea)) == 8
    assert reach(lambda x: multi(x, g.edge_index, ea, levels)) >= 30


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from graphfem.cli import main

    files = tmp_path_factory.mktemp("msmgn")
    data = files / "p.h5"
    assert main(["generate", "poisson", "-n", "10", "-o", str(data), "--seed", "5"]) == 0
    cfg = files / "ms.yaml"
    cfg.write_text(f"""model: {{name: multiscale_meshgraphnet, latent: 16, levels: 2, blocks: 1, coarse_blocks: 1}}
data: {{path: {data}, val_fraction: 0.2, test_fraction: 0.0, batch_size: 4}}
optim: {{optimizer: adamw, lr: 0.003, epochs: 3, warmup_steps: 0, min_lr_ratio: 0.5, weight_decay: 0.0}}
run: {{out: {files / 'run'}, seed: 0, threads: 1, progress: false}}
""")
    assert main(["train", str(cfg)]) == 0
    return files


def test_trains_through_graphfem_train_and_predicts(trained):
    import json

    import graphfem
    from graphfem.cli import main

    rows = [json.loads(line) for line in (trained / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses and all(np.isfinite(losses))
    surrogate = graphfem.load(trained / "run" / "model.safetensors")
    assert surrogate.meta["model"] == "multiscale_meshgraphnet"
    mesh = Mesh.rectangle(30, 4, x1=3.0)
    mesh_file = trained / "strip.msh"
    mesh.write(mesh_file)
    u = surrogate.predict(mesh, dirichlet={"left": 1.0, "right": 0.0})["u"]
    assert u.shape == (mesh.n_points,) and np.isfinite(u).all()
    left = mesh.points[:, 0] == 0.0
    assert np.array_equal(u[left], np.ones(left.sum()))  # Dirichlet values are written over the output
    assert main(["predict", str(trained / "run" / "model.safetensors"), str(mesh_file), "-o",
                 str(trained / "u.vtu"), "--dirichlet", "left=1", "--dirichlet", "right=0"]) == 0


def test_bench_counts_linear_flops_and_matches_parameter_counts():
    from graphfem.benchmarks.surrogate import equal_size_layers, linear_shapes, parameters

    g = _data(Mesh.unit_square(5), 7)
    n, E, d, L = g.num_nodes, g.edge_index.shape[1], 8, 2
    model = MeshGraphNet(MeshGraphNetConfig(in_node=7, in_edge=3, out=1, latent=d, layers=L))
    flops = sum(2 * r * i * o for r, i, o in linear_shapes(model, g.x, g.edge_index, g.edge_attr))
    per_block = n * d * 2 * d + 2 * E * d * d + n * (2 * d * d + d * d)  # node_proj, edge MLP, node MLP
    assert flops == 2 * (n * (7 * d + d * d) + E * (3 * d + d * d) + L * per_block + n * (d * d + d))
    config = {"latent": 32, "levels": 2, "blocks": 1, "coarse_blocks": 2}
    layers = equal_size_layers(config)
    multi = parameters(MultiScaleMeshGraphNet(MultiScaleMeshGraphNetConfig(**config)))
    assert abs(parameters(MeshGraphNet(MeshGraphNetConfig(latent=32, layers=layers))) - multi) < 0.05 * multi
