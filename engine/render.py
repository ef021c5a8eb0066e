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


def render(path: str | Path, png: str | Path, field: str | None = None, title: str | None = None,
           window_size: tuple[int, int] | None = None, warp: float | None = None, edges: bool | None = None,
           zoom: float = 1.0) -> str:
    """Render a VTU (or any file pyvista reads) to a PNG with a scalar bar.

    Args:
        path: result file.
        png: output picture (written atomically).
        field: point or cell field to colour by (default: the first point
            field); vectors are shown by magnitude.
        title: scalar-bar title (default: the field name and its unit).
        warp: for vector fields, warp the mesh by ``warp`` × the field.
        edges: draw cell edges (default: below 5000 cells).
        zoom: camera zoom (> 1 magnifies; 1 fits the whole mesh).
        window_size: picture size in pixels (default: 1000 x 700, or fitted
            to the aspect ratio of a 2D domain).

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
    if warp and values.ndim == 2 and field in grid.point_data:
        grid = grid.warp_by_vector(field, factor=warp)
    units = read_units(path) if path.suffix.lower() == ".vtu" else {}
    label = title or (f"{field} [{units[field]}]" if field in units else field)
    is_2d = bool(np.allclose(grid.points[:, 2], 0.0))
    if is_2d and window_size is None:  # fit the window to a 2D domain's aspect ratio (room for the bar)
        width, height = np.ptp(grid.points[:, :2], axis=0)
        window_size = (1400, int(np.clip(1100 * height / max(width, 1e-300), 250, 1000)) + 150)
    plotter = pv.Plotter(off_screen=True, window_size=list(window_size or (1000, 700)))
    plotter.add_mesh(grid, scalars=field, cmap="viridis", show_edges=grid.n_cells < 5000 if edges is None else edges,
                     edge_color="#555555", line_width=0.3,
                     scalar_bar_args={"title": label, "vertical": not is_2d or window_size[0] < 1.5 * window_size[1]})
    if is_2d:
        plotter.view_xy()
        plotter.camera.tight(padding=0.15, adjust_render_window=False)
    else:
        plotter.view_isometric()
    plotter.camera.zoom(zoom)
    plotter.add_text(path.name, font_size=9)
    with atomic_path(png) as tmp:
        plotter.screenshot(str(tmp))
    plotter.close()
    return field
