"""Issue 18, data and interrupted work, through the CLI (``graphfem.cli.main``):

* damaged HDF5 groups (NaN outputs, infinite coefficients, text outputs, ...)
  are named in one line by ``evaluate`` and ``train``, and skipped only with
  ``--skip-bad``; a group of another problem is refused as that problem;
"""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch
import yaml

from graphfem.checkpoint import save
from graphfem.cli import main
from graphfem.datasets.generate import generate
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
        assert "'sim_000003' holds a heat simulation, but the data set is poisson" in err and "damaged" not in err


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
