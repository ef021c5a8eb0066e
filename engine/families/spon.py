r"""SPON / SPON-MG adapter: structure-preserving operator networks on FE spaces
(Bouziani & Boullé, arXiv 2410.01065; the models are :mod:`graphfem.operators.spon`).

Consumes **FE spaces**: the nested Lagrange hierarchy of a coarse mesh
refined once per level, the DOF graph of each level, the exact transfers
between them and the FE mass (+ stiffness) matrix of V_h. Trains on the SPON
data files of :mod:`graphfem.datasets.spon` (``graphfem generate
spon-poisson | spon-hyperelastic | spon-flow``), whose samples carry their
coarse mesh and reference coefficients in V_h, through the one
:class:`~graphfem.training.trainer.Trainer` (``graphfem train`` with
``model.name: spon`` or ``spon_mg``).

Encoding (:func:`encode_case`), from the options of the data's problem:

* ``spon-poisson`` (``poisson``: kappa, source, dirichlet, zero neumann):
  input channels E(f') and E(log κ/κ_h) by L² projection onto U_h = the
  scalar space of V_h, with κ_h = |Ω| / ∫ κ⁻¹ and f' = f D² / (κ_h s), D the
  bounding-box diameter; the output is u/s with
  s = max(|g|_∞, rms(f) D² / (16 κ_h)), using linearity in (f, g). Without
  any condition u = 0 on the whole boundary, as in ``graphfem solve poisson``.
* ``spon-hyperelastic`` (``hyperelastic``: traction on the loaded tag,
  body_force): b / b_ref and t / t_ref on every DOF (2 + 2 channels: a plain
  L-layer network would see the loaded edge only L hops away); output u/s
  with the fixed s = 0.1 (the problem is nonlinear, so no rescaling); the
  ``fix`` tags are the Dirichlet DOFs (u = 0).
* ``spon-flow`` (``navier-stokes``: inflow inlet=UMAX): U / U_ref and the
  distance to the cylinder / channel height; output u/U; the parabolic
  inflow on ``inlet`` and u = 0 on the no-slip tags are the Dirichlet DOFs.

Training: batches are :class:`graphfem.operators.spon.Batch` objects
(:func:`graphfem.operators.spon.collate`), the loss is SPON's own
(:func:`graphfem.operators.spon.fe_loss`, averaged over the batch): the
relative error sqrt((c − c*)ᵀ N (c − c*) / c*ᵀ N c*) of the exactly decoded
coefficients in the norm of V_h, N = M (``norm: l2``) or M + K (``h1``).
Validation: the same errors in float64 from the matrices of
:class:`~graphfem.meshes.FESpace` (:func:`errors`), ``rel_l2`` (or ``rel_h1``)
first.

Prediction takes the problem's options, exactly those of ``graphfem solve
<problem>``, and refuses in one line every option the model does not use
and every value it never saw (a traction on another tag, another ``fix``,
E, ν or viscosity). The prediction lives on the given mesh, at its
resolution, with the Dirichlet values exact. SPON-MG chooses its own levels
(:func:`model_hierarchy`) so that they are the trained ones: the checkpoint
stores the training meshes' relative size h/D (``fine_size``); a mesh 2^e
times finer that is a uniform refinement (recognised from its geometry,
:func:`graphfem.meshes.refinement.unrefined`) is unrefined e + L times, the
model runs on the trained levels and its prediction is prolonged exactly to
the given mesh; any other mesh is the coarsest level of a hierarchy refined
L times (with a warning when the mesh is finer than the training meshes).
``graphfem evaluate`` serves each sample's fine mesh the same way.

Domain of validity (:mod:`graphfem.validity`): every checkpoint stores the
ranges of its training split (``meta["validity"]``, the names in
``meta["problem"]["inputs"]``, :data:`INPUT_NAMES`): the extent, aspect and
cell types of the training meshes and the min/max over the DOFs of what the
processor reads, after SPON's own scaling (:func:`validity_case`): the input
channels (Poisson f D²/(κ_h s) and log κ/κ_h; the hyperelastic body force and
traction over their units 0.1; the flow's inflow peak over 0.45 and the
distance to the cylinder over the channel height), Poisson's Dirichlet values
over s (on the Dirichlet DOFs; the other families' are fixed by the model),
and the local mesh size h_i / D of the level the model runs on (the DOF
graph's h, D the bounding-box diameter). The coordinates and flags of the
geometry features lie in [0, 1] on every mesh and are not stored. A
prediction is checked on the *served* fine level, before the forward pass:
a finer mesh unrefined to the trained levels is inside where its unrefinement
is, one the levels cannot match shows as a local mesh size outside. The node
count is stored (of the training meshes) but never checked: the model runs
on the trained levels whatever the given mesh's size, and its prediction is
prolonged exactly. The extent is checked only for ``spon-hyperelastic`` and
``spon-flow``, whose reference loads and distances are in the mesh's units;
``spon-poisson``'s inputs are scale-free (the ``scale`` claim). Outside the
ranges ``predict`` warns once per input, ``--strict`` refuses;
``evaluate`` reports the errors inside and outside apart. Checkpoints from
before the ranges were stored predict silently (refused under ``--strict``).
"""
from __future__ import annotations

import json
import time
import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from graphfem import validity
from graphfem.datasets import spon as spon_data
from graphfem.meshes import FESpace, Mesh
from graphfem.meshes.errors import GraphfemError, InputError

from . import Family, Prediction, Setup, check_options, evaluation_summary, register_family
from . import model_config as split_model_config

HYPER_SCALE = 0.1  # displacement unit of the hyperelastic output
HYPER_LOADS = (0.1, 0.1)  # body-force and traction units
FLOW_SPEED = 0.45  # inflow peak unit of the spon-flow input channel

_HIERARCHIES: dict = {}

#: the names, in the stored training ranges, of the encoded input channels of each data family; Poisson adds
#: :data:`DIRICHLET_INPUT`, every family :data:`SIZE_INPUT` (module docstring, :func:`validity_case`)
INPUT_NAMES = {
    "spon-poisson": ("source f*D^2/(kappa_h*s)", "log(kappa/kappa_h)"),
    "spon-hyperelastic": (f"body force x / {HYPER_LOADS[0]:g}", f"body force y / {HYPER_LOADS[0]:g}",
                          f"traction x on {spon_data.HYPER['loaded']!r} / {HYPER_LOADS[1]:g}",
                          f"traction y on {spon_data.HYPER['loaded']!r} / {HYPER_LOADS[1]:g}"),
    "spon-flow": (f"inflow peak U / {FLOW_SPEED:g}", "distance to the cylinder / channel height"),
}
#: Poisson's Dirichlet values over the output scale s, on the Dirichlet DOFs
DIRICHLET_INPUT = "Dirichlet value u/s"
#: the local mesh size of the level the model runs on, over the bounding-box diameter
SIZE_INPUT = "local mesh size h/D"


def hierarchy_for(coarse: Mesh, levels: int, order: int, vector: bool, mg_levels: int | None = None,
                  extra_refinements: int = 0):
    """Cached :func:`~graphfem.operators.spon.hierarchy` of ``coarse`` refined ``levels`` times,
    keeping the finest ``mg_levels + 1`` spaces (all with ``mg_levels=None``).

    ``extra_refinements`` refines only the finest mesh further: the coarse
    levels (and the graphs the coarse blocks were trained on) stay those of
    ``levels``, and the prolongation from the last coarse level goes straight
    to the finer mesh (still exact: the spaces remain nested). One coarse hop
    then spans the same physical distance as in training, which is what lets
    SPON-MG keep its accuracy one level finer."""
    from graphfem.operators.spon import hierarchy

    mg = levels if mg_levels is None else mg_levels
    key = (coarse.points.tobytes(), coarse.cells.tobytes(), levels, order, vector, mg, extra_refinements)
    if key not in _HIERARCHIES:
        meshes = [coarse.refined(levels - mg)]
        for _ in range(mg):
            meshes.append(meshes[-1].refined())
        meshes[-1] = meshes[-1].refined(extra_refinements)
        _HIERARCHIES[key] = hierarchy(meshes, order=order, vector=vector)
    return _HIERARCHIES[key]


def relative_size(mesh: Mesh) -> float:
    """h/D = sqrt(|Ω| / cells) over the bounding-box diameter: scale-free, exactly
    halved by a uniform refinement, and the mean size of graded meshes too."""
    lo, hi = mesh.bounding_box
    return float(np.sqrt(mesh.cell_measures().sum() / mesh.n_cells) / np.linalg.norm(hi - lo))


def model_hierarchy(mesh: Mesh, fine_size: float, levels: int, order: int, vector: bool):
    """The hierarchy that serves ``mesh`` (one space for plain SPON), at the trained sizes where
    the geometry allows it, and whether its finest space is that of ``mesh``.

    With e = round(log2(fine_size / h)), h the relative size of ``mesh``
    (:func:`relative_size`): a mesh coarser than the training meshes (e < 0) is
    refined −e times into a work mesh (else the work mesh is ``mesh``), which
    is unrefined max(e, 0) + L times
    (:func:`graphfem.meshes.refinement.hierarchy_below`). Its unrefinements
    e, ..., e + L are then the trained levels: fine at the trained size, each
    coarse hop the trained physical length. The prediction there is prolonged
    exactly to the nested ``mesh`` (:func:`serve`). Where the chain stops
    early (``mesh`` is no uniform refinement), its coarsest mesh is the
    coarsest level, refined L times, with a warning: the hops are then shorter
    than in training.

    Args:
        mesh: the user's mesh.
        fine_size: h/D of the training meshes.
        levels: the model's coarse levels L.
        order, vector: the FE space of the model.
    """
    import warnings

    from graphfem.meshes.refinement import hierarchy_below
    from graphfem.operators.spon import hierarchy

    e = int(round(np.log2(fine_size / relative_size(mesh))))
    tags = tuple((n, t.kind, t.indices.tobytes()) for n, t in sorted(mesh.tags.items()))
    key = (mesh.points.tobytes(), mesh.cells.tobytes(), tags, "served", e, levels, order, vector)
    if key not in _HIERARCHIES:
        work, finer = (mesh.refined(-e), 0) if e < 0 else (mesh, e)
        chain = hierarchy_below(work, finer + levels)
        if len(chain) > finer + levels:
            H = hierarchy(chain[finer:finer + levels + 1][::-1], order=order, vector=vector)
        else:
            short = finer + levels + 1 - len(chain)
            warnings.warn(f"{mesh.source or 'the mesh'}: not a uniform refinement of a mesh {2 ** short}x coarser, so "
                          f"SPON-MG's levels are {2 ** short}x finer than trained (expect a larger error)")
            H = hierarchy_for(chain[-1], levels, order, vector, levels)
        _HIERARCHIES[key] = (H, H.fine.mesh is mesh)
    return _HIERARCHIES[key]


# ---------------------------------------------------------------------- encoding
def _as_function(value, mesh: Mesh, name: str):
    """A callable x (dim, ...) -> (...) from a number, a callable, or a point /
    cell array of ``mesh`` (evaluated at any point inside ``mesh``, so it
    also serves the refined meshes of a hierarchy)."""
    if callable(value):
        return value
    a = np.asarray(value, dtype=float)
    if a.ndim == 0:
        return lambda x: np.full(np.shape(x)[1:], float(a))
    if a.shape[0] == mesh.n_points:
        P1 = FESpace(mesh, 1)
        return lambda x: (P1.probe(np.reshape(x, (x.shape[0], -1)).T) @ a).reshape(np.shape(x)[1:])
    if a.shape[0] == mesh.n_cells:
        finder = mesh.to_skfem().element_finder()
        return lambda x: a[finder(*np.reshape(x, (x.shape[0], -1)))].reshape(np.shape(x)[1:])
    raise InputError(f"{name}: {a.shape[0]} values fit neither the {mesh.n_points} nodes nor the {mesh.n_cells} "
                     "cells of the mesh", mesh.source)


def case_options(record: spon_data.Record) -> dict:
    """The problem options of a stored sample, as :func:`encode_case` takes them
    (Poisson's κ and f as the functions they were drawn as, so that they
    can be encoded on any mesh)."""
    p = record.params
    if record.family == "spon-poisson":
        return {"kappa": spon_data.kappa_function(p["kappa"]), "source": spon_data.fourier(p["f"]),
                "dirichlet": p["dirichlet"]}
    return {k: p[k] for k in spon_data.INPUTS[record.family] + spon_data.FIXED[record.family] if k in p}


def encode_case(family: str, H, options: Mapping[str, Any], norm: str = "l2", target: np.ndarray | None = None,
                source_mesh: Mesh | None = None):
    """A :class:`~graphfem.operators.spon.SPONSample` on the finest space of ``H``
    from the options of the family's problem (parsed values, as
    :meth:`graphfem.physics.Problem.parse` gives them; arrays are point/cell
    values of ``source_mesh``, default the fine mesh). See the module
    docstring for the channels; values the model cannot encode are refused:

    * ``spon-poisson``: ``kappa``, ``source`` (default 1), ``dirichlet``
      ({tag: value}; none: u = 0 on the whole boundary), ``neumann`` (zero
      values only: the decoder does not enforce natural conditions and the
      model never saw a flux).
    * ``spon-hyperelastic``: ``fix`` (the clamped tags), ``traction``
      ({tag: (2,)} on the loaded tag of :data:`~graphfem.datasets.spon.HYPER`
      only), ``body_force`` (2,).
    * ``spon-flow``: ``inflow`` ({"inlet": U}, the parabolic peak),
      ``no_slip`` (tags with u = 0; the distance input is to ``cylinder``).
    """
    from graphfem.operators.spon import SPONSample, l2_projection

    space = H.fine
    mesh = space.mesh
    source_mesh = mesh if source_mesh is None else source_mesh
    scalar = FESpace(mesh, space.order) if space.vector else space
    n = H.graphs[-1].n_nodes
    if family == "spon-poisson":
        from graphfem.physics.poisson import boundary_conditions

        neumann = options.get("neumann") or {}
        if any(not isinstance(v, (int, float)) or v != 0 for v in neumann.values()):
            raise InputError("--neumann: the SPON model takes zero fluxes only (it was trained with Dirichlet "
                             "data on the whole boundary)", mesh.source)
        kappa = _as_function(1.0 if options.get("kappa") is None else options["kappa"], source_mesh, "--kappa")
        f = _as_function(1.0 if options.get("source") is None else options["source"], source_mesh, "--source")
        lo, hi = mesh.bounding_box
        D = float(np.linalg.norm(hi - lo))
        basis = space.scalar_basis
        dx = basis.dx  # (m, q) quadrature weights
        xq = np.asarray(basis.global_coordinates().value)
        k_q = kappa(xq)
        if np.any(k_q <= 0):
            raise InputError("--kappa must be positive", mesh.source)
        k_h = float(dx.sum() / (dx / k_q).sum())
        rms_f = float(np.sqrt((dx * f(xq) ** 2).sum() / dx.sum()))
        dofs, values = boundary_conditions(space, options.get("dirichlet"), neumann, None)
        g0 = float(np.abs(values).max()) if values.size else 0.0
        s = max(g0, rms_f * D * D / (16 * k_h), 1e-12)
        inputs = np.stack([l2_projection(space, lambda y: f(y) * D * D / (k_h * s)),
                           l2_projection(space, lambda y: np.log(kappa(y) / k_h))], axis=1)
        mask = np.zeros((n, 1), dtype=bool)
        vals = np.zeros((n, 1))
        mask[dofs, 0] = True
        vals[dofs, 0] = values
    elif family == "spon-hyperelastic":
        loaded = spon_data.HYPER["loaded"]
        traction = dict(options.get("traction") or {})
        other = sorted(set(traction) - {loaded})
        if other:
            raise InputError(f"--traction {other[0]}=...: the SPON model was trained with a traction on "
                             f"{loaded!r} only", mesh.source)
        b = options.get("body_force")
        inputs = np.zeros((n, 4))
        inputs[:, :2] = (np.zeros(2) if b is None else np.asarray(b, dtype=float)) / HYPER_LOADS[0]
        inputs[:, 2:] = np.asarray(traction.get(loaded, (0.0, 0.0)), dtype=float) / HYPER_LOADS[1]
        s = HYPER_SCALE
        mask = np.zeros((n, 2), dtype=bool)
        for tag in options["fix"]:
            mask[scalar.dofs_on(tag)] = True
        vals = np.zeros((n, 2))
    elif family == "spon-flow":
        from scipy.spatial import cKDTree

        from graphfem.physics.navier_stokes import parabolic_inflow

        inflow = dict(options.get("inflow") or {})
        if set(inflow) != {"inlet"} or not isinstance(inflow["inlet"], (int, float)):
            raise InputError("--inflow: the SPON model was trained with a parabolic inflow on 'inlet' only; give "
                             "--inflow inlet=UMAX (the peak speed)", mesh.source)
        u_max = float(inflow["inlet"])
        x = np.asarray(scalar.scalar_basis.doflocs)  # (2, n)
        wall = cKDTree(mesh.points[mesh.tag_nodes("cylinder")]).query(x.T)[0]
        inputs = np.stack([np.full(n, u_max / FLOW_SPEED), wall / spon_data.FLOW["height"]], axis=1)
        s = max(abs(u_max), 1e-12)
        mask = np.zeros((n, 2), dtype=bool)
        vals = np.zeros((n, 2))
        for tag in options["no_slip"]:
            mask[scalar.dofs_on(tag)] = True
        inlet = scalar.dofs_on("inlet")
        mask[inlet] = True
        vals[inlet] = parabolic_inflow(mesh, "inlet", u_max)(x[:, inlet]).T
    else:
        raise InputError(f"unknown SPON data family {family!r}; choose one of {', '.join(spon_data.FAMILIES)}")
    c = mask.shape[1]
    return SPONSample(inputs, mask, vals, s, H, None if target is None else np.asarray(target).reshape(n, c), norm)


def encode(record: spon_data.Record, extra_refinements: int = 0, norm: str = "l2", mg_levels: int = 1,
           with_target: bool = True):
    """A :class:`~graphfem.operators.spon.SPONSample` for a stored sample.

    ``extra_refinements`` > 0 moves the sample to a finer mesh: the inputs are
    re-encoded there and the reference is re-solved by FE (same parameters).
    The hierarchy keeps the ``mg_levels`` coarse levels of training below the
    fine mesh (:func:`hierarchy_for`)."""
    p = record.params
    order = int(p["order"])
    L = int(p["levels"])
    H = hierarchy_for(record.coarse, L, order, record.family != "spon-poisson", min(mg_levels, L), extra_refinements)
    target = None
    if with_target:
        target = record.dofs if extra_refinements == 0 else \
            spon_data.solve_case(record.family, H.fine.mesh, p, order).dofs[spon_data.FIELDS[record.family]]
    return encode_case(record.family, H, case_options(record), norm, target)


def load_samples(path, norm: str = "l2", mg_levels: int = 1, extra_refinements: int = 0,
                 indices: Sequence[int] | None = None) -> list:
    """:func:`encode` of the samples of a SPON data file (all, or ``indices``)."""
    records = spon_data.read(path)
    if indices is not None:
        records = [records[i] for i in indices]
    return [encode(r, norm=norm, mg_levels=mg_levels, extra_refinements=extra_refinements) for r in records]


def build(name: str, samples: Sequence, **config):
    """A registered SPON model sized for ``samples`` (``in_node``, ``out`` from the
    data), with the feature mean and standard deviation of ``samples`` in its
    buffers (``x_mean``, ``x_std``: the checkpoint carries them)."""
    import torch

    from graphfem.operators import get_model

    cls = get_model(name)
    feats = np.concatenate([s.features() for s in samples])
    model = cls(cls.Config(**{**config, "in_node": feats.shape[1], "out": samples[0].dirichlet_mask.shape[1]}))
    model.set_normalisation(feats.mean(axis=0), feats.std(axis=0))
    return model.to(torch.float32)


# ---------------------------------------------------------------------- inference on samples
def coefficients(model, samples: Sequence, batch_size: int = 16, device: str = "cpu") -> list[np.ndarray]:
    """(n_i, c) float64 decoded coefficients of u_h in V_h for each sample
    (Dirichlet DOFs exact), in the model's dtype and coarse levels."""
    import torch

    from graphfem.operators.spon import collate

    dtype = next(model.parameters()).dtype
    out = []
    with torch.no_grad():
        for k in range(0, len(samples), batch_size):
            batch = collate(samples[k:k + batch_size], model.config.levels, device, dtype)
            out += batch.split(model.predict(batch))
    return out


def errors(model, samples: Sequence, norm: str = "l2", device: str = "cpu") -> np.ndarray:
    """(N,) relative errors sqrt(eᵀ N e / tᵀ N t) in the L² (N = M) or H¹
    (N = M + K) norm of V_h, in float64 with the FE matrices of
    :class:`~graphfem.meshes.FESpace` (independent of the training loss code)."""
    from graphfem.operators.spon import norm_matrix

    errs = []
    for s, u in zip(samples, coefficients(model, samples, device=device)):
        N = norm_matrix(s.hierarchy.fine, norm)
        e, t = u.reshape(-1) - s.target.reshape(-1), s.target.reshape(-1)
        errs.append(float(np.sqrt(float(e @ (N @ e)) / float(t @ (N @ t)))))
    return np.asarray(errs)


def _records(data, indices: Sequence[int]) -> list:
    """The :class:`~graphfem.datasets.spon.Record` of samples ``indices`` of a SimulationData."""
    return [spon_data.record(data.group(i), data.family, f"{data.path}:{data.names[i]}") for i in indices]


def validity_case(family: str, mesh: Mesh, sample, nodes: bool = False) -> dict[str, Any]:
    """The :func:`graphfem.validity.describe` case of one prediction: the extent, aspect and
    cell type of ``mesh`` (the given one), and the [min, max] over the DOFs of ``sample`` (the
    encoded case on the level the model runs on) of its input channels (:data:`INPUT_NAMES`),
    Poisson's Dirichlet values over s on the Dirichlet DOFs (where it has any,
    :data:`DIRICHLET_INPUT`) and the local mesh size h_i / D of the DOF graph, D the
    bounding-box diameter of that level (:data:`SIZE_INPUT`). With ``nodes`` the case has the
    node count of ``mesh`` (training cases: :func:`graphfem.validity.ranges` takes it); a
    prediction leaves it out, so that it is not checked (module docstring)."""
    graph = sample.hierarchy.graphs[-1]
    lo, hi = sample.hierarchy.fine.mesh.bounding_box
    values = {name: sample.inputs[:, k] for k, name in enumerate(INPUT_NAMES[family])}
    if family == "spon-poisson" and sample.dirichlet_mask.any():
        values[DIRICHLET_INPUT] = sample.dirichlet_values[sample.dirichlet_mask] / sample.scale
    values[SIZE_INPUT] = graph.h / float(np.linalg.norm(np.asarray(hi, float) - np.asarray(lo, float)))
    return validity.describe_inputs(mesh, values, () if nodes else ("nodes",))


def serve(model, meta_problem: Mapping[str, Any], mesh: Mesh, options: Mapping[str, Any], device: str = "cpu",
          check=None):
    """(V_h of ``mesh``, (n, c) predicted coefficients in it) for the problem
    ``options`` (parsed, or a stored sample's :func:`case_options`), through
    the hierarchy of :func:`model_hierarchy`. A prediction on another mesh of
    the nested family is prolonged exactly to ``mesh``, and the Dirichlet
    DOFs of ``mesh`` are then set to their values, as the decoder does.
    ``check`` (a callable of the encoded :class:`~graphfem.operators.spon.SPONSample`)
    runs before the forward pass: the domain-of-validity check of ``predict``."""
    from graphfem.operators.spon import prolongation

    p = meta_problem
    family, order, vector = p["data_family"], int(p["order"]), bool(p["vector"])
    H, on_mesh = model_hierarchy(mesh, float(p.get("fine_size", relative_size(mesh))), int(model.config.levels),
                                 order, vector)
    sample = encode_case(family, H, options, source_mesh=mesh)
    if check is not None:
        check(sample)
    u = coefficients(model, [sample], device=device)[0]
    if on_mesh:
        return H.fine, u
    here = encode_case(family, hierarchy_for(mesh, 0, order, vector), options)
    u = np.where(here.dirichlet_mask, here.dirichlet_values, prolongation(H.fine, here.hierarchy.fine) @ u)
    return here.hierarchy.fine, u


# ---------------------------------------------------------------------- options
def _same(value, trained) -> bool:
    if isinstance(trained, Mapping):
        return dict(value) == dict(trained)
    if isinstance(trained, (list, tuple)):
        return sorted(map(str, value)) == sorted(map(str, trained))
    return bool(np.isclose(float(value), float(trained), rtol=1e-12, atol=0.0))


def _shown(value) -> str:
    if isinstance(value, Mapping):
        return ",".join(f"{tag}:{held}" for tag, held in value.items())
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else f"{float(value):g}"


def parse_options(problem, meta_problem: Mapping[str, Any], mesh: Mesh, options: Mapping[str, Any]) -> dict:
    """The parsed options of a prediction on ``mesh``: ``options`` as ``graphfem
    solve <problem>`` takes them (strings or Python values), the values the
    model was trained with filled in for the options every sample shared
    (E, ν, fix; ν, no_slip, outflow). Refused in one line: an option the
    model does not use (settings of the FE solver included) and a shared
    option given with another value than in training."""
    given = {k: v for k, v in options.items()
             if v is not None and not (isinstance(v, (list, tuple, dict)) and not v)}
    family = meta_problem["data_family"]
    check_options(given, meta_problem["options"], f"the SPON model (trained on {family} data)", mesh.source)
    fixed = meta_problem["fixed"]
    params = problem.parse(mesh, {**fixed, **given})
    for key, trained in fixed.items():
        if isinstance(params[key], Mapping):  # --fix {tag: components held}: compared as parsed, TAG:x is not TAG
            trained = problem.option(key).value(trained, mesh)
        if key in given and not _same(params[key], trained):
            flag = problem.option(key).cli_flag
            raise InputError(f"{flag} {_shown(params[key])}: the SPON model was trained with {flag} "
                             f"{_shown(trained)} and predicts for that value only", mesh.source)
    return params


# ---------------------------------------------------------------------- the adapter
@register_family
class SPONFamily(Family):
    """SPON and SPON-MG on the SPON data families (module docstring)."""

    name = "spon"
    models = ("spon", "spon_mg")
    checks_validity = True
    consumes = "FE spaces (nested Lagrange hierarchies, DOF graphs, FE mass/stiffness matrices) of SPON data files"

    # ---------------------------------------------------------------- data
    def trains_on(self, data) -> bool:
        return data.family in spon_data.FAMILIES

    def setup(self, data, split, model_config, source) -> Setup:
        from graphfem.datasets.simulations import problem_of
        from graphfem.physics.problem import get_problem

        cls, config, _ = split_model_config(model_config, {}, source)
        name = model_config["name"]
        levels, norm = config.get("levels", cls.Config.levels), config.get("norm", cls.Config.norm)
        if norm not in ("l2", "h1"):
            raise InputError(f"model.norm: expected l2 or h1, got {norm!r}", source)
        family = data.family
        records = _records(data, range(len(data)))
        refined = min(int(r.params["levels"]) for r in records)
        if levels > refined:
            raise InputError(f"model.levels: {name} with {levels} coarse level(s) needs samples refined at least "
                             f"{levels} times; the data is refined {refined} time(s) (generate it with "
                             f"--resolution {levels})", source)
        shared = {}
        for key in ("order",) + spon_data.FIXED[family]:
            values = {json.dumps(r.params.get(key), sort_keys=True) for r in records}
            if len(values) > 1:
                raise GraphfemError(f"the samples differ in {key!r}; SPON trains on one value of it", data.path)
            shared[key] = records[0].params.get(key)
        samples = [encode(r, norm=norm, mg_levels=levels) for r in records]
        train = list(split["train"])
        first = samples[train[0]]
        for key, value in {"in_node": first.features().shape[1], "out": first.dirichlet_mask.shape[1]}.items():
            if key in config and config[key] != value:
                raise InputError(f"model.{key}: the data gives {value}, the config says {config[key]}", source)
        try:
            model = build(name, [samples[i] for i in train], **config)
        except InputError as exc:
            raise exc.with_source(source) from None
        problem = get_problem(problem_of(family))
        field = spon_data.FIELDS[family]
        domain = validity.ranges(validity_case(family, records[i].mesh, samples[i], nodes=True) for i in train)
        meta = {"normalisation": {"in_model": ["x_mean", "x_std"]}, "validity": domain,
                "problem": {"name": problem.name, "data_family": family, "dim": 2,
                            "cell_types": sorted({r.mesh.cell_type for r in records}), "fields": [field],
                            "units": {field: problem.fields[field]}, "order": int(shared["order"]),
                            "vector": family != "spon-poisson", "levels": refined,
                            "fine_size": float(np.median([relative_size(records[i].mesh) for i in train])),
                            "fixed": {k: shared[k] for k in spon_data.FIXED[family]},
                            "options": list(spon_data.INPUTS[family] + spon_data.FIXED[family]),
                            "inputs": list(domain["features"])}}
        return Setup(model, meta, train, list(split["val"]), list(split["test"]),
                     {"samples": samples, "levels": levels, "norm": norm})

    # ---------------------------------------------------------------- training
    def collate(self, setup: Setup, items: Sequence, rng: np.random.Generator, device: str, dtype) -> Any:
        from graphfem.operators.spon import collate

        return collate([setup.state["samples"][i] for i in items], setup.state["levels"], device, dtype)

    def loss(self, net, batch):
        from graphfem.operators.spon import fe_loss

        return fe_loss(net(batch.x, batch.edge_index, batch.edge_attr, batch.coarse), batch).mean()

    def validate(self, setup: Setup, model, items: Sequence, device: str) -> dict[str, float]:
        from graphfem.training.losses import summary

        norm = setup.state["norm"]
        return summary(errors(model, [setup.state["samples"][i] for i in items], norm, device), f"rel_{norm}")

    # ---------------------------------------------------------------- inference
    def claims(self, meta) -> frozenset[str]:
        """The decoder sets the Dirichlet DOFs (``dirichlet``); on ``spon-poisson`` the inputs
        f D²/(κ_h s), log κ/κ_h and the output u/s are invariant under x ↦ c x, f ↦ f/c²
        (``scale``). The other families scale by fixed reference loads, and no input is
        rotation-invariant (the flow's inflow is along x)."""
        return frozenset({"dirichlet"} | ({"scale"} if meta["problem"]["data_family"] == "spon-poisson" else set()))

    def full_options(self, meta, options) -> dict:
        """The given options with the values the model was trained with for the shared ones (E, ν, fix, ...)."""
        return {**meta["problem"]["fixed"], **{k: v for k, v in options.items() if v is not None}}

    @staticmethod
    def _check(meta, mesh: Mesh, strict: bool):
        """The ``check`` of :func:`serve`: the case against the stored ranges (:mod:`graphfem.validity`),
        the extent left out on ``spon-poisson`` (scale-free inputs)."""
        family = meta["problem"]["data_family"]
        return lambda sample: validity.check(meta.get("validity"), validity_case(family, mesh, sample), strict,
                                             family == "spon-poisson", mesh.source)

    def predict(self, model, meta, mesh, options, device, strict: bool = False) -> Prediction:
        """The field on ``mesh``; a case outside the training ranges warns once per input
        (module docstring), or is refused with ``strict``."""
        from graphfem.physics.problem import get_problem

        p = meta["problem"]
        if mesh.dim != p["dim"] or mesh.cell_type not in p["cell_types"]:
            raise InputError(f"the SPON model was trained on {p['dim']}D {', '.join(p['cell_types'])} meshes, this "
                             f"mesh is {mesh.dim}D {mesh.cell_type}", mesh.source)
        params = parse_options(get_problem(p["name"]), p, mesh, options)
        space, u = serve(model, p, mesh, params, device, check=self._check(meta, mesh, strict))
        field = p["fields"][0]
        return Prediction(mesh, {field: space.to_nodes(u.reshape(-1))}, {field: p["units"][field]})

    def evaluate(self, model, meta, data, device, limit=0, compare_fe=False, progress=True) -> dict:
        """Relative L² errors in the consistent mass norm of V_h against the
        stored ``dofs/``, the per-sample predict time (encoding + forward pass)
        and with ``compare_fe`` the FE (Newton) solve time and how closely the
        re-solve matches the stored coefficients."""
        from rich.progress import Progress

        family = meta["problem"]["data_family"]
        if data.family != family:
            raise GraphfemError(f"the SPON model was trained on {family} data, the file holds {data.family} "
                                f"samples; it evaluates on {family} files (coarse meshes and V_h coefficients)",
                                data.path)
        n = len(data) if limit <= 0 else min(limit, len(data))
        errs, t_pred, t_fe, fe_check, inside = [], [], [], [], []
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("evaluating", total=n)
            for r in _records(data, range(n)):
                start = time.perf_counter()
                with validity.recorded() as outside:
                    space, u = serve(model, meta["problem"], r.mesh, case_options(r), device,
                                     check=self._check(meta, r.mesh, False))
                errs.append(float(space.relative_l2_error(u.reshape(-1), r.dofs.reshape(-1))))
                t_pred.append(time.perf_counter() - start)
                inside.append(not outside)
                if compare_fe:
                    start = time.perf_counter()
                    u = spon_data.solve_case(r.family, r.mesh, r.params, int(r.params["order"]))
                    t_fe.append(time.perf_counter() - start)
                    fe_check.append(space.relative_l2_error(u.dofs[spon_data.FIELDS[r.family]], r.dofs))
                bar.advance(task)
        return evaluation_summary(errs, t_pred, device, t_fe if compare_fe else None, fe_check,
                                  inside if meta.get("validity") else None, norm="FE L2 norm")


__all__ = ["DIRICHLET_INPUT", "INPUT_NAMES", "SIZE_INPUT", "SPONFamily", "build", "case_options", "coefficients",
           "encode", "encode_case", "errors", "hierarchy_for", "load_samples", "model_hierarchy", "parse_options",
           "relative_size", "serve", "validity_case"]
