"""SPON / SPON-MG on the small configuration (L-shape, 21 -> 65 nodes)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from graphfem.datasets import spon as spon_data
from graphfem.families import spon as spon_family
from graphfem.meshes import FESpace, Mesh
from graphfem.operators import get_model
from graphfem.operators import spon as S
from graphfem.operators.checks import assert_permutation_equivariant

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def lshape() -> Mesh:
    return spon_data.coarse_mesh("lshape-fixed")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("spon") / "poisson.h5"
    spon_data.generate("spon-poisson", 120, path, resolution=1, seed=0)
    return path


@pytest.fixture(scope="module")
def data(data_file):
    return spon_family.load_samples(data_file, mg_levels=1)


def test_registered():
    from graphfem.operators import spon as _  # noqa: F401

    assert get_model("spon") is S.SPON and get_model("spon_mg") is S.SPONMG
    assert S.SPONMG.Config().levels == 1


@pytest.mark.parametrize("order", [1, 2])
def test_prolongation_reproduces_coarse_functions(lshape, order):
    rng = np.random.default_rng(order)
    H = S.hierarchy(lshape, levels=1, order=order)
    coarse, fine = H.spaces
    P, R = H.prolongations[0], H.restrictions[0]
    u_c = rng.normal(size=coarse.n_dofs)  # an arbitrary coarse function
    x_f = S.scalar_dof_coordinates(fine)
    exact = coarse.basis.interpolator(u_c)(x_f.T)  # scikit-fem's own evaluation
    assert np.abs(P @ u_c - exact).max() < 1e-12
    # the prolonged function is the same function: equal L2 norms on both meshes
    assert abs(fine.norm_l2(P @ u_c) - coarse.norm_l2(u_c)) < 1e-12 * coarse.norm_l2(u_c)
    for kind in ("transpose", "l2"):
        Rk = R if kind == "transpose" else S.restriction(P, "l2", coarse, fine)
        assert np.abs(Rk @ np.full(fine.n_dofs, 3.5) - 3.5).max() < 1e-12


def test_l2_restriction_is_the_l2_projection(lshape):
    H = S.hierarchy(lshape, levels=1, order=1)
    coarse, fine = H.spaces
    R = S.restriction(H.prolongations[0], "l2", coarse, fine)
    u_f = fine.interpolate(lambda x: np.sin(3 * x[0]) * x[1])
    # Galerkin orthogonality: (u_f - P R u_f, P v_c) = 0 for all coarse v_c
    e = u_f - H.prolongations[0] @ (R @ u_f)
    assert np.abs(H.prolongations[0].T @ (fine.mass() @ e)).max() < 1e-12


def test_dof_graph_scale_invariant_and_p2_types(lshape):
    g = S.dof_graph(FESpace(lshape, 1))
    scaled = Mesh(lshape.points * 7.0 + 3.0, lshape.cell_type, lshape.cells)
    g2 = S.dof_graph(FESpace(scaled, 1))
    assert np.array_equal(g.edge_index, g2.edge_index)
    assert np.allclose(g.edge_attr, g2.edge_attr, atol=1e-12)
    assert g.edge_index.shape[1] == 2 * len(lshape.facets()[0])  # P1: both directions of every mesh edge
    g_p2 = S.dof_graph(FESpace(lshape, 2))
    assert g_p2.geometry[:, 3].sum() == lshape.n_points and g_p2.geometry[:, 4].sum() == len(lshape.facets()[0])


def test_mass_loss_equals_skfem_functional(lshape):
    from skfem import Functional

    space = FESpace(lshape.refined(), order=2)
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=space.n_dofs), rng.normal(size=space.n_dofs)
    loss = S.fe_relative_error(torch.tensor(pred), torch.tensor(target),
                               S._block_diag([S._coo(space.mass())], torch.float64, "cpu"),
                               torch.zeros(space.n_dofs, dtype=torch.long), 1)
    sq = Functional(lambda w: w["e"] ** 2)
    num = sq.assemble(space.basis, e=space.basis.interpolate(pred - target))
    den = sq.assemble(space.basis, e=space.basis.interpolate(target))
    assert abs(float(loss[0]) - np.sqrt(num / den)) < 1e-10


@pytest.mark.parametrize("levels", [0, 1])
def test_dirichlet_dofs_exact(data, levels):
    torch.manual_seed(0)
    model = spon_family.build("spon_mg" if levels else "spon", data[:8], layers=4, latent=8, levels=levels)
    samples = [s for s in data if s.dirichlet_values.any()][:2] + [s for s in data if not s.dirichlet_values.any()][:2]
    assert len(samples) == 4  # nonzero g and g = 0 both covered
    for s, u in zip(samples, spon_family.coefficients(model, samples)):
        assert np.abs(u[s.dirichlet_mask] - s.dirichlet_values[s.dirichlet_mask]).max() == 0.0
        assert np.abs(u[~s.dirichlet_mask]).max() > 0


def test_vector_space_dirichlet_exact(tmp_path):
    path = tmp_path / "hyper.h5"
    spon_data.generate("spon-hyperelastic", 2, path, resolution=1, order=2, seed=0)
    samples = spon_family.load_samples(path, mg_levels=1)
    assert samples[0].hierarchy.fine.vector and samples[0].target.shape[1] == 2
    torch.manual_seed(0)
    model = spon_family.build("spon_mg", samples, layers=3, latent=8)
    for s, u in zip(samples, spon_family.coefficients(model, samples)):
        assert u.shape == s.target.shape
        assert np.abs(u[s.dirichlet_mask]).max() == 0.0 and s.dirichlet_mask.sum() > 0


@pytest.mark.parametrize("levels", [0, 1])
def test_permutation_equivariant(data, levels):
    torch.manual_seed(0)
    model = spon_family.build("spon_mg" if levels else "spon", data[:8], layers=4, latent=8, levels=levels).double()
    batch = S.collate(data[:1], levels)
    n = batch.x.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(1))  # new k = old perm[k]

    def permuted_coarse(perm_):
        out = []
        for lv in batch.coarse:
            P = lv["P"].to_dense().double()[perm_] if perm_ is not None else lv["P"].to_dense().double()
            R = lv["R"].to_dense().double()[:, perm_] if perm_ is not None else lv["R"].to_dense().double()
            out.append({**lv, "P": P.to_sparse(), "R": R.to_sparse(), "x": lv["x"].double(),
                        "edge_attr": lv["edge_attr"].double()})
        return out

    # the fine relabelling moves the rows of P and the columns of R; the coarse graph is untouched
    identity = torch.arange(n)
    if levels == 0:
        diff = assert_permutation_equivariant(model, batch.x.double(), batch.edge_index, batch.edge_attr.double(),
                                              generator=torch.Generator().manual_seed(1))
    else:
        with torch.no_grad():
            out = model(batch.x.double(), batch.edge_index, batch.edge_attr.double(), permuted_coarse(identity))
            inverse = torch.empty_like(perm)
            inverse[perm] = torch.arange(n)
            out_p = model(batch.x.double()[perm], inverse[batch.edge_index], batch.edge_attr.double(),
                          permuted_coarse(perm))
        diff = float((out_p - out[perm]).abs().max())
    assert diff < 1e-9


def test_mg_beats_plain_at_equal_depth(data_file, tmp_path):
    """Trained by the one trainer on the same split: SPON-MG below plain SPON at equal depth."""
    import graphfem
    from graphfem.training.config import DataConfig, OptimConfig, RunConfig, TrainConfig
    from graphfem.training.trainer import train

    records = spon_data.read(data_file)
    result = {}
    for name, cfg in (("spon", {"levels": 0}), ("spon_mg", {"levels": 1, "pre": 1, "post": 1})):
        train(TrainConfig(model={"name": name, "layers": 6, "latent": 24, **cfg},
                          data=DataConfig(path=str(data_file), val_fraction=0.0, test_fraction=1 / 6, batch_size=16),
                          optim=OptimConfig(lr=3e-3, epochs=40, warmup_steps=20, min_lr_ratio=0.02),
                          run=RunConfig(out=str(tmp_path / name), device="cpu", threads=1, progress=False)))
        s = graphfem.load(tmp_path / name / "model.safetensors")
        test = [spon_family.encode(records[i], mg_levels=1) for i in s.meta["provenance"]["split"]["test"]]
        assert len(test) == 20
        result[name] = float(spon_family.errors(s.model, test).mean())
    print(result)
    assert result["spon_mg"] < 0.9 * result["spon"], result


@pytest.mark.slow
def test_example_spon_poisson(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "spon_poisson.py"
    spec = importlib.util.spec_from_file_location("example_spon_poisson", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(tmp_path)
    assert (tmp_path / "spon_mg.vtu").exists() and (tmp_path / "spon_mg.png").exists()
    assert result["boundary_max_deviation"] == 0.0
    assert result["spon_mg"]["test"] < result["spon"]["test"]


def test_flow_family_p2_velocity(tmp_path):
    from graphfem.physics.generators import GENERATORS
    from graphfem.physics.navier_stokes import TaylorHood

    torch.set_num_threads(1)
    assert GENERATORS["spon-flow"] is spon_data.spon_flow
    path = tmp_path / "flow.h5"
    spon_data.generate("spon-flow", 2, path, resolution=1, seed=0)
    records = spon_data.read(path)
    samples = [spon_family.encode(r, mg_levels=1) for r in records]
    for r, s in zip(records, samples):
        fine = s.hierarchy.fine
        assert fine.order == 2 and fine.vector and s.target.shape == (fine.n_dofs // 2, 2)
        assert s.hierarchy.spaces[0].mesh.n_points == r.coarse.n_points  # nested on the sample's own channel
        # the stored velocity is the Taylor-Hood solution: discretely divergence-free against P1 ...
        assert np.abs(TaylorHood(r.mesh).B @ r.dofs).max() < 1e-10 * np.abs(r.dofs).max()
        # ... and takes the encoded Dirichlet values (inflow profile, no slip) on the masked DOFs
        m = s.dirichlet_mask
        assert m[:, 0].sum() > 0 and np.abs(s.target[m] - s.dirichlet_values[m]).max() < 1e-12
    torch.manual_seed(0)
    model = spon_family.build("spon_mg", samples, layers=3, latent=8)
    for s, u in zip(samples, spon_family.coefficients(model, samples)):
        assert np.abs(u[s.dirichlet_mask] - s.dirichlet_values[s.dirichlet_mask]).max() == 0.0
