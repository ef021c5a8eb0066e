"""Issue 13 for SPON through the command line: the domain of validity a SPON checkpoint
stores (the training split's ranges of what the processor reads, after SPON's own
scaling), warned once per input by ``graphfem predict``, refused by ``--strict``, split
by ``graphfem evaluate``; a tampered record refused, a checkpoint without one silent.

On meshes no other SPON test uses: Poisson on the 1 x 0.5 plate (``--geometry plate``),
predicted on a 16 x 8 rectangle file, its 2x refinement and its copy scaled by 1e-6; the
hyperelastic plate predicted on a plate twice as large."""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import graphfem
from graphfem import validity
from graphfem.checkpoint import read_tensors, save_tensors
from graphfem.datasets import spon as spon_data
from graphfem.families.spon import case_options
from graphfem.meshes import Mesh

torch.set_num_threads(1)

POISSON_INPUTS = ["source f*D^2/(kappa_h*s)", "log(kappa/kappa_h)", "Dirichlet value u/s", "local mesh size h/D"]
#: inside the ranges whatever the samples: log 1 = 0 lies between the extremes of log κ/κ_h, a
#: constant source gives f' = 16 ≤ max 16 f / rms(f), and half the samples have u = 0 on the boundary
INSIDE = ["--kappa", "1", "--source", "1", "--dirichlet", "boundary=0"]


def _cli(*args) -> subprocess.CompletedProcess:
    from graphfem import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def _train(folder: Path, family: str, n: int, model: dict, extra=()) -> Path:
    data = folder / "data.h5"
    run = _cli("generate", family, "-n", n, "--resolution", 1, "-o", data, "--seed", 5, *extra)
    assert run.returncode == 0, run.stderr
    config = folder / "train.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"latent": 8, "layers": 3, **model},
        "data": {"path": str(data), "batch_size": 2, "val_fraction": 0.25, "test_fraction": 0.25},
        "optim": {"epochs": 1, "warmup_steps": 1, "lr": 3e-3},
        "run": {"out": str(folder / "run"), "threads": 1, "progress": False, "device": "cpu"}}))
    run = _cli("train", config)
    assert run.returncode == 0, run.stderr
    return folder / "run" / "model.safetensors"


@pytest.fixture(scope="module")
def poisson(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("spon_validity")
    model = _train(folder, "spon-poisson", 8, {"name": "spon_mg", "levels": 1}, ("--geometry", "plate"))
    Mesh.rectangle(16, 8, 0.0, 1.0, 0.0, 0.5).write(folder / "mine.msh")  # the training size, another file
    return model


def _warned(run: subprocess.CompletedProcess) -> list[str]:
    return [line for line in run.stderr.splitlines() if "domain of validity" in line]


def test_the_stored_ranges_name_the_inputs_and_hold_every_training_sample(poisson):
    s = graphfem.load(poisson)
    stored = s.meta["validity"]
    assert s.problem["inputs"] == POISSON_INPUTS and sorted(stored["features"]) == sorted(POISSON_INPUTS)
    assert stored["nodes"] == [153, 153] and stored["aspect"] == [2.0, 2.0] and stored["cell_types"] == ["triangle"]
    lo, hi = stored["features"]["log(kappa/kappa_h)"]
    assert lo < 0 < hi and stored["features"]["source f*D^2/(kappa_h*s)"][1] >= 16
    assert stored["features"]["Dirichlet value u/s"][0] <= 0 <= stored["features"]["Dirichlet value u/s"][1]
    records = spon_data.read(poisson.parent.parent / "data.h5")
    for i in s.meta["provenance"]["split"]["train"]:  # each training case, served as predict serves it
        with warnings.catch_warnings():
            warnings.simplefilter("error", validity.ValidityWarning)
            s.prediction(records[i].mesh, **case_options(records[i]))


def test_inside_predicts_silently_outside_warns_per_input_and_strict_refuses(poisson):
    folder = poisson.parent.parent
    mesh, out = folder / "mine.msh", folder / "u.vtu"
    run = _cli("predict", poisson, mesh, "-o", out, *INSIDE, "--strict")
    assert run.returncode == 0 and out.exists() and _warned(run) == [], run.stderr
    out.unlink()
    outside = ["--kappa", "exp(10*x)", "--source", "1", "--dirichlet", "boundary=1"]  # contrast e^10, g = s
    run = _cli("predict", poisson, mesh, "-o", out, *outside)
    assert run.returncode == 0 and out.exists(), run.stderr
    lo, hi = graphfem.load(poisson).meta["validity"]["features"]["log(kappa/kappa_h)"]
    warned = _warned(run)
    assert len(warned) == 2 and all(line.startswith("graphfem: warning: ") for line in warned), run.stderr
    assert f"input 'log(kappa/kappa_h)' spans [-2.303, 7.697], outside the training range [{lo:.4g}, {hi:.4g}]" \
        in warned[0]
    assert "input 'Dirichlet value u/s' spans [1, 1]" in warned[1]
    out.unlink()
    run = _cli("predict", poisson, mesh, "-o", out, *outside, "--strict")
    assert run.returncode == 1 and not out.exists()
    assert run.stderr.count("\n") == 1 and "--strict: input 'log(kappa/kappa_h)'" in run.stderr
    assert "(and 1 more)" in run.stderr


def test_a_finer_or_scaled_mesh_is_no_new_case(poisson, tmp_path):
    """The node count is not checked (a 2x refinement is served on the trained levels),
    nor the extent of a Poisson mesh (its inputs are scale-free: x -> 1e-6 x, f -> 1e12 f);
    the aspect and the local mesh size of another domain are."""
    Mesh.rectangle(32, 16, 0.0, 1.0, 0.0, 0.5).write(tmp_path / "fine.msh")
    Mesh.rectangle(16, 8, 0.0, 1e-6, 0.0, 0.5e-6).write(tmp_path / "tiny.msh")
    Mesh.rectangle(16, 16).write(tmp_path / "square.msh")
    for name, source in (("fine", "1"), ("tiny", "1e12")):
        run = _cli("predict", poisson, tmp_path / f"{name}.msh", "-o", tmp_path / f"{name}.vtu", "--kappa", "1",
                   "--source", source, "--dirichlet", "boundary=0", "--strict")
        assert run.returncode == 0 and run.stderr == "", (name, run.stderr)
    run = _cli("predict", poisson, tmp_path / "square.msh", "-o", tmp_path / "square.vtu", *INSIDE)
    warned = _warned(run)
    assert run.returncode == 0 and len(warned) == 2, run.stderr
    assert "aspect ratio of the bounding box 1 is outside the training range [2, 2]" in warned[0]
    assert "input 'local mesh size h/D'" in warned[1]


def test_evaluate_splits_the_errors_inside_and_outside(poisson):
    data = poisson.parent.parent / "data.h5"
    run = _cli("evaluate", poisson, data, "--json")
    assert run.returncode == 0, run.stderr
    stats = json.loads(run.stdout)
    s = graphfem.load(poisson)
    inside = []
    for r in spon_data.read(data):  # counted here, through the Python API
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", validity.ValidityWarning)
            s.prediction(r.mesh, **case_options(r))
        inside.append(not any(w.category is validity.ValidityWarning for w in caught))
    errors = np.asarray(stats["errors"])
    assert stats["inside"]["samples"] == sum(inside) >= len(s.meta["provenance"]["split"]["train"])
    assert stats["inside"]["samples"] + stats["outside"]["samples"] == stats["samples"] == 8
    assert np.isclose(stats["inside"]["rel_l2_mean"], errors[np.asarray(inside)].mean(), rtol=1e-12)
    assert "the model's training ranges: inside" in _cli("evaluate", poisson, data).stdout


def test_a_tampered_record_is_refused_and_an_old_checkpoint_predicts_silently(poisson, tmp_path):
    folder = poisson.parent.parent
    tensors, meta = read_tensors(poisson)
    bad = json.loads(json.dumps(meta))
    bad["validity"]["features"]["log(kappa/kappa_h)"] = [2.0, -1.0]
    save_tensors(tmp_path / "bad.safetensors", tensors, bad)
    run = _cli("predict", tmp_path / "bad.safetensors", folder / "mine.msh", "-o", tmp_path / "u.vtu", *INSIDE)
    assert run.returncode == 1 and run.stderr.count("\n") == 1 and not (tmp_path / "u.vtu").exists()
    assert "checkpoint 'validity' must hold [min, max] pairs" in run.stderr and "log(kappa/kappa_h)" in run.stderr
    old = json.loads(json.dumps(meta))  # as written before SPON stored its ranges
    del old["validity"], old["problem"]["inputs"]
    save_tensors(tmp_path / "old.safetensors", tensors, old)
    outside = ["--kappa", "exp(10*x)", "--dirichlet", "boundary=1"]
    run = _cli("predict", tmp_path / "old.safetensors", folder / "mine.msh", "-o", tmp_path / "u.vtu", *outside)
    assert run.returncode == 0 and _warned(run) == [] and (tmp_path / "u.vtu").exists(), run.stderr
    run = _cli("predict", tmp_path / "old.safetensors", folder / "mine.msh", "-o", tmp_path / "v.vtu", *INSIDE,
               "--strict")
    assert run.returncode == 1 and run.stderr.count("\n") == 1 and not (tmp_path / "v.vtu").exists()
    assert "--strict: the checkpoint stores no training ranges" in run.stderr
    stats = json.loads(_cli("evaluate", tmp_path / "old.safetensors", folder / "data.h5", "--json").stdout)
    assert "inside" not in stats and stats["samples"] == 8


def test_hyperelastic_loads_and_extent_are_checked(tmp_path):
    """The reference loads are in the mesh's units: a traction 10x the largest trained one,
    and a plate twice the size, are each one line."""
    model = _train(tmp_path, "spon-hyperelastic", 5, {"name": "spon", "levels": 0})
    stored = graphfem.load(model).meta["validity"]
    name = "traction x on 'right' / 0.1"
    assert stored["extent"] == [1.0, 1.0] and name in stored["features"]
    mid = {k: 0.1 * (lo + hi) / 2 for k, (lo, hi) in stored["features"].items()}  # option values: the units times 0.1
    body = f"{mid['body force x / 0.1']!r},{mid['body force y / 0.1']!r}"
    ty = mid["traction y on 'right' / 0.1"]
    Mesh.rectangle(16, 8, 0.0, 1.0, 0.0, 0.5).write(tmp_path / "plate.msh")
    Mesh.rectangle(16, 8, 0.0, 2.0, 0.0, 1.0).write(tmp_path / "large.msh")
    for mesh, tx, lines in (("plate", mid[name], []), ("plate", 10 * 0.1 * stored["features"][name][1], [name]),
                            ("large", mid[name], ["domain extent (largest bounding-box side) 2 is outside"])):
        run = _cli("predict", model, tmp_path / f"{mesh}.msh", "-o", tmp_path / "d.vtu", "--traction",
                   f"right={tx!r},{ty!r}", "--body-force", body)
        warned = _warned(run)
        assert run.returncode == 0 and len(warned) == len(lines), run.stderr
        assert all(line in w for line, w in zip(lines, warned)), run.stderr
