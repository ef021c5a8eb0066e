"""Abaqus input decks (``.inp``): nodes, elements, node and element sets,
element-based surfaces and ``*INCLUDE``.

meshio's own Abaqus reader knows a fixed list of element names (no CPE4,
CAX4 or DC3D8) and follows any ``*INCLUDE`` anywhere on the disk. This one
maps an element name to its shape by the Abaqus naming rule (family prefix
+ node count + letters: ``CPE4R`` is a 4-node plane quad, ``DC3D8`` an
8-node brick), and resolves includes relative to the including file,
refusing those that leave the deck's folder unless ``allow_outside``; the
same holds for ``INPUT=`` on any keyword (``*NODE, INPUT=nodes.inp``).

The result is a ``meshio.Mesh`` (one cell block per ``*ELEMENT`` keyword,
``point_sets``/``cell_sets`` from ``*NSET``/``*ELSET``) plus the surfaces as
facet corner nodes, for :func:`graphfem.meshes.io.from_meshio`.
Every problem is a :class:`~graphfem.meshes.errors.MeshError` naming the
file and line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .conform import split_quads
from .errors import MeshError
from .mesh import CELL_TYPES, warn

#: family prefix -> topological dimension of its elements (longest prefixes first when matching)
_FAMILIES = {
    # continuum solids, heat transfer, acoustic, coupled
    "C3D": 3, "DC3D": 3, "DCC3D": 3, "AC3D": 3, "Q3D": 3,
    # plane stress / strain, axisymmetric, 2D heat transfer, generalised plane strain
    "CPS": 2, "CPE": 2, "CPEG": 2, "CAX": 2, "CGAX": 2, "DC2D": 2, "DCAX": 2, "DCC2D": 2, "DCCAX": 2,
    "AC2D": 2, "ACAX": 2,
    # shells, membranes, surfaces, rigid surfaces
    "S": 2, "STRI": 2, "DS": 2, "M3D": 2, "MAX": 2, "SFM3D": 2, "R3D": 2, "SC": 3,
    # trusses, beams, 1D heat transfer
    "T2D": 1, "T3D": 1, "B2": 1, "B3": 1, "DC1D": 1, "R2D": 1,
}
_NAME = re.compile(r"^(%s)(\d+)" % "|".join(sorted(_FAMILIES, key=len, reverse=True)))
#: (dimension, nodes) -> meshio cell type, where the node order is the same in Abaqus and meshio
_SHAPES = {(1, 2): "line", (1, 3): "line3", (2, 3): "triangle", (2, 4): "quad", (2, 6): "triangle6",
           (2, 8): "quad8", (3, 4): "tetra", (3, 10): "tetra10", (3, 8): "hexahedron", (3, 6): "wedge"}
#: shapes graphfem cannot hold, for a message that names them
_UNSUPPORTED = {(3, 20): "20-node hexahedron", (3, 15): "15-node wedge", (3, 27): "27-node hexahedron",
                (2, 9): "9-node quadrilateral", (3, 5): "5-node pyramid"}
#: Abaqus face numbers (S1, S2, ...) -> local corner nodes, per shape
_FACES = {
    "triangle": ((0, 1), (1, 2), (2, 0)),
    "quad": ((0, 1), (1, 2), (2, 3), (3, 0)),
    "tetra": ((0, 1, 2), (0, 3, 1), (1, 3, 2), (2, 3, 0)),
    "hexahedron": ((0, 1, 2, 3), (4, 7, 6, 5), (0, 4, 5, 1), (1, 5, 6, 2), (2, 6, 7, 3), (3, 7, 4, 0)),
    "wedge": ((0, 1, 2), (3, 5, 4), (0, 3, 4, 1), (1, 4, 5, 2), (2, 5, 3, 0)),
}
_MAX_INCLUDE_DEPTH = 16


def element_shape(name: str) -> tuple[str | None, str]:
    """The meshio cell type of an Abaqus element name (``None`` when graphfem
    cannot hold it) and a description of the shape for messages.

    ``CPE4R`` -> ``("quad", "4-node 2D")``; ``C3D20R`` -> ``(None, "20-node hexahedron")``.
    """
    match = _NAME.match(name.upper())
    if match is None:
        return None, "unknown element family"
    dim, nodes = _FAMILIES[match.group(1)], int(match.group(2))
    if match.group(1) == "SC":  # continuum shells are bricks and wedges
        dim = 3
    ctype = _SHAPES.get((dim, nodes))
    return ctype, _UNSUPPORTED.get((dim, nodes), f"{nodes}-node {dim}D")


@dataclass
class _Line:
    """One meaningful line of the deck (includes expanded)."""

    file: Path
    number: int
    text: str


@dataclass
class _Deck:
    points: list = field(default_factory=list)  # (k, 1..3) coordinate blocks, one per *NODE
    node_index: dict = field(default_factory=dict)
    blocks: list = field(default_factory=list)  # (cell type, element ids, connectivity rows)
    element_at: dict = field(default_factory=dict)  # element id -> (block, row)
    skipped: dict = field(default_factory=dict)  # unsupported element name -> (count, description, dim)
    skipped_ids: set = field(default_factory=set)
    node_sets: dict = field(default_factory=dict)
    element_sets: dict = field(default_factory=dict)
    surfaces: dict = field(default_factory=dict)
    instances: int = 0


def read_deck(path: str | Path, allow_outside: bool = False):
    """Read an Abaqus deck.

    Args:
        path: the ``.inp`` file.
        allow_outside: follow ``*INCLUDE`` files outside the deck's folder.

    Returns:
        (meshio.Mesh, surfaces): the mesh with its sets, and name -> (k, c)
        corner nodes (0-based) of the element faces of each surface.
    """
    import meshio

    path = Path(path)
    lines = list(_expand(path, path.resolve().parent, allow_outside, ()))
    deck = _Deck()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.text.startswith("*"):
            i += 1  # data of a keyword this reader does not need
            continue
        keyword, params = _keyword(line)
        data = []
        i += 1
        while i < len(lines) and not lines[i].text.startswith("*"):
            data.append(lines[i])
            i += 1
        handler = _HANDLERS.get(keyword)
        if handler is not None:
            handler(deck, line, params, data)
    if deck.instances > 1:
        raise MeshError(f"an assembly of {deck.instances} part instances; graphfem reads single-part decks",
                        path)
    if not sum(len(p) for p in deck.points):
        raise MeshError("no *NODE data (not an Abaqus deck, or an empty one)", path)
    dims = {CELL_TYPES[t].tdim for t, _, _ in deck.blocks}
    for name, (count, what, dim) in deck.skipped.items():
        if not dims or dim >= max(dims):
            raise MeshError(f"unsupported element type {name} ({what}, {count} elements)", path)
        warn(f"{path}: ignored {count} element(s) of type {name} ({what}) beside the {max(dims)}D mesh")
    if not deck.blocks:
        raise MeshError("no *ELEMENT data", path)
    width = max(p.shape[1] for p in deck.points)
    points = np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in deck.points])
    cells = [meshio.CellBlock(t, np.array(rows, dtype=np.int64)) for t, _, rows in deck.blocks]
    cell_sets = {}
    for name, ids in deck.element_sets.items():
        per_block = [[] for _ in deck.blocks]
        for e in ids:
            if e in deck.element_at:
                b, row = deck.element_at[e]
                per_block[b].append(row)
        cell_sets[name] = [np.array(sorted(set(rows)), dtype=np.int64) for rows in per_block]
    point_sets = {name: np.array(sorted({deck.node_index[n] for n in ids}), dtype=np.int64)
                  for name, ids in deck.node_sets.items()}
    return meshio.Mesh(points, cells, point_sets=point_sets, cell_sets=cell_sets), deck.surfaces


# ---------------------------------------------------------------------- lines and includes
def _expand(path: Path, root: Path, allow_outside: bool, stack: tuple[Path, ...]):
    """The deck's lines with every ``*INCLUDE`` replaced by the included file's."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MeshError(f"cannot read: {exc.strerror or exc}", path) from None
    if not raw.strip():
        raise MeshError("empty file", path)
    if b"\x00" in raw:
        raise MeshError("not an Abaqus deck: binary content (NUL bytes)", path)
    text = raw.decode("utf-8", errors="replace")
    for number, content in enumerate(text.splitlines(), start=1):
        content = content.strip()
        if not content or content.startswith("**"):
            continue
        line = _Line(path, number, content)
        if content.startswith("*"):
            keyword, params = _keyword(line)
            if keyword == "INCLUDE" or "INPUT" in params:  # *NODE, INPUT=f: the data lines are in f
                target = _include_target(line, params, root, allow_outside, stack + (path.resolve(),))
                if keyword != "INCLUDE":
                    yield line
                yield from _expand(target, root, allow_outside, stack + (path.resolve(),))
                continue
        yield line


def _include_target(line: _Line, params: dict, root: Path, allow_outside: bool, stack: tuple[Path, ...]) -> Path:
    name = params.get("INPUT")
    if not name:
        raise MeshError(f"line {line.number}: INPUT= names no file", line.file)
    target = Path(name).expanduser()
    if not target.is_absolute():
        target = line.file.parent / target
    target = target.resolve()
    if not allow_outside and not target.is_relative_to(root):
        raise MeshError(f"line {line.number}: INPUT={name!r} leaves the deck's folder {root}; copy it "
                        "there, or allow it: graphfem --allow-outside-includes (API: read(..., allow_outside=True))", line.file)
    if target in stack:
        raise MeshError(f"line {line.number}: INPUT={name!r} includes itself (a cycle)", line.file)
    if len(stack) >= _MAX_INCLUDE_DEPTH:
        raise MeshError(f"line {line.number}: includes nested deeper than {_MAX_INCLUDE_DEPTH} files", line.file)
    if not target.is_file():
        raise MeshError(f"line {line.number}: INPUT={name!r}: no such file", line.file)
    return target


def _keyword(line: _Line) -> tuple[str, dict[str, str]]:
    """``*Element, type=CPE4, elset=Plate`` -> ``("ELEMENT", {"TYPE": "CPE4", "ELSET": "Plate"})``."""
    head, *rest = line.text[1:].split(",")
    params = {}
    for item in rest:
        key, _, value = item.partition("=")
        if key.strip():
            params[" ".join(key.split()).upper()] = value.strip().strip('"')
    return " ".join(head.split()).upper(), params


def _numbers(line: _Line, kind=int) -> list:
    """The comma-separated numbers of a data line (a trailing comma continues the line)."""
    what = "whole numbers" if kind is int else "numbers"
    try:
        values = [kind(v) for v in (p.strip() for p in line.text.split(",")) if v]
    except ValueError:
        raise MeshError(f"line {line.number}: expected {what}, got {line.text[:60]!r}", line.file) from None
    if kind is int and any(abs(v) >= 2 ** 63 for v in values):
        raise MeshError(f"line {line.number}: a number too large for an id in {line.text[:60]!r}", line.file)
    return values


# ---------------------------------------------------------------------- keywords
def _nodes(deck: _Deck, line: _Line, params: dict, data: list[_Line]) -> None:
    table = _fast_table(data, float)
    if table is None or not 2 <= table.shape[1] <= 4 or not np.isfinite(table).all() \
            or not (table[:, 0] == np.round(table[:, 0])).all() or (np.abs(table[:, 0]) >= 2 ** 53).any():
        table = np.array([_node_row(row) for row in data], dtype=float).reshape(-1, 4)  # names the bad line
    ids = table[:, 0].astype(np.int64)
    start = sum(len(p) for p in deck.points)
    index = dict(zip(ids.tolist(), range(start, start + len(ids))))
    if len(index) < len(ids) or (deck.node_index.keys() & index.keys()):
        seen = set(deck.node_index)
        for row, node in zip(data, ids.tolist()):
            if node in seen:
                raise MeshError(f"line {row.number}: node {node} is defined twice", row.file)
            seen.add(node)
    deck.node_index.update(index)
    deck.points.append(table[:, 1:])
    if params.get("NSET"):
        deck.node_sets.setdefault(params["NSET"], []).extend(ids.tolist())


def _fast_table(data: list[_Line], kind) -> np.ndarray | None:
    """The data lines as one (rows, columns) array when every line holds the
    same count of numbers, else ``None`` (then the line-by-line path runs)."""
    try:
        return np.array([row.text.split(",") for row in data], dtype=kind).reshape(len(data), -1)
    except (ValueError, OverflowError):
        return None


def _node_row(row: _Line) -> list[float]:
    """``id, x[, y[, z]]`` of one node line, padded to 4 with zeros; one-line error naming it otherwise."""
    values = _numbers(row, float)
    if len(values) < 2 or len(values) > 4 or not np.isfinite(values).all() or values[0] != int(values[0]) \
            or abs(values[0]) >= 2 ** 53:
        raise MeshError(f"line {row.number}: a node is 'id, x[, y[, z]]' with finite numbers, got "
                        f"{row.text[:60]!r}", row.file)
    return values + [0.0] * (4 - len(values))


def _elements(deck: _Deck, line: _Line, params: dict, data: list[_Line]) -> None:
    name = params.get("TYPE", "").upper()
    if not name:
        raise MeshError(f"line {line.number}: *ELEMENT without TYPE=", line.file)
    ctype, what = element_shape(name)
    try:  # all numbers of the block at once; a trailing comma continues a line
        values = np.array([v for v in ",".join(row.text for row in data).split(",") if v.strip()], dtype=np.int64)
    except (ValueError, OverflowError):
        values = np.array([v for row in data for v in _numbers(row)], dtype=np.int64)  # names the bad line
    if ctype is None:
        match = _NAME.match(name)
        dim = 3 if match and match.group(1) == "SC" else (_FAMILIES[match.group(1)] if match else 0)
        count, _, _ = deck.skipped.get(name, (0, what, dim))
        nodes = int(match.group(2)) if match else None
        ids = values[::nodes + 1].tolist() if nodes and len(values) % (nodes + 1) == 0 else []
        deck.skipped[name] = (count + (len(ids) or len(data)), what, dim)
        deck.skipped_ids.update(ids)
        return
    width = CELL_TYPES[ctype].n_nodes + 1
    if len(values) % width:
        last = data[-1] if data else line
        raise MeshError(f"line {last.number}: {name} elements take {width - 1} nodes each; the data after line "
                        f"{line.number} holds {len(values)} numbers, not a multiple of {width} "
                        "(truncated or malformed)", last.file)
    table = values.reshape(-1, width)
    ids = table[:, 0].tolist()
    block = len(deck.blocks)
    at = dict(zip(ids, ((block, k) for k in range(len(ids)))))
    if len(at) < len(ids) or (deck.element_at.keys() & at.keys()) or (deck.skipped_ids & at.keys()):
        seen = set(deck.element_at) | deck.skipped_ids
        twice = next(e for e in ids if e in seen or seen.add(e))
        raise MeshError(f"element {twice} is defined twice (*ELEMENT at line {line.number})", line.file)
    rows = _node_indices(deck, table, line)
    deck.element_at.update(at)
    deck.blocks.append((ctype, table[:, 0], rows))
    if params.get("ELSET"):
        deck.element_sets.setdefault(params["ELSET"], []).extend(ids)


def _node_indices(deck: _Deck, table: np.ndarray, line: _Line) -> np.ndarray:
    """(m, k) 0-based node indices of the element rows ``table`` (m, 1 + k) of ids."""
    keys = np.fromiter(deck.node_index.keys(), dtype=np.int64, count=len(deck.node_index))
    index = np.fromiter(deck.node_index.values(), dtype=np.int64, count=len(deck.node_index))
    order = np.argsort(keys)
    keys, index = keys[order], index[order]
    nodes = table[:, 1:]
    at = np.minimum(np.searchsorted(keys, nodes), max(len(keys) - 1, 0))
    found = keys[at] == nodes if len(keys) else np.zeros(nodes.shape, dtype=bool)
    if not found.all():
        r, c = np.argwhere(~found)[0]
        raise MeshError(f"element {table[r, 0]} (*ELEMENT at line {line.number}) uses node {nodes[r, c]}, "
                        "which no *NODE defines", line.file)
    return index[at]


def _set(deck: _Deck, line: _Line, params: dict, data: list[_Line], kind: str) -> None:
    key = "NSET" if kind == "node" else "ELSET"
    name = params.get(key)
    if not name:
        raise MeshError(f"line {line.number}: *{key} without {key}=", line.file)
    known = deck.node_index if kind == "node" else deck.element_at
    sets = deck.node_sets if kind == "node" else deck.element_sets
    members: list[int] = []
    if "GENERATE" in params:
        for row in data:
            values = _numbers(row)
            if len(values) not in (2, 3):
                raise MeshError(f"line {row.number}: GENERATE takes 'first, last[, step]'", row.file)
            first, last, step = (values + [1])[:3]
            if step <= 0 or last < first or (last - first) // step + 1 > len(known) + len(deck.skipped_ids):
                raise MeshError(f"line {row.number}: GENERATE range {first}..{last} step {step} is empty or "
                                f"longer than the {len(known)} {kind}s defined", row.file)
            members.extend(range(first, last + 1, step))
    else:
        for row in data:
            for item in (p.strip() for p in row.text.split(",")):
                if not item:
                    continue
                if re.fullmatch(r"[+-]?\d+", item):
                    members.append(int(item))
                elif item in sets:
                    members.extend(sets[item])
                else:
                    article = "a node" if kind == "node" else "an element"
                    raise MeshError(f"line {row.number}: *{key} {name!r} names {item!r}, neither {article} number "
                                    f"nor a known {kind} set", row.file)
    missing = [m for m in members if m not in known and m not in deck.skipped_ids]
    if missing:
        raise MeshError(f"line {line.number}: *{key} {name!r} names {kind} {missing[0]}, which is not defined "
                        f"({len(missing)} such)", line.file)
    sets.setdefault(name, []).extend(m for m in members if m in known)


def _surface(deck: _Deck, line: _Line, params: dict, data: list[_Line]) -> None:
    """``*SURFACE, TYPE=ELEMENT, NAME=s`` with rows ``elset or element, S<k>``."""
    if params.get("TYPE", "ELEMENT").upper() != "ELEMENT" or not params.get("NAME"):
        return  # node-based and analytical surfaces carry no mesh facets
    faces = []
    for row in data:
        parts = [p.strip() for p in row.text.split(",") if p.strip()]
        match = re.fullmatch(r"S(\d+)", parts[1].upper()) if len(parts) == 2 else None
        if match is None:
            raise MeshError(f"line {row.number}: a surface row is 'ELSET or element, S<face>', got "
                            f"{row.text[:60]!r}", row.file)
        if re.fullmatch(r"\d+", parts[0]):
            elements = [int(parts[0])]
        elif parts[0] in deck.element_sets:
            elements = deck.element_sets[parts[0]]
        else:
            raise MeshError(f"line {row.number}: surface {params['NAME']!r} names {parts[0]!r}, neither an "
                            "element nor a known element set", row.file)
        face = int(match.group(1)) - 1
        for e in elements:
            if e not in deck.element_at:
                raise MeshError(f"line {row.number}: surface {params['NAME']!r} names element {e}, which is not "
                                "defined", row.file)
            b, k = deck.element_at[e]
            ctype = deck.blocks[b][0]
            local = _FACES.get(_corner_shape(ctype))
            if local is None or not 0 <= face < len(local):
                raise MeshError(f"line {row.number}: {ctype} element {e} has no face S{face + 1}", row.file)
            faces.append([deck.blocks[b][2][k][j] for j in local[face]])
    if len({len(f) for f in faces}) > 1:  # bricks beside prisms: the mesh is split into tetrahedra, so are the faces
        quads = np.array([f for f in faces if len(f) == 4], dtype=np.int64)
        faces = [f for f in faces if len(f) == 3] + split_quads(quads)[0].tolist()
    deck.surfaces.setdefault(params["NAME"], []).extend(faces)


def _corner_shape(ctype: str) -> str:
    return {"triangle6": "triangle", "quad8": "quad", "quad9": "quad", "tetra10": "tetra"}.get(ctype, ctype)


def _instance(deck: _Deck, line: _Line, params: dict, data: list[_Line]) -> None:
    deck.instances += 1
    if data:
        raise MeshError(f"line {line.number}: *INSTANCE {params.get('NAME', '')!r} is moved or rotated; "
                        "graphfem reads unpositioned single-part decks", line.file)


_HANDLERS = {
    "NODE": _nodes,
    "ELEMENT": _elements,
    "NSET": lambda deck, line, params, data: _set(deck, line, params, data, "node"),
    "ELSET": lambda deck, line, params, data: _set(deck, line, params, data, "element"),
    "SURFACE": _surface,
    "INSTANCE": _instance,
}
