"""The problem's frame (:meth:`graphfem.physics.Problem.frame`): an elastic surrogate learns and predicts
every case with its supports turned to −x, so a plate clamped on any side, in any orientation, is predicted
as the turned prediction of the same plate clamped on the left. Checked against facts that do not use the
frame: outward normals against the geometry of a square and an annulus, the rotation that the frame gives
against the turn a mesh was given, and through the CLI a plate turned a quarter with its tags renamed."""
from __future__ import annotations

import meshio
import numpy as np
import pytest

from graphfem.cli import main
from graphfem.demo import data_file
from graphfem.meshes import Mesh, Tag, read
from graphfem.physics.problem import get_problem, moved_mesh, rotation_matrix

OPTIONS = {"E": 1.0, "nu": 0.3, "traction": {"right": [0.05, 0.0]}}


def test_outward_normals_point_out_of_a_square_and_an_annulus():
    square = Mesh.unit_square(6)
    facets = square.boundary_facets()
    normals = square.outward_normals(facets)
    mid = square.points[facets].mean(axis=1)
    lengths = np.linalg.norm(square.points[facets[:, 1]] - square.points[facets[:, 0]], axis=1)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), lengths, rtol=1e-14)
    assert np.all(np.einsum("ij,ij->i", normals, mid - 0.5) > 0)  # away from the centre
    annulus = read(data_file("annulus.msh"))
    centre = annulus.points.mean(axis=0)
    for tag, sign in (("exter", 1), ("inter", -1)):  # out of the body: away from the centre outside, to it inside
        facets = annulus.tags[tag].indices
        radial = annulus.points[facets].mean(axis=1) - centre
        cosine = np.einsum("ij,ij->i", annulus.outward_normals(facets), radial) / (
            np.linalg.norm(annulus.outward_normals(facets), axis=1) * np.linalg.norm(radial, axis=1))
        assert np.all(sign * cosine > 0.9), tag


@pytest.mark.parametrize("angle", [0.0, 0.4, np.pi / 2, 2.5, -np.pi / 2])
def test_the_frame_undoes_the_turn_a_clamped_plate_was_given(angle):
    """A rectangle clamped on its left side is in the frame (R = I exactly); the same rectangle turned by θ
    gets the frame R = R(−θ), whose turn maps every node back onto the original."""
    problem = get_problem("hyperelastic")
    plate = Mesh.rectangle(6, 3, 0.0, 2.0, 0.0, 1.0)
    assert np.array_equal(problem.frame(plate, {**OPTIONS, "fix": ["left"]}), np.eye(2))
    turn = rotation_matrix(angle, 2)
    turned = moved_mesh(plate, plate.points @ turn.T)
    frame = problem.frame(turned, {**OPTIONS, "fix": ["left"]})
    np.testing.assert_allclose(turned.points @ frame.T, plate.points, atol=1e-12)


@pytest.mark.parametrize("fix", [["left:x"], ["boundary"], ["corner"]])
def test_no_frame_where_supports_do_not_turn_or_face_no_side(fix):
    """A support of one component (it holds along the mesh's axes), supports around the whole body
    (normals cancel) and a node tag (no facets) give no frame: such cases are predicted as given."""
    plate = Mesh.rectangle(6, 3, 0.0, 2.0, 0.0, 1.0)
    plate = plate.with_tags(corner=Tag("corner", "node", np.array([0])))
    assert get_problem("elasticity").frame(plate, {**OPTIONS, "fix": fix}) is None


def _displacement(path) -> np.ndarray:
    return np.asarray(meshio.read(path).point_data["displacement"])[:, :2]


def test_a_plate_turned_a_quarter_with_its_own_tag_names_is_the_turned_prediction(tmp_path, capsys):
    """Through the CLI: a model of 6 plates clamped on the left (one epoch), a plate of another seed, and the
    same plate turned 90 degrees with its tags renamed (clamped at the bottom now, pulled at the top, loads
    turned with it). The second prediction is the first one turned, to float round-off, and both hold the
    clamp exactly; `graphfem check` passes the rotation claim there."""
    import torch
    import yaml

    torch.set_num_threads(1)
    run = tmp_path / "run"
    assert main(["generate", "hyperelastic", "-n", "6", "--geometry", "perforated", "--resolution", "8:12",
                 "-o", str(tmp_path / "plates.h5")]) == 0
    config = {"model": {"name": "multiscale_meshgraphnet", "latent": 8, "levels": 1, "blocks": 1,
                        "coarse_blocks": 1},
              "data": {"path": str(tmp_path / "plates.h5"), "batch_size": 2, "val_fraction": 0.2,
                       "test_fraction": 0.2},
              "optim": {"epochs": 1, "warmup_steps": 1}, "run": {"out": str(run), "threads": 1, "progress": False}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "c.yaml")]) == 0
    assert main(["mesh", "perforated", "-o", str(tmp_path / "p.msh"), "--resolution", "10", "--seed", "9"]) == 0
    plate = read(tmp_path / "p.msh")
    quarter = rotation_matrix(np.pi / 2, 2)
    renamed = {"clamp": plate.tags["left"], "pull": plate.tags["right"]}
    turned = Mesh(plate.points @ quarter.T, plate.cell_type, plate.cells,
                  {name: Tag(name, t.kind, t.indices) for name, t in renamed.items()})
    turned.write(tmp_path / "turned.msh")
    t, b = np.array([0.08, -0.01]), np.array([0.01, -0.02])
    common = ["--E", "1.2", "--nu", "0.3"]
    assert main(["predict", str(run / "model.safetensors"), str(tmp_path / "p.msh"), "-o", str(tmp_path / "u.vtu"),
                 *common, "--fix", "left", "--traction", f"right={t[0]},{t[1]}", "--body-force", f"{b[0]},{b[1]}"]) == 0
    qt, qb = quarter @ t, quarter @ b
    turned_options = [*common, "--fix", "clamp", "--traction", f"pull={qt[0]},{qt[1]}", "--body-force",
                      f"{qb[0]},{qb[1]}"]
    assert main(["predict", str(run / "model.safetensors"), str(tmp_path / "turned.msh"), "-o",
                 str(tmp_path / "v.vtu"), *turned_options]) == 0
    u, v = _displacement(tmp_path / "u.vtu"), _displacement(tmp_path / "v.vtu")
    assert np.abs(v - u @ quarter.T).max() <= 1e-5 * np.abs(u).max()
    assert np.abs(v[turned.tag_nodes("clamp")]).max() == 0.0
    capsys.readouterr()
    assert main(["check", str(run / "model.safetensors"), str(tmp_path / "turned.msh"), *turned_options]) == 0
    assert "rotation      pass" in capsys.readouterr().out
