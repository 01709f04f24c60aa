"""Gradient descent: fixed step ``lr``, or Armijo backtracking with an adaptive trial step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import positive
from ..numerics.cholesky import NotPositiveDefinite, shifted_cholesky_solve
from .base import Solver, SolverFailure, State, Status, norm, register
from .line_search import STALL_FACTOR, backtracking, newton_stall, rounding_floor


@dataclass
class GDState(State):
    """Gradient descent's state: the last accepted step length (None before the first step)."""

    step: float | None = None


@register
class GradientDescent(Solver):
    """x <- x - t grad L(x).

    With ``lr`` the step is fixed (the classical method with step 1/smoothness); a step that
    increases the loss beyond its rounding floor stops the run (status 2).  Without it, each
    step backtracks from twice the previous accepted step (from ``1/||grad L(x0)||`` first).

    Gradient descent cannot tell a rounding-noise gradient from a small real one.  When a step
    moves ``x`` by at most ``STALL_FACTOR eps ||x||`` and changes the loss by no more than its
    rounding floor, and the objective has a Hessian, the Newton step at that point decides, as
    in Newton's method (:func:`~softsym.solvers.line_search.newton_stall`): a Newton step at
    the rounding level of ``x`` that does not decrease the loss stops the run converged at
    rounding level.  One Hessian solve, only at such stalls.
    """

    name = "gd"

    def __init__(self, lr: float | None = None):
        self.lr = None if lr is None else positive("lr", lr)

    def init(self, objective, x0: np.ndarray) -> GDState:
        f, g = objective.fun_and_jac(x0)
        return GDState(x=x0, f=f, g=g)

    def step(self, objective, state: GDState) -> GDState:
        d = -state.g
        if self.lr is not None:
            t = self.lr
        else:
            t0 = 2.0 * state.step if state.step is not None else 1.0 / max(norm(state.g), 1e-300)
            t, _ = backtracking(objective, state.x, state.f, state.g, d, t0=t0)
        x = state.x + t * d
        f, g = objective.fun_and_jac(x)
        n_terms = getattr(objective, "n", 1)
        if self.lr is not None and f > state.f + rounding_floor(max(1.0, abs(state.f)), n_terms):
            raise SolverFailure(Status.LINE_SEARCH, f"fixed step lr={self.lr:g} increased the loss "
                                                    f"({state.f:.6g} -> {f:.6g}); use a smaller lr")
        if (hasattr(objective, "hess") and norm(x - state.x) <= STALL_FACTOR * np.finfo(float).eps * norm(state.x)
                and abs(f - state.f) <= rounding_floor(state.f, n_terms)):
            self._newton_check(objective, state)
        return GDState(x=x, f=f, g=g, step=t)

    @staticmethod
    def _newton_check(objective, state: GDState) -> None:
        """At a stall: stop converged at rounding level when the Newton step at ``state.x`` says so."""
        try:
            d, tau = shifted_cholesky_solve(objective.hess(state.x), -state.g)
        except NotPositiveDefinite:
            return
        if tau == 0:
            newton_stall(objective, state.x, state.f, state.g, d)
