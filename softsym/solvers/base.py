"""The solver protocol and the one driver loop every solver shares.

A solver is ``init`` / ``step`` (as optimistix does): the driver owns termination (relative
gradient norm, iteration cap), callbacks, counters, failure reporting and the
``OptimizeResult``.  A new solver is one small file with a class registered by
:func:`register`.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
from scipy.optimize import OptimizeResult

from .._validate import as_array, count, positive
from ..errors import OverflowDetected, ValidationError

# status codes (0 and 1 follow scipy); 5: the gradient test passed at a point that is not a minimum
SUCCESS, MAXITER, LINE_SEARCH, OVERFLOW, INDEFINITE, SADDLE, CALLBACK = 0, 1, 2, 3, 4, 5, 99


class SolverFailure(Exception):
    """Raised by a step that cannot continue; becomes ``success=False`` with this status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class State:
    """Iterate shared by all solvers; solvers keep their own extras in ``extra``."""

    x: np.ndarray
    f: float
    g: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


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

    def extra_result(self, state: State) -> dict[str, Any]:
        """Solver-specific fields added to the result."""
        return {}

    def assess(self, objective, state: State, status: int) -> dict[str, Any]:
        """What is known about the final iterate (fields added to the result).  A solver may
        return ``status`` and ``message`` to overrule a converged status (e.g. ``SADDLE``)."""
        return {}


def backtracking(objective, x: np.ndarray, f: float, g: np.ndarray, d: np.ndarray, t0: float = 1.0,
                 c1: float = 1e-4, shrink: float = 0.5, max_halvings: int = 60) -> tuple[float, float]:
    """Armijo backtracking along ``d``: returns (t, f(x + t d)).

    Near a minimizer the decrease c1 t g.d falls below the rounding error of the loss and
    Armijo's test becomes noise.  A step whose loss is within rounding of f(x) is then judged
    by the slope instead (Hager & Zhang's approximate Wolfe condition): it is accepted when
    g(x + t d).d <= 0.8 |g.d|, i.e. it has not overshot the one-dimensional minimizer.  The
    trial gradient is memoized by the objective, so this costs nothing extra.
    """
    slope = float(g @ d)
    if not slope < 0:
        raise SolverFailure(LINE_SEARCH, f"not a descent direction (g.d = {slope:.3g})")
    rounding = 64 * np.finfo(float).eps * abs(f)
    t = t0
    for _ in range(max_halvings):
        xt = x + t * d
        try:
            ft = objective.fun(xt)
        except OverflowDetected:
            ft = np.inf
        if ft <= f + c1 * t * slope:
            return t, ft
        if ft <= f + rounding and float(objective.jac(xt) @ d) <= -0.8 * slope:
            return t, ft
        t *= shrink
    raise SolverFailure(LINE_SEARCH, f"line search found no decrease after {max_halvings} halvings "
                                     f"(loss {f:.6g}); the gradient may be inaccurate at this precision")


def run(solver: Solver, objective, x0, tol: float, maxiter: int,
        callback: Callable[[OptimizeResult], Any] | None = None) -> OptimizeResult:
    """Drive ``solver`` from ``x0`` until ||grad L(x)|| <= tol ||grad L(x0)||."""
    tol = positive("tol", tol, allow_zero=True)
    maxiter = count("maxiter", maxiter)
    x0 = as_array("x0", x0, 1, (objective.d,))
    nfev0, njev0, nhev0 = objective.nfev, objective.njev, objective.nhev
    t_start = time.perf_counter()
    history: dict[str, list[float]] = {"fun": [], "grad_norm": [], "time": []}

    def record(st: State) -> None:
        history["fun"].append(st.f)
        history["grad_norm"].append(float(np.linalg.norm(st.g)))
        history["time"].append(time.perf_counter() - t_start)

    nit = 0
    try:
        state = solver.init(objective, x0)
    except OverflowDetected as exc:
        return _result(solver, objective, None, x0, 0, False, OVERFLOW, f"overflow at x0: {exc}",
                       history, (nfev0, njev0, nhev0), 1.0)
    record(state)
    g0 = history["grad_norm"][0]
    status, message = MAXITER, f"maximum number of iterations ({maxiter}) reached"
    while True:
        rel = history["grad_norm"][-1] / g0 if g0 > 0 else 0.0
        if rel <= tol:
            status, message = SUCCESS, f"relative gradient norm {rel:.3g} <= tol {tol:.3g}"
            break
        if nit >= maxiter:
            break
        try:
            new = solver.step(objective, state)
        except SolverFailure as exc:
            status, message = exc.status, str(exc)
            break
        except OverflowDetected as exc:
            status, message = OVERFLOW, str(exc)
            break
        if not (np.isfinite(new.f) and np.all(np.isfinite(new.g)) and np.all(np.isfinite(new.x))):
            status, message = OVERFLOW, "non-finite iterate"
            break
        state = new
        nit += 1
        record(state)
        if callback is not None:
            try:
                callback(OptimizeResult(x=state.x.copy(), fun=state.f, jac=state.g.copy(), nit=nit))
            except StopIteration:
                status, message = CALLBACK, "`callback` raised `StopIteration`"
                break
    rel = history["grad_norm"][-1] / g0 if g0 > 0 else 0.0
    try:
        verdict = dict(solver.assess(objective, state, status))
    except OverflowDetected as exc:
        verdict = {"assessment": f"not assessed: {exc}"}
    if "status" in verdict:
        new_status, new_message = verdict.pop("status"), verdict.pop("message")
        if status == SUCCESS:
            status, message = new_status, new_message
    res = _result(solver, objective, state, x0, nit, status == SUCCESS, status, message, history,
                  (nfev0, njev0, nhev0), rel)
    res.update(verdict)
    return res


def _result(solver, objective, state, x0, nit, success, status, message, history, counts, rel):
    x = state.x if state is not None else x0
    res = OptimizeResult(
        x=x.copy(), fun=state.f if state is not None else np.nan,
        jac=state.g.copy() if state is not None else np.full_like(x0, np.nan),
        nit=nit, nfev=objective.nfev - counts[0], njev=objective.njev - counts[1],
        nhev=objective.nhev - counts[2], success=bool(success), status=status, message=message,
        method=solver.name, rel_grad_norm=rel, history=history,
    )
    if state is not None:
        res.update(solver.extra_result(state))
    return res
