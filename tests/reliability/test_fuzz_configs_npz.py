"""Seeded corruptions of the two remaining readers' inputs: a training configuration (YAML,
``graphfem train``) and a snapshot archive (``.npz``, ``graphfem koopman`` and ``graphfem rom
cluster``). Bytes flipped or deleted, truncations, foreign bytes, and intact files whose content is
wrong (a value of the wrong type, an unknown key, NaN snapshots, mismatched shapes). Each must end
in a result or a refusal in one line naming the file, exit 1 or 2, no traceback, and no output
folder or temporary file left behind.

The default run draws a sample; ``-m slow`` draws hundreds."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import yaml

from graphfem.cli import main

torch.set_num_threads(1)

CONFIG = {"model": {"name": "meshgraphnet", "latent": 4, "layers": 1},
          "data": {"path": "data.h5", "batch_size": 2, "val_fraction": 0.2, "test_fraction": 0.2},
          "optim": {"epochs": 1, "warmup_steps": 1}, "run": {"out": "run", "threads": 1, "progress": False}}
#: content edits of an intact YAML file
CONFIG_EDITS = {
    "epochs a string": lambda c: c["optim"].update(epochs="many"),
    "epochs negative": lambda c: c["optim"].update(epochs=-3),
    "lr NaN": lambda c: c["optim"].update(lr=float("nan")),
    "unknown section": lambda c: c.update(colour={"red": 1}),
    "unknown key": lambda c: c["data"].update(shuffle_twice=True),
    "model not a mapping": lambda c: c.update(model="meshgraphnet"),
    "unknown model": lambda c: c["model"].update(name="transformer9000"),
    "data path missing": lambda c: c["data"].update(path="nowhere.h5"),
    "data path a folder": lambda c: c["data"].update(path="."),
    "batch size zero": lambda c: c["data"].update(batch_size=0),
    "fractions above one": lambda c: c["data"].update(val_fraction=0.7, test_fraction=0.6),
    "top level a list": lambda c: c.clear() or c.update(_list=[1, 2]),
}


def _seeds(default: int, slow: int):
    return [pytest.param(s, marks=pytest.mark.slow) if s >= default else s for s in range(slow)]


def _damage(data: bytes, rng: np.random.Generator) -> bytes:
    kind = int(rng.integers(4))
    out = bytearray(data)
    if kind == 0:
        for _ in range(int(rng.integers(1, 6))):
            out[int(rng.integers(len(out)))] ^= int(rng.integers(1, 256))
    elif kind == 1:
        del out[int(rng.integers(len(out))):]
    elif kind == 2:
        start = int(rng.integers(len(out)))
        del out[start:start + int(rng.integers(1, 40))]
    else:
        return rng.bytes(int(rng.integers(0, 600)))
    return bytes(out)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    from graphfem.datasets.generate import generate

    path = tmp_path_factory.mktemp("fuzz_cfg") / "data.h5"
    generate("poisson", 5, path, seed=2, progress=False)
    return path


def _train_refused_or_ran(capsys, folder, config_path) -> None:
    capsys.readouterr()
    code = main(["train", str(config_path)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("graphfem: error")]
    if code == 0:  # the damage left a valid config (perhaps with another run.out)
        assert list(folder.rglob("model.safetensors"))
        return
    assert code in (1, 2), code
    # one line naming the config, or the data file the (damaged) config names
    assert len(err) == 1 and (config_path.name in err[0] or "dataset file" in err[0] or "data" in err[0]), err
    assert not (folder / "run" / "model.safetensors").exists()
    assert not [p for p in folder.rglob(".*") if p.is_file()], list(folder.rglob(".*"))


def _config_folder(tmp_path, data_file, monkeypatch):
    (tmp_path / "data.h5").symlink_to(data_file)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("seed", _seeds(12, 200))
def test_a_damaged_config_is_refused_in_one_line(tmp_path, capsys, monkeypatch, data_file, seed):
    folder = _config_folder(tmp_path, data_file, monkeypatch)
    text = yaml.safe_dump(CONFIG).encode()
    path = folder / "train.yaml"
    path.write_bytes(_damage(text, np.random.default_rng([11, seed])))
    _train_refused_or_ran(capsys, folder, path)


@pytest.mark.parametrize("edit", sorted(CONFIG_EDITS))
def test_a_config_with_wrong_content_is_refused_in_one_line(tmp_path, capsys, monkeypatch, data_file, edit):
    folder = _config_folder(tmp_path, data_file, monkeypatch)
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    CONFIG_EDITS[edit](config)
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump(config.get("_list", config)))
    capsys.readouterr()
    assert main(["train", str(path)]) in (1, 2)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("graphfem: error: "), err
    assert not (folder / "run" / "model.safetensors").exists()


def _snapshots() -> bytes:
    """A damped travelling wave on 40 points, 60 snapshots: ``train`` rows for the ROM, the pairs
    ``X``, ``Y`` (snapshot k and k + 1) for Koopman."""
    x = np.linspace(0, 1, 40)
    t = np.arange(60) * 0.05
    u = np.exp(-0.1 * t)[:, None] * np.sin(2 * np.pi * (x[None, :] - 0.3 * t[:, None]))
    buffer = io.BytesIO()
    np.savez(buffer, train=u, X=u[:-1], Y=u[1:])
    return buffer.getvalue()


NPZ_EDITS = {
    "NaN snapshot": lambda a: {k: np.where(np.arange(v.size).reshape(v.shape) == 7, np.nan, v) for k, v in a.items()},
    "text snapshots": lambda a: {k: v.astype(str) for k, v in a.items()},
    "one snapshot": lambda a: {k: v[:1] for k, v in a.items()},
    "wrong widths": lambda a: {**a, "test": a["train"][:, :5], "Y": a["Y"][:, :5]},
    "mass of the wrong size": lambda a: {**a, "mass": np.eye(3)},
    "no arrays it knows": lambda a: {"snapshots": a["train"]},
}


def _analyses(capsys, folder, path) -> None:
    for args, out in ((["koopman", str(path), "-o", str(folder / "k")], folder / "k"),
                      (["rom", "cluster", str(path), "-k", "2", "--modes", "2", "-o", str(folder / "r")],
                       folder / "r")):
        capsys.readouterr()
        code = main(args)
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("graphfem: error")]
        if code == 0:
            assert out.is_dir()
            continue
        assert code in (1, 2), (args, code)
        assert len(err) == 1 and path.name in err[0], (args, err)
        assert not out.exists() and not [p for p in folder.iterdir() if p.name.startswith(".")], args


@pytest.mark.parametrize("seed", _seeds(8, 150))
def test_a_damaged_npz_is_refused_in_one_line(tmp_path, capsys, seed):
    path = tmp_path / "snapshots.npz"
    path.write_bytes(_damage(_snapshots(), np.random.default_rng([13, seed])))
    _analyses(capsys, tmp_path, path)


@pytest.mark.parametrize("edit", sorted(NPZ_EDITS))
def test_an_npz_with_wrong_content_is_refused_in_one_line(tmp_path, capsys, edit):
    arrays = dict(np.load(io.BytesIO(_snapshots())))
    path = tmp_path / "snapshots.npz"
    np.savez(path, **NPZ_EDITS[edit](arrays))
    _analyses(capsys, tmp_path, path)
