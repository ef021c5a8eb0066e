"""Problem options shared by ``graphfem solve`` and ``graphfem predict``.

A coefficient given on the command line is one of
* a number: ``--kappa 2.5``;
* the name of a point or cell field stored in the mesh file: ``--kappa conductivity``;
* an expression in the coordinates x, y, z with numpy functions:
  ``--source "sin(pi*x)*sin(pi*y)"``.
Boundary conditions are ``TAG=VALUE`` pairs, VALUE being a number or an
expression; vectors are comma-separated: ``--traction right=0,-1``, and a
vector field is one number or expression per component:
``--velocity "-(y-0.5),x-0.5"``. TAG is a tag of the mesh, ``boundary``
(every boundary facet, on any mesh) or a condition on the coordinates that
selects boundary facets: ``--dirichlet "x<1e-9"=0``,
``--fix "isclose(y, 0)"`` (see :mod:`graphfem.meshes.selection`).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from graphfem.meshes import Mesh
from graphfem.meshes.errors import InputError, OptionValueError

if TYPE_CHECKING:
    from .problem import Features, Option

_NAMESPACE = {name: getattr(np, name) for name in (
    "sin", "cos", "tan", "exp", "log", "sqrt", "abs", "tanh", "sinh", "cosh", "arctan", "arctan2", "where",
    "minimum", "maximum", "hypot")}
_NAMESPACE.update(pi=math.pi, e=math.e)


def expression(text: str, option: str) -> Callable[[np.ndarray], np.ndarray]:
    """A callable f(x) of coordinates x (dim, ...) from an expression in x, y, z."""
    try:
        code = compile(text, f"<{option}>", "eval")
    except SyntaxError:
        raise OptionValueError(f"{option}: cannot parse {text!r} (a number, a mesh field or an expression in x, y, z)")
    unknown = set(code.co_names) - set(_NAMESPACE) - {"x", "y", "z"}
    if unknown:
        raise OptionValueError(f"{option}: unknown name(s) {', '.join(sorted(unknown))} in {text!r}")

    def evaluate(x: np.ndarray) -> np.ndarray:
        coords = {"x": x[0], "y": x[1] if len(x) > 1 else 0.0 * x[0], "z": x[2] if len(x) > 2 else 0.0 * x[0]}
        value = eval(code, {"__builtins__": {}}, {**_NAMESPACE, **coords})  # noqa: S307 - user's own CLI input
        return np.broadcast_to(np.asarray(value, dtype=float), np.shape(x[0])).copy()

    return evaluate


def coefficient(text: str | None, mesh: Mesh, option: str, default: float):
    """A number, a mesh field (point or cell array) or a callable, from ``text``."""
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise InputError(f"{option}: {text!r} is not a finite number")
        return value
    if text in mesh.point_data:
        return np.asarray(mesh.point_data[text], dtype=float)
    if text in mesh.cell_data:
        return np.asarray(mesh.cell_data[text], dtype=float)
    return expression(text, option)


def field_value(value, mesh: Mesh, option: str):
    """A Python coefficient value checked against ``mesh``: a finite number, a
    callable of x (dim, ...), or a finite point (n_points,) or cell (n_cells,) array."""
    if callable(value):
        return value
    if isinstance(value, str):
        return coefficient(value, mesh, option, 0.0)
    arr = np.asarray(value, dtype=float)
    if not np.isfinite(arr).all():
        raise InputError(f"{option}: holds NaN or infinite values", mesh.source)
    if arr.ndim == 0:
        return float(arr)
    if arr.shape[0] not in (mesh.n_points, mesh.n_cells):
        raise InputError(f"{option}: {arr.shape[0]} values fit neither the {mesh.n_points} nodes nor the "
                         f"{mesh.n_cells} cells of the mesh", mesh.source)
    return arr


def number(value, option: str) -> float:
    """A finite float from a number or a string."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise OptionValueError(f"{option}: expected a number, got {value!r}") from None
    if not math.isfinite(out):
        raise InputError(f"{option}: {value!r} is not a finite number")
    return out


def integer(value, option: str) -> int:
    """An int from an integer or a string holding one."""
    try:
        out = int(str(value).strip()) if not isinstance(value, (int, np.integer)) else int(value)
    except ValueError:
        raise OptionValueError(f"{option}: expected a whole number, got {value!r}") from None
    return out


def tag_values(pairs, option: str, mesh: Mesh, components: int | None = None) -> dict:
    """``["left=1", "top=sin(pi*x)"]`` (or a mapping {tag: value}) ->
    ``{"left": 1.0, "top": f}``; with ``components``, values are vectors
    ``"0,-1"`` -> array (components,). Tags are checked against the mesh
    (one line naming the known tags)."""
    if isinstance(pairs, str):
        pairs = [pairs]
    items = []
    if hasattr(pairs, "items"):
        items = [(str(t), v) for t, v in pairs.items()]
    else:
        for pair in pairs:
            tag, value = split_pair(str(pair))
            if not tag or not value:
                raise OptionValueError(f"{option}: expected TAG=VALUE, got {pair!r}")
            items.append((tag, value))
    out = {}
    for tag, value in items:
        mesh.tag(tag)
        if components is None:
            out[tag] = field_value(value, mesh, f"{option} {tag}")
            continue
        parts = value.split(",") if isinstance(value, str) else list(np.ravel(value))
        if len(parts) != components:
            raise OptionValueError(f"{option}: {tag} needs {components} comma-separated components, got {value!r}")
        try:
            out[tag] = np.array([float(p) for p in parts])
        except (TypeError, ValueError):
            raise OptionValueError(f"{option}: components of {tag} must be numbers, got {value!r}") from None
        if not np.isfinite(out[tag]).all():
            raise InputError(f"{option}: {tag} has non-finite components")
    return out


def split_pair(text: str) -> tuple[str, str]:
    """``"left=1"`` -> ``("left", "1")``, splitting at the first ``=`` that is
    not part of a comparison, so a TAG may be a condition:
    ``"x<=0.5=sin(y)"`` -> ``("x<=0.5", "sin(y)")``. ``("", "")`` without one."""
    for i, ch in enumerate(text):
        if ch == "=" and (i == 0 or text[i - 1] not in "<>=!") and text[i + 1:i + 2] != "=":
            return text[:i].strip(), text[i + 1:].strip()
    return "", ""


def vector(text: str | None, components: int, option: str) -> np.ndarray | None:
    """``"0,-9.81"`` -> array (components,)."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        values = np.array([float(p) for p in parts])
    except ValueError:
        raise OptionValueError(f"{option}: expected {components} comma-separated numbers, got {text!r}") from None
    if len(values) != components or not np.isfinite(values).all():
        raise OptionValueError(f"{option}: expected {components} finite comma-separated numbers, got {text!r}")
    return values


def split_top_level(text: str) -> list[str]:
    """Split at commas outside parentheses: ``"maximum(x,0),y"`` -> ``["maximum(x,0)", "y"]``."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + [current]


def vector_field(value: Any, mesh: Mesh, option: "Option | str"):
    """A vector field b(x) with one component per space dimension.

    ``"1,0.5"`` (numbers) gives an array (dim,); comma-separated expressions in
    x, y, z (``"-(y-0.5),x-0.5"``, commas inside parentheses kept) give a
    callable b(x), x (dim, ...) -> (dim, ...). Python values are a callable,
    or a sequence of dim numbers or expression strings. Mesh fields are
    refused. ``option`` is the :class:`~graphfem.physics.problem.Option` (or
    its flag) that errors name, so this is an ``Option.parse``.
    """
    flag = option if isinstance(option, str) else option.cli_flag
    if callable(value):
        return value
    parts = split_top_level(value) if isinstance(value, str) else list(np.ravel(np.asarray(value, dtype=object)))
    if len(parts) != mesh.dim or any(isinstance(p, str) and not p.strip() for p in parts):
        raise OptionValueError(f"{flag}: expected {mesh.dim} comma-separated components, got {value!r}")
    comps = [coefficient(p.strip(), mesh, f"{flag} component {i + 1}", 0.0) if isinstance(p, str)
             else number(p, f"{flag} component {i + 1}") for i, p in enumerate(parts)]
    if any(isinstance(c, np.ndarray) for c in comps):
        raise OptionValueError(f"{flag}: components must be numbers or expressions, not mesh fields")
    if not any(callable(c) for c in comps):
        return np.array(comps)

    def field(x: np.ndarray) -> np.ndarray:
        return np.stack([np.broadcast_to(c(x) if callable(c) else c, np.shape(x[0])) for c in comps])

    return field


def replace_columns(features: "Features", option: str, columns: Mapping[str, np.ndarray]) -> "Features":
    """``features`` with the columns of ``option`` (named ``option``,
    ``option[k]`` or ``option:...``) replaced, in place, by ``columns``: name ->
    (n,) or (n, c) values (c > 1 named ``name[k]``). For options whose values
    the generic encoding of :meth:`~graphfem.physics.problem.Problem.features`
    cannot hold: encode the rest generically, then swap these columns in."""
    from dataclasses import replace

    mine = [i for i, name in enumerate(features.names)
            if name == option or name.startswith((option + "[", option + ":"))]
    if not mine:
        raise ValueError(f"the features have no columns of option {option!r}")
    n = features.x.shape[0]
    names, values = [], []
    for name, value in columns.items():
        value = np.asarray(value, dtype=float).reshape(n, -1)
        names += [name] if value.shape[1] == 1 else [f"{name}[{k}]" for k in range(value.shape[1])]
        values.append(value)
    keep = [i for i in range(len(features.names)) if i not in mine]
    at = mine[0]
    before, after = [i for i in keep if i < at], [i for i in keep if i > at]
    x = np.concatenate([features.x[:, before], *values, features.x[:, after]], axis=1)
    names = [features.names[i] for i in before] + names + [features.names[i] for i in after]
    return replace(features, x=x, names=names)


def poisson_options(mesh: Mesh, kappa: str | None = None, source: str | None = None,
                    dirichlet: Sequence[str] = (), neumann: Sequence[str] = (),
                    robin: Sequence[str] = ()) -> dict:
    """Keyword arguments of :func:`graphfem.physics.poisson` from CLI strings.

    Robin pairs are ``TAG=ALPHA,G``.
    """
    robin_bc = {}
    for tag, values in tag_values(robin, "--robin", mesh, components=2).items():
        robin_bc[tag] = (float(values[0]), float(values[1]))
    return {
        "kappa": coefficient(kappa, mesh, "--kappa", 1.0),
        "f": coefficient(source, mesh, "--source", 1.0),
        "dirichlet": tag_values(dirichlet, "--dirichlet", mesh) or None,
        "neumann": tag_values(neumann, "--neumann", mesh) or None,
        "robin": robin_bc or None,
    }
