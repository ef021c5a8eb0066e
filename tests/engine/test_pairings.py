"""Every pairing answered: for every data set ``graphfem generate`` offers and
every registered model, ``graphfem train`` either sets the model up on it or
refuses in one line that names the models that can train on it."""
from __future__ import annotations

import pytest
import torch

from graphfem.datasets.generate import generate, problems
from graphfem.families import families, families_for
from graphfem.meshes.errors import InputError
from graphfem.training.config import TrainConfig, from_dict
from graphfem.training.trainer import Trainer

torch.set_num_threads(1)

#: the smallest settings of each data set that still make a valid one
SMALL = {"darcy-two-phase": {"resolution": 4}, "darcy-smooth": {"resolution": 4}, "cavity": {"resolution": 4},
         "cylinder-flow": {"resolution": 16}, "burgers": {"resolution": 16}, "mpm": {"material": "jelly"}}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairings")
    out = {}
    for name in problems():
        path = folder / f"{name}.h5"
        generate(name, 3, path, seed=1, progress=False, **SMALL.get(name, {}))
        out[name] = path
    return out


#: models trained on the checkpoint of an earlier stage: set up without it, they refuse in one line naming the key
NEEDS = {"text2pde-ldm": "model.autoencoder"}


def _models() -> list[str]:
    return sorted(m for f in families().values() for m in f.models)


@pytest.mark.parametrize("data_name", problems())
def test_train_works_or_refuses_in_one_line(data_name, datasets, tmp_path):
    from graphfem.datasets.simulations import SimulationData

    able = families_for(SimulationData(datasets[data_name]))
    for model in _models():
        config = from_dict(TrainConfig, {"model": {"name": model}, "data": {"path": str(datasets[data_name])},
                                         "optim": {"epochs": 1},
                                         "run": {"out": str(tmp_path / model), "progress": False, "threads": 1}})
        if model in able and model in NEEDS:
            with pytest.raises(InputError, match=NEEDS[model]) as err:
                Trainer(config)
            assert "\n" not in str(err.value) and not (tmp_path / model).exists()
            continue
        if model in able:
            Trainer(config)  # sizes the model from the data: no error
            continue
        with pytest.raises(InputError) as err:
            Trainer(config)
        message = str(err.value)
        assert "\n" not in message and f"{model} cannot train on" in message
        assert (", ".join(able) in message) if able else "no registered model family" in message
        assert not (tmp_path / model).exists()  # no run folder left behind
