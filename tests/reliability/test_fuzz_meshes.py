"""Seeded corruptions of a mesh file of every format graphfem reads, served
by ``graphfem info FILE`` (in-process) and :meth:`graphfem.meshes.Mesh.read`:
flipped bytes, truncations, foreign bytes and deleted lines, in gmsh 2.2 and
4.1 (ASCII and binary), VTU, legacy VTK (binary, and VTK 9's ASCII), Abaqus,
Exodus (netCDF-4 as meshio writes it, and netCDF-3 with a named block, node
and side sets as SEACAS tools write it), XDMF (its XML and its HDF5 heavy
data), STL and OBJ.

Each damaged file is either read (the damage left a valid mesh) or refused
with exit 1 and one ``graphfem: error:`` line naming the file, at the file
descriptor level too (nothing printed by meshio, netCDF or HDF5); never a
crash, a traceback, an "unexpected" error, a hang or a file left behind, and
the API agrees with the CLI. The default run draws a sample; ``-m slow``
draws hundreds (``--junitxml`` records each damage and its outcome)."""
from __future__ import annotations

import contextlib
import shutil
import signal
import warnings
from pathlib import Path

import meshio
import numpy as np
import pytest

from graphfem.cli import main
from graphfem.meshes import Mesh, MeshWarning
from graphfem.meshes.errors import GraphfemError

DECK = """*Heading
 a plate of plane-strain quads and triangles, its nodes in an include
*Include, input=plate_nodes.inp
*Element, type=CPE4, elset=QUADS
1, 1, 2, 5, 4
2, 2, 3, 6, 5
*Element, type=CPE3, elset=TRIS
3, 4, 5, 8
4, 5, 9, 8
5, 5, 6, 9
6, 4, 8, 7
*Nset, nset=LEFT, generate
1, 7, 3
*Elset, elset=ALL
QUADS, TRIS
*Surface, type=ELEMENT, name=BOTTOM
QUADS, S1
"""
NODES = "*Node\n" + "".join(f"{3 * j + i + 1}, {0.5 * i}, {0.5 * j}\n" for j in range(3) for i in range(3))
HANG_SECONDS = 60


def _classic_exodus(path: Path, mesh: Mesh) -> None:
    """An Exodus II file in netCDF-3 (64-bit offset), the layout SEACAS tools
    write: one named triangle block, a node set and a side set (the bottom)."""
    import netCDF4

    bottom = [(e + 1, 1) for e, cell in enumerate(mesh.cells) if np.all(mesh.points[cell[:2], 1] == 0.0)]
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
        nc.setncatts({"api_version": np.float32(8.1), "version": np.float32(8.1), "floating_point_word_size": 8,
                      "file_size": 1, "title": "fuzz"})
        for name, size in {"len_string": 33, "len_line": 81, "four": 4, "num_dim": 2, "num_nodes": mesh.n_points,
                           "num_elem": mesh.n_cells, "num_el_blk": 1, "num_node_sets": 1, "num_side_sets": 1,
                           "num_el_in_blk1": mesh.n_cells, "num_nod_per_el1": 3, "num_nod_ns1": 1,
                           "num_side_ss1": len(bottom)}.items():
            nc.createDimension(name, size)
        nc.createDimension("time_step", None)
        nc.createVariable("time_whole", "f8", ("time_step",))
        for axis, name in enumerate(("coordx", "coordy")):
            nc.createVariable(name, "f8", ("num_nodes",))[:] = mesh.points[:, axis]
        connect = nc.createVariable("connect1", "i4", ("num_el_in_blk1", "num_nod_per_el1"))
        connect.elem_type = "TRI3"
        connect[:] = mesh.cells + 1
        nc.createVariable("eb_prop1", "i4", ("num_el_blk",))[:] = [7]
        nc.createVariable("eb_names", "S1", ("num_el_blk", "len_string"))[0] = netCDF4.stringtochar(
            np.array(["plate"], dtype="S33"))
        nc.createVariable("node_ns1", "i4", ("num_nod_ns1",))[:] = [1]
        nc.createVariable("ns_names", "S1", ("num_node_sets", "len_string"))[0] = netCDF4.stringtochar(
            np.array(["origin"], dtype="S33"))
        nc.createVariable("elem_ss1", "i4", ("num_side_ss1",))[:] = [e for e, _ in bottom]
        nc.createVariable("side_ss1", "i4", ("num_side_ss1",))[:] = [side for _, side in bottom]
        nc.createVariable("ss_names", "S1", ("num_side_sets", "len_string"))[0] = netCDF4.stringtochar(
            np.array(["bottom"], dtype="S33"))


def _surface() -> Mesh:
    box = Mesh.box(2)
    return Mesh(box.points, "triangle", box.boundary_facets())


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, shared_meshes) -> dict[str, tuple[Path, list[Path]]]:
    """name -> (the file to damage, its companions copied beside it unchanged)."""
    from pyvista import examples

    folder = tmp_path_factory.mktemp("fuzz_meshes")
    square = Mesh.rectangle(4, 3, x1=2.0)
    u = {"u": np.sin(square.points[:, 0])}
    square.write(folder / "gmsh22.msh", point_data=u)
    shutil.copy(shared_meshes / "skfem_annulus.msh", folder / "gmsh41.msh")
    shutil.copy(shared_meshes / "skfem_cylinder_stokes.msh", folder / "gmsh41_binary.msh")
    square.write(folder / "mesh.vtu", point_data=u, units={"u": "K"})
    square.write(folder / "mesh.vtk", point_data=u)
    shutil.copy(examples.hexbeamfile, folder / "hexbeam.vtk")
    (folder / "plate.inp").write_text(DECK)
    (folder / "plate_nodes.inp").write_text(NODES)
    meshio.write(folder / "mesh.exo", meshio.Mesh(square.points, [(square.cell_type, square.cells)],
                                                  point_sets={"origin": np.array([0])}))
    _classic_exodus(folder / "classic.exo", square)
    square.write(folder / "mesh.xdmf", point_data=u)
    _surface().write(folder / "surface.stl")
    _surface().write(folder / "surface.obj")
    xdmf = [folder / "mesh.xdmf", folder / "mesh.h5"]
    files = {name: (folder / name, []) for name in ("gmsh22.msh", "gmsh41.msh", "gmsh41_binary.msh", "mesh.vtu",
                                                     "mesh.vtk", "hexbeam.vtk", "mesh.exo", "classic.exo",
                                                     "surface.stl",
                                                     "surface.obj")}
    files["plate.inp"] = (folder / "plate.inp", [folder / "plate_nodes.inp"])
    files["mesh.xdmf"] = (xdmf[0], [xdmf[1]])
    files["mesh.xdmf:h5"] = (xdmf[1], [xdmf[0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeshWarning)
        for path, _ in files.values():  # every pristine file reads
            Mesh.read(path.with_suffix(".xdmf") if path.suffix == ".h5" else path)
    classic = Mesh.read(folder / "classic.exo")
    assert classic.tag("plate").size == square.n_cells and classic.tag("bottom").size == 4
    return files


TARGETS = ("gmsh22.msh", "gmsh41.msh", "gmsh41_binary.msh", "mesh.vtu", "mesh.vtk", "hexbeam.vtk", "plate.inp",
           "mesh.exo", "classic.exo", "mesh.xdmf", "mesh.xdmf:h5", "surface.stl", "surface.obj")


def corrupt(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One random damage of ``data``, different from it, and its kind."""
    while True:
        kind = ("flip", "truncate", "foreign", "delete lines")[int(rng.integers(4))]
        if kind == "flip":
            damaged = bytearray(data)
            for i in rng.integers(0, len(data), rng.integers(1, 6)):
                damaged[i] ^= int(rng.integers(1, 256))
        elif kind == "truncate":
            damaged = data[:int(rng.integers(0, len(data)))]
        elif kind == "foreign":
            at = int(rng.integers(0, len(data) + 1))
            damaged = data[:at] + rng.bytes(int(rng.integers(1, 512))) + data[at if rng.random() < 0.5 else len(data):]
        else:
            lines = data.split(b"\n")
            for _ in range(int(rng.integers(1, 4))):
                if len(lines) > 1:
                    lines.pop(int(rng.integers(len(lines))))
            damaged = b"\n".join(lines)
        if bytes(damaged) != data:
            return bytes(damaged), kind


@contextlib.contextmanager
def _deadline(seconds: int):
    def hang(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def damaged_case(pristine, folder: Path, seed: int) -> tuple[Path, str]:
    """Write seed's damaged file (and its unchanged companions) into ``folder``;
    return the path to read and a description."""
    target = TARGETS[seed % len(TARGETS)]
    source, companions = pristine[target]
    rng = np.random.default_rng([18, seed])
    damaged, kind = corrupt(source.read_bytes(), rng)
    (folder / source.name).write_bytes(damaged)
    for companion in companions:
        (folder / companion.name).write_bytes(companion.read_bytes())
    read_path = folder / ("mesh.xdmf" if target == "mesh.xdmf:h5" else source.name)
    return read_path, f"{target} {kind}"


def outcome(capfd, path: Path) -> str:
    """``"read"`` or ``"refused"``; fails on anything else."""
    folder = path.parent
    before = sorted(p.name for p in folder.iterdir())
    capfd.readouterr()
    with _deadline(HANG_SECONDS), warnings.catch_warnings():
        warnings.simplefilter("ignore", MeshWarning)
        code = main(["info", str(path)])
        out, err = capfd.readouterr()
        try:
            Mesh.read(path)
            api = "read"
        except GraphfemError as exc:
            assert "\n" not in str(exc), str(exc)
            api = "refused"
        api_out, api_err = capfd.readouterr()
    assert (api_out, api_err) == ("", ""), "the reader printed"
    assert sorted(p.name for p in folder.iterdir()) == before, "a file was left behind"
    assert "Traceback" not in err and "unexpected" not in err, err
    if code == 0:
        assert api == "read"
        return "read"
    lines = err.strip().splitlines()
    assert code == 1 and out == "", (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("graphfem: error: ") and path.name in lines[0], err
    assert api == "refused"
    return "refused"


def _seeds(default: int, slow: int):
    return [pytest.param(s, marks=pytest.mark.slow) if s >= default else s for s in range(slow)]


@pytest.mark.parametrize("seed", _seeds(39, 650))
def test_damaged_meshes_are_read_or_refused_in_one_line(tmp_path, capfd, pristine, seed, record_property):
    """(The outcome is recorded for the README's Reliability table: ``--junitxml`` keeps it.)"""
    path, what = damaged_case(pristine, tmp_path, seed)
    record_property("damage", what)
    record_property("outcome", outcome(capfd, path))


@pytest.mark.parametrize("target", TARGETS)
def test_pristine_files_read_through_info(tmp_path, capfd, pristine, target):
    source, companions = pristine[target]
    for path in [source, *companions]:
        shutil.copy(path, tmp_path / path.name)
    assert outcome(capfd, tmp_path / ("mesh.xdmf" if target.endswith(":h5") else source.name)) == "read"
