"""The core CLI: info, solve, render, demo, and what bad input gets.

Bad input must give one line on stderr naming the file and the problem, a
non-zero exit code and no output file.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import meshio
import numpy as np
import pytest

from graphfem.cli import main
from graphfem.meshes import read


def run_cli(*args: str, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("graphfem: warning:")]
    assert len(lines) == 1, err
    assert lines[0].startswith("graphfem: error"), err
    return lines[0]


def test_info_json_reports_tags_quality_and_split_warning(shared_meshes, capsys):
    code, out, _ = run_cli("info", shared_meshes / "skfem_mixedtriquad.msh", "--json", capsys=capsys)
    assert code == 0
    summary = json.loads(out)
    assert summary["dimension"] == 2
    assert summary["cells"] == {"triangle": 88}
    assert summary["tags"]["boundary"] == {"kind": "facet", "size": 22}
    assert 0 < summary["worst_quality"] <= 1
    assert any("split conformingly" in w for w in summary["warnings"])


def test_solve_poisson_default_is_homogeneous_dirichlet(shared_meshes, tmp_path, capsys):
    out = tmp_path / "u.vtu"
    code, stdout, _ = run_cli("solve", "poisson", shared_meshes / "skfem_square.msh", "-o", out, capsys=capsys)
    assert code == 0 and "solver:" in stdout
    result = meshio.read(out)
    mesh = read(shared_meshes / "skfem_square.msh")
    u = result.point_data["u"]
    assert np.abs(u[mesh.boundary_nodes()]).max() == 0.0
    assert u.max() > 0


def test_solve_poisson_quadratic_mesh_defaults_to_p2(shared_meshes, tmp_path, capsys):
    out = tmp_path / "u.vtu"
    code, _, _ = run_cli("solve", "poisson", shared_meshes / "skfem_quadratic_tri.msh", "-o", out,
                         "--source", "sin(pi*x)", capsys=capsys)
    assert code == 0
    assert meshio.read(out).point_data["u"].shape == (262,)


def test_solve_poisson_dirichlet_values_by_tag(shared_meshes, tmp_path, capsys):
    out = tmp_path / "u.vtu"
    code, _, _ = run_cli("solve", "poisson", shared_meshes / "skfem_box.msh", "-o", out, "--source", "0",
                         "--dirichlet", "top=1", "--dirichlet", "back=0", capsys=capsys)
    assert code == 0
    result = meshio.read(out)
    u, y, z = result.point_data["u"], result.points[:, 1], result.points[:, 2]
    on_top, on_back = np.isclose(y, 1), np.isclose(z, 0)
    assert np.allclose(u[on_back & ~on_top], 0.0)
    assert np.allclose(u[on_top & ~on_back], 1.0)
    # a harmonic function takes its extreme values on the boundary
    assert u.min() >= -1e-12 and u.max() <= 1 + 1e-12


def test_solve_elasticity_and_render(shared_meshes, tmp_path, capsys):
    out, png = tmp_path / "e.vtu", tmp_path / "e.png"
    code, _, _ = run_cli("solve", "elasticity", shared_meshes / "skfem_beams.msh", "-o", out, "--E", "1e3",
                         "--nu", "0.3", "--fix", "fixed", "--body-force", "0,0,-1", capsys=capsys)
    assert code == 0
    result = meshio.read(out)
    assert result.point_data["displacement"].shape[1] == 3
    assert (result.point_data["von_mises"] >= 0).all()
    code, _, _ = run_cli("render", out, "-o", png, "--field", "von_mises", capsys=capsys)
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_solve_heat_writes_pvd_series(shared_meshes, tmp_path, capsys):
    out = tmp_path / "h.pvd"
    code, _, _ = run_cli("solve", "heat", shared_meshes / "skfem_annulus.msh", "-o", out, "--t-end", "0.05",
                         "--dt", "0.01", "--initial", "1", "--dirichlet", "exter=0", "--dirichlet", "inter=0",
                         capsys=capsys)
    assert code == 0
    steps = sorted((tmp_path / "h_steps").rglob("*.vtu"))  # h_steps/<version>/step_00000.vtu ...
    assert len(steps) == 6
    first, last = meshio.read(steps[0]).point_data["u"], meshio.read(steps[-1]).point_data["u"]
    assert last.max() < first.max()


# ------------------------------------------------------------------ bad input
def _nan_mesh(path: Path) -> Path:
    points = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, np.nan, 0.0]])
    meshio.write(path, meshio.Mesh(points, [("triangle", np.array([[0, 1, 2]]))]))
    return path


def _degenerate_mesh(path: Path) -> Path:
    points = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    meshio.write(path, meshio.Mesh(points, [("triangle", np.array([[0, 1, 3], [0, 1, 2]]))]))
    return path


def _truncated(path: Path, shared_meshes) -> Path:
    data = (shared_meshes / "skfem_square.msh").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("case, expected", [
    ("missing", "no such file"),
    ("truncated", "truncated: the $Elements section has no $EndElements"),
    ("nan", "non-finite coordinates"),
    ("degenerate", "degenerate cell"),
    ("unknown_tag", "unknown tag 'nope'"),
    ("bad_value", "--kappa"),
    ("bad_order", "--order"),
])
def test_bad_input_gives_one_line_nonzero_exit_and_no_output(case, expected, shared_meshes, tmp_path, capsys):
    out = tmp_path / "out.vtu"
    square = shared_meshes / "skfem_square.msh"
    mesh, extra = {
        "missing": (tmp_path / "absent.msh", []),
        "truncated": (_truncated(tmp_path / "half.msh", shared_meshes), []),
        "nan": (_nan_mesh(tmp_path / "nan.vtu"), []),
        "degenerate": (_degenerate_mesh(tmp_path / "flat.vtu"), []),
        "unknown_tag": (square, ["--dirichlet", "nope=1"]),
        "bad_value": (square, ["--kappa", "import os"]),
        "bad_order": (square, ["--order", "3"]),
    }[case]
    code, _, err = run_cli("solve", "poisson", mesh, "-o", out, *extra, capsys=capsys)
    assert code != 0
    line = one_line_error(err)
    assert expected in line
    if case not in ("bad_value", "bad_order"):
        assert str(mesh) in line  # the file is named
    assert not out.exists()
    assert not list(tmp_path.glob(".out*"))  # no temporary left behind


def test_wrong_option_is_a_usage_error(shared_meshes, tmp_path, capsys):
    code, _, err = run_cli("solve", "poisson", shared_meshes / "skfem_square.msh", "-o", tmp_path / "u.vtu",
                           "--kapa", "1", capsys=capsys)
    assert code == 2
    assert "No such option: --kapa" in one_line_error(err)
    assert not (tmp_path / "u.vtu").exists()


def test_render_unknown_field_is_one_line(shared_meshes, tmp_path, capsys):
    out = tmp_path / "u.vtu"
    assert run_cli("solve", "poisson", shared_meshes / "skfem_square.msh", "-o", out, capsys=capsys)[0] == 0
    code, _, err = run_cli("render", out, "-o", tmp_path / "u.png", "--field", "nope", capsys=capsys)
    assert code == 1 and "no field 'nope'" in one_line_error(err)
    assert not (tmp_path / "u.png").exists()


def test_console_script_exit_code_and_traceback_only_with_debug(tmp_path):
    command = [sys.executable, "-m", "graphfem", "info", str(tmp_path / "absent.msh")]
    plain = subprocess.run(command, capture_output=True, text=True)
    assert plain.returncode == 1
    assert plain.stderr.strip().count("\n") == 0 and "Traceback" not in plain.stderr
    debug = subprocess.run(command + ["--debug"], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_demo_predicts_and_compares_with_fe(tmp_path, capsys):
    code, out, _ = run_cli("demo", "-o", tmp_path / "demo", capsys=capsys)
    assert code == 0
    assert "relative L2 error" in out and "FE solve" in out
    result = meshio.read(tmp_path / "demo" / "demo_surrogate.vtu")
    prediction, reference = result.point_data["prediction"], result.point_data["reference"]
    assert np.allclose(result.point_data["error"], prediction - reference)
    assert np.isfinite(prediction).all()
    assert (tmp_path / "demo" / "demo_surrogate_prediction.png").read_bytes()[:4] == b"\x89PNG"


def test_signed_fields_get_a_diverging_map_centred_on_zero():
    from graphfem.render import colour_map

    signed = colour_map(np.array([-0.2, 0.05, 0.1]))
    assert signed == {"cmap": "RdBu_r", "clim": (-0.2, 0.2)}
    assert colour_map(np.array([0.0, 0.3]), signed=True)["clim"] == (-0.3, 0.3)  # an error that happens to be >= 0
    assert colour_map(np.array([0.1, 0.3])) == {"cmap": "viridis"}
    assert colour_map(np.array([[-1.0, 2.0, 0.0]]))["cmap"] == "viridis"  # vectors: by magnitude
