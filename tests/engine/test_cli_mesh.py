"""``graphfem mesh``: every shape is written with its tags, covers the domain it names (its area
against the exact one) and feeds a solve; bad values are one line, exit 1 and no file."""
from __future__ import annotations

import math

import numpy as np
import pytest

from graphfem.cli import main
from graphfem.meshes import FESpace, Mesh


def _area(mesh: Mesh) -> float:
    """∫ 1 dx by the P1 mass matrix."""
    return float(FESpace(mesh, order=1).mass().sum())


@pytest.mark.parametrize("args, area, tags", [
    (["rectangle", "--lower", "0.3,0.1", "--upper", "0.6,0.4", "--resolution", "6"], 0.09,
     {"left", "right", "bottom", "top", "boundary"}),
    (["rectangle", "--cell", "quad", "--upper", "2,1", "--resolution", "8"], 2.0, {"left", "right", "boundary"}),
    (["box", "--upper", "2,1,1", "--resolution", "3"], 2.0, {"xmin", "zmax", "boundary"}),
    (["lshape", "--resolution", "8"], 3.0, {"left", "right", "bottom", "top", "boundary"}),
    (["plate-hole", "--resolution", "12"], 1 - math.pi * 0.3 ** 2 / 4, {"hole", "left", "boundary"}),
])
def test_shapes_cover_their_domain(tmp_path, capsys, args, area, tags):
    out = tmp_path / "m.msh"
    assert main(["mesh", *args, "-o", str(out)]) == 0
    mesh = Mesh.read(out)
    assert tags <= set(mesh.tags)
    # the plate's hole is a polygon of 2*12 chords: its area error is O(h^2)
    assert _area(mesh) == pytest.approx(area, rel=2e-3 if args[0] == "plate-hole" else 1e-12)


def test_lshape_sides_are_tagged_by_their_outward_normal(tmp_path, capsys):
    """[-1, 1]^2 minus the quadrant x, y > 0: the notch's two sides face +x (at x = 0, y > 0) and +y (at y = 0,
    x > 0), so they join ``right`` and ``top``; every facet lies on exactly one tag of the four."""
    out = tmp_path / "l.msh"
    assert main(["mesh", "lshape", "--resolution", "6", "-o", str(out)]) == 0
    mesh = Mesh.read(out)
    where = {name: mesh.points[mesh.tags[name].indices] for name in ("left", "right", "bottom", "top")}  # (f, 2, 2)
    assert np.all(where["left"][..., 0] == -1) and np.all(where["bottom"][..., 1] == -1)
    right_x, top_y = where["right"][..., 0], where["top"][..., 1]
    assert np.all((right_x == 1) | ((right_x == 0) & (where["right"][..., 1] >= 0)))
    assert np.all((top_y == 1) | ((top_y == 0) & (where["top"][..., 0] >= 0)))
    assert np.any(right_x == 0) and np.any(top_y == 0)  # the notch's sides are there
    assert sum(len(f) for f in where.values()) == len(mesh.boundary_facets())


@pytest.mark.parametrize("seed", [5, 6])
def test_order_2_of_a_plate_whose_corners_scikit_fem_recomputes(tmp_path, capsys, seed):
    """scikit-fem's quadratic mesh recomputes the corner coordinates (1e-17 off on these plates, which used to
    be refused as renumbered): the corners are kept exactly as the linear mesh has them."""
    linear, quadratic = tmp_path / "p1.msh", tmp_path / "p2.msh"
    for path, order in ((linear, "1"), (quadratic, "2")):
        assert main(["mesh", "perforated", "--seed", str(seed), "--resolution", "12", "--order", order,
                     "-o", str(path)]) == 0
    corners = Mesh.read(quadratic).linear_submesh()[0]
    np.testing.assert_array_equal(corners.points, Mesh.read(linear).points)


def test_random_shapes_follow_the_seed_and_solve(tmp_path, capsys):
    a, b, c = (tmp_path / f"{n}.msh" for n in "abc")
    assert main(["mesh", "perforated", "--seed", "4", "--resolution", "10", "-o", str(a)]) == 0
    assert main(["mesh", "perforated", "--seed", "4", "--resolution", "10", "-o", str(b)]) == 0
    assert main(["mesh", "perforated", "--seed", "5", "--resolution", "10", "-o", str(c)]) == 0
    pa, pb, pc = (Mesh.read(p).points for p in (a, b, c))
    assert np.array_equal(pa, pb) and (pa.shape != pc.shape or not np.allclose(pa, pc))
    assert main(["solve", "poisson", str(a), "-o", str(tmp_path / "u.vtu"), "--dirichlet", "hole=1",
                 "--dirichlet", "left=0"]) == 0


@pytest.mark.parametrize("args, cell_type", [(["rectangle", "--upper", "1.5,1"], "triangle6"),
                                              (["plate-hole"], "quad9"), (["box"], "tetra10"),
                                              (["perforated", "--seed", "4"], "triangle6")])
def test_order_2_adds_mid_side_nodes_to_the_same_mesh(tmp_path, capsys, args, cell_type):
    """--order 2 is the linear mesh of the same options plus mid-side nodes: its corner sub-mesh is that mesh,
    its tags are that mesh's, and the isoparametric P2 solve reproduces a quadratic solution exactly."""
    linear, quadratic = tmp_path / "p1.msh", tmp_path / "p2.msh"
    assert main(["mesh", *args, "--resolution", "4", "-o", str(linear)]) == 0
    assert main(["mesh", *args, "--resolution", "4", "--order", "2", "-o", str(quadratic)]) == 0
    p1, p2 = Mesh.read(linear), Mesh.read(quadratic)
    assert p2.cell_type == cell_type and set(p2.tags) == set(p1.tags)
    corners = p2.linear_submesh()[0]
    np.testing.assert_array_equal(corners.points, p1.points)
    np.testing.assert_array_equal(np.sort(corners.cells, axis=1), np.sort(p1.cells, axis=1))
    assert main(["solve", "poisson", str(quadratic), "-o", str(tmp_path / "u.vtu"), "--source", "-2",
                 "--dirichlet", "boundary=x*x"]) == 0
    u, x = Mesh.read(tmp_path / "u.vtu").point_data["u"], p2.points[:, 0]
    np.testing.assert_allclose(u, x * x, atol=1e-10)


@pytest.mark.parametrize("args, words, code", [  # 2: a word or value of the wrong form, 1: out of range
    (["circle"], "unknown shape 'circle'", 2),
    (["rectangle", "--resolution", "0"], "--resolution 0", 1),
    (["box", "--resolution", "500"], "1..200", 1),
    (["rectangle", "--upper", "0,1"], "must exceed", 1),
    (["rectangle", "--lower", "0,nan"], "finite", 1),
    (["rectangle", "--lower", "0,0,0"], "expected 2 comma-separated numbers", 2),
    (["lshape", "--lower", "0,0"], "only interval, rectangle and box", 1),
    (["box", "--cell", "quad"], "only a rectangle", 1),
    (["rectangle", "--order", "3"], "--order 3: expected 1", 2),
    (["interval", "--order", "2"], "2D and 3D shapes", 1),
])
def test_bad_values_are_one_line_and_no_file(tmp_path, capsys, args, words, code):
    out = tmp_path / "m.msh"
    assert main(["mesh", *args, "-o", str(out)]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("graphfem: error: ") and words in err[0], err
    assert list(tmp_path.iterdir()) == []
