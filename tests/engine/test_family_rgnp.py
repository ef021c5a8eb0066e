"""The rgnp family: random grids per sample and step, training through graphfem train, predict /
evaluate / posterior through the CLI, and bad input in one line."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from graphfem.cli import main
from graphfem.meshes import Mesh

torch.set_num_threads(1)


def _yaml(path, data, out, epochs=10, extra=""):
    path.write_text(f"""model:
  name: rgnp
  fourier: 16
  width: 48
  depth: 2
  points: 20
  lift: 8
  lift_depth: 2
  grid: 12
  conv: 2
  filters: 8
  gic_dense: [32]
  w_dense: 16
  head: [32]
  draws: 128{extra}
data: {{path: {data}, val_fraction: 0.25, test_fraction: 0.5, batch_size: 8}}
optim:
  phases:
    - {{optimizer: adam, epochs: {epochs}, lr: 2.0e-3, weight_decay: 0.0, warmup_steps: 0, min_lr_ratio: 0.2,
       clip_norm: 0.0, dtype: float32}}
run: {{out: {out}, seed: 0, threads: 1, checkpoint_every: 1000, progress: false}}
""")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    files = tmp_path_factory.mktemp("rgnp")
    data = files / "np.h5"
    assert main(["generate", "nonlinear-poisson", "-n", "8", "--resolution", "60", "-o", str(data),
                 "--seed", "7"]) == 0
    assert main(["train", str(_yaml(files / "rgnp.yaml", data, files / "run"))]) == 0
    return files, data


def test_every_sample_and_step_draws_its_own_grid(trained):
    from graphfem.datasets.simulations import SimulationData
    from graphfem.families import families
    from graphfem.training.trainer import split_indices

    files, data = trained
    family = families()["rgnp"]
    d = SimulationData(data)
    config = {"name": "rgnp", "fourier": 4, "width": 8, "depth": 1, "points": 20}
    setup = family.setup(d, split_indices(len(d), 0.25, 0.5, 0), config, "test")
    b1 = family.collate(setup, setup.train[:4], np.random.default_rng([0, 0, 1]), "cpu", torch.float32)
    b2 = family.collate(setup, setup.train[:4], np.random.default_rng([0, 0, 2]), "cpu", torch.float32)
    assert b1["x"].shape == (4, 20, 1) and not torch.allclose(b1["x"], b2["x"])   # per step
    assert not torch.allclose(b1["x"][0], b1["x"][1])                            # per sample
    assert not torch.allclose(b1["z"], b2["z"]) and float(b1["x"].abs().max()) <= 1
    nodes = torch.as_tensor(d.sample(setup.val[0]).mesh.points[:, 0], dtype=torch.float32)
    assert float((b1["x"].reshape(-1, 1) - nodes).abs().min()) > 0                # validation is on FE nodes
    fixed = family.setup(d, split_indices(len(d), 0.25, 0.5, 0), {**config, "fixed_grid": True}, "test")
    f1 = family.collate(fixed, fixed.train[:4], np.random.default_rng(1), "cpu", torch.float32)
    f2 = family.collate(fixed, fixed.train[:4], np.random.default_rng(2), "cpu", torch.float32)
    assert torch.equal(f1["x"], f2["x"]) and torch.equal(f1["x"][0], f1["x"][3])  # the PDDLVM baseline
    with_data = family.setup(d, split_indices(len(d), 0.25, 0.5, 0), {**config, "data": 5}, "test")
    batch = family.collate(with_data, with_data.train[:4], np.random.default_rng(3), "cpu", torch.float32)
    assert batch["data"]["y"].shape[0] == 4 and math.isfinite(float(family.loss(with_data.model, batch)))


def test_training_lowers_the_negative_elbo_and_learns_u(trained):
    files, _ = trained
    records = [json.loads(line) for line in (files / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 160 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-20:]) < 0.2 * np.mean(losses[:20])
    final = records[-1]
    assert final["test_rel_l2_u"] < 0.6                       # loose: 160 steps of a small net
    assert 0.0 <= final["test_coverage_u"] <= 1.0 and 0.0 <= final["test_coverage_z"] <= 1.0
    print(f"160 steps: test rel-L2 {final['test_rel_l2_u']:.3f}, 2-sigma coverage {final['test_coverage_u']:.2f}, "
          f"z error {final['test_z_rel_err']:.3f}")


def test_predict_evaluate_posterior_and_bad_input(trained, tmp_path, capsys):
    import meshio

    from graphfem.datasets.simulations import SimulationData

    files, data = trained
    ckpt = str(files / "run" / "model.safetensors")
    x = np.sort(np.concatenate([[-1.0, 1.0], np.random.default_rng(3).uniform(-1, 1, 37)]))
    line = Mesh(x[:, None], "line", np.stack([np.arange(38), np.arange(1, 39)], 1))  # a non-uniform mesh
    line.write(tmp_path / "line.vtu")
    out = tmp_path / "u.vtu"
    assert main(["predict", ckpt, str(tmp_path / "line.vtu"), "-o", str(out), "--z", "0.3,-0.2,0.5,0.1,-0.4",
                 "--w", "1.7", "--strict"]) == 0  # its ranges are hard: --strict holds without stored ranges
    got = meshio.read(out)
    assert got.point_data["u"][[0, -1]].tolist() == [0.0, 0.0] and (got.point_data["u_std"] >= 0).all()
    capsys.readouterr()
    assert main(["evaluate", ckpt, str(data), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["samples"] == 8 and {"coverage_u_mean", "z_rel_err_mean", "coverage_z_mean"} <= set(stats)
    assert main(["evaluate", ckpt, str(data)]) == 0
    assert "family metrics (means): coverage_u " in capsys.readouterr().out
    s = SimulationData(data).sample(0)
    idx = np.arange(1, s.mesh.n_points - 1, 4)
    rows = np.column_stack([s.mesh.points[idx, 0], s.fields["u"][idx]])
    np.savetxt(tmp_path / "obs.csv", rows, delimiter=",", header="x,u", comments="")
    truth = ",".join(f"{v:g}" for v in s.options["z"])
    post = tmp_path / "z.json"
    assert main(["posterior", ckpt, str(tmp_path / "obs.csv"), "--w", str(s.options["w"]), "-o", str(post),
                 "--truth", truth, "--mesh", str(tmp_path / "line.vtu"), "--fields", str(tmp_path / "pp.vtu")]) == 0
    record = json.loads(post.read_text())
    assert len(record["z_mean"]) == 5 and all(v > 0 for v in record["z_std"]) and "z_rel_err" in record
    assert "true values inside" in capsys.readouterr().out and (tmp_path / "pp.vtu").exists()

    rows[2, 1] = np.nan
    np.savetxt(tmp_path / "nan.csv", rows, delimiter=",", header="x,u", comments="")
    np.savetxt(tmp_path / "far.csv", rows[4:8] * [3, 1], delimiter=",", header="x,u", comments="")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 64)
    Mesh.rectangle(3).write(tmp_path / "square.vtu")
    lm = str(tmp_path / "line.vtu")
    bad = [(["predict", ckpt, lm, "-o", str(tmp_path / "x1.vtu"), "--z", "1,2,3,4"], "--z: expected 5"),
           (["predict", ckpt, lm, "-o", str(tmp_path / "x2.vtu"), "--z", "0,0,1.5,0,0"], "outside the training range"),
           (["predict", ckpt, lm, "-o", str(tmp_path / "x3.vtu"), "--w", "3"], "--w: 3 lies outside"),
           (["predict", ckpt, lm, "-o", str(tmp_path / "x4.vtu"), "--method", "picard"], "does not use"),
           (["predict", ckpt, lm, "-o", str(tmp_path / "x5.vtu"), "--w", "nan"], "--w"),
           (["predict", ckpt, str(tmp_path / "square.vtu"), "-o", str(tmp_path / "x6.vtu")], "1D"),
           (["predict", str(tmp_path / "bad.safetensors"), lm, "-o", str(tmp_path / "x7.vtu")], "safetensors"),
           (["posterior", ckpt, str(tmp_path / "nan.csv"), "--w", "1.5", "-o", str(tmp_path / "x8.json")], "NaN"),
           (["posterior", ckpt, str(tmp_path / "far.csv"), "--w", "1.5", "-o", str(tmp_path / "x9.json")],
            "outside [-1, 1]"),
           (["posterior", ckpt, str(tmp_path / "obs.csv"), "--w", "5", "-o", str(tmp_path / "x10.json")],
            "outside the training range"),
           (["posterior", ckpt, str(tmp_path / "obs.csv"), "--w", "1.5", "-o", str(tmp_path / "x11.vtu")], ".json")]
    malformed = {"--z: expected 5"}  # a value of the wrong form exits 2; bad input 1
    for args, words in bad:
        capsys.readouterr()
        assert main(args) == (2 if words in malformed else 1), args
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / args[args.index("-o") + 1]).exists()


def test_bench_refuses_an_unknown_size(capsys):
    assert main(["bench", "rgnp", "--size", "huge"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--size must be small or gpu" in err and len(err.splitlines()) == 1


def test_burgers_plumbing_through_the_cli(tmp_path, capsys):
    """parametric-burgers: (x, t) grids of the box per sample and step, a PVD series whose first
    frame is u0 exactly and whose ends are 0, the posterior from (x, t, u) observations."""
    import meshio

    from graphfem.datasets.simulations import SimulationData
    from graphfem.families import families
    from graphfem.training.trainer import split_indices

    data = tmp_path / "pb.h5"
    assert main(["generate", "parametric-burgers", "-n", "4", "--resolution", "16", "-o", str(data)]) == 0
    cfg = tmp_path / "pb.yaml"
    cfg.write_text(f"""model: {{name: rgnp, pde: burgers, points: 24, fourier: 4, width: 16, depth: 1, lift: 4,
  lift_depth: 1, grid: 4, conv: 2, filters: 4, gic_dense: [8], w_dense: 8, head: [8], eps: 1.0, learn_eps: true,
  draws: 8}}
data: {{path: {data}, val_fraction: 0.25, test_fraction: 0.25, batch_size: 4}}
optim: {{phases: [{{optimizer: adam, epochs: 2, lr: 1.0e-3, weight_decay: 0.0, warmup_steps: 0, clip_norm: 0.0}}]}}
run: {{out: {tmp_path / 'run'}, seed: 0, threads: 1, progress: false}}
""")
    assert main(["train", str(cfg)]) == 0
    d = SimulationData(data)
    family = families()["rgnp"]
    setup = family.setup(d, split_indices(4, 0.25, 0.25, 0), {"name": "rgnp", "pde": "burgers", "points": 24,
                                                              "fourier": 4, "width": 8, "depth": 1, "grid": 4,
                                                              "conv": 2}, "test")
    batch = family.collate(setup, setup.train[:3], np.random.default_rng(0), "cpu", torch.float32)
    assert batch["x"].shape == (3, 24, 2) and float(batch["x"].min()) >= 0 and float(batch["x"].max()) <= 1
    assert not torch.allclose(batch["x"][0], batch["x"][1])
    ckpt = str(tmp_path / "run" / "model.safetensors")
    Mesh.interval(20, 0.0, 1.0).write(tmp_path / "line.vtu")
    out = tmp_path / "u.pvd"
    assert main(["predict", ckpt, str(tmp_path / "line.vtu"), "-o", str(out), "--viscosity", "0.05",
                 "--convection", "0.8", "--frequency", "1.5", "--t-end", "0.5", "--dt", "0.1"]) == 0
    assert len(list((tmp_path / "u_steps").rglob("step_*.vtu"))) == 6              # t = 0, 0.1, ..., 0.5
    first = meshio.read(next((tmp_path / "u_steps").rglob("step_00000.vtu")))
    x = first.points[:, 0]
    np.testing.assert_allclose(first.point_data["u"], np.sin(3 * np.pi * x) * np.sin(np.pi * x), atol=1e-6)
    assert abs(first.point_data["u"][[0, -1]]).max() < 1e-7
    s = d.sample(0)
    pts = [(s.mesh.points[i, 0], s.times[k], s.fields["u"][k, i]) for k in (5, 20, 40) for i in range(1, 16, 3)]
    np.savetxt(tmp_path / "obs.csv", np.array(pts), delimiter=",", header="x,t,u", comments="")
    assert main(["posterior", ckpt, str(tmp_path / "obs.csv"), "--w", str(s.options["frequency"]), "-o",
                 str(tmp_path / "z.json")]) == 0
    assert len(json.loads((tmp_path / "z.json").read_text())["z_mean"]) == 2
    for args, words in ((["predict", ckpt, str(tmp_path / "line.vtu"), "-o", str(tmp_path / "x.pvd"), "--viscosity",
                          "0.05", "--t-end", "2"], "--t-end: the model was trained for t in [0, 1]"),
                        (["predict", ckpt, str(tmp_path / "line.vtu"), "-o", str(tmp_path / "y.pvd"), "--viscosity",
                          "0.5"], "--viscosity/--convection: z_0 = 0.5 lies outside"),
                        (["predict", ckpt, str(tmp_path / "line.vtu"), "-o", str(tmp_path / "v.pvd")],
                         "--viscosity is required")):
        capsys.readouterr()
        assert main(args) == 1, args
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / args[args.index("-o") + 1]).exists()


def test_killed_and_resumed_run_matches_the_uninterrupted_one(trained, tmp_path):
    """The grids, priors and noise come from the trainer's per-step rng only: a run killed at
    step 20 and resumed from its step-16 state ends with the same weights and metrics."""
    import os
    import subprocess
    import sys

    from graphfem.checkpoint import read_tensors
    from graphfem.training.trainer import FAULT_ENV

    data = trained[1]
    full = _yaml(tmp_path / "full.yaml", data, tmp_path / "full", epochs=3)
    killed = _yaml(tmp_path / "killed.yaml", data, tmp_path / "killed", epochs=3)
    assert main(["train", str(full)]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", FAULT_ENV: "20"}
    proc = subprocess.run([sys.executable, "-m", "graphfem", "train", str(killed)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    assert read_tensors(tmp_path / "killed" / "state.safetensors")[1]["step"] == 16
    assert main(["train", str(killed), "--resume"]) == 0
    a, b = (read_tensors(tmp_path / run / "model.safetensors")[0] for run in ("full", "killed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lines = lambda run: [ln for ln in (tmp_path / run / "metrics.jsonl").read_text().splitlines()  # noqa: E731
                         if "time_s" not in ln]
    assert lines("full") == lines("killed")


def test_cavity_through_the_cli(tmp_path, capsys):
    """lid-cavity: random (x, y) grids per sample and step, trained through graphfem train; predict
    writes velocity, velocity_std, stream and stream_std on a mesh of our own, with the no-slip walls,
    the lid and zero wall std exact; the posterior from (x, y, stream) observations; bad input."""
    import meshio

    from graphfem.datasets.simulations import SimulationData
    from graphfem.physics.lid_cavity import lid_profile

    data = tmp_path / "cav.h5"
    assert main(["generate", "lid-cavity", "-n", "4", "--resolution", "6", "-o", str(data)]) == 0
    cfg = tmp_path / "cav.yaml"
    cfg.write_text(f"""model: {{name: rgnp, pde: cavity, points: 16, fourier: 4, width: 16, depth: 2, lift: 4,
  lift_depth: 1, grid: 5, conv: 2, filters: 4, gic_dense: [8], w_dense: 8, head: [8], eps: 30.0, learn_eps: true,
  eps_min: 1.0, out_scale: 0.05, u_scale: 1.0, draws: 8}}
data: {{path: {data}, val_fraction: 0.25, test_fraction: 0.25, batch_size: 4}}
optim: {{phases: [{{optimizer: adam, epochs: 2, lr: 1.0e-3, weight_decay: 0.0, warmup_steps: 0, clip_norm: 0.0}}]}}
run: {{out: {tmp_path / 'run'}, seed: 0, threads: 1, progress: false}}
""")
    assert main(["train", str(cfg)]) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert math.isfinite(records[-1]["test_rel_l2_u"]) and 0 <= records[-1]["test_coverage_u"] <= 1
    ckpt = str(tmp_path / "run" / "model.safetensors")
    Mesh.rectangle(7, 5).write(tmp_path / "square.vtu")
    out = tmp_path / "flow.vtu"
    assert main(["predict", ckpt, str(tmp_path / "square.vtu"), "-o", str(out), "--viscosity", "0.07",
                 "--lid", "0.65"]) == 0
    got = meshio.read(out)
    x, vel, std = got.points[:, :2], got.point_data["velocity"], got.point_data["velocity_std"]
    assert vel.shape == std.shape == (len(x), 3) and {"stream", "stream_std"} <= set(got.point_data)
    assert np.abs(vel[:, 2]).max() == 0 and (std >= 0).all()   # VTK pads 2-vectors with a zero z
    vel, std = vel[:, :2], std[:, :2]
    lid = x[:, 1] == 1
    walls = (x[:, 1] == 0) | (x[:, 0] == 0) | (x[:, 0] == 1)
    assert np.abs(vel[walls & ~lid]).max() == 0 and np.abs(std[walls | lid]).max() == 0
    np.testing.assert_allclose(vel[lid, 0], 0.65 * lid_profile(x[lid, 0]), rtol=0, atol=1e-6)
    assert np.abs(vel[lid, 1]).max() == 0
    s = SimulationData(data).sample(0)
    inner = np.flatnonzero(((s.mesh.points[:, :2] > 0) & (s.mesh.points[:, :2] < 1)).all(1))
    rows = np.column_stack([s.mesh.points[inner, :2], s.fields["stream"][inner]])
    np.savetxt(tmp_path / "obs.csv", rows, delimiter=",", header="x,y,stream", comments="")
    assert main(["posterior", ckpt, str(tmp_path / "obs.csv"), "--w", str(s.options["lid"]), "-o",
                 str(tmp_path / "z.json"), "--truth", str(s.options["viscosity"])]) == 0
    assert len(json.loads((tmp_path / "z.json").read_text())["z_mean"]) == 1
    np.savetxt(tmp_path / "xt.csv", rows, delimiter=",", header="x,t,stream", comments="")
    Mesh.interval(5, 0.0, 1.0).write(tmp_path / "line.vtu")
    sq = str(tmp_path / "square.vtu")
    for args, words in ((["predict", ckpt, sq, "-o", str(tmp_path / "a.vtu"), "--viscosity", "0.5"],
                         "--viscosity: z_0 = 0.5 lies outside the training range"),
                        (["predict", ckpt, sq, "-o", str(tmp_path / "b.vtu"), "--viscosity", "0.05", "--lid", "3"],
                         "--lid: 3 lies outside"),
                        (["predict", ckpt, str(tmp_path / "line.vtu"), "-o", str(tmp_path / "c.vtu"),
                          "--viscosity", "0.05"], "2D"),
                        (["predict", ckpt, sq, "-o", str(tmp_path / "d.vtu")], "--viscosity is required"),
                        (["posterior", ckpt, str(tmp_path / "xt.csv"), "--w", "0.7", "-o", str(tmp_path / "e.json")],
                         "lacks y")):
        capsys.readouterr()
        assert main(args) == 1, args
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / args[args.index("-o") + 1]).exists()
