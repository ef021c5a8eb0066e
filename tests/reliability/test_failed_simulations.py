"""``graphfem generate`` when some simulations fail: they are skipped with a warning each and named
in the file (attribute ``failed``), the others keep their own indices and equal an unbroken run's,
``--resume`` does not redo a failure, and too many failures stop the run in one line with no file."""
from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

import graphfem.datasets.generate as generate_module
from graphfem.datasets.generate import generate
from graphfem.datasets.writer import parts_folder
from graphfem.meshes.errors import GraphfemError

N = 20
FAILING = {3, 11}
REAL = generate_module.simulate


@pytest.fixture()
def failing(monkeypatch):
    """Simulations FAILING raise the solver's error (the others run as usual); returns the indices run."""
    ran = []

    def simulate(*args):
        ran.append(args[-1])
        if args[-1] in FAILING:
            raise GraphfemError(f"Newton did not converge (sample {args[-1]})")
        return REAL(*args)

    monkeypatch.setattr(generate_module, "simulate", simulate)
    return ran


def test_failed_simulations_are_skipped_and_named(tmp_path, failing, monkeypatch):
    out = tmp_path / "p.h5"
    with pytest.warns(UserWarning, match="failed and is skipped") as caught:
        generate("poisson", N, out, seed=4, progress=False)
    assert [str(w.message).split("simulation ")[1].split()[0] for w in caught] == ["3", "11"]
    monkeypatch.setattr(generate_module, "simulate", REAL)
    whole = tmp_path / "whole.h5"
    generate("poisson", N, whole, seed=4, progress=False)  # an unbroken run: the others are its samples
    with h5py.File(out, "r") as h5, h5py.File(whole, "r") as ref:
        assert len(ref) == N and "failed" not in ref.attrs
        assert h5.attrs["count"] == N - len(FAILING)
        assert {int(k) for k in json.loads(h5.attrs["failed"])} == FAILING
        assert sorted(h5) == sorted(k for k in ref if int(k[4:]) not in FAILING)
        for name in h5:
            np.testing.assert_array_equal(h5[name]["outputs/u"][()], ref[name]["outputs/u"][()])
    assert not parts_folder(out).exists()


def test_resume_does_not_redo_a_failure(tmp_path, failing, monkeypatch):
    out = tmp_path / "p.h5"
    failing_simulate = generate_module.simulate

    def stop_at_15(*args):  # Ctrl-C once simulation 15 is reached
        if args[-1] == 15:
            raise KeyboardInterrupt
        return failing_simulate(*args)

    monkeypatch.setattr(generate_module, "simulate", stop_at_15)
    with pytest.warns(UserWarning, match="failed and is skipped"), pytest.raises(GraphfemError, match="--resume"):
        generate("poisson", N, out, seed=4, progress=False)
    assert sorted(p.name for p in parts_folder(out).glob("fail_*.json")) == ["fail_000003.json", "fail_000011.json"]
    monkeypatch.setattr(generate_module, "simulate", failing_simulate)
    failing.clear()
    generate("poisson", N, out, seed=4, progress=False, resume=True)
    assert sorted(failing) == list(range(15, N))  # the kept ones, the failures among them, are not redone
    with h5py.File(out, "r") as h5:
        assert {int(k) for k in json.loads(h5.attrs["failed"])} == FAILING and h5.attrs["count"] == N - 2


def test_too_many_failures_stop_in_one_line_with_no_file(tmp_path):
    """Through the CLI, a real Newton failure: a compressive load the plate cannot carry fails every sample."""
    result = subprocess.run([sys.executable, "-m", "graphfem", "generate", "hyperelastic", "-n", "5", "-o", "bad.h5",
                             "--traction", "right=-1.5,0"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.h5" in lines[0] and "more than 10% of -n 5" in lines[0]
    assert "Newton did not converge" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_failures_kept_by_other_ranks_count_toward_the_limit(tmp_path, failing, monkeypatch):
    """Under torchrun every rank keeps its failures in the one parts folder, and the limit counts them all: a
    failure another rank keeps there while this run goes (simulation 19), and this run's own two (3 and 11),
    are 3 of -n 20, more than 10 %, so the run stops at its second failure, in one line and with no file."""
    out = tmp_path / "p.h5"
    failing_simulate = generate_module.simulate

    def beside_another_rank(*args):
        if args[-1] == 5:
            (parts_folder(out) / "fail_000019.json").write_text(json.dumps({"index": 19, "reason": "elsewhere"}))
        return failing_simulate(*args)

    monkeypatch.setattr(generate_module, "simulate", beside_another_rank)
    with pytest.warns(UserWarning, match="failed and is skipped"), \
            pytest.raises(GraphfemError, match=r"3 simulations failed, more than 10% of -n 20 \(the last, simulation 11"):
        generate("poisson", N, out, seed=4, progress=False)
    assert not out.exists() and not parts_folder(out).exists()
