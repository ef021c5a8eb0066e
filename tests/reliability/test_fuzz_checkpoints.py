"""Seeded corruptions of a checkpoint, served by ``graphfem predict`` and
:func:`graphfem.load`: byte flips and truncations anywhere in the file,
foreign files, and intact (re-signed) headers whose content is absurd. Every
one must be refused in one line naming the file, with a non-zero exit and
no output or temporary file left; none may crash, hang or traceback.

The default run draws a sample; ``-m slow`` draws hundreds."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import graphfem
from graphfem.checkpoint import read_tensors, save, save_tensors
from graphfem.cli import main
from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError
from graphfem.operators.meshgraphnet import MeshGraphNet, MeshGraphNetConfig
from graphfem.physics.poisson_encoding import POISSON_FEATURES

torch.set_num_threads(1)
META = {"normalisation": {"x_mean": [0.0] * 8, "x_std": [1.0] * 8, "y_mean": [0.0], "y_std": [1.0]},
        "problem": {"name": "poisson", "dim": 2, "cell_types": ["triangle"], "fields": ["u"],
                    "features": list(POISSON_FEATURES), "options": ["kappa", "source", "dirichlet", "neumann"]},
        "family": "meshgraphnet", "provenance": {"note": "fuzz"}}

#: header edits that keep a valid digest (the file is re-signed): absurd content, not damage
HEADER_EDITS = {
    "model not a string": lambda m: m.update(model=["meshgraphnet"]),
    "config not a mapping": lambda m: m.update(config=[1, 2]),
    "latent a string": lambda m: m["config"].update(latent="big"),
    "latent negative": lambda m: m["config"].update(latent=-8),
    "latent huge": lambda m: m["config"].update(latent=30000),
    "layers huge": lambda m: m["config"].update(layers=10 ** 6),
    "layers float": lambda m: m["config"].update(layers=2.5),
    "unknown config key": lambda m: m["config"].update(colour="red"),
    "normalisation missing": lambda m: m.pop("normalisation"),
    "normalisation short": lambda m: m["normalisation"].update(x_mean=[0.0]),
    "normalisation NaN": lambda m: m["normalisation"].update(x_std=[float("nan")] * 8),
    "normalisation strings": lambda m: m["normalisation"].update(y_std=["one"]),
    "problem missing": lambda m: m.pop("problem"),
    "problem unknown": lambda m: m["problem"].update(name="magnetism"),
    "problem not a mapping": lambda m: m.update(problem="poisson"),
    "fields empty": lambda m: m["problem"].update(fields=[]),
    "dim 7": lambda m: m["problem"].update(dim=7),
    "features foreign": lambda m: m["problem"].update(features=["colour"]),
    "family unknown": lambda m: m.update(family="quantum"),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz_ckpt")
    torch.manual_seed(0)
    path = folder / "model.safetensors"
    save(path, MeshGraphNet(MeshGraphNetConfig(in_node=8, latent=8, layers=2)), META)
    mesh = folder / "square.msh"
    Mesh.unit_square(4).write(mesh)
    return path, mesh


def _refused_cleanly(capsys, model, mesh, folder) -> None:
    out = folder / "u.vtu"
    capsys.readouterr()
    code = main(["predict", str(model), str(mesh), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (1, 2), (code, err)
    assert len(err) == 1 and err[0].startswith("graphfem: error: ") and (str(model) in err[0] or str(mesh) in err[0]), err
    assert sorted(p.name for p in folder.iterdir()) == sorted([model.name, mesh.name]), list(folder.iterdir())
    with pytest.raises(GraphfemError) as info:
        graphfem.load(model).predict(Mesh.unit_square(3))
    assert "\n" not in str(info.value)


def _corrupt(data: bytes, rng: np.random.Generator) -> bytes:
    """One random damage: flipped bytes anywhere, a truncation, or a foreign file."""
    kind = rng.integers(4)
    if kind == 0:
        damaged = bytearray(data)
        for i in rng.integers(0, len(data), rng.integers(1, 4)):
            damaged[i] ^= int(rng.integers(1, 256))
        return bytes(damaged)
    if kind == 1:
        return data[:int(rng.integers(0, len(data)))]
    if kind == 2:
        return rng.bytes(int(rng.integers(0, 2048)))
    return json.dumps({"weights": [1, 2, 3]}).encode()


def _seeds(default: int, slow: int):
    return [pytest.param(s, marks=pytest.mark.slow) if s >= default else s for s in range(slow)]


@pytest.mark.parametrize("seed", _seeds(24, 300))
def test_damaged_files_are_refused(tmp_path, capsys, pristine, seed):
    path, mesh = pristine
    rng = np.random.default_rng([7, seed])
    original = path.read_bytes()
    damaged = _corrupt(original, rng)
    if damaged == original:  # two flips of one byte cancelled out: damage it for sure
        damaged = bytes([original[0] ^ 0xFF]) + original[1:]
    model, copy = tmp_path / "model.safetensors", tmp_path / mesh.name
    model.write_bytes(damaged)
    copy.write_bytes(mesh.read_bytes())
    _refused_cleanly(capsys, model, copy, tmp_path)


@pytest.mark.parametrize("edit", sorted(HEADER_EDITS))
def test_absurd_headers_are_refused(tmp_path, capsys, pristine, edit):
    path, mesh = pristine
    tensors, meta = read_tensors(path)
    HEADER_EDITS[edit](meta)
    model, copy = tmp_path / "model.safetensors", tmp_path / mesh.name
    save_tensors(model, tensors, meta)
    copy.write_bytes(mesh.read_bytes())
    _refused_cleanly(capsys, model, copy, tmp_path)
