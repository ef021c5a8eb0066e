"""Reading and writing meshes and fields (meshio underneath), tags included.

Reading keeps what meshio finds and adds what it drops:

* gmsh physical groups -> named node / facet / cell tags;
* Abaqus node and element sets -> node tags and cell (or facet) tags,
  element-based surfaces -> facet tags (:mod:`graphfem.meshes.abaqus`);
* Exodus node sets via meshio; side sets -> facet tags and element blocks ->
  cell tags, read from the netCDF file (meshio drops them);
* ``boundary``: every boundary facet, on a mesh with no tag of that name.

Damaged files are refused in one line that names the cause where it can be
recognised (empty, truncated, not the format its extension says), and
meshio's own prints are silenced.

Every write goes to a temporary file in the target folder and is renamed on
success, so a failure never leaves a half-written file.
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from .conform import orient_simplices, split_hexes, split_quads, split_wedges
from .errors import GraphfemError, MeshError
from .mesh import CELL_TYPES, Mesh, Tag, warn

#: Larger coordinates overflow distance computations (squared lengths): refused as damage.
_MAX_COORDINATE = 1e100

#: Cell types that can carry the volume mesh, by topological dimension.
_VOLUME_PRIORITY = {3: ("tetra", "tetra10", "hexahedron", "wedge", "hexahedron27"),
                    2: ("triangle", "triangle6", "quad", "quad9", "quad8"),
                    1: ("line", "line3")}


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` when the
    block succeeds, delete it when it raises. The suffix is kept, so writers
    that dispatch on the extension still work."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; it replaces ``path`` when the
    block succeeds and is removed when it raises.

    A folder cannot be swapped in one rename: the old one is first moved
    aside (then deleted), so a reader may find ``path`` missing for an
    instant, never half-written. Concurrent writers each succeed, the last
    one's folder stays. (Time series, which readers follow while they are
    rewritten, use the versioned layout of :func:`write_series` instead.)"""
    import shutil
    import uuid

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        while True:
            try:
                os.replace(tmp, path)  # succeeds onto a missing or empty folder
                break
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):  # not another writer's folder in the way
                    raise
            aside = path.with_name(f".{path.name}.old.{uuid.uuid4().hex[:8]}")
            try:
                os.rename(path, aside)
            except FileNotFoundError:  # another writer moved it first
                continue
            shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------- reading
#: set to 1 (``graphfem --allow-outside-includes``) to follow Abaqus ``*INCLUDE`` files outside the deck's folder
ALLOW_OUTSIDE_ENV = "GRAPHFEM_ALLOW_OUTSIDE_INCLUDES"


def outside_includes_allowed(allow_outside: bool | None = None) -> bool:
    """``allow_outside`` itself, or (``None``) whether :data:`ALLOW_OUTSIDE_ENV` is set to 1: the
    command line's ``--allow-outside-includes``, inherited by worker processes."""
    if allow_outside is not None:
        return bool(allow_outside)
    return os.environ.get(ALLOW_OUTSIDE_ENV, "").strip().lower() in ("1", "true", "yes")


def read(path: str | Path, merge_tolerance: float = 1e-12, allow_outside: bool | None = None) -> Mesh:
    """Read a mesh file in any format meshio knows, keeping its tags.

    Mixed triangle/quad and tetra/wedge/hexahedron meshes are split into
    simplices (see :mod:`graphfem.meshes.conform`), 2D meshes stored with
    z = 0 become 2D, duplicated nodes (closer than ``merge_tolerance`` times
    the bounding-box size) are merged and unused nodes removed; each repair
    is reported by a :class:`~graphfem.meshes.mesh.MeshWarning`. Every mesh
    gets a ``boundary`` facet tag (all boundary facets) unless it has a tag
    of that name. Abaqus decks are read by :mod:`graphfem.meshes.abaqus`,
    whose ``*INCLUDE`` files must lie in the deck's folder unless
    ``allow_outside`` (``None``: :func:`outside_includes_allowed`).

    Raises:
        MeshError: the file is missing, empty, truncated, unreadable or holds
            an invalid mesh; one line naming the file and the cause.
    """
    path = Path(path)
    mio, side_sets, file_format = _read_raw(path, allow_outside)
    try:
        return from_meshio(mio, source=str(path), merge_tolerance=merge_tolerance, side_sets=side_sets)
    except GraphfemError as exc:
        raise exc.with_source(path) from None
    except (ValueError, IndexError, TypeError, KeyError, AttributeError) as exc:  # content meshio let through
        raise MeshError(_read_failure(path, file_format, exc), path) from None


def read_meshio(path: str | Path, allow_outside: bool | None = None):
    """The ``meshio.Mesh`` of a file, as meshio holds it (point clouds and
    fields included, no repairs), read the way :func:`read` reads it: the
    format checked, meshio's prints silenced and every failure one
    :class:`MeshError` line naming the file and the cause."""
    return _read_raw(Path(path), allow_outside)[0]


def _read_raw(path: Path, allow_outside: bool | None):
    """(meshio.Mesh, facet sets meshio drops name -> (k, c) corner nodes, format) of ``path``."""
    from .abaqus import read_deck

    if not path.exists():
        raise MeshError("no such file", path)
    if path.is_dir():
        raise MeshError("is a folder, not a mesh file", path)
    file_format = _file_format(path)
    side_sets: Mapping[str, np.ndarray] = {}
    try:
        # meshio prints progress and warnings of its own, and VTK's legacy type names are unknown to it
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                _vtk_type_names(), np.errstate(all="ignore"):  # and its arithmetic on damaged sizes
            if file_format == "abaqus":
                mio, side_sets = read_deck(path, allow_outside=outside_includes_allowed(allow_outside))
            else:
                mio = _meshio_reader(file_format)(str(path))
            if file_format == "exodus":
                side_sets, blocks = _exodus_sets(path)
                _add_block_sets(mio, blocks, side_sets)
    except GraphfemError as exc:
        raise exc.with_source(path) from None
    except (Exception, SystemExit) as exc:  # meshio raises many types on corrupt input, even SystemExit
        raise MeshError(_read_failure(path, file_format, exc), path) from None
    return mio, side_sets, file_format


def _file_format(path: Path) -> str:
    """The meshio format of ``path``, by extension and, for ``.msh`` (gmsh or
    ANSYS), by content; empty files and unknown extensions are refused."""
    import meshio

    try:
        formats = meshio._helpers._filetypes_from_path(path)
    except meshio.ReadError:
        if path.suffix.lower() == ".pvd":
            raise MeshError("a ParaView time series, not one mesh: graphfem.meshes.read_series reads it", path) \
                from None
        known = ", ".join(sorted(meshio.extension_to_filetypes))
        raise MeshError(f"unknown mesh format {path.suffix or '(no extension)'!r}; graphfem reads {known}",
                        path) from None
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if not head.strip():
        raise MeshError("empty file", path)
    if formats == ["ansys", "gmsh"]:
        start = head.lstrip()
        if start.startswith(b"$MeshFormat"):
            return "gmsh"
        if start.startswith(b"("):
            return "ansys"
        raise MeshError("not a gmsh file: it does not start with $MeshFormat", path)
    return formats[0]


def _meshio_reader(file_format: str):
    """meshio's reader function of one format (``meshio.read`` hides its
    errors behind a print and ``sys.exit(1)``)."""
    import meshio

    return meshio._helpers.reader_map[file_format]


@contextlib.contextmanager
def _vtk_type_names() -> Iterator[None]:
    """Teach meshio's legacy-VTK readers, for the duration of a read, the
    ``vtktypeint64``-style array types that VTK 9 writes (pyvista's
    ``hexbeam.vtk``)."""
    from meshio.vtk import _vtk_42, _vtk_51

    extra = {f"vtktype{kind}{bits}": f"{kind}{bits}" for kind in ("int", "uint") for bits in (8, 16, 32, 64)}
    extra.update(vtktypefloat32="float32", vtktypefloat64="float64", vtkidtype="int64")
    tables = [_vtk_42.vtk_to_numpy_dtype_name, _vtk_51.vtk_to_numpy_dtype_name]
    added = [[k for k in extra if k not in table] for table in tables]
    for table, keys in zip(tables, added):
        table.update({k: extra[k] for k in keys})
    try:
        yield
    finally:
        for table, keys in zip(tables, added):
            for k in keys:
                table.pop(k, None)


def _read_failure(path: Path, file_format: str, exc: BaseException) -> str:
    """One line saying why meshio could not read ``path``, in the file's terms
    rather than meshio's internals: truncation, foreign or binary content,
    counts that do not match the data, references to undefined entries."""
    detail = " ".join(str(exc).split())
    if file_format in ("vtu", "xdmf") and not isinstance(exc, ET.ParseError):
        try:
            ET.parse(path)  # meshio's XML errors hide the position; the parser's name it
        except ET.ParseError as xml_error:
            exc, detail = xml_error, " ".join(str(xml_error).split())
        except Exception:  # noqa: BLE001 - any other failure: keep meshio's message
            pass
    if isinstance(exc, ET.ParseError):
        if detail.startswith(("no element found", "unclosed token")):
            return f"truncated at line {exc.position[0]}: the XML ends before its last element closes"
        return f"not a valid {file_format} file: {detail}"
    if file_format == "gmsh":
        section = _gmsh_open_section(path)
        if section:
            return f"truncated: the {section} section has no $End{section[1:]}"
    what = f"cannot read {file_format} file"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"{what}: it needs the Python package {exc.name} (pip install {exc.name})"
    if isinstance(exc, UnicodeDecodeError):
        return (f"{what}: byte 0x{exc.object[exc.start]:02x} at offset {exc.start} of a text part is not UTF-8 "
                "(damaged, or another format)")
    if isinstance(exc, (EOFError, StopIteration)) or "EOF" in detail or "end of file" in detail.lower():
        return f"truncated: the {file_format} data ends early"
    if "synchronously" in detail or (file_format == "exodus" and isinstance(exc, (OSError, RuntimeError))):
        part = "its HDF5 heavy data" if file_format == "xdmf" else "its netCDF container"
        state = ("is truncated" if "truncated" in detail else "is not an HDF5 file" if "signature not found" in detail
                 else "is damaged")
        if file_format != "exodus":
            return f"{what}: {part} {state}"
        cause = re.sub(r":\s*'[^']*'$", "", re.sub(r"^\[Errno -?\d+\]\s*", "", detail))  # no errno, no path
        return f"{what}: {part} {state} ({cause})"
    if isinstance(exc, SystemExit) or not detail or "could not be read to its end" in detail \
            or "cannot reshape array" in detail or "inhomogeneous shape" in detail:
        return f"{what}: its data holds fewer or other values than its header declares (truncated or damaged)"
    if isinstance(exc, (IndexError, KeyError)):
        key = exc.args[0] if isinstance(exc, KeyError) and exc.args else None
        named = f" {int(key)}" if isinstance(key, (int, np.integer)) else (f" {key!r}" if key is not None else "")
        return f"{what}: it refers to an entry{named} that it does not define (damaged)"
    if "array is too big" in detail or isinstance(exc, MemoryError):
        return f"{what}: a count in it is absurdly large (damaged)"
    if isinstance(exc, (AttributeError, TypeError)):
        return f"{what}: an element or attribute it needs is missing or malformed (damaged)"
    return f"{what}: {detail}"


def _gmsh_open_section(path: Path) -> str | None:
    """The ``$Section`` a gmsh file ends in without its ``$EndSection`` (``None`` if closed)."""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 4096))
        tail = f.read()
    marks = [m for m in tail.split() if m.startswith(b"$") and m[1:2].isalpha()]
    if marks and not marks[-1].startswith(b"$End"):
        return marks[-1].decode(errors="replace")
    if not marks:  # the tail is all data: name the last section opened anywhere
        opened = [m for m in path.read_bytes().split() if m.startswith(b"$") and m[1:2].isalpha()]
        if opened and not opened[-1].startswith(b"$End"):
            return opened[-1].decode(errors="replace")
    return None


def _add_block_sets(mio, blocks: Sequence[str], side_sets: Mapping[str, np.ndarray]) -> None:
    """Exodus element blocks as meshio cell sets (one per block), named as
    the file names them; a name taken by a node or side set gets the block's
    number instead."""
    if len(blocks) != len(mio.cells):
        raise MeshError(f"{len(blocks)} element block names for {len(mio.cells)} element blocks")
    for k, name in enumerate(blocks):
        if name in mio.point_sets or name in side_sets or name in mio.cell_sets:
            name = f"block_{k + 1}"
        mio.cell_sets[name] = [np.arange(len(c.data)) if j == k else np.zeros(0, dtype=np.int64)
                               for j, c in enumerate(mio.cells)]


def from_meshio(mio, source: str | None = None, merge_tolerance: float = 1e-12,
                side_sets: Mapping[str, np.ndarray] | None = None) -> Mesh:
    """Convert a ``meshio.Mesh`` into a validated :class:`Mesh` (see :func:`read`)."""
    points = np.asarray(mio.points, dtype=np.float64)
    if points.ndim != 2 or len(points) == 0:
        raise MeshError("the file holds no nodes", source)
    if not np.isfinite(points).all():
        bad = np.flatnonzero(~np.isfinite(points).all(axis=1))
        raise MeshError(f"non-finite coordinates at {bad.size} node(s), first node {bad[0]}", source)
    if np.abs(points).max() > _MAX_COORDINATE:
        node = int(np.abs(points).max(axis=1).argmax())
        raise MeshError(f"node {node} has a coordinate of {np.abs(points[node]).max():.3g}, beyond any physical "
                        f"size ({_MAX_COORDINATE:.0e}; a damaged file?)", source)
    blocks = [(b.type, _integer_cells(b.type, b.data, source)) for b in mio.cells if len(b.data)]
    unknown = sorted({t for t, _ in blocks if t not in CELL_TYPES})
    if unknown:
        raise MeshError(f"unsupported cell type(s): {', '.join(unknown)}", source)
    if not blocks:
        raise MeshError("the file holds no cells", source)
    for ctype, data in blocks:
        if data.size and (data.min() < 0 or data.max() >= len(points)):
            raise MeshError(f"{ctype} connectivity refers to a node outside 0..{len(points) - 1}", source)
    tdim = max(CELL_TYPES[t].tdim for t, _ in blocks)
    if tdim == 0:
        raise MeshError("the file holds only point cells, no volume cells", source)
    points = _drop_flat_axes(points, tdim)

    volume_idx = [i for i, (t, _) in enumerate(blocks) if CELL_TYPES[t].tdim == tdim]
    types = sorted({blocks[i][0] for i in volume_idx}, key=_VOLUME_PRIORITY[tdim].index)
    offsets = np.cumsum([0] + [len(blocks[i][1]) for i in volume_idx])
    # parent cell (index into the concatenated original volume cells) of every output cell
    if len(types) == 1:
        cell_type = types[0]
        cells = np.concatenate([blocks[i][1] for i in volume_idx])
        parent = np.arange(len(cells))
        centroid_of = None
    else:
        cell_type, cells, parent, points, centroid_of = _split_mixed(types, blocks, volume_idx, offsets, points,
                                                                     source)

    tags = _gmsh_tags(mio, blocks, volume_idx, offsets, parent, tdim, cell_type)
    tags.update(_set_tags(mio, blocks, volume_idx, offsets, parent, tdim, cell_type))
    for name, facets in (side_sets or {}).items():
        if not len(facets):
            continue
        facets = np.asarray(facets, dtype=np.int64).reshape(len(facets), -1)
        tags[name] = Tag(name, "facet", split_quads(facets)[0] if facets.shape[1] == 4 and tdim == 3
                         and cell_type == "tetra" else facets)
    point_cells = sum(len(d) for t, d in blocks if t == "vertex")
    if point_cells and tdim > 1:  # in 1D, point cells are the facets
        warn(f"{source or 'mesh'}: {point_cells} point cell(s) ignored as cells"
             + (" (kept as node tags)" if any(t.kind == "node" for t in tags.values()) else ""))

    point_data = {k: np.asarray(v) for k, v in mio.point_data.items()
                  if not k.startswith(("gmsh:", "abaqus:")) and len(v) == len(mio.points)}
    cell_data = {}
    for name, per_block in mio.cell_data.items():
        if name.startswith("gmsh:"):
            continue
        values = [np.asarray(per_block[i]) for i in volume_idx]
        try:
            cell_data[name] = np.concatenate(values)[parent] if values else None
        except ValueError:
            continue
    if len(points) > len(mio.points):  # new centroid nodes: average the parent's corners
        point_data = {k: np.concatenate([v, v[centroid_of].mean(axis=1)]) for k, v in point_data.items()}
    cell_data = {k: v for k, v in cell_data.items() if v is not None}
    for name in [k for k in cell_data if k.startswith("tag:")]:  # cell tags written by write() as 0/1 fields
        flags = cell_data.pop(name)
        tags.setdefault(name[4:], Tag(name[4:], "cell", np.flatnonzero(np.asarray(flags).reshape(len(flags), -1)[:, 0])))

    points, cells, tags, point_data = _merge_duplicates(points, cells, tags, point_data, merge_tolerance, source)
    mesh = Mesh(points, cell_type, cells, tags=tags, point_data=point_data, cell_data=cell_data, source=source)
    if mesh.unused_nodes.size:
        warn(f"{source or 'mesh'}: removed {mesh.unused_nodes.size} node(s) used by no cell")
        mesh = mesh.cleaned()
    if "boundary" not in mesh.tags and len({len(f) for f in CELL_TYPES[cell_type].facets}) == 1:
        facets = mesh.boundary_facets()
        if len(facets):  # a closed surface has none
            mesh = mesh.with_tags(boundary=Tag("boundary", "facet", facets))
    return mesh


def _integer_cells(ctype: str, data, source) -> np.ndarray:
    """The connectivity as int64, refusing values that are not whole numbers
    (a plain cast would truncate them silently)."""
    data = np.asarray(data)
    if not np.issubdtype(data.dtype, np.integer):
        if not np.issubdtype(data.dtype, np.floating) or not np.all(np.isfinite(data)) \
                or not np.all(data == np.round(data)):
            raise MeshError(f"{ctype} connectivity is not integer", source)
    width = CELL_TYPES[ctype].n_nodes if ctype in CELL_TYPES else None
    if data.ndim != 2 or (width is not None and data.shape[1] != width):
        raise MeshError(f"{ctype} connectivity has shape {data.shape}, expected (cells, {width or 'k'})", source)
    return data.astype(np.int64)


def _drop_flat_axes(points: np.ndarray, tdim: int) -> np.ndarray:
    """Drop trailing coordinates that are identically zero beyond ``tdim``."""
    scale = max(float(np.abs(points).max()), 1.0)
    while points.shape[1] > max(tdim, 1) and np.abs(points[:, -1]).max() <= 1e-14 * scale:
        points = points[:, :-1]
    return np.ascontiguousarray(points)


def _split_mixed(types, blocks, volume_idx, offsets, points, source):
    if any(CELL_TYPES[t].order > 1 for t in types):
        raise MeshError(f"mixed quadratic cells ({', '.join(types)}) are not supported", source)
    pieces, parents, centroid_of = [], [], []
    n_new = 0
    for k, i in enumerate(volume_idx):
        ctype, data = blocks[i]
        if ctype in ("triangle", "tetra"):
            out, par = data, np.arange(len(data))
        elif ctype == "quad":
            out, par = split_quads(data)
        elif ctype == "wedge":
            out, par = split_wedges(data)
        elif ctype == "hexahedron":
            out, par = split_hexes(data, len(points) + n_new)
            points = np.concatenate([points, points[data].mean(axis=1)])
            centroid_of.append(data)
            n_new += len(data)
        else:
            raise MeshError(f"cannot split {ctype} cells", source)
        pieces.append(out)
        parents.append(par + offsets[k])
    cell_type = "tetra" if CELL_TYPES[types[0]].tdim == 3 else "triangle"
    cells = orient_simplices(points, np.concatenate(pieces))
    split = ", ".join(types)
    warn(f"{source or 'mesh'}: mixed mesh ({split}) split conformingly into {len(cells)} {cell_type} cells"
         + (f", with {n_new} new centroid node(s)" if n_new else ""))
    centroid_of = np.concatenate(centroid_of) if centroid_of else np.zeros((0, 8), dtype=np.int64)
    return cell_type, cells, np.concatenate(parents), points, centroid_of


def _children(parent: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """Output cells whose parent (original volume cell) is in ``selected``."""
    mask = np.zeros(int(parent.max()) + 1, dtype=bool)
    mask[selected[selected <= parent.max()]] = True
    return np.flatnonzero(mask[parent])


def _facet_corners(ctype: str, data: np.ndarray, volume_type: str) -> np.ndarray:
    """Corner nodes of facet cells; quads become two triangles on a tetra mesh."""
    corners = data[:, :CELL_TYPES[ctype].n_corners]
    if ctype == "quad" and volume_type == "tetra":
        return split_quads(corners)[0]
    return corners


def _gmsh_tags(mio, blocks, volume_idx, offsets, parent, tdim, volume_type) -> dict[str, Tag]:
    physical = mio.cell_data.get("gmsh:physical")
    if physical is None:
        return {}
    names = {}
    for name, (number, dim) in ((k, np.asarray(v).ravel()[:2]) for k, v in mio.field_data.items()):
        names[(int(number), int(dim))] = name
    kept = [i for i, b in enumerate(mio.cells) if len(b.data)]
    groups: dict[tuple[int, int], list] = {}
    for j, (ctype, data) in enumerate(blocks):
        ids = np.asarray(physical[kept[j]]).ravel()
        dim = CELL_TYPES[ctype].tdim
        for number in np.unique(ids):
            if number == 0:
                continue
            groups.setdefault((int(number), dim), []).append((j, np.flatnonzero(ids == number)))
    tags = {}
    for (number, dim), members in groups.items():
        name = names.get((number, dim), f"physical_{number}" if dim == tdim - 1 or dim == tdim
                         else f"physical_{dim}d_{number}")
        tags[name] = _tag_from_members(name, members, blocks, volume_idx, offsets, parent, tdim, volume_type)
    return tags


def _set_tags(mio, blocks, volume_idx, offsets, parent, tdim, volume_type) -> dict[str, Tag]:
    """Abaqus/Exodus/VTU point_sets and cell_sets (not gmsh's bookkeeping sets)."""
    tags = {}
    for name, index in mio.point_sets.items():
        tags[name] = Tag(name, "node", np.asarray(index).ravel())
    nodes = set(tags)
    if "gmsh:physical" in mio.cell_data:  # meshio mirrors gmsh groups as cell sets: read once
        return tags
    kept = [i for i, b in enumerate(mio.cells) if len(b.data)]
    for name, per_block in mio.cell_sets.items():
        if name.startswith("gmsh:"):
            continue
        members = [(j, np.asarray(per_block[kept[j]], dtype=np.int64).ravel()) for j in range(len(blocks))
                   if kept[j] < len(per_block) and per_block[kept[j]] is not None and len(per_block[kept[j]])]
        if members:
            tag = _tag_from_members(name, members, blocks, volume_idx, offsets, parent, tdim, volume_type)
            if name in nodes:  # Abaqus lets an NSET and an ELSET share a name: keep both
                warn(f"{name!r} names both a node set and a {tag.kind} set; the {tag.kind} set is "
                     f"tag {name + '_' + tag.kind + 's'!r}")
                tag = Tag(name + "_" + tag.kind + "s", tag.kind, tag.indices)
            tags[tag.name] = tag
    return tags


def _tag_from_members(name, members, blocks, volume_idx, offsets, parent, tdim, volume_type) -> Tag:
    """A tag from (block, cell indices) pairs; its kind follows the dimension."""
    dims = {CELL_TYPES[blocks[j][0]].tdim for j, _ in members}
    dim = max(dims)
    if dim == tdim:
        selected = np.concatenate([offsets[volume_idx.index(j)] + idx for j, idx in members if j in volume_idx])
        return Tag(name, "cell", _children(parent, selected))
    if dim == tdim - 1 and dim > 0:
        facets = np.concatenate([_facet_corners(blocks[j][0], blocks[j][1][idx], volume_type)
                                 for j, idx in members if CELL_TYPES[blocks[j][0]].tdim == dim])
        return Tag(name, "facet", facets)
    if tdim == 1 and dim == 0:  # end points of a 1D mesh are its facets
        return Tag(name, "facet", np.concatenate([blocks[j][1][idx] for j, idx in members]).reshape(-1, 1))
    nodes = np.concatenate([blocks[j][1][idx].ravel() for j, idx in members])
    return Tag(name, "node", np.unique(nodes))


def _merge_duplicates(points, cells, tags, point_data, tolerance, source):
    """Merge nodes closer than ``tolerance`` x bounding-box size."""
    from scipy.spatial import cKDTree

    scale = float(np.ptp(points, axis=0).max()) or 1.0
    pairs = cKDTree(points).query_pairs(tolerance * scale, output_type="ndarray")
    if len(pairs) == 0:
        return points, cells, tags, point_data
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n = len(points)
    graph = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    first = np.full(label.max() + 1, n)
    np.minimum.at(first, label, np.arange(n))
    target = first[label]
    warn(f"{source or 'mesh'}: merged {n - len(np.unique(target))} duplicated node(s)")
    cells = target[cells]
    new_tags = {}
    for name, tag in tags.items():
        new_tags[name] = tag if tag.kind == "cell" else Tag(name, tag.kind, target[tag.indices])
    # the now-unused duplicates are removed by Mesh.cleaned() in the caller
    return points, cells, new_tags, point_data


# Exodus side numbering (1-based sides -> local corner nodes), per element type.
_EXODUS_SIDES = {
    "triangle": ((0, 1), (1, 2), (2, 0)),
    "quad": ((0, 1), (1, 2), (2, 3), (3, 0)),
    "tetra": ((0, 1, 3), (1, 2, 3), (0, 3, 2), (0, 2, 1)),
    "hexahedron": ((0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (0, 4, 7, 3), (0, 3, 2, 1), (4, 5, 6, 7)),
}
_EXODUS_TYPES = {"TRI": "triangle", "TRI3": "triangle", "TRIANGLE": "triangle", "QUAD": "quad",
                 "QUAD4": "quad", "SHELL4": "quad", "TETRA": "tetra", "TET4": "tetra", "TETRA4": "tetra",
                 "HEX": "hexahedron", "HEX8": "hexahedron", "HEXAHEDRON": "hexahedron"}


def _exodus_sets(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """What meshio drops from an Exodus II file, read with netCDF4: the side
    sets as facet corner nodes (0-based), name -> (k, corners), and the name
    of every element block in the order meshio lists its cell blocks (the
    file order of the ``connect*`` variables): ``eb_names`` where given, else
    ``block_<id>`` from ``eb_prop1``."""
    import netCDF4

    sets = {}
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_mask(False)
        n_blocks = nc.dimensions["num_el_blk"].size if "num_el_blk" in nc.dimensions else 0
        ids = (np.asarray(nc.variables["eb_prop1"][:]).ravel().tolist() if "eb_prop1" in nc.variables
               else list(range(1, n_blocks + 1)))
        names = _exodus_names(nc, "eb_names", n_blocks)
        block_names = {f"connect{b + 1}": names[b] or f"block_{ids[b] if b < len(ids) else b + 1}"
                       for b in range(n_blocks)}
        order = [block_names.get(key, f"block_{key[7:]}") for key in nc.variables if key[:7] == "connect"]
        connectivity, types = [], []
        for b in range(1, n_blocks + 1):
            var = nc.variables.get(f"connect{b}")
            if var is None:
                continue
            connectivity.append(np.asarray(var[:], dtype=np.int64) - 1)
            types.append(_EXODUS_TYPES.get(str(getattr(var, "elem_type", "")).upper()))
        n_sets = nc.dimensions["num_side_sets"].size if "num_side_sets" in nc.dimensions else 0
        names = [name or f"sideset_{s + 1}" for s, name in enumerate(_exodus_names(nc, "ss_names", n_sets))]
        starts = np.cumsum([0] + [len(c) for c in connectivity])
        for s in range(1, n_sets + 1):
            elems = np.asarray(nc.variables[f"elem_ss{s}"][:], dtype=np.int64).ravel() - 1
            sides = np.asarray(nc.variables[f"side_ss{s}"][:], dtype=np.int64).ravel() - 1
            if len(elems) != len(sides) or (len(elems) and (elems.min() < 0 or elems.max() >= starts[-1])):
                raise MeshError(f"side set {names[s - 1]!r} names elements outside 1..{starts[-1]}", path)
            facets = []
            for e, side in zip(elems, sides):
                b = int(np.searchsorted(starts, e, side="right") - 1)
                if types[b] is None:
                    raise MeshError(f"side set {names[s - 1]!r} on an unsupported Exodus element type", path)
                local = _EXODUS_SIDES[types[b]]
                if not 0 <= side < len(local):
                    raise MeshError(f"side set {names[s - 1]!r} names side {side + 1} of a {types[b]}", path)
                facets.append(connectivity[b][e - starts[b]][list(local[side])])
            sets[names[s - 1]] = np.array(facets, dtype=np.int64)
    return sets, order


def _exodus_names(nc, variable: str, count: int) -> list[str | None]:
    """``count`` names from a netCDF character array, ``None`` for blank or missing ones."""
    names: list[str | None] = [None] * count
    if variable in nc.variables:
        for i, row in enumerate(nc.variables[variable][:][:count]):
            text = b"".join(x for x in np.asarray(row).ravel() if x not in (b"", b"\x00")).decode(errors="replace")
            names[i] = text.strip() or None
    return names


# ---------------------------------------------------------------------- writing
def _meshio_mesh(mesh: Mesh, point_data: Mapping[str, np.ndarray] | None,
                 cell_data: Mapping[str, np.ndarray] | None, pad_3d: bool):
    import meshio

    points = mesh.points
    if pad_3d and points.shape[1] < 3:
        points = np.pad(points, ((0, 0), (0, 3 - points.shape[1])))
    pdata = {**mesh.point_data, **(point_data or {})}
    cdata = {**mesh.cell_data, **(cell_data or {})}
    for name, values in {**pdata, **cdata}.items():
        values = np.asarray(values)
        if np.issubdtype(values.dtype, np.number) and not np.isfinite(values).all():
            raise GraphfemError(f"field {name!r} holds NaN or infinite values; refusing to write it")
    pdata = {k: _pad_vector(np.asarray(v), pad_3d) for k, v in pdata.items()}
    cdata = {k: [_pad_vector(np.asarray(v), pad_3d)] for k, v in cdata.items()}
    for name, tag in mesh.tags.items():  # cell tags as 0/1 cell fields, visible in ParaView
        if tag.kind == "cell":
            flag = np.zeros(mesh.n_cells, dtype=np.int32)
            flag[tag.indices] = 1
            cdata.setdefault(f"tag:{name}", [flag])
    return meshio.Mesh(points, [(mesh.cell_type, mesh.cells)], point_data=pdata, cell_data=cdata)


def _with_gmsh_tags(mio, mesh: Mesh, source) -> object:
    """The meshio mesh of ``mesh`` for a gmsh file, its tags as physical
    groups: facet tags as line/triangle/quad (vertex in 1D) elements, node
    tags as points, cell tags on the volume elements (one group per cell: a
    cell in several cell tags keeps the first, with a warning). Point fields
    are kept; cell fields are not (with a warning)."""
    import meshio

    blocks = [(mesh.cell_type, mesh.cells)]
    volume_ids = np.zeros(mesh.n_cells, dtype=np.int64)
    ids, field_data, physical = 0, {}, [volume_ids]
    for tag in mesh.tags.values():
        ids += 1
        if tag.kind == "cell":
            if (volume_ids[tag.indices] != 0).any():
                warn(f"{source}: cell tag {tag.name!r} overlaps another cell tag; gmsh keeps one group per cell")
            free = tag.indices[volume_ids[tag.indices] == 0]
            volume_ids[free] = ids
            field_data[tag.name] = np.array([ids, mesh.tdim])
            continue
        if tag.kind == "facet":
            corners = tag.indices.shape[1]
            ctype = {1: "vertex", 2: "line", 3: "triangle", 4: "quad"}[corners]
            blocks.append((ctype, tag.indices))
            field_data[tag.name] = np.array([ids, mesh.tdim - 1])
        else:
            blocks.append(("vertex", tag.indices[:, None]))
            field_data[tag.name] = np.array([ids, 0])
        physical.append(np.full(tag.size, ids, dtype=np.int64))
    cell_data = {"gmsh:physical": physical, "gmsh:geometrical": physical}
    dropped = [name for name in mio.cell_data if not name.startswith("tag:")]
    if dropped:  # meshio cannot read back gmsh element data beside physical groups
        warn(f"{source}: cell field(s) {', '.join(dropped)} not written to the gmsh file; write .vtu to keep them")
    return meshio.Mesh(mio.points, blocks, point_data=mio.point_data, cell_data=cell_data, field_data=field_data)


def _pad_vector(values: np.ndarray, pad_3d: bool) -> np.ndarray:
    """2-component vectors get a zero z so ParaView shows them as vectors."""
    if pad_3d and values.ndim == 2 and values.shape[1] == 2:
        return np.pad(values, ((0, 0), (0, 1)))
    return values


#: meshio format written for each extension where meshio's own guess is wrong
#: or ambiguous (it takes ``.msh`` for ANSYS).
_DEFAULT_FORMATS = {".msh": "gmsh22", ".inp": "abaqus", ".vtk": "vtk", ".med": "med", ".e": "exodus",
                    ".exo": "exodus"}


def write(path: str | Path, mesh: Mesh, point_data: Mapping[str, np.ndarray] | None = None,
          cell_data: Mapping[str, np.ndarray] | None = None, units: Mapping[str, str] | None = None,
          file_format: str | None = None) -> None:
    """Write ``mesh`` with fields to ``path``, atomically. The format follows
    the extension (``.msh`` is gmsh 4.1) unless ``file_format`` names a meshio
    format (e.g. ``"gmsh22"``). VTU and XDMF files carry the units of each
    field (``units={"u": "K"}``) in a ``units`` field-data entry (VTU) or
    information element (XDMF) that ParaView shows."""
    import meshio

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if file_format is None and suffix not in (".vtu", ".xdmf", ".xmf"):
            file_format = _DEFAULT_FORMATS.get(suffix) or meshio._helpers._filetypes_from_path(path)[0]
        vtk_like = file_format in (None, "vtu", "vtk", "xdmf") and suffix in (".vtu", ".vtk", ".xdmf", ".xmf")
        mio = _meshio_mesh(mesh, point_data, cell_data, pad_3d=vtk_like or file_format.startswith("gmsh"))
        with atomic_path(path) as tmp:
            if suffix == ".vtu" and file_format in (None, "vtu"):
                _write_vtu(tmp, mio, units or {})
            elif suffix in (".xdmf", ".xmf") and file_format in (None, "xdmf"):
                _write_xdmf(tmp, mio, units or {}, path)
            elif file_format.startswith("gmsh"):
                meshio.write(tmp, _with_gmsh_tags(mio, mesh, path), file_format=file_format)
            else:
                meshio.write(tmp, mio, file_format=file_format)
    except GraphfemError as exc:
        raise exc.with_source(path) from None
    except (OSError, ValueError, KeyError, TypeError, meshio.WriteError, meshio.ReadError) as exc:
        raise GraphfemError(f"cannot write: {' '.join(str(exc).split())}", path) from None


def _units_text(units: Mapping[str, str]) -> str:
    return json.dumps(dict(units), sort_keys=True)


def _write_vtu(path: Path, mio, units: Mapping[str, str]) -> None:
    """VTU through pyvista, with the units as a field-data array of the UTF-8
    bytes of a JSON object (a numeric array: meshio cannot read VTK string
    arrays, and refuses the whole file when it meets one)."""
    import pyvista as pv

    grid = pv.from_meshio(mio)
    if units:
        grid.field_data["units"] = np.frombuffer(_units_text(units).encode(), dtype=np.uint8)
    grid.save(path, binary=True)


def _write_xdmf(path: Path, mio, units: Mapping[str, str], final: Path) -> None:
    """XDMF at the temporary ``path`` with HDF5 heavy data; the ``.h5`` that
    meshio writes next to it is renamed to ``final``'s stem, and the XML
    pointed at it."""
    import meshio

    meshio.xdmf.write(path, mio)
    tmp_h5, h5 = path.with_suffix(".h5"), final.with_suffix(".h5")
    try:
        tree = ET.parse(path)
        for item in tree.getroot().iter("DataItem"):
            if item.text and item.text.strip().startswith(tmp_h5.name + ":"):
                item.text = h5.name + item.text.strip()[len(tmp_h5.name):]
        if units:
            grid = tree.getroot().find(".//Grid")
            info = ET.SubElement(grid, "Information", Name="units", Value=_units_text(units))
            info.text = "<units/>"  # meshio parses Information text as XML field data: give it an empty one
        tree.write(path)
        os.replace(tmp_h5, h5)
    finally:
        tmp_h5.unlink(missing_ok=True)


def read_units(path: str | Path) -> dict[str, str]:
    """The field units stored by :func:`write` in a VTU or XDMF file."""
    path = Path(path)
    if path.suffix.lower() == ".vtu":
        import pyvista as pv

        grid = pv.read(path)
        if "units" not in grid.field_data:
            return {}
        raw = np.asarray(grid.field_data["units"]).ravel()
        text = raw.astype(np.uint8).tobytes().decode() if raw.dtype.kind in "iu" else str(raw[0])
        return json.loads(text)
    info = ET.parse(path).getroot().find(".//Information[@Name='units']")
    return {} if info is None else json.loads(info.get("Value"))


def write_series(path: str | Path, mesh: Mesh, times: Sequence[float],
                 point_data: Mapping[str, np.ndarray], units: Mapping[str, str] | None = None) -> None:
    """Write a time series for ParaView: ``.pvd`` (one VTU per step, in
    ``<stem>_steps/``) or ``.xdmf`` (one HDF5 heavy-data file, in
    ``<stem>_xdmf/``).

    A series is visible all at once, also to a reader that follows it while
    it is rewritten: each write puts its data in a fresh version inside that
    folder (``<version>/step_00000.vtu ...`` or ``<version>.h5``), then
    renames the index (``.pvd`` / ``.xdmf``) onto ``path``, which switches
    every step at once. The version the index
    pointed at before stays for readers still on it, older ones are deleted.
    Writers of one series take turns (a lock on the folder), so concurrent
    writers never fail and the last one's series stays.

    Args:
        times: (T,) output times.
        point_data: name -> (T, n) or (T, n, c) values at the mesh nodes.
    """
    path = Path(path)
    times = np.asarray(times, dtype=float)
    for name, values in point_data.items():
        if np.shape(values)[0] != len(times):
            raise GraphfemError(f"field {name!r} has {np.shape(values)[0]} steps for {len(times)} times", path)
    with streamed_series(path, mesh, units) as append:
        for k, t in enumerate(times):
            append(float(t), {name: np.asarray(values[k]) for name, values in point_data.items()})


@contextlib.contextmanager
def streamed_series(path: str | Path, mesh: Mesh,
                    units: Mapping[str, str] | None = None) -> Iterator[Callable[[float, Mapping], None]]:
    """A time series written step by step, for solvers that cannot hold every
    step in memory: the block gets ``append(t, {name: (n,) or (n, c)})``,
    each step goes to disk at once, and the series appears (atomically, as
    in :func:`write_series`) when the block ends; if it raises, nothing
    appears.

    Raises:
        GraphfemError: ``path`` is not ``.pvd``/``.xdmf``, a field holds NaN
            or infinite values, or the block appends no step.
    """
    import meshio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".pvd", ".xdmf", ".xmf"):
        raise GraphfemError("time series must be written as .pvd or .xdmf", path)
    units = dict(units or {})
    with series_writer(path) as (folder, version):
        steps: list[tuple[float, str]] = []
        if suffix == ".pvd":
            def write_step(t: float, fields: Mapping) -> None:
                step = folder / version / f"step_{len(steps):05d}.vtu"
                _write_vtu(step, _meshio_mesh(mesh, fields, None, True), units)
                steps.append((t, f"{folder.name}/{version}/{step.name}"))
        else:
            base = _meshio_mesh(mesh, None, None, True)
            draft = (folder / version / "series.xdmf").resolve()
            writer = meshio.xdmf.TimeSeriesWriter(draft)
            with _working_directory(draft.parent):  # meshio opens the .h5 in the current folder
                writer.__enter__()
            writer.write_points_cells(base.points, base.cells)

            def write_step(t: float, fields: Mapping) -> None:
                writer.write_data(t, point_data={n: _pad_vector(np.asarray(v), True) for n, v in fields.items()})
                steps.append((t, ""))

        def append(t: float, fields: Mapping) -> None:
            for name, values in fields.items():
                values = np.asarray(values)
                if np.issubdtype(values.dtype, np.number) and not np.isfinite(values).all():
                    raise GraphfemError(f"field {name!r} holds NaN or infinite values at t = {t:g}; refusing to "
                                        "write it", path)
            write_step(float(t), fields)

        try:
            yield append
        finally:
            if suffix != ".pvd":
                writer.__exit__(None, None, None)
        if not steps:
            raise GraphfemError("time series has no steps", path)
        if suffix == ".pvd":
            collection = ET.Element("VTKFile", type="Collection", version="0.1")
            entries = ET.SubElement(collection, "Collection")
            for t, name in steps:
                ET.SubElement(entries, "DataSet", timestep=repr(t), part="0", file=name)
            with atomic_path(path) as tmp:
                ET.ElementTree(collection).write(tmp, xml_declaration=True)
        else:
            h5 = folder / f"{version}.h5"
            os.replace(draft.with_suffix(".h5"), h5)
            tree = ET.parse(draft)
            for item in tree.getroot().iter("DataItem"):
                text = (item.text or "").strip()
                if text.startswith("series.h5:"):
                    item.text = f"{folder.name}/{h5.name}" + text[len("series.h5"):]
            with atomic_path(path) as tmp:
                tree.write(tmp)
            draft.unlink()
            draft.parent.rmdir()


@contextlib.contextmanager
def series_writer(path: Path) -> Iterator[tuple[Path, str]]:
    """The data folder (``<stem>_steps/``, ``<stem>_xdmf/``) of the series ``path`` (created; locked for this
    writer) and the name of a fresh version in it. The block writes the version's data and renames the index
    onto ``path``; afterwards every entry of the folder but the new version and the one the old index used is
    deleted. On failure the new version is deleted (and the folder, if it is left empty)."""
    import fcntl
    import shutil

    folder = path.with_name(f"{path.stem}_{'steps' if path.suffix.lower() == '.pvd' else 'xdmf'}")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = os.open(folder, os.O_RDONLY)  # a lock on the folder itself: no lock file to leave behind
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        previous = _series_versions(path, folder)
        version = Path(tempfile.mkdtemp(prefix="v", dir=folder)).name
        try:
            yield folder, version
        except BaseException:
            for entry in folder.glob(f"{version}*"):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            if created and not any(folder.iterdir()):
                folder.rmdir()
            raise
        keep = {version, f"{version}.h5"} | previous
        for entry in folder.iterdir():
            if entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
    finally:
        os.close(lock)


def _series_versions(path: Path, folder: Path) -> set[str]:
    """The entries of ``folder`` that the series index ``path`` refers to now (none if it is missing or
    unreadable)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return set()
    names = [e.get("file", "") for e in root.iter("DataSet")]
    names += [(item.text or "").strip().split(":")[0] for item in root.iter("DataItem")]
    prefix = f"{folder.name}/"
    return {name[len(prefix):].split("/")[0] for name in names if name.startswith(prefix)}


@contextlib.contextmanager
def _working_directory(folder: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def read_series(path: str | Path) -> tuple[Mesh, np.ndarray, dict[str, np.ndarray]]:
    """Read a PVD or XDMF time series written by :func:`write_series` (or by
    ParaView): the mesh, the times (T,) and point fields name -> (T, n, ...)."""
    path = Path(path)
    for _ in range(8):  # a concurrent rewrite may delete the steps an old index named: read the new one
        if not path.exists():
            raise GraphfemError("no such file", path)
        # the index's bytes, not its inode: a replaced file's inode number can come back two rewrites later
        before = None
        with contextlib.suppress(OSError):
            before = path.read_bytes()
        try:
            return _read_series(path)
        except GraphfemError:
            with contextlib.suppress(OSError):
                if path.read_bytes() != before:  # the index was replaced while it was read
                    continue
            raise
    return _read_series(path)


def _read_series(path: Path) -> tuple[Mesh, np.ndarray, dict[str, np.ndarray]]:
    import meshio

    try:
        if path.suffix.lower() == ".pvd":
            root = ET.parse(path).getroot()
            entries = sorted(root.iter("DataSet"), key=lambda e: float(e.get("timestep", 0)))
            times = np.array([float(e.get("timestep", 0)) for e in entries])
            steps = [meshio.read(path.parent / e.get("file")) for e in entries]
            mesh = from_meshio(steps[0], source=str(path))
            fields = {name: np.stack([s.point_data[name] for s in steps]) for name in steps[0].point_data}
        else:
            with meshio.xdmf.TimeSeriesReader(path) as reader:
                pts, cells = reader.read_points_cells()
                times, data = [], []
                for k in range(reader.num_steps):
                    t, pdata, _ = reader.read_data(k)
                    times.append(t)
                    data.append(pdata)
            mesh = from_meshio(meshio.Mesh(pts, cells), source=str(path))
            times = np.asarray(times)
            fields = {name: np.stack([d[name] for d in data]) for name in data[0]} if data else {}
    except GraphfemError:
        raise
    except (Exception, SystemExit) as exc:
        raise GraphfemError(f"cannot read time series: {' '.join(str(exc).split())}", path) from None
    if not len(times):
        raise GraphfemError("time series has no steps", path)
    return mesh, times, fields
