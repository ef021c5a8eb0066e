"""Verified Koopman analysis of snapshot data: EDMD with ResDMD residuals.

Notation (method note ``shared/methods/koopman.md``). Snapshot pairs
(x_m, y_m = F(x_m)), m = 1..M, one state per row of X, Y (M, n); pairs never
cross trajectory boundaries. Two inner products are kept apart:

* ``snapshot_weights`` w_m >= 0 (W = diag(w)) weight the *snapshots*
  (quadrature in state space, default 1/M);
* ``mass_matrix`` M (n, n) is the *spatial* inner product <u, v> = u^T M v of
  mesh fields; it enters POD bases, mode norms, reconstruction errors and the
  state-space residual (default: the P1 mass matrix for mesh data, identity
  otherwise).

A dictionary psi_1..psi_N gives Psi_X[m, j] = psi_j(x_m), Psi_Y[m, j] =
psi_j(y_m). EDMD: K = argmin ||W^1/2 (Psi_X K - Psi_Y)||_F = G^+ A with
G = Psi_X^* W Psi_X, A = Psi_X^* W Psi_Y (solved by least squares, never
through G). An eigenpair K v = lam v gives the candidate eigenfunction
g = Psi v and the ResDMD residual, in the direct (unsquared) form

    res(lam, v) = ||W^1/2 (Psi_Y - lam Psi_X) v|| / ||W^1/2 Psi_X v||.

The pseudospectrum tau(z) = min_v ||W^1/2 (Psi_Y - z Psi_X) v|| /
||W^1/2 Psi_X v|| = sigma_min(C - z Q) with Q R = W^1/2 Psi_X and
C = W^1/2 Psi_Y R^-1; one QR of [Q, C] reduces every z to a 2N x N problem
(we further reduce it to two stacked triangles by a Schur form, see
:func:`_reduce_pencil`). tau is an upper bound of the true pseudospectral
distance, so its level sets carry no spectral pollution.
"""
from __future__ import annotations

import csv
import json
import math
import warnings
from dataclasses import dataclass, field
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from graphfem.meshes.errors import GraphfemError, InputError

__all__ = [
    "KoopmanWarning", "SnapshotData", "snapshot_pairs", "load_snapshots",
    "Dictionary", "Linear", "POD", "Monomial", "Fourier", "RBF", "KernelDictionary", "make_dictionary",
    "KoopmanResult", "edmd", "residuals", "state_space_residuals",
    "Pencil", "pencil", "pseudospectrum", "grid_points", "certified_spectrum",
    "continuous_exponents", "write_report", "plot_spectrum",
]

MAX_DICTIONARY = 5000  # refuse dictionaries larger than this (monomials/Fourier on big states)


class KoopmanWarning(UserWarning):
    """A result that is computed but should not be trusted as is."""


# ============================================================================ data
@dataclass
class SnapshotData:
    """Snapshot pairs with their weights.

    Attributes:
        X, Y: (M, n) states before/after one step, one state per row.
        weights: (M,) snapshot quadrature weights w_m >= 0.
        dt: time step between x_m and y_m, or None.
        trajectories: the (T_i, n) trajectories the pairs came from (empty for
            plain pairs); used for forecast errors and held-out splits.
        traj_index: (M,) trajectory number of each pair (-1 for plain pairs).
        mass_matrix: (n, n) spatial inner product, or None (Euclidean).
        mesh: the :class:`graphfem.meshes.Mesh` the states live on, or None.
        components: values per node (mesh data), 1 for scalar fields.
        source: where the data came from (error messages).
    """

    X: np.ndarray
    Y: np.ndarray
    weights: np.ndarray
    dt: float | None = None
    trajectories: list[np.ndarray] = field(default_factory=list)
    traj_index: np.ndarray | None = None
    mass_matrix: Any = None
    mesh: Any = None
    components: int = 1
    source: str | None = None

    @property
    def n_pairs(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_state(self) -> int:
        return int(self.X.shape[1])

    def subset(self, rows: np.ndarray) -> "SnapshotData":
        """The pairs ``rows`` (weights renormalised to the same total)."""
        w = self.weights[rows]
        w = w * (self.weights.sum() / w.sum()) if w.sum() > 0 else w
        ti = None if self.traj_index is None else self.traj_index[rows]
        return SnapshotData(self.X[rows], self.Y[rows], w, self.dt, self.trajectories, ti,
                            self.mass_matrix, self.mesh, self.components, self.source)


def _is_trajectory(obj) -> bool:
    return hasattr(obj, "times") and hasattr(obj, "fields")


def _trajectory_states(traj, field_name: str | None, source) -> tuple[np.ndarray, float | None, Any, int]:
    names = sorted(traj.fields)
    if field_name is None:
        if len(names) != 1:
            raise InputError(f"trajectory has fields {names}; choose one with field=", source)
        field_name = names[0]
    if field_name not in traj.fields:
        raise InputError(f"no field {field_name!r} (fields: {names})", source)
    values = np.asarray(traj.fields[field_name])
    comps = 1 if values.ndim == 2 else int(np.prod(values.shape[2:]))
    times = np.asarray(traj.times, dtype=float)
    steps = np.diff(times)
    dt = None
    if steps.size:
        dt = float(steps.mean())
        if np.ptp(steps) > 1e-8 * abs(dt):
            raise InputError("trajectory time steps are not uniform; resample before Koopman analysis", source)
    return values.reshape(values.shape[0], -1), dt, getattr(traj, "domain", None), comps


def snapshot_pairs(data, Y: np.ndarray | None = None, *, snapshot_weights: np.ndarray | None = None,
                   dt: float | None = None, field: str | None = None, mass_matrix=None,
                   source: str | None = None) -> SnapshotData:
    """Build snapshot pairs that never cross trajectory boundaries.

    ``data`` is one of: an array X (M, n) with ``Y`` (M, n) (plain pairs); a
    (T, n) trajectory array; a :class:`Trajectory`; or a list of (T_i, n)
    arrays / Trajectories (same n). A trajectory with T states gives T - 1
    pairs (x_t, x_{t+1}). ``snapshot_weights`` (M,) default to 1/M. For
    trajectories on a mesh, the default ``mass_matrix`` is the P1 mass matrix
    of the mesh (block-diagonal per component for vector fields).
    """
    mesh, comps = None, 1
    trajectories: list[np.ndarray] = []
    if Y is not None:
        X = np.asarray(data)
        Y = np.asarray(Y)
        if X.ndim == 1:
            X, Y = X[:, None], Y[:, None]
        if X.ndim != 2 or X.shape != Y.shape:
            raise InputError(f"X and Y must be (M, n) arrays of equal shape, got {X.shape} and {Y.shape}", source)
        tindex = np.full(X.shape[0], -1)
    else:
        items = data if isinstance(data, (list, tuple)) else [data]
        if not items:
            raise InputError("no trajectories given", source)
        dts = []
        for item in items:
            if _is_trajectory(item):
                states, step, domain, comps = _trajectory_states(item, field, source)
                dts.append(step)
                if domain is not None and hasattr(domain, "cells"):
                    mesh = domain if mesh is None else mesh
            else:
                states = np.asarray(item)
                if states.ndim == 1:
                    states = states[:, None]
                if states.ndim != 2:
                    raise InputError(f"a trajectory must be a (T, n) array, got shape {states.shape}", source)
            if states.shape[0] < 2:
                raise InputError("a trajectory needs at least two states", source)
            trajectories.append(states)
        if len({t.shape[1] for t in trajectories}) != 1:
            raise InputError("trajectories have different state sizes", source)
        if dt is None and dts and all(d is not None for d in dts):
            if max(dts) - min(dts) > 1e-8 * abs(dts[0]):
                raise InputError("trajectories have different time steps", source)
            dt = dts[0]
        X = np.concatenate([t[:-1] for t in trajectories])
        Y = np.concatenate([t[1:] for t in trajectories])
        tindex = np.concatenate([np.full(len(t) - 1, i) for i, t in enumerate(trajectories)])
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(Y))):
        raise InputError("snapshots contain NaN or Inf", source)
    M = X.shape[0]
    if snapshot_weights is None:
        w = np.full(M, 1.0 / M)
    else:
        w = np.asarray(snapshot_weights, dtype=float).reshape(-1)
        if w.shape != (M,) or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise InputError(f"snapshot_weights must be {M} finite non-negative numbers, not all zero", source)
    if mass_matrix is None and mesh is not None:
        mass_matrix = mesh_mass_matrix(mesh, comps, X.shape[1])
    if mass_matrix is not None and mass_matrix.shape != (X.shape[1], X.shape[1]):
        raise InputError(f"mass_matrix has shape {mass_matrix.shape}, states have size {X.shape[1]}", source)
    return SnapshotData(X, Y, w, None if dt is None else float(dt), trajectories, tindex,
                        mass_matrix, mesh, comps, source)


def mesh_mass_matrix(mesh, components: int, n_state: int):
    """P1/P2 consistent mass matrix of ``mesh`` (kron with I_c for c components),
    or None (Euclidean) where the nodes are not the finite-element dofs."""
    from graphfem.meshes import FESpace

    if mesh.n_points * components != n_state:
        return None
    try:
        space = FESpace(mesh)
    except GraphfemError:
        return None
    if space.n_dofs != mesh.n_points:
        return None
    M = space.mass()
    return M if components == 1 else sp.kron(M, sp.identity(components), format="csr")


# ----------------------------------------------------------------- file input
def load_snapshots(path: str | Path, *, field: str | None = None) -> SnapshotData:
    """Read snapshot data from a file.

    * ``.npz``: arrays ``X`` and ``Y`` (M, n), one state per row; optional
      ``weights`` (M,) and ``dt`` (scalar).
    * ``.pvd`` / ``.xdmf``: a time series of point fields on one mesh (one
      trajectory); the mass matrix of the mesh is the inner product.
    * ``.h5`` / ``.hdf5``: one group per simulation (or the file root as a single
      simulation), each holding ``times`` (T,), ``outputs/<name>`` (T, n) or
      (T, n, c), and ``mesh/points`` (n, dim) with ``mesh/cells`` (m, k) (the
      cell type is the ``cell_type`` attribute of ``mesh/cells`` or inferred
      from k and dim). All simulations share the first simulation's mesh.

    ``field`` picks the field when there are several. Any problem raises a
    one-line :class:`GraphfemError` naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            return _load_npz(path)
        if suffix in (".pvd", ".xdmf", ".xmf"):
            from graphfem.meshes import Trajectory, read_series

            mesh, times, fields = read_series(path)
            return snapshot_pairs(Trajectory(times, fields, mesh), field=field, source=str(path))
        if suffix in (".h5", ".hdf5"):
            return _load_hdf5(path, field)
    except GraphfemError as exc:
        raise exc.with_source(path) from None
    raise InputError(f"unknown data format {suffix!r} (use .npz, .pvd, .xdmf, .h5)", path)


def _load_npz(path: Path) -> SnapshotData:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: np.asarray(f[k]) for k in f.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError ...
        raise InputError(f"cannot read npz: {exc}", path) from None
    if "X" not in arrays or "Y" not in arrays:
        raise InputError(f"npz needs arrays 'X' and 'Y', found {sorted(arrays)}", path)
    dt = float(arrays["dt"]) if "dt" in arrays else None
    return snapshot_pairs(arrays["X"].astype(float), arrays["Y"].astype(float),
                          snapshot_weights=arrays.get("weights"), dt=dt, source=str(path))


_CELL_GUESS = {(1, 2): "line", (2, 2): "line", (2, 3): "triangle", (2, 4): "quad", (3, 3): "triangle",
               (3, 4): "tetra", (3, 8): "hexahedron", (2, 6): "triangle6", (3, 10): "tetra10"}


def _load_hdf5(path: Path, field_name: str | None) -> SnapshotData:
    import h5py
    from graphfem.meshes import Mesh, Trajectory

    try:
        f = h5py.File(path, "r")
    except Exception as exc:
        raise InputError(f"cannot read HDF5: {exc}", path) from None
    with f:
        groups = [f] if "times" in f else [f[k] for k in sorted(f) if isinstance(f[k], h5py.Group)]
        groups = [g for g in groups if "times" in g and "outputs" in g]
        if not groups:
            raise InputError("no simulation group with 'times' and 'outputs' found", path)
        mesh_group = next((g["mesh"] for g in groups if "mesh" in g), None)
        if mesh_group is None or "points" not in mesh_group or "cells" not in mesh_group:
            raise InputError("no 'mesh/points' and 'mesh/cells' datasets found", path)
        points = np.asarray(mesh_group["points"], dtype=float)
        cells = np.asarray(mesh_group["cells"], dtype=np.int64)
        ctype = mesh_group["cells"].attrs.get("cell_type")
        if isinstance(ctype, bytes):
            ctype = ctype.decode()
        ctype = ctype or _CELL_GUESS.get((points.shape[1], cells.shape[1]))
        if ctype is None:
            raise InputError(f"cannot infer the cell type of {cells.shape[1]}-node cells; set the "
                             "'cell_type' attribute of mesh/cells", path)
        mesh = Mesh(points, str(ctype), cells, source=str(path))
        trajs = []
        for g in groups:
            fields = {name: np.asarray(g["outputs"][name], dtype=float) for name in g["outputs"]}
            trajs.append(Trajectory(np.asarray(g["times"], dtype=float), fields, mesh))
    return snapshot_pairs(trajs, field=field_name, source=str(path))


# ====================================================================== dictionaries
def _mdot(M, A: np.ndarray) -> np.ndarray:
    """M @ A with M None meaning the identity."""
    return A if M is None else M @ A


class Dictionary:
    """A dictionary psi: R^n -> C^N. ``fit`` learns data-dependent parts from the
    training states (weights W, mass matrix M); calling it evaluates Psi (M, N).

    ``is_linear`` marks dictionaries psi(x) = x^T L (linear, POD) for which
    Koopman modes reproduce states exactly and the state-space residual is
    defined."""

    kind = "dictionary"
    is_linear = False

    def fit(self, X: np.ndarray, weights: np.ndarray, mass_matrix=None) -> "Dictionary":
        return self

    def __call__(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        return self.kind


class Linear(Dictionary):
    """psi(x) = x: the n state coordinates."""

    kind = "linear"
    is_linear = True

    def __call__(self, X):
        return np.asarray(X)


class POD(Dictionary):
    """Coordinates in an M-orthonormal POD basis U (n, r), U^T M U = I:
    psi(x) = x^T M U. U holds the leading left singular vectors of the
    snapshot matrix X^T W^1/2 in the M inner product, computed without
    squaring the data: an M-orthonormal basis Z of range(X^T W^1/2) by
    Gram-Schmidt (twice, with dropping), then the SVD of the small factor
    R = Z^T M X^T W^1/2 = U_r S V^T, U = Z U_r.

    ``rank`` None keeps the singular values above ``rtol`` * sigma_1 (at most 100)."""

    kind = "pod"
    is_linear = True

    def __init__(self, rank: int | None = None, rtol: float = 1e-8):
        self.rank = rank
        self.rtol = rtol

    def fit(self, X, weights, mass_matrix=None):
        A = (np.asarray(X) * np.sqrt(weights)[:, None]).T  # (n, M)
        Z = _m_orthonormal_basis(A, mass_matrix)
        Rz = Z.T @ _mdot(mass_matrix, A)
        Ur, s, _ = np.linalg.svd(Rz, full_matrices=False)
        if self.rank is None:
            r = min(int(np.sum(s > self.rtol * s[0])), 100)
        else:
            r = min(int(self.rank), len(s))
        self.singular_values = s
        self.basis = Z @ Ur[:, :r]  # (n, r), M-orthonormal
        self._MU = _mdot(mass_matrix, self.basis)
        return self

    def __call__(self, X):
        return np.asarray(X) @ self._MU

    def describe(self):
        return f"pod:{self.basis.shape[1]}"


def _m_orthonormal_basis(A: np.ndarray, M, drop: float = 1e-13) -> np.ndarray:
    """Z (n, k) with Z^T M Z = I spanning range(A) up to relative ``drop``:
    classical Gram-Schmidt with reorthogonalisation, columns in order of
    decreasing M norm."""
    MA = _mdot(M, A)
    norms = np.sqrt(np.maximum(np.einsum("ij,ij->j", A, MA), 0.0))
    order = np.argsort(-norms)
    scale = norms.max() if norms.size else 0.0
    cols, mcols = [], []
    for j in order:
        v = A[:, j].copy()
        for _ in range(2):
            if cols:
                Zc, MZc = np.column_stack(cols), np.column_stack(mcols)
                v -= Zc @ (MZc.T @ v)
        Mv = _mdot(M, v)
        nv = math.sqrt(max(float(v @ Mv), 0.0))
        if nv > drop * max(norms[j], 1e-300) and nv > 1e-15 * scale:
            cols.append(v / nv)
            mcols.append(Mv / nv)
    if not cols:
        raise InputError("all snapshots are zero")
    return np.column_stack(cols)


class Monomial(Dictionary):
    """All monomials prod_i x_i^{e_i} with sum e_i <= degree (constant included),
    ordered by degree then lexicographically: {1, x, y, x^2, xy, y^2} for
    degree 2 in 2D."""

    kind = "monomial"

    def __init__(self, degree: int = 2):
        self.degree = int(degree)

    def fit(self, X, weights, mass_matrix=None):
        n = np.asarray(X).shape[1]
        count = math.comb(n + self.degree, self.degree)
        if count > MAX_DICTIONARY:
            raise InputError(f"monomial:{self.degree} on {n} coordinates gives {count} functions; "
                             "use pod or kernel for large states")
        self.terms = [t for d in range(self.degree + 1) for t in combinations_with_replacement(range(n), d)]
        return self

    def __call__(self, X):
        X = np.asarray(X)
        out = np.ones((X.shape[0], len(self.terms)))
        for j, t in enumerate(self.terms):
            for i in t:
                out[:, j] *= X[:, i]
        return out

    def describe(self):
        return f"monomial:{self.degree}"


class Fourier(Dictionary):
    """exp(2 pi i k.x / period) for all integer k in [-kmax, kmax]^n; states on
    the torus in radians (period 2 pi) or in [0, 1) (period 1)."""

    kind = "fourier"

    def __init__(self, kmax: int = 5, period: float = 2 * np.pi):
        self.kmax = int(kmax)
        self.period = float(period)

    def fit(self, X, weights, mass_matrix=None):
        n = np.asarray(X).shape[1]
        if (2 * self.kmax + 1) ** n > MAX_DICTIONARY:
            raise InputError(f"fourier:{self.kmax} on {n} coordinates gives {(2 * self.kmax + 1) ** n} functions")
        ks = np.arange(-self.kmax, self.kmax + 1)
        self.wavenumbers = np.stack(np.meshgrid(*([ks] * n), indexing="ij"), -1).reshape(-1, n)
        return self

    def __call__(self, X):
        return np.exp((2j * np.pi / self.period) * (np.asarray(X) @ self.wavenumbers.T))

    def describe(self):
        return f"fourier:{self.kmax}" + ("" if abs(self.period - 2 * np.pi) < 1e-12 else f" period {self.period:g}")


def _sq_distances(A: np.ndarray, B: np.ndarray, M=None) -> np.ndarray:
    """||a_i - b_j||_M^2 (len(A), len(B))."""
    MB = _mdot(M, B.T).T
    aa = np.einsum("ij,ij->i", A, _mdot(M, A.T).T)
    bb = np.einsum("ij,ij->i", B, MB)
    return np.maximum(aa[:, None] + bb[None, :] - 2 * A @ MB.T, 0.0)


class RBF(Dictionary):
    """Gaussian radial basis functions exp(-||x - c_j||_M^2 / (2 eps^2)) around
    ``n_centers`` k-means centres of the training states; eps is the median
    distance between centres."""

    kind = "rbf"

    def __init__(self, n_centers: int = 50, seed: int = 0):
        self.n_centers = int(n_centers)
        self.seed = seed

    def fit(self, X, weights, mass_matrix=None):
        from scipy.cluster.vq import kmeans2

        X = np.asarray(X, dtype=float)
        k = min(self.n_centers, X.shape[0])
        self.centers, _ = kmeans2(X, k, seed=self.seed, minit="++")
        self.mass = mass_matrix
        d2 = _sq_distances(self.centers, self.centers, mass_matrix)
        med = np.median(np.sqrt(d2[np.triu_indices(k, 1)])) if k > 1 else 1.0
        self.eps = float(med) if med > 0 else 1.0
        return self

    def __call__(self, X):
        return np.exp(-_sq_distances(np.asarray(X, float), self.centers, self.mass) / (2 * self.eps ** 2))

    def describe(self):
        return f"rbf:{self.centers.shape[0]}"


class KernelDictionary(Dictionary):
    """Kernel-learned dictionary (kernel EDMD): with the weighted Gram matrix
    G_hat = W^1/2 k(X, X) W^1/2 = Q diag(mu) Q^T, the top-N whitened
    eigenvectors psi_j(x) = sum_i k(x, x_i) w_i^1/2 Q_ij / mu_j, so that
    Psi_X^T W Psi_X = I on the training data. Kernels: gaussian
    exp(-d^2 / (2 s^2)), laplacian exp(-d / s) (s = median distance, d in the
    M norm), polynomial (1 + <x, y>_M / c)^degree (c = mean <x, x>_M).

    Training-data residuals of a learned dictionary certify nothing when N is
    close to M: :func:`edmd` evaluates residuals on held-out pairs."""

    kind = "kernel"

    def __init__(self, kernel: str = "gaussian", rank: int = 40, scale: float | None = None, degree: int = 2):
        if kernel not in ("gaussian", "laplacian", "polynomial"):
            raise InputError(f"unknown kernel {kernel!r} (gaussian, laplacian, polynomial)")
        self.kernel, self.rank, self.scale, self.degree = kernel, int(rank), scale, int(degree)

    def _k(self, A, B):
        if self.kernel == "polynomial":
            return (1.0 + (A @ _mdot(self.mass, B.T)) / self.c) ** self.degree
        d2 = _sq_distances(A, B, self.mass)
        if self.kernel == "gaussian":
            return np.exp(-d2 / (2 * self.c ** 2))
        return np.exp(-np.sqrt(d2) / self.c)

    def fit(self, X, weights, mass_matrix=None):
        X = np.asarray(X, dtype=float)
        self.mass, self.train = mass_matrix, X
        if self.kernel == "polynomial":
            self.c = self.scale or float(np.mean(np.einsum("ij,ij->i", X, _mdot(mass_matrix, X.T).T))) or 1.0
        else:
            d = np.sqrt(_sq_distances(X, X, mass_matrix)[np.triu_indices(len(X), 1)])
            self.c = self.scale or (float(np.median(d)) if d.size and np.median(d) > 0 else 1.0)
        sw = np.sqrt(weights)
        Gh = sw[:, None] * self._k(X, X) * sw[None, :]
        mu, Q = np.linalg.eigh(Gh)
        keep = np.argsort(-mu)[: self.rank]
        keep = keep[mu[keep] > 1e-12 * mu.max()]
        self.coef = sw[:, None] * Q[:, keep] / mu[keep][None, :]
        return self

    def __call__(self, X):
        return self._k(np.asarray(X, float), self.train) @ self.coef

    def describe(self):
        return f"kernel:{self.kernel}:{self.coef.shape[1]}"


def make_dictionary(spec: str | Dictionary | None, *, rank: int | None = None, mesh_data: bool = False,
                    seed: int = 0) -> Dictionary:
    """A dictionary from a ``KIND[:ARG[:ARG]]`` string: ``linear``, ``pod[:R]``,
    ``monomial:DEGREE``, ``fourier:KMAX[:unit]`` (``unit``: states in [0, 1)),
    ``rbf:N``, ``kernel:KERNEL[:N]``. ``auto``/None: POD for mesh data, linear
    otherwise. ``rank`` sets R of pod and N of kernel when the spec has none."""
    if isinstance(spec, Dictionary):
        return spec
    spec = (spec or "auto").strip().lower()
    kind, *args = spec.split(":")
    try:
        if kind == "auto":
            return POD(rank) if (mesh_data or rank is not None) else Linear()
        if kind == "linear" and not args:
            return Linear()
        if kind == "pod":
            return POD(int(args[0]) if args else rank)
        if kind == "monomial":
            return Monomial(int(args[0]) if args else 2)
        if kind == "fourier":
            period = 1.0 if args[1:] == ["unit"] else 2 * np.pi
            if args[1:] not in ([], ["unit"], ["radians"]):
                raise ValueError
            return Fourier(int(args[0]) if args else 5, period)
        if kind == "rbf":
            return RBF(int(args[0]) if args else (rank or 50), seed=seed)
        if kind == "kernel":
            return KernelDictionary(args[0] if args else "gaussian", int(args[1]) if len(args) > 1 else (rank or 40))
    except (ValueError, IndexError):
        pass
    raise InputError(f"bad dictionary {spec!r}; use linear, pod[:R], monomial:DEGREE, fourier:KMAX[:unit], "
                     "rbf:N or kernel:gaussian|laplacian|polynomial[:N]")


# ============================================================================ EDMD
@dataclass
class Pencil:
    """The pencil of tau(z) reduced to two stacked upper-triangular r x r
    matrices: tau(z) = sigma_min([[T - z I], [S]]) (see :func:`pencil`)."""

    T: np.ndarray
    S: np.ndarray

    @property
    def size(self) -> int:
        return int(self.T.shape[0])


@dataclass
class KoopmanResult:
    """EDMD eigen-decomposition with verification.

    Attributes:
        eigenvalues: (N,) lam_j, sorted by decreasing modulus.
        eigenvectors: (N, N) right eigenvectors v_j of K (columns): g_j = Psi v_j.
        residuals: (N,) ResDMD residuals res(lam_j, v_j) on ``residual_data``.
        residual_kind: "train" or "heldout".
        K: (N, N) the EDMD matrix, psi(y) ~ psi(x) K.
        modes: (N, n) Koopman modes xi_j (rows): x ~ sum_j g_j(x) xi_j.
        state_residuals: (N,) ||Y a - lam X a||_M / ||X a||_M for linear
            dictionaries (None otherwise).
        dictionary: the fitted dictionary.
        data: the training pairs; residual_data: the pairs residuals use.
        dt: time step (None when unknown).
        reconstruction_error: relative one-step error in the M norm,
            sqrt(sum w ||y - y_hat||_M^2 / sum w ||y||_M^2), y_hat = psi(x) K B.
        forecast_error: relative multi-step error in the M norm over whole
            trajectories from their first state (None for plain pairs).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    residuals: np.ndarray
    residual_kind: str
    K: np.ndarray
    modes: np.ndarray
    state_residuals: np.ndarray | None
    dictionary: Dictionary
    data: SnapshotData
    residual_data: SnapshotData
    dt: float | None
    reconstruction_error: float
    forecast_error: float | None
    _pencil: Pencil | None = None

    def pencil(self) -> Pencil:
        if self._pencil is None:
            d = self.residual_data
            self._pencil = pencil(self.dictionary(d.X), self.dictionary(d.Y), d.weights)
        return self._pencil

    def exponents(self) -> np.ndarray:
        """Continuous-time exponents log(lam) / dt (see :func:`continuous_exponents`)."""
        if self.dt is None:
            raise InputError("continuous-time exponents need the time step dt")
        return continuous_exponents(self.eigenvalues, self.dt)


def _mnorm2_rows(R: np.ndarray, M) -> np.ndarray:
    """||r_m||_M^2 for each row r_m of R (real or complex)."""
    MR = _mdot(M, R.T).T
    return np.real(np.einsum("ij,ij->i", np.conj(R), MR))


def residuals(Psi_X: np.ndarray, Psi_Y: np.ndarray, weights: np.ndarray, eigenvalues: np.ndarray,
              eigenvectors: np.ndarray) -> np.ndarray:
    """ResDMD residuals ||W^1/2 (Psi_Y - lam Psi_X) v|| / ||W^1/2 Psi_X v|| per
    pair (direct form, accurate far below 1e-7)."""
    sw = np.sqrt(weights)[:, None]
    PX, PY = sw * Psi_X @ eigenvectors, sw * Psi_Y @ eigenvectors
    num = np.linalg.norm(PY - PX * eigenvalues[None, :], axis=0)
    den = np.linalg.norm(PX, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.inf)


def state_space_residuals(data: SnapshotData, Psi_X: np.ndarray, eigenvalues: np.ndarray,
                          left_vectors: np.ndarray) -> np.ndarray:
    """State-space residual ||Y^T a - theta X^T a||_M / ||X^T a||_M of each DMD
    Ritz pair, with the snapshot combination a = W Psi_X G^+ w (w: eigenvector
    of K^T, i.e. the Ritz vector in dictionary coordinates). For POD
    coordinates X^T a is the Ritz vector U w; for an M-self-adjoint propagator
    the residual bounds the distance of theta to its spectrum."""
    sw = np.sqrt(data.weights)
    B = sw[:, None] * Psi_X
    Q, R = np.linalg.qr(B)
    # G^+ w = R^-1 R^-* w, a = W Psi_X G^+ w = W^1/2 Q R^-* w
    Rinv_h = sla.solve_triangular(R, left_vectors, trans="C")
    a = sw[:, None] * (Q @ Rinv_h)  # (M, N)
    U = data.X.T @ a
    V = data.Y.T @ a
    num = np.sqrt(_mnorm2_rows((V - U * eigenvalues[None, :]).T, data.mass_matrix))
    den = np.sqrt(_mnorm2_rows(U.T, data.mass_matrix))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.inf)


def _split_heldout(data: SnapshotData, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out rows: whole trajectories when there are several,
    otherwise a random subset of pairs."""
    rng = np.random.default_rng(seed)
    M = data.n_pairs
    ntraj = len(data.trajectories)
    if ntraj >= 3:
        test_traj = rng.permutation(ntraj)[: max(1, int(round(fraction * ntraj)))]
        test = np.isin(data.traj_index, test_traj)
    else:
        test = np.zeros(M, bool)
        test[rng.permutation(M)[: max(1, int(round(fraction * M)))]] = True
    return np.flatnonzero(~test), np.flatnonzero(test)


def edmd(data, Y: np.ndarray | None = None, *, dictionary: str | Dictionary | None = "auto",
         rank: int | None = None, snapshot_weights: np.ndarray | None = None, mass_matrix=None,
         dt: float | None = None, residuals_on: str = "auto", heldout: SnapshotData | float = 0.3,
         seed: int = 0) -> KoopmanResult:
    """EDMD with ResDMD residuals.

    Args:
        data: a :class:`SnapshotData`, or anything :func:`snapshot_pairs` accepts
            (X with ``Y``, trajectory arrays, Trajectory objects, lists of them).
        dictionary: a :class:`Dictionary` or spec string (:func:`make_dictionary`).
        rank: POD rank / kernel size when the spec leaves it open.
        snapshot_weights, mass_matrix, dt: see :func:`snapshot_pairs`.
        residuals_on: "train", "heldout" or "auto". "auto" uses held-out pairs
            when the training pairs are no more than the dictionary functions
            (then training residuals are ~0 and certify nothing) or for a
            kernel-learned dictionary. Asking for "train" in that case warns.
        heldout: held-out pairs, or the fraction of the data to hold out.
        seed: seeds the held-out split and the RBF centres.
    """
    if not isinstance(data, SnapshotData):
        data = snapshot_pairs(data, Y, snapshot_weights=snapshot_weights, dt=dt, mass_matrix=mass_matrix)
    else:
        if mass_matrix is not None:
            data.mass_matrix = mass_matrix
        if dt is not None:
            data.dt = float(dt)
    if residuals_on not in ("auto", "train", "heldout"):
        raise InputError(f"residuals_on must be auto, train or heldout, not {residuals_on!r}")
    dic = make_dictionary(dictionary, rank=rank, mesh_data=data.mass_matrix is not None, seed=seed)

    def fitted(train: SnapshotData) -> tuple[Dictionary, np.ndarray, np.ndarray]:
        d = dic.fit(train.X, train.weights, train.mass_matrix)
        return d, d(train.X), d(train.Y)

    train, test = data, None
    if isinstance(heldout, SnapshotData):
        test = heldout
    use_heldout = residuals_on == "heldout"
    _, PX, PY = fitted(data)
    if residuals_on == "auto" and (data.n_pairs <= PX.shape[1] or isinstance(dic, KernelDictionary)):
        use_heldout = True
    if residuals_on == "train" and data.n_pairs <= PX.shape[1]:
        warnings.warn(f"{data.n_pairs} snapshot pairs for {PX.shape[1]} dictionary functions: training-data "
                      "residuals are ~0 and certify nothing; use held-out residuals", KoopmanWarning, stacklevel=2)
    if use_heldout and test is None:
        tr, te = _split_heldout(data, float(heldout), seed)
        if len(tr) == 0 or len(te) == 0:
            raise InputError("too few snapshot pairs to hold some out for residuals")
        train, test = data.subset(tr), data.subset(te)
    if train is not data:
        _, PX, PY = fitted(train)
    sw = np.sqrt(train.weights)[:, None]
    K = sla.lstsq(sw * PX, sw * PY)[0]
    lam, vl, vr = sla.eig(K, left=True, right=True)
    order = np.argsort(-np.abs(lam), kind="stable")
    lam, vl, vr = lam[order], vl[:, order], vr[:, order]
    vr = vr / np.linalg.norm(vr, axis=0)
    res_data = test if use_heldout else train
    if use_heldout:
        res = residuals(dic(test.X), dic(test.Y), test.weights, lam, vr)
    else:
        res = residuals(PX, PY, train.weights, lam, vr)
    ss = state_space_residuals(train, PX, lam, np.conj(vl)) if dic.is_linear else None

    B = sla.lstsq(sw * PX, sw * train.X)[0]  # (N, n): x ~ psi(x) B
    try:
        modes = np.linalg.solve(vr, B)
    except np.linalg.LinAlgError:
        modes = np.linalg.lstsq(vr, B, rcond=None)[0]
    Yhat = np.real(PX @ K @ B)
    err = _rel_mnorm(train.Y - Yhat, train.Y, train.weights, train.mass_matrix)
    forecast = None
    if train.trajectories:
        num = den = 0.0
        for traj in train.trajectories:
            phi0 = dic(traj[:1]) @ vr  # (1, N)
            powers = lam[None, :] ** np.arange(len(traj))[:, None]
            pred = np.real((phi0 * powers) @ modes)
            num += float(np.sum(_mnorm2_rows(traj - pred, train.mass_matrix)))
            den += float(np.sum(_mnorm2_rows(traj, train.mass_matrix)))
        forecast = math.sqrt(num / den) if den > 0 else None
    return KoopmanResult(lam, vr, res, "heldout" if use_heldout else "train", K, modes, ss, dic, train,
                         res_data, train.dt, err, forecast)


def _rel_mnorm(E: np.ndarray, R: np.ndarray, w: np.ndarray, M) -> float:
    den = float(np.sum(w * _mnorm2_rows(R, M)))
    return math.sqrt(float(np.sum(w * _mnorm2_rows(E, M))) / den) if den > 0 else float("nan")


def continuous_exponents(eigenvalues: np.ndarray, dt: float, alias_fraction: float = 0.9) -> np.ndarray:
    """omega = log(lam) / dt (principal branch). Frequencies are determined only
    modulo 2 pi / dt: warns when some |Im omega| > alias_fraction * pi / dt (the
    eigenvalue sits near the negative real axis, the sampling is too coarse)."""
    lam = np.asarray(eigenvalues, dtype=complex)
    with np.errstate(divide="ignore"):
        omega = np.log(lam) / dt
    near = np.abs(omega.imag) > alias_fraction * np.pi / dt
    if np.any(near & np.isfinite(omega)):
        warnings.warn(f"{int(near.sum())} exponent(s) have |Im| near pi/dt = {np.pi / dt:.4g}: their frequencies "
                      "may be aliased (sample faster)", KoopmanWarning, stacklevel=2)
    return omega


# ================================================================ pseudospectrum
def pencil(Psi_X: np.ndarray, Psi_Y: np.ndarray, weights: np.ndarray, rtol: float = 1e-12) -> Pencil:
    """Reduce tau(z) = min_v ||W^1/2 (Psi_Y - z Psi_X) v|| / ||W^1/2 Psi_X v|| to
    sigma_min([[T - z I], [S]]) with T, S upper triangular r x r.

    1. Q R P^T = W^1/2 Psi_X (pivoted QR; columns with |R_kk| <= rtol |R_11| are
       dropped, which restricts the dictionary to a numerically independent
       subset), C = W^1/2 Psi_Y P R^-1, so tau(z) = sigma_min(C - z Q).
    2. One QR of [Q, C] = Q2 R2: C - z Q = Q2 [[H - z D], [S0]] with
       D = R2[:r, :r] (diagonal, unimodular since Q has orthonormal columns),
       H = R2[:r, r:], S0 = R2[r:, r:] upper triangular.
    3. Schur D^-1 H = U T U^*, and S U = Q3 S (QR): unitary changes of rows and
       columns give [[T - z I], [S]].
    """
    sw = np.sqrt(np.asarray(weights, float))[:, None]
    Bx, By = sw * Psi_X, sw * Psi_Y
    Q, R, piv = sla.qr(Bx, mode="economic", pivoting=True)
    d = np.abs(np.diag(R))
    r = int(np.sum(d > rtol * d[0])) if d.size and d[0] > 0 else 0
    if r == 0:
        raise InputError("the dictionary vanishes on the data")
    Q, R = Q[:, :r], R[:r, :r]
    C = sla.solve_triangular(R, By[:, piv[:r]].T, trans="T").T  # By P R^-1
    R2 = sla.qr(np.hstack([Q, C]), mode="r")[0]
    if R2.shape[0] < 2 * r:  # fewer snapshots than 2r: pad with zero rows
        R2 = np.vstack([R2, np.zeros((2 * r - R2.shape[0], 2 * r), R2.dtype)])
    D = np.diag(R2[:r, :r])
    H = R2[:r, r:] / D[:, None]
    S0 = np.triu(R2[r:2 * r, r:])
    T, U = sla.schur(H.astype(complex), output="complex")
    S = sla.qr(S0 @ U, mode="r")[0]
    return Pencil(np.triu(T), np.triu(S))


def grid_points(spec: Sequence[float] | str | None, eigenvalues: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The z-grid as 1D axes (re, im). ``spec``: (re_min, re_max, im_min,
    im_max, n[, n_im]) or the string "re_min,re_max,im_min,im_max,n[,n_im]";
    None/"auto": a square around the eigenvalues and the unit circle, 100 x 100."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "auto")):
        ext = 1.15
        if eigenvalues is not None and len(eigenvalues):
            ext = max(ext, 1.05 * float(np.max(np.abs(eigenvalues))))
        spec = (-ext, ext, -ext, ext, 100)
    if isinstance(spec, str):
        try:
            spec = [float(s) for s in spec.split(",")]
        except ValueError:
            raise InputError(f"bad grid {spec!r}; use re_min,re_max,im_min,im_max,n[,n_im]") from None
    spec = list(spec)
    if len(spec) not in (5, 6) or spec[0] >= spec[1] or spec[2] >= spec[3] or min(spec[4:]) < 2:
        raise InputError(f"bad grid {spec}; use re_min,re_max,im_min,im_max,n[,n_im] with min < max, n >= 2")
    nx = int(spec[4])
    ny = int(spec[5]) if len(spec) == 6 else nx
    return np.linspace(spec[0], spec[1], nx), np.linspace(spec[2], spec[3], ny)


def _sigma_min_triangular_pairs(P: Pencil, z: np.ndarray, small: int) -> np.ndarray:
    r = P.size
    out = np.empty(z.shape, float)
    if r <= small:
        stack = np.empty((len(z), 2 * r, r), complex)
        stack[:, :r] = P.T[None]
        stack[:, r:] = P.S[None]
        idx = np.arange(r)
        stack[:, idx, idx] -= z[:, None]
        return np.linalg.svd(stack, compute_uv=False)[:, -1]
    ztpqrt = sla.get_lapack_funcs("tpqrt", dtype=complex)
    ztrtrs = sla.get_lapack_funcs("trtrs", dtype=complex)
    nb = min(8, r)
    start = np.random.default_rng(0).standard_normal(r) + 0j
    start /= np.linalg.norm(start)
    for i, zi in enumerate(z):
        A = np.array(P.T, order="F")
        A[np.diag_indices(r)] -= zi
        Rz = np.triu(ztpqrt(r, nb, A, np.array(P.S, order="F"), overwrite_a=1)[0])
        out[i] = _sigma_min_lanczos(Rz, start, ztrtrs)
    return out


def _sigma_min_lanczos(R: np.ndarray, start: np.ndarray, trtrs, max_steps: int = 40, tol: float = 1e-10) -> float:
    """sigma_min of an upper-triangular R: Lanczos (full reorthogonalisation)
    on (R^* R)^-1 applied by two triangular solves. The largest Ritz value
    theta is a lower bound of 1 / sigma_min^2, so the returned theta^-1/2 is an
    upper bound of sigma_min (and of nothing smaller)."""
    r = R.shape[0]
    Vs = np.empty((max_steps + 1, r), complex)
    Vs[0] = start
    alpha, beta = [], []
    theta_old = 0.0
    for k in range(min(max_steps, r)):
        y, info = trtrs(R, Vs[k], trans=2)
        if info == 0:
            y, info = trtrs(R, y)
        if info != 0 or not np.all(np.isfinite(y)):
            return 0.0
        a = float(np.real(np.vdot(Vs[k], y)))
        y = y - a * Vs[k] - (beta[-1] * Vs[k - 1] if k else 0)
        y -= Vs[: k + 1].T @ (Vs[: k + 1].conj() @ y)  # full reorthogonalisation
        alpha.append(a)
        theta = float(sla.eigvalsh_tridiagonal(np.array(alpha), np.array(beta), select="i",
                                               select_range=(k, k))[0]) if k else a
        b = float(np.linalg.norm(y))
        if theta <= 0:
            return 0.0
        if abs(theta - theta_old) <= tol * theta or b <= 1e-14 * theta:
            break
        theta_old = theta
        beta.append(b)
        Vs[k + 1] = y / b
    return 1.0 / math.sqrt(theta)


def pseudospectrum(result_or_pencil: KoopmanResult | Pencil, grid=None, *, backend: str = "numpy",
                   chunk: int = 256, progress: Callable[[int, int], None] | None = None,
                   small: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """tau(z) on a grid: returns (re (nx,), im (ny,), tau (ny, nx)).

    backend "numpy": for r <= ``small`` batched SVDs of the 2r x r matrices
    [[T - zI], [S]]; above, per point a triangular-pentagonal QR (LAPACK
    tpqrt) and Lanczos on (R_z^* R_z)^-1, whose estimate is itself an upper
    bound of sigma_min (so tau stays an upper bound). backend "torch": batched ``torch.linalg.svdvals`` on CUDA when
    available (CPU otherwise). ``progress(done, total)`` is called per chunk."""
    P = result_or_pencil.pencil() if isinstance(result_or_pencil, KoopmanResult) else result_or_pencil
    eig = result_or_pencil.eigenvalues if isinstance(result_or_pencil, KoopmanResult) else None
    re, im = grid_points(grid, eig)
    Z = (re[None, :] + 1j * im[:, None]).ravel()
    tau = np.empty(Z.shape, float)
    if backend == "torch":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        r = P.size
        T = torch.as_tensor(P.T, device=device)
        S = torch.as_tensor(P.S, device=device)
        eye = torch.eye(r, dtype=T.dtype, device=device)
    elif backend != "numpy":
        raise InputError(f"unknown backend {backend!r} (numpy, torch)")
    for start in range(0, len(Z), chunk):
        zc = Z[start:start + chunk]
        if backend == "torch":
            zt = torch.as_tensor(zc, device=device)
            top = T[None] - zt[:, None, None] * eye[None]
            stack = torch.cat([top, S[None].expand(len(zc), r, r)], dim=1)
            tau[start:start + len(zc)] = torch.linalg.svdvals(stack)[:, -1].cpu().numpy()
        else:
            tau[start:start + len(zc)] = _sigma_min_triangular_pairs(P, zc, small)
        if progress is not None:
            progress(min(start + chunk, len(Z)), len(Z))
    return re, im, tau.reshape(len(im), len(re))


def certified_spectrum(re: np.ndarray, im: np.ndarray, tau: np.ndarray, *, measure_preserving: bool = False,
                       factor: float = 5.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Spectrum with error control from tau on a grid.

    With tau' = max(tau, |1 - |z||) for measure-preserving systems (tau
    otherwise), each grid point z keeps the grid point of smallest tau' within
    ``factor`` * tau'(z) of z; the kept points are returned with their tau' and
    the certificate E = max tau' over them (every kept point is within E of
    the spectrum of the operator restricted to what the data resolve).

    Returns (points (k,) complex, tau' (k,), E)."""
    Z = (re[None, :] + 1j * im[:, None]).ravel()
    t = tau.ravel().astype(float)
    if measure_preserving:
        t = np.maximum(t, np.abs(1.0 - np.abs(Z)))
    order = np.argsort(t, kind="stable")  # first hit in this order = smallest tau in the ball
    zs, ts = Z[order], t[order]
    unresolved = np.arange(len(Z))
    kept = np.empty(len(Z), np.int64)
    block = 512
    for start in range(0, len(Z), block):
        if unresolved.size == 0:
            break
        cand = zs[start:start + block]
        d = np.abs(Z[unresolved][:, None] - cand[None, :])
        hit = d <= factor * t[unresolved][:, None]
        anyhit = hit.any(axis=1)
        kept[unresolved[anyhit]] = start + np.argmax(hit[anyhit], axis=1)
        unresolved = unresolved[~anyhit]
    idx = np.unique(kept)
    pts, vals = zs[idx], ts[idx]
    return pts, vals, float(vals.max()) if vals.size else float("nan")


# ==================================================================== reporting
def plot_spectrum(path: str | Path, result: KoopmanResult, re=None, im=None, tau=None,
                  certified: np.ndarray | None = None) -> None:
    """Eigenvalues coloured by log10 residual, tau contours at 1e-3, 1e-2, 0.1,
    0.3, the unit circle and the certified points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    if tau is not None:
        levels = [1e-3, 1e-2, 0.1, 0.3]
        cs = ax.contour(re, im, tau, levels=levels, colors=["#08306b", "#2171b5", "#6baed6", "#c6dbef"],
                        linewidths=1.0)
        ax.clabel(cs, fmt={lv: f"{lv:g}" for lv in levels}, fontsize=7)
    th = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(th), np.sin(th), "k--", lw=0.8, label="unit circle")
    if certified is not None and len(certified):
        ax.plot(certified.real, certified.imag, ".", color="tab:red", ms=2, alpha=0.6, label="certified points")
    res = np.clip(result.residuals, 1e-16, None)
    sc = ax.scatter(result.eigenvalues.real, result.eigenvalues.imag, c=np.log10(res), cmap="viridis",
                    s=22, edgecolors="k", linewidths=0.4, zorder=3, label="EDMD eigenvalues")
    fig.colorbar(sc, ax=ax, label=f"log10 residual ({result.residual_kind})")
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.set_title(f"Koopman spectrum, {result.dictionary.describe()}")
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_modes(path: str | Path, result: KoopmanResult, mesh, which: Sequence[int], component: int = 0) -> None:
    """The real parts of Koopman modes ``which`` on a 2D mesh, one panel each,
    titled with the eigenvalue, its modulus and its residual. Vector fields
    show ``component``. Modes are (n_modes, n_points * c) as in ``result.modes``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.tri as mtri

    tri = mtri.Triangulation(mesh.points[:, 0], mesh.points[:, 1], mesh.corner_cells)
    width, height = np.ptp(mesh.points[:, :2], axis=0)
    wide = width > 2 * height
    fig, axes = plt.subplots(len(which) if wide else 1, 1 if wide else len(which),
                             figsize=(9, 1.9 * len(which)) if wide else (3.2 * len(which), 2.8))
    for ax, j in zip(np.atleast_1d(axes), which):
        mode = result.modes[j].reshape(mesh.n_points, -1).real[:, component]
        ax.tripcolor(tri, mode, shading="gouraud", cmap="RdBu_r")
        lam = result.eigenvalues[j]
        ax.set_title(f"λ = {lam.real:+.4f}{lam.imag:+.4f}i, |λ| = {abs(lam):.4f}, residual {result.residuals[j]:.0e}",
                     fontsize=8)
        ax.set_aspect("equal")
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mode_fields(result: KoopmanResult, n_modes: int) -> dict[str, np.ndarray]:
    """Point fields (real, imag, modulus, phase) of the best-resolved modes:
    smallest residual first, one of each conjugate pair."""
    mesh, comps = result.data.mesh, result.data.components
    fields: dict[str, np.ndarray] = {}
    order = np.argsort(result.residuals, kind="stable")
    taken: list[complex] = []
    for j in order:
        lam = result.eigenvalues[j]
        if any(abs(lam - np.conj(t)) < 1e-10 * max(1.0, abs(lam)) for t in taken):
            continue
        taken.append(lam)
        mode = result.modes[j].reshape(mesh.n_points, comps) if comps > 1 else result.modes[j]
        k = len(taken) - 1
        fields[f"mode{k}_real"] = mode.real
        fields[f"mode{k}_imag"] = mode.imag
        fields[f"mode{k}_modulus"] = np.abs(mode)
        fields[f"mode{k}_phase"] = np.angle(mode)
        if len(taken) >= n_modes:
            break
    return fields


def write_report(result: KoopmanResult, report_dir: str | Path, *, grid=None, backend: str = "numpy",
                 measure_preserving: bool = False, n_modes: int = 6,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Write the report folder atomically (built in a temporary folder, then
    renamed): ``eigenvalues.csv`` (real, imag, residual), ``spectrum.json``
    (certified points, certificate, eigenvalues, errors), ``eigenvalues.png``,
    and ``modes.vtu`` (mode fields) when the data live on a mesh. Returns the
    summary written to spectrum.json."""
    from graphfem.meshes.io import atomic_dir

    re, im, tau = pseudospectrum(result, grid, backend=backend, progress=progress)
    pts, vals, E = certified_spectrum(re, im, tau, measure_preserving=measure_preserving)
    summary: dict[str, Any] = {
        "dictionary": result.dictionary.describe(),
        "n_pairs": result.data.n_pairs,
        "residual_kind": result.residual_kind,
        "n_residual_pairs": result.residual_data.n_pairs,
        "dt": result.dt,
        "inner_product": "mass matrix" if result.data.mass_matrix is not None else "euclidean",
        "grid": {"re": [float(re[0]), float(re[-1]), len(re)], "im": [float(im[0]), float(im[-1]), len(im)]},
        "measure_preserving": measure_preserving,
        "certificate": E,
        "certified": [{"real": float(p.real), "imag": float(p.imag), "tau": float(v)} for p, v in zip(pts, vals)],
        "eigenvalues": [{"real": float(l.real), "imag": float(l.imag), "residual": float(r)}
                        for l, r in zip(result.eigenvalues, result.residuals)],
        "reconstruction_error_M": result.reconstruction_error,
        "forecast_error_M": result.forecast_error,
    }
    if result.state_residuals is not None:
        summary["state_space_residuals"] = [float(s) for s in result.state_residuals]
    if result.dt is not None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", KoopmanWarning)
            om = result.exponents()
        summary["exponents"] = [{"real": float(o.real), "imag": float(o.imag)} for o in om]
        summary["warnings"] = [str(c.message) for c in caught]
    with atomic_dir(report_dir) as tmp:
        with open(tmp / "eigenvalues.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["real", "imag", "residual"])
            for l, r in zip(result.eigenvalues, result.residuals):
                w.writerow([repr(float(l.real)), repr(float(l.imag)), repr(float(r))])
        with open(tmp / "spectrum.json", "w") as f:
            json.dump(summary, f, indent=1, allow_nan=True)
        plot_spectrum(tmp / "eigenvalues.png", result, re, im, tau, pts)
        mesh = result.data.mesh
        if mesh is not None:
            mesh.write(tmp / "modes.vtu", point_data=_mode_fields(result, n_modes))
    return summary
