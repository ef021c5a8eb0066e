r"""NeuralStagger adapter: label-free MAC channel-flow steppers on ``graphfem generate mac-channel`` data.

**Training** reads no simulation. The data set gives the grid, the fine time step Δt and the
distribution of the channels (inflow peak, ν, obstacles: :func:`graphfem.physics.mac_channel.random_domain`);
its stored MAC reference trajectories are read in validation and evaluation only. The loss is the
fine physics loss :meth:`graphfem.operators.neuralstagger.NeuralStagger.physics_loss`.

**The pool** (``setup.state["pool"]``, ``model.pool`` slots): each slot holds a channel and its
current window of s_T frames. A training item is a slot number (each slot appears
``model.visits`` times per epoch; a slot twice in one batch is stepped once). :meth:`collate`
draws, from the trainer's rng only, whether a visited slot is reset (probability
1/``model.reset_every``, and always when it is empty or not finite): a new random channel starting
impulsively (:meth:`~graphfem.physics.mac_channel.Domain.start`: the Poiseuille flow, zero on the
obstacle's faces, projected), p = 0. :meth:`loss` writes the predicted (detached) window
back into the slot, so training follows the model's own rollouts. The pool lives in memory: a
resumed run restores weights and optimiser exactly but restarts the pool from empty slots.

**Validation / evaluation**: from the stored reference frames, the one-step error (every frame
window advanced once) and the rollout error over the stored trajectory, relative L2 of the
cell-centre velocity against the project's MAC solver (:func:`graphfem.physics.mac_channel.mac_reference`).

**Prediction** (``graphfem predict MODEL MESH -o out.pvd`` with the ``navier-stokes`` options
``--inflow LEFT=UMAX --outflow RIGHT --no-slip ... --nu NU --t-end T --dt DT [--save-every K]``): MESH
is a quad mesh of grid cells (:func:`graphfem.physics.mac_channel.channel_grid_mesh`; missing cells
are the obstacle). On the model's grid every sub-solver runs; on the grid coarsened by k (k dividing
s_H and s_W) only the sub-solvers of :meth:`~graphfem.operators.neuralstagger.NeuralStagger.subset`
run: a coarse simulation. The rollout starts impulsively (as the pool) and writes velocity (m/s) and
pressure (m²/s², kinematic) at the mesh nodes every K steps.
"""
from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np

from graphfem.meshes import Grid, Mesh
from graphfem.meshes.errors import GraphfemError, InputError

from . import Family, Prediction, Setup, check_options, evaluation_summary, register_family
from . import model_config as family_model_config

#: family options in ``model:`` with their defaults
FAMILY_KEYS = {"pool": 64, "visits": 4, "reset_every": 50}
#: the navier-stokes options a NeuralStagger model takes
ACCEPTED = ("inflow", "outflow", "no_slip", "nu", "t_end", "dt", "save_every")
UNITS = {"velocity": "m/s", "pressure": "m^2/s^2"}
#: the data families a NeuralStagger model trains on and is evaluated against
DATA = ("mac-channel", "mac-cylinder")


def _grid(sample, source) -> Grid:
    prov = sample.provenance
    if "grid_shape" not in prov:
        raise GraphfemError(f"group {sample.name!r} holds no grid; write it with graphfem generate mac-channel", source)
    return Grid(tuple(int(s) for s in prov["grid_shape"]), tuple(prov["grid_lower"]), tuple(prov["grid_upper"]))


def domain_of(sample, grid: Grid):
    """The :class:`~graphfem.physics.mac_channel.Domain` of a stored mac-channel sample."""
    from graphfem.physics.mac_channel import Domain

    p = sample.params
    return Domain(grid, np.asarray(sample.inputs["mask"]) > 0.5, float(p["u_max"]), float(p["nu"]),
                  {k: p[k] for k in ("obstacle", "centre", "radius") if k in p})


def velocity(A: np.ndarray, psi: np.ndarray, h: Sequence[float]) -> np.ndarray:
    """(…, 2, nx, ny) cell-centre velocity of owned potentials A (…, nx, ny) with inflow column ψ."""
    from graphfem.physics.mac_channel import cell_velocity, full_potential, velocity_from_potential

    u, v = velocity_from_potential(full_potential(np.asarray(A, float), psi), *h)
    return np.stack(cell_velocity(u, v), axis=-3)


def rel_l2(pred: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(pred - ref) / max(np.linalg.norm(ref), 1e-300))


def rollout(model, domain, A0: np.ndarray, p0: np.ndarray, windows: int, device: str,
            coarsen: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The model's trajectory from the window A0, p0 (s_t, nx, ny): (A, p) ((windows + 1)·s_t, …)
    frames at Δt spacing on the fine grid (``coarsen`` 1) or on the grid of spacing ``coarsen``·h
    ((…, nx/k, ny/k): the owned corners of that grid, from the sub-solvers of ``model.subset``)."""
    import torch

    from graphfem.operators.neuralstagger import unstagger

    c = model.config
    dtype = next(model.parameters()).dtype
    t = lambda x: torch.as_tensor(np.asarray(x)[None], dtype=dtype, device=device)  # noqa: E731
    model.eval()
    with torch.no_grad():
        cond = model.conditions([domain], t(A0))
        A, p = model.rollout(t(A0), t(p0), cond, windows, coarsen)       # (W+1, 1, T, n, Hc, Wc)
    A, p = A[:, 0].double().cpu(), p[:, 0].double().cpu()
    if coarsen == 1:
        A, p = unstagger(A, c.s_h, c.s_w), unstagger(p, c.s_h, c.s_w)
    else:
        k = coarsen
        m = c.s_h // k, c.s_w // k
        # pieces (i, j) with i, j ≡ k − 1 (mod k) in order: piece (a, b) sits at fine offset (a k + k − 1, …)
        A, p = unstagger(A, *m), unstagger(p, *m)
    return A.reshape(-1, *A.shape[-2:]).numpy(), p.reshape(-1, *p.shape[-2:]).numpy()


@register_family
class NeuralStaggerFamily(Family):
    """NeuralStagger (vanilla: factors 1) on MAC channel flows (see the module docstring)."""

    name = "neuralstagger"
    refuses_outside = True  # ν, the inflow peak, the grid and Δt outside the trained ones: refused always
    models = ("neuralstagger",)
    consumes = "MAC channel flows on a grid (graphfem generate mac-channel): conditions for training, " \
               "reference trajectories for validation"

    def trains_on(self, data) -> bool:
        return data.family in DATA

    # ---------------------------------------------------------------- data
    def setup(self, data, split, model_config, source) -> Setup:
        cls, config, extras = family_model_config(model_config, FAMILY_KEYS, source)
        for key in ("pool", "visits", "reset_every"):
            if not isinstance(extras[key], int) or extras[key] < 1:
                raise InputError(f"model.{key}: expected a positive integer, got {extras[key]!r}", source)
        s0 = data.sample(0)
        grid = _grid(s0, data.path)
        dt = float(s0.params["dt"])
        ranges = s0.params["ranges"]
        samples = []
        for i in range(len(data)):
            s = data.sample(i)
            g = _grid(s, data.path)
            if (g.shape, g.lower, g.upper) != (grid.shape, grid.lower, grid.upper) or abs(
                    float(s.params["dt"]) - dt) > 1e-12 * dt:
                raise GraphfemError(f"group {s.name!r} has another grid or dt than {s0.name!r}; NeuralStagger "
                                    "trains on one grid and one time step", data.path)
            samples.append({"domain": domain_of(s, grid), "a": np.asarray(s.fields["a"]),
                            "p": np.asarray(s.fields["p"])})
        fixed = {"nx": grid.shape[0], "ny": grid.shape[1], "x_min": grid.lower[0], "x_max": grid.upper[0],
                 "y_min": grid.lower[1], "y_max": grid.upper[1], "dt": dt}
        for key, value in fixed.items():
            if key in config and abs(float(config[key]) - value) > 1e-12 * max(1.0, abs(value)):
                raise InputError(f"model.{key}: the data set fixes it to {value:g} (its grid and time step); "
                                 f"leave it out", source)
        config = {"u_ref": float(max(ranges["u_max"])), "nu_ref": float(np.mean(ranges["nu"])), **config, **fixed}
        try:
            model = cls(cls.Config(**config))
        except (TypeError, ValueError) as exc:
            raise InputError(f"model: {exc}", source) from None
        pool = int(extras["pool"])
        train = [k % pool for k in range(pool * int(extras["visits"]))]
        meta = {"family_options": extras,
                "problem": {"name": "navier-stokes", "dim": 2, "cell_types": ["quad"], "fields": list(UNITS),
                            "units": UNITS, "options": list(ACCEPTED), "grid": {
                                "shape": list(grid.shape), "lower": list(grid.lower), "upper": list(grid.upper)},
                            "dt": dt, "ranges": ranges},
                "samples": {k: len(v) for k, v in split.items()}}
        state = {"pool": [None] * pool, "samples": samples, "grid": grid, "ranges": ranges,
                 "reset": 1.0 / int(extras["reset_every"])}
        return Setup(model, meta, train, list(split["val"]), list(split["test"]), state)

    def collate(self, setup, items, rng, device, dtype):
        import torch

        from graphfem.physics.mac_channel import random_domain

        st, model = setup.state, setup.model
        T = model.config.s_t
        slots = list(dict.fromkeys(items))
        for slot in slots:
            entry = st["pool"][slot]
            if rng.random() < st["reset"] or entry is None or not np.isfinite(entry["A"]).all():
                d = random_domain(rng, st["grid"], st["ranges"])
                st["pool"][slot] = {"domain": d, "A": np.repeat(d.start()[None], T, 0),
                                    "p": np.zeros((T, *d.solid.shape))}
        entries = [st["pool"][s] for s in slots]
        A = torch.as_tensor(np.stack([e["A"] for e in entries]), dtype=dtype, device=device)
        p = torch.as_tensor(np.stack([e["p"] for e in entries]), dtype=dtype, device=device)
        domains = [e["domain"] for e in entries]
        with torch.no_grad():
            x = model.encode(A, p, model.conditions(domains, A))
        return {"x": x, "A": A, "p": p, "domains": domains, "entries": entries}

    def loss(self, net, batch):
        module = getattr(net, "module", net)
        A_new, p_new = module.decode(net(batch["x"]), batch["A"], batch["p"])
        loss = module.physics_loss(A_new, p_new, batch["A"], batch["domains"])["loss"]
        for entry, a, p in zip(batch["entries"], A_new.detach().cpu().double().numpy(),
                               p_new.detach().cpu().double().numpy()):
            entry["A"], entry["p"] = a, p  # training follows the model's rollouts
        return loss

    # ---------------------------------------------------------------- metrics
    @staticmethod
    def errors(model, sample: Mapping[str, Any], device: str) -> dict[str, float]:
        """One-step and rollout relative L2 errors of the cell-centre velocity against the stored MAC
        reference (frames a (F, nx, ny)), and those of persistence (the old state kept)."""
        c = model.config
        d, a_ref, p_ref = sample["domain"], sample["a"], sample["p"]
        h = model.spacing
        T = c.s_t
        u_ref = velocity(a_ref, d.psi, h)
        windows = (len(a_ref) - T) // T
        if windows < 1:
            raise GraphfemError(f"a reference of {len(a_ref)} frames is too short for s_t = {T}")
        one, persist = [], []
        for w in range(windows):
            A, _ = rollout(model, d, a_ref[w * T:(w + 1) * T], p_ref[w * T:(w + 1) * T], 1, device)
            one.append(rel_l2(velocity(A[T:], d.psi, h), u_ref[(w + 1) * T:(w + 2) * T]))
            persist.append(rel_l2(u_ref[w * T:(w + 1) * T], u_ref[(w + 1) * T:(w + 2) * T]))
        A, _ = rollout(model, d, a_ref[:T], p_ref[:T], windows, device)
        n = len(A)
        return {"rollout_rel_l2": rel_l2(velocity(A[T:], d.psi, h), u_ref[T:n]),
                "final_rel_l2": rel_l2(velocity(A[-1], d.psi, h), u_ref[n - 1]),
                "one_step_rel_l2": float(np.mean(one)), "persistence_one_step": float(np.mean(persist)),
                "persistence_rollout": rel_l2(np.broadcast_to(u_ref[T - 1], u_ref[T:n].shape), u_ref[T:n])}

    def validate(self, setup, model, items, device) -> dict[str, float]:
        ss = [setup.state["samples"][i] for i in items]
        if not ss:
            return {"rollout_rel_l2": float("nan")}
        rows = [self.errors(model, s, device) for s in ss]
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}

    # ---------------------------------------------------------------- inference
    def predict(self, model, meta, mesh, options, device) -> Prediction:
        from graphfem.physics.mac_channel import Domain, grid_of_mesh, node_fields, velocity_from_potential, \
            full_potential
        from graphfem.physics.problem import get_problem

        given = {k: v for k, v in options.items() if v is not None and not (isinstance(v, (list, tuple, dict))
                                                                          and not v)}
        check_options(given, ACCEPTED, "the neuralstagger model", mesh.source)
        params = get_problem("navier-stokes").parse(mesh, given)
        c = model.config
        grid, solid = grid_of_mesh(mesh)
        trained = Grid((c.nx, c.ny), (c.x_min, c.y_min), (c.x_max, c.y_max))
        k = self._coarsening(grid, trained, mesh)
        fine_solid = np.repeat(np.repeat(solid, k, 0), k, 1)
        u_max = self._check_sides(mesh, grid, params)
        nu = float(params["nu"])
        ranges = meta["problem"]["ranges"]
        for name, value in (("nu", nu), ("u_max", u_max)):
            lo, hi = ranges[name]
            if not lo <= value <= hi:
                flag = "--nu" if name == "nu" else "--inflow"
                raise InputError(f"{flag}: {value:g} is outside the training range [{lo:g}, {hi:g}] of "
                                 f"{'nu' if name == 'nu' else 'the inflow peak'}", mesh.source)
        if params["t_end"] is None:
            raise InputError("--t-end/--dt: the neuralstagger model steps in time; give --t-end and --dt (the "
                             f"model's step, {c.dt:g})", mesh.source)
        if abs(params["dt"] - c.dt) > 1e-9 * c.dt:
            raise InputError(f"--dt: the model steps by dt = {c.dt:g}, got {params['dt']:g}", mesh.source)
        steps = params["t_end"] / c.dt
        if abs(steps - round(steps)) > 1e-6 or round(steps) < 1:
            raise InputError(f"--t-end: {params['t_end']:g} is not a positive multiple of dt = {c.dt:g}", mesh.source)
        every = int(params["save_every"] or 1)
        if every < 1:
            raise InputError(f"--save-every: expected a positive integer, got {every}", mesh.source)
        steps = int(round(steps))
        domain = Domain(trained, fine_solid, u_max, nu)
        T = c.s_t
        windows = -(-steps // T)
        A, p = rollout(model, domain, np.repeat(domain.start()[None], T, 0), np.zeros((T, c.nx, c.ny)), windows,
                       device, coarsen=k)
        A, p = A[T - 1:T - 1 + steps + 1], p[T - 1:T - 1 + steps + 1]
        if not (np.isfinite(A).all() and np.isfinite(p).all()):
            raise GraphfemError("the rollout produced non-finite values (the flow is outside what the model "
                                "learned)", mesh.source)
        hx, hy = grid.spacing
        psi = domain.psi[::k]
        frames = range(0, steps + 1, every)
        vel, pres = [], []
        for f in frames:
            u, v = velocity_from_potential(full_potential(A[f], psi), hx, hy)
            vn, pn = node_fields(grid, solid, u, v, p[f], mesh.points[:, :2])
            vel.append(vn)
            pres.append(pn)
        return Prediction(mesh, {"velocity": np.stack(vel), "pressure": np.stack(pres)}, dict(UNITS),
                          times=c.dt * np.asarray(list(frames), dtype=float))

    @staticmethod
    def _coarsening(grid: Grid, trained: Grid, mesh: Mesh) -> int:
        """1 on the model's grid, k on its coarsening by k (k dividing both stagger factors); else one line."""
        box = np.allclose(grid.lower, trained.lower, atol=1e-9) and np.allclose(grid.upper, trained.upper, atol=1e-9)
        if box:
            for k in range(1, max(trained.shape) + 1):
                if trained.shape[0] % k == 0 and trained.shape[1] % k == 0 and grid.shape == (
                        trained.shape[0] // k, trained.shape[1] // k):
                    return k
        raise InputError(f"the mesh is a {grid.shape[0]} x {grid.shape[1]} grid of {grid.lower}..{grid.upper}; the "
                         f"model serves its {trained.shape[0]} x {trained.shape[1]} grid of {trained.lower}.."
                         f"{trained.upper} or a coarsening of it by a factor dividing its stagger factors",
                         mesh.source)

    @staticmethod
    def _check_sides(mesh: Mesh, grid: Grid, params: Mapping[str, Any]) -> float:
        """The inflow peak; the boundary options must be: a parabolic inflow (a peak) on the whole left
        side, the outflow on the whole right side, no slip on every other boundary facet."""
        (x0, _), (x1, _) = grid.lower, grid.upper
        eps = 1e-9 * (x1 - x0)
        mid = lambda facets: {tuple(np.round(m, 9)) for m in mesh.points[facets][:, :, :2].mean(axis=1)}  # noqa
        bnd = mesh.boundary_facets()
        mids = mesh.points[bnd][:, :, :2].mean(axis=1)
        left, right = mid(bnd[abs(mids[:, 0] - x0) < eps]), mid(bnd[abs(mids[:, 0] - x1) < eps])
        rest = mid(bnd) - left - right
        tags = lambda names: set().union(*[mid(mesh.tag(n).indices) for n in names]) if names else set()  # noqa
        inflow = params["inflow"] or {}
        if len(inflow) != 1 or not isinstance(next(iter(inflow.values())), float):
            raise InputError("--inflow: the neuralstagger model has one parabolic inflow, TAG=UMAX on the left side",
                             mesh.source)
        (tag, u_max), = inflow.items()
        checks = (("--inflow", tags([tag]), left, "the whole left side (x = x_min)"),
                  ("--outflow", tags(params["outflow"] or []), right, "the whole right side (x = x_max)"),
                  ("--no-slip", tags(params["no_slip"] or []), rest, "every other boundary facet (walls, obstacle)"))
        for flag, got, want, what in checks:
            if got != want:
                raise InputError(f"{flag}: the neuralstagger model was trained with it on {what}; these tags "
                                 f"cover {len(got & want)} of its {len(want)} facets and {len(got - want)} others",
                                 mesh.source)
        return float(u_max)

    def evaluate(self, model, meta, data, device, limit=0, compare_fe=False, progress=True) -> dict:
        from graphfem.physics.mac_channel import mac_reference

        if data.family not in DATA:
            raise GraphfemError(f"the model predicts MAC channel flows ({' or '.join(DATA)}), the data set holds "
                                f"{data.family} samples",
                                data.path)
        c = model.config
        n = len(data) if limit <= 0 else min(limit, len(data))
        errors, t_pred, t_fe, fe_check = [], [], [], []
        for i in range(n):
            s = data.sample(i)
            grid = _grid(s, data.path)
            if grid.shape != (c.nx, c.ny) or abs(float(s.params["dt"]) - c.dt) > 1e-12:
                raise GraphfemError(f"group {s.name!r} is a {grid.shape} grid with dt {s.params['dt']}; the model "
                                    f"was trained on {(c.nx, c.ny)} with dt {c.dt}", data.path)
            sample = {"domain": domain_of(s, grid), "a": np.asarray(s.fields["a"]), "p": np.asarray(s.fields["p"])}
            errors.append(self.errors(model, sample, device)["rollout_rel_l2"])
            T = c.s_t
            start = time.perf_counter()  # the rollout over the reference's span alone
            rollout(model, sample["domain"], sample["a"][:T], sample["p"][:T], (len(sample["a"]) - T) // T, device)
            t_pred.append(time.perf_counter() - start)
            if compare_fe:
                a, _, seconds = mac_reference(sample["domain"], sample["a"][0], c.dt, len(sample["a"]) - 1)
                t_fe.append(seconds)
                fe_check.append(float(np.abs(a - sample["a"]).max() / np.abs(sample["a"]).max()))
        return evaluation_summary(errors, t_pred, device, t_fe if compare_fe else None,
                                  fe_check if compare_fe else None, norm="velocity, Euclidean over the MAC faces and frames")


__all__ = ["ACCEPTED", "FAMILY_KEYS", "NeuralStaggerFamily", "domain_of", "rollout", "velocity"]
