"""The :class:`Problem` base and the :class:`Solution` value every FE solver returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from graphfem.meshes import FESpace, Mesh, Trajectory


@dataclass(eq=False)
class Solution:
    """The result of one FE solve.

    Attributes:
        space: the :class:`~graphfem.meshes.FESpace` the solution lives in.
        dofs: name -> dof vector (n_dofs,) in ``space`` (for example ``"u"``,
            ``"displacement"`` with dofs interleaved per node).
        fields: name -> values at the mesh nodes, (n_points,) or (n_points, c).
        units: field name -> unit string.
        info: solver facts: the linear solver's ``method``, ``iterations``,
            ``residual``, timings, and problem-specific entries.
        trajectory: the time series, for time-dependent problems (else ``None``).
    """

    space: FESpace
    dofs: dict[str, np.ndarray]
    fields: dict[str, np.ndarray]
    units: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    trajectory: Trajectory | None = None

    @property
    def mesh(self) -> Mesh:
        return self.space.mesh

    def write(self, path) -> None:
        """Write the nodal fields (with units) to a VTU/XDMF file, atomically;
        a ``.pvd`` path writes the trajectory of a time-dependent solution."""
        if str(path).endswith(".pvd") and self.trajectory is not None:
            self.trajectory.write(path)
            return
        self.mesh.write(path, point_data=self.fields, units=self.units)


class Problem:
    """A PDE problem: a name, the fields it produces with their units, and a solver.

    Subclasses set :attr:`name` and :attr:`fields` and implement :meth:`solve`.
    """

    name: str = ""
    #: field name -> default unit
    fields: Mapping[str, str] = {}

    def solve(self, mesh: Mesh, **params) -> Solution:
        """The FE reference solution on ``mesh`` for the given parameters."""
        raise NotImplementedError

    def describe(self, **params) -> str:
        """One sentence saying what is solved with which parameters."""
        given = ", ".join(f"{k}={v!r}" for k, v in params.items() if not callable(v))
        return f"{self.name} problem" + (f" with {given}" if given else "")
