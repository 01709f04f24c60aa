"""Zeroth-order gradient descent: ``x <- x - t g_hat`` with the two-point estimator of ``softsym.estimators.zeroth_order``.

Each iteration costs ``2K`` loss evaluations (one n x d x K GEMM and one fused kernel call)
plus the line-search trials.  Step rule:

* ``lr`` given: fixed step (ZO-SGD).  docs/math.md §2's ``lr = K / ((d + K) l_smooth)`` makes the
  expected decrease ``K / (2 (d + K) l_smooth) ||grad L||^2`` per iteration, i.e. about
  ``(d + K) / K`` times more iterations than gradient descent with step ``1/l_smooth``.
  No safeguard: a too large ``lr`` may increase the loss or overflow (status 3).
* default (``lr=None``): Armijo backtracking along ``-g_hat`` using loss values only.  The
  slope of ``L`` along ``-g_hat`` is ``-g_hat^T grad L = -(1/K) sum_k delta_k^2 + O(mu^2)``,
  known from the same ``2K`` losses, so the sufficient-decrease test is the usual one and the
  loss never increases.  Each search starts from twice the previous accepted step.
  (``softsym.bounds`` smoothness constants were not on main when this was written; a
  bound-based default ``lr`` can replace the search once they are.)

What ``State.g`` holds (the shared driver stops on ``||State.g|| <= tol ||State.g at x0||``):

* ``true_grad=True`` (default): the TRUE gradient ``grad L(x)``, computed for reporting and
  stopping only (counted in ``njev``); the iterates never use it, so they are exactly those of
  a forward-only run.  ``res.nfev`` counts exactly the loss evaluations the method used
  (``2K`` per estimate plus line-search trials); the true gradients count in ``res.njev``.
* ``true_grad=False``: the estimate ``g_hat(x)`` (a genuinely gradient-free run).  Its norm is
  a noisy, biased-up proxy (``E||g_hat||^2 ~ ((d + K)/K) ||grad L||^2``), so the relative
  test with ``tol`` is unreliable: use a budget (``maxiter``) and ``tol=0``.
"""

from __future__ import annotations

import numpy as np

from .._validate import count, flag, positive
from ..errors import OverflowDetected, ValidationError
from ..estimators import zeroth_order as zo
from .base import LINE_SEARCH, Solver, SolverFailure, State, register


def loss_only_backtracking(objective, x: np.ndarray, f: float, g_hat: np.ndarray, slope: float, t0: float,
                           c1: float = 1e-4, shrink: float = 0.5, max_halvings: int = 40) -> tuple[float, float]:
    """Armijo backtracking along ``-g_hat`` from loss values only: returns (t, L(x - t g_hat)).

    ``slope`` estimates ``g_hat^T grad L(x)`` (``Estimate.slope``).  Accepts the first ``t`` with
    ``L(x - t g_hat) <= L(x) - c1 t slope``; once that required decrease is below the loss's
    rounding error, a step that does not increase the loss is accepted instead (the shared
    ``backtracking`` consults the true gradient there, which a forward-only method may not).
    """
    rounding = 16 * np.finfo(float).eps * max(1.0, abs(f))
    t = t0
    for _ in range(max_halvings):
        try:
            ft = objective.fun(x - t * g_hat)
        except OverflowDetected:
            ft = np.inf
        if ft <= f - c1 * t * slope or (c1 * t * slope < rounding and ft <= f):
            return t, ft
        t *= shrink
    raise SolverFailure(LINE_SEARCH, f"loss-only line search found no decrease after {max_halvings} halvings "
                                     f"(loss {f:.6g}): the estimate is at the precision limit of its "
                                     "finite differences")


@register
class ZerothOrderGD(Solver):
    """ZO gradient descent (``method="zo"``): options ``K, mu, lr, seed, kind, true_grad, block``."""

    name = "zo"

    def __init__(self, K: int = 16, mu: float = 1e-5, lr: float | None = None, seed=0,
                 kind: str = "gaussian", true_grad: bool = True, block: int | None = None):
        self.K = count("K", K, 1)
        self.mu = positive("mu", mu)
        self.lr = None if lr is None else positive("lr", lr)
        self.kind = zo.check_kind(kind)
        self.rng = np.random.default_rng(zo.stream_seed(seed))  # validates seed
        self.true_grad = flag("true_grad", true_grad)
        self.block = None if block is None else count("block", block, 1)
        self.record: list[tuple[int, np.ndarray, float]] = []

    def _estimate(self, objective, x: np.ndarray):
        return zo.estimate(objective, x, self.K, self.mu, self.kind, self.rng, self.block)

    def _state(self, objective, x, f, extra) -> State:
        if self.true_grad:
            return State(x=x, f=f, g=objective.jac(x), extra=extra)
        g_hat, est = self._estimate(objective, x)
        return State(x=x, f=f, g=g_hat, extra={**extra, "est": (g_hat, est)})

    def init(self, objective, x0: np.ndarray) -> State:
        if not isinstance(getattr(objective, "A", None), np.ndarray):
            raise ValidationError(f"method 'zo' needs an in-memory objective (numpy A), got {type(objective).__name__}; "
                                  "a Dask objective is not supported (use 'gd', 'newton' or 'approx-newton')")
        return self._state(objective, x0, objective.fun(x0), {})

    def step(self, objective, state: State) -> State:
        g_hat, est = state.extra["est"] if "est" in state.extra else self._estimate(objective, state.x)
        if self.lr is not None:
            t = self.lr
            x = state.x - t * g_hat
            f = objective.fun(x)
        else:
            t0 = 2.0 * state.extra.get("step", 1.0 / max(float(np.linalg.norm(g_hat)), 1e-300))
            t, f = loss_only_backtracking(objective, state.x, state.f, g_hat, est.slope, t0)
            x = state.x - t * g_hat
        self.record.append((est.seed, est.coef, t))
        return self._state(objective, x, f, {"step": t})

    def extra_result(self, state: State) -> dict:
        return {"zo_record": list(self.record),
                "zo_options": {"K": self.K, "mu": self.mu, "lr": self.lr, "kind": self.kind,
                               "true_grad": self.true_grad}}
