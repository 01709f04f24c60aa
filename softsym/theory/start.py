"""The Newton start condition M ||x0 - x*|| <= 0.1 l, decided from computable quantities."""

from __future__ import annotations

import math

import numpy as np

from .bounds import bounds, bounds_module


def start_condition(objective, x0, g0: float | None = None) -> dict:
    """Whether the theory's start condition ``M ||x0 - x*|| <= 0.1 l`` is certified.

    Computable quantities only: ``sigma_min(A), ||A||`` (from ``A^T A``), ``w_min``,
    ``||b||`` (or ``b`` on the simplex), ``||x0||`` and ``g0 = ||grad L(x0)||``.  The derived
    bounds are taken at ``R_A = ||A||_2`` and a radius ``R_x`` for ``x``: with ``C`` there,
    ``l = sigma_min(A)^2 (w_min^2 - C)`` makes ``L`` l-strongly convex on ``||x|| <= R_x``; if
    ``R_x >= ||x0|| + 2 g0 / l`` the ball holds the minimizer ``x*`` and
    ``||x0 - x*|| <= g0 / l``.  ``R_x`` is found by fixed-point iteration (``C`` and ``M``
    grow with ``R_x``).  Certified when ``M g0 / l <= 0.1 l``.

    ``A^T A`` (an ``n d^2`` product, as costly as an exact Newton Hessian) is formed only when
    needed: ``C`` is first evaluated at ``R_A = ||A||_F / sqrt(d) <= ||A||_2`` and
    ``R_x = ||x0||`` (one pass over ``A``), and since ``C`` does not decrease with the radii (a
    supremum over nested regions), ``w_min^2 <= C`` there already rules out every admissible pair.

    Returns ``{"start_certified": bool, "start_condition": {...numbers and reason...}}``.
    """
    def fail(reason: str, **info) -> dict:
        return {"start_certified": False, "start_condition": {"reason": reason, **info}}

    name = getattr(objective, "name", None)
    try:
        bounds_module(name)
    except Exception:  # noqa: BLE001 - any objective without derived bounds
        return fail(f"no derived bounds for objective {name!r}")
    A, b, w = objective.A, objective.b, objective.w
    x0 = np.asarray(x0, dtype=float)
    n, d = A.shape
    w_min2 = float(np.min(w * w))
    if w_min2 == 0:   # l = sigma_min^2 (w_min^2 - C) <= 0: decided without touching A
        return fail("w_min = 0: the regularizer gives no strong convexity, so l > 0 is not certified", w_min2=0.0)
    simplex = bool(np.all(b >= 0) and abs(float(b.sum()) - 1.0) <= 1e-12)
    region = "simplex" if simplex else "ball"
    b_norm = max(float(np.linalg.norm(b)), np.finfo(float).tiny)
    w_max = float(np.max(np.abs(w)))
    tiny = np.finfo(float).tiny
    # lower bounds on the radii below, from one pass over A (float(): A may be a Dask array)
    RA_lo = max(float(np.linalg.norm(A)) / math.sqrt(d), tiny)
    Rx_lo = max(float(np.linalg.norm(x0)), tiny)
    C_lo = bounds(name, n=n, b_norm=b_norm, w_max=w_max, region=region, R_A=RA_lo, R_x=Rx_lo).C
    if not w_min2 > C_lo:
        return fail(f"w_min^2 = {w_min2:.4g} <= C = {C_lo:.4g} at R_A = {RA_lo:.4g} <= ||A||, R_x = ||x0|| = "
                    f"{Rx_lo:.4g} (C grows with the radii): strong convexity not certified", w_min2=w_min2,
                    R_A=RA_lo, R_x=Rx_lo, C=C_lo, region=region)
    ev = np.linalg.eigvalsh(np.asarray(A.T @ A))   # np.asarray: A may be a Dask array
    smin2, smax = max(float(ev[0]), 0.0), math.sqrt(max(float(ev[-1]), 0.0))
    if smin2 <= 0:
        return fail("sigma_min(A) = 0: no strong convexity from the regularizer")
    if g0 is None:
        try:
            g0 = float(np.linalg.norm(objective.jac(x0)))
        except ArithmeticError as exc:
            return fail(f"gradient at x0 not finite: {exc}")
    R_A, R_x = max(smax, tiny), Rx_lo
    for _ in range(60):
        bd = bounds(name, n=n, b_norm=b_norm, w_max=w_max, region=region, R_A=R_A, R_x=R_x)
        l = smin2 * (w_min2 - bd.C)
        info = {"R_A": R_A, "R_x": R_x, "C": bd.C, "M": bd.M, "l": l, "w_min2": w_min2, "sigma_min2": smin2,
                "g0": g0, "region": region}
        if not l > 0:
            return fail(f"w_min^2 = {w_min2:.4g} <= C = {bd.C:.4g} at R_A = {R_A:.4g}, R_x = {R_x:.4g}: "
                        "strong convexity not certified", **info)
        need = float(np.linalg.norm(x0)) + 2.0 * g0 / l
        if need <= R_x:
            dist = g0 / l
            lhs, rhs = bd.M * dist, 0.1 * l
            info.update(dist_bound=dist, lhs=lhs, rhs=rhs)
            if lhs <= rhs:
                return {"start_certified": True,
                        "start_condition": {"reason": f"M ||x0 - x*|| <= {lhs:.4g} <= 0.1 l = {rhs:.4g}", **info}}
            return fail(f"M ||x0 - x*|| bound {lhs:.4g} > 0.1 l = {rhs:.4g}", **info)
        R_x = need
    return fail("radius fixed point did not settle (C or M grows too fast with R_x)", R_A=R_A, R_x=R_x)
