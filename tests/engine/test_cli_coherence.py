"""One vocabulary across the command line (issue 18): regressions of what a user met.

Each test drives ``graphfem`` in process on a mesh of its own and checks the
exit code, the one line on stderr and the files written.
"""
from __future__ import annotations

from pathlib import Path

from graphfem.cli import main
from graphfem.meshes.io import ALLOW_OUTSIDE_ENV


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _deck(folder: Path) -> Path:
    """A one-triangle Abaqus deck in ``folder/job`` whose nodes come from ``folder/nodes.inp`` (outside it)."""
    (folder / "job").mkdir()
    (folder / "nodes.inp").write_text("*Node\n1, 0, 0\n2, 2, 0\n3, 0, 2\n")
    deck = folder / "job" / "deck.inp"
    deck.write_text("*Heading\n*Include, input=../nodes.inp\n*Element, type=CPS3, elset=ALL\n1, 1, 2, 3\n")
    return deck


def test_allow_outside_includes_is_one_global_option(tmp_path, capsys, monkeypatch):
    """An *INCLUDE leaving the deck's folder is refused in one line naming the flag; the flag, placed before
    or after the command, lets every mesh-reading command follow it."""
    monkeypatch.setenv(ALLOW_OUTSIDE_ENV, "0")  # restored after the test (the flag sets it)
    deck = _deck(tmp_path)
    code, out, err = _cli(capsys, "solve", "poisson", deck, "-o", tmp_path / "u.vtu")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "leaves the deck's folder" in err and "--allow-outside-includes" in err
    assert not (tmp_path / "u.vtu").exists()
    code, out, _ = _cli(capsys, "solve", "poisson", deck, "-o", tmp_path / "u.vtu", "--allow-outside-includes")
    assert code == 0 and (tmp_path / "u.vtu").exists()
    monkeypatch.setenv(ALLOW_OUTSIDE_ENV, "0")
    code, out, _ = _cli(capsys, "--allow-outside-includes", "info", deck)
    assert code == 0 and "3 nodes" in out


def test_generate_announces_a_long_run_once_it_is_sized(tmp_path, capfd, monkeypatch):
    """After the first simulations (past each worker's first, which pays the imports) generate says how long
    and how large the rest will be, once, when that is long; a short run says nothing."""
    from graphfem.datasets import writer
    from graphfem.datasets.generate import generate

    monkeypatch.setattr(writer, "ANNOUNCE_AFTER_S", 1e9)
    generate("heat", 4, tmp_path / "short.h5", progress=True)
    assert "left of this run" not in capfd.readouterr().err
    monkeypatch.setattr(writer, "ANNOUNCE_AFTER_S", 0.0)
    generate("heat", 5, tmp_path / "long.h5", progress=True)
    notes = [line for line in capfd.readouterr().err.splitlines() if "left of this run" in line]
    assert len(notes) == 1, notes
    assert notes[0].startswith("graphfem: one simulation every ") and "the 2 left of this run take about" in notes[0]
    assert notes[0].endswith("B")  # the size of the rest
