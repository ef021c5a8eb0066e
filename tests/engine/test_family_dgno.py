"""The dgno family: element lookup, label-free training plumbing, predict/evaluate/invert and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graphfem.cli import main
from graphfem.meshes import Mesh

torch.set_num_threads(1)


def _yaml(path, data, out, name="dgno", epochs=38, lr="2.0e-3", extra=""):
    model = ("grid: 9\n  latent: 8\n  encoder: [32]\n  centres: 16\n  " if name == "dgno" else "grid: 9\n  ") + extra
    path.write_text(f"""model:
  name: {name}
  {model}width: 24
  depth: 3
  n_layers_sum: 3
data: {{path: {data}, val_fraction: 0.1, test_fraction: 0.1, batch_size: 4}}
optim:
  phases:
    - {{optimizer: adam, epochs: {epochs}, lr: {lr}, weight_decay: 0.0, warmup_steps: 0, min_lr_ratio: 0.5,
       clip_norm: 0.0, dtype: float32}}
run: {{out: {out}, seed: 0, threads: 1, checkpoint_every: 100, progress: false}}
""")
    return path


def test_element_lookup_is_not_grid_rounding():
    from graphfem.families.dgno import coefficient_at

    mesh = Mesh.rectangle(5)
    centroids = mesh.points[mesh.corner_cells].mean(axis=1)
    a = np.arange(mesh.n_cells, dtype=float)
    assert np.array_equal(coefficient_at(mesh, a, centroids[:, :2]), a)  # each centroid finds its own cell
    from graphfem.families.dgno import Lookup

    pts = np.random.default_rng(0).random((50, 2))
    linear = 1 + 2 * mesh.points[:, 0] - 3 * mesh.points[:, 1]
    assert np.allclose(Lookup(mesh).continuous(linear, pts), 1 + 2 * pts[:, 0] - 3 * pts[:, 1])  # P1 is exact


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    files = tmp_path_factory.mktemp("dgno")
    data = files / "d.h5"
    assert main(["generate", "darcy", "-n", "20", "--resolution", "8", "-o", str(data), "--seed", "4"]) == 0
    cfg = _yaml(files / "dgno.yaml", data, files / "run")
    assert main(["train", str(cfg)]) == 0
    return files, data


def test_label_free_training_plumbing(trained):
    """About 150 steps: finite loss, falling L_pde, BCE leaving ln 2, u error (never trained on) < 0.5."""
    import json

    from graphfem.checkpoint import load_model
    from graphfem.operators.dgno import lhs_centres

    files, data = trained
    records = [json.loads(l) for l in (files / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert all(math.isfinite(v) for v in losses) and len(losses) >= 100
    final = records[-1]
    assert final["test_rel_l2_u"] < 0.5
    model, _ = load_model(files / "run" / "model.safetensors")
    from graphfem.datasets.simulations import SimulationData
    from graphfem.families.dgno import coefficient_at, grid_points

    d = SimulationData(data)
    grids = torch.as_tensor(np.stack([coefficient_at(d.sample(i).mesh, d.sample(i).options["kappa"], grid_points(9))
                                      for i in range(len(d))]), dtype=torch.float32)
    with torch.no_grad():
        assert float(model.data_loss(model(grids), grids)) < math.log(2) - 0.01  # left the ln 2 plateau
    fresh = type(model)(model.config)
    rng = np.random.default_rng(0)
    centres = torch.as_tensor(np.stack([lhs_centres(rng, 16, 1e-4)] * 4), dtype=torch.float32)
    a = torch.where(torch.rand(4, 81, generator=torch.Generator().manual_seed(0)) > 0.5, 10.0, 5.0)
    a_q = torch.full((4, 16 * 25), 7.5)
    assert float(model.pde_loss(model(a), centres, a_q)) < 0.5 * float(fresh.pde_loss(fresh(a), centres, a_q))


def test_predict_evaluate_invert_and_bad_input(trained, tmp_path, capsys):
    files, data = trained
    ckpt = str(files / "run" / "model.safetensors")
    mesh = Mesh.rectangle(11)  # another mesh than the training ones
    a = np.where(mesh.points[mesh.corner_cells].mean(1)[:, 0] > 0.5, 10.0, 5.0)
    mesh.write(tmp_path / "m.vtu", cell_data={"a": a})
    out = tmp_path / "u.vtu"
    assert main(["predict", ckpt, str(tmp_path / "m.vtu"), "-o", str(out), "--kappa", "a"]) == 0 and out.exists()
    assert main(["evaluate", ckpt, str(data)]) == 0
    from graphfem.datasets.simulations import SimulationData

    s = SimulationData(data).sample(0)
    idx = np.random.default_rng(1).choice(s.mesh.n_points, 30, replace=False)
    rows = np.column_stack([s.mesh.points[idx, :2], s.fields["u"][idx]])
    np.savetxt(tmp_path / "obs.csv", rows, delimiter=",", header="x,y,u", comments="")
    s.mesh.write(tmp_path / "truth.vtu", cell_data={"a": s.options["kappa"]})
    inv = tmp_path / "inv.vtu"
    assert main(["invert", ckpt, str(tmp_path / "obs.csv"), "-o", str(inv), "--truth", str(tmp_path / "truth.vtu"),
                 "--restarts", "2", "--iterations", "5"]) == 0 and inv.exists()
    assert "relative L2 error" in capsys.readouterr().out
    rows[3, 2] = np.nan
    np.savetxt(tmp_path / "nan.csv", rows, delimiter=",", header="x,y,u", comments="")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 64)
    big = Mesh.rectangle(4, x1=2.0)
    big.write(tmp_path / "big.vtu")
    bad = [(["invert", ckpt, str(tmp_path / "nan.csv"), "-o", str(tmp_path / "x1.vtu")], "NaN"),
           (["invert", str(tmp_path / "bad.safetensors"), str(tmp_path / "obs.csv"), "-o", str(tmp_path / "x2.vtu")],
            "safetensors"),
           (["predict", ckpt, str(tmp_path / "big.vtu"), "-o", str(tmp_path / "x3.vtu")], "unit square"),
           (["predict", ckpt, str(tmp_path / "m.vtu"), "-o", str(tmp_path / "x4.vtu"), "--dirichlet", "left=1"],
            "does not use"),
           (["predict", ckpt, str(tmp_path / "m.vtu"), "-o", str(tmp_path / "x5.vtu"), "--source", "3"], "f = 10")]
    for args, words in bad:
        capsys.readouterr()
        assert main(args) == 1, args
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / args[args.index("-o") + 1]).exists()


def test_variational_training_and_bad_options(trained, tmp_path, capsys):
    """variational: true trains through the engine (48 steps) with finite, falling loss (w_KL = 0.01); a negative
    kl_weight, or a kl_weight without the variational encoder, is one line and no run."""
    import json

    data = trained[1]
    cfg = _yaml(tmp_path / "vae.yaml", data, tmp_path / "run", epochs=12,
                extra="variational: true\n  kl_weight: 0.01\n  ")
    assert main(["train", str(cfg)]) == 0
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert all(math.isfinite(v) for v in losses) and len(losses) >= 40
    assert np.mean(losses[-8:]) < 0.9 * np.mean(losses[:8])  # 7.05 -> 5.98 in 48 steps
    for extra, words in (("variational: true\n  kl_weight: -1.0\n  ", "model.kl_weight: must be >= 0"),
                         ("kl_weight: 0.1\n  ", "needs model.variational: true"),
                         ("variational: 1\n  ", "model.variational: expected bool")):
        bad = _yaml(tmp_path / "bad.yaml", data, tmp_path / "bad", epochs=1, extra=extra)
        capsys.readouterr()
        assert main(["train", str(bad)]) == 1
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "bad" / "model.safetensors").exists()


def test_multionet_supervised_trains(trained, tmp_path):
    cfg = _yaml(tmp_path / "mono.yaml", trained[1], tmp_path / "run", name="multionet", epochs=40, lr="5.0e-3")
    assert main(["train", str(cfg)]) == 0
    import json

    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:10])  # supervised MSE of u / u_rms falls
    from graphfem.checkpoint import load_model
    from graphfem.datasets.simulations import SimulationData
    from graphfem.families.dgno import DGNOFamily, coefficient_at, grid_points
    from graphfem.training.trainer import split_indices

    model, meta = load_model(tmp_path / "run" / "model.safetensors")
    assert meta["validity"]["features"]["kappa"] == [5.0, 10.0]  # MultiONet stores the same ranges as DGNO
    d = SimulationData(trained[1])
    s = d.sample(split_indices(len(d), 0.1, 0.1, 0)["train"][0])
    u = DGNOFamily._predict_u(model, [coefficient_at(s.mesh, s.options["kappa"], grid_points(9))],
                              [s.mesh.points[:, :2]], "cpu")[0]
    assert np.linalg.norm(u - s.fields["u"]) / np.linalg.norm(s.fields["u"]) < 0.3  # fits its (few) labels


@pytest.mark.slow
def test_inverse_example_runs(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "dgno_inverse.py"
    spec = importlib.util.spec_from_file_location("example_dgno_inverse", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(tmp_path, tmp_path / "work", samples=12, resolution=10, epochs=2, restarts=2, iterations=3)
    assert result["figure"].exists() and np.isfinite(result["a_rel_l2"]) and result["spread_mean"] > 0


def test_smooth_darcy_continuous_coefficient(tmp_path, capsys):
    """darcy-smooth (a = exp(g), a cell field) trains a primal-form DGNO with the L² decoder of a (the default
    there); a two-phase decoder on it, and invert on a continuous model, are one line each."""
    import json

    from graphfem.datasets.simulations import SimulationData

    data = tmp_path / "s.h5"
    assert main(["generate", "darcy-smooth", "-n", "10", "--resolution", "6", "-o", str(data), "--seed", "3"]) == 0
    s = SimulationData(data).sample(0)
    a = s.options["kappa"]
    assert a.shape == (s.mesh.n_cells,) and (a > 0).all() and len(np.unique(a)) > 10
    cfg = _yaml(tmp_path / "s.yaml", data, tmp_path / "run", epochs=8,
                extra="form: primal\n  w_data: 0.25\n  ")  # coefficient unset: continuous (many values)
    assert main(["train", str(cfg)]) == 0
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert all(math.isfinite(v) for v in losses) and np.mean(losses[-4:]) < np.mean(losses[:4])
    assert math.isfinite(records[-1]["test_a_rel_l2"]) and "test_bce" not in records[-1]
    from graphfem.checkpoint import read_tensors

    meta = read_tensors(tmp_path / "run" / "model.safetensors")[1]  # a continuous a: its grid mean, not a fraction
    assert meta["problem"]["inputs"] == ["kappa", "grid mean of kappa"] and meta["problem"]["phases"] is None
    idx = np.arange(0, s.mesh.n_points, 3)
    rows = np.column_stack([s.mesh.points[idx, :2], s.fields["u"][idx]])
    np.savetxt(tmp_path / "obs.csv", rows, delimiter=",", header="x,y,u", comments="")
    bad = _yaml(tmp_path / "bad.yaml", data, tmp_path / "bad", epochs=1, extra="coefficient: two-phase\n  ")
    for args, words in ((["train", str(bad)], "use coefficient: continuous"),
                        (["invert", str(tmp_path / "run" / "model.safetensors"), str(tmp_path / "obs.csv"), "-o",
                          str(tmp_path / "inv.vtu")], "two-phase models only")):
        capsys.readouterr()
        assert main(args) == 1
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "inv.vtu").exists() and not (tmp_path / "bad" / "model.safetensors").exists()


# ---------------------------------------------------------------- the domain of validity (issue 13)
def _cli(*args):
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def test_validity_predict_warns_outside_and_strict_refuses(trained, tmp_path):
    """A two-phase a on a quad mesh of our own: inside the training ranges no warning; a in {3, 12} warns
    naming kappa and its range; a constant a = 7 (inside [5, 10]) warns on the phase fraction; --strict is
    one line, exit 1, no file."""
    from graphfem.checkpoint import read_tensors
    from graphfem.families.dgno import grid_points

    files, _ = trained
    ckpt = files / "run" / "model.safetensors"
    meta = read_tensors(ckpt)[1]
    assert meta["problem"]["inputs"] == ["kappa", "upper-phase fraction of kappa"]
    assert meta["problem"]["phases"] == [5.0, 10.0] and meta["validity"]["features"]["kappa"] == [5.0, 10.0]
    lo, hi = meta["validity"]["features"]["upper-phase fraction of kappa"]
    s = np.sort((grid_points(9) @ [1.0, 0.7]))  # a diagonal interface x + 0.7 y = c at the range's middle share
    c = s[int(round((1 - (lo + hi) / 2) * len(s)))] - 1e-6
    mesh = tmp_path / "quad.vtu"
    Mesh.rectangle(7, cell="quad").write(mesh)  # the model was trained on triangles: cells are not its input
    inside = f"5+5*(x+0.7*y>{c:.9f})"
    code, _, err = _cli("predict", ckpt, mesh, "-o", tmp_path / "in.vtu", "--kappa", inside)
    assert code == 0 and (tmp_path / "in.vtu").exists() and "domain of validity" not in err, err
    code, _, err = _cli("predict", ckpt, mesh, "-o", tmp_path / "out.vtu", "--kappa", f"3+9*(x+0.7*y>{c:.9f})")
    warned = [ln for ln in err.splitlines() if "domain of validity" in ln]
    assert code == 0 and (tmp_path / "out.vtu").exists()
    assert warned == ["graphfem: warning: outside the model's domain of validity: input 'kappa' spans [3, 12], "
                      "outside the training range [5, 10]"], err
    code, _, err = _cli("predict", ckpt, mesh, "-o", tmp_path / "c.vtu", "--kappa", "7")
    assert code == 0 and "'upper-phase fraction of kappa' spans [0, 0]" in err and "'kappa'" not in err, err
    code, _, err = _cli("predict", ckpt, mesh, "-o", tmp_path / "s.vtu", "--kappa", f"3+9*(x+0.7*y>{c:.9f})",
                        "--strict")
    assert code == 1 and not (tmp_path / "s.vtu").exists()
    assert len(err.strip().splitlines()) == 1 and err.strip().endswith(
        "--strict: input 'kappa' spans [3, 12], outside the training range [5, 10]"), err


def test_validity_evaluate_splits_and_old_or_tampered_checkpoints(trained, tmp_path):
    """evaluate --json: every training sample inside, smooth (continuous) a outside; a checkpoint without
    ranges predicts silently and is refused under --strict; a tampered range is refused in one line."""
    import json

    from graphfem.checkpoint import read_tensors, save_tensors

    files, data = trained
    ckpt = files / "run" / "model.safetensors"
    code, out, _ = _cli("evaluate", ckpt, data, "--json")
    stats = json.loads(out)
    assert code == 0 and stats["inside"]["samples"] + stats["outside"]["samples"] == 20
    assert stats["inside"]["samples"] >= 16  # the training split (16 of 20) is inside by construction
    smooth = tmp_path / "smooth.h5"
    assert main(["generate", "darcy-smooth", "-n", "3", "--resolution", "6", "-o", str(smooth), "--seed", "8"]) == 0
    code, out, _ = _cli("evaluate", ckpt, smooth)
    assert code == 0 and "the model's training ranges: inside 0, outside 3" in out, out
    tensors, meta = read_tensors(ckpt)
    mesh = tmp_path / "m.vtu"
    Mesh.rectangle(6).write(mesh)
    old = {k: v for k, v in meta.items() if k != "validity"}
    save_tensors(tmp_path / "old.safetensors", tensors, old)
    code, _, err = _cli("predict", tmp_path / "old.safetensors", mesh, "-o", tmp_path / "o.vtu", "--kappa", "3")
    assert code == 0 and (tmp_path / "o.vtu").exists() and "warning" not in err, err
    code, _, err = _cli("predict", tmp_path / "old.safetensors", mesh, "-o", tmp_path / "o2.vtu", "--kappa", "3",
                        "--strict")
    assert code == 1 and "stores no training ranges" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o2.vtu").exists()
    meta["validity"]["features"]["kappa"] = [10.0, 5.0]
    save_tensors(tmp_path / "bad.safetensors", tensors, meta)
    code, _, err = _cli("predict", tmp_path / "bad.safetensors", mesh, "-o", tmp_path / "b.vtu", "--kappa", "7")
    assert code == 1 and "checkpoint 'validity' must hold" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "b.vtu").exists()
