"""Finite-element spaces on a :class:`Mesh` (a thin value over scikit-fem).

Every norm, inner product and error metric on a non-uniform mesh goes
through the mass matrix M (and stiffness K): ``||u||_{L2}^2 = u^T M u``,
``|u|_{H1}^2 = u^T K u``.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.sparse as sp

from .errors import MeshError
from .mesh import CELL_TYPES, Mesh
from .skfem_bridge import facet_indices, match_rows, to_skfem


def facet_nodes(mesh: Mesh, facets: np.ndarray) -> np.ndarray:
    """All node indices (corner and higher-order) of the given facets.

    Shapes: facets (k, c) corner nodes -> sorted unique node indices.
    For quadratic cells the mid-side/mid-face nodes of each facet are found
    from the cells that contain the facet.
    """
    facets = np.asarray(facets, dtype=np.int64)
    if mesh.order == 1 or facets.size == 0:
        return np.unique(facets)
    nodes = [np.unique(facets)]
    ctype = CELL_TYPES[mesh.cell_type]
    # local higher-order nodes of each facet, from meshio's edge/face ordering
    high = _HIGHER_ORDER_FACET_NODES[mesh.cell_type]
    for local_corners, local_high in zip(ctype.facets, high):
        cell_facets = mesh.cells[:, list(local_corners)]
        hit = match_rows(facets, cell_facets) >= 0
        nodes.append(mesh.cells[hit][:, list(local_high)].ravel())
    return np.unique(np.concatenate(nodes))


# meshio/VTK ordering: the mid-edge node of edge (i, j) and, for quad9, the centre.
_HIGHER_ORDER_FACET_NODES = {
    "line3": ((), ()),
    "triangle6": ((3,), (4,), (5,)),
    "quad8": ((4,), (5,), (6,), (7,)),
    "quad9": ((4,), (5,), (6,), (7,)),
    # tetra10 edges: 4:(0,1) 5:(1,2) 6:(2,0) 7:(0,3) 8:(1,3) 9:(2,3)
    "tetra10": ((4, 5, 6), (4, 8, 7), (5, 9, 8), (6, 9, 7)),
    "hexahedron27": ((8, 9, 10, 11, 24), (12, 13, 14, 15, 25), (8, 17, 12, 16, 22), (9, 18, 13, 17, 21),
                     (10, 19, 14, 18, 23), (11, 16, 15, 19, 20)),
}


class FESpace:
    """A scalar or vector Lagrange space of order 1 or 2 on a mesh.

    Args:
        mesh: a :class:`Mesh` with one cell type and no unused nodes.
        order: polynomial order, 1 or 2 (defaults to the mesh's geometric
            order: P2 on quadratic cells, which makes the space isoparametric).
        vector: a vector space with ``mesh.dim`` components (elasticity);
            dofs are interleaved per node as in scikit-fem's ``ElementVector``.

    Attributes:
        basis: the scikit-fem ``CellBasis``.
        n_dofs: number of degrees of freedom.
    """

    def __init__(self, mesh: Mesh, order: int | None = None, vector: bool = False):
        import skfem

        order = mesh.order if order is None else int(order)
        if order not in (1, 2):
            raise MeshError(f"order must be 1 or 2, got {order}", mesh.source)
        if order < mesh.order:
            raise MeshError(f"P{order} on quadratic {mesh.cell_type} cells is not supported; use order 2",
                            mesh.source)
        self.mesh = mesh
        self._facet_cache: dict[str, np.ndarray] = {}
        self.order = order
        self.vector = vector
        self.skfem_mesh = to_skfem(mesh, with_tags=False)  # tags are matched on demand: facets_of()
        scalar = _element(mesh.cell_type, order)
        element = skfem.ElementVector(scalar, mesh.dim) if vector else scalar
        intorder = 2 * order + (1 if mesh.order > 1 or mesh.cell_type in ("quad", "hexahedron", "quad9") else 0)
        self.basis = skfem.Basis(self.skfem_mesh, element, intorder=intorder)
        self.scalar_basis = self.basis if not vector else skfem.Basis(self.skfem_mesh, scalar, intorder=intorder)

    @property
    def n_dofs(self) -> int:
        return int(self.basis.N)

    @property
    def n_components(self) -> int:
        return self.mesh.dim if self.vector else 1

    @cached_property
    def dof_coordinates(self) -> np.ndarray:
        """(n_dofs, dim) location of each dof (repeated per component for vector spaces)."""
        return np.asarray(self.basis.doflocs).T

    # ------------------------------------------------------------ matrices
    def mass(self, lumped: bool = False) -> sp.csr_matrix:
        """Consistent mass M_ij = ∫ φ_i · φ_j dx, or its row-sum lumping (diagonal)."""
        M = self._mass
        if lumped:
            return sp.diags(np.asarray(M.sum(axis=1)).ravel()).tocsr()
        return M

    @cached_property
    def _mass(self) -> sp.csr_matrix:
        from skfem.helpers import dot
        from skfem import BilinearForm

        if self.vector:
            return BilinearForm(lambda u, v, w: dot(u, v)).assemble(self.basis).tocsr()
        # plain product for scalars: skfem's dot() contracts the leading (element) axis
        return BilinearForm(lambda u, v, w: u * v).assemble(self.basis).tocsr()

    def stiffness(self) -> sp.csr_matrix:
        """Stiffness K_ij = ∫ ∇φ_i : ∇φ_j dx (componentwise for vector spaces)."""
        return self._stiffness

    @cached_property
    def _stiffness(self) -> sp.csr_matrix:
        from skfem import BilinearForm
        from skfem.helpers import ddot, dot, grad

        if self.vector:
            return BilinearForm(lambda u, v, w: ddot(grad(u), grad(v))).assemble(self.basis).tocsr()
        return BilinearForm(lambda u, v, w: dot(grad(u), grad(v))).assemble(self.basis).tocsr()

    # ------------------------------------------------------------ dofs
    def dofs_on(self, tag: str, component: int | None = None) -> np.ndarray:
        """Sorted dofs on a tag (facet tags: every dof on the facets, edge and
        face dofs included; node tags: the dofs at those nodes; cell tags:
        every dof of those cells). ``component`` picks one vector component."""
        t = self.mesh.tag(tag)
        if t.kind == "facet":
            facets = self.facets_of(tag)
            dofs = self.basis.get_dofs(facets).flatten()
        elif t.kind == "cell":
            dofs = np.unique(self.basis.element_dofs[:, t.indices])
        else:
            dofs = self.node_dofs()[np.unique(t.indices)]
            dofs = dofs[dofs >= 0].ravel() if not self.vector else dofs.reshape(-1)
        return np.unique(dofs if component is None else self._component(dofs, component))

    def facets_of(self, tag: str) -> np.ndarray:
        """scikit-fem facet indices of a facet tag (for ``FacetBasis(..., facets=)``)."""
        if tag not in self._facet_cache:
            self._facet_cache[tag] = facet_indices(self.skfem_mesh, self.mesh, tag)
        return self._facet_cache[tag]

    def boundary_dofs(self) -> np.ndarray:
        """Sorted dofs on the whole boundary."""
        return np.unique(self.basis.get_dofs().flatten())

    def _component(self, dofs: np.ndarray, component: int) -> np.ndarray:
        return dofs[dofs % self.n_components == component] if self.vector else dofs

    @cached_property
    def _node_to_dof(self) -> np.ndarray:
        """(n_points, n_components) dof at each mesh node, -1 where no dof sits there
        (e.g. mid-side nodes of a quadratic mesh in a P1 space, which cannot happen
        here since P1 on quadratic meshes is refused)."""
        if self.mesh.order == 1:  # scikit-fem numbers vertices as the mesh does
            idx = np.asarray(self.scalar_basis.nodal_dofs[0], dtype=np.int64)
        else:  # quadratic meshes: match mid-side nodes to dof locations
            from scipy.spatial import cKDTree

            scalar_locs = np.asarray(self.scalar_basis.doflocs).T
            dist, idx = cKDTree(scalar_locs).query(self.mesh.points)
            scale = float(np.ptp(self.mesh.points, axis=0).max()) or 1.0
            idx = np.where(dist <= 1e-10 * scale, idx, -1)
        if not self.vector:
            return idx[:, None]
        nc = self.n_components
        return np.where(idx[:, None] >= 0, idx[:, None] * nc + np.arange(nc)[None], -1)

    def node_dofs(self) -> np.ndarray:
        """(n_points, n_components) dof index at each mesh node."""
        return self._node_to_dof

    # ------------------------------------------------------------ values
    def to_nodes(self, u: np.ndarray) -> np.ndarray:
        """Values at the mesh nodes: (n_points,) for scalar spaces,
        (n_points, dim) for vector spaces. Nodes that carry no dof get the
        interpolated value."""
        u = np.asarray(u)
        idx = self._node_to_dof
        if (idx >= 0).all():
            out = u[idx]
        else:
            out = (self.probe(self.mesh.points) @ u).reshape(self.mesh.n_points, -1)
        return out[:, 0] if not self.vector else out

    def from_nodes(self, values: np.ndarray) -> np.ndarray:
        """Dof vector from nodal values: exact where every dof sits at a node
        (P1, and P2 on quadratic meshes); otherwise the nodal values are
        interpolated (P2 on a linear mesh: the P1 interpolant)."""
        values = np.asarray(values, dtype=float).reshape(self.mesh.n_points, -1)
        idx = self._node_to_dof
        if self.n_dofs == self.mesh.n_points * self.n_components and (idx >= 0).all():
            u = np.zeros(self.n_dofs)
            u[idx.ravel()] = values.ravel()
            return u
        p1 = FESpace(self.mesh, order=1, vector=self.vector) if self.mesh.order == 1 else None
        if p1 is None:
            raise MeshError("cannot build dofs from nodal values on this mesh", self.mesh.source)
        return p1.interpolate_to(self, p1.from_nodes(values))

    def interpolate_to(self, other: "FESpace", u: np.ndarray) -> np.ndarray:
        """Nodal interpolation of a function of this space into ``other``
        (same mesh): evaluates u at the dof locations of ``other``."""
        return self.probe(other.dof_coordinates[:: other.n_components]) @ u if not self.vector else (
            self._probe_vector(other.dof_coordinates[:: other.n_components]) @ u).reshape(-1)

    def interpolate(self, function) -> np.ndarray:
        """Dof vector of the nodal interpolant of ``function(x) -> values``,
        x of shape (dim, ...) as in scikit-fem."""
        return _nodal_interpolant(self, function)

    def probe(self, points: np.ndarray) -> sp.csr_matrix:
        """Point-evaluation matrix P (n_points, n_dofs): (P u)_i = u(x_i).

        Points outside the mesh raise a :class:`MeshError`. For vector
        spaces, rows are interleaved per point and component.
        """
        points = np.atleast_2d(np.asarray(points, dtype=float))
        if points.shape[1] != self.mesh.dim:
            raise MeshError(f"probe points have {points.shape[1]} coordinates, the mesh {self.mesh.dim}",
                            self.mesh.source)
        if self.vector:
            return self._probe_vector(points)
        return self._probe_scalar(points)

    def _probe_scalar(self, points: np.ndarray) -> sp.csr_matrix:
        basis = self.scalar_basis
        # located here, not by scikit-fem's element finders: those are missing for
        # quadratic geometry, raise bare exceptions (quads, hexes) or mis-assign
        # points outside the mesh (lines)
        cells, ref = self._locate(points)
        phis = np.array([basis.elem.gbasis(basis.mapping, ref[:, :, None], k, tind=cells)[0].ravel()
                         for k in range(basis.Nbfun)])
        rows = np.tile(np.arange(len(points)), basis.Nbfun)
        cols = basis.element_dofs[:, cells].ravel()
        return sp.csr_matrix((phis.ravel(), (rows, cols)), shape=(len(points), basis.N))

    def _locate(self, points: np.ndarray, candidates: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """Cell containing each point and the point's reference coordinates.

        Shapes: points (r, dim) -> cells (r,), reference coordinates (dim, r).
        Tries the cells with the nearest corner centroids first, then all cells.
        """
        from scipy.spatial import cKDTree

        mesh = self.mesh
        centroids = mesh.points[mesh.corner_cells].mean(axis=1)
        k = min(candidates, mesh.n_cells)
        near = cKDTree(centroids).query(points, k)[1].reshape(len(points), k)
        cells = np.full(len(points), -1, dtype=np.int64)
        ref = np.zeros((mesh.dim, len(points)))
        for j in range(k):
            todo = np.flatnonzero(cells < 0)
            if todo.size == 0:
                break
            found, X = self._inverse_map(points[todo], near[todo, j])
            cells[todo[found]], ref[:, todo[found]] = near[todo[found], j], X[:, found]
        for i in np.flatnonzero(cells < 0):  # rare: search every cell
            everywhere = np.arange(mesh.n_cells)
            found, X = self._inverse_map(np.repeat(points[i:i + 1], mesh.n_cells, axis=0), everywhere)
            if not found.any():
                raise MeshError(f"probe point {i} at {points[i].tolist()} is outside the mesh", mesh.source)
            first = int(np.argmax(found))
            cells[i], ref[:, i] = first, X[:, first]
        return cells, ref

    def _inverse_map(self, x: np.ndarray, tind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Newton inversion of the cell maps: reference X with F_tind(X) = x
        (one step for affine cells).

        Shapes: x (r, dim), tind (r,) -> inside (r,) bool, X (dim, r).
        """
        mapping = self.scalar_basis.mapping
        simplex = self.mesh.cell_type in ("line", "line3", "triangle", "triangle6", "tetra", "tetra10")
        target = x.T[:, :, None]
        X = np.full(target.shape, 1.0 / (self.mesh.dim + 1) if simplex else 0.5)
        with np.errstate(all="ignore"):
            for _ in range(30):
                dX = np.einsum("ijkl,jkl->ikl", mapping.invDF(X, tind), target - mapping.F(X, tind))
                X = X + dX
                if not (np.abs(dX) > 1e-13).any():
                    break
            residual = np.abs(mapping.F(X, tind) - target).max(axis=0)[:, 0]
        X = X[:, :, 0]
        scale = float(np.ptp(self.mesh.points, axis=0).max()) or 1.0
        tol = 1e-9
        inside = (X >= -tol).all(axis=0) & (residual <= 1e-9 * scale)
        inside &= (X.sum(axis=0) <= 1 + tol) if simplex else (X <= 1 + tol).all(axis=0)
        return inside & np.isfinite(X).all(axis=0), X

    def _probe_vector(self, points: np.ndarray) -> sp.csr_matrix:
        P = self._probe_scalar(points).tocoo()
        nc = self.n_components
        rows = (P.row[:, None] * nc + np.arange(nc)).ravel()
        cols = (P.col[:, None] * nc + np.arange(nc)).ravel()
        data = np.repeat(P.data, nc)
        return sp.csr_matrix((data, (rows, cols)), shape=(P.shape[0] * nc, self.n_dofs))

    # ------------------------------------------------------------ norms
    def inner_l2(self, u: np.ndarray, v: np.ndarray) -> float:
        """⟨u, v⟩_{L2} = u^T M v."""
        return float(np.asarray(u) @ (self._mass @ np.asarray(v)))

    def norm_l2(self, u: np.ndarray) -> float:
        """||u||_{L2} = sqrt(u^T M u)."""
        return float(np.sqrt(max(self.inner_l2(u, u), 0.0)))

    def seminorm_h1(self, u: np.ndarray) -> float:
        """|u|_{H1} = sqrt(u^T K u)."""
        u = np.asarray(u)
        return float(np.sqrt(max(u @ (self._stiffness @ u), 0.0)))

    def norm_h1(self, u: np.ndarray) -> float:
        """||u||_{H1} = sqrt(u^T (M + K) u)."""
        return float(np.hypot(self.norm_l2(u), self.seminorm_h1(u)))

    def relative_l2_error(self, prediction: np.ndarray, reference: np.ndarray) -> float:
        """||prediction − reference||_{L2} / ||reference||_{L2} in the mass-matrix norm."""
        ref = self.norm_l2(reference)
        return self.norm_l2(np.asarray(prediction) - np.asarray(reference)) / (ref if ref > 0 else 1.0)

    def __repr__(self) -> str:
        kind = f"vector[{self.n_components}] " if self.vector else ""
        return f"FESpace({kind}P{self.order} on {self.mesh.n_cells} {self.mesh.cell_type}, {self.n_dofs} dofs)"


def _nodal_interpolant(space: FESpace, function) -> np.ndarray:
    x = np.asarray(space.scalar_basis.doflocs)
    values = np.asarray(function(x), dtype=float)
    if space.vector:
        return values.reshape(space.n_components, -1).T.ravel()
    return values.ravel()


def _element(cell_type: str, order: int):
    import skfem

    table = {
        ("line", 1): skfem.ElementLineP1, ("line", 2): skfem.ElementLineP2,
        ("triangle", 1): skfem.ElementTriP1, ("triangle", 2): skfem.ElementTriP2,
        ("triangle6", 2): skfem.ElementTriP2,
        ("quad", 1): skfem.ElementQuad1, ("quad", 2): skfem.ElementQuad2, ("quad9", 2): skfem.ElementQuad2,
        ("tetra", 1): skfem.ElementTetP1, ("tetra", 2): skfem.ElementTetP2, ("tetra10", 2): skfem.ElementTetP2,
        ("hexahedron", 1): skfem.ElementHex1, ("hexahedron", 2): skfem.ElementHex2,
        ("wedge", 1): skfem.ElementWedge1,
    }
    try:
        return table[(cell_type, order)]()
    except KeyError:
        raise MeshError(f"no P{order} element for {cell_type} cells") from None
