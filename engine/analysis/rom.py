"""Physics-informed clustering for local reduced-order bases (ROM-net style).

Method note: ``shared/methods/rom_clustering.md``. Notation: a snapshot set is
``U`` with shape ``(n_dof, n_s)`` (one snapshot per column) on one mesh, with
the FE mass matrix ``M`` (``(n_dof, n_dof)``, sparse or dense; identity when
unknown). Every inner product is ``<u, v>_M = u^T M v``.

Everything statistical comes from the Gram matrix ``C = U^T M U``
(``(n_s, n_s)``), computed once in :class:`SnapshotSet`:

* angle dissimilarity ``delta(u, v) = sin angle_M(u, v) = sqrt(1 - cos^2)``,
  ``cos = |C_uv| / sqrt(C_uu C_vv)``. It equals the relative projection error
  ``||u - P_v u||_M / ||u||_M`` of ``u`` onto ``span{v}``. From ``C`` alone it
  suffers cancellation when ``delta`` is small (absolute error ``~1e-16/delta``),
  so pairs with ``delta < refine_below`` are recomputed from the residual vector
  ``r = u - (C_uv / C_vv) v`` as ``||r||_M / ||u||_M`` (no cancellation);
* Euclidean dissimilarity ``||u - v||_M`` (baseline);
* Grassmann distances between the local POD subspaces of whole simulations
  (principal angles in the M-inner product, from blocks of ``C``);
* local POD by the method of snapshots: ``C_k = V L V^T``,
  ``Phi_k = U_k V L^{-1/2}`` so ``Phi_k^T M Phi_k = I``; a basis is stored as
  coefficients ``W = V L^{-1/2}`` on its snapshots, so projection errors are
  ``e^2 = (C_uu - ||W^T C_{k,u}||^2) / C_uu`` (Gram-based, floor ~1e-8), while
  :func:`projection_error` computes the exact residual from vectors.

The a priori efficiency figure is **our estimate** (the paper's criterion was
not available): ``E_p = p E_local + (1 - p) E_miss`` with ``E_local`` the mean
error with each snapshot's own cluster basis and ``E_miss`` the mean error with
its second-best cluster basis, compared with global POD at the same size N.
"""
from __future__ import annotations

import zipfile

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from graphfem.meshes.errors import InputError

__all__ = [
    "SnapshotSet", "angle_dissimilarity", "euclidean_dissimilarity", "principal_angles",
    "grassmann_dissimilarity", "kmedoids", "kmeans_gram", "agglomerative", "medoids_of",
    "Clustering", "cluster_snapshots", "assign", "InputClassifier", "LocalBasis", "pod",
    "projection_error", "projection_errors", "error_table", "efficiency_estimate",
    "RomAnalysis", "analyse",
]


# --------------------------------------------------------------------------- snapshots
class SnapshotSet:
    """Snapshots ``U`` (n_dof, n_s) with mass matrix ``M`` and Gram matrix ``C = U^T M U``.

    ``params`` (n_s, p) are the simulation inputs that produced each snapshot;
    ``groups`` (n_s,) the simulation id of each snapshot (for Grassmann distances).
    """

    def __init__(self, U: np.ndarray, M=None, params: np.ndarray | None = None,
                 groups: np.ndarray | None = None):
        U = np.asarray(U, dtype=float)
        if U.ndim != 2 or U.shape[1] == 0:
            raise InputError(f"snapshots must be a non-empty 2-D array, got shape {U.shape}")
        if not np.all(np.isfinite(U)):
            raise InputError("snapshots contain NaN or Inf")
        if M is not None and M.shape != (U.shape[0], U.shape[0]):
            raise InputError(f"mass matrix has shape {M.shape}, snapshots have {U.shape[0]} dofs")
        self.U = U
        self.M = sp.csr_matrix(M) if (M is not None and sp.issparse(M)) else M
        self.params = None if params is None else np.asarray(params, dtype=float).reshape(U.shape[1], -1)
        self.groups = None if groups is None else np.asarray(groups)
        self.MU = self.apply_M(U)
        C = U.T @ self.MU
        self.C = 0.5 * (C + C.T)
        self.sqnorm = np.diag(self.C).copy()
        bad = np.flatnonzero(self.sqnorm <= 0)
        if bad.size:
            raise InputError(f"snapshot {int(bad[0])} has zero M-norm; its angle is undefined")

    @classmethod
    def from_rows(cls, X: np.ndarray, M=None, **kw) -> "SnapshotSet":
        """From an array with one snapshot per row, shape (n_s, n_dof)."""
        return cls(np.asarray(X, dtype=float).T, M, **kw)

    @property
    def n_dof(self) -> int:
        return self.U.shape[0]

    @property
    def n_snapshots(self) -> int:
        return self.U.shape[1]

    def apply_M(self, V: np.ndarray) -> np.ndarray:
        """``M @ V`` (identity when no mass matrix)."""
        return V.copy() if self.M is None else np.asarray(self.M @ V)


def _idx(ss: SnapshotSet, idx) -> np.ndarray:
    return np.arange(ss.n_snapshots) if idx is None else np.asarray(idx, dtype=int)


# --------------------------------------------------------------------------- dissimilarities
def angle_dissimilarity(ss: SnapshotSet, rows=None, cols=None, refine_below: float = 1e-3) -> np.ndarray:
    """``delta[i, j] = sin angle_M(u_rows[i], u_cols[j])``, shape (len(rows), len(cols)).

    Entries below ``refine_below`` are recomputed from the projection residual
    (accurate to ~1e-16 absolute even for nearly parallel snapshots).
    """
    r, c = _idx(ss, rows), _idx(ss, cols)
    Crc = ss.C[np.ix_(r, c)]
    cos2 = Crc**2 / np.outer(ss.sqnorm[r], ss.sqnorm[c])
    D = np.sqrt(np.clip(1.0 - cos2, 0.0, 1.0))
    ii, jj = np.nonzero(D < refine_below)
    for start in range(0, ii.size, 512):
        a, b = ii[start:start + 512], jj[start:start + 512]
        gi, gj = r[a], c[b]
        coef = Crc[a, b] / ss.sqnorm[gj]
        R = ss.U[:, gi] - ss.U[:, gj] * coef
        res2 = np.einsum("ij,ij->j", R, ss.apply_M(R))
        D[a, b] = np.sqrt(np.clip(res2, 0.0, None) / ss.sqnorm[gi])
    return D


def euclidean_dissimilarity(ss: SnapshotSet, rows=None, cols=None) -> np.ndarray:
    """``||u_i - u_j||_M`` from the Gram matrix, shape (len(rows), len(cols))."""
    r, c = _idx(ss, rows), _idx(ss, cols)
    d2 = ss.sqnorm[r][:, None] + ss.sqnorm[c][None, :] - 2.0 * ss.C[np.ix_(r, c)]
    return np.sqrt(np.clip(d2, 0.0, None))


def principal_angles(Phi_a: np.ndarray, Phi_b: np.ndarray, M=None) -> np.ndarray:
    """Principal angles (ascending, radians) between span(Phi_a), span(Phi_b) in the M-inner product.

    Both bases must be M-orthonormal, shapes (n, r_a), (n, r_b); returns min(r_a, r_b) angles.
    Uses ``theta = arctan2(sin, cos)`` with ``cos`` the singular values of ``Phi_a^T M Phi_b``
    and ``sin`` those of the residual ``Phi_b - Phi_a Phi_a^T M Phi_b`` (accurate small angles).
    """
    MPb = Phi_b if M is None else np.asarray(M @ Phi_b)
    G = Phi_a.T @ MPb
    cos = np.linalg.svd(G, compute_uv=False)
    R = Phi_b - Phi_a @ G
    MR = R if M is None else np.asarray(M @ R)
    s2 = np.sort(np.clip(np.linalg.eigvalsh(0.5 * (R.T @ MR + MR.T @ R)), 0.0, None))
    r = min(Phi_a.shape[1], Phi_b.shape[1])
    return np.arctan2(np.sqrt(s2[:r]), np.clip(cos[:r], 0.0, 1.0))


def grassmann_dissimilarity(ss: SnapshotSet, groups: np.ndarray | None = None, n_modes: int = 3,
                            kind: str = "geodesic") -> tuple[np.ndarray, np.ndarray]:
    """Grassmann distances between the rank-``n_modes`` POD subspaces of whole simulations.

    ``groups`` (n_s,) gives each snapshot's simulation. Principal angles come from
    ``W_a^T C_ab W_b`` (blocks of the Gram matrix, no extra M products).
    ``kind``: "geodesic" ``||theta||_2`` or "chordal" ``||sin theta||_2``.
    Returns (D (n_sim, n_sim), group ids (n_sim,)).
    """
    g = ss.groups if groups is None else np.asarray(groups)
    if g is None:
        raise InputError("Grassmann distances need one simulation id per snapshot")
    ids = np.unique(g)
    bases = [pod(ss, np.flatnonzero(g == s), n_modes=n_modes) for s in ids]
    S = len(ids)
    D = np.zeros((S, S))
    for a in range(S):
        for b in range(a + 1, S):
            Ba, Bb = bases[a], bases[b]
            G = Ba.W.T @ ss.C[np.ix_(Ba.idx, Bb.idx)] @ Bb.W
            theta = np.arccos(np.clip(np.linalg.svd(G, compute_uv=False), 0.0, 1.0))
            D[a, b] = D[b, a] = np.linalg.norm(theta if kind == "geodesic" else np.sin(theta))
    return D, ids


# --------------------------------------------------------------------------- clustering
def _pam_cost(D: np.ndarray, medoids: np.ndarray) -> float:
    return float(D[:, medoids].min(axis=1).sum())


def kmedoids(D: np.ndarray, k: int, n_init: int = 10, max_iter: int = 100, swap: bool = True,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """k-medoids on a precomputed dissimilarity ``D`` (n, n).

    k-medoids++ initialisation (next medoid drawn with probability proportional
    to the squared dissimilarity to the nearest chosen one), alternating
    assignment / medoid update, then optionally greedy PAM swaps until no swap
    lowers the cost ``sum_i min_m D[i, m]``. The best of ``n_init`` restarts wins.
    Returns (labels (n,), medoids (k,) indices into D, cost).
    """
    D = np.asarray(D, dtype=float)
    n = D.shape[0]
    if not 1 <= k <= n:
        raise InputError(f"number of clusters k={k} must be between 1 and the number of snapshots {n}")
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(n_init):
        med = [int(rng.integers(n))]
        for _ in range(1, k):
            d2 = D[:, med].min(axis=1) ** 2
            med.append(int(rng.choice(n, p=d2 / d2.sum())) if d2.sum() > 0
                       else int(rng.choice(np.setdiff1d(np.arange(n), med))))
        med = np.array(med)
        for _ in range(max_iter):
            lab = D[:, med].argmin(axis=1)
            new = med.copy()
            for c in range(k):
                mem = np.flatnonzero(lab == c)
                if mem.size:
                    new[c] = mem[D[np.ix_(mem, mem)].sum(axis=0).argmin()]
            if np.array_equal(new, med):
                break
            med = new
        if swap:
            med = _pam_swap(D, med, max_iter)
        cost = _pam_cost(D, med)
        if best is None or cost < best[2] - 1e-12 * max(1.0, abs(best[2])):
            best = (D[:, med].argmin(axis=1), med, cost)
    return best


def _pam_swap(D: np.ndarray, med: np.ndarray, max_iter: int) -> np.ndarray:
    """Greedy PAM swap: apply the best (medoid, non-medoid) exchange while it lowers the cost."""
    med = med.copy()
    k = med.size
    for _ in range(max_iter):
        Dm = D[:, med]
        order = np.argsort(Dm, axis=1)
        near = Dm[np.arange(len(D)), order[:, 0]]
        second = Dm[np.arange(len(D)), order[:, 1]] if k > 1 else np.full(len(D), np.inf)
        cur = near.sum()
        best_gain, best_swap = 1e-12 * max(1.0, cur), None
        for c in range(k):
            keep = np.where(order[:, 0] == c, second, near)     # cost without medoid c
            cost_h = np.minimum(keep[:, None], D).sum(axis=0)   # adding candidate h (columns)
            cost_h[med] = np.inf
            h = int(cost_h.argmin())
            if cur - cost_h[h] > best_gain:
                best_gain, best_swap = cur - cost_h[h], (c, h)
        if best_swap is None:
            break
        med[best_swap[0]] = best_swap[1]
    return med


def kmeans_gram(C: np.ndarray, k: int, n_init: int = 10, max_iter: int = 100,
                seed: int = 0) -> tuple[np.ndarray, float]:
    """Euclidean (M-norm) k-means from the Gram matrix ``C`` (n, n) (kernel k-means, linear kernel).

    Distance of snapshot i to the centroid of cluster S:
    ``C_ii - 2 mean_{j in S} C_ij + mean_{j,l in S} C_jl``. k-means++ initialisation,
    Lloyd iterations, best inertia of ``n_init`` restarts. Returns (labels, inertia).
    """
    n = C.shape[0]
    if not 1 <= k <= n:
        raise InputError(f"number of clusters k={k} must be between 1 and the number of snapshots {n}")
    diag = np.diag(C)
    d2_pair = np.clip(diag[:, None] + diag[None, :] - 2 * C, 0, None)
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(n_init):
        cen = [int(rng.integers(n))]
        for _ in range(1, k):
            d2 = d2_pair[:, cen].min(axis=1)
            cen.append(int(rng.choice(n, p=d2 / d2.sum())) if d2.sum() > 0 else int(rng.integers(n)))
        lab = d2_pair[:, cen].argmin(axis=1)
        for _ in range(max_iter):
            dist = _centroid_d2(C, diag, lab, k, C)
            new = dist.argmin(axis=1)
            if np.array_equal(new, lab):
                break
            lab = new
        inertia = float(_centroid_d2(C, diag, lab, k, C)[np.arange(n), lab].sum())
        if best is None or inertia < best[1]:
            best = (lab, inertia)
    return best


def _centroid_d2(C_train: np.ndarray, diag_new: np.ndarray, lab: np.ndarray, k: int,
                 C_new_train: np.ndarray) -> np.ndarray:
    """Squared M-distances (n_new, k) of new snapshots to the training-cluster centroids."""
    out = np.full((C_new_train.shape[0], k), np.inf)
    for c in range(k):
        mem = np.flatnonzero(lab == c)
        if mem.size:
            out[:, c] = diag_new - 2 * C_new_train[:, mem].mean(axis=1) + C_train[np.ix_(mem, mem)].mean()
    return out


def agglomerative(D: np.ndarray, k: int, method: str = "average") -> np.ndarray:
    """Agglomerative clustering of a precomputed dissimilarity into k clusters (scipy linkage)."""
    if D.shape[0] == 1:
        return np.zeros(1, dtype=int)
    Z = linkage(squareform(0.5 * (D + D.T), checks=False), method=method)
    lab = fcluster(Z, t=k, criterion="maxclust") - 1
    return np.unique(lab, return_inverse=True)[1]


def medoids_of(D: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per cluster, the member minimising the summed dissimilarity to the other members."""
    out = []
    for c in range(labels.max() + 1):
        mem = np.flatnonzero(labels == c)
        out.append(mem[D[np.ix_(mem, mem)].sum(axis=0).argmin()])
    return np.array(out, dtype=int)


@dataclass
class Clustering:
    """A clustering of the training snapshots ``train_idx`` (indices into a SnapshotSet).

    ``labels`` (n_train,), ``medoids`` (K,) global snapshot indices; ``method`` in
    {kmedoids, kmeans, agglomerative}; ``dissimilarity`` in {angle, euclidean}.
    """
    train_idx: np.ndarray
    labels: np.ndarray
    medoids: np.ndarray
    method: str
    dissimilarity: str

    @property
    def k(self) -> int:
        return int(self.labels.max()) + 1


def _dissim(ss: SnapshotSet, kind: str, rows=None, cols=None) -> np.ndarray:
    if kind == "angle":
        return angle_dissimilarity(ss, rows, cols)
    if kind == "euclidean":
        return euclidean_dissimilarity(ss, rows, cols)
    raise InputError(f"unknown dissimilarity {kind!r} (angle or euclidean)")


def cluster_snapshots(ss: SnapshotSet, k: int, train_idx=None, dissimilarity: str = "angle",
                      method: str = "kmedoids", seed: int = 0, n_init: int = 10,
                      swap: bool = True) -> Clustering:
    """Cluster the training snapshots. ``kmeans`` is always Euclidean in the M-norm."""
    tr = _idx(ss, train_idx)
    D = _dissim(ss, "euclidean" if method == "kmeans" else dissimilarity, tr, tr)
    if method == "kmedoids":
        labels, med, _ = kmedoids(D, k, n_init=n_init, swap=swap, seed=seed)
        labels = D[:, med].argmin(axis=1)
    elif method == "kmeans":
        labels, _ = kmeans_gram(ss.C[np.ix_(tr, tr)], k, n_init=n_init, seed=seed)
        labels = np.unique(labels, return_inverse=True)[1]
        med = medoids_of(D, labels)
    elif method == "agglomerative":
        labels = agglomerative(D, k, "average" if dissimilarity == "angle" else "ward")
        med = medoids_of(D, labels)
    else:
        raise InputError(f"unknown clustering method {method!r} (kmedoids, kmeans or agglomerative)")
    return Clustering(tr, labels, tr[med], method, "euclidean" if method == "kmeans" else dissimilarity)


def assign(ss: SnapshotSet, clustering: Clustering, idx) -> np.ndarray:
    """Deployed assignment of snapshots ``idx``: nearest training centroid (k-means) or nearest medoid."""
    idx = _idx(ss, idx)
    if clustering.method == "kmeans":
        tr = clustering.train_idx
        return _centroid_d2(ss.C[np.ix_(tr, tr)], ss.sqnorm[idx], clustering.labels, clustering.k,
                            ss.C[np.ix_(idx, tr)]).argmin(axis=1)
    return _dissim(ss, clustering.dissimilarity, idx, clustering.medoids).argmin(axis=1)


class InputClassifier:
    """k-nearest-neighbour classifier in standardized input space (z-scores of the training inputs).

    Recommends a cluster for new simulation inputs (parameters or flattened input
    fields), as the classifier of a ROM-net. Majority vote of the ``k`` nearest
    training inputs; ties go to the cluster of the nearest one.
    """

    def __init__(self, X: np.ndarray, labels: np.ndarray, k: int = 5):
        X = np.asarray(X, dtype=float).reshape(len(labels), -1)
        self.mean = X.mean(axis=0)
        self.scale = np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
        self.Z = (X - self.mean) / self.scale
        self.labels = np.asarray(labels, dtype=int)
        self.k = min(k, len(labels))

    def predict(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, dtype=float).reshape(-1, self.Z.shape[1]) - self.mean) / self.scale
        d = ((Z[:, None, :] - self.Z[None, :, :]) ** 2).sum(axis=2)
        nn = np.argsort(d, axis=1, kind="stable")[:, :self.k]
        out = np.empty(len(Z), dtype=int)
        for i, row in enumerate(nn):
            votes = np.bincount(self.labels[row], minlength=self.labels.max() + 1)
            winners = np.flatnonzero(votes == votes.max())
            out[i] = self.labels[row[0]] if self.labels[row[0]] in winners else winners[0]
        return out


# --------------------------------------------------------------------------- POD
@dataclass
class LocalBasis:
    """M-orthonormal POD basis ``Phi = U[:, idx] @ W`` (+ optional centre ``U[:, idx] @ centre``).

    ``sigma`` holds all singular values (descending) of the (centred) snapshot block;
    ``W`` (m, N) keeps the retained modes.
    """
    idx: np.ndarray
    W: np.ndarray
    sigma: np.ndarray
    centre: np.ndarray | None = None

    @property
    def n_modes(self) -> int:
        return self.W.shape[1]

    def truncated(self, n: int) -> "LocalBasis":
        return LocalBasis(self.idx, self.W[:, :n], self.sigma, self.centre)

    def modes(self, ss: SnapshotSet) -> np.ndarray:
        """The modes as vectors, shape (n_dof, N), M-orthonormalised once more (Cholesky)."""
        Phi = ss.U[:, self.idx] @ self.W
        if Phi.shape[1] == 0:
            return Phi
        G = Phi.T @ ss.apply_M(Phi)
        L = np.linalg.cholesky(0.5 * (G + G.T))
        return np.linalg.solve(L, Phi.T).T

    def mean(self, ss: SnapshotSet) -> np.ndarray | None:
        return None if self.centre is None else ss.U[:, self.idx] @ self.centre


def pod(ss: SnapshotSet, idx=None, n_modes: int | None = None, energy: float | None = None,
        affine: bool = False, rtol: float = 1e-7) -> LocalBasis:
    """Uncentred (or, with ``affine``, centred) POD of snapshots ``idx`` by the method of snapshots.

    Truncation: ``n_modes`` modes, or the fewest modes whose retained energy
    ``sum_{i<=N} sigma_i^2 / sum sigma_i^2 >= energy``; modes with
    ``sigma_i <= rtol * sigma_1`` are always dropped: the method of snapshots
    gets eigenvalues of ``C`` to ~1e-16 lambda_1, so singular values below
    ~1e-7 sigma_1 are rounding noise and their modes are not M-orthonormal.
    """
    idx = _idx(ss, idx)
    Ck = ss.C[np.ix_(idx, idx)]
    m = idx.size
    centre = None
    if affine:
        centre = np.full(m, 1.0 / m)
        H = np.eye(m) - 1.0 / m
        Ck = H @ Ck @ H
    lam, V = np.linalg.eigh(0.5 * (Ck + Ck.T))
    order = np.argsort(lam)[::-1]
    lam, V = np.clip(lam[order], 0.0, None), V[:, order]
    sigma = np.sqrt(lam)
    keep = int(np.sum(sigma > rtol * sigma[0])) if sigma[0] > 0 else 0
    if energy is not None:
        frac = np.cumsum(lam) / lam.sum() if lam.sum() > 0 else np.ones(m)
        keep = min(keep, int(np.searchsorted(frac, energy - 1e-15) + 1))
    if n_modes is not None:
        keep = min(keep, int(n_modes))
    W = V[:, :keep] / sigma[:keep]
    if affine:
        W = (np.eye(m) - 1.0 / m) @ W
    return LocalBasis(idx, W, sigma, centre)


def projection_error(u: np.ndarray, Phi: np.ndarray, M=None, mean: np.ndarray | None = None) -> float:
    """Exact relative error ``||u - mean - Phi Phi^T M (u - mean)||_M / ||u||_M`` from the residual vector."""
    Mu = u if M is None else M @ u
    v = u if mean is None else u - mean
    r = v - Phi @ (Phi.T @ (v if M is None else M @ v))
    Mr = r if M is None else M @ r
    return float(np.sqrt(max(r @ Mr, 0.0) / (u @ Mu)))


def projection_errors(ss: SnapshotSet, basis: LocalBasis, idx=None, sizes=None) -> np.ndarray:
    """Gram-based relative projection errors of snapshots ``idx`` onto the basis.

    With ``sizes`` (list of N), returns shape (len(sizes), len(idx)) for the
    first-N-mode truncations; otherwise (len(idx),) for the whole basis.
    """
    idx = _idx(ss, idx)
    Ckj = ss.C[np.ix_(basis.idx, idx)]
    v2 = ss.sqnorm[idx].copy()
    if basis.centre is not None:
        Ckk = ss.C[np.ix_(basis.idx, basis.idx)]
        Ckj = Ckj - (Ckk @ basis.centre)[:, None]
        v2 = v2 - 2 * basis.centre @ ss.C[np.ix_(basis.idx, idx)] + basis.centre @ Ckk @ basis.centre
    A2 = np.cumsum((basis.W.T @ Ckj) ** 2, axis=0)          # (N, n) captured energy
    A2 = np.vstack([np.zeros((1, idx.size)), A2])
    if sizes is None:
        return np.sqrt(np.clip(v2 - A2[-1], 0, None) / ss.sqnorm[idx])
    sizes = np.minimum(np.asarray(sizes, dtype=int), basis.n_modes)
    return np.sqrt(np.clip(v2[None, :] - A2[sizes], 0, None) / ss.sqnorm[idx][None, :])


def error_table(ss: SnapshotSet, bases: list[LocalBasis], idx, sizes) -> np.ndarray:
    """Errors of snapshots ``idx`` on every basis for every size: shape (K, len(sizes), len(idx))."""
    return np.stack([projection_errors(ss, b, idx, sizes) for b in bases])


def efficiency_estimate(errors: np.ndarray, own: np.ndarray, p: float) -> dict:
    """Our a priori efficiency estimate (not the paper's criterion).

    ``errors`` (K, n) projection errors of n snapshots on each cluster basis,
    ``own`` (n,) each snapshot's cluster. ``E_local`` = mean own-cluster error;
    ``E_miss`` = mean error on the second-best cluster basis (pessimistic proxy
    of a misclassification); ``E_p = p E_local + (1 - p) E_miss``.
    """
    n = errors.shape[1]
    e_local = errors[own, np.arange(n)]
    e_miss = np.sort(errors, axis=0)[1] if errors.shape[0] > 1 else e_local
    E_local, E_miss = float(e_local.mean()), float(e_miss.mean())
    return {"E_local": E_local, "E_miss": E_miss, "E_p": p * E_local + (1 - p) * E_miss, "p": p}


# --------------------------------------------------------------------------- analysis
def _stats(e: np.ndarray) -> dict:
    return {"mean": float(np.mean(e)), "q90": float(np.quantile(e, 0.9)), "max": float(np.max(e))}


@dataclass
class RomAnalysis:
    """Result of :func:`analyse`: clustering, bases, curves and the JSON-ready summary."""
    clustering: Clustering
    bases: list[LocalBasis]
    global_basis: LocalBasis
    summary: dict
    curves: dict
    test_labels: np.ndarray
    classifier: InputClassifier | None = None
    grid: dict = field(default_factory=dict)


def analyse(ss: SnapshotSet, train_idx, test_idx, k: int, n: int, dissimilarity: str = "angle",
            method: str = "kmedoids", affine: bool = False, p: float = 0.9, tol: float = 1e-2,
            k_grid=None, n_max: int | None = None, seed: int = 0) -> RomAnalysis:
    """Cluster, build local bases of size n, evaluate against global POD, recommend (K, N).

    Test snapshots are assigned by the deployed rule: the input classifier
    (k-NN in standardized input space) when ``ss.params`` exist, else nearest
    medoid/centroid. The recommendation scans ``k_grid`` x ``1..n_max`` with our
    estimate E_p (on the test snapshots, own cluster = nearest medoid/centroid)
    and returns the smallest N, then the smallest K, with ``E_p <= tol``
    (the smallest E_p if none reaches ``tol``).
    """
    tr, te = _idx(ss, train_idx), np.asarray(test_idx, dtype=int)
    if te.size == 0:
        raise InputError("no test snapshots: give a test set or a non-zero test fraction")
    n_max = max(n, 20) if n_max is None else n_max
    n_max = min(n_max, tr.size)
    sizes = np.arange(1, n_max + 1)
    cl = cluster_snapshots(ss, k, tr, dissimilarity, method, seed)
    bases = [pod(ss, tr[cl.labels == c], n_modes=n_max, affine=affine) for c in range(cl.k)]
    glob = pod(ss, tr, n_modes=max(n_max, k * n), affine=affine)

    near = assign(ss, cl, te)
    classifier = None
    deployed = near
    if ss.params is not None:
        classifier = InputClassifier(ss.params[tr], cl.labels)
        deployed = classifier.predict(ss.params[te])
    E_te = error_table(ss, bases, te, sizes)                     # (K, len(sizes), n_te)
    E_tr = error_table(ss, bases, tr, sizes)
    cols = np.arange(te.size)
    local_dep = E_te[deployed, :, cols].T                      # (len(sizes), n_te)
    local_near = E_te[near, :, cols].T
    local_orc = E_te.min(axis=0)
    local_tr = E_tr[cl.labels, :, np.arange(tr.size)].T
    g_sizes = np.arange(1, glob.n_modes + 1)
    glob_te = projection_errors(ss, glob, te, g_sizes)
    oracle_lab = E_te[:, n - 1].argmin(axis=0)

    i = n - 1
    summary = {
        "k": cl.k, "n": n, "method": method, "dissimilarity": cl.dissimilarity, "affine": affine,
        "n_train": int(tr.size), "n_test": int(te.size), "n_dof": ss.n_dof,
        "cluster_sizes": np.bincount(cl.labels, minlength=cl.k).tolist(),
        "medoids": cl.medoids.tolist(),
        "deployed_assignment": "input k-NN classifier" if classifier else
        ("nearest centroid" if method == "kmeans" else "nearest medoid"),
        "classifier_accuracy_vs_oracle": float(np.mean(deployed == oracle_lab)),
        "train_error_local": _stats(local_tr[i]),
        "test_error_local": _stats(local_dep[i]),
        "test_error_local_nearest_medoid": _stats(local_near[i]),
        "test_error_local_oracle": _stats(local_orc[i]),
        "test_error_global_N": _stats(glob_te[min(n, glob.n_modes) - 1]),
        "test_error_global_KN": _stats(glob_te[min(k * n, glob.n_modes) - 1]),
    }
    curves = {"N": sizes.tolist(),
              "local_deployed_mean": local_dep.mean(axis=1).tolist(),
              "local_deployed_q90": np.quantile(local_dep, 0.9, axis=1).tolist(),
              "local_oracle_mean": local_orc.mean(axis=1).tolist(),
              "global_N": g_sizes.tolist(),
              "global_mean": glob_te.mean(axis=1).tolist(),
              "global_q90": np.quantile(glob_te, 0.9, axis=1).tolist()}

    # our a priori efficiency estimate over a (K, N) grid
    k_grid = sorted(set(range(1, max(2 * k, 6) + 1)) if k_grid is None else k_grid)
    k_grid = [kk for kk in k_grid if kk <= tr.size]
    Ep = np.full((len(k_grid), sizes.size), np.nan)
    est_at = {}
    for a, kk in enumerate(k_grid):
        ck = cl if kk == cl.k else cluster_snapshots(ss, kk, tr, dissimilarity, method, seed)
        bk = bases if kk == cl.k else [pod(ss, tr[ck.labels == c], n_modes=n_max, affine=affine)
                                       for c in range(ck.k)]
        own = assign(ss, ck, te)
        Ek = error_table(ss, bk, te, sizes)
        for b, N in enumerate(sizes):
            est = efficiency_estimate(Ek[:, b], own, p)
            Ep[a, b] = est["E_p"]
            est_at[(kk, int(N))] = est
    ok = np.argwhere(Ep <= tol)
    if ok.size:
        a, b = min(ok.tolist(), key=lambda ab: (ab[1], ab[0]))
    else:
        a, b = np.unravel_index(np.nanargmin(Ep), Ep.shape)
    K_rec, N_rec = int(k_grid[a]), int(sizes[b])
    g_at = curves["global_mean"][min(N_rec, glob.n_modes) - 1]
    est = est_at[(K_rec, N_rec)]
    est_req = est_at.get((cl.k, n))
    summary["efficiency_estimate"] = {
        "name": "graphfem estimate E_p = p*E_local + (1-p)*E_miss (not the paper's criterion)",
        "p": p, "tol": tol, "evaluated_on": "test snapshots, own cluster = deployed nearest medoid/centroid",
        "requested": None if est_req is None else {**est_req, "global_N": curves["global_mean"][min(n, glob.n_modes) - 1]},
        "recommended": {"K": K_rec, "N": N_rec, **est, "global_N": g_at,
                        "meets_tol": bool(Ep[a, b] <= tol),
                        "local_beats_global": bool(est["E_p"] < g_at)},
    }
    summary["recommended"] = {"K": K_rec, "N": N_rec}
    return RomAnalysis(cl, [b.truncated(n) for b in bases], glob.truncated(min(n, glob.n_modes)),
                       summary, curves, deployed, classifier,
                       {"K": k_grid, "N": sizes.tolist(), "E_p": Ep.tolist()})


# --------------------------------------------------------------------------- data files
@dataclass
class SnapshotData:
    """Snapshots read from a file: the set (train then test columns), the split, and what is known
    about the mesh (``points`` (n, d), ``cells`` (m, k), ``cell_type``) and the field layout
    (``n_comp`` components per node, node-major)."""
    snapshots: SnapshotSet
    train_idx: np.ndarray
    test_idx: np.ndarray
    mesh: tuple | None
    n_comp: int
    problem: dict | None
    mass_source: str


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < test_fraction < 1:
        raise InputError(f"test fraction {test_fraction} must lie in (0, 1) when the data has no test set")
    perm = np.random.default_rng(seed).permutation(n)
    n_te = max(1, int(round(test_fraction * n)))
    if n - n_te < 1:
        raise InputError(f"{n} snapshot(s) are too few to hold out a test set")
    return np.sort(perm[n_te:]), np.sort(perm[:n_te])


def _mesh_mass(mesh: tuple, n_dof: int, n_comp: int):
    import skfem

    from graphfem.analysis.fe_meshes import element_for, skfem_mesh

    m = skfem_mesh(mesh)
    basis = skfem.Basis(m, element_for(m))
    if basis.N * n_comp != n_dof:
        return None
    M = skfem.BilinearForm(lambda u, v, w: u * v).assemble(basis)
    return sp.kron(M, sp.eye(n_comp), format="csr") if n_comp > 1 else M.tocsr()


_CELL_BY_SHAPE = {(1, 2): "line", (2, 3): "triangle", (2, 4): "quad", (3, 4): "tetra"}


def load_snapshot_data(path, field: str | None = None, test_fraction: float = 0.2,
                       seed: int = 0) -> SnapshotData:
    """Read snapshots from ``.npz`` or HDF5 (``.h5``/``.hdf5``); errors name the file.

    ``.npz`` keys: ``train`` (n_s, n_dof) one snapshot per row; optional ``test``
    (n_t, n_dof); optional mass matrix ``mass`` (dense) or CSR ``mass_data``,
    ``mass_indices``, ``mass_indptr``; optional ``train_params`` / ``test_params``
    (rows of simulation inputs); optional mesh ``points``, ``cells``, ``cell_type``;
    optional ``n_comp`` (components per node, node-major); optional ``problem``
    (a JSON string for ``rom solve``).

    HDF5: one group per simulation (any name but ``mesh``), holding
    ``outputs/<name>`` of shape (T, n) or (T, n, c) (or one step: (n,) / (n, c)),
    optional ``params`` dataset or attribute, optional attribute ``split`` =
    ``"train"``/``"test"``; the mesh in ``mesh/points`` (n, d) and ``mesh/cells``
    (m, k) (attribute ``cell_type`` or guessed from the shapes); optional root
    attribute ``problem`` (JSON). Without a mass matrix, one is assembled (P1) when
    the mesh is known, else the identity is used (nodal inner product).
    Without a test set, ``test_fraction`` of the snapshots is held out (seeded).
    """
    import json
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path)
    try:
        if path.suffix.lower() == ".npz":
            out = _load_npz(path)
        elif path.suffix.lower() in (".h5", ".hdf5"):
            out = _load_h5(path, field)
        else:
            raise InputError(f"unknown data format {path.suffix!r}: use .npz or .h5/.hdf5")
        train, test, M, ptr, pte, mesh, n_comp, problem, groups = out
        if train.ndim != 2 or train.shape[0] == 0:
            raise InputError(f"'train' must be a 2-D array with one snapshot per row, got shape {train.shape}")
        if test is not None and (test.ndim != 2 or test.shape[1] != train.shape[1]):
            raise InputError(f"'test' must have shape (n, {train.shape[1]}), got {test.shape}")
        if test is not None and (ptr is None or pte is None):
            ptr = pte = None                      # inputs are used only when both sets have them
        mass_source = "file"
        if M is None and mesh is not None:
            M = _mesh_mass(mesh, train.shape[1], n_comp)
            mass_source = "P1 mass of the mesh" if M is not None else "identity (mesh does not match the field)"
        elif M is None:
            mass_source = "identity (no mass matrix, no mesh)"
        if test is None:
            tr, te = _split(train.shape[0], test_fraction, seed)
            X, P = train, ptr
        else:
            tr = np.arange(train.shape[0])
            te = np.arange(train.shape[0], train.shape[0] + test.shape[0])
            X = np.vstack([train, test])
            P = None if ptr is None else np.vstack([ptr.reshape(len(train), -1), pte.reshape(len(test), -1)])
        ss = SnapshotSet.from_rows(X, M, params=P, groups=groups)
        if isinstance(problem, (bytes, np.bytes_)):
            problem = problem.decode()
        problem = None if problem is None else json.loads(str(problem))
        return SnapshotData(ss, tr, te, mesh, n_comp, problem, mass_source)
    except InputError as e:
        raise e.with_source(path) from None
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as e:  # a damaged archive
        raise InputError(f"cannot read snapshot data: {' '.join(str(e).split())}"[:300], path) from None


def _load_npz(path):
    with np.load(path, allow_pickle=False) as z:
        keys = set(z.files)
        if "train" not in keys:
            raise InputError(f"missing array 'train' (found: {', '.join(sorted(keys)) or 'nothing'})")
        train = np.asarray(z["train"], dtype=float)
        test = np.asarray(z["test"], dtype=float) if "test" in keys else None
        n = train.shape[1] if train.ndim == 2 else 0
        M = None
        if "mass" in keys:
            M = np.asarray(z["mass"], dtype=float)
        elif {"mass_data", "mass_indices", "mass_indptr"} <= keys:
            M = sp.csr_matrix((z["mass_data"], z["mass_indices"], z["mass_indptr"]), shape=(n, n))
        if M is not None and M.shape != (n, n):
            raise InputError(f"mass matrix has shape {M.shape}, snapshots have {n} dofs")
        ptr = z["train_params"] if "train_params" in keys else None
        pte = z["test_params"] if "test_params" in keys else None
        mesh = None
        if {"points", "cells"} <= keys:
            cells = np.asarray(z["cells"])
            ct = str(z["cell_type"]) if "cell_type" in keys else _CELL_BY_SHAPE.get(
                (np.asarray(z["points"]).shape[1], cells.shape[1]))
            mesh = (np.asarray(z["points"], dtype=float), cells, ct)
        n_comp = int(z["n_comp"]) if "n_comp" in keys else 1
        problem = str(z["problem"]) if "problem" in keys else None
    return train, test, M, ptr, pte, mesh, n_comp, problem, None


def _load_h5(path, field):
    import h5py

    with h5py.File(path, "r") as f:
        mesh = None
        if "mesh" in f:
            pts = np.asarray(f["mesh/points"], dtype=float)
            cells = np.asarray(f["mesh/cells"], dtype=np.int64)
            ct = f["mesh/cells"].attrs.get("cell_type", None)
            ct = ct.decode() if isinstance(ct, bytes) else ct
            mesh = (pts, cells, ct or _CELL_BY_SHAPE.get((pts.shape[1], cells.shape[1])))
        sims = [k for k in f.keys() if k != "mesh" and isinstance(f[k], h5py.Group)]
        if not sims:
            raise InputError("no simulation groups (each needs outputs/<name>)")
        rows = {"train": [], "test": []}
        prm = {"train": [], "test": []}
        grp = {"train": [], "test": []}
        n_comp = 1
        for gi, s in enumerate(sims):
            g = f[s]
            if "outputs" not in g or not len(g["outputs"]):
                raise InputError(f"group {s!r} has no outputs/<name> dataset")
            names = list(g["outputs"].keys())
            name = field or names[0]
            if name not in g["outputs"]:
                raise InputError(f"group {s!r} has no field {name!r} (has: {', '.join(names)})")
            a = np.asarray(g["outputs"][name], dtype=float)
            if a.ndim == 1 or (a.ndim == 2 and mesh is not None and a.shape[0] == len(mesh[0])):
                a = a[None]
            n_comp = a.shape[2] if a.ndim == 3 else 1
            a = a.reshape(a.shape[0], -1)
            split = g.attrs.get("split", "train")
            split = split.decode() if isinstance(split, bytes) else str(split)
            if split not in rows:
                raise InputError(f"group {s!r}: split must be 'train' or 'test', got {split!r}")
            rows[split].append(a)
            grp[split] += [gi] * len(a)
            p = g["params"][()] if "params" in g else g.attrs.get("params", None)
            prm[split].append(None if p is None else np.tile(np.ravel(p), (len(a), 1)))
        problem = f.attrs.get("problem", None)
    if not rows["train"]:
        raise InputError("no simulation is marked split='train'")
    if len({r.shape[1] for r in rows["train"] + rows["test"]}) != 1:
        raise InputError("simulations have different numbers of dofs; they must share one mesh")
    train = np.vstack(rows["train"])
    test = np.vstack(rows["test"]) if rows["test"] else None
    have_p = all(p is not None for p in prm["train"] + prm["test"])
    ptr = np.vstack(prm["train"]) if have_p else None
    pte = np.vstack(prm["test"]) if (have_p and rows["test"]) else None
    groups = np.array(grp["train"] + grp["test"])
    return train, test, None, ptr, pte, mesh, n_comp, problem, groups
