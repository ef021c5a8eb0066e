"""Issue 18, data and interrupted work, through the CLI (``graphfem.cli.main``):

* damaged HDF5 groups (NaN outputs, infinite coefficients, text outputs, ...)
  are named in one line by ``evaluate`` and ``train``, and skipped only with
  ``--skip-bad``; a group of another problem is refused as that problem;
* absurd sizes are refused up front with an estimate (``generate -n 10^9``,
  ``solve heat --dt 1e-9``), transient solves stream their steps to disk
  with a progress bar on long runs;
* silent changes are said: a dt that does not divide t_end, a dt longer
  than t_end, ``--order 2`` on a linear mesh, elasticity with no load;
* ``solve heat -o out.xdmf`` writes a series that ``koopman`` reads.

(Kills of ``generate`` and concurrent series readers: tests/reliability.)
"""
from __future__ import annotations

import json
import shutil
import time

import h5py
import numpy as np
import pytest
import torch
import yaml

from graphfem.checkpoint import save
from graphfem.cli import main
from graphfem.datasets.generate import generate
from graphfem.meshes import Mesh, read_series
from graphfem.meshes.errors import InputError
from graphfem.operators.meshgraphnet import MeshGraphNet, MeshGraphNetConfig
from graphfem.physics.poisson_encoding import POISSON_FEATURES

torch.set_num_threads(1)


def _cli(capsys, *args) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``graphfem ARGS``."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 6-sample Poisson data set and an (untrained) Poisson MeshGraphNet checkpoint."""
    d = tmp_path_factory.mktemp("rel_data")
    generate("poisson", 6, d / "clean.h5", seed=11, progress=False)
    torch.manual_seed(0)
    meta = {"normalisation": {"x_mean": [0.0] * 8, "x_std": [1.0] * 8, "y_mean": [0.0], "y_std": [1.0]},
            "problem": {"name": "poisson", "dim": 2, "cell_types": ["triangle"], "fields": ["u"],
                        "features": list(POISSON_FEATURES), "options": ["kappa", "source", "dirichlet", "neumann"]}}
    save(d / "m.safetensors", MeshGraphNet(MeshGraphNetConfig(in_node=8, latent=8, layers=2)), meta)
    return d


def _set(g, key, change):
    values = g[key][()]
    change(values)
    g[key][...] = values


def _text_output(g):
    n = g["outputs/u"].shape[0]
    del g["outputs/u"]
    g.create_dataset("outputs/u", data=np.array([b"0.5"] * n))


#: name -> (damage of one group, what the refusal says about it)
FAULTS = {
    "nan-output": (lambda g: _set(g, "outputs/u", lambda u: u.__setitem__(3, np.nan)), "outputs/u holds NaN"),
    "inf-coefficient": (lambda g: _set(g, "inputs/kappa", lambda k: k.__setitem__(0, np.inf)),
                        "inputs/kappa holds NaN or infinite"),
    "inf-in-params": (lambda g: g.attrs.__setitem__("params", '{"dirichlet": {"top": -Infinity}, "order": 1}'),
                      "params dirichlet.top is NaN or infinite"),
    "text-output": (_text_output, "outputs/u holds text"),
    "cells-out-of-range": (lambda g: _set(g, "mesh/cells", lambda c: c.__setitem__((0, 0), 10 ** 7)),
                           "mesh/cells names node 10000000"),
    "missing-output": (lambda g: g.__delitem__("outputs/u"), "missing outputs"),
    "tag-out-of-range": (lambda g: _set(g, "mesh/tags/left", lambda t: t.__setitem__(0, 10 ** 6)),
                         "mesh/tags/left names node 1000000"),
}


def _damaged(files, tmp_path, groups: dict[str, str]):
    """A copy of the clean data set with ``groups`` (name -> fault) damaged."""
    path = tmp_path / "bad.h5"
    shutil.copy(files / "clean.h5", path)
    with h5py.File(path, "a") as h5:
        for name, fault in groups.items():
            FAULTS[fault][0](h5[name])
    return path


@pytest.mark.parametrize("fault", list(FAULTS))
def test_evaluate_names_a_damaged_group_and_skips_it_only_on_request(files, tmp_path, capsys, fault):
    bad = _damaged(files, tmp_path, {"sim_000002": fault})
    code, out, err = _cli(capsys, "evaluate", files / "m.safetensors", bad, "--device", "cpu")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("graphfem: error: ") and str(bad) in err
    assert "sim_000002" in err and FAULTS[fault][1] in err and "--skip-bad" in err
    code, out, err = _cli(capsys, "evaluate", files / "m.safetensors", bad, "--device", "cpu", "--skip-bad",
                          "--json")
    assert code == 0, err
    assert err.strip().splitlines() == [err.strip()] and err.startswith("graphfem: warning: ")
    assert "skipping damaged group 'sim_000002'" in err and FAULTS[fault][1] in err
    assert json.loads(out)["samples"] == 5


def test_every_damaged_group_is_named_in_the_one_line(files, tmp_path, capsys):
    bad = _damaged(files, tmp_path, {"sim_000001": "nan-output", "sim_000004": "text-output"})
    code, _, err = _cli(capsys, "evaluate", files / "m.safetensors", bad, "--device", "cpu")
    assert code == 1 and err.count("\n") == 1
    assert "2 damaged groups: sim_000001 (outputs/u holds NaN" in err and "sim_000004 (outputs/u holds text" in err
    code, out, err = _cli(capsys, "evaluate", files / "m.safetensors", bad, "--device", "cpu", "--skip-bad", "--json")
    assert code == 0 and len(err.strip().splitlines()) == 2 and json.loads(out)["samples"] == 4


def test_a_group_of_another_problem_is_refused_as_that_problem(files, tmp_path, capsys):
    bad = tmp_path / "mixed.h5"
    shutil.copy(files / "clean.h5", bad)
    with h5py.File(bad, "a") as h5:
        h5["sim_000003"].attrs["problem"] = "heat"
    for extra in ([], ["--skip-bad"]):  # not damaged, so --skip-bad does not hide it
        code, out, err = _cli(capsys, "evaluate", files / "m.safetensors", bad, "--device", "cpu", *extra)
        assert code == 1 and out == "" and err.count("\n") == 1
        assert "'sim_000003' holds a simulation of heat, but the data set is poisson" in err and "damaged" not in err


def test_train_refuses_damaged_data_and_skips_it_with_skip_bad(files, tmp_path, capsys):
    bad = _damaged(files, tmp_path, {"sim_000005": "inf-coefficient"})
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "meshgraphnet", "latent": 8, "layers": 1},
        "data": {"path": str(bad), "batch_size": 2, "val_fraction": 0.2, "test_fraction": 0.2},
        "optim": {"epochs": 1, "warmup_steps": 1},
        "run": {"out": str(tmp_path / "run"), "threads": 1, "progress": False}}))
    code, out, err = _cli(capsys, "train", config)
    assert code == 1 and err.count("\n") == 1 and "sim_000005 (inputs/kappa holds NaN or infinite" in err
    assert "--skip-bad" in err and not (tmp_path / "run" / "model.safetensors").exists()
    code, out, err = _cli(capsys, "train", config, "--skip-bad")
    assert code == 0, err
    assert "graphfem: warning:" in err and "skipping damaged group 'sim_000005'" in err
    assert (tmp_path / "run" / "model.safetensors").is_file()


# ------------------------------------------------------------------ absurd sizes
def test_generate_a_billion_simulations_is_refused_up_front_with_an_estimate(tmp_path, capsys):
    start = time.perf_counter()
    code, out, err = _cli(capsys, "generate", "poisson", "-n", "1000000000", "-o", tmp_path / "p.h5", "--seed", "9")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "-n 1000000000: simulations of about" in err and "TB while writing" in err and "smaller -n" in err
    assert time.perf_counter() - start < 30 and list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def square(tmp_path_factory):
    path = tmp_path_factory.mktemp("rel_solve") / "sq.msh"
    Mesh.unit_square(7).write(path)
    return path


def test_solve_heat_with_a_billion_steps_is_refused_up_front(square, tmp_path, capsys):
    start = time.perf_counter()
    code, out, err = _cli(capsys, "solve", "heat", square, "-o", tmp_path / "h.pvd", "--t-end", "0.2", "--dt", "2e-10")
    assert code == 1 and err.count("\n") == 1
    assert "1000000000 time steps write 1000000001 frames of 64 nodes" in err and "--save-every" in err
    assert time.perf_counter() - start < 20 and list(tmp_path.iterdir()) == []


def test_an_in_memory_trajectory_that_cannot_fit_is_refused_before_the_first_step(square):
    from graphfem.physics.heat import heat_solution

    from graphfem.meshes import read

    with pytest.raises(InputError, match=r"frames of 64 values: .* more than the memory free"):
        heat_solution(read(square), t_end=1.0, dt=1e-12)


@pytest.mark.parametrize("solve", ["advection-diffusion", "burgers", "navier-stokes"])
def test_every_in_memory_transient_solver_refuses_a_trajectory_that_cannot_fit(square, solve):
    from graphfem.meshes import read
    from graphfem.physics.navier_stokes import navier_stokes_transient
    from graphfem.physics.transport import advection_diffusion, burgers

    mesh, huge = read(square), {"t_end": 1.0, "dt": 1e-13}
    run = {"advection-diffusion": lambda: advection_diffusion(mesh, [1.0, 0.0], 0.01, **huge),
           "burgers": lambda: burgers(mesh, 0.01, initial=[0.0, 0.0], **huge),
           "navier-stokes": lambda: navier_stokes_transient(mesh, nu=0.1, inflow={"left": 1.0},
                                                            no_slip=["top", "bottom"], outflow=["right"], **huge)}
    start = time.perf_counter()
    with pytest.raises(InputError, match="10000000000000 time steps keep .* more than the memory free"):
        run[solve]()
    assert time.perf_counter() - start < 10


def test_a_transient_solve_that_cannot_fit_on_disk_is_refused_for_every_problem(square, tmp_path, capsys):
    code, _, err = _cli(capsys, "solve", "advection-diffusion", square, "-o", tmp_path / "a.xdmf", "--velocity",
                        "1,0", "--kappa", "0.01", "--t-end", "0.2", "--dt", "1e-10")
    assert code == 1 and err.count("\n") == 1 and "2000000000 time steps write 2000000001 frames" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ext", [".pvd", ".xdmf"])
def test_streamed_heat_series_equals_the_in_memory_trajectory(square, tmp_path, capsys, ext):
    from graphfem.meshes import read
    from graphfem.physics.heat import heat_solution

    out = tmp_path / f"h{ext}"
    code, stdout, err = _cli(capsys, "solve", "heat", square, "-o", out, "--t-end", "0.06", "--dt", "0.004",
                             "--save-every", "3", "--initial", "x*(1-x)*y", "--theta", "1")
    assert code == 0 and err == "" and "(u, 6 frames)" in stdout
    mesh, times, fields = read_series(out)
    kept = heat_solution(read(square), t_end=0.06, dt=0.004, save_every=3, theta=1.0,
                         initial=lambda x: x[0] * (1 - x[0]) * x[1]).trajectory
    np.testing.assert_allclose(times, kept.times, atol=1e-15)
    np.testing.assert_allclose(fields["u"], kept.fields["u"], atol=1e-14)


def test_the_progress_bar_shows_on_long_runs_only(monkeypatch, capsys):
    from graphfem.cli.solve import progress_bar

    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal, for rich
    for after, shown in ((3600.0, False), (0.0, True)):
        with progress_bar("solving heat", after=after) as step:
            for k in range(3):
                step(k + 1, 3)
                time.sleep(0.12)
        assert ("solving heat" in capsys.readouterr().err) == shown


# ------------------------------------------------------------------ silent changes
def test_a_dt_that_does_not_divide_t_end_is_said_with_the_step_taken(square, tmp_path, capsys):
    out = tmp_path / "h.pvd"
    code, stdout, err = _cli(capsys, "solve", "heat", square, "-o", out, "--t-end", "0.1", "--dt", "0.03")
    assert code == 0 and err.count("\n") == 1
    assert err == "graphfem: warning: --dt 0.03 does not divide --t-end 0.1: taking 4 steps of dt = 0.025 instead\n"
    np.testing.assert_allclose(read_series(out)[1], [0, 0.025, 0.05, 0.075, 0.1], atol=1e-15)


def test_a_dt_longer_than_t_end_is_refused(square, tmp_path, capsys):
    code, out, err = _cli(capsys, "solve", "heat", square, "-o", tmp_path / "h.pvd", "--t-end", "0.1", "--dt", "1")
    assert code == 1 and err.count("\n") == 1 and "--dt 1 is longer than --t-end 0.1" in err
    assert list(tmp_path.iterdir()) == []


def test_order_2_on_a_linear_mesh_says_that_only_vertex_values_are_written(square, tmp_path, capsys):
    code, out, err = _cli(capsys, "solve", "poisson", square, "-o", tmp_path / "p.vtu", "--order", "2",
                          "--source", "1", "--dirichlet", "left=0")
    assert code == 0 and err.count("\n") == 1
    assert "graphfem: warning: --order 2 on a linear triangle mesh" in err and "64 vertices only" in err


def test_elasticity_with_no_load_warns_that_the_answer_is_zero(square, tmp_path, capsys):
    code, out, err = _cli(capsys, "solve", "elasticity", square, "-o", tmp_path / "e.vtu", "--E", "200", "--nu",
                          "0.25", "--fix", "bottom")
    assert code == 0 and err.count("\n") == 1 and "elasticity with no load" in err
    code, out, err = _cli(capsys, "solve", "elasticity", square, "-o", tmp_path / "e.vtu", "--E", "200", "--nu",
                          "0.25", "--fix", "bottom", "--body-force", "0,-1")
    assert code == 0 and err == ""


def test_material_is_refused_outside_mpm(tmp_path, capsys):
    code, out, err = _cli(capsys, "generate", "poisson", "-n", "2", "-o", tmp_path / "p.h5", "--material", "sand")
    assert code == 2 and err.count("\n") == 1 and "--material is an option of generate mpm, not of poisson" in err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ time series to XDMF
def test_solve_heat_to_xdmf_is_a_series_that_koopman_reads(square, tmp_path, capsys):
    out = tmp_path / "h.xdmf"
    code, _, err = _cli(capsys, "solve", "heat", square, "-o", out, "--t-end", "0.2", "--dt", "0.01",
                        "--initial", "sin(pi*x)*sin(pi*y)", "--theta", "1")
    assert code == 0 and err == ""
    mesh, times, fields = read_series(out)
    assert len(times) == 21 and fields["u"].shape == (21, mesh.n_points)
    assert fields["u"][-1].max() < fields["u"][0].max()
    code, stdout, err = _cli(capsys, "koopman", out, "-o", tmp_path / "kp")
    assert code == 0, err
    spectrum = json.loads((tmp_path / "kp" / "spectrum.json").read_text())
    assert spectrum and (tmp_path / "kp" / "modes.vtu").is_file()


@pytest.mark.parametrize("args, fields", [
    (["advection-diffusion", "--velocity", "1,0", "--kappa", "0.01", "--t-end", "0.1", "--dt", "0.02",
      "--initial", "exp(-40*((x-0.3)**2+(y-0.5)**2))"], {"u"}),
    (["navier-stokes", "--inflow", "left=1", "--no-slip", "top", "--no-slip", "bottom", "--outflow", "right",
      "--nu", "0.1", "--t-end", "0.1", "--dt", "0.02"], {"velocity", "pressure"}),
])
def test_every_transient_solve_writes_its_whole_series_to_xdmf(square, tmp_path, capsys, args, fields):
    out = tmp_path / "s.xdmf"
    code, _, err = _cli(capsys, "solve", args[0], square, "-o", out, *args[1:])
    assert code == 0, err
    mesh, times, stored = read_series(out)
    np.testing.assert_allclose(times, np.linspace(0, 0.1, 6), atol=1e-12)
    assert set(stored) == fields and all(v.shape[:2] == (6, mesh.n_points) for v in stored.values())
