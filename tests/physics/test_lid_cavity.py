"""Parametric lid-driven cavity: the Taylor-Hood reference meets its boundary data, its stream
function reproduces its velocity, the torch vorticity residual of the FE solution is small (the
independent check of the RGNP residual), the hard-condition lift is exact, and bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from graphfem.meshes import Mesh
from graphfem.meshes.errors import InputError
from graphfem.physics.lid_cavity import lid_cavity, lid_profile, residual, stream_lift
from graphfem.physics.problem import get_problem

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def flow():
    """Re = 40 (nu = 0.02, lid 0.8) on 32 x 32 x 2 triangles: convection and diffusion balance."""
    return lid_cavity(Mesh.rectangle(32), 0.02, 0.8)


def test_reference_meets_the_lid_and_walls_and_its_stream_function(flow):
    pts, vel = flow.mesh.points, flow.fields["velocity"]
    top = np.abs(pts[:, 1] - 1) < 1e-12
    np.testing.assert_allclose(vel[top, 0], 0.8 * lid_profile(pts[top, 0]), atol=1e-12)
    walls = (pts[:, 1] < 1e-12) | (pts[:, 0] < 1e-12) | (pts[:, 0] > 1 - 1e-12)
    assert np.abs(vel[walls]).max() < 1e-12 and np.abs(vel[top, 1]).max() < 1e-12
    assert flow.info["re"] == pytest.approx(40.0) and flow.info["newton_iterations"] >= 2
    # u = psi_y, v = -psi_x by central differences of the P2 stream function at interior points
    th, h = flow.flow, 1e-4
    psi = lambda p: th.scalar.probe(p) @ flow.dofs["stream"]  # noqa: E731
    p = np.random.default_rng(0).uniform(0.1, 0.9, (50, 2))
    dy = (psi(p + [0, h]) - psi(p - [0, h])) / (2 * h)
    dx = (psi(p + [h, 0]) - psi(p - [h, 0])) / (2 * h)
    got = np.stack([dy, -dx], 1)
    assert np.abs(got - flow.velocity_at(p)).max() < 0.02 * np.abs(vel).max()


def _legendre(t, degree):
    terms = [torch.ones_like(t), t]
    for k in range(1, degree):
        terms.append(((2 * k + 1) * t * terms[-1] - k * terms[-2]) / (k + 1))
    return torch.stack(terms[:degree + 1], -1)


def test_the_fe_solution_has_a_small_vorticity_residual(flow):
    """psi_FE = b + D q with q a degree-12 tensor Legendre fit at the P2 dofs; the torch residual
    Delta^2 psi - (psi_y Delta psi_x - psi_x Delta psi_y)/nu at 400 random points of [0.1, 0.9]^2
    is 0.4 % (rms) of either term, and the same fit judged with a doubled nu leaves 50 %."""
    from numpy.polynomial import legendre

    degree, w, nu = 12, 0.8, 0.02
    X = flow.flow.ub.doflocs.T
    b, D = stream_lift(X[:, 0], X[:, 1], w)
    V = legendre.legvander2d(2 * X[:, 0] - 1, 2 * X[:, 1] - 1, [degree, degree]) * D[:, None]
    coef = np.linalg.lstsq(V, flow.dofs["stream"] - b, rcond=None)[0].reshape(degree + 1, degree + 1)
    xy = 0.1 + 0.8 * torch.rand(1, 400, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x, y = (xy[..., k].clone().requires_grad_(True) for k in range(2))
    bb, DD = stream_lift(x, y, w)
    q = torch.einsum("bni,bnj,ij->bn", _legendre(2 * x - 1, degree), _legendre(2 * y - 1, degree),
                     torch.as_tensor(coef))
    psi = bb + DD * q
    rms = lambda t: float(t.detach().pow(2).mean().sqrt())  # noqa: E731
    r = rms(residual(x, y, psi, torch.tensor([[nu]], dtype=torch.float64)))
    biharmonic = rms(residual(x, y, psi, torch.tensor([[1e30]], dtype=torch.float64)))  # nu -> infinity
    wrong = rms(residual(x, y, psi, torch.tensor([[2 * nu]], dtype=torch.float64)))
    print(f"rms residual {r:.3g}, biharmonic term {biharmonic:.3g}, with 2 nu {wrong:.3g}")
    assert r < 0.02 * biharmonic and wrong > 0.3 * biharmonic


def test_the_lift_meets_every_boundary_condition_exactly():
    """Any psi = b + D q: psi = 0 on the boundary, (u, v) = (w l(x), 0) on the lid, 0 on the walls."""
    g = torch.Generator().manual_seed(1)
    s = torch.rand(40, generator=g, dtype=torch.float64)
    zero, one = torch.zeros_like(s), torch.ones_like(s)
    w = 0.7
    for x, y in ((s, zero), (s, one), (zero, s), (one, s)):
        x, y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
        b, D = stream_lift(x, y, w)
        psi = b + D * torch.sin(3 * x + 2 * y) * 5
        px, py = torch.autograd.grad(psi.sum(), (x, y))
        assert float(psi.detach().abs().max()) == 0.0 and float(px.abs().max()) == 0.0
        want = w * lid_profile(x) * (y == 1)
        assert float((py - want).detach().abs().max()) < 1e-15


def test_bad_input_is_one_line(tmp_path):
    problem = get_problem("lid-cavity")
    for mesh, raw, words in ((Mesh.rectangle(4), {}, "--viscosity is required"),
                             (Mesh.rectangle(4), {"viscosity": "-1"}, "--viscosity must be positive"),
                             (Mesh.rectangle(4, x1=2.0), {"viscosity": "0.1"}, "lives on the unit square"),
                             (Mesh.interval(4, 0.0, 1.0), {"viscosity": "0.1"}, "2D meshes")):
        with pytest.raises(InputError, match=words) as err:
            problem.parse(mesh, raw)
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="whole unit square"):
        problem.run(Mesh.rectangle(4, x1=0.5), {"viscosity": "0.1"})
