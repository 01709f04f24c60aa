"""The two entry points: :func:`objective` binds data to a member, :func:`minimize` solves a problem."""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np
from scipy.optimize import OptimizeResult

from ._validate import callback as check_callback
from ._validate import flag
from .errors import ValidationError
from .problems.normalized import NormalizedObjective
from .solvers import DEFAULT_MAXITER, DEFAULT_METHOD, make_solver, run
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


def minimize_multistart(problem, x0=None, starts: int = 64, seed: int = 0, scale: float = 1.0,
                        screen_iters: int = 5, keep: int = 4, fit_tol: float = 1e-10, method: str | None = None,
                        maxiter: int | None = None, **kwargs: Any) -> OptimizeResult:
    """Attention: multi-start with screening and certified selection (a globalization).

    Candidates: ``x0`` (default X0 = 0) and ``starts - 1`` random ``X0`` (i.i.d. Gaussian entries
    scaled to ``||X0||_F = scale``, seeded).  Screening: every candidate runs ``screen_iters``
    iterations; the ``keep`` with the lowest loss then run to convergence (``maxiter``), stopping
    early once one reaches relative loss ``L / ||B||_F^2 < fit_tol``.  Returns the run with the
    lowest loss among those reported as minima (``success``: converged and ``is_minimum``),
    otherwise the lowest loss overall; the result adds ``starts_used``, ``screen_losses``
    (relative loss of every candidate after screening) and ``iterations_total``.
    """
    from ._validate import count, positive

    if getattr(problem, "family", None) != "attention":
        raise ValidationError("minimize_multistart needs an attention problem")
    starts = count("starts", starts, 1)
    screen_iters = count("screen_iters", screen_iters, 1)
    keep = count("keep", keep, 1)
    scale = positive("scale", scale)
    fit_tol = positive("fit_tol", fit_tol)
    rng = np.random.default_rng(count("seed", seed))
    b2 = max(float(np.sum(problem.B * problem.B)), np.finfo(float).tiny)
    screened, total = [], 0
    for i in range(starts):
        if i == 0:
            start = x0
        else:
            X0 = rng.standard_normal((problem.d, problem.d))
            start = (X0 * (scale / np.linalg.norm(X0)), None)
        res = minimize(problem, start, method=method, maxiter=screen_iters, **kwargs)
        total += res.nit
        screened.append(res)
        if res.success and res.fun / b2 < fit_tol:
            break
    order = sorted(range(len(screened)), key=lambda i: screened[i].fun)
    finals = []
    for i in order[:keep]:
        r0 = screened[i]
        res = r0 if r0.success else minimize(problem, (r0.X, r0.Y), method=method, maxiter=maxiter, **kwargs)
        total += 0 if res is r0 else res.nit
        finals.append(res)
        if res.success and res.fun / b2 < fit_tol:
            break
    minima = [r for r in finals if r.success]
    best = min(minima or finals, key=lambda r: r.fun)
    best["starts_used"] = len(screened)
    best["screen_losses"] = [float(r.fun / b2) for r in screened]
    best["iterations_total"] = int(total)
    return best
