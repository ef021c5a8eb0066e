r"""Compressible neo-Hookean hyperelasticity in 2D plane strain, by Newton's
method with load stepping.

Stored energy per unit reference volume (F = I + ∇u, J = det F, C = FᵀF,
plane strain: F_33 = 1, so tr C_3D = tr C + 1):

.. math:: W(F) = \frac{\mu}{2}(\mathrm{tr}\,C - 2 - 2\ln J) + \frac{\lambda}{2}(\ln J)^2,

first Piola–Kirchhoff stress :math:`P = \mu (F - F^{-\top}) + \lambda \ln J\, F^{-\top}`
and its consistent tangent

.. math:: \mathbb{A} : \delta F = \mu\,\delta F + (\mu - \lambda \ln J)\, F^{-\top} \delta F^\top F^{-\top}
          + \lambda\, \mathrm{tr}(F^{-1}\delta F)\, F^{-\top}.

At F = I the tangent is :math:`\mathbb{A}:\delta F = 2\mu\,\mathrm{sym}\,\delta F + \lambda\,\mathrm{tr}\,\delta F\, I`,
the plane-strain linear-elastic stiffness of :func:`graphfem.physics.elasticity`
with the same (λ, μ): the small-strain limit is linear elasticity.

Weak form: find u ∈ V^2, u = u_D on the fixed tags, with

.. math:: R(u; v) = \int_\Omega P(F) : \nabla v\,dx - t_k \Big(\int_\Omega b \cdot v\,dx
          + \sum_{\text{tags}} \int t \cdot v\,ds\Big) = 0 \quad \forall v,

for load factors t_k = k / n_steps, each solved by Newton's method from the
previous converged state (a step that fails is halved).

Newton is globalised by a backtracking line search on the potential energy
Π(u) = ∫ W(F) dx − t_k f_extᵀu, whose gradient is R: the step u + α δu, α = 1, ½, …,
is taken at the first α where no element inverts and Π decreases by at least
10⁻⁴ α Rᵀδu (Armijo), up to the round-off of Π. Where the tangent is indefinite (strongly
compressed elements: the term (μ − λ ln J) of 𝔸 grows with −ln J) the Newton direction may climb
Π; then the search takes δu = −K₀⁻¹R instead, K₀ the tangent at rest (the linear stiffness,
positive definite), which always descends. Where the full Newton step does both
(near the solution, and in every step of a small enough load increment) the iterates are
plain Newton's. It is what lets Newton start from a rough guess (a surrogate's
prediction, whose residual can be ten times the load) instead of giving up.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import scipy.sparse as sp

from graphfem.meshes import FESpace, Mesh
from graphfem.meshes.errors import GraphfemError, InputError

from .coefficients import Vector, guess_dofs, scalar_node_dofs
from .elasticity import (BODY_FORCE, FIX, POISSONS_RATIO, TRACTION, YOUNGS_MODULUS, elastic_essential, elastic_layout,
                         elastic_rotated, elastic_scaled, external_load, held_components, lame, load_resultant,
                         loaded_sides, support_features, support_frame, supports, tag_distance)
from .linear_solvers import condense
from .poisson import ORDER, make_space
from .problem import Features, Option, Problem, Solution, Transformed, register_problem


def _kinematics(space: FESpace, u: np.ndarray):
    """F (2, 2, m, q), F⁻ᵀ and ln J at the quadrature points."""
    from skfem.helpers import grad

    G = np.asarray(grad(space.basis.interpolate(u)))
    F = G + np.eye(2)[:, :, None, None]
    J = F[0, 0] * F[1, 1] - F[0, 1] * F[1, 0]
    if np.any(J <= 0):
        raise GraphfemError(f"the deformation inverts an element (min det F = {J.min():.3e})")
    FinvT = np.stack([np.stack([F[1, 1], -F[1, 0]]), np.stack([-F[0, 1], F[0, 0]])]) / J
    return F, FinvT, np.log(J)


def piola(F: np.ndarray, FinvT: np.ndarray, lnJ: np.ndarray, lam, mu) -> np.ndarray:
    """First Piola–Kirchhoff stress P = μ(F − F⁻ᵀ) + λ ln J F⁻ᵀ, shapes (2, 2, ...)."""
    return mu * (F - FinvT) + lam * lnJ * FinvT


def _forms(lam, mu):
    from skfem import BilinearForm, Functional, LinearForm
    from skfem.helpers import grad

    @Functional
    def energy(w):
        return w["W"]

    @LinearForm
    def internal(v, w):
        return np.einsum("ij...,ij...->...", w["P"], grad(v))

    @BilinearForm
    def tangent(du, v, w):
        dF, gv, Fit = grad(du), grad(v), w["FinvT"]
        # F^{-T} dF^T F^{-T}: (Fit)_{ik} (dF)_{lk} (Fit)_{lj}
        swap = np.einsum("ik...,lk...,lj...->ij...", Fit, dF, Fit)
        tr = np.einsum("ij...,ij...->...", Fit, dF)  # tr(F^{-1} dF) = F^{-T} : dF
        A = w["mu"] * dF + (w["mu"] - w["lam"] * w["lnJ"]) * swap + w["lam"] * tr * Fit
        return np.einsum("ij...,ij...->...", A, gv)

    return internal, tangent, energy


def stored_energy(F: np.ndarray, lnJ: np.ndarray, lam, mu) -> np.ndarray:
    """W(F) = μ/2 (tr C − 2 − 2 ln J) + λ/2 (ln J)², C = FᵀF, at the quadrature points (m, q)."""
    return 0.5 * mu * (np.einsum("ij...,ij...->...", F, F) - 2.0 - 2.0 * lnJ) + 0.5 * lam * lnJ ** 2


def neo_hookean(mesh: Mesh | FESpace, E: float = 1.0, nu: float = 0.3, *,
                fixed: Iterable[str] | Mapping[str, int | str | None] = (),
                displacement: Mapping[str, Vector] | None = None,
                traction: Mapping[str, Vector] | None = None, body_force: Vector | None = None,
                order: int | None = None, steps: int = 4, tol: float = 1e-10, max_iter: int = 25,
                max_halvings: int = 6, initial: np.ndarray | None = None) -> Solution:
    r"""Neo-Hookean plane-strain equilibrium by load-stepped Newton (module docstring).

    Args:
        mesh: a 2D :class:`Mesh` or a vector :class:`FESpace` to reuse.
        E, nu: Young's modulus and Poisson's ratio, giving the plane-strain
            (λ, μ) of :func:`graphfem.physics.elasticity.lame`.
        fixed, displacement: Dirichlet data as in :func:`graphfem.physics.elasticity`
            (the displacement is ramped with the load factor).
        traction: tag -> traction in the reference configuration (dead load).
        body_force: reference body force (dead load).
        order: polynomial order (default the mesh's).
        steps: load steps; a step whose Newton iteration fails is halved, at
            most ``max_halvings`` times.
        tol: Newton stops when ||R_free|| <= tol · ||t_k f_ext,free|| (or the
            first residual, for displacement-driven steps), or when it reaches
            the round-off floor of the stress evaluation (tiny loads).
        initial: (n_dofs,) a guess of the solution at the full load (a
            surrogate's prediction, :meth:`Problem.refine`): Newton starts there
            with no load stepping, to the same ``tol``. Should it fail (an
            inverted element, no convergence in ``max_iter``), the solve starts
            again from u = 0 with load steps (``info["initial_failed"]``).

    Returns:
        :class:`Solution` with ``dofs``/``fields`` ``"displacement"`` and
        ``info["residuals"]``: one list of relative residual norms per load step
        (the first entry before the first Newton update), ``newton_iterations``,
        ``shortened_steps`` (Newton updates the line search cut, α < 1),
        ``load_factors`` and timings.
    """
    start = time.perf_counter()
    space = make_space(mesh, order, vector=True)
    if space.mesh.dim != 2:
        raise InputError(f"neo_hookean is implemented in 2D plane strain, got a {space.mesh.dim}D mesh",
                         space.mesh.source)
    if E <= 0 or not -1 < nu < 0.5:
        raise InputError("need E > 0 and −1 < nu < 1/2")
    lam, mu = lame(float(E), float(nu), 2, "strain")
    D, u_D = supports(space, fixed, displacement)
    f_ext = external_load(space, traction, body_force)
    internal, tangent, energy = _forms(lam, mu)
    free = np.setdiff1d(np.arange(space.n_dofs), D)

    def residual_and_tangent(kinematics, factor):
        """R(u) (n_dofs,), the tangent, and the round-off floor of ||R_free|| at u's
        kinematics (F, F⁻ᵀ, ln J): the internal force of μ(|F| + |F⁻ᵀ|) times 64 machine
        epsilons, since P = μ(F − F⁻ᵀ) + … cancels to O(|∇u|) near F = I."""
        F, FinvT, lnJ = kinematics
        r = internal.assemble(space.basis, P=piola(F, FinvT, lnJ, lam, mu)) - factor * f_ext
        K = tangent.assemble(space.basis, FinvT=FinvT, lnJ=lnJ, lam=lam, mu=mu).tocsr()
        size = internal.assemble(space.basis, P=mu * (np.abs(F) + np.abs(FinvT)))
        return r, K, 64 * np.finfo(float).eps * float(np.linalg.norm(size[free]))

    def potential(u, kinematics, factor) -> tuple[float, float]:
        """Π(u) and the round-off of its evaluation (64 ε times ∫W + |t f·u|)."""
        stored = energy.assemble(space.basis, W=stored_energy(kinematics[0], kinematics[2], lam, mu))
        work = factor * float(f_ext @ u)
        return stored - work, 64 * np.finfo(float).eps * (abs(stored) + abs(work))

    rest: list = []  # the factorised free block of the tangent at rest, made on first use

    def rest_solve(b: np.ndarray) -> np.ndarray:
        """K₀_II⁻¹ b, K₀ = :func:`tangent_at_rest`."""
        if not rest:
            rest.append(sp.linalg.splu(tangent_at_rest(space, E, nu)[free][:, free].tocsc()))
        return rest[0].solve(b)

    def line_search(u, du, r, value, slack, factor):
        """The Armijo step (module docstring) from u, where Π = ``value`` (round-off ``slack``):
        (u + α du, its kinematics, its Π and round-off, α), or None where no α ≥ 2⁻¹⁰ inverts
        no element and lowers Π."""
        slope = float(r @ du)  # dΠ/dα at α = 0: negative where K is positive definite
        alpha = 1.0
        while alpha >= 2.0 ** -10:
            trial = u + alpha * du
            try:
                moved = _kinematics(space, trial)
            except GraphfemError:  # an element inverts: shorter
                alpha /= 2
                continue
            new, new_slack = potential(trial, moved, factor)
            if new <= value + 1e-4 * alpha * min(slope, 0.0) + slack:
                return trial, moved, new, new_slack, alpha
            alpha /= 2
        return None

    u = np.zeros(space.n_dofs)
    history, factors = [], []
    guess = None if initial is None else np.asarray(initial, dtype=float).reshape(space.n_dofs)
    done, step = 0.0, 1.0 if guess is not None else 1.0 / int(steps)
    halvings = backtracks = 0
    initial_failed = False
    while done < 1.0 - 1e-12:
        target = min(1.0, done + step)
        trial = guess.copy() if guess is not None else u.copy()
        trial[D] = target * u_D
        ref = float(np.linalg.norm(target * f_ext[free]))
        residuals, ok = [], False
        try:
            kinematics = _kinematics(space, trial)
            value, slack = potential(trial, kinematics, target)
            for _ in range(max_iter + 1):
                r, K, floor = residual_and_tangent(kinematics, target)
                if ref == 0.0:  # displacement-driven: relative to the first residual
                    ref = max(float(np.linalg.norm(r[free])), 1e-30)
                residuals.append(float(np.linalg.norm(r[free])) / ref)
                if residuals[-1] <= max(tol, floor / ref):
                    ok = True
                    break
                A_II, b_I, _, I = condense(K, -r, D, np.zeros(D.size))
                du = np.zeros(space.n_dofs)
                du[I] = sp.linalg.spsolve(A_II.tocsc(), b_I)
                step_taken = line_search(trial, du, r, value, slack, target)
                if step_taken is None:  # Newton's direction climbs Π: the linear stiffness's descends
                    du[free] = rest_solve(-r[free])
                    step_taken = line_search(trial, du, r, value, slack, target)
                if step_taken is None:  # no descent: cut the load step
                    break
                trial, kinematics, value, slack, alpha = step_taken
                backtracks += alpha < 1.0
        except GraphfemError:  # the start inverts an element: cut the load step
            ok = False
        if not ok and guess is not None:  # the guess was no good: the usual load-stepped start
            guess, initial_failed, step = None, True, 1.0 / int(steps)
            continue
        guess = None
        if not ok:
            halvings += 1
            if halvings > max_halvings:
                raise GraphfemError(f"Newton did not converge at load factor {target:.4g} after {max_halvings} "
                                    f"step halvings (last residual {residuals[-1] if residuals else float('nan'):.2e})")
            step /= 2
            continue
        u, done = trial, target
        history.append(residuals)
        factors.append(target)
    nodes = scalar_node_dofs(space)
    info = {"residuals": history, "load_factors": factors, "newton_iterations": sum(len(h) - 1 for h in history),
            "halvings": halvings, "shortened_steps": int(backtracks), "lame": (lam, mu),
            "total_s": time.perf_counter() - start}
    if initial is not None:
        info["initial_failed"] = initial_failed
    return Solution(space, {"displacement": u}, {"displacement": u.reshape(-1, 2)[nodes]},
                    {"displacement": "m"}, info)


def tangent_at_rest(space: FESpace, E: float = 1.0, nu: float = 0.3) -> sp.csr_matrix:
    """The Newton tangent at u = 0 (n_dofs, n_dofs): the linear plane-strain stiffness."""
    lam, mu = lame(float(E), float(nu), 2, "strain")
    _, tangent, _ = _forms(lam, mu)
    F, FinvT, lnJ = _kinematics(space, np.zeros(space.n_dofs))
    return tangent.assemble(space.basis, FinvT=FinvT, lnJ=lnJ, lam=lam, mu=mu).tocsr()


@register_problem
class NeoHookean(Problem):
    r"""Compressible neo-Hookean plane strain by load-stepped Newton; :func:`neo_hookean`.

    Options: E and ν (the plane-strain λ, μ of the small-strain limit), the
    supports (a tag, or some of its components: ``--fix bottom:y``), dead surface tractions by tag and a constant dead
    body force (reference configuration), and the number of load steps.

    Data sets (:meth:`sample`): the plate 1 × 0.5 of SPON's
    ``spon-hyperelastic`` (8 × 4 squares split in two, refined once: 153
    nodes), a mesh file, or a new random domain per sample (``perforated``,
    ``deformed``, ``lshape``: :func:`graphfem.physics.geometries.random_domain`; ``2d``: one of
    these three families at random per sample),
    clamped on the left, under a tension traction t_x ∈ [0, 0.12],
    t_y ∈ [−0.03, 0.03] on the right (a compressed slender plate buckles)
    and a constant body force of up to 0.05 per component; E log-uniform in
    [0.63, 1.6], ν uniform in [0.2, 0.4].
    """

    name = "hyperelastic"
    fields = {"displacement": "m"}
    vector_fields = ("displacement",)
    dims = (2,)
    summary = "neo-Hookean plane-strain hyperelasticity div P(F) + b = 0"
    options = (
        YOUNGS_MODULUS,
        POISSONS_RATIO,
        FIX,
        TRACTION,
        BODY_FORCE,
        Option("steps", "integer", 4, "Load steps (a step whose Newton iteration fails is halved).", role="setting"),
        ORDER,
    )
    geometries = ("plate", "perforated", "deformed", "lshape", "2d")
    dimensionless = True
    resolution_range = True

    def kwargs(self, params):
        out = super().kwargs(params)
        out["fixed"] = out.pop("fix")
        return out

    def solve(self, mesh: Mesh | FESpace, **params) -> Solution:
        return neo_hookean(mesh, **params)

    def refine(self, mesh: Mesh, raw, guess) -> Solution:
        """Newton with the consistent tangent from the guessed displacement at the full
        load, no load steps (the load-stepped start should Newton fail from it)."""
        kwargs = self.kwargs(self.parse(mesh, raw))
        space = make_space(mesh, kwargs.pop("order", None), vector=True)
        return neo_hookean(space, initial=guess_dofs(space, guess["displacement"]), **kwargs)

    def report(self, solution: Solution) -> list[str]:
        """The load steps and Newton iterations."""
        info = solution.info
        start = {None: "", False: " from the given guess", True: " (Newton failed from the given guess; "
                 "solved again from u = 0)"}[info.get("initial_failed")]
        return [f"Newton: {len(info['load_factors'])} load steps ({info['halvings']} halvings), "
                f"{info['newton_iterations']} iterations in all"
                + (f" ({info['shortened_steps']} shortened by the line search)" if info["shortened_steps"] else "")
                + start]

    def features(self, mesh: Mesh, params, by_load: bool = True) -> Features:
        r"""The generic encoding made dimensionless by the exact scalings of dead-load
        neo-Hookean equilibrium, plus the resultant load on every node.

        P(F; E, ν) = E P(F; 1, ν) and F is unchanged by x = L x̂, u = L û, so with
        L the largest bounding-box side u(x; E, ν, t, b) = L û(x/L; ν, t/E, bL/E):
        the model sees t/E, bL/E and ν (no E, no L).

        The load magnitude λ = (Σ_tags |∫ t ds| + |∫ b dx|)/(E L), the parts' resultants
        summed in norm (a column ``load:magnitude``), takes out the remaining,
        nearly linear, dependence on how hard the body is loaded: the loads enter
        as t/(Eλ) and bL/(Eλ), of unit size, and the model predicts u/(Lλ), which
        :attr:`Features.scale` = (Lλ, Lλ) multiplies back. Only the nonlinear
        departure from proportional response is left to learn from λ, where the
        network, whose latents are layer-normalised, would otherwise carry the
        magnitude of the output through its hidden layers (4,000 random perforated
        plates, 24,000 steps: test error 0.080 → 0.073, on 60 held-out plates
        0.075 → 0.069 in the FE mass norm). λ = 1 when nothing loads the body (u = 0).

        Tractions act on the tagged nodes only, so the resultant
        R = (Σ_tags ∫ t ds + ∫ b dx)/(E L λ), the components of the assembled load
        vector summed (the P1 basis is a partition of unity), is repeated on every
        node: message passing would otherwise need as many steps as the mesh is
        edges across to learn which way the body is pulled.
        The supports are ``fix:mask`` and ``fix[k]`` per component held
        (:func:`~graphfem.physics.elasticity.support_features`); those components hold
        u_k = 0 exactly. ``fix:distance`` and ``traction:distance`` are
        every node's distance to the nearest supported and loaded node over L
        (:func:`~graphfem.physics.elasticity.tag_distance`): a plate's displacement grows with
        the distance from its clamp, which the network cannot measure in fewer steps than the
        mesh is edges across (on
        2,000 random perforated plates they took the held-out error from 0.129 to 0.114).

        ``by_load=False`` is the layout of checkpoints written before λ (loads over E
        only, output u/L, no ``load:magnitude`` column).
        """
        lo, hi = mesh.bounding_box
        L = float(np.max(hi - lo))
        E = float(params["E"])
        traction = {t: np.asarray(v, dtype=float) / E for t, v in (params.get("traction") or {}).items()}
        body = None if params.get("body_force") is None else np.asarray(params["body_force"], float) / E
        parts = [load_resultant(mesh, {tag: t}, None) for tag, t in traction.items()]  # each part's ∫ over E
        parts += [] if body is None else [load_resultant(mesh, None, body)]
        magnitude = (float(sum(np.linalg.norm(r) for r in parts)) / L or 1.0) if by_load else 1.0
        traction = {tag: t / magnitude for tag, t in traction.items()}
        body = None if body is None else body / magnitude
        scaled = {**params, "E": 1.0, "traction": traction or None, "body_force": None if body is None else body * L}
        out = super().features(mesh, scaled)
        keep = [k for k, name in enumerate(out.names) if name != "E"]
        resultant = sum(parts, np.zeros(mesh.dim)) / (L * magnitude)  # force / (E L λ): R is linear in the parts
        x = np.concatenate([out.x[:, keep], np.tile(resultant, (mesh.n_points, 1))], axis=1)
        names = [out.names[k] for k in keep] + ["load_resultant[0]", "load_resultant[1]"]
        x, names, fixed = support_features(mesh, x, names, params.get("fix"))
        distances = [tag_distance(mesh, held_components(params.get("fix"), mesh.dim)) / L,
                     tag_distance(mesh, params.get("traction") or {}) / L]
        columns = distances + ([np.full(mesh.n_points, magnitude)] if by_load else [])
        x = np.concatenate([x, np.stack(columns, axis=1)], axis=1)
        names = names + ["fix:distance", "traction:distance"] + (["load:magnitude"] if by_load else [])
        return Features(x, names, np.array([L, L]) * magnitude, fixed, np.zeros(fixed.shape),
                        case=loaded_sides(mesh, params))

    def features_in(self, mesh: Mesh, params, names) -> Features:
        """The layout ``names`` of a checkpoint (:func:`~graphfem.physics.elasticity.elastic_layout`);
        one without ``load:magnitude`` gets the loads and output scale it was trained with."""
        return elastic_layout(self, mesh, params, names,
                              self.features(mesh, params, by_load="load:magnitude" in names))

    def essential(self, mesh: Mesh, raw):
        return elastic_essential(self, mesh, raw)

    def scaled(self, mesh: Mesh, raw, factor: float) -> Transformed:
        """The elastic law (:func:`~graphfem.physics.elasticity.elastic_scaled`): dead loads,
        P(F) unchanged under u ↦ c u(x/c)."""
        return elastic_scaled(self, mesh, raw, factor)

    def rotated(self, mesh: Mesh, raw, rotation: np.ndarray) -> Transformed:
        """Neo-Hookean energy is isotropic: :func:`~graphfem.physics.elasticity.elastic_rotated`."""
        return elastic_rotated(self, mesh, raw, rotation)

    def frame(self, mesh: Mesh, raw) -> np.ndarray | None:
        """:func:`~graphfem.physics.elasticity.support_frame`: the supports turned to −x."""
        return support_frame(mesh, self.parse(mesh, raw).get("fix"))

    def sample(self, rng: np.random.Generator, geometry: str | None = None,
               resolution: int | tuple[int, int] | None = None):
        """A random material and load on the plate, on a mesh file given as ``geometry``, or on a
        random domain of the family ``geometry`` (clamped on its tag ``left``, pulled on ``right``);
        ``resolution`` sets a random domain's mesh size as for Poisson
        (:func:`graphfem.physics.geometries.drawn_mesh_size`: N or a range LOW:HIGH)."""
        from .geometries import LEFT_RIGHT_FAMILIES, drawn_mesh_size, random_domain

        is_file = geometry is not None and bool(Path(geometry).suffix)
        family = None if is_file else self.geometry(geometry)
        if resolution is not None and family in (None, "plate"):
            random = ", ".join(g for g in self.geometries if g != "plate")
            raise InputError(f"--resolution: the {'mesh file' if is_file else 'plate'} is a fixed mesh; a "
                             f"resolution sets the random domains ({random})")
        if is_file:
            mesh = _loaded_mesh(geometry)
        elif family == "plate":
            mesh = Mesh.rectangle(8, 4, 0.0, 1.0, 0.0, 0.5).refined(1)
        else:
            if family == "2d":
                family = LEFT_RIGHT_FAMILIES[int(rng.integers(len(LEFT_RIGHT_FAMILIES)))]
            mesh = random_domain(family, rng, drawn_mesh_size(rng, resolution))
        E = float(10 ** rng.uniform(-0.2, 0.2))  # with the loads below: displacements up to ~0.5
        traction = [float(rng.uniform(0.0, 0.12)), float(rng.uniform(-0.03, 0.03))]
        return mesh, {"E": E, "nu": float(rng.uniform(0.2, 0.4)), "fix": ["left"], "traction": {"right": traction},
                      "body_force": rng.uniform(-0.05, 0.05, 2).tolist(), "steps": 2, "order": 1}


def _loaded_mesh(path: str) -> Mesh:
    """The 2D mesh file ``path`` with the facet tags ``left`` and ``right`` a sample clamps and pulls."""
    from graphfem.meshes import read

    mesh = read(path)
    if mesh.dim != 2:
        raise InputError(f"--geometry: hyperelastic samples live on 2D meshes, this one is {mesh.dim}D",
                         path)
    missing = [t for t in ("left", "right") if t not in mesh.tags]
    if missing:
        raise InputError(f"--geometry: a sample clamps the facet tag 'left' and pulls 'right'; the mesh has "
                         f"no {' or '.join(repr(t) for t in missing)} (tags: {', '.join(mesh.tags) or 'none'})", path)
    return mesh


__all__ = ["NeoHookean", "neo_hookean", "piola", "tangent_at_rest"]

