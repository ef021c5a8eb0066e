"""The README keeps working in a clone.

* Every ``graphfem`` command in its code blocks names a real command, and every option it
  gives is one that command takes (a renamed option fails here, not in a user's shell).
* Every input file a command reads is shipped in the repository or written by an earlier
  README command (``-o``), a generator, or a training run (``runs/...``); no path leaves the
  clone (``../``).
* The quick-start block (the shipped meshes) runs, as written, in a temporary folder.
"""
from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
import typer

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
#: file suffixes of inputs the check follows
INPUTS = (".msh", ".vtu", ".vtk", ".inp", ".exo", ".h5", ".xdmf", ".pvd", ".npz", ".csv", ".yaml", ".safetensors")


def _commands() -> list[list[str]]:
    """The ``graphfem ...`` command lines of the README's code blocks, continuations joined,
    comments and ``[optional]`` / ``A | B`` synopsis lines dropped."""
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip()
            if line.startswith("graphfem ") or line.startswith("OMP_NUM_THREADS=1 graphfem "):
                if any(mark in line for mark in ("[", "|", "...", "MESH", "MODEL", "DATA")):
                    continue  # a synopsis, not a command
                if any(word.endswith(":") for word in line.split()[:3]):
                    continue  # a benchmark's printed header
                lines.append(shlex.split(line.replace("OMP_NUM_THREADS=1 ", "")))
    return lines


def _click_command(words: list[str]):
    """(the click command a command line reaches, the words after its name); typer vendors click,
    so groups are recognised by their ``commands``."""
    from graphfem.cli import app

    command = typer.main.get_command(app)
    rest = words[1:]
    while hasattr(command, "commands") and rest and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    return command, rest


def _option_names(command) -> set[str]:
    names = {"--help"}
    for param in command.params:
        names.update(getattr(param, "opts", []))
        names.update(getattr(param, "secondary_opts", []))
    return names


COMMANDS = _commands()
#: folders the README's example scripts write into (``python examples/X.py [--out] FOLDER``)
EXAMPLE_FOLDERS = {m.rstrip("`") for m in re.findall(r"python examples/\S+\.py (?:--out )?([\w/.-]+)", README)}
#: files the README's shell lines write besides ``-o``: python -c "....write('dfg.msh')", cat > train.yaml
WRITTEN = set(re.findall(r"write\(['\"]([^'\"]+)['\"]\)", README)) | set(re.findall(r"cat > (\S+)", README))


def test_the_readme_has_commands():
    assert len(COMMANDS) > 40


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(w)[:70] for w in COMMANDS])
def test_every_option_exists(words):
    command, rest = _click_command(words)
    assert not hasattr(command, "commands"), f"{' '.join(words)}: no such command"
    known = _option_names(command)
    problem_options = getattr(command, "context_settings", {}).get("allow_extra_args")
    for word in rest:
        if word.startswith("--") and not problem_options:
            assert word.split("=")[0] in known, f"{' '.join(words)}: {word} is not an option of {command.name}"


def test_inputs_exist_or_are_made_first():
    made: set[str] = set(WRITTEN)
    for words in COMMANDS:
        _, rest = _click_command(words)
        outputs = {rest[i + 1] for i, w in enumerate(rest[:-1]) if w in ("-o", "--output")}
        for i, word in enumerate(rest):
            if (not word.endswith(INPUTS) or word in outputs or (i and rest[i - 1] in ("-o", "--output"))
                    or word.startswith("runs/") or "=" in word):
                continue
            assert not word.startswith("../"), f"{' '.join(words)}: {word} lies outside the clone"
            by_example = any(word.startswith(folder.rstrip("/") + "/") for folder in EXAMPLE_FOLDERS)
            assert (REPO / word).exists() or word in made or by_example, \
                f"{' '.join(words)}: {word} is neither shipped nor made"
        made |= outputs


def test_the_quick_start_runs_in_a_clone(tmp_path, capsys):
    from graphfem.cli import main

    quick = [w for w in COMMANDS if any("examples/meshes/skfem_" in x for x in w)
             or (w[:2] == ["graphfem", "render"] and "beams.vtu" in w)]
    assert len(quick) >= 4
    shutil.copytree(REPO / "examples" / "meshes", tmp_path / "examples" / "meshes")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        for words in quick:
            assert main(words[1:]) == 0, (words, capsys.readouterr().err)
    assert (tmp_path / "beams.png").stat().st_size > 10_000
