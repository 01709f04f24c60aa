"""Gradient descent: fixed step ``lr``, or Armijo backtracking with an adaptive trial step."""

from __future__ import annotations

import numpy as np

from .._validate import positive
from .base import LINE_SEARCH, Solver, SolverFailure, State, backtracking, register


@register
class GradientDescent(Solver):
    """x <- x - t grad L(x).

    With ``lr`` the step is fixed (the classical method with step 1/smoothness); without it,
    each step backtracks from twice the previous accepted step.
    """

    name = "gd"

    def __init__(self, lr: float | None = None):
        self.lr = None if lr is None else positive("lr", lr)

    def step(self, objective, state: State) -> State:
        d = -state.g
        if self.lr is not None:
            t = self.lr
        else:
            t0 = 2.0 * state.extra.get("step", 1.0 / max(float(np.linalg.norm(state.g)), 1e-300))
            t, _ = backtracking(objective, state.x, state.f, state.g, d, t0=t0)
        x = state.x + t * d
        f, g = objective.fun_and_jac(x)
        if self.lr is not None and f > state.f + 16 * np.finfo(float).eps * max(1.0, abs(state.f)):
            raise SolverFailure(LINE_SEARCH, f"fixed step lr={self.lr:g} increased the loss "
                                             f"({state.f:.6g} -> {f:.6g}); use a smaller lr")
        return State(x=x, f=f, g=g, extra={"step": t})
