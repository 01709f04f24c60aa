"""One-pass kernels over the rows of a dense, C-contiguous float64 ``A`` (n x d).

For tall ``A`` these products are memory-bound: each streams ``A`` once, row by row, and
does its arithmetic while the row is in cache.  They are serial (deterministic: the same
bits whatever the thread settings) and, measured at n = 2e6, d = 64 with one BLAS thread,
2-2.5x faster than OpenBLAS ``gemv`` on the same array (``benchmarks/bench_approx_newton.py``
prints both as floors).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, fastmath={"reassoc", "contract"})
def matvec(A, x):
    """``A x``: one dot product per row."""
    n, d = A.shape
    out = np.empty(n)
    for i in range(n):
        t = 0.0
        for j in range(d):
            t += A[i, j] * x[j]
        out[i] = t
    return out


@njit(cache=True, fastmath={"reassoc", "contract"})
def rmatmat(A, V):
    """``A^T V`` for ``V`` (n, k) with few columns: one pass over ``A`` per three columns.

    Each element of row ``i`` is loaded once and added to three accumulators: with one
    thread, 1.5x (n = 1e5, d = 16) to 1.1x (n = 2e6, d = 64) faster than adding each
    column of ``V`` in its own sweep over the row.
    """
    n, d = A.shape
    k = V.shape[1]
    out = np.empty((d, k))
    for j0 in range(0, k, 3):
        w = min(3, k - j0)
        a0 = np.zeros(d)
        a1 = np.zeros(d)
        a2 = np.zeros(d)
        for i in range(n):
            v0 = V[i, j0]
            v1 = V[i, j0 + 1] if w > 1 else 0.0
            v2 = V[i, j0 + 2] if w > 2 else 0.0
            for c in range(d):
                a = A[i, c]
                a0[c] += v0 * a
                a1[c] += v1 * a
                a2[c] += v2 * a
        out[:, j0] = a0
        if w > 1:
            out[:, j0 + 1] = a1
        if w > 2:
            out[:, j0 + 2] = a2
    return out


@njit(cache=True, fastmath={"reassoc", "contract"})
def rmatvec(A, v):
    """``A^T v``: row ``i`` of ``A`` scaled by ``v_i`` and added."""
    n, d = A.shape
    out = np.zeros(d)
    for i in range(n):
        vi = v[i]
        for c in range(d):
            out[c] += vi * A[i, c]
    return out


@njit(cache=True, fastmath={"reassoc", "contract"})
def gram_matvec(A, weights, v):
    """``A^T diag(weights) A v``: each row is used twice while it is in cache."""
    n, d = A.shape
    out = np.zeros(d)
    for i in range(n):
        t = 0.0
        for j in range(d):
            t += A[i, j] * v[j]
        t *= weights[i]
        for j in range(d):
            out[j] += t * A[i, j]
    return out


@njit(cache=True, fastmath={"reassoc"})
def all_finite(v):
    """Whether every entry of the 1-d ``v`` is finite, in one vectorized pass.

    ``v_i * 0`` is 0 for finite ``v_i`` and NaN for inf or NaN, and a sum with a NaN term is
    NaN in any order (reassociation is the only fast-math flag).
    """
    acc = 0.0
    for i in range(v.shape[0]):
        acc += v[i] * 0.0
    return acc == 0.0


@njit(cache=True, fastmath={"reassoc", "contract"})
def max_row_norm(A):
    """``max_i ||A_i||``: one pass, no temporary."""
    n, d = A.shape
    best = 0.0
    for i in range(n):
        t = 0.0
        for j in range(d):
            t += A[i, j] * A[i, j]
        if t > best:
            best = t
    return np.sqrt(best)
