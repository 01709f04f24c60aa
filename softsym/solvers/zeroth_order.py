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

from dataclasses import dataclass, field

import numpy as np

from .._validate import count, flag, positive
from ..errors import ValidationError
from ..estimators import zeroth_order as zo
from .base import Solver, State, register
from .line_search import loss_only


@dataclass
class ZOState(State):
    """Zeroth-order state: the run's direction-seed stream, the estimate at ``x`` (when ``g`` is
    the estimate), the last accepted step and the run's record ``[(seed, coef, step), ...]``.

    ``rng`` and ``record`` belong to one run: ``init`` creates them, steps pass them on.
    """

    rng: np.random.Generator | None = None
    est: tuple | None = None
    step: float | None = None
    record: list = field(default_factory=list)


@register
class ZerothOrderGD(Solver):
    """ZO gradient descent (``method="zo"``): options ``K, mu, lr, seed, kind, true_grad, block``.

    ``seed`` (int, Generator or None) seeds each run's direction stream: the same int gives the
    same iterates on every run of the same instance.
    """

    name = "zo"

    def __init__(self, K: int = 16, mu: float = 1e-5, lr: float | None = None, seed=0,
                 kind: str = "gaussian", true_grad: bool = True, block: int | None = None):
        self.K = count("K", K, 1)
        self.mu = positive("mu", mu)
        self.lr = None if lr is None else positive("lr", lr)
        self.kind = zo.check_kind(kind)
        if not isinstance(seed, np.random.Generator):
            zo.stream_seed(seed)  # validate now (a Generator is drawn from once per run)
        self.seed = seed
        self.true_grad = flag("true_grad", true_grad)
        self.block = None if block is None else count("block", block, 1)

    def _estimate(self, objective, x: np.ndarray, rng: np.random.Generator):
        return zo.estimate(objective, x, self.K, self.mu, self.kind, rng, self.block)

    def _state(self, objective, x, f, rng, step, record) -> ZOState:
        if self.true_grad:
            return ZOState(x=x, f=f, g=objective.jac(x), rng=rng, step=step, record=record)
        g_hat, est = self._estimate(objective, x, rng)
        return ZOState(x=x, f=f, g=g_hat, rng=rng, est=(g_hat, est), step=step, record=record)

    def init(self, objective, x0: np.ndarray) -> ZOState:
        if not isinstance(getattr(objective, "A", None), np.ndarray):
            raise ValidationError(f"method 'zo' needs an in-memory objective (numpy A), got {type(objective).__name__}; "
                                  "a Dask objective is not supported (use 'gd', 'newton' or 'approx-newton')")
        rng = np.random.default_rng(zo.stream_seed(self.seed))
        return self._state(objective, x0, objective.fun(x0), rng, None, [])

    def step(self, objective, state: ZOState) -> ZOState:
        g_hat, est = state.est if state.est is not None else self._estimate(objective, state.x, state.rng)
        if self.lr is not None:
            t = self.lr
            x = state.x - t * g_hat
            f = objective.fun(x)
        else:
            t0 = 2.0 * state.step if state.step is not None else 1.0 / max(float(np.linalg.norm(g_hat)), 1e-300)
            t, f = loss_only(objective, state.x, state.f, -g_hat, -est.slope, t0)
            x = state.x - t * g_hat
        new = self._state(objective, x, f, state.rng, t, state.record)
        new.record.append((est.seed, est.coef, t))  # the run's own list (see ZOState)
        return new

    def extra_result(self, state: ZOState) -> dict:
        return {"zo_record": list(state.record),
                "zo_options": {"K": self.K, "mu": self.mu, "lr": self.lr, "kind": self.kind,
                               "true_grad": self.true_grad}}
