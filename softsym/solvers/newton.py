"""Newton's method: Cholesky solve, shifted when the Hessian is indefinite, Armijo backtracking."""

from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from .base import INDEFINITE, Solver, SolverFailure, State, backtracking, register


def shifted_cholesky_solve(H: np.ndarray, rhs: np.ndarray, max_tries: int = 60) -> tuple[np.ndarray, float]:
    """Solve (H + tau I) s = rhs with the smallest tau >= 0 (doubling) that makes it positive definite.

    Nocedal & Wright, Algorithm 3.3.  Returns (s, tau).
    """
    diag_min = float(np.min(np.diag(H)))
    scale = float(np.linalg.norm(H, "fro")) or 1.0
    tau = 0.0 if diag_min > 0 else 1e-3 * scale - diag_min
    for _ in range(max_tries):
        try:
            c = cho_factor(H + tau * np.eye(H.shape[0]) if tau else H, lower=True, check_finite=False)
            return cho_solve(c, rhs, check_finite=False), tau
        except LinAlgError:
            tau = max(2.0 * tau, 1e-3 * scale)
    raise SolverFailure(INDEFINITE, "could not make the Hessian positive definite by shifting")


@register
class Newton(Solver):
    """Damped Newton: direction -(H + tau I)^-1 g (tau = 0 when H is positive definite)."""

    name = "newton"

    def step(self, objective, state: State) -> State:
        H = objective.hess(state.x)
        d, tau = shifted_cholesky_solve(H, -state.g)
        t, f = backtracking(objective, state.x, state.f, state.g, d)
        x = state.x + t * d
        f, g = objective.fun_and_jac(x)
        shifts = state.extra.get("shifts", 0) + (tau > 0)
        return State(x=x, f=f, g=g, extra={"shifts": shifts, "step": t})

    def extra_result(self, state: State) -> dict:
        return {"indefinite_steps": int(state.extra.get("shifts", 0))}
