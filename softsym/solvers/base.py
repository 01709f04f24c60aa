"""The solver protocol and the one driver loop every solver shares.

A solver is ``init`` / ``step`` (as optimistix does): the driver owns termination (gradient
norm test, iteration cap), callbacks, counters, failure reporting and the ``OptimizeResult``.
Solvers keep nothing between runs: everything a run needs lives in its typed state (a
dataclass extending :class:`State`), created by ``init`` and replaced by every ``step``; the
solver instance holds only its validated options, so running it twice gives the same iterates.
A new solver is one small file with a class registered by :func:`register`.

Stopping rule (:func:`run`): success when

    ||grad L(x)|| <= max(tol ||grad L(x0)||, gtol_abs)

The relative test alone cannot be met when ``||grad L(x0)||`` is itself rounding noise (a
start at the minimizer, a restart from a converged point); the absolute floor ``gtol_abs``
covers that case.  Its default (:func:`gradient_floor`) is the size of a gradient that is
rounding noise:

    GTOL_FACTOR * eps * sqrt(d) * max(1, |L(x)|) * grad_unit

``eps max(1, |L|)`` is the absolute rounding of the loss scale (losses of order one and
below are computed to absolute, not relative, accuracy: the terms that cancel at a
minimizer are of order one), ``sqrt(d)`` turns a per-coordinate error into a norm, and
``grad_unit`` (the objective's gradient rounding scale in units of ``x``:
``max_i ||A_i||`` for the normalized family, see
:attr:`softsym.problems.normalized.NormalizedObjective.grad_unit`; 1 for objectives that do
not define it) makes the floor scale with the data like the gradient does: with ``A``
scaled by ``1e-160`` the floor shrinks by the same factor and a start there is not called
stationary.  ``GTOL_FACTOR = 16`` comes from the gradient norms at planted minimizers of every
normalized member (n = 400, d = 6 and n = 20000, d = 16), measured in units of the floor's
scale ``eps sqrt(d) max(1, |L|) grad_unit``: below 0.3 for softmax, softmax_xent, exp, cosh and
sinh, 1 to 16 for rescaled_exp and rescaled_cosh.  The floor is a scale, not a bound on the
rounding error of the computed gradient: sums over n rows with cancellation (the normalizer
``alpha = sum_i sinh(u_i)`` of rescaled_sinh cancels heavily) and ill-conditioned Hessians
make that error larger, up to 1e4 units for rescaled_sinh at n = 4000.  A floor raised to cover
it would stop well-scaled problems short of ``tol`` (the first Newton step on a softmax
instance, n = 1200, d = 6, from 0, lands at 24 units, one cheap quadratic step above rounding
level).  Those starts are covered instead by the Newton-type solvers' rounding-level stop
(:func:`softsym.solvers.line_search.newton_stall`): an unshifted Newton step of relative size
at most ``256 eps`` that does not decrease the loss beyond rounding ends the run as converged,
with a message saying so.  ``gtol_abs=0`` turns both the floor and that stop off.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
from scipy.optimize import OptimizeResult

from .._validate import as_array, count, positive
from ..errors import OverflowDetected, ValidationError
from ..numerics import rows
from .line_search import STALL_ENABLED, rounding_floor
from .status import SolverFailure, Status

#: the factor of the default absolute gradient floor (see the module docstring)
GTOL_FACTOR = 16.0


@dataclass
class State:
    """The iterate every solver has: ``x``, ``f = L(x)``, ``g`` (the gradient the stopping rule tests).

    Solvers extend it with their own typed fields (a dataclass subclass).
    """

    x: np.ndarray
    f: float
    g: np.ndarray


#: a sum of squares at least this large lost nothing relevant to underflow (see :func:`norm`)
_SQUARES_SAFE = 1e-280


def norm(v: np.ndarray) -> float:
    """The Euclidean norm of ``v`` without underflow or overflow of the squares.

    Fast path: one dot product when ``sum v_i^2`` is finite and at least ``_SQUARES_SAFE``
    (then every underflowed square is below ``2.3e-308``, at most ``size * 2.3e-308`` in all,
    under ``size * 1e-27`` relative); otherwise the entries are scaled by ``max |v_i|`` first.
    """
    v = np.asarray(v, dtype=np.float64)
    if v.ndim == 1:
        s = float(np.dot(v, v))
        if _SQUARES_SAFE <= s < math.inf:
            return math.sqrt(s)
    m = float(np.max(np.abs(v))) if v.size else 0.0
    if m == 0.0 or not math.isfinite(m):
        return m
    return m * float(np.linalg.norm(v / m))


def gradient_floor(objective, f: float) -> float:
    """The default absolute gradient floor at loss ``f`` (see the module docstring)."""
    unit = float(getattr(objective, "grad_unit", 1.0))
    return GTOL_FACTOR * float(np.finfo(float).eps) * math.sqrt(objective.d) * max(1.0, abs(float(f))) * unit


#: family -> method name -> solver class
SOLVERS: dict[str, dict[str, type["Solver"]]] = {}


def register(cls: type["Solver"]) -> type["Solver"]:
    """Class decorator: make ``cls`` available as ``softsym.minimize(problem, method=cls.name)``
    for problems of the families in ``cls.families``."""
    for family in cls.families:
        SOLVERS.setdefault(family, {})[cls.name] = cls
    return cls


def solver_class(family: str, method: str) -> type["Solver"]:
    """The solver registered as ``method`` for ``family``; ``ValidationError`` listing the choices."""
    methods = SOLVERS.get(family, {})
    if not isinstance(method, str) or method not in methods:
        raise ValidationError(f"unknown method {method!r} for the {family} family; available: "
                              f"{', '.join(sorted(methods)) or 'none'}")
    return methods[method]


def make_solver(family: str, method: str, options: dict[str, Any]) -> "Solver":
    """The solver ``method`` for ``family`` built with ``options``; unknown options are a
    ``ValidationError`` naming them and the known ones (never a ``TypeError``)."""
    cls = solver_class(family, method)
    params = inspect.signature(cls).parameters
    known = sorted(k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValidationError(f"method {method!r} ({family} family) got unknown option(s) {', '.join(unknown)}; "
                              f"known: {', '.join(known) or 'none'}")
    return cls(**options)


class Solver:
    """Base class: subclasses set ``name`` and implement ``step`` (and optionally ``init``).

    ``families`` names the problem families whose objectives the solver can drive.
    """

    name: ClassVar[str]
    families: ClassVar[tuple[str, ...]] = ("normalized",)

    def init(self, objective, x0: np.ndarray) -> State:
        f, g = objective.fun_and_jac(x0)
        return State(x=x0, f=f, g=g)

    def step(self, objective, state: State) -> State:  # pragma: no cover - abstract
        raise NotImplementedError

    def converged(self, state: State) -> str | None:
        """A solver's own convergence test next to the driver's gradient test: a message when met."""
        return None

    def extra_result(self, state: State) -> dict[str, Any]:
        """Solver-specific fields added to the result."""
        return {}

    def assess(self, objective, state: State, status: int) -> dict[str, Any]:
        """What is known about the final iterate (fields added to the result).  A solver may
        return ``status`` and ``message`` to overrule a converged status (e.g. ``SADDLE``)."""
        return {}


def _all_finite(v: np.ndarray) -> bool:
    v = np.asarray(v)
    if v.dtype != np.float64:
        v = v.astype(np.float64)
    return bool(rows.all_finite(np.ascontiguousarray(v).ravel()))


def _finite_state(st: State) -> bool:
    """Whether ``f``, ``g`` and ``x`` are finite (one pass each, no temporaries)."""
    return bool(math.isfinite(float(st.f)) and _all_finite(st.g) and _all_finite(st.x))


def run(solver: Solver, objective, x0, tol: float, maxiter: int,
        callback: Callable[[OptimizeResult], Any] | None = None, gtol_abs: float | None = None) -> OptimizeResult:
    """Drive ``solver`` from ``x0`` until ``||grad L(x)|| <= max(tol ||grad L(x0)||, gtol_abs)``.

    ``gtol_abs=None`` uses :func:`gradient_floor` at the current loss (see the module docstring);
    ``gtol_abs=0`` gives the purely relative test (and turns the Newton-type solvers' rounding-level
    stop, :func:`softsym.solvers.line_search.newton_stall`, off).
    """
    if gtol_abs is not None:
        gtol_abs = positive("gtol_abs", gtol_abs, allow_zero=True)
    token = STALL_ENABLED.set(gtol_abs is None or gtol_abs > 0)
    try:
        return _run(solver, objective, x0, tol, maxiter, callback, gtol_abs)
    finally:
        STALL_ENABLED.reset(token)


def _run(solver: Solver, objective, x0, tol: float, maxiter: int,
         callback: Callable[[OptimizeResult], Any] | None, gtol_abs: float | None) -> OptimizeResult:
    """:func:`run` after its stall switch is set."""
    tol = positive("tol", tol, allow_zero=True)
    maxiter = count("maxiter", maxiter)
    if callback is not None and not callable(callback):
        raise ValidationError(f"callback must be callable, got {type(callback).__name__}")
    x0 = as_array("x0", x0, 1, (objective.d,))
    nfev0, njev0, nhev0 = objective.nfev, objective.njev, objective.nhev
    counts = (nfev0, njev0, nhev0)
    t_start = time.perf_counter()
    history: dict[str, list[float]] = {"fun": [], "grad_norm": [], "time": []}

    def record(st: State) -> None:
        history["fun"].append(float(st.f))
        history["grad_norm"].append(norm(st.g))
        history["time"].append(time.perf_counter() - t_start)

    nit = 0
    try:
        state = solver.init(objective, x0)
    except OverflowDetected as exc:
        return _result(solver, objective, None, x0, 0, Status.OVERFLOW, f"overflow at x0: {exc}", history, counts, 1.0)
    except SolverFailure as exc:
        return _result(solver, objective, None, x0, 0, exc.status, f"at x0: {exc}", history, counts, 1.0)
    if not _finite_state(state):
        return _result(solver, objective, None, x0, 0, Status.OVERFLOW,
                       "overflow at x0: non-finite loss or gradient", history, counts, 1.0)
    record(state)
    g0 = history["grad_norm"][0]
    f0 = float(state.f)
    status, message = Status.MAXITER, f"maximum number of iterations ({maxiter}) reached"
    while True:
        gn = history["grad_norm"][-1]
        floor = gradient_floor(objective, state.f) if gtol_abs is None else gtol_abs
        if gn <= max(tol * g0, floor):
            if state.f > f0 + rounding(f0, objective):
                status, message = Status.LINE_SEARCH, (
                    f"stopped at a gradient norm {gn:.3g} but at a loss {state.f:.6g} above the start's "
                    f"{f0:.6g} (a step too large for the problem: reduce it)")
            elif gn <= tol * g0:
                status, message = Status.CONVERGED, f"relative gradient norm {gn / g0 if g0 else 0.0:.3g} <= tol {tol:.3g}"
            else:
                status, message = Status.CONVERGED, (f"gradient norm {gn:.3g} <= absolute floor {floor:.3g} "
                                                     "(rounding level of the gradient)")
            break
        own = solver.converged(state)
        if own is not None:
            status, message = Status.CONVERGED, own
            break
        if nit >= maxiter:
            break
        try:
            new = solver.step(objective, state)
        except SolverFailure as exc:
            status, message = exc.status, str(exc)
            break
        except OverflowDetected as exc:
            status, message = Status.OVERFLOW, str(exc)
            break
        if not _finite_state(new):
            status, message = Status.OVERFLOW, "non-finite iterate"
            break
        state = new
        nit += 1
        record(state)
        if callback is not None:
            try:
                callback(OptimizeResult(x=state.x.copy(), fun=state.f, jac=state.g.copy(), nit=nit))
            except StopIteration:
                status, message = Status.CALLBACK, "`callback` raised `StopIteration`"
                break
    rel = history["grad_norm"][-1] / g0 if g0 > 0 else 0.0
    try:
        verdict = dict(solver.assess(objective, state, status)) if state is not None else {}
    except OverflowDetected as exc:
        verdict = {"assessment": f"not assessed: {exc}"}
    if "status" in verdict:
        new_status, new_message = Status(verdict.pop("status")), verdict.pop("message")
        if status == Status.CONVERGED:
            status, message = new_status, new_message
    res = _result(solver, objective, state, x0, nit, status, message, history, counts, rel)
    res.update(verdict)
    return res


def rounding(f: float, objective) -> float:
    """The rounding floor of the loss ``f`` of ``objective`` (:func:`softsym.solvers.line_search.rounding_floor`)."""
    return rounding_floor(f, getattr(objective, "n", 1))


def _result(solver, objective, state, x0, nit, status: Status, message, history, counts, rel):
    x = state.x if state is not None else x0
    res = OptimizeResult(
        x=x.copy(), fun=state.f if state is not None else np.nan,
        jac=state.g.copy() if state is not None else np.full_like(x0, np.nan),
        nit=nit, nfev=objective.nfev - counts[0], njev=objective.njev - counts[1],
        nhev=objective.nhev - counts[2], success=status == Status.CONVERGED, status=int(status), message=message,
        method=solver.name, rel_grad_norm=rel, history=history,
    )
    if state is not None:
        res.update(solver.extra_result(state))
    return res
