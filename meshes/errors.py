"""Errors that name the file and the problem in one line.

Every error a user can cause (bad file, bad option, bad value) derives from
:class:`GraphfemError`; the CLI prints ``str(error)`` on one line and exits
non-zero. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

from pathlib import Path


class GraphfemError(Exception):
    """A user-facing error: ``"<source>: <problem>"`` on one line."""

    def __init__(self, problem: str, source: str | Path | None = None):
        self.problem = " ".join(str(problem).split())
        self.source = None if source is None else str(source)
        super().__init__(self.problem if self.source is None else f"{self.source}: {self.problem}")

    def with_source(self, source: str | Path) -> "GraphfemError":
        """The same error, attributed to ``source`` when it has none yet."""
        if self.source is not None:
            return self
        return type(self)(self.problem, source)


class MeshError(GraphfemError):
    """An invalid mesh: bad coordinates, connectivity or tags."""


class InputError(GraphfemError):
    """A wrong option or value given by the user."""


class OptionValueError(InputError):
    """An option value of the wrong form: not a number, not ``TAG=VALUE``, not one of the listed words, an
    expression that does not parse, or a flag the command does not have. A wrong command line, like a
    malformed typed option: the CLI exits 2 (1 is for bad input: files, tags, values out of range)."""
