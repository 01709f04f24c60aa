"""Truncated conjugate gradients: the inner loop of Newton-CG."""

from __future__ import annotations

from typing import Callable

import numpy as np


def truncated_cg(hvp: Callable[[np.ndarray], np.ndarray], g: np.ndarray, maxiter: int) -> tuple[np.ndarray, int]:
    """Approximate solution of H p = -g by CG, stopped at negative curvature (Newton-CG inner loop).

    Forcing term min(0.5, sqrt||g||) ||g|| (superlinear convergence).  Returns (p, CG iterations);
    at negative curvature on the first step, p = -g.
    """
    gnorm = float(np.linalg.norm(g))
    tol = min(0.5, np.sqrt(gnorm)) * gnorm
    p = np.zeros_like(g)
    r = g.copy()
    direction = -r
    rr = float(r @ r)
    for it in range(maxiter):
        Hd = hvp(direction)
        curv = float(direction @ Hd)
        if curv <= 0:
            return (p if it > 0 else -g), it + 1
        a = rr / curv
        p += a * direction
        r += a * Hd
        rr_new = float(r @ r)
        if np.sqrt(rr_new) < tol:
            return p, it + 1
        direction = -r + (rr_new / rr) * direction
        rr = rr_new
    return p, maxiter
