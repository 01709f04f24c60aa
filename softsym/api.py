"""The entry points: :func:`objective` binds data to a member, :func:`minimize` solves a problem,
:func:`minimize_multistart` searches an attention problem for its global minimum."""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np
from scipy.optimize import OptimizeResult

from ._validate import callback as check_callback
from ._validate import count, flag, positive
from .errors import ValidationError
from .problems.normalized import NormalizedObjective
from .solvers import DEFAULT_MAXITER, DEFAULT_METHOD, make_solver, run
from .solvers.variable_projection import screen_reduced
from .theory.attention import attention_guarantee
from .theory.start import start_condition
from .theory.two_layer import certified_step, training_report

#: the relative gradient tolerance when none is given, per family
DEFAULT_TOL = {"normalized": 1e-10, "attention": 1e-8, "two_layer": 1e-8}


def objective(name: str, A, b, w=None) -> NormalizedObjective:
    """Bind data to normalized member ``name`` (see :func:`softsym.catalogue`).

    ``A`` is (n, d), ``b`` and ``w`` are (n,); ``w`` defaults to zero (no regularizer
    1/2 ||W A x||^2).  Returns a :class:`~softsym.problems.normalized.NormalizedObjective`; when ``A`` is a Dask array the result is a
    :class:`softsym.backends.dask.DaskObjective` with the same interface (chunked evaluation).
    """
    dask_array = sys.modules.get("dask.array")  # a Dask array implies dask.array is imported
    if dask_array is not None and isinstance(A, dask_array.Array):
        from .backends.dask import DaskObjective

        return DaskObjective(name, A, b, w)
    return NormalizedObjective(name, A, b, w)


def minimize(problem, x0=None, method: str | None = None, tol: float | None = None, maxiter: int | None = None,
             callback: Callable[[OptimizeResult], Any] | None = None, certify_start: bool = True,
             gtol_abs: float | None = None, **options: Any) -> OptimizeResult:
    """Minimize ``problem`` from ``x0`` with ``method``; one entry point for every family.

    ``problem`` is a normalized-family objective (:func:`objective`, also on Dask arrays), an
    :class:`~softsym.problems.attention.AttentionRegression` (``x0``: ``(X0, Y0)``, either may be
    None, or the joint vector) or a :class:`~softsym.problems.two_layer.TwoLayerRegression`
    (``x0``: ``W0`` or ``vec(W0)``, default the network's ``W``; the result carries ``W``).  ``method`` defaults to the family's (``DEFAULT_METHOD``); the
    registered methods per family are in ``softsym.solvers.SOLVERS``.  ``x0`` defaults to 0.

    Stops with success when ||grad L(x)|| <= max(tol * ||grad L(x0)||, gtol_abs) (relative
    gradient norm, ``tol`` defaulting per family (``DEFAULT_TOL``), next to an absolute floor:
    ``gtol_abs=None`` is the gradient's rounding level
    ``16 eps sqrt(d) max(1, |L(x)|) grad_unit``, see :mod:`softsym.solvers.base`), or after
    ``maxiter`` iterations.  Returns a
    ``scipy.optimize.OptimizeResult`` with ``x, fun, jac, nit, nfev, njev, nhev, success, status,
    message`` plus ``rel_grad_norm`` and ``history`` (loss, gradient norm and elapsed time per
    iteration); attention results also carry ``X`` and ``Y``.  Status: 0 converged, 1 iteration
    cap, 2 line search/non-descent, 3 overflow, 4 indefinite Hessian, 5 converged to a point that is
    not a minimum (attention: lambda_min of the reduced Hessian below -psd_tol), 99 callback stopped.
    Attention results also carry ``lambda_min``, ``is_minimum``, ``guarantee`` ("global": the derived
    bounds certify the region and X lies in it; "local": a minimum without that certificate; "none")
    and ``certificate`` (see :func:`softsym.theory.attention.attention_guarantee`).
    Two-layer results (method ``gd``) carry ``guarantee`` ("global": the GD theorem's condition
    holds for the network, data and ``W0``, the step is at most the certified one and the run
    stayed in the certified region; "none" otherwise, ``guarantee_message`` says why),
    ``certificate`` and ``region`` (see :func:`softsym.theory.two_layer.training_report`);
    ``certify=False`` skips the tracking and the certificate, ``lr="certified"`` trains with the
    derived step ``1/smooth`` (``ValidationError`` saying why when there is none).
    ``callback(intermediate_result)`` is called after every iteration; raising
    ``StopIteration`` stops cleanly.  Extra keyword options go to the method.
    With ``certify_start`` (normalized family) the result also reports ``start_certified`` and
    ``start_condition``: whether the derived bounds certify the Newton theory's start condition
    ``M ||x0 - x*|| <= 0.1 l`` (see :func:`softsym.theory.start.start_condition`).
    """
    family = getattr(problem, "family", None)
    if family not in DEFAULT_METHOD:
        raise ValidationError(f"minimize needs a problem of one of the families {sorted(DEFAULT_METHOD)}, "
                              f"got {type(problem).__name__}")
    method = DEFAULT_METHOD[family] if method is None else method
    callback = check_callback("callback", callback)
    certify_start = flag("certify_start", certify_start)
    if family == "normalized":
        obj = problem
        x0 = np.zeros(obj.d) if x0 is None else x0
    else:
        obj = problem.objective()
        x0 = problem.start(x0)
    step_cert = None
    if family == "two_layer" and isinstance(options.get("lr"), str) and options["lr"] == "certified":
        step_cert = certified_step(problem, x0)
        options = {**options, "lr": step_cert.lr}
    solver = make_solver(family, method, options)
    tol = DEFAULT_TOL[family] if tol is None else tol
    maxiter = DEFAULT_MAXITER.get(method, 1000) if maxiter is None else maxiter
    res = run(solver, obj, x0, tol, maxiter, callback, gtol_abs)
    if hasattr(obj, "result_fields"):
        res.update(obj.result_fields(res.x))
    if certify_start and family == "normalized":
        grad0 = res.history["grad_norm"][0] if res.history["grad_norm"] else None
        res.update(start_condition(obj, x0, grad0))
    if family == "attention":
        res.update(attention_guarantee(problem, res))
    if family == "two_layer":
        if step_cert is not None:
            res["lr_rule"] = "certified: 1/smooth of the derived constants"
        res.update(training_report(problem, res, x0, step_cert))
    return res


#: a screened start whose relative loss is below this is finished at once (it is in a fitting basin
#: as a rule; finishing it first saves screening the rest when it fits)
PROMOTE_LOSS = 1e-4


def minimize_multistart(problem, x0=None, starts: int = 64, seed: int = 0, scale: float = 1.0,
                        screen_iters: int = 40, keep: int = 4, hops: int = 64, hop: float = 1.5, fit_tol: float = 1e-10,
                        method: str | None = None, maxiter: int | None = None, **kwargs: Any) -> OptimizeResult:
    """Attention: multi-start with screening on the reduced loss and certified selection (a globalization).

    Candidates: the X part of ``x0`` (default X0 = 0) and ``starts - 1`` random ``X0`` (i.i.d.
    Gaussian entries scaled to ``||X0||_F = scale``, seeded by ``seed``).  Screening: every
    candidate runs ``screen_iters`` L-BFGS iterations on phi(X) = min_Y L(X, Y)
    (:func:`softsym.solvers.variable_projection.screen_reduced`; each evaluation costs two
    O(n^2 d) sweeps, a Newton iteration many more).  A candidate whose screened relative loss
    ``phi / ||B||_F^2`` is below ``PROMOTE_LOSS`` is finished at once; if no run fits by the end
    of screening, the ``keep`` candidates with the lowest screened loss not yet finished are
    finished.  If none of those fits either, monotonic basin hopping follows: ``hops`` times, the
    lowest screened point so far is kicked by a random Gaussian E with ``||E||_F = hop`` and
    screened (promoted as above; the kicked point becomes the base when its screened loss is
    lower), and the ``keep`` lowest of the kicked candidates are finished at the end.

    Finishing is ``softsym.minimize`` from the screened (X, Y*(X)) with ``method``, ``maxiter``
    and ``kwargs``; the search stops at the first finished run that is reported a minimum
    (``success``) with relative loss below ``fit_tol``.  Returns the finished run with the lowest
    loss among those reported as minima, otherwise the lowest loss overall, so ``success``,
    ``is_minimum`` and ``guarantee`` are those of that run.  The result adds ``starts_used``
    (candidates screened, kicks included), ``screen_losses`` (relative loss of every screened
    candidate, in order), ``hops_used`` (kicks screened), ``screen_iterations`` and
    ``screen_evaluations`` (L-BFGS iterations and phi-and-gradient evaluations of the screening),
    ``finished`` (runs finished) and ``iterations_total`` (screening plus solver iterations).
    Bad options raise ``ValidationError`` naming the option.
    """
    if getattr(problem, "family", None) != "attention":
        raise ValidationError("minimize_multistart needs an attention problem")
    starts = count("starts", starts, 1)
    screen_iters = count("screen_iters", screen_iters, 1)
    keep = count("keep", keep, 1)
    hops = count("hops", hops, 0)
    hop = positive("hop", hop)
    scale = positive("scale", scale)
    fit_tol = positive("fit_tol", fit_tol)
    rng = np.random.default_rng(count("seed", seed))
    k = problem.d
    first = problem.start(x0)[:k * k].reshape(k, k)
    b2 = max(float(np.sum(problem.B * problem.B)), np.finfo(float).tiny)
    screened, finals, done = [], [], set()
    totals = {"screen_it": 0, "screen_ev": 0, "solve_it": 0}

    def finish(i: int) -> OptimizeResult:
        sc = screened[i]
        res = minimize(problem, (sc.X, sc.Y), method=method, maxiter=maxiter, **kwargs)
        totals["solve_it"] += res.nit
        finals.append(res)
        done.add(i)
        return res

    def fits(res: OptimizeResult) -> bool:
        return bool(res.success) and res.fun / b2 < fit_tol

    def screen(X0: np.ndarray) -> bool:
        """Screen from X0; finish at once when promising; True when that run fits."""
        sc = screen_reduced(problem, X0, screen_iters)
        totals["screen_it"] += sc.nit
        totals["screen_ev"] += sc.nfev
        screened.append(sc)
        return sc.phi / b2 < PROMOTE_LOSS and fits(finish(len(screened) - 1))

    def finish_best(among: range) -> bool:
        """Finish the ``keep`` lowest screened candidates in ``among`` not yet finished; True on a fit."""
        order = sorted((j for j in among if j not in done), key=lambda j: screened[j].phi)
        return any(fits(finish(i)) for i in order[:keep])

    def random_start() -> np.ndarray:
        X0 = rng.standard_normal((k, k))
        return X0 * (scale / np.linalg.norm(X0))

    found = any(screen(first if i == 0 else random_start()) for i in range(starts))
    found = found or finish_best(range(len(screened)))
    if not found and hops:
        # monotonic basin hopping: kick the lowest screened point by ||E||_F = hop, keep the kick's
        # screened point when it is lower
        first_hop = len(screened)
        base = min(screened, key=lambda sc: sc.phi)
        for _ in range(hops):
            X0 = rng.standard_normal((k, k))
            if screen(base.X + X0 * (hop / np.linalg.norm(X0))):
                found = True
                break
            if screened[-1].phi < base.phi:
                base = screened[-1]
        found = found or finish_best(range(first_hop, len(screened)))
    minima = [r for r in finals if r.success]
    best = min(minima or finals, key=lambda r: r.fun)
    best["starts_used"] = len(screened)
    best["screen_losses"] = [float(sc.phi / b2) for sc in screened]
    best["screen_iterations"] = int(totals["screen_it"])
    best["screen_evaluations"] = int(totals["screen_ev"])
    best["hops_used"] = len(screened) - min(len(screened), starts)
    best["finished"] = len(finals)
    best["iterations_total"] = int(totals["screen_it"] + totals["solve_it"])
    return best
