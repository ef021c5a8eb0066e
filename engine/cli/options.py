"""Command-line flags from a problem's :class:`~graphfem.physics.problem.Option` specs.

``graphfem solve PROBLEM``, ``graphfem generate PROBLEM`` and
``graphfem predict MODEL`` all read a problem's options through these two
functions, so the three commands share one vocabulary by construction.
Values stay strings here; :meth:`graphfem.physics.Problem.parse` turns them
into numbers, fields and expressions against the mesh.
"""
from __future__ import annotations

from typing import Any, Sequence

import click

from graphfem.meshes.errors import OptionValueError


def click_params(problem, roles: Sequence[str] = ("input", "setting", "time")) -> list[click.Option]:
    """One click option per problem option of the given roles."""
    params = []
    for opt in problem.options:
        if opt.role not in roles:
            continue
        help_text = opt.help + (" (required)" if opt.required else "")
        if opt.kind == "flag":
            flags = opt.cli_flag if "/" in opt.cli_flag else f"{opt.cli_flag}/--no-{opt.cli_flag[2:]}"
            params.append(click.Option([flags, opt.name], default=None, help=help_text))
        elif opt.repeatable:
            params.append(click.Option([opt.cli_flag, opt.name], multiple=True, help=help_text))
        else:
            params.append(click.Option([opt.cli_flag, opt.name], default=None, metavar=opt.kind.upper(),
                                       help=help_text))
        for alias in opt.aliases:  # a deprecated flag: read, and warned about by Problem.canonical
            params.append(click.Option([f"--{alias.replace('_', '-')}", alias], default=None, hidden=True,
                                       multiple=opt.repeatable))
    return params


def parse_args(problem, args: Sequence[str], command: str, roles: Sequence[str] = ("input", "setting", "time")
               ) -> dict[str, Any]:
    """Raw option values (strings, lists of strings, booleans) from the extra
    command-line words ``args``; unknown flags are one line listing the known ones."""
    parser = click.Command(command, params=click_params(problem, roles), add_help_option=False)
    try:
        with parser.make_context(command, list(args), resilient_parsing=False) as ctx:
            values = dict(ctx.params)
    except click.UsageError as exc:
        known = ", ".join(o.cli_flag for o in problem.options if o.role in roles and o.role != "setting")
        raise OptionValueError(f"{exc.format_message().rstrip('.')}; {command} takes {known}") from None
    return problem.canonical({k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()
                              if v is not None and v != ()}, warn=True)


__all__ = ["click_params", "parse_args"]
