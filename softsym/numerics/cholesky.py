"""Cholesky factorization shifted to positive definiteness (Nocedal & Wright, Algorithm 3.3)."""

from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve


class NotPositiveDefinite(ArithmeticError):
    """No shift up to the try limit made the matrix positive definite (it is not finite, or huge)."""


def shifted_cholesky(H: np.ndarray, max_tries: int = 60) -> tuple[tuple, float]:
    """Cholesky factor of H + tau I with the smallest tau >= 0 found by doubling; (factor, tau).

    ``factor`` is ``scipy.linalg.cho_factor``'s result (use it with ``cho_solve``); tau = 0 when
    H itself is positive definite.
    """
    diag_min = float(np.min(np.diag(H)))
    scale = float(np.linalg.norm(H, "fro")) or 1.0
    tau = 0.0 if diag_min > 0 else 1e-3 * scale - diag_min
    for _ in range(max_tries):
        try:
            return cho_factor(H + tau * np.eye(H.shape[0]) if tau else H, lower=True, check_finite=False), tau
        except LinAlgError:
            tau = max(2.0 * tau, 1e-3 * scale)
    raise NotPositiveDefinite("could not make the Hessian positive definite by shifting")


def shifted_cholesky_solve(H: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, float]:
    """Solve (H + tau I) s = rhs with the tau of :func:`shifted_cholesky`; returns (s, tau)."""
    factor, tau = shifted_cholesky(H)
    return cho_solve(factor, rhs, check_finite=False), tau
