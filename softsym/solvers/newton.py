"""Newton's method: Cholesky solve, shifted when the Hessian is indefinite, Armijo backtracking."""

from __future__ import annotations

from ..numerics.cholesky import NotPositiveDefinite, shifted_cholesky_solve
from .base import INDEFINITE, Solver, SolverFailure, State, backtracking, register


@register
class Newton(Solver):
    """Damped Newton: direction -(H + tau I)^-1 g (tau = 0 when H is positive definite)."""

    name = "newton"

    def step(self, objective, state: State) -> State:
        H = objective.hess(state.x)
        try:
            d, tau = shifted_cholesky_solve(H, -state.g)
        except NotPositiveDefinite as exc:
            raise SolverFailure(INDEFINITE, str(exc)) from None
        t, f = backtracking(objective, state.x, state.f, state.g, d)
        x = state.x + t * d
        f, g = objective.fun_and_jac(x)
        shifts = state.extra.get("shifts", 0) + (tau > 0)
        return State(x=x, f=f, g=g, extra={"shifts": shifts, "step": t})

    def extra_result(self, state: State) -> dict:
        return {"indefinite_steps": int(state.extra.get("shifts", 0))}
