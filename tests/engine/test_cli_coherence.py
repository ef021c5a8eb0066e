"""One vocabulary across the command line (issue 18): regressions of what a user met.

Each test drives ``graphfem`` in process on a mesh of its own and checks the
exit code, the one line on stderr and the files written.
"""
from __future__ import annotations

from pathlib import Path

from graphfem.cli import main
from graphfem.meshes.io import ALLOW_OUTSIDE_ENV


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _deck(folder: Path) -> Path:
    """A one-triangle Abaqus deck in ``folder/job`` whose nodes come from ``folder/nodes.inp`` (outside it)."""
    (folder / "job").mkdir()
    (folder / "nodes.inp").write_text("*Node\n1, 0, 0\n2, 2, 0\n3, 0, 2\n")
    deck = folder / "job" / "deck.inp"
    deck.write_text("*Heading\n*Include, input=../nodes.inp\n*Element, type=CPS3, elset=ALL\n1, 1, 2, 3\n")
    return deck


def test_allow_outside_includes_is_one_global_option(tmp_path, capsys, monkeypatch):
    """An *INCLUDE leaving the deck's folder is refused in one line naming the flag; the flag, placed before
    or after the command, lets every mesh-reading command follow it."""
    monkeypatch.setenv(ALLOW_OUTSIDE_ENV, "0")  # restored after the test (the flag sets it)
    deck = _deck(tmp_path)
    code, out, err = _cli(capsys, "solve", "poisson", deck, "-o", tmp_path / "u.vtu")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "leaves the deck's folder" in err and "--allow-outside-includes" in err
    assert not (tmp_path / "u.vtu").exists()
    code, out, _ = _cli(capsys, "solve", "poisson", deck, "-o", tmp_path / "u.vtu", "--allow-outside-includes")
    assert code == 0 and (tmp_path / "u.vtu").exists()
    monkeypatch.setenv(ALLOW_OUTSIDE_ENV, "0")
    code, out, _ = _cli(capsys, "--allow-outside-includes", "info", deck)
    assert code == 0 and "3 nodes" in out


def test_generate_announces_a_long_run_once_it_is_sized(tmp_path, capfd, monkeypatch):
    """After the first simulations (past each worker's first, which pays the imports) generate says how long
    and how large the rest will be, once, when that is long; a short run says nothing."""
    from graphfem.datasets import writer
    from graphfem.datasets.generate import generate

    monkeypatch.setattr(writer, "ANNOUNCE_AFTER_S", 1e9)
    generate("heat", 4, tmp_path / "short.h5", progress=True)
    assert "left of this run" not in capfd.readouterr().err
    monkeypatch.setattr(writer, "ANNOUNCE_AFTER_S", 0.0)
    generate("heat", 5, tmp_path / "long.h5", progress=True)
    notes = [line for line in capfd.readouterr().err.splitlines() if "left of this run" in line]
    assert len(notes) == 1, notes
    assert notes[0].startswith("graphfem: one simulation every ") and "the 2 left of this run take about" in notes[0]
    assert notes[0].endswith("B")  # the size of the rest


# ------------------------------------------------------------------ transient solves stream to disk
_TRANSIENT = {
    "advection-diffusion": ("rectangle", {"velocity": "1,0.5", "kappa": "0.05", "initial": "exp(-20*((x-1)**2+y**2))",
                                          "t_end": "0.2", "dt": "0.02", "save_every": "3"}),
    "burgers": ("interval", {"nu": "0.02", "initial": "sin(pi*x)", "t_end": "0.1", "dt": "0.01", "save_every": "4"}),
    "navier-stokes": ("rectangle", {"inflow": ["left=0.3"], "no_slip": ["top", "bottom"], "outflow": ["right"],
                                    "nu": "0.01", "t_end": "0.06", "dt": "0.02"}),
}


def _transient_case(name: str):
    from graphfem.meshes import Mesh

    shape, raw = _TRANSIENT[name]
    mesh = Mesh.interval(12, 0.0, 1.3) if shape == "interval" else Mesh.rectangle(6, 3, 0.0, 1.5, 0.0, 0.5)
    return mesh, raw


def test_every_transient_solve_streams_its_saved_states(tmp_path, capsys):
    """Advection-diffusion, Burgers and transient Navier-Stokes hand each saved state to a stream (the heat
    machinery, SavedStates) and keep nothing; the stream holds what the in-memory trajectory holds, and
    graphfem solve writes the series it streamed."""
    import numpy as np

    from graphfem.meshes.io import read_series
    from graphfem.physics.problem import get_problem

    for name in _TRANSIENT:
        problem = get_problem(name)
        assert problem.streams, name
        mesh, raw = _transient_case(name)
        kwargs = problem.kwargs(problem.parse(mesh, raw))
        kept = problem.solve(mesh, **kwargs).trajectory
        streamed, steps = [], []
        solution = problem.solve(mesh, **kwargs, frames=lambda t, f: streamed.append((t, f)),
                                 progress=lambda step, total: steps.append((step, total)))
        assert solution.trajectory is None and solution.info["frames"] == len(streamed) == len(kept.times), name
        assert steps[-1][0] == steps[-1][1] == len(steps), name
        for k, (t, fields) in enumerate(streamed):
            assert t == kept.times[k]
            for field, values in fields.items():
                np.testing.assert_allclose(values, kept.fields[field][k], rtol=0, atol=1e-12, err_msg=name)
        mesh.write(tmp_path / f"{name}.msh")
        flags = [f"--{k.replace('_', '-')}={v}" for k, vs in raw.items() for v in (vs if isinstance(vs, list)
                                                                                    else [vs])]
        out = tmp_path / f"{name}.xdmf"
        code, text, _ = _cli(capsys, "solve", name, tmp_path / f"{name}.msh", "-o", out, *flags)
        assert code == 0 and f"{len(kept.times)} frames" in text, (name, text)
        assert len(read_series(out)[1]) == len(kept.times), name


def test_absurd_steps_are_refused_up_front(tmp_path, capsys):
    """--t-end 1000 --dt 1e-9 (10^12 steps, terabytes of frames): refused in one line before the first step, for
    every transient solve."""
    for name in _TRANSIENT:
        mesh, raw = _transient_case(name)
        mesh.write(tmp_path / f"{name}.msh")
        raw = {**raw, "t_end": "1000", "dt": "1e-9", "save_every": "1"}
        flags = [f"--{k.replace('_', '-')}={v}" for k, vs in raw.items() for v in (vs if isinstance(vs, list)
                                                                                    else [vs])]
        code, out, err = _cli(capsys, "solve", name, tmp_path / f"{name}.msh", "-o", tmp_path / f"{name}.xdmf",
                              *flags)
        assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, (name, err)
        assert "time steps write" in err and "raise --save-every or --dt" in err, (name, err)
        assert not (tmp_path / f"{name}.xdmf").exists()


# ------------------------------------------------------------------ --solver: one vocabulary
def test_solver_speaks_one_vocabulary(tmp_path, capsys):
    """Every problem with a linear solver takes the words of SOLVER_WORDS; iterative is each one's Krylov
    method, and a word it cannot honour is refused in one line that says why and names those it takes."""
    from graphfem.meshes import Mesh
    from graphfem.physics.linear_solvers import SOLVER_WORDS
    from graphfem.physics.problem import PROBLEMS, problems

    offered = {n: PROBLEMS[n].option("solver").choices for n in problems()
               if any(o.name == "solver" for o in PROBLEMS[n].options)}
    assert {"poisson", "heat", "darcy", "elasticity", "stokes", "navier-stokes"} <= set(offered)
    for name, words in offered.items():
        assert set(words) <= set(SOLVER_WORDS) and {"auto", "direct", "iterative"} <= set(words), name
    mesh = Mesh.rectangle(5, 2, 0.0, 2.0, 0.0, 0.8)
    mesh.write(tmp_path / "m.msh")
    code, out, _ = _cli(capsys, "solve", "poisson", tmp_path / "m.msh", "-o", tmp_path / "p.vtu",
                        "--solver", "iterative", "--dirichlet", "left=1")
    assert code == 0 and "AMG-preconditioned CG" in out
    flow = ["--inflow", "left=0.2", "--no-slip", "top", "--no-slip", "bottom", "--outflow", "right", "--nu", "0.05"]
    code, out, _ = _cli(capsys, "solve", "stokes", tmp_path / "m.msh", "-o", tmp_path / "s.vtu", *flow,
                        "--solver", "iterative")
    assert code == 0 and "iterative linear solver" in out
    for word in ("amg", "cg"):
        code, out, err = _cli(capsys, "solve", "navier-stokes", tmp_path / "m.msh", "-o", tmp_path / "n.vtu", *flow,
                              "--solver", word)
        assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, err
        assert f"--solver {word}: the Taylor-Hood flow solver cannot honour it" in err
        assert err.strip().endswith("it takes auto, direct or iterative")
        assert not (tmp_path / "n.vtu").exists()
    code, _, err = _cli(capsys, "solve", "heat", tmp_path / "m.msh", "-o", tmp_path / "h.xdmf", "--t-end", "0.1",
                        "--dt", "0.05", "--solver", "gmres")
    assert code == 2 and "--solver must be one of auto, direct, iterative, amg, cg, got 'gmres'" in err


# ------------------------------------------------------------------ Darcy's --kappa (earlier --a)
def test_darcy_takes_kappa_and_its_earlier_name_warns(tmp_path, capsys):
    """Darcy's permeability is --kappa like every other coefficient of -div(kappa grad u); --a still works with
    one warning line and the same result, and both at once are refused."""
    import numpy as np

    from graphfem.meshes import Mesh, read

    Mesh.rectangle(6, 4, 0.0, 1.2, 0.0, 0.7).write(tmp_path / "m.msh")
    field = "where(x<0.6,4,9)"
    code, _, err = _cli(capsys, "solve", "darcy", tmp_path / "m.msh", "-o", tmp_path / "k.vtu", "--kappa", field)
    assert code == 0 and err == ""
    code, _, err = _cli(capsys, "solve", "darcy", tmp_path / "m.msh", "-o", tmp_path / "a.vtu", "--a", field)
    assert code == 0 and err.strip() == "graphfem: warning: --a is deprecated: use --kappa (the same option of darcy)"
    np.testing.assert_array_equal(read(tmp_path / "a.vtu").point_data["u"], read(tmp_path / "k.vtu").point_data["u"])
    code, out, err = _cli(capsys, "solve", "darcy", tmp_path / "m.msh", "-o", tmp_path / "b.vtu", "--kappa", "2",
                          "--a", "3")
    assert code == 1 and "--a and --kappa are one option of darcy; give --kappa only" in err
    assert not (tmp_path / "b.vtu").exists()
    code, _, err = _cli(capsys, "solve", "darcy", "--help")
    assert code == 0


def test_darcy_data_and_checkpoints_with_option_a_still_read(tmp_path, capsys):
    """A data set written when the option was called a (inputs/a) serves kappa; generate --a fixes kappa with a
    warning; a MeshGraphNet checkpoint whose features say a matches the kappa columns of this version."""
    import h5py
    import numpy as np

    from graphfem.datasets.simulations import SimulationData
    from graphfem.families.meshgraphnet import MeshGraphNetFamily
    from graphfem.physics.problem import get_problem

    code, _, err = _cli(capsys, "generate", "darcy", "-n", "2", "-o", tmp_path / "new.h5", "--a", "7")
    assert code == 0 and "--a is deprecated: use --kappa" in err
    data = SimulationData(tmp_path / "new.h5")
    assert float(data.sample(0).options["kappa"]) == 7.0  # stored as given
    code, _, _ = _cli(capsys, "generate", "darcy", "-n", "2", "-o", tmp_path / "old.h5")
    assert code == 0
    with h5py.File(tmp_path / "old.h5", "a") as h5:  # the layout of a data set written before the rename
        for name in h5:
            h5.move(f"{name}/inputs/kappa", f"{name}/inputs/a")
    old, new = SimulationData(tmp_path / "old.h5").sample(1), SimulationData(tmp_path / "new.h5").sample(1)
    assert "a" not in old.options and old.options["kappa"].shape == (old.mesh.n_cells,)
    darcy = get_problem("darcy")
    u = darcy.run(old.mesh, old.options).fields["u"]
    np.testing.assert_allclose(u, old.fields["u"], rtol=1e-10, atol=1e-12)
    assert float(new.options["kappa"]) == 7.0
    features = darcy.features(old.mesh, darcy.parse(old.mesh, old.options))
    earlier = ["a" + n[len("kappa"):] if n.startswith("kappa") else n for n in features.names]
    assert earlier != features.names
    meta = {"problem": {"name": "darcy", "dim": 2, "cell_types": [old.mesh.cell_type], "features": earlier}}
    _, _, again = MeshGraphNetFamily()._case(meta, old.mesh, {"kappa": old.options["kappa"]})
    assert again.names == features.names


# ------------------------------------------------------------------ --device / --threads
def test_giorom_commands_take_device_and_threads(capsys):
    """rollout and bench giorom take --device and --threads like graphfem train's run.device / run.threads; a
    bad value is one line before any work (the benchmark generates nothing first)."""
    import time

    import torch

    for command in (["rollout"], ["bench", "giorom"]):
        code, out, _ = _cli(capsys, *command, "--help")
        assert code == 0 and "--device" in out and "--threads" in out, command
    start = time.perf_counter()
    code, _, err = _cli(capsys, "bench", "giorom", "--threads", "-1")
    assert code == 1 and err.strip() == "graphfem: error: --threads must be >= 0, got -1"
    if not torch.cuda.is_available():
        code, _, err = _cli(capsys, "bench", "giorom", "--device", "cuda")
        assert code == 1 and err.strip() == "graphfem: error: --device cuda: no CUDA device is available"
    code, _, err = _cli(capsys, "bench", "giorom", "--device", "tpu")
    assert code == 2 and "--device must be auto, cpu or cuda, got 'tpu'" in err
    assert time.perf_counter() - start < 20


# ------------------------------------------------------------------ --steps: load steps only
def test_steps_means_load_steps_and_the_sampler_has_its_own(tmp_path, capsys):
    """--steps is a count of load steps (solve hyperelastic, fe2); generate-text's denoising steps are
    --sampler-steps, its old --steps a deprecated spelling (one warning line), both at once refused."""
    for command in (["solve", "hyperelastic"], ["fe2"]):
        code, out, _ = _cli(capsys, *command, "--help")
        assert code == 0 and "Load steps" in out, command
    code, out, _ = _cli(capsys, "generate-text", "--help")
    assert code == 0 and "--sampler-steps" in out and "--steps" not in out
    base = ["generate-text", "a caption", "--mesh", tmp_path / "m.msh", "-o", tmp_path / "t.pvd", "--model",
            tmp_path / "none.safetensors"]
    code, _, err = _cli(capsys, *base, "--steps", "5", "--sampler-steps", "5")
    assert code == 1 and err.strip() == ("graphfem: error: --steps and --sampler-steps are one option; give "
                                         "--sampler-steps only")
    code, _, err = _cli(capsys, *base, "--steps", "5")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 2 and not (tmp_path / "t.pvd").exists()
    assert lines[0] == ("graphfem: warning: --steps is deprecated: use --sampler-steps (the same option of "
                        "generate-text)")
    assert "no such checkpoint" in lines[1]


# ------------------------------------------------------------------ exit codes
def test_a_value_of_the_wrong_form_exits_2_like_any_wrong_command_line(tmp_path, capsys):
    """A value that does not parse is a wrong command line (exit 2) whether typer or the problem reads it; bad
    input (a missing file, a tag the mesh lacks, a value out of range) exits 1. One line each, no file."""
    from graphfem.meshes import Mesh

    Mesh.rectangle(4, 3, 0.0, 1.0, 0.0, 0.6).write(tmp_path / "m.msh")
    m, out = tmp_path / "m.msh", tmp_path / "o.vtu"
    cases = [
        (["generate", "poisson", "-n", "many", "-o", tmp_path / "d.h5"], 2),
        (["generate", "poisson", "-n", "2", "-o", tmp_path / "d.h5", "--bogus", "1"], 2),
        (["solve", "heat", m, "-o", tmp_path / "h.xdmf", "--t-end", "soon", "--dt", "0.1"], 2),
        (["solve", "poisson", m, "-o", out, "--dirichlet", "left"], 2),
        (["solve", "poisson", m, "-o", out, "--kappa", "sin("], 2),
        (["solve", "poisson", m, "-o", out, "--order", "3"], 2),
        (["solve", "poisson", m, "-o", out, "--solver", "gmres"], 2),
        (["bench", "fe", "--size", "huge"], 2),
        (["solve", "poisson", m, "-o", out, "--dirichlet", "wall=1"], 1),
        (["solve", "poisson", tmp_path / "missing.msh", "-o", out], 1),
        (["solve", "heat", m, "-o", tmp_path / "h.xdmf", "--t-end", "0.1", "--dt", "-1"], 1),
    ]
    for args, expected in cases:
        code, _, err = _cli(capsys, *args)
        assert code == expected and len(err.strip().splitlines()) == 1, (args, code, err)
        assert err.startswith("graphfem: error: "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.msh"]


def test_train_prints_one_json_line_on_stdout(tmp_path, capsys):
    """stdout of graphfem train is its result alone (scripts parse it): the progress bar lives on stderr and is
    off when that is not a terminal, so no blank line precedes the JSON."""
    import json

    import torch
    import yaml

    torch.set_num_threads(1)
    assert main(["generate", "poisson", "-n", "4", "-o", str(tmp_path / "d.h5"), "--seed", "2"]) == 0
    capsys.readouterr()
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({
        "model": {"name": "meshgraphnet", "latent": 8, "layers": 1},
        "data": {"path": str(tmp_path / "d.h5"), "batch_size": 2, "val_fraction": 0.25, "test_fraction": 0.25},
        "optim": {"epochs": 1}, "run": {"out": str(tmp_path / "run"), "threads": 1}}))
    code, out, err = _cli(capsys, "train", tmp_path / "t.yaml")
    assert code == 0 and err == ""
    assert len(out.splitlines()) == 1 and json.loads(out)["final"] is True
