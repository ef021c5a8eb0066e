"""graphfem.physics: verified finite-element reference solvers on scikit-fem.

``poisson``, ``elasticity`` and ``heat`` (and their :class:`Problem` classes)
return :class:`Solution` values (``heat`` returns the
:class:`~graphfem.meshes.Trajectory`); ``solve_linear`` is the shared sparse
solve with Dirichlet condensation and an automatic direct / AMG / CG choice.
"""
from .elasticity import Elasticity, elasticity
from .heat import Heat, heat, heat_solution
from .linear_solvers import LinearSolver, choose_method, solve_linear
from .poisson import Poisson, poisson
from .problem import Problem, Solution

__all__ = ["Elasticity", "Heat", "LinearSolver", "Poisson", "Problem", "Solution", "choose_method", "elasticity",
           "heat", "heat_solution", "poisson", "solve_linear"]
