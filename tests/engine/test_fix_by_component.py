"""One vocabulary for fixed supports (issue 18): ``--fix TAG[:c]`` for elasticity and hyperelastic, as fe2
takes it, through the solvers, ``--refine``, the MeshGraphNet inputs, the exact Dirichlet values of a
prediction and ``graphfem check``; checkpoints written before it keep their inputs.

The reference is independent of the code: a block on rollers (u_x = 0 on x = 0, u_y = 0 on y = 0)
under a uniaxial traction σ on x = a is in uniform stress, u_x = σ x / E', u_y = −ν' σ y / E' with the
plane-strain E' = E / (1 − ν²), ν' = ν / (1 − ν); linear, so P1 elements reproduce it to round-off.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import graphfem
from graphfem.cli import main
from graphfem.meshes import Mesh, read
from graphfem.physics.problem import get_problem, moved_mesh

torch.set_num_threads(1)

E, NU, SIGMA = 2.6, 0.27, 0.015
ROLLERS = ["left:x", "bottom:y"]


def _block() -> Mesh:
    """A 1.4 x 0.9 block of 8 x 5 nodes, its interior nodes moved at random (seed 18)."""
    mesh = Mesh.rectangle(7, 4, 0.0, 1.4, 0.0, 0.9)
    points = mesh.points.copy()
    inner = np.setdiff1d(np.arange(mesh.n_points), mesh.boundary_nodes())
    points[inner] += np.random.default_rng(18).uniform(-0.05, 0.05, (inner.size, 2))
    return moved_mesh(mesh, points)


def _uniform_stress(points: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    Ep, nup = E / (1 - NU ** 2), NU / (1 - NU)
    return np.stack([sigma * points[:, 0] / Ep, -nup * sigma * points[:, 1] / Ep], axis=1)


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_rollers_through_the_cli_give_the_uniform_stress_solution(tmp_path, capsys):
    mesh = _block()
    mesh.write(tmp_path / "block.msh")
    code, _, err = _cli(capsys, "solve", "elasticity", tmp_path / "block.msh", "-o", tmp_path / "u.vtu",
                        "--E", E, "--nu", NU, "--plane-strain", "--fix", "left:x", "--fix", "bottom:y",
                        "--traction", f"right={SIGMA},0")
    assert code == 0, err
    u = read(tmp_path / "u.vtu").point_data["displacement"][:, :2]
    exact = _uniform_stress(mesh.points)
    assert np.abs(u - exact).max() <= 1e-10 * np.abs(exact).max()
    # the rollers let the fixed sides slide: u_y moves on the left, u_x on the bottom
    assert np.abs(u[mesh.tag_nodes("left"), 1]).max() > 0.1 * np.abs(exact[:, 1]).max()


def test_3d_rollers_and_several_letters_in_one_support():
    """--fix xmin:x --fix ymin:y --fix zmin:z, and TAG:xy = TAG:x plus TAG:y (fe2's form)."""
    problem = get_problem("elasticity")
    mesh = Mesh.box(2, upper=(1.5, 1.0, 0.8), cell="tetra")
    sol = problem.run(mesh, {"E": E, "nu": NU, "fix": ["xmin:x", "ymin:y", "zmin:z"],
                             "traction": [f"xmax={SIGMA},0,0"]})
    expected = SIGMA / E * mesh.points * np.array([1.0, -NU, -NU])
    assert np.abs(sol.fields["displacement"] - expected).max() <= 1e-10 * np.abs(expected).max()
    parse = lambda fix: problem.parse(mesh, {"E": E, "nu": NU, "fix": fix})["fix"]  # noqa: E731
    assert parse(["xmin:xy", "xmin:z"]) == parse(["xmin"]) == parse(["xmin:x", "xmin:yz"]) == {"xmin": "xyz"}


def test_hyperelastic_on_rollers_is_the_small_strain_answer_at_a_tiny_load():
    """Neo-Hookean Newton with load steps on rollers: at σ/E = 4e-7 the small-strain answer (to the
    strain's order), and the deviation shrinks with the load as the strain does."""
    problem, mesh = get_problem("hyperelastic"), _block()
    gaps = []
    for sigma in (1e-6, 1e-5):
        sol = problem.run(mesh, {"E": E, "nu": NU, "fix": ROLLERS, "traction": [f"right={sigma},0"], "steps": "2"})
        exact = _uniform_stress(mesh.points, sigma)
        gaps.append(np.abs(sol.fields["displacement"] - exact).max() / np.abs(exact).max())
    assert gaps[0] < 1e-5 and 5 < gaps[1] / gaps[0] < 20, gaps


@pytest.mark.parametrize("name", ["elasticity", "hyperelastic"])
def test_refine_from_a_guess_on_rollers_is_the_solve(name):
    problem, mesh = get_problem(name), _block()
    raw = {"E": E, "nu": NU, "fix": ROLLERS, "traction": [f"right={20 * SIGMA},{SIGMA}"]}
    ref = problem.run(mesh, raw).fields["displacement"]
    guess = ref * 1.05 + 1e-4  # not even zero on the supports: the solver imposes them
    got = problem.refine(mesh, raw, {"displacement": guess}).fields["displacement"]
    assert np.abs(got - ref).max() <= 1e-7 * np.abs(ref).max()
    assert np.all(got[mesh.tag_nodes("left"), 0] == 0.0) and np.all(got[mesh.tag_nodes("bottom"), 1] == 0.0)


@pytest.mark.parametrize("name", ["elasticity", "hyperelastic"])
def test_a_bare_tag_holds_every_component_as_before(name):
    """--fix left is --fix left:x --fix left:y and --fix left:xy: the dofs scikit-fem finds on the tag."""
    from graphfem.physics.elasticity import supports
    from graphfem.physics.poisson import make_space

    problem, mesh = get_problem(name), _block()
    raw = {"E": E, "nu": NU, "traction": [f"right={SIGMA},-{SIGMA}"]}
    runs = [problem.run(mesh, {**raw, "fix": fix}).fields["displacement"]
            for fix in (["left"], ["left:x", "left:y"], ["left:xy"], "left")]
    for u in runs[1:]:
        np.testing.assert_array_equal(u, runs[0])
    space = make_space(mesh, 1, vector=True)
    D, _ = supports(space, problem.kwargs(problem.parse(mesh, {**raw, "fix": ["left"]}))["fixed"], None)
    np.testing.assert_array_equal(D, space.dofs_on("left"))


def test_supports_that_leave_a_rigid_motion_free_are_refused():
    """A roller on one side only lets the body slide along that side, and y-rollers on two sides still let it
    slide along x: refused in one line naming the motion (3D: u_x held on x = 0 only leaves the translations
    along y and z and the rotation about x)."""
    from graphfem.meshes.errors import InputError

    elastic, mesh = get_problem("elasticity"), _block()
    raw = {"E": E, "nu": NU, "traction": ["right=0.01,0"]}
    for fix, motion in ((["left:x"], "a translation along y"), (["left:y", "right:y"], "a translation along x"),
                        (["bottom:y", "top:y"], "a translation along x")):
        with pytest.raises(InputError, match=f"the supports leave {motion} free"):
            elastic.run(mesh, {**raw, "fix": fix})
    box = Mesh.box(2, cell="tetra")
    with pytest.raises(InputError, match="the supports leave a (translation along [yz]|rotation about x) free"):
        elastic.run(box, {"E": E, "nu": NU, "fix": ["xmin:x"], "traction": ["xmax=0.01,0,0"]})
    elastic.run(mesh, {**raw, "fix": ["left:x", "bottom:y"]})  # rollers on two sides hold it


def test_malformed_or_unknown_supports_are_one_line(tmp_path, capsys):
    _block().write(tmp_path / "block.msh")
    m, out = tmp_path / "block.msh", tmp_path / "u.vtu"
    base = ["--E", E, "--nu", NU, "--traction", "right=0.01,0"]
    cases = [(["solve", "elasticity", m, "-o", out, *base, "--fix", "left:w"], 2, "--fix 'left:w': expected TAG"),
             (["solve", "hyperelastic", m, "-o", out, *base, "--fix", "bottom:"], 2, "expected TAG or TAG:c"),
             (["generate", "elasticity", "-n", "1", "-o", tmp_path / "d.h5", "--fix", "left:q"], 2, "expected TAG"),
             (["solve", "elasticity", m, "-o", out, *base, "--fix", "wall:x"], 1, "unknown tag 'wall'"),
             (["solve", "hyperelastic", m, "-o", out, *base, "--fix", "left:z"], 1, "the mesh is 2D"),
             (["solve", "elasticity", m, "-o", out, *base, "--fix", "left:x"], 1,
              "the supports leave a translation along y free"),
             (["solve", "hyperelastic", m, "-o", out, *base, "--fix", "bottom:y"], 1,
              "the supports leave a translation along x free")]
    for args, expected, words in cases:
        code, _, err = _cli(capsys, *args)
        assert code == expected and len(err.strip().splitlines()) == 1 and words in err, (args, code, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["block.msh"]
    code, text, _ = _cli(capsys, "solve", "elasticity", "--help")
    assert code == 0 and "TAG[:x|y|z]" in text


# ------------------------------------------------------------------ the surrogate's inputs
def test_the_inputs_carry_one_support_column_per_component():
    problem, mesh = get_problem("hyperelastic"), _block()
    params = problem.parse(mesh, {"E": E, "nu": NU, "fix": ROLLERS, "traction": ["right=0.01,0"]})
    features = problem.features(mesh, params)
    at = features.names.index("fix:mask")
    assert features.names[at + 1:at + 3] == ["fix[0]", "fix[1]"]
    left, bottom = mesh.tag_nodes("left"), mesh.tag_nodes("bottom")
    held = np.zeros((mesh.n_points, 2), dtype=bool)
    held[left, 0] = held[bottom, 1] = True
    np.testing.assert_array_equal(features.x[:, at + 1:at + 3], held.astype(float))
    np.testing.assert_array_equal(features.dirichlet, held)
    assert set(np.flatnonzero(features.x[:, at])) == set(left) | set(bottom)


def _pre_component_checkpoint(path: Path) -> Path:
    """The shipped demo checkpoint as one written before the fix[k] columns: those input columns taken out of
    the node encoder's first layer, the normalisation, the validity ranges and the feature names."""
    from graphfem.checkpoint import read_tensors, save_tensors
    from graphfem.demo import data_file

    tensors, meta = read_tensors(data_file("demo_mgn.safetensors"))
    names = meta["problem"]["features"]
    keep = [k for k, name in enumerate(names) if not name.startswith("fix[")]
    tensors["node_encoder.0.weight"] = tensors["node_encoder.0.weight"][:, keep].contiguous()
    meta["config"]["in_node"] = len(keep)
    meta["problem"]["features"] = [names[k] for k in keep]
    for key in ("x_mean", "x_std"):
        meta["normalisation"][key] = [meta["normalisation"][key][k] for k in keep]
    meta["validity"]["features"] = {n: r for n, r in meta["validity"]["features"].items() if not n.startswith("fix[")}
    save_tensors(path, tensors, meta)
    return path


def test_a_checkpoint_from_before_fix_by_component_keeps_its_inputs_and_refuses_a_roller_in_one_line(tmp_path):
    """A hyperelastic model trained before fix[k] reads its own layout: the same prediction as its features of
    that version (no fix[k] columns); a support by component it never saw is refused."""
    from graphfem.demo import DEMO_OPTIONS, data_file
    from graphfem.meshes.errors import InputError

    surrogate = graphfem.load(_pre_component_checkpoint(tmp_path / "old.safetensors"))
    trained = surrogate.meta["problem"]["features"]
    assert "fix:mask" in trained and "fix[0]" not in trained
    mesh = read(data_file("perforated_plate.msh"))
    problem = get_problem("hyperelastic")
    params = problem.parse(mesh, DEMO_OPTIONS)
    new = problem.features(mesh, params, by_load=False)  # this version's layout before the load magnitude
    old = problem.features_in(mesh, params, trained)
    later = [k for k, name in enumerate(new.names) if name not in trained]
    assert [new.names[k] for k in later] == ["fix[0]", "fix[1]", "fix:distance", "traction:distance"]
    assert old.names == trained
    np.testing.assert_array_equal(old.x, np.delete(new.x, later, axis=1))
    u = surrogate.predict(mesh, **DEMO_OPTIONS)["displacement"]
    assert np.all(u[mesh.tag_nodes("left")] == 0.0) and np.abs(u).max() > 1e-2
    with pytest.raises(InputError, match=r"--fix left:x: the model was trained before supports by component"):
        surrogate.predict(mesh, **{**DEMO_OPTIONS, "fix": ["left:x", "bottom:y"]})


def _tiny_model(tmp_path: Path, problem: str) -> Path:
    """A one-epoch MeshGraphNet (latent 8, 2 layers) on 4 generated samples, through the CLI."""
    assert main(["generate", problem, "-n", "4", "-o", str(tmp_path / "d.h5"), "--seed", "18"]) == 0
    cfg = {"model": {"name": "meshgraphnet", "latent": 8, "layers": 2},
           "data": {"path": str(tmp_path / "d.h5"), "batch_size": 2, "val_fraction": 0.25, "test_fraction": 0.25},
           "optim": {"epochs": 1, "warmup_steps": 1},
           "run": {"out": str(tmp_path / "run"), "threads": 1, "progress": False, "device": "cpu"}}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "train.yaml")]) == 0
    return tmp_path / "run" / "model.safetensors"


def test_a_new_model_takes_the_roller_values_exactly_and_check_says_so(tmp_path, capsys):
    """Only the held components are set: u_x = 0 on the left and u_y = 0 on the bottom exactly, the other
    components predicted; graphfem check reports dirichlet 0.0 on the roller case and rotation n/a."""
    path = _tiny_model(tmp_path, "hyperelastic")
    surrogate, mesh = graphfem.load(path), _block()
    assert "fix[1]" in surrogate.meta["problem"]["features"]
    options = {"E": E, "nu": NU, "fix": ROLLERS, "traction": {"right": [0.05, 0.0]}}
    with pytest.warns(graphfem.validity.ValidityWarning):
        u = surrogate.predict(mesh, **options)["displacement"]
    left, bottom = mesh.tag_nodes("left"), mesh.tag_nodes("bottom")
    assert np.all(u[left, 0] == 0.0) and np.all(u[bottom, 1] == 0.0)
    assert np.all(u[np.setdiff1d(left, bottom), 1] != 0.0) and np.all(u[np.setdiff1d(bottom, left), 0] != 0.0)
    mesh.write(tmp_path / "block.msh")
    code, out, err = _cli(capsys, "check", path, tmp_path / "block.msh", "--E", E, "--nu", NU,
                          "--fix", "left:x", "--fix", "bottom:y", "--traction", "right=0.05,0")
    lines = {line.split()[0]: line for line in out.strip().splitlines()[1:]}
    assert code == 0, err
    assert lines["dirichlet"].startswith("dirichlet     pass         deviation 0.000e+00")
    assert f"over {left.size + bottom.size} fixed values of displacement" in lines["dirichlet"]
    assert "n/a" in lines["rotation"] and "--fix left:x holds a component along the mesh's axes" in lines["rotation"]


def test_a_spon_model_trained_clamped_refuses_a_roller_on_the_same_tag():
    """SPON fixes --fix at its training value; --fix left:x names the same tag as the trained --fix left but
    holds another support, and is refused like any other value (it was served as the clamp before)."""
    from graphfem.datasets import spon as spon_data
    from graphfem.families.spon import parse_options
    from graphfem.meshes.errors import InputError

    family = "spon-hyperelastic"
    meta = {"data_family": family, "options": list(spon_data.INPUTS[family] + spon_data.FIXED[family]),
            "fixed": {"E": 1.0, "nu": 0.3, "fix": ["left"]}}
    problem, mesh = get_problem("hyperelastic"), _block()
    for fix in ([], ["left"], ["left:xy"], ["left:x", "left:y"]):
        assert parse_options(problem, meta, mesh, {"traction": ["right=0.1,0"], "fix": fix})["fix"] == {"left": "xy"}
    with pytest.raises(InputError, match="--fix left:x: the SPON model was trained with --fix left:xy"):
        parse_options(problem, meta, mesh, {"traction": ["right=0.1,0"], "fix": ["left:x"]})
