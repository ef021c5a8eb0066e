"""Issue 13 through the command line: the domain of validity a checkpoint stores
(warned, refused under --strict, split by evaluate) and ``predict --refine``,
whose output must equal ``graphfem solve``'s within the solver's tolerance."""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from graphfem import validity
from graphfem.meshes import Mesh, read

torch.set_num_threads(1)


def _cli(*args) -> subprocess.CompletedProcess:
    from graphfem import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def _train(tmp: Path, problem: str, n: int, extra=()) -> Path:
    data = tmp / "data.h5"
    assert _cli("generate", problem, "-n", n, "-o", data, "--seed", 11, *extra).returncode == 0
    config = tmp / "train.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "meshgraphnet", "latent": 8, "layers": 2},
        "data": {"path": str(data), "batch_size": 4, "val_fraction": 0.2, "test_fraction": 0.2},
        "optim": {"epochs": 1, "warmup_steps": 1},
        "run": {"out": str(tmp / "run"), "threads": 1, "progress": False}}))
    run = _cli("train", config)
    assert run.returncode == 0, run.stderr
    return tmp / "run" / "model.safetensors"


@pytest.fixture(scope="module")
def poisson_model(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("poisson"), "poisson", 10)


# ---------------------------------------------------------------- the ranges themselves
def test_ranges_and_violations_of_described_cases():
    small, large = Mesh.rectangle(4, 4), Mesh.rectangle(8, 4, 0.0, 2.0, 0.0, 1.0)
    cases = [validity.describe(m, np.full((m.n_points, 1), v), ["k"]) for m, v in ((small, 1.0), (large, 3.0))]
    stored = validity.ranges(cases)
    assert stored["nodes"] == [25, 45] and stored["aspect"] == [1.0, 2.0] and stored["features"]["k"] == [1.0, 3.0]
    assert stored["mesh_size"] == pytest.approx([2 ** 0.5 / 8, 2 ** 0.5 / 4])  # a cell's diagonal over the extent
    assert validity.violations(stored, cases[0]) == [] and validity.violations(stored, cases[1]) == []
    tiny = Mesh(small.points * 1e-6, small.cell_type, small.cells)
    out = validity.describe(tiny, np.full((tiny.n_points, 1), 3.5), ["k"])
    lines = validity.violations(stored, out)
    assert any(line.startswith("domain extent") for line in lines) and any("'k'" in line for line in lines)
    assert not any(line.startswith("domain extent") for line in validity.violations(stored, out, dimensionless=True))
    with pytest.raises(Exception, match="--strict"):
        validity.check(stored, out, strict=True)
    with pytest.warns(validity.ValidityWarning):
        validity.check(stored, out)
    many = validity.describe(Mesh.rectangle(20, 10, 0.0, 2.0, 0.0, 1.0), np.full((231, 1), 2.0), ["k"])
    assert validity.violations(stored, many) == [
        "nodes 231 is outside the training range [25, 45]",
        "mesh size h/L (median cell over extent) 0.07071 is outside the training range [0.1768, 0.3536]"]
    del many["nodes"], many["mesh_size"]  # a case that leaves a quantity out is not checked on it
    assert validity.violations(stored, many) == []
    cloud = validity.describe_points(np.array([[0.0, 0.0], [2.0, 0.5], [1.0, 1.0]]), {"k": [2.0, 2.0, 2.0]})
    assert (cloud["extent"], cloud["aspect"], cloud["cell_type"]) == (2.0, 2.0, "vertex")
    assert validity.violations(stored, cloud) == ["cell type vertex: the model was trained on triangle",
                                                  "nodes 3 is outside the training range [25, 45]"]
    del cloud["cell_type"], cloud["nodes"]
    assert validity.violations(stored, cloud) == []
    earlier = {k: v for k, v in stored.items() if k != "mesh_size"}  # a checkpoint from before mesh_size
    validity.check_stored(earlier, ["k"], "old.safetensors")
    assert validity.violations(earlier, validity.describe(Mesh.rectangle(4, 4), np.full((25, 1), 2.0), ["k"])) == []


def _without_cells(mesh: Mesh, boxes) -> Mesh:
    """``mesh`` less the cells whose centroid lies in one of the (x0, x1, y0, y1) ``boxes``."""
    centroids = mesh.points[mesh.cells].mean(axis=1)
    cut = np.zeros(mesh.n_cells, dtype=bool)
    for x0, x1, y0, y1 in boxes:
        cut |= (centroids[:, 0] > x0) & (centroids[:, 0] < x1) & (centroids[:, 1] > y0) & (centroids[:, 1] < y1)
    return Mesh(mesh.points, mesh.cell_type, mesh.cells[~cut]).cleaned()


def test_planar_shape_counts_holes_and_measures_the_fill():
    """By hand: a rectangle has no hole and fill 1; cutting two separate cells' squares out of its interior
    makes 2 holes; two squares apart are 2 pieces and 0 holes; the L-shape [0, 1]² less [1/2, 1]² has
    area 3/4 and a convex hull of area 7/8, so fill 6/7. Scaling and turning change neither."""
    square = Mesh.rectangle(4, 4)
    assert validity.planar_shape(square) == (0, pytest.approx(1.0))
    strip = Mesh.rectangle(9, 3, 0.0, 3.0, 0.0, 1.0)
    two_holes = _without_cells(strip, [(1 / 3, 2 / 3, 1 / 3, 2 / 3), (7 / 3, 8 / 3, 1 / 3, 2 / 3)])
    assert validity.planar_shape(two_holes)[0] == 2
    apart = _without_cells(strip, [(1.0, 2.0, -1.0, 2.0)])
    assert validity.planar_shape(apart) == (0, pytest.approx(2 / 3))
    ell = _without_cells(square, [(0.5, 1.0, 0.5, 1.0)])
    assert validity.planar_shape(ell) == (0, pytest.approx(6 / 7))
    turned = Mesh(1e-3 * ell.points @ np.array([[0.6, -0.8], [0.8, 0.6]]).T + 7.0, ell.cell_type, ell.cells)
    assert validity.planar_shape(turned) == (0, pytest.approx(6 / 7))
    assert validity.planar_shape(Mesh.unit_square(4, order=2)) == (0, pytest.approx(1.0))  # mid-side nodes


def test_the_fill_is_ranged_per_number_of_holes():
    """Training domains: a strip with one hole, one with two, and the plain strip (no hole, fill 1). The
    record is the fill's range per hole count, {0: [1, 1], 1: [26/27], 2: [25/27]}; so the L-shape (no hole,
    fill 6/7) warns although holes 0 and fill 6/7 each lie inside the [min, max] of all domains, a domain with
    three holes is named, and the training domains and a checkpoint from before the shapes pass."""
    strip = Mesh.rectangle(9, 3, 0.0, 3.0, 0.0, 1.0)
    one = _without_cells(strip, [(1 / 3, 2 / 3, 1 / 3, 2 / 3)])
    two = _without_cells(strip, [(1 / 3, 2 / 3, 1 / 3, 2 / 3), (7 / 3, 8 / 3, 1 / 3, 2 / 3)])
    three = _without_cells(strip, [(1 / 3, 2 / 3, 1 / 3, 2 / 3), (4 / 3, 5 / 3, 1 / 3, 2 / 3),
                                   (7 / 3, 8 / 3, 1 / 3, 2 / 3)])

    def case(mesh):
        return validity.describe(mesh, np.zeros((mesh.n_points, 1)), ["k"])

    def shape_lines(stored, mesh):  # the L-shape also differs in aspect and mesh size
        return [line for line in validity.violations(stored, case(mesh)) if "hole" in line]

    stored = validity.ranges([case(m) for m in (one, two, strip)])
    assert list(stored["shapes"]) == ["0", "1", "2"]
    np.testing.assert_allclose([stored["shapes"][k] for k in "012"],
                               [[1.0, 1.0], [26 / 27, 26 / 27], [25 / 27, 25 / 27]])
    assert all(validity.violations(stored, case(m)) == [] for m in (one, two, strip))
    ell = _without_cells(Mesh.rectangle(6, 6, 0.0, 3.0, 0.0, 3.0), [(1.5, 3.0, 1.5, 3.0)])
    assert shape_lines(stored, ell) == [
        "fill of the domain (area over its convex hull's) 0.8571 is outside the training range [1, 1] of its "
        "domains with 0 hole(s)"]
    assert shape_lines(stored, three) == [
        "a domain with 3 hole(s): the model was trained on domains with 0, 1, 2 hole(s)"]
    earlier = {k: v for k, v in stored.items() if k != "shapes"}
    validity.check_stored(earlier, ["k"], "old.safetensors")
    assert shape_lines(earlier, ell) == []
    with pytest.raises(Exception, match="must hold"):
        validity.check_stored({**stored, "shapes": {"one": [0.9, 1.0]}}, ["k"], "tampered.safetensors")


def test_round_off_of_a_training_case_is_inside():
    mesh = Mesh.rectangle(5, 5)
    case = validity.describe(mesh, np.linspace(0, 1, mesh.n_points)[:, None], ["f"])
    stored = validity.ranges([case])
    nudged = validity.describe(mesh, np.linspace(0, 1 + 1e-9, mesh.n_points)[:, None], ["f"])
    assert validity.violations(stored, nudged) == []


# ---------------------------------------------------------------- through the CLI
def test_a_training_case_predicts_without_warning(poisson_model, tmp_path):
    from graphfem.datasets.simulations import SimulationData

    sample = SimulationData(poisson_model.parent.parent / "data.h5").sample(0)
    mesh = tmp_path / "m.msh"
    sample.mesh.write(mesh)
    args = ["--dirichlet", *(f"{t}={v}" for t, v in sample.options["dirichlet"].items())]
    run = _cli("predict", poisson_model, mesh, "-o", tmp_path / "u.vtu", "--kappa", "1", "--source", "1", *args)
    assert run.returncode == 0, run.stderr
    assert "domain of validity: nodes" not in run.stderr and "aspect" not in run.stderr


def test_predict_threads_sets_torch_threads_and_refuses_a_negative_count(poisson_model, tmp_path):
    mesh, out = tmp_path / "m.msh", tmp_path / "u.vtu"
    Mesh.rectangle(8, 5, 0.0, 1.6, 0.0, 1.0).write(mesh)
    before = torch.get_num_threads()
    try:
        run = _cli("predict", poisson_model, mesh, "-o", out, "--threads", 1, "--dirichlet", "left=0.3")
        assert run.returncode == 0 and torch.get_num_threads() == 1 and out.exists(), run.stderr
        out.unlink()
        run = _cli("predict", poisson_model, mesh, "-o", out, "--threads", -2, "--dirichlet", "left=0.3")
        assert run.returncode != 0 and run.stderr.count("\n") == 1 and "--threads" in run.stderr
        assert not out.exists()
    finally:
        torch.set_num_threads(before)


def test_outside_the_ranges_warns_and_strict_refuses(poisson_model, tmp_path):
    mesh = tmp_path / "fine.msh"
    Mesh.rectangle(70, 70, 0.0, 3.0, 0.0, 1.0).write(mesh)  # 5,041 nodes, aspect 3
    out = tmp_path / "u.vtu"
    run = _cli("predict", poisson_model, mesh, "-o", out, "--source", "2", "--dirichlet", "left=1")
    assert run.returncode == 0 and out.exists()
    warned = [line for line in run.stderr.splitlines() if "domain of validity" in line]
    assert any("nodes 5,041" in line for line in warned) and any("aspect" in line for line in warned)
    assert all(line.startswith("graphfem: warning: ") for line in warned)
    out.unlink()
    run = _cli("predict", poisson_model, mesh, "-o", out, "--source", "2", "--dirichlet", "left=1", "--strict")
    assert run.returncode != 0 and not out.exists()
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "--strict: nodes 5,041 is outside the training range" in errors[0]


def test_a_load_on_a_side_no_training_plate_was_loaded_on_warns(tmp_path):
    """Plates clamped on the left and pulled on the right: a second traction on the top, or the clamp moved to
    the hole, is outside (the mean outward normal of the loaded or supported facets, which no input column
    carries), and --strict refuses it with no file; the training kind of case is quiet on these numbers, and so
    is the same case turned by 90 degrees (the frame turns it back). Six training plates leave other ranges
    narrow, so only the lines on the supported and loaded sides are looked at."""
    model = _train(tmp_path, "hyperelastic", 6, ("--geometry", "perforated", "--resolution", "8:12"))
    plate = tmp_path / "plate.msh"
    assert _cli("mesh", "perforated", "-o", plate, "--resolution", "10", "--seed", "4").returncode == 0
    base = ["--E", "1", "--nu", "0.3", "--body-force", "0,-0.01"]
    cases = {"own kind": ["--fix", "left", "--traction", "right=0.05,0.01"],
             "top too": ["--fix", "left", "--traction", "right=0.05,0", "--traction", "top=0,0.02"],
             "hole clamped": ["--fix", "hole", "--traction", "right=0.05,0.01"]}
    warned = {}
    for name, options in cases.items():
        run = _cli("predict", model, plate, "-o", tmp_path / "u.vtu", *base, *options)
        assert run.returncode == 0, run.stderr
        warned[name] = [line for line in run.stderr.splitlines() if "outward normal" in line]
    assert warned["own kind"] == []
    assert any("of the loaded facets, y 0.3" in line for line in warned["top too"])
    assert any("of the supported facets, x" in line and "[-1, -1]" in line for line in warned["hole clamped"])
    (tmp_path / "u.vtu").unlink()
    run = _cli("predict", model, plate, "-o", tmp_path / "u.vtu", "--strict", *base, *cases["top too"])
    assert run.returncode != 0 and not (tmp_path / "u.vtu").exists() and "--strict: " in run.stderr
    mesh = read(plate)
    turned = Mesh(mesh.points @ np.array([[0.0, -1.0], [1.0, 0.0]]).T, mesh.cell_type, mesh.cells, dict(mesh.tags))
    turned.write(tmp_path / "turned.msh")
    run = _cli("predict", model, tmp_path / "turned.msh", "-o", tmp_path / "v.vtu", "--E", "1", "--nu", "0.3",
               "--body-force", "0.01,0", "--fix", "left", "--traction", "right=-0.01,0.05")
    assert run.returncode == 0 and "outward normal" not in run.stderr, run.stderr


def test_evaluate_splits_errors_inside_and_outside(poisson_model, tmp_path):
    other = tmp_path / "other.h5"
    assert _cli("generate", "poisson", "-n", 6, "-o", other, "--seed", 99, "--geometry", "lshape").returncode == 0
    run = _cli("evaluate", poisson_model, other, "--json")
    stats = json.loads(run.stdout)
    assert stats["inside"]["samples"] + stats["outside"]["samples"] == 6
    errors = np.asarray(stats["errors"])
    parts = [stats[k]["rel_l2_mean"] for k in ("inside", "outside") if stats[k]["samples"]]
    assert min(parts) >= errors.min() - 1e-12 and max(parts) <= errors.max() + 1e-12
    text = _cli("evaluate", poisson_model, other).stdout
    assert "the model's training ranges: inside" in text and "relative L2 error (FE mass-matrix norm)" in text


def test_a_tampered_validity_record_is_refused(poisson_model, tmp_path):
    from graphfem.checkpoint import load, read_tensors, save_tensors

    tensors, meta = read_tensors(poisson_model)
    meta["validity"]["nodes"] = [40, "many"]
    bad = tmp_path / "bad.safetensors"
    save_tensors(bad, tensors, meta)
    with pytest.raises(Exception, match="validity"):
        load(bad, device="cpu")


# ---------------------------------------------------------------- --refine
def _max_relative(a: Path, b: Path, field: str) -> float:
    x, y = read(a).point_data[field], read(b).point_data[field]
    return float(np.abs(x - y).max() / np.abs(y).max())


def test_refine_poisson_equals_solve(poisson_model, tmp_path):
    mesh = tmp_path / "disc.msh"
    Mesh.rectangle(30, 20, 0.0, 1.5, 0.0, 1.0).write(mesh)
    options = ["--kappa", "1 + x", "--source", "cos(2*x)", "--dirichlet", "left=0.5", "--dirichlet", "top=0"]
    assert _cli("solve", "poisson", mesh, "-o", tmp_path / "fe.vtu", *options).returncode == 0
    run = _cli("predict", poisson_model, mesh, "-o", tmp_path / "nn.vtu", "--refine", *options)
    assert run.returncode == 0, run.stderr
    assert "AMG-preconditioned CG" in run.stdout and "refined from the meshgraphnet prediction" in run.stdout
    assert _max_relative(tmp_path / "nn.vtu", tmp_path / "fe.vtu", "u") < 1e-7
    refused = _cli("predict", poisson_model, mesh, "-o", tmp_path / "x.vtu", "--refine", "--solver", "direct",
                   *options)
    assert refused.returncode != 0 and "--solver direct" in refused.stderr and not (tmp_path / "x.vtu").exists()


def test_refine_hyperelastic_equals_solve(tmp_path):
    plate = tmp_path / "plate.msh"
    Mesh.rectangle(12, 6, 0.0, 2.0, 0.0, 1.0).write(plate)
    model = _train(tmp_path, "hyperelastic", 6, ("--geometry", str(plate)))
    mesh = tmp_path / "bar.msh"
    Mesh.rectangle(14, 5, 0.0, 2.0, 0.0, 0.8).write(mesh)
    options = ["--E", "1.3", "--nu", "0.28", "--fix", "left", "--traction", "right=0.07,-0.01"]
    assert _cli("solve", "hyperelastic", mesh, "-o", tmp_path / "fe.vtu", *options).returncode == 0
    run = _cli("predict", model, mesh, "-o", tmp_path / "nn.vtu", "--refine", *options)
    assert run.returncode == 0, run.stderr
    assert "Newton:" in run.stdout
    assert _max_relative(tmp_path / "nn.vtu", tmp_path / "fe.vtu", "displacement") < 1e-8


def test_newton_from_a_good_guess_needs_no_load_steps():
    """Independent of any model: the converged solution, perturbed by 20 % smoothly,
    refines in one load step with fewer Newton iterations, to the same solution."""
    from graphfem.physics.problem import get_problem

    mesh = Mesh.rectangle(16, 8, 0.0, 2.0, 0.0, 1.0)
    problem = get_problem("hyperelastic")
    raw = {"E": 1.0, "nu": 0.3, "fix": ["left"], "traction": {"right": [0.1, 0.02]}}
    reference = problem.run(mesh, raw)
    u = reference.fields["displacement"]
    guess = 1.2 * u + 0.02 * np.sin(3 * mesh.points[:, :1]) * mesh.points[:, :1]
    refined = problem.refine(mesh, raw, {"displacement": guess})
    assert refined.info["initial_failed"] is False and len(refined.info["load_factors"]) == 1
    assert refined.info["newton_iterations"] < reference.info["newton_iterations"]
    np.testing.assert_allclose(refined.fields["displacement"], u, atol=1e-9 * np.abs(u).max())


def test_refine_is_refused_where_the_solver_takes_no_guess(tmp_path):
    from graphfem.meshes.errors import InputError
    from graphfem.physics.problem import get_problem

    with pytest.raises(InputError, match="--refine: the heat solver takes no starting guess"):
        get_problem("heat").refine(Mesh.rectangle(3, 3), {}, {})


def test_a_model_of_linear_cells_serves_a_quadratic_mesh(poisson_model, tmp_path):
    """On triangle6 cells: the prediction of the corner sub-mesh at the corners, its linear interpolant at
    the mid-side nodes, the Dirichlet values exact at every node of the tags (mid-side nodes included),
    and --refine equal to graphfem solve's isoparametric P2 solution."""
    mesh = Mesh.rectangle(9, 6, 0.0, 1.5, 0.0, 1.0, order=2)
    mesh = Mesh(mesh.points + 0.02 * np.sin(5 * mesh.points[:, ::-1]) * (mesh.points * (mesh.points - [1.5, 1])),
                mesh.cell_type, mesh.cells, mesh.tags)  # curved cells, the boundary kept straight
    sub, corners = mesh.linear_submesh()
    mesh.write(tmp_path / "q.msh")
    sub.write(tmp_path / "corners.msh")
    options = ["--kappa", "2 - y", "--source", "1 + x", "--dirichlet", "left=0.5", "--dirichlet", "right=-0.25"]
    for name in ("q", "corners"):
        run = _cli("predict", poisson_model, tmp_path / f"{name}.msh", "-o", tmp_path / f"{name}.vtu", *options)
        assert run.returncode == 0, run.stderr
    served, on_corners = read(tmp_path / "q.vtu"), read(tmp_path / "corners.vtu")
    u, u_corners = served.point_data["u"], on_corners.point_data["u"]
    assert served.cell_type == "triangle6" and u.shape == (mesh.n_points,)
    np.testing.assert_allclose(u[corners], u_corners, rtol=1e-6, atol=1e-9)
    x = mesh.points[:, 0]
    assert np.count_nonzero(x == 0.0) == 13 and (u[x == 0.0] == 0.5).all() and (u[x == 1.5] == -0.25).all()
    free = (x > 0) & (x < 1.5)
    np.testing.assert_allclose(u[free], mesh.from_corners(u_corners)[free], rtol=1e-6, atol=1e-9)
    assert _cli("solve", "poisson", tmp_path / "q.msh", "-o", tmp_path / "fe.vtu", *options).returncode == 0
    refined = _cli("predict", poisson_model, tmp_path / "q.msh", "-o", tmp_path / "r.vtu", "--refine", *options)
    assert refined.returncode == 0, refined.stderr
    assert _max_relative(tmp_path / "r.vtu", tmp_path / "fe.vtu", "u") < 1e-7
