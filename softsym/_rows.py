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
    """``A^T V`` for ``V`` (n, k) with few columns: row ``i`` of ``A`` is added ``k`` times while in cache."""
    n, d = A.shape
    k = V.shape[1]
    acc = np.zeros((k, d))
    for i in range(n):
        for j in range(k):
            v = V[i, j]
            for c in range(d):
                acc[j, c] += v * A[i, c]
    return acc.T.copy()


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
