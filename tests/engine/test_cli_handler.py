"""The CLI's error handler itself: an unexpected exception, Ctrl-C and a closed pipe each end cleanly."""
import subprocess
import sys

import pytest

from graphfem import cli

@pytest.mark.parametrize("error, code, text", [
    (RuntimeError("boom"), 1, "graphfem: error: unexpected RuntimeError: boom (run with --debug"),
    (KeyboardInterrupt(), 130, ""),
    (MemoryError(), 1, "graphfem: error: out of memory"),
])
def test_unexpected_errors_are_one_line(monkeypatch, capsys, shared_meshes, error, code, text):
    import graphfem.cli as module

    def explode(path):
        raise error

    monkeypatch.setattr(module, "mesh_summary", explode)
    assert cli.main(["info", str(shared_meshes / "skfem_square.msh")]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith(text) and len(err.splitlines()) <= 1 and "Traceback" not in err


def test_debug_shows_the_traceback(monkeypatch, shared_meshes):
    import graphfem.cli as module

    monkeypatch.setattr(module, "mesh_summary", lambda path: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        cli.main(["--debug", "info", str(shared_meshes / "skfem_square.msh")])


def test_a_closed_pipe_is_quiet(shared_meshes):
    """``graphfem info mesh --json | head -c 1``: the reader leaves early."""
    proc = subprocess.Popen([sys.executable, "-m", "graphfem", "info", str(shared_meshes / "skfem_annulus.msh"), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(1)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "AttributeError" not in err
