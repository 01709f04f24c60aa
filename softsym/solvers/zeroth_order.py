"""Zeroth-order gradient descent: ``x <- x - t g_hat`` with the two-point estimator of ``softsym.estimators.zeroth_order``.

Each iteration costs ``2K`` loss evaluations (one n x d x K GEMM and one fused kernel call)
plus the line-search trials.  Step rule:

* ``lr`` given: fixed step (ZO-SGD).  docs/math.md §2's ``lr = K / ((d + K) l_smooth)`` makes the
  expected decrease ``K / (2 (d + K) l_smooth) ||grad L||^2`` per iteration, i.e. about
  ``(d + K) / K`` times more iterations than gradient descent with step ``1/l_smooth``.
  No safeguard: a too large ``lr`` may increase the loss or overflow (status 3).
* ``lr="certified"``: the fixed step ``K / ((d + K) smooth)`` with ``smooth`` the member's
  derived (certified) gradient-Lipschitz bound (``generated/<member>_bounds.py``) at
  ``R_A = ||A||_2`` (from ``A^T A`` once, at the start), the data's ``||b||`` (or the simplex),
  ``w_max`` and ``||x|| <= R_x`` (option ``R_x``, default ``max(1, 2 ||x0||)``).  With
  Gaussian directions and ``mu -> 0`` this step gives
  ``E L(x+) <= L(x) - (d + K - 1) / (2 (d + K)) lr ||grad L||^2`` while the iterates stay in
  the region, so on an ``l``-strongly convex loss the expected gap contracts by
  ``1 - K (d + K - 1) l / ((d + K)^2 smooth)`` per iteration (``softsym.theory.experiments``
  measures it).  Members without derived bounds raise ``ValidationError``; the step and
  ``smooth`` are reported in ``zo_options``.
* default (``lr=None``): Armijo backtracking along ``-g_hat`` using loss values only.  The
  slope of ``L`` along ``-g_hat`` is ``-g_hat^T grad L = -(1/K) sum_k delta_k^2 + O(mu^2)``,
  known from the same ``2K`` losses, so the sufficient-decrease test is the usual one and the
  loss never increases.  Each search starts from twice the previous accepted step.
  (The certified step is opt-in: its ``smooth`` is an upper bound, 3-10x above the
  true curvature, and the search adapts to the local one.)

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

import math
from dataclasses import dataclass, field

import numpy as np

from .._validate import count, flag, positive
from ..errors import ValidationError
from ..estimators import zeroth_order as zo
from ..registry import generated_module, member
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
    lr: float | None = None       # the fixed step of this run (None: line search)
    smooth: float | None = None   # the certified smoothness behind it (lr="certified")


def certified_smoothness(objective, R_x: float) -> float:
    """The derived gradient-Lipschitz bound of ``objective``'s member at its data and ``||x|| <= R_x``.

    ``R_A = ||A||_2`` (one ``A^T A``), ``||b||`` or the simplex, ``w_max = max |w|``.  Raises
    ``ValidationError`` when the member has no derived bounds or the bound is not finite.
    """
    R_x = positive("R_x", R_x)
    name = getattr(objective, "name", None)
    try:
        mod = generated_module(member(name, family="normalized"), "_bounds")
    except Exception as exc:  # noqa: BLE001 - unknown member, user member without bounds
        raise ValidationError(f"lr='certified' needs a member with derived bounds, {name!r} has none") from exc
    A, b, w = np.asarray(objective.A), np.asarray(objective.b), np.asarray(objective.w)
    R_A = max(float(np.sqrt(max(np.linalg.eigvalsh(A.T @ A)[-1], 0.0))), np.finfo(float).tiny)
    w_max = float(np.max(np.abs(w)))
    if np.all(b >= 0) and abs(float(b.sum()) - 1.0) <= 1e-12:
        smooth = mod.FUNCTIONS[("simplex", "smooth")](R_A, R_x, A.shape[0], w_max)
    else:
        b_norm = max(float(np.linalg.norm(b)), np.finfo(float).tiny)
        smooth = mod.FUNCTIONS[("ball", "smooth")](R_A, R_x, A.shape[0], b_norm, w_max)
    if not (math.isfinite(smooth) and smooth > 0):
        raise ValidationError(f"lr='certified': no finite smoothness bound for {name!r} at R_A = {R_A:.4g}, "
                              f"R_x = {R_x:.4g}")
    return float(smooth)


@register
class ZerothOrderGD(Solver):
    """ZO gradient descent (``method="zo"``): options ``K, mu, lr, R_x, seed, kind, true_grad, block``.

    ``seed`` (int, Generator or None) seeds each run's direction stream: the same int gives the
    same iterates on every run of the same instance.  ``lr="certified"`` takes the fixed step
    K / ((d + K) l) with l the derived smoothness bound at the data and ``||x|| <= R_x`` (default
    ``max(1, 2 ||x0||)``).
    """

    name = "zo"

    def __init__(self, K: int = 16, mu: float = 1e-5, lr: float | str | None = None, seed=0,
                 kind: str = "gaussian", true_grad: bool = True, block: int | None = None,
                 R_x: float | None = None):
        self.K = count("K", K, 1)
        self.mu = positive("mu", mu)
        self.certified = isinstance(lr, str)
        if self.certified and lr != "certified":
            raise ValidationError(f"lr must be a positive number, 'certified' or None, got {lr!r}")
        self.lr = None if lr is None or self.certified else positive("lr", lr)
        self.R_x = None if R_x is None else positive("R_x", R_x)
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
            raise ValidationError(f"method 'zo' needs A in memory (a NumPy array), got {type(objective).__name__}; "
                                  "a Dask objective is not supported (use 'gd', 'newton' or 'approx-newton')")
        zo.check_size(objective.A.shape[0], objective.d, self.K, self.block)
        rng = np.random.default_rng(zo.stream_seed(self.seed))
        state = self._state(objective, x0, objective.fun(x0), rng, None, [])
        state.lr = self.lr
        if self.certified:
            R_x = self.R_x if self.R_x is not None else max(1.0, 2.0 * float(np.linalg.norm(x0)))
            state.smooth = certified_smoothness(objective, R_x)
            state.lr = self.K / ((objective.d + self.K) * state.smooth)
        return state

    def step(self, objective, state: ZOState) -> ZOState:
        g_hat, est = state.est if state.est is not None else self._estimate(objective, state.x, state.rng)
        if state.lr is not None:
            t = state.lr
            x = state.x - t * g_hat
            f = objective.fun(x)
        else:
            t0 = 2.0 * state.step if state.step is not None else 1.0 / max(float(np.linalg.norm(g_hat)), 1e-300)
            t, f = loss_only(objective, state.x, state.f, -g_hat, -est.slope, t0)
            x = state.x - t * g_hat
        new = self._state(objective, x, f, state.rng, t, state.record)
        new.lr, new.smooth = state.lr, state.smooth
        new.record.append((est.seed, est.coef, t))  # the run's own list (see ZOState)
        return new

    def extra_result(self, state: ZOState) -> dict:
        return {"zo_record": list(state.record),
                "zo_options": {"K": self.K, "mu": self.mu, "lr": state.lr, "kind": self.kind,
                               "true_grad": self.true_grad, "certified_smooth": state.smooth}}
