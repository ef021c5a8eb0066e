"""Off-screen PNG renders of result files with pyvista."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from graphfem.meshes.errors import GraphfemError
from graphfem.meshes.io import atomic_path


def _quiet_vtk() -> None:
    """Silence VTK's console logger (it warns about a missing X display even
    when off-screen rendering works)."""
    import vtk

    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_OFF)
    vtk.vtkObject.GlobalWarningDisplayOff()


def colour_map(values: np.ndarray, signed: bool | None = None) -> dict:
    """pyvista colour arguments for ``values`` (n,) or (n, c): a diverging ``RdBu_r`` map with
    limits ±max|v| (0 in the middle, white) for a signed scalar (``signed=None``: when it takes
    both signs), else ``viridis`` over the data range (vectors are drawn by magnitude)."""
    scalar = values.ndim == 1 or values.shape[1] == 1
    if signed is None:
        signed = bool(values.size) and values.min() < 0 < values.max()
    if not (signed and scalar):
        return {"cmap": "viridis"}
    extent = float(np.abs(values).max()) or 1.0
    return {"cmap": "RdBu_r", "clim": (-extent, extent)}


#: fraction of the window's height kept clear under the picture for the scalar bar and its title: a 2D
#: window is already 150 px taller than its domain; a 3D isometric view fills its window
BAR_STRIP = {2: 0.11, 3: 0.22}


def _leave_room_below(camera, strip: float) -> None:
    """Zoom the camera out by 1/(1 − strip) and move it down so that the picture keeps the
    top of the view and ends ``strip`` of the window's height above the bottom.

    In units of the view's half-height h (the parallel scale, or d·tan(α/2) in perspective at
    the focal distance d), the zoom puts the old view's edges at ±(1 − strip); moving the
    camera by −strip·h along its view-up vector puts them at 1 and −1 + 2·strip."""
    camera.zoom(1 - strip)
    if camera.parallel_projection:
        half = camera.parallel_scale
    else:
        half = camera.distance * np.tan(np.radians(camera.view_angle) / 2)
    shift = -strip * half * np.asarray(camera.up, float) / np.linalg.norm(camera.up)
    camera.focal_point = tuple(np.asarray(camera.focal_point, float) + shift)
    camera.position = tuple(np.asarray(camera.position, float) + shift)


def render(path: str | Path, png: str | Path, field: str | None = None, title: str | None = None,
           window_size: tuple[int, int] | None = None, warp: float | None = None, edges: bool | None = None,
           zoom: float = 1.0, signed: bool | None = None) -> str:
    """Render a VTU (or any file pyvista reads) to a PNG with a scalar bar.

    Args:
        path: result file.
        png: output picture (written atomically).
        field: point or cell field to colour by (default: the first point
            field); vectors are shown by magnitude.
        title: scalar-bar title (default: the field name and its unit).
        warp: warp the mesh by ``warp`` × a vector point field: the drawn
            field when it is a vector, else ``displacement`` (or the first
            vector point field).
        edges: draw cell edges (default: below 5000 cells).
        zoom: camera zoom (> 1 magnifies; 1 fits the whole mesh).
        window_size: picture size in pixels (default: 1000 x 700, or fitted
            to the aspect ratio of a 2D domain).
        signed: a diverging map (RdBu_r) with limits ±max|value|, so that 0 is
            white, for a signed scalar (an error, a mode); by default when the
            scalar takes both signs. Otherwise viridis over [min, max].

    Returns:
        The name of the field drawn.
    """
    import pyvista as pv

    from graphfem.meshes.io import read_units

    path, png = Path(path), Path(png)
    if not path.exists():
        raise GraphfemError("no such file", path)
    _quiet_vtk()
    try:
        grid = pv.read(path)
    except Exception as exc:  # VTK readers raise many types on corrupt files
        raise GraphfemError(f"cannot read: {' '.join(str(exc).split())}", path) from None
    names = list(grid.point_data.keys()) + [n for n in grid.cell_data.keys() if not n.startswith("tag:")]
    if field is None:
        if not names:
            raise GraphfemError("the file holds no fields to render", path)
        field = names[0]
    if field not in names:
        raise GraphfemError(f"no field {field!r}; available: {', '.join(names) or 'none'}", path)
    values = np.asarray(grid.point_data[field] if field in grid.point_data else grid.cell_data[field])
    if warp:
        vectors = [n for n in grid.point_data.keys() if np.asarray(grid.point_data[n]).ndim == 2
                   and np.asarray(grid.point_data[n]).shape[1] == 3]
        by = field if field in vectors else ("displacement" if "displacement" in vectors else
                                             (vectors[0] if vectors else None))
        if by is None:
            raise GraphfemError("--warp needs a vector point field (e.g. displacement); the file has none", path)
        grid = grid.warp_by_vector(by, factor=warp)
    units = read_units(path) if path.suffix.lower() == ".vtu" else {}
    label = title or (f"{field} [{units[field]}]" if field in units else field)
    is_2d = bool(np.allclose(grid.points[:, 2], 0.0))
    if is_2d and window_size is None:  # fit the window to a 2D domain's aspect ratio (room for the bar)
        width, height = np.ptp(grid.points[:, :2], axis=0)
        window_size = (1400, int(np.clip(1100 * height / max(width, 1e-300), 250, 1000)) + 150)
    plotter = pv.Plotter(off_screen=True, window_size=list(window_size or (1000, 700)))
    # horizontal, centred under the picture: a vertical bar's title, centred on the bar at the window's
    # edge, was clipped
    bar = {"title": "", "vertical": False, "title_font_size": 18, "label_font_size": 16, "fmt": "%.3g",
           "position_x": 0.2, "position_y": 0.04, "width": 0.6, "height": 0.08}
    plotter.add_mesh(grid, scalars=field, **colour_map(values, signed), show_edges=grid.n_cells < 5000 if edges is None else edges,
                     edge_color="#555555", line_width=0.3, scalar_bar_args=bar)
    # VTK draws a bar's title and its ticks on the same side, where they overlap: ticks under the bar, the
    # title as a centred text above it
    plotter.scalar_bar.SetTextPositionToPrecedeScalarBar()
    title_actor = plotter.add_text(label, position=(0, 0), font_size=12)
    title_actor.GetTextProperty().SetJustificationToCentered()
    title_actor.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
    title_actor.GetPositionCoordinate().SetValue(0.5, bar["position_y"] + bar["height"] + 0.01)
    if is_2d:
        plotter.view_xy()
        plotter.camera.tight(padding=0.15, adjust_render_window=False)
    else:
        plotter.view_isometric()
        plotter.reset_camera()
    plotter.camera.zoom(zoom)
    _leave_room_below(plotter.camera, BAR_STRIP[2 if is_2d else 3])
    plotter.add_text(f"{label}: {path.name}" + (f" (warped x{warp:g})" if warp else ""), font_size=10)
    with atomic_path(png) as tmp:
        plotter.screenshot(str(tmp))
    plotter.close()
    return field
