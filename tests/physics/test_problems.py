"""Every registered problem from its one declaration: sampling, solving, model
inputs and option parsing, and ``Problem.run`` against the solver called by hand."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

from graphfem.meshes import Mesh
from graphfem.meshes.errors import InputError
from graphfem.physics.problem import Problem, get_problem, problems, split_fields, stack_fields

NAMES = problems()


def _same(a: Any, b: Any) -> bool:
    """Equal raw option values: numbers, strings, arrays, lists and dicts of them."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple, np.ndarray)):
        return np.shape(a) == np.shape(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _json_ready(value: Any, mesh: Mesh) -> bool:
    if isinstance(value, np.ndarray):
        return value.shape[0] in (mesh.n_points, mesh.n_cells) and np.isfinite(value).all()
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_ready(v, mesh) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_ready(v, mesh) for v in value)
    return isinstance(value, (bool, int, float, str))


_SAMPLES: dict[str, tuple] = {}


def sampled(name: str) -> tuple[Problem, Mesh, dict, Any]:
    """(problem, mesh, raw options, solution) of sample 0, solved once per session."""
    if name not in _SAMPLES:
        problem = get_problem(name)
        mesh, raw = problem.sample(np.random.default_rng([11, 0]))
        _SAMPLES[name] = (problem, mesh, raw, problem.run(mesh, raw))
    return _SAMPLES[name]


def _one_line_error(call: Callable[[], Any]) -> str:
    with pytest.raises(InputError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------ every registered problem
@pytest.mark.parametrize("name", NAMES)
def test_sample_depends_on_the_generator_only(name):
    problem = get_problem(name)
    (m1, r1), (m2, r2) = (problem.sample(np.random.default_rng([3, 1])) for _ in range(2))
    np.testing.assert_array_equal(m1.points, m2.points)
    if hasattr(m1, "cells"):  # a mesh; particle problems (mpm) sample a point cloud
        np.testing.assert_array_equal(m1.cells, m2.cells)
        assert m1.tags.keys() == m2.tags.keys()
    assert _same(r1, r2)
    assert all(_json_ready(v, m1) for v in r1.values()), r1
    mesh, raw = problem.sample(np.random.default_rng([3, 2]))
    assert not (mesh.points.shape == m1.points.shape and np.array_equal(mesh.points, m1.points) and _same(raw, r1))
    assert 30 <= mesh.n_points <= 700
    with pytest.raises(InputError, match=f"--geometry nowhere: {name} takes "):
        problem.sample(np.random.default_rng(0), geometry="nowhere")


@pytest.mark.parametrize("name", NAMES)
def test_sample_solves_to_the_declared_fields(name):
    problem, mesh, raw, solution = sampled(name)
    assert set(solution.fields) == set(problem.fields)
    assert solution.units == dict(problem.fields)
    for field, values in solution.fields.items():
        assert np.isfinite(values).all(), field
        assert np.reshape(values, (mesh.n_points, -1)).shape[1] == problem.field_width(field, mesh)
    y = stack_fields(problem, mesh, solution.fields)
    assert y.shape == (mesh.n_points, problem.output_channels(mesh))
    np.testing.assert_array_equal(stack_fields(problem, mesh, split_fields(problem, mesh, y)), y)
    params = problem.parse(mesh, raw)
    assert (solution.trajectory is not None) == problem.is_transient(params)
    if solution.trajectory is not None:
        assert set(solution.trajectory.fields) == set(problem.fields)
        assert np.isfinite(solution.trajectory.fields[next(iter(problem.fields))]).all()
    assert all(isinstance(line, str) and "\n" not in line for line in problem.report(solution))


@pytest.mark.parametrize("name", NAMES)
def test_features_and_description(name):
    problem, mesh, raw, _ = sampled(name)
    params = problem.parse(mesh, raw)
    features = problem.features(mesh, params)
    assert features.x.shape == (mesh.n_points, len(features.names))
    assert len(set(features.names)) == len(features.names)
    assert np.isfinite(features.x).all()
    assert features.scale.shape == (problem.output_channels(mesh),)
    sentence = problem.describe(params)
    assert sentence.endswith(".") and "\n" not in sentence and ". " not in sentence
    if type(problem).describe is Problem.describe:  # an override writes its own caption (cylinder-wake: Text2PDE's template)
        assert sentence.startswith(problem.summary)


@pytest.mark.parametrize("name", NAMES)
def test_bad_options_are_one_line_naming_the_flag(name):
    problem, mesh, raw, _ = sampled(name)
    assert "'bogus'" in _one_line_error(lambda: problem.parse(mesh, {**raw, "bogus": "1"}))
    for opt in problem.options:
        if opt.required:
            rest = {k: v for k, v in raw.items() if k != opt.name}
            assert opt.cli_flag in _one_line_error(lambda: problem.parse(mesh, rest))
    numeric = next(o for o in problem.options if o.kind in ("number", "integer"))
    assert numeric.cli_flag in _one_line_error(lambda: problem.parse(mesh, {**raw, numeric.name: "abc"}))


# ------------------------------------------------------------------ run == the solver by hand
def _channel() -> Mesh:
    from graphfem.physics.channel import channel_mesh

    return channel_mesh(16, order=1)


def _direct(name: str) -> Callable:
    """The solver of ``name`` called with hand-written keywords (see CASES)."""
    from graphfem import physics
    from graphfem.physics.hyperelasticity import neo_hookean
    from graphfem.physics.navier_stokes import dfg_setup

    def xy(x):
        return x[0] * x[1]

    return {
        "poisson": lambda m: physics.poisson(m, kappa=2.0, f=xy, dirichlet={"left": 1.0}, robin={"right": (1.0, 0.5)}),
        "elasticity": lambda m: physics.elasticity(m, E=2.0, nu=0.3, plane="strain", fixed=["left"],
                                                   traction={"right": np.array([0.0, -0.1])},
                                                   body_force=np.array([0.0, -0.5])),
        "heat": lambda m: physics.heat_solution(m, t_end=0.02, dt=0.005, kappa=0.5, f=0.0, theta=1.0,
                                                initial=lambda x: np.sin(np.pi * x[0]) * np.sin(np.pi * x[1]),
                                                dirichlet={"left": 0.0}),
        "darcy": lambda m: physics.darcy(m, a=lambda x: 1 + x[0], f=10.0),
        "advection-diffusion": lambda m: physics.advection_diffusion(
            m, lambda x: np.stack([-(x[1] - 0.5), x[0] - 0.5]), kappa=0.05, f=1.0, t_end=0.1, dt=0.05,
            initial=lambda x: np.exp(-((x[0] - 0.3) ** 2 + (x[1] - 0.5) ** 2) / 0.02)),
        "burgers": lambda m: physics.burgers(m, 0.05, initial=lambda x: np.sin(np.pi * x[0]), t_end=0.1, dt=0.02),
        "stokes": lambda m: physics.stokes(m, nu=1e-3, **dfg_setup(0.3)),
        "navier-stokes": lambda m: physics.navier_stokes(m, nu=1e-3, **dfg_setup(0.3)),
        "hyperelastic": lambda m: neo_hookean(m, E=1.0, nu=0.3, fixed=["left"], traction={"right": [0.05, 0.0]},
                                              steps=2),
    }[name]


#: name -> (mesh, the same options as command-line strings)
CASES = {
    "poisson": (lambda: Mesh.rectangle(6), {"kappa": "2", "source": "x*y", "dirichlet": ["left=1"],
                                            "robin": ["right=1,0.5"]}),
    "elasticity": (lambda: Mesh.rectangle(6), {"E": "2", "nu": "0.3", "plane_stress": False, "fix": ["left"],
                                               "traction": ["right=0,-0.1"], "body_force": "0,-0.5"}),
    "heat": (lambda: Mesh.rectangle(6), {"t_end": "0.02", "dt": "0.005", "kappa": "0.5", "theta": "1",
                                         "initial": "sin(pi*x)*sin(pi*y)", "dirichlet": ["left=0"]}),
    "darcy": (lambda: Mesh.rectangle(6), {"a": "1+x"}),
    "advection-diffusion": (lambda: Mesh.rectangle(8), {"velocity": "-(y-0.5),x-0.5", "kappa": "0.05", "source": "1",
                                                        "t_end": "0.1", "dt": "0.05",
                                                        "initial": "exp(-((x-0.3)**2+(y-0.5)**2)/0.02)"}),
    "burgers": (lambda: Mesh.interval(32), {"nu": "0.05", "initial": "sin(pi*x)", "t_end": "0.1", "dt": "0.02"}),
    "stokes": (_channel, {"inflow": ["inlet=0.3"], "no_slip": ["walls", "cylinder"], "outflow": ["outlet"],
                          "nu": "1e-3", "obstacle": ["cylinder"]}),
    "navier-stokes": (_channel, {"inflow": ["inlet=0.3"], "no_slip": ["walls", "cylinder"], "outflow": ["outlet"],
                                 "nu": "1e-3", "obstacle": ["cylinder"]}),
    "hyperelastic": (lambda: Mesh.rectangle(4, 2, 0.0, 1.0, 0.0, 0.5),
                     {"E": "1", "nu": "0.3", "fix": ["left"], "traction": ["right=0.05,0"], "steps": "2"}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_run_equals_the_solver_called_by_hand(name):
    build, raw = CASES[name]
    mesh = build()
    problem = get_problem(name)
    got, want = problem.run(mesh, raw), _direct(name)(mesh)
    assert set(got.fields) == set(want.fields)
    for field in want.fields:
        np.testing.assert_allclose(got.fields[field], want.fields[field], rtol=1e-10, atol=1e-12)
    if want.trajectory is not None:
        np.testing.assert_allclose(got.trajectory.fields["u"], want.trajectory.fields["u"], rtol=1e-10, atol=1e-12)


def test_reports_carry_what_the_commands_printed():
    def lines(name):
        build, raw = CASES[name]
        problem = get_problem(name)
        return "\n".join(problem.report(problem.run(build(), raw)))

    assert "net outflow of q = -a grad u: " in lines("darcy")
    assert "cell Péclet number up to " in lines("advection-diffusion")
    assert lines("burgers").startswith("newton: 5 steps, ")
    flow = lines("navier-stokes")
    assert "Newton 1: residual" in flow and "force on cylinder" in flow and "(mean velocity 0.2, length 0.1)" in flow


def test_problem_specific_checks():
    square = Mesh.rectangle(4)
    heat, ad, ns = get_problem("heat"), get_problem("advection-diffusion"), get_problem("navier-stokes")
    assert "--theta must lie in [0, 1]" in _one_line_error(
        lambda: heat.parse(square, {"t_end": "1", "dt": "0.1", "theta": "2"}))
    assert _one_line_error(lambda: ad.parse(square, {"velocity": "1,0", "t_end": "1"})) == "--t-end needs --dt"
    assert "--velocity: expected 2 comma-separated components" in _one_line_error(
        lambda: ad.parse(square, {"velocity": "1"}))
    assert "hold the body in place" in _one_line_error(
        lambda: get_problem("elasticity").parse(square, {"E": "1", "nu": "0.3"}))
    channel = _channel()
    base = {"inflow": ["inlet=0.3"], "no_slip": ["walls", "cylinder"], "nu": "1e-3"}
    assert "needs both --t-end and --dt" in _one_line_error(lambda: ns.parse(channel, {**base, "dt": "0.1"}))
    assert "--inflow: expected TAG=VALUE" in _one_line_error(lambda: ns.parse(channel, {**base, "inflow": ["inlet"]}))
    assert "--obstacle: give one tag" in _one_line_error(
        lambda: ns.parse(channel, {**base, "obstacle": ["walls", "cylinder"]}))
    assert "stokes has no option 't_end'" in _one_line_error(
        lambda: get_problem("stokes").parse(channel, {**base, "t_end": "1"}))


def test_vector_valued_options_are_encoded_at_the_nodes():
    from graphfem.physics.navier_stokes import dfg_setup

    square = Mesh.rectangle(4)
    burgers = get_problem("burgers")
    params = burgers.parse(square, {"nu": "0.1", "initial": "sin(pi*x)*sin(pi*y),0", "t_end": "0.02", "dt": "0.01",
                                    "dirichlet": ["left=0.5,0", "bottom=0,0"]})
    features = burgers.features(square, params)
    x = dict(zip(features.names, features.x.T))
    left = np.setdiff1d(square.tag_nodes("left"), square.tag_nodes("bottom"))  # the later tag wins at the corner
    np.testing.assert_allclose(x["dirichlet[0]"][left], 0.5)
    np.testing.assert_allclose(x["dirichlet:mask"][square.tag_nodes("bottom")], 1.0)
    px, py = square.points.T
    np.testing.assert_allclose(x["initial[0]"], np.sin(np.pi * px) * np.sin(np.pi * py))
    assert burgers.solve(square, **burgers.kwargs(params)).fields["u"].shape == (square.n_points, 2)

    channel = _channel()
    ns = get_problem("navier-stokes")
    features = ns.features(channel, ns.parse(channel, {"nu": "1e-3", **dfg_setup(0.3)}))
    x = dict(zip(features.names, features.x.T))
    inlet = channel.tag_nodes("inlet")
    assert x["inflow:mask"].sum() == len(inlet)
    y = channel.points[inlet, 1]
    np.testing.assert_allclose(x["inflow[0]"][inlet], 0.3 * 4 * y * (0.41 - y) / 0.41 ** 2, atol=1e-12)
