r"""DGNO and MultiONet adapter: Darcy −∇·(a∇u) = f on meshes of [0, 1]² from ``graphfem generate darcy``.

Consumes the ``darcy`` data sets (two-phase a ∈ {5, 10} as a cell field; ``--resolution 28``
gives the 29 × 29 vertex grid of the DGNO benchmark) and ``darcy-smooth`` (a smooth log-normal
a, with ``model.coefficient: continuous``: the a decoder is an L² fit, not a Bernoulli; left
unset, the coefficient is two-phase when the training a takes two values, else continuous). The input of both models is a on the
G × G vertex grid of [0, 1]² (``model.grid``), read off each sample's mesh by **element
lookup** (:func:`coefficient_at`, skfem's ``element_finder``), not by grid rounding.

Models (``model.name``):

* ``dgno``: label-free. The loss is w_data BCE + w_pde L_pde of
  :meth:`graphfem.operators.dgno.DGNO.loss`; the n_c test-function centres of every sample are
  drawn from the trainer's per-step rng in each batch and a at their quadrature points comes
  from the same element lookup on the sample's own mesh (detached; for a continuous a, the P1
  interpolant of its node means, :meth:`Lookup.continuous`). The stored u is **never**
  read in training; it is read in validation and evaluation only.
  With ``model.variational: true`` the encoder is Gaussian and the loss adds
  ``model.kl_weight`` × KL(q(z | a) ‖ N(0, I)); the reparameterisation draws ε come from the
  trainer's rng too (``batch["eps"]``), so a resumed run repeats them.
* ``multionet``: supervised, u at ``points`` nodes per sample (drawn per step), MSE of u / u_rms.

Validation: the relative L2 error of u at the mesh nodes against the stored FE solution
(``rel_l2_u``); DGNO adds the BCE and the a error (fraction of wrong grid phases), or for a
continuous a the L² misfit (``a_misfit``) and the relative L2 error of E[a | β] on the grid
(``a_rel_l2``).

Prediction (``graphfem predict MODEL MESH --kappa FIELD_OR_NUMBER``): u at the mesh's nodes; the
mesh must lie in [0, 1]² (the mollifier's box) and ``--source`` must be the training f.

Domain of validity (:mod:`graphfem.validity`): the network reads a on its G × G grid and nothing
else of the case, so a checkpoint stores, over the training split, the range of ``kappa`` (a's
values on the grid) and one number per sample: for two-phase training a (two values) the
``upper-phase fraction of kappa`` (the share of grid points above the phases' midpoint), else the
``grid mean of kappa``. A prediction outside them warns once per input, or is refused with
``strict``; :meth:`DGNOFamily.evaluate` splits its errors by them. Not checked: the node count and
the cell type (u is queried at any points, a is read off any mesh by element lookup), extent and
aspect (the mesh must be the unit square, refused otherwise), f (one training value, refused
otherwise). A checkpoint written before the ranges were kept predicts silently (refused under ``strict``).
"""
from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np

from graphfem import validity
from graphfem.meshes import Mesh
from graphfem.meshes.errors import GraphfemError, InputError

from . import Family, Prediction, Setup, check_options, evaluation_summary, register_family
from . import model_config as family_model_config

#: family options in ``model:`` with their defaults
FAMILY_KEYS = {"dgno": {}, "multionet": {"points": 128}}


class Lookup:
    """Element lookup on one mesh: values of a cell field (or a point field, averaged over the
    containing cell's vertices) at arbitrary points of the mesh."""

    def __init__(self, mesh: Mesh):
        self.mesh = mesh
        self._finder = mesh.to_skfem().element_finder()

    def cells(self, points: np.ndarray) -> np.ndarray:
        """Index of the cell containing each point (k, 2); points outside the mesh are refused."""
        p = np.asarray(points, dtype=float)
        try:
            idx = np.asarray(self._finder(p[:, 0].copy(), p[:, 1].copy()))
        except ValueError:
            idx = None
        if idx is None or idx.shape != (len(p),) or (idx < 0).any():
            raise InputError("points of [0, 1]^2 lie outside this mesh: DGNO serves meshes covering the unit "
                             "square", self.mesh.source)
        return idx

    def values(self, a, points: np.ndarray) -> np.ndarray:
        """a at points (k, 2): a is a number, a callable of x (2, k) (an expression), a cell field or a point field."""
        if callable(a):
            return np.asarray(a(np.asarray(points, float).T), dtype=float) * np.ones(len(points))  # x: (dim, k)
        a = np.asarray(a, dtype=float)
        if a.ndim == 0:
            return np.full(len(points), float(a))
        idx = self.cells(points)
        if a.shape == (self.mesh.n_cells,):
            return a[idx]
        if a.shape == (self.mesh.n_points,):
            return a[self.mesh.corner_cells[idx]].mean(axis=1)
        raise InputError(f"a has {a.shape[0]} values; this mesh has {self.mesh.n_cells} cells and "
                         f"{self.mesh.n_points} nodes", self.mesh.source)

    def continuous(self, a: np.ndarray, points: np.ndarray) -> np.ndarray:
        """The continuous P1 interpolant of a point field ``a`` (n_points,), or of a cell field (n_cells,)
        through its node values (the means over each node's cells), at points (k, 2), with the barycentric
        coordinates of the containing cell (element lookup). The primal form's a: a jump of a inside a
        test disc of radius R would add O(Δa |∇u| / R) to mean(a∇u·∇φ_j)."""
        cells = self.mesh.corner_cells
        a = np.asarray(a, float)
        nodal = a if a.shape == (self.mesh.n_points,) else np.bincount(
            cells.ravel(), np.repeat(a, cells.shape[1]), self.mesh.n_points) / np.bincount(
            cells.ravel(), minlength=self.mesh.n_points)
        p = np.asarray(points, float)
        idx = self.cells(p)
        tri = self.mesh.points[cells[idx]][:, :, :2]                       # (k, 3, 2)
        lam = np.linalg.solve(np.stack([tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]], 2),
                              (p - tri[:, 0])[..., None])[..., 0]           # (k, 2): λ1, λ2
        weights = np.column_stack([1 - lam.sum(1), lam])
        return (weights * nodal[cells[idx]]).sum(1)


def coefficient_at(mesh: Mesh, a, points: np.ndarray) -> np.ndarray:
    """a at ``points`` (k, 2) by element lookup on ``mesh`` (:class:`Lookup`)."""
    return Lookup(mesh).values(a, points)


def grid_points(grid: int, inset: float = 1e-9) -> np.ndarray:
    """The G² vertices of [0, 1]², x-major (as :meth:`DGNO.grid_points`), pulled ``inset`` into the box
    so that each lies in a cell of a mesh of the square: (G², 2)."""
    t = np.clip(np.linspace(0, 1, grid), inset, 1 - inset)
    return np.stack(np.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)


def _check_square(mesh: Mesh, source=None) -> None:
    lo, hi = mesh.bounding_box
    if mesh.dim != 2 or np.abs(lo).max() > 1e-9 or np.abs(hi - 1).max() > 1e-9:
        raise InputError(f"the DGNO/MultiONet model serves meshes of the unit square [0, 1]^2 (u = 0 on its "
                         f"boundary); this mesh spans {np.round(lo, 4).tolist()}..{np.round(hi, 4).tolist()}",
                         source or mesh.source)


def coefficient_inputs(a_grid: np.ndarray, phases: Sequence[float] | None) -> dict[str, list[float]]:
    """The model's inputs by name for :mod:`graphfem.validity`, each as [min, max]: ``kappa``, a's values
    on the grid (G²,); with the two training ``phases`` the ``upper-phase fraction of kappa`` (share of the
    grid above their midpoint), else the ``grid mean of kappa``."""
    a = np.asarray(a_grid, dtype=float)
    out = {"kappa": [float(a.min()), float(a.max())]}
    if phases is not None:
        value, name = float(np.mean(a > 0.5 * (phases[0] + phases[1]))), "upper-phase fraction of kappa"
    else:
        value, name = float(a.mean()), "grid mean of kappa"
    out[name] = [value, value]
    return out


def _validity_case(mesh: Mesh, inputs: Mapping[str, list[float]], query: bool = False) -> dict:
    """The :func:`graphfem.validity.describe_inputs` case of a training sample, or of a ``query``:
    a query leaves out the node count and the cell type (the network reads neither: a on its grid, u at any
    points)."""
    return validity.describe_inputs(mesh, inputs, ("nodes", "cell_type") if query else ())


@register_family
class DGNOFamily(Family):
    """DGNO (label-free) and supervised MultiONet on Darcy data (see the module docstring)."""

    name = "dgno"
    models = ("dgno", "multionet")
    checks_validity = True
    consumes = "Darcy samples on meshes of the unit square (a cell field, u at the nodes)"

    def trains_on(self, data) -> bool:
        from graphfem.datasets.simulations import problem_of

        return problem_of(data.family) == "darcy"

    def setup(self, data, split, model_config, source) -> Setup:
        cls, config, extras = family_model_config(model_config, FAMILY_KEYS[model_config["name"]], source)
        name = model_config["name"]
        if config.get("bc", "mollifier") != "mollifier":
            raise InputError("model.bc: the darcy data sets live on the unit square; this family trains with the "
                             "mollifier (bc: distance is the operator's option for other domains)", source)
        if name == "dgno":
            if "kl_weight" in config and not config.get("variational", False):
                raise InputError("model.kl_weight: the KL term needs model.variational: true", source)
            if not float(config.get("kl_weight", 0.0)) >= 0:
                raise InputError(f"model.kl_weight: must be >= 0, got {config['kl_weight']!r}", source)
        grid = int(config.get("grid", cls.Config.grid))
        xg = grid_points(grid)
        samples, f_values = [], set()
        for i in range(len(data)):
            s = data.sample(i)
            if s.mesh is None or "u" not in s.fields:
                raise GraphfemError(f"group {s.name!r} has no mesh or u; write it with graphfem generate darcy",
                                    data.path)
            _check_square(s.mesh, data.path)
            f_values.add(float(np.asarray(s.options.get("source", 10.0))))
            look = Lookup(s.mesh)
            samples.append({"lookup": look, "a": np.asarray(s.options["kappa"], float), "u": s.fields["u"],
                            "nodes": s.mesh.points[:, :2], "a_grid": look.values(s.options["kappa"], xg)})
        if len(f_values) != 1:
            raise GraphfemError(f"the samples have sources {sorted(f_values)}; DGNO trains on one f", data.path)
        train = list(split["train"])
        if not train:
            raise InputError(f"data.path: no training sample (the data set has {len(data)})", source)
        a_train = np.stack([samples[i]["a_grid"] for i in train])
        lo, hi = float(a_train.min()), float(a_train.max())
        n_values = len(np.unique(a_train))
        if name == "dgno" and "coefficient" not in config:  # unset: two-phase for two values, else continuous
            config["coefficient"] = "two-phase" if n_values <= 2 else "continuous"
        if name == "dgno" and config["coefficient"] == "two-phase" and n_values > 2:
            raise InputError(f"model.coefficient: two-phase, but the training a takes {n_values} values in "
                             f"[{lo:.3g}, {hi:.3g}]; use coefficient: continuous", source)
        if name == "dgno":
            config = {"a_low": lo, "a_high": hi if hi > lo else lo + 1.0, "source": f_values.pop(),
                      "a_mean": float(a_train.mean()), "a_std": float(a_train.std() or 1.0), **config}
        else:
            u_rms = float(np.sqrt(np.mean(np.concatenate([samples[i]["u"] for i in train]) ** 2)))
            config = {"a_mean": float(a_train.mean()), "a_std": float(a_train.std() or 1.0), "u_scale": u_rms,
                      **config}
        try:
            model = cls(cls.Config(**config))
        except (TypeError, ValueError) as exc:
            raise InputError(f"model: {exc}", source) from None
        phases = [float(v) for v in np.unique(a_train)] if n_values == 2 else None
        cases = [_validity_case(samples[i]["lookup"].mesh, coefficient_inputs(samples[i]["a_grid"], phases))
                 for i in train]
        meta = {"family_options": extras, "validity": validity.ranges(cases),
                "problem": {"name": "darcy", "dim": 2, "cell_types": sorted({data.sample(0).mesh.cell_type}),
                            "fields": ["u"], "units": {"u": "1"}, "options": ["kappa", "source"],
                            "source": float(model.config.source) if name == "dgno" else float(
                                next(iter(f_values))), "inputs": list(cases[0]["features"]), "phases": phases},
                "samples": {k: len(v) for k, v in split.items()}}
        return Setup(model, meta, train, list(split["val"]), list(split["test"]),
                     {"name": name, "samples": samples, "extras": extras})

    def collate(self, setup, items, rng, device, dtype):
        import torch

        from graphfem.operators.dgno import disc_points, lhs_centres

        st, model = setup.state, setup.model
        tensor = lambda v: torch.as_tensor(np.array(v), dtype=dtype, device=device)  # noqa: E731
        ss = [st["samples"][i] for i in items]
        batch = {"a_grid": tensor([s["a_grid"] for s in ss])}
        if st["name"] == "dgno":
            c = model.config
            xi = disc_points(c.quad)
            centres = [lhs_centres(rng, c.centres, c.radius) for _ in ss]
            at = "continuous" if c.coefficient == "continuous" else "values"
            a_q = [getattr(s["lookup"], at)(s["a"], (cen[:, None, :] + c.radius * xi).reshape(-1, 2))
                   for s, cen in zip(ss, centres)]
            batch.update(centres=tensor(centres), a_q=tensor(a_q))
            if c.variational:
                batch["eps"] = tensor(rng.standard_normal((len(ss), c.latent)))
        else:
            k = int(st["extras"]["points"])
            picks = [rng.integers(0, len(s["u"]), k) for s in ss]
            batch.update(x=tensor([s["nodes"][p] for s, p in zip(ss, picks)]),
                         u=tensor([s["u"][p] for s, p in zip(ss, picks)]))
        return batch

    def loss(self, net, batch):
        module = getattr(net, "module", net)
        if module.registry_name == "dgno":
            return module.loss(batch["a_grid"], batch["centres"], batch["a_q"], batch.get("eps"))["loss"]
        return ((net(batch["a_grid"], batch["x"]) - batch["u"]) ** 2).mean() / module.config.u_scale ** 2

    def validate(self, setup, model, items, device) -> dict[str, float]:
        import torch

        ss = [setup.state["samples"][i] for i in items]
        if not ss:
            return {"rel_l2_u": float("nan")}
        u = self._predict_u(model, [s["a_grid"] for s in ss], [s["nodes"] for s in ss], device)
        err = [np.linalg.norm(p - s["u"]) / np.linalg.norm(s["u"]) for p, s in zip(u, ss)]
        out = {"rel_l2_u": float(np.mean(err))}
        if model.registry_name == "dgno":
            dtype = next(model.parameters()).dtype
            a = torch.as_tensor(np.stack([s["a_grid"] for s in ss]), dtype=dtype, device=device)
            with torch.no_grad():
                beta = model(a)
                c = model.config
                if c.coefficient == "continuous":
                    out["a_misfit"] = float(model.data_loss(beta, a))
                    a_hat = model.a_mean_field(beta, model.grid_points().to(a))
                    out["a_rel_l2"] = float((torch.linalg.norm(a_hat - a, dim=1) / torch.linalg.norm(a, dim=1)).mean())
                    return out
                out["bce"] = float(model.data_loss(beta, a))
                p = torch.sigmoid(model.a_logit(beta, model.grid_points().to(a)))
                thr = ((a - c.a_low) / (c.a_high - c.a_low)) > 0.5
                out["a_wrong"] = float(((p > 0.5) != thr).double().mean())
        return out

    @staticmethod
    def _predict_u(model, a_grids: Sequence[np.ndarray], nodes: Sequence[np.ndarray], device) -> list[np.ndarray]:
        import torch

        dtype = next(model.parameters()).dtype
        out = []
        model.eval()
        with torch.no_grad():
            for a, x in zip(a_grids, nodes):
                at = torch.as_tensor(np.array(a)[None], dtype=dtype, device=device)
                xt = torch.as_tensor(np.array(x)[None], dtype=dtype, device=device)
                u = model.u(model(at), xt) if model.registry_name == "dgno" else model(at, xt)
                out.append(u[0].double().cpu().numpy())
        return out

    def check_meta(self, model, meta, source) -> None:
        """The two phases of a two-phase checkpoint, and its training ranges (the base's check)."""
        phases = meta.get("problem", {}).get("phases")
        if phases is not None and not (isinstance(phases, list) and len(phases) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in phases)):
            raise GraphfemError(f"checkpoint problem 'phases' must be two numbers, got {phases!r}"[:200], source)
        super().check_meta(model, meta, source)

    @staticmethod
    def _query(meta, mesh: Mesh, a_grid: np.ndarray) -> dict:
        """The :mod:`graphfem.validity` case of a prediction from the coefficient on the grid ``a_grid``."""
        return _validity_case(mesh, coefficient_inputs(a_grid, meta["problem"].get("phases")), query=True)

    def predict(self, model, meta, mesh, options, device, strict: bool = False) -> Prediction:
        """u at the nodes of ``mesh``; a outside the training ranges warns once per input, or is
        refused with ``strict`` (module docstring)."""
        from graphfem.physics.problem import get_problem

        problem = get_problem("darcy")
        given = {k: v for k, v in options.items() if v is not None and not (isinstance(v, (list, tuple, dict))
                                                                          and not v)}
        check_options(given, ["kappa", "source"], f"the {model.registry_name} model", mesh.source)
        _check_square(mesh)
        params = problem.parse(mesh, given)
        f = params.get("source", meta["problem"]["source"])
        if not isinstance(f, (int, float)) or abs(float(f) - meta["problem"]["source"]) > 1e-12:
            raise InputError(f"--source: the model was trained for f = {meta['problem']['source']:g} only",
                             mesh.source)
        a = params.get("kappa", 1.0)
        a_grid = coefficient_at(mesh, a, grid_points(model.config.grid))
        if not np.isfinite(a_grid).all():
            raise InputError("--kappa has non-finite values", mesh.source)
        validity.check(meta.get("validity"), self._query(meta, mesh, a_grid), strict, source=mesh.source)
        u = self._predict_u(model, [a_grid], [mesh.points[:, :2]], device)[0]
        return Prediction(mesh, {"u": u}, {"u": "1"})

    def evaluate(self, model, meta, data, device, limit=0, compare_fe=False, progress=True) -> dict:
        from graphfem.datasets.simulations import problem_of
        from graphfem.physics.problem import get_problem

        if problem_of(data.family) != "darcy":
            raise GraphfemError(f"the model predicts darcy, the data set holds {data.family} samples", data.path)
        n = len(data) if limit <= 0 else min(limit, len(data))
        xg = grid_points(model.config.grid)
        errors, t_pred, t_fe, fe_check, inside = [], [], [], [], []
        for i in range(n):
            s = data.sample(i)
            _check_square(s.mesh, data.path)
            start = time.perf_counter()
            a_grid = coefficient_at(s.mesh, s.options["kappa"], xg)
            inside.append(validity.inside(meta.get("validity"), self._query(meta, s.mesh, a_grid)))
            u = self._predict_u(model, [a_grid], [s.mesh.points[:, :2]], device)[0]
            t_pred.append(time.perf_counter() - start)
            errors.append(float(np.linalg.norm(u - s.fields["u"]) / np.linalg.norm(s.fields["u"])))
            if compare_fe:
                start = time.perf_counter()
                fe = get_problem("darcy").run(s.mesh, s.options).fields["u"]
                t_fe.append(time.perf_counter() - start)
                fe_check.append(float(np.abs(fe - s.fields["u"]).max() / np.abs(s.fields["u"]).max()))
        return evaluation_summary(errors, t_pred, device, t_fe if compare_fe else None,
                                  fe_check if compare_fe else None, inside if meta.get("validity") else None,
                                  norm="Euclidean norm over the nodes")


def inverse_fields(model, x_obs: np.ndarray, u_obs: np.ndarray, mesh: Mesh, *, truth=None, restarts: int = 4,
                   iterations: int = 500, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The inverse problem of :func:`graphfem.operators.dgno.invert` on the nodes of ``mesh``.

    Args:
        model: a trained ``dgno`` model.
        x_obs, u_obs: (K, 2) observation points in [0, 1]² and (K,) values.
        truth: the true a on ``mesh`` (cell or point field, number), for the error.

    Returns:
        (fields at the nodes: ``a`` (mean over restarts of E[a | β]), ``a_spread`` (the total
        standard deviation over restarts and the Bernoulli p(a | β)), ``a_restart_std``, ``p_high``,
        ``u``, and ``a_true`` with a truth; numbers: ``a_rel_l2`` with a truth, ``spread_mean``,
        ``restart_std_mean`` and ``loss`` (the mean final loss over restarts)).
    """
    from graphfem.operators.dgno import invert

    if model.registry_name != "dgno":
        raise InputError(f"a {model.registry_name} checkpoint has no decoder of a; invert needs a dgno model")
    if model.config.coefficient != "two-phase":
        raise InputError("this dgno model decodes a continuous a; invert serves two-phase models only")
    nodes = mesh.points[:, :2]
    res = invert(model, x_obs, u_obs, nodes, restarts=restarts, iterations=iterations, seed=seed)
    c = model.config
    var_bern = (c.a_high - c.a_low) ** 2 * res["p"] * (1 - res["p"])
    a_mean = res["a"].mean(0)
    spread = np.sqrt(var_bern.mean(0) + res["a"].var(0))
    fields = {"a": a_mean, "a_spread": spread, "a_restart_std": res["a"].std(0), "p_high": res["p"].mean(0),
              "u": res["u"].mean(0)}
    numbers = {"spread_mean": float(spread.mean()), "restart_std_mean": float(res["a"].std(0).mean()),
               "loss": float(np.mean(res["loss"]))}
    if truth is not None:
        a_true = Lookup(mesh).values(truth, nodes) if not (isinstance(truth, np.ndarray) and truth.shape == (
            mesh.n_points,)) else np.asarray(truth, float)
        fields["a_true"] = a_true
        numbers["a_rel_l2"] = float(np.linalg.norm(a_mean - a_true) / np.linalg.norm(a_true))
    return fields, numbers


__all__ = ["DGNOFamily", "FAMILY_KEYS", "Lookup", "coefficient_at", "coefficient_inputs", "grid_points",
           "inverse_fields"]
