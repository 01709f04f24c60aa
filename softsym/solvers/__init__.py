"""Solvers, registered per problem family; ``softsym.minimize`` dispatches through the registry.

Each solver lives in its own module and registers itself; importing it here is all it takes
to add one.
"""

from __future__ import annotations

from . import approx_newton, gd, network_gd, newton, variable_projection, zeroth_order  # noqa: F401  (registration)
from .base import SOLVERS, Solver, SolverFailure, State, Status, make_solver, register, run, solver_class

#: the method ``softsym.minimize`` uses for each family when none is given
DEFAULT_METHOD = {"normalized": "newton", "attention": "newton-cg", "two_layer": "gd"}
#: the iteration cap when none is given, per method name (others: 1000)
DEFAULT_MAXITER = {"newton": 100, "newton-cg": 100, "gd": 10_000}

__all__ = ["DEFAULT_MAXITER", "DEFAULT_METHOD", "SOLVERS", "Solver", "SolverFailure", "State", "Status", "register",
           "make_solver", "run", "solver_class"]
