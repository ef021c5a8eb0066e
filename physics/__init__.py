"""graphfem.physics: verified finite-element reference solvers on scikit-fem.

``poisson``, ``elasticity``, ``heat``, ``darcy``, ``advection_diffusion``,
``burgers``, ``stokes``, ``navier_stokes`` and ``navier_stokes_transient`` (and
their :class:`Problem` classes) return :class:`Solution` values (``heat`` returns the
:class:`~graphfem.meshes.Trajectory`); ``solve_linear`` is the shared sparse
solve with Dirichlet condensation and an automatic direct / AMG / CG choice.
"""
from .darcy import Darcy, darcy, gaussian_random_field, two_phase_coefficient
from .elasticity import Elasticity, elasticity
from .heat import Heat, heat, heat_solution
from .linear_solvers import LinearSolver, choose_method, solve_linear
from .navier_stokes import FlowSolution, NavierStokes, Stokes, navier_stokes, navier_stokes_transient, stokes
from .poisson import Poisson, poisson
from .problem import Problem, Solution
from .transport import AdvectionDiffusion, Burgers, advection_diffusion, burgers

__all__ = ["AdvectionDiffusion", "Burgers", "Darcy", "Elasticity", "FlowSolution", "Heat", "LinearSolver",
           "NavierStokes", "Poisson", "Problem", "Solution", "Stokes", "advection_diffusion", "burgers",
           "choose_method", "darcy", "elasticity", "gaussian_random_field", "heat", "heat_solution",
           "navier_stokes", "navier_stokes_transient", "poisson", "solve_linear", "stokes",
           "two_phase_coefficient"]
