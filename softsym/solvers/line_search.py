"""The one backtracking (Armijo) line search every solver uses, with one rounding floor.

A step ``t`` along a direction ``d`` from ``x`` (slope ``s = g.d < 0``) is accepted when

    L(x + t d) <= L(x) + c1 t s                              (Armijo's sufficient decrease)

and otherwise halved (``t <- shrink t``).  Near a minimizer the decrease ``c1 t s`` falls below
the rounding error of the loss and Armijo's test compares noise.  A trial whose loss is within
the rounding floor of ``L(x)`` is then judged by a caller-supplied test (``near_floor``) that
does not rely on the loss difference: the slope at the trial (Hager and Zhang's approximate
Wolfe condition, :func:`backtracking`), a smaller gradient (approximate Newton), or, for a
method that sees losses only, that the required decrease is itself below the floor and the loss
did not increase (:func:`loss_only`).

The rounding floor (:func:`rounding_floor`) of a loss ``f`` that is a sum of ``n`` terms is

    64 eps |f| sqrt(n)

Each term carries a relative rounding error of a few ``eps`` after the tens of floating-point
operations of a kernel (exp, log, the normalization), and the errors of ``n`` terms add up
like a random walk, ``sqrt(n)`` times one term's (the worst case, ``n eps``, is not reached by
the pairwise and blocked sums the kernels use).  The factor 64 covers the per-term operation
count with a margin; a floor too low only makes the fallback test rarer, one too high lets
the fallback accept steps whose loss increased by at most the floor.
"""

from __future__ import annotations

import contextvars
from typing import Any, Callable

import numpy as np

from ..errors import OverflowDetected
from .status import RoundingStall, SolverFailure, Status

#: the rounding floor's factor in ``ROUNDING_FACTOR * eps * |f| * sqrt(n)``
ROUNDING_FACTOR = 64.0
#: Armijo's sufficient-decrease constant
C1 = 1e-4
#: the step reduction per trial
SHRINK = 0.5
#: trials before the search gives up (2^-60 ~ 1e-18 of the first trial step)
MAX_TRIALS = 60
#: whether :func:`newton_stall` may stop a run (the driver turns it off for ``gtol_abs=0``, the
#: purely relative stopping test); a context variable, so concurrent runs do not interfere
STALL_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("softsym_stall_enabled", default=True)
#: a Newton step of norm at most ``STALL_FACTOR * eps * ||x||`` is at the rounding level of ``x``
STALL_FACTOR = 256.0


def rounding_floor(f: float, n_terms: int = 1) -> float:
    """``64 eps |f| sqrt(n_terms)``: changes of a loss ``f`` (a sum of ``n_terms`` terms) below this are rounding noise."""
    return ROUNDING_FACTOR * float(np.finfo(float).eps) * abs(float(f)) * float(np.sqrt(max(int(n_terms), 1)))


def _norm(v: np.ndarray) -> float:
    """The Euclidean norm without underflow of the squares (scaled by ``max |v_i|``)."""
    m = float(np.max(np.abs(v))) if np.size(v) else 0.0
    if m == 0.0 or not np.isfinite(m):
        return m
    return m * float(np.linalg.norm(np.asarray(v) / m))


def newton_stall(objective, x: np.ndarray, f: float, g: np.ndarray, d: np.ndarray,
                 n_terms: int | None = None) -> None:
    """Raise :class:`~softsym.solvers.status.RoundingStall` when the Newton step ``d`` at ``x``
    is at the rounding level of ``x`` and does not decrease the loss beyond rounding.

    A Newton step (unshifted Hessian) is the distance to the stationary point of the local
    quadratic model, whose error is of second order in ``||d||``.  When
    ``||d|| <= STALL_FACTOR eps ||x||`` (``STALL_FACTOR = 256``: a relative distance of 5.7e-14)
    ``x`` agrees with that point to the accuracy floating point can resolve for a problem of
    moderate conditioning (forward error = condition number times rounding), whatever the
    gradient norm says: its computed value is then rounding noise, amplified by cancellation in
    sums over the rows and, for ill-conditioned Hessians, by the conditioning.  The step is
    still tried once: if ``L(x + d)`` is below ``L(x)`` by more than the rounding floor
    (:func:`rounding_floor` of a sum of ``n_terms`` terms), the run goes on.  Otherwise ``x`` is
    reported as converged at rounding level, with the step's relative size and the gradient
    norm in the message.
    Only steps and gradients of full precision count: norms below ``tiny / eps`` (about 1e-292,
    where an underflowed gradient or Hessian says nothing about stationarity) never stop a run.
    Disabled (a no-op) inside a run with ``gtol_abs=0`` (:data:`STALL_ENABLED`).
    """
    if not STALL_ENABLED.get():
        return
    eps, tiny = float(np.finfo(float).eps), float(np.finfo(float).tiny)
    dn, xn, gn = _norm(d), _norm(x), _norm(g)
    # d and g must carry full precision (norms far from the subnormal range; an underflowed
    # gradient or Hessian says nothing about stationarity), and the step must be tiny
    if not (np.isfinite(dn) and min(dn, gn) >= tiny / eps and dn <= STALL_FACTOR * eps * xn):
        return
    n_terms = getattr(objective, "n", 1) if n_terms is None else n_terms
    try:
        ft = trial_loss(objective, x, 1.0, d)
    except OverflowDetected:
        return
    if ft < f - rounding_floor(f, n_terms):
        return
    raise RoundingStall(f"converged at rounding level: the Newton step has relative size {dn / xn if xn else 0.0:.2g} "
                        f"(at most {STALL_FACTOR:g} eps) and does not decrease the loss beyond rounding; the gradient "
                        f"norm {gn:.3g} is rounding noise at this x")


def trial_loss(objective, x: np.ndarray, t: float, d: np.ndarray) -> float:
    """``objective.fun(x + t d)``, ``inf`` when the trial point itself overflows (a huge first step)."""
    with np.errstate(over="ignore", invalid="ignore"):
        xt = x + t * d
    if not np.all(np.isfinite(xt)):
        return np.inf
    return objective.fun(xt)


def armijo(evaluate: Callable[[float], tuple[float, Any]], f0: float, slope: float, t0: float = 1.0, *,
           floor: float = 0.0, near_floor: Callable[[float, float, Any], bool] | None = None,
           c1: float = C1, shrink: float = SHRINK, max_trials: int = MAX_TRIALS) -> tuple[float, float, Any]:
    """Backtracking from ``t0``: the first ``t`` with Armijo's decrease, or -- when the trial loss is
    within ``floor`` of ``f0`` -- with ``near_floor(t, ft, payload)``; returns ``(t, ft, payload)``.

    ``evaluate(t)`` returns ``(L(x + t d), payload)`` (anything the caller wants back for the
    accepted trial); an ``OverflowDetected`` there counts as an infinite loss (the step is
    shortened).  ``slope`` is ``g.d``: a non-negative slope raises ``SolverFailure`` (status 2,
    not a descent direction), a non-finite one ``SolverFailure`` (status 3).
    """
    if not np.isfinite(slope) or not np.isfinite(t0):
        raise SolverFailure(Status.OVERFLOW, f"non-finite search direction (g.d = {slope:.3g}, first step {t0:.3g})")
    if not slope < 0:
        raise SolverFailure(Status.LINE_SEARCH, f"not a descent direction (g.d = {slope:.3g})")
    t = t0
    for _ in range(max_trials):
        try:
            ft, payload = evaluate(t)
        except OverflowDetected:
            ft, payload = np.inf, None
        if ft <= f0 + c1 * t * slope:
            return t, ft, payload
        if near_floor is not None and ft <= f0 + floor and near_floor(t, ft, payload):
            return t, ft, payload
        t *= shrink
    raise SolverFailure(Status.LINE_SEARCH, f"line search found no decrease after {max_trials} trials "
                                            f"(loss {f0:.6g}); the gradient may be inaccurate at this precision")


def backtracking(objective, x: np.ndarray, f: float, g: np.ndarray, d: np.ndarray, t0: float = 1.0,
                 n_terms: int | None = None) -> tuple[float, float]:
    """Armijo backtracking along ``d`` on ``objective.fun``; returns ``(t, L(x + t d))``.

    Near the floor a trial is accepted when ``g(x + t d).d <= 0.8 |g.d|`` (it has not overshot
    the one-dimensional minimizer); the trial gradient is memoized by the objective.  ``n_terms``
    defaults to ``objective.n`` (1 when absent).
    """
    slope = float(g @ d)
    n_terms = getattr(objective, "n", 1) if n_terms is None else n_terms

    def evaluate(t: float) -> tuple[float, None]:
        return trial_loss(objective, x, t, d), None

    def near_floor(t: float, ft: float, _: Any) -> bool:
        return float(objective.jac(x + t * d) @ d) <= -0.8 * slope

    t, ft, _ = armijo(evaluate, f, slope, t0, floor=rounding_floor(f, n_terms), near_floor=near_floor)
    return t, ft


def loss_only(objective, x: np.ndarray, f: float, d: np.ndarray, slope: float, t0: float,
              n_terms: int | None = None) -> tuple[float, float]:
    """Armijo backtracking along ``d`` from loss values only (``slope`` estimates ``g.d < 0``).

    Near the floor a trial is accepted when the required decrease ``c1 t |slope|`` is itself
    below the floor and the loss did not increase (a forward-only method may not consult the
    gradient).  Returns ``(t, L(x + t d))``.
    """
    n_terms = getattr(objective, "n", 1) if n_terms is None else n_terms
    floor = rounding_floor(f, n_terms)

    def evaluate(t: float) -> tuple[float, None]:
        return trial_loss(objective, x, t, d), None

    def near_floor(t: float, ft: float, _: Any) -> bool:
        return C1 * t * -slope < floor and ft <= f

    try:
        t, ft, _ = armijo(evaluate, f, slope, t0, floor=floor, near_floor=near_floor)
    except SolverFailure as exc:
        if exc.status == Status.LINE_SEARCH and slope < 0:
            raise SolverFailure(Status.LINE_SEARCH, f"{exc}: a loss-only estimate is at the precision limit of "
                                                    "its finite differences") from None
        raise
    return t, ft
