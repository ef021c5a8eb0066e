"""Trainer: identical seeded runs, exact resume after a SIGKILL mid-epoch,
DDP on two CPU processes, config validation."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from graphfem.checkpoint import read_tensors
from graphfem.training.config import load_config
from graphfem.datasets.generate import generate
from graphfem.meshes.errors import InputError
from graphfem.evaluate import evaluate
from graphfem.training.trainer import FAULT_ENV, lr_factor, split_indices, train

torch.set_num_threads(1)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "data.h5"
    generate("poisson", 14, path, seed=1, progress=False)
    return path


def _config(tmp_path, data, out, **optim):
    cfg = {"model": {"name": "meshgraphnet", "latent": 8, "layers": 2},
           "data": {"path": str(data), "batch_size": 2, "val_fraction": 0.15, "test_fraction": 0.15},
           "optim": {"epochs": 3, "warmup_steps": 2, **optim},
           "run": {"out": str(tmp_path / out), "checkpoint_every": 2, "threads": 1, "progress": False}}
    path = tmp_path / f"{out}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _weights(run: Path) -> dict:
    return {k: v for k, v in read_tensors(run / "state.safetensors")[0].items() if k.startswith("model.")}


def _run(args, env=ENV, check=True):
    return subprocess.run([sys.executable, "-m", "graphfem.training.trainer", *map(str, args)], env=env,
                          capture_output=True, text=True, check=check, timeout=300)


def test_two_seeded_runs_are_identical_and_learn(tmp_path, data):
    a = train(load_config(_config(tmp_path, data, "a", lr=3e-3)))
    b = train(load_config(_config(tmp_path, data, "b", lr=3e-3)))
    assert a == b
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < losses[0]
    assert (tmp_path / "a" / "curves.png").stat().st_size > 1000
    assert {"test_rel_l2_u", "best_val_rel_l2_u"} <= set(a)


def test_stored_test_error_is_what_evaluate_measures_with_the_saved_weights(tmp_path, data):
    """The test metrics stored in model.safetensors belong to its weights (the best validation epoch, not
    the last) and to what predict returns (Dirichlet values imposed): graphfem evaluate, a separate
    path through predict, gives the same numbers on the same held-out samples."""
    final = train(load_config(_config(tmp_path, data, "run", lr=1e-2)))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    val = [r["val_rel_l2_u"] for r in rows if "val_rel_l2_u" in r]
    assert int(np.argmin(val)) < len(val) - 1  # the case this checks: the last epoch is not the best
    errors = np.array(evaluate(tmp_path / "run" / "model.safetensors", data, progress=False)["errors"])
    held_out = errors[split_indices(14, 0.15, 0.15, 0)["test"]]
    assert final["test_rel_l2_u"] == pytest.approx(held_out.mean(), rel=1e-6)
    assert final["test_rel_l2_u_median"] == pytest.approx(np.median(held_out), rel=1e-6)
    assert final["test_rel_l2_u_max"] == pytest.approx(held_out.max(), rel=1e-6)
    provenance = read_tensors(tmp_path / "run" / "model.safetensors")[1]["provenance"]
    assert provenance["test_rel_l2_u"] == final["test_rel_l2_u"]


def test_a_fresh_run_replaces_an_earlier_runs_model(tmp_path, data):
    """With no validation split the model is saved at the end; an earlier run's model.safetensors in the
    same folder must not survive as this run's model."""
    config = _config(tmp_path, data, "run", lr=1e-2)
    train(load_config(config))
    cfg = yaml.safe_load(config.read_text())
    cfg["data"]["val_fraction"], cfg["run"]["seed"] = 0.0, 5
    config.write_text(yaml.safe_dump(cfg))
    train(load_config(config))
    stored = read_tensors(tmp_path / "run" / "model.safetensors")[0]
    final = {k[len("model."):]: v for k, v in _weights(tmp_path / "run").items()}
    assert all(torch.equal(stored[k], final[k]) for k in stored)


def test_killed_mid_epoch_and_resumed_matches_uninterrupted(tmp_path, data):
    full = _config(tmp_path, data, "full")
    killed = _config(tmp_path, data, "killed")
    _run([full])
    # 10 training samples / batch 2 = 5 steps per epoch: step 7 is mid-epoch 1, after the save at step 6
    proc = _run([killed], env={**ENV, FAULT_ENV: "7"}, check=False)
    assert proc.returncode == -9  # SIGKILL
    state = read_tensors(tmp_path / "killed" / "state.safetensors")[1]
    assert (state["epoch"], state["batch"], state["step"]) == (1, 1, 6)
    _run([killed, "--resume"])
    wf, wk = _weights(tmp_path / "full"), _weights(tmp_path / "killed")
    assert all(torch.equal(wf[k], wk[k]) for k in wf)
    lines = lambda run: [ln for ln in (tmp_path / run / "metrics.jsonl").read_text().splitlines()
                         if "time_s" not in ln]
    assert lines("full") == lines("killed")


def test_ddp_two_cpu_ranks_hold_identical_parameters(tmp_path, data):
    cfg = _config(tmp_path, data, "ddp", epochs=2)
    torchrun = Path(sys.executable).with_name("torchrun")
    subprocess.run([str(torchrun), "--nproc_per_node=2", "--master_port=29517", "-m", "graphfem.training.trainer", str(cfg)],
                   env=ENV, capture_output=True, text=True, check=True, timeout=300)
    final = json.loads((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["rank_param_max_diff"] == 0.0
    assert (tmp_path / "ddp" / "model.safetensors").exists()


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=0.1", "unknown key 'optim.lrr'"),
    ("optim.epochs=many", "optim.epochs: expected int, got str 'many'"),
    ("run.seed=1.5", "run.seed: expected int, got float 1.5"),
    ("colour=red", "unknown key 'colour'"),
])
def test_config_errors_name_the_key(tmp_path, data, override, message):
    with pytest.raises(InputError, match=message) as err:
        load_config(_config(tmp_path, data, "c"), [override])
    assert "\n" not in str(err.value)


def test_single_phase_keys_beside_phases_are_named(tmp_path, data):
    """With optim.phases the single-phase fields configure nothing: a changed one is named in a warning, and the
    phases alone are what runs."""
    phases = "optim.phases=[{optimizer: adam, lr: 0.01, epochs: 1}, {optimizer: adam, lr: 0.001, epochs: 2}]"
    with pytest.warns(UserWarning, match=r"optim.phases is given, so optim.lr, optim.epochs, optim.warmup_steps are not used"):
        config = load_config(_config(tmp_path, data, "p"), [phases, "optim.lr=0.5", "optim.epochs=9"])
    assert [(p.lr, p.epochs) for p in config.optim.phase_list()] == [(0.01, 1), (0.001, 2)]


def test_unknown_model_key_is_named(tmp_path, data):
    proc = _run([_config(tmp_path, data, "m"), "--set", "model.width=3"], check=False)
    assert proc.returncode == 1
    assert "unknown key 'model.width'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_schedule_warms_up_then_decays():
    f = [lr_factor(s, 100, 10, 0.01) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[-1] == pytest.approx(0.01, abs=1e-3)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
