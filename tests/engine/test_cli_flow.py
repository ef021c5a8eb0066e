"""graphfem solve stokes|navier-stokes through the real entry point, and the DFG example."""
import runpy
from pathlib import Path

import numpy as np
import pytest

from graphfem import cli
from graphfem.meshes import read, read_series
from graphfem.physics.channel import dfg_mesh

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def channel(tmp_path_factory):
    path = tmp_path_factory.mktemp("flow") / "dfg.msh"
    dfg_mesh(32).write(path)
    return path


BC = ["--no-slip", "walls", "--no-slip", "cylinder", "--outflow", "outlet", "--nu", "1e-3"]


def test_navier_stokes_prints_history_and_drag(channel, tmp_path, capsys):
    out = tmp_path / "ns.vtu"
    assert cli.main(["solve", "navier-stokes", str(channel), "-o", str(out), "--inflow", "inlet=0.3",
                     "--obstacle", "cylinder", *BC]) == 0
    text = capsys.readouterr().out
    assert "Newton 4" in text and "c_D = 5.5" in text
    mesh = read(out)
    assert set(mesh.point_data) >= {"velocity", "pressure"}


def test_expression_inflow_equals_parabolic(channel, tmp_path):
    a, b = tmp_path / "a.vtu", tmp_path / "b.vtu"
    assert cli.main(["solve", "stokes", str(channel), "-o", str(a), "--inflow", "inlet=0.3", *BC]) == 0
    assert cli.main(["solve", "stokes", str(channel), "-o", str(b), "--inflow",
                     "inlet=4*0.3*y*(0.41-y)/0.41**2,0", *BC]) == 0
    assert np.allclose(read(a).point_data["velocity"], read(b).point_data["velocity"], atol=1e-10)


def test_transient_writes_pvd(channel, tmp_path):
    out = tmp_path / "flow.pvd"
    assert cli.main(["solve", "navier-stokes", str(channel), "-o", str(out), "--inflow", "inlet=1.5",
                     "--t-end", "0.02", "--dt", "0.01", *BC]) == 0
    _, times, fields = read_series(out)
    assert np.allclose(times, [0, 0.01, 0.02]) and "velocity" in fields


@pytest.mark.parametrize("args, message, code", [
    (["--inflow", "inlet=0.3", "--no-slip", "wall", "--nu", "1e-3"], "unknown tag 'wall'", 1),
    (["--inflow", "inlet=0.3", "--nu", "1e-3", "--t-end", "1"], "needs both --t-end and --dt", 1),
    (["--inflow", "inlet=foo(x)", "--nu", "1e-3"], "unknown name", 2),  # a value of the wrong form
])
def test_bad_input_one_line_no_file(channel, tmp_path, capsys, args, message, code):
    out = tmp_path / "bad.vtu"
    assert cli.main(["solve", "navier-stokes", str(channel), "-o", str(out), *args]) == code
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_dfg_example_runs():
    results = runpy.run_path(str(REPO / "examples" / "dfg_benchmark.py"))["main"](sizes=(32,))
    assert abs(results[0]["c_D"] / 5.5795 - 1) < 0.005
