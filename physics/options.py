"""Problem options shared by ``graphfem solve`` and ``graphfem predict``.

A coefficient given on the command line is one of
* a number: ``--kappa 2.5``;
* the name of a point or cell field stored in the mesh file: ``--kappa conductivity``;
* an expression in the coordinates x, y, z with numpy functions:
  ``--source "sin(pi*x)*sin(pi*y)"``.
Boundary conditions are ``TAG=VALUE`` pairs, VALUE being a number or an
expression; vectors are comma-separated: ``--traction right=0,-1``.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from graphfem.meshes import Mesh
from graphfem.meshes.errors import InputError

_NAMESPACE = {name: getattr(np, name) for name in (
    "sin", "cos", "tan", "exp", "log", "sqrt", "abs", "tanh", "sinh", "cosh", "arctan", "arctan2", "where",
    "minimum", "maximum", "hypot")}
_NAMESPACE.update(pi=math.pi, e=math.e)


def expression(text: str, option: str) -> Callable[[np.ndarray], np.ndarray]:
    """A callable f(x) of coordinates x (dim, ...) from an expression in x, y, z."""
    try:
        code = compile(text, f"<{option}>", "eval")
    except SyntaxError:
        raise InputError(f"{option}: cannot parse {text!r} (a number, a mesh field or an expression in x, y, z)")
    unknown = set(code.co_names) - set(_NAMESPACE) - {"x", "y", "z"}
    if unknown:
        raise InputError(f"{option}: unknown name(s) {', '.join(sorted(unknown))} in {text!r}")

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
        raise InputError(f"{option}: expected a number, got {value!r}") from None
    if not math.isfinite(out):
        raise InputError(f"{option}: {value!r} is not a finite number")
    return out


def integer(value, option: str) -> int:
    """An int from an integer or a string holding one."""
    try:
        out = int(str(value).strip()) if not isinstance(value, (int, np.integer)) else int(value)
    except ValueError:
        raise InputError(f"{option}: expected a whole number, got {value!r}") from None
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
            tag, sep, value = str(pair).partition("=")
            tag, value = tag.strip(), value.strip()
            if not sep or not tag or not value:
                raise InputError(f"{option}: expected TAG=VALUE, got {pair!r}")
            items.append((tag, value))
    out = {}
    for tag, value in items:
        mesh.tag(tag)
        if components is None:
            out[tag] = field_value(value, mesh, f"{option} {tag}")
            continue
        parts = value.split(",") if isinstance(value, str) else list(np.ravel(value))
        if len(parts) != components:
            raise InputError(f"{option}: {tag} needs {components} comma-separated components, got {value!r}")
        try:
            out[tag] = np.array([float(p) for p in parts])
        except (TypeError, ValueError):
            raise InputError(f"{option}: components of {tag} must be numbers, got {value!r}") from None
        if not np.isfinite(out[tag]).all():
            raise InputError(f"{option}: {tag} has non-finite components")
    return out


def vector(text: str | None, components: int, option: str) -> np.ndarray | None:
    """``"0,-9.81"`` -> array (components,)."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        values = np.array([float(p) for p in parts])
    except ValueError:
        raise InputError(f"{option}: expected {components} comma-separated numbers, got {text!r}") from None
    if len(values) != components or not np.isfinite(values).all():
        raise InputError(f"{option}: expected {components} finite comma-separated numbers, got {text!r}")
    return values


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
