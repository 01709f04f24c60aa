"""Solvers: ``softsym.minimize(objective, x0, method=...)``.

Each solver lives in its own module and registers itself; importing it here is all it
takes to add one.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy.optimize import OptimizeResult

from ..errors import ValidationError
from . import gd, newton  # noqa: F401  (registration)
from . import zo  # noqa: F401  (registration)
from . import approx_newton  # noqa: F401  (registration)
from .base import SOLVERS, Solver, SolverFailure, State, register, run

DEFAULT_MAXITER = {"newton": 100, "gd": 10_000}


def minimize(objective, x0=None, method: str = "newton", tol: float = 1e-10, maxiter: int | None = None,
             callback: Callable[[OptimizeResult], Any] | None = None, certify_start: bool = True,
             **options: Any) -> OptimizeResult:
    """Minimize ``objective`` from ``x0`` (default 0) with ``method``.

    Stops when ||grad L(x)|| <= tol * ||grad L(x0)|| (relative gradient norm) or after
    ``maxiter`` iterations.  Returns a ``scipy.optimize.OptimizeResult`` with ``x, fun, jac,
    nit, nfev, njev, nhev, success, status, message`` plus ``rel_grad_norm`` and ``history``
    (loss, gradient norm and elapsed time per iteration).  Status: 0 converged, 1 iteration
    cap, 2 line search/non-descent, 3 overflow, 4 indefinite Hessian, 99 callback stopped.
    ``callback(intermediate_result)`` is called after every iteration; raising
    ``StopIteration`` stops cleanly.  Extra keyword options go to the method.
    With ``certify_start`` the result also reports ``start_certified`` and ``start_condition``:
    whether the derived bounds certify the Newton theory's start condition
    ``M ||x0 - x*|| <= 0.1 l`` (see ``softsym.guarantees.start_condition``).
    """
    if method not in SOLVERS:
        raise ValidationError(f"unknown method {method!r}; available: {', '.join(sorted(SOLVERS))}")
    solver = SOLVERS[method](**options)
    if x0 is None:
        x0 = np.zeros(objective.d)
    if maxiter is None:
        maxiter = DEFAULT_MAXITER.get(method, 1000)
    res = run(solver, objective, x0, tol, maxiter, callback)
    if certify_start:
        from ..guarantees import start_condition

        grad0 = res.history["grad_norm"][0] if res.history["grad_norm"] else None
        res.update(start_condition(objective, x0, grad0))
    return res


__all__ = ["SOLVERS", "Solver", "SolverFailure", "State", "minimize", "register", "run"]
