"""Checkpoints: round trip, and one-line refusals of damaged, tampered,
pickle-based and unknown-model files."""
import json
import struct

import numpy as np
import pytest
import torch

import graphfem
from graphfem.checkpoint import read_tensors, save
from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError
from graphfem.operators.meshgraphnet import MeshGraphNet, MeshGraphNetConfig
from graphfem.physics.poisson_encoding import POISSON_FEATURES

META = {"normalisation": {"x_mean": [0.0] * 8, "x_std": [1.0] * 8, "y_mean": [0.0], "y_std": [1.0]},
        "problem": {"name": "poisson", "dim": 2, "cell_types": ["triangle"], "fields": ["u"],
                    "features": list(POISSON_FEATURES), "options": ["kappa", "source", "dirichlet", "neumann"]},
        "provenance": {"note": "test"}}


@pytest.fixture()
def ckpt(tmp_path):
    torch.manual_seed(0)
    model = MeshGraphNet(MeshGraphNetConfig(in_node=8, latent=8, layers=2))
    path = tmp_path / "m.safetensors"
    save(path, model, META)
    return path, model


def test_round_trip_gives_the_same_predictions(ckpt):
    path, model = ckpt
    surrogate = graphfem.load(path)
    assert surrogate.meta["graphfem_version"] == graphfem.__version__
    for name, t in model.state_dict().items():
        assert torch.equal(surrogate.model.state_dict()[name], t)
    mesh = Mesh.unit_square(4)
    u = surrogate.predict(mesh, kappa=2.0, source=1.0, dirichlet={"left": 1.0})["u"]
    assert u.shape == (mesh.n_points,) and np.isfinite(u).all()


def test_pickle_file_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "evil.safetensors"

    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("unpickled!",))

    torch.save({"w": torch.zeros(2), "x": Boom()}, path)
    with pytest.raises(GraphfemError, match="pickle-based checkpoints") as err:
        graphfem.load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_file_is_refused(ckpt):
    path, _ = ckpt
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(GraphfemError, match="truncated or damaged") as err:
        graphfem.load(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_tampered_weights_are_refused(ckpt):
    path, _ = ckpt
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip bits in the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(GraphfemError, match="checksum mismatch"):
        graphfem.load(path)


def _rewrite_metadata(path, edit):
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = json.loads(header["__metadata__"]["graphfem"])
    edit(meta)
    header["__metadata__"]["graphfem"] = json.dumps(meta)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + data[8 + n:])


def test_edited_metadata_is_refused(ckpt):
    """The digest covers the JSON header: one digit of the normalisation edited is refused."""
    path, _ = ckpt
    _rewrite_metadata(path, lambda m: m["normalisation"].update(y_std=[1.5]))
    with pytest.raises(GraphfemError, match="checksum mismatch: the weights or the metadata") as err:
        graphfem.load(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_format_1_files_are_read_with_their_tensor_digest(ckpt, tmp_path):
    """Checkpoints written before the digest covered the header still load."""
    from safetensors.torch import save_file

    from graphfem.checkpoint import FORMAT_1, tensor_digest

    path, model = ckpt
    tensors, meta = read_tensors(path)
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata={"graphfem": json.dumps({**meta, "format": FORMAT_1}),
                                           "sha256": tensor_digest(tensors)})
    assert graphfem.load(old).meta["format"] == FORMAT_1


def test_unregistered_model_name_is_refused(ckpt):
    from graphfem.checkpoint import save_tensors

    path, _ = ckpt
    tensors, meta = read_tensors(path)
    save_tensors(path, tensors, {**meta, "model": "not_a_model"})  # an intact file naming an unknown model
    with pytest.raises(GraphfemError, match="unknown model 'not_a_model'") as err:
        graphfem.load(path)
    assert str(path) in str(err.value)


def test_a_config_that_does_not_fit_the_weights_is_refused_before_allocating(ckpt):
    """latent 30000 would allocate gigabytes: the model is sized on the meta device first."""
    import resource

    from graphfem.checkpoint import save_tensors

    path, _ = ckpt
    tensors, meta = read_tensors(path)
    save_tensors(path, tensors, {**meta, "config": {**meta["config"], "latent": 30000}})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(GraphfemError, match="config and weights do not belong together") as err:
        graphfem.load(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing near 4 GiB


def test_import_graphfem_stays_light():
    import subprocess
    import sys

    code = "import sys, graphfem; print('torch' in sys.modules, 'skfem' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_checkpoint_with_other_node_features_is_refused(tmp_path):
    """A checkpoint trained with another feature encoding would predict garbage silently."""
    from graphfem.checkpoint import load, save_tensors
    from graphfem.demo import DEMO_MODEL, DEMO_OPTIONS, data_file

    tensors, meta = read_tensors(data_file(DEMO_MODEL))
    meta["problem"] = {**meta["problem"], "features": ["E", "something_else"]}
    meta.pop("format", None)
    meta.pop("validity", None)  # a checkpoint from before the training ranges were kept
    path = tmp_path / "old.safetensors"
    save_tensors(path, tensors, meta)
    with pytest.raises(GraphfemError, match="encodes node features"):
        load(path).predict(Mesh.rectangle(4, 2, 0.0, 2.0, 0.0, 1.0), **DEMO_OPTIONS)
