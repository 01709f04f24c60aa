"""Newton's method: Cholesky solve, shifted when the Hessian is indefinite, Armijo backtracking."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..numerics.cholesky import NotPositiveDefinite, shifted_cholesky_solve
from .base import Solver, SolverFailure, State, Status, register
from .line_search import backtracking, newton_stall


@dataclass
class NewtonState(State):
    """Newton's state: how many steps needed a shifted Hessian so far, and the last step length."""

    shifts: int = 0
    step: float | None = None


@register
class Newton(Solver):
    """Damped Newton: direction -(H + tau I)^-1 g (tau = 0 when H is positive definite)."""

    name = "newton"

    def init(self, objective, x0: np.ndarray) -> NewtonState:
        f, g = objective.fun_and_jac(x0)
        return NewtonState(x=x0, f=f, g=g)

    def step(self, objective, state: NewtonState) -> NewtonState:
        H = objective.hess(state.x)
        try:
            d, tau = shifted_cholesky_solve(H, -state.g)
        except NotPositiveDefinite as exc:
            raise SolverFailure(Status.INDEFINITE, str(exc)) from None
        if tau == 0:
            newton_stall(objective, state.x, state.f, state.g, d)
        t, _ = backtracking(objective, state.x, state.f, state.g, d)
        x = state.x + t * d
        f, g = objective.fun_and_jac(x)
        return NewtonState(x=x, f=f, g=g, shifts=state.shifts + (tau > 0), step=t)

    def extra_result(self, state: NewtonState) -> dict:
        return {"indefinite_steps": int(state.shifts)}
