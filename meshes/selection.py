"""Boundary facets selected by a condition on the coordinates, the way
FEniCS users mark them with ``locate_entities_boundary``.

Wherever a facet tag is asked for (``--dirichlet "x<1e-9"=0``,
``mesh.tag("abs(y-1)<1e-6 & (x>0.5)")``), a name that is no tag of the mesh
but a condition in x, y, z selects every boundary facet whose corner nodes
all satisfy it; ``boundary`` selects every boundary facet. The condition is
evaluated by walking its syntax tree over a fixed set of operators and numpy
functions, never by ``eval``: names other than the coordinates, ``pi``, ``e``
and the listed functions, attributes, subscripts, lambdas and the like are
refused.
"""
from __future__ import annotations

import ast
from typing import Callable

import numpy as np

from .errors import MeshError

_FUNCTIONS: dict[str, Callable] = {
    "abs": np.abs, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos, "tan": np.tan, "exp": np.exp, "log": np.log,
    "arctan2": np.arctan2, "hypot": np.hypot, "minimum": np.minimum, "maximum": np.maximum,
    "isclose": lambda a, b, atol=1e-9: np.isclose(a, b, rtol=0.0, atol=atol),
}
#: positional arguments of each function
_ARITY = {name: 2 if name in ("arctan2", "hypot", "minimum", "maximum", "isclose") else 1 for name in _FUNCTIONS}
_CONSTANTS = {"pi": np.pi, "e": np.e}
_BINARY = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide, ast.Pow: np.power,
           ast.Mod: np.mod, ast.BitAnd: np.logical_and, ast.BitOr: np.logical_or}
_UNARY = {ast.USub: np.negative, ast.UAdd: np.positive, ast.Not: np.logical_not, ast.Invert: np.logical_not}
_COMPARE = {ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal,
            ast.Eq: np.equal, ast.NotEq: np.not_equal}
_AXES = ("x", "y", "z")
_MAX_LENGTH = 500


def is_condition(text: str) -> bool:
    """Whether ``text`` is meant as a coordinate condition rather than a tag
    name: it holds a comparison operator or calls ``isclose`` (it may still be
    refused by :func:`condition`)."""
    if any(op in text for op in ("<", ">", "==", "!=")):
        return True
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isclose"
               for node in ast.walk(tree))


def condition(text: str, dim: int, source=None) -> Callable[[np.ndarray], np.ndarray]:
    """The condition ``text`` as a function of points (k, dim) -> bool (k,).

    Raises:
        MeshError: ``text`` is not a condition in the coordinates of a ``dim``-D
            mesh built from the allowed operators and functions (one line).
    """
    if len(text) > _MAX_LENGTH:
        raise MeshError(f"coordinate condition longer than {_MAX_LENGTH} characters", source)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise MeshError(f"cannot parse the coordinate condition {text!r}", source) from None
    _check(tree.body, text, dim, source)

    def select(points: np.ndarray) -> np.ndarray:
        coords = {axis: points[:, k] for k, axis in enumerate(_AXES[:dim])}
        try:
            with np.errstate(all="ignore"):
                value = np.asarray(_evaluate(tree.body, coords))
        except (TypeError, ValueError) as exc:  # wrong argument counts or shapes
            raise MeshError(f"cannot evaluate the coordinate condition {text!r}: {' '.join(str(exc).split())}",
                            source) from None
        if value.dtype != bool:
            raise MeshError(f"{text!r} is a number, not a condition: compare with <, >, == or isclose(a, b)",
                            source)
        return np.broadcast_to(value, (len(points),)).copy()

    return select


def _check(node: ast.AST, text: str, dim: int, source) -> None:
    """Refuse anything but the whitelisted syntax (one line naming it)."""
    called = {id(sub.func) for sub in ast.walk(node) if isinstance(sub, ast.Call)}
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            if (sub.id in _FUNCTIONS) != (id(sub) in called):
                raise MeshError(f"{text!r}: {sub.id!r} is used as a {'value' if sub.id in _FUNCTIONS else 'function'}",
                                source)
            if sub.id in _AXES[dim:]:
                raise MeshError(f"{text!r}: {sub.id} is not a coordinate of a {dim}D mesh", source)
            if sub.id not in _AXES and sub.id not in _CONSTANTS and sub.id not in _FUNCTIONS:
                raise MeshError(f"{text!r}: unknown name {sub.id!r} (use x, y, z, pi, e and "
                                f"{', '.join(sorted(_FUNCTIONS))})", source)
        elif isinstance(sub, ast.Call):
            if not isinstance(sub.func, ast.Name) or sub.func.id not in _FUNCTIONS:
                raise MeshError(f"{text!r}: only calls of {', '.join(sorted(_FUNCTIONS))} are allowed", source)
            name = sub.func.id
            if len(sub.args) != _ARITY[name] or any(isinstance(a, ast.Starred) for a in sub.args) or any(
                    k.arg != "atol" or name != "isclose" for k in sub.keywords):
                raise MeshError(f"{text!r}: {name} takes {_ARITY[name]} argument(s)"
                                + (" and atol=" if name == "isclose" else ""), source)
        elif isinstance(sub, ast.Constant):
            if not isinstance(sub.value, (int, float)) or isinstance(sub.value, bool):
                raise MeshError(f"{text!r}: only numbers may appear as constants", source)
        elif isinstance(sub, ast.BinOp):
            if type(sub.op) not in _BINARY:
                raise MeshError(f"{text!r}: operator {type(sub.op).__name__} is not allowed", source)
        elif isinstance(sub, ast.UnaryOp):
            if type(sub.op) not in _UNARY:
                raise MeshError(f"{text!r}: operator {type(sub.op).__name__} is not allowed", source)
        elif isinstance(sub, ast.Compare):
            if any(type(op) not in _COMPARE for op in sub.ops):
                raise MeshError(f"{text!r}: comparison {type(sub.ops[0]).__name__} is not allowed", source)
        elif not isinstance(sub, (ast.BoolOp, ast.And, ast.Or, ast.Load, ast.keyword, *_BINARY, *_UNARY,
                                  *_COMPARE)):
            raise MeshError(f"{text!r}: {type(sub).__name__} is not allowed in a coordinate condition", source)


def _evaluate(node: ast.AST, coords: dict[str, np.ndarray]):
    """The value of a checked syntax tree on the coordinates (numpy throughout)."""
    if isinstance(node, ast.Constant):
        return np.float64(node.value)
    if isinstance(node, ast.Name):
        return coords[node.id] if node.id in coords else _CONSTANTS[node.id]
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, coords), _evaluate(node.right, coords)
        if isinstance(node.op, (ast.BitAnd, ast.BitOr)) and not (_is_bool(left) and _is_bool(right)):
            raise TypeError("& and | join conditions; put each comparison in parentheses: (a < b) & (c < d)")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, coords)
        if isinstance(node.op, (ast.Not, ast.Invert)) and not _is_bool(operand):
            raise TypeError("not and ~ negate a condition, not a number")
        return _UNARY[type(node.op)](operand)
    if isinstance(node, ast.BoolOp):
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        values = [_evaluate(v, coords) for v in node.values]
        out = values[0]
        for v in values[1:]:
            out = combine(out, v)
        return out
    if isinstance(node, ast.Compare):
        left, out = _evaluate(node.left, coords), True
        for op, right_node in zip(node.ops, node.comparators):
            right = _evaluate(right_node, coords)
            out = np.logical_and(out, _COMPARE[type(op)](left, right))
            left = right
        return out
    if isinstance(node, ast.Call):
        kwargs = {k.arg: _evaluate(k.value, coords) for k in node.keywords}
        return _FUNCTIONS[node.func.id](*(_evaluate(a, coords) for a in node.args), **kwargs)
    raise AssertionError(type(node).__name__)  # _check admits nothing else


def _is_bool(value) -> bool:
    return np.asarray(value).dtype == bool


def derived_tag(mesh, name: str):
    """The facet tag that ``name`` selects on ``mesh`` when it is no tag of it:
    ``boundary`` (every boundary facet) or a coordinate condition (the
    boundary facets whose corners all satisfy it); ``None`` otherwise."""
    from .mesh import Tag

    if name != "boundary" and not is_condition(name):
        return None
    facets = mesh.boundary_facets()
    if name == "boundary":
        return Tag(name, "facet", facets)
    select = condition(name, mesh.dim, mesh.source)
    corners = mesh.points[facets]  # (b, c, dim)
    keep = select(corners.reshape(-1, mesh.dim)).reshape(corners.shape[:2]).all(axis=1)
    if not keep.any():
        raise MeshError(f"the condition {name!r} selects no boundary facet (a facet is selected when all its "
                        f"corners satisfy it; the mesh spans {_extent(mesh)})", mesh.source)
    return Tag(name, "facet", facets[keep])


def _extent(mesh) -> str:
    lo, hi = mesh.bounding_box
    return " x ".join(f"{a}=[{lo[k]:.6g}, {hi[k]:.6g}]" for k, a in enumerate(_AXES[:mesh.dim]))
