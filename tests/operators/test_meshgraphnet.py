"""MeshGraphNet: shapes, the factorised edge layer, permutation equivariance."""
import pytest
import torch

from graphfem.meshes import Mesh, to_graph
from graphfem.operators import available, get_model
from graphfem.operators.checks import assert_permutation_equivariant
from graphfem.operators.layers import ProcessorBlock
from graphfem.operators.meshgraphnet import MeshGraphNet, MeshGraphNetConfig


@pytest.fixture(scope="module")
def graph():
    g = to_graph(Mesh.unit_square(6))
    g.x = torch.randn(g.num_nodes, 4, generator=torch.Generator().manual_seed(1))
    return g


#: Registered models that map node features on a graph, (x, edge_index, edge_attr) -> (n, out).
#: SPON-MG (graph hierarchy) and GIOROM (particles) check equivariance in
#: their own test files; EquiNO and the RVE baselines act on one fixed RVE.
GRAPH_MODELS = ("meshgraphnet", "spon")


def test_graph_models_are_registered():
    assert set(GRAPH_MODELS) <= set(available())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_graph_models_are_permutation_equivariant(graph, dtype, name):
    torch.manual_seed(0)
    cls = get_model(name)
    model = cls(cls.Config(in_node=4, in_edge=3, out=2, latent=16, layers=3)).to(dtype)
    diff = assert_permutation_equivariant(model, graph.x.to(dtype), graph.edge_index, graph.edge_attr.to(dtype))
    assert diff < (1e-9 if dtype == torch.float64 else 1e-4)


def test_check_catches_a_model_that_uses_node_order(graph):
    class Leaky(torch.nn.Module):
        def forward(self, x, edge_index, edge_attr):
            return x + torch.arange(x.shape[0], dtype=x.dtype)[:, None]

    with pytest.raises(AssertionError, match="not permutation equivariant"):
        assert_permutation_equivariant(Leaky(), graph.x, graph.edge_index, graph.edge_attr)


def test_factorised_edge_layer_equals_mlp_on_concatenation():
    """W1 h_i + W2 h_j + W3 e_ij + b == [W1 W2 W3] [h_i; h_j; e_ij] + b on a hand-made graph."""
    torch.manual_seed(0)
    d = 5
    block = ProcessorBlock(d, mlp_layers=1).double()
    h = torch.randn(3, d, dtype=torch.float64)
    e = torch.randn(2, d, dtype=torch.float64)
    edge_index = torch.tensor([[0, 2], [1, 1]])  # 0 -> 1, 2 -> 1
    W12 = block.node_proj.weight  # (2d, d): rows [W1; W2]
    W = torch.cat([W12[:d], W12[d:], block.edge_proj.weight], dim=1)  # (d, 3d)
    z = torch.cat([h[edge_index[1]], h[edge_index[0]], e], dim=1) @ W.T + block.edge_proj.bias
    e_ref = e + block.edge_rest(z)
    h_ref = h + block.node_mlp(torch.cat([h, torch.zeros_like(h).index_add(0, edge_index[1], e_ref)], dim=1))
    h_new, e_new = block(h, edge_index, e)
    torch.testing.assert_close(e_new, e_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(h_new, h_ref, atol=1e-12, rtol=0)


def test_shapes_and_resolution_independent_edge_features():
    model = MeshGraphNet(MeshGraphNetConfig(in_node=5, in_edge=3, out=1, latent=8, layers=2))
    for n in (4, 16):
        g = to_graph(Mesh.unit_square(n))  # x: one-hot of the 5 boundary tags
        assert model(g.x, g.edge_index, g.edge_attr).shape == (g.num_nodes, 1)
        # interior edges of a uniform mesh have the same scaled length at every resolution
        assert float(g.edge_attr[:, 2].max()) < 1.6
