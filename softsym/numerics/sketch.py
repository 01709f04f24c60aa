"""Randomized linear algebra for the approximate Newton solver: leverage scores and row sampling.

The papers (seeds 000/001) replace the diagonal part ``K = A^T diag(beta) A`` of the Hessian
by a spectral approximation built from a few rows of ``D^{1/2} A`` (``D = diag(beta)``)
sampled with probabilities proportional to (over-estimates of) their leverage scores.

* :func:`leverage_scores` -- exact (QR of ``D^{1/2} A``, cost ``n d^2``) or approximate
  (CountSketch of ``D^{1/2} A`` to ``k`` rows, SVD of the ``k x d`` sketch, then a
  Gaussian JL projection to ``jl_dim`` columns, cost ``nnz(A) + n d jl_dim + k d^2``).
* :func:`sample_size` -- the number of rows the matrix Chernoff bound asks for.
* :func:`sample_rows` / :func:`sampled_gram` -- i.i.d. sampling with reweighting, and the
  sparsified ``sum_i w_i a_i a_i^T``.

Data access: every function reaches ``A`` only through a *row access* object (see
:class:`RowAccess`) obtained with :func:`row_access`.  An objective whose data is not an
in-memory numpy array (e.g. a Dask-backed one) provides ``row_access()`` returning an object
with the same five members; n-vectors (weights, scores) are plain numpy arrays.

Randomness only through ``seed`` (an int or a ``numpy.random.Generator``); same seed, same bits.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import numpy as np
from numba import njit

from .._validate import as_array, count, positive
from .._validate import seed as check_seed
from ..errors import ValidationError
from .rows import gram_matvec, rmatmat

#: rows per block when forming ||a_i^T Z||^2 without materializing the (n, k) product
_BLOCK = 1 << 16


@runtime_checkable
class RowAccess(Protocol):
    """What the sketching code and the approximate Newton solver need from ``A`` (n x d).

    ``n, d``: the shape.  ``rmatmat(V)``: ``A^T V`` for ``V`` (n, k).  Optional (not part of the
    protocol check) ``gram_matvec(weights, v)``: ``A^T diag(weights) A v`` in one pass, which
    lets the approximate Newton solver form exact Hessian-vector products from its own pieces.
    ``take(idx)``: the rows ``A[idx]`` (m, d) for sorted unique int64 ``idx``.  ``countsketch(scale, bucket, k)``: the
    (k, d) matrix ``S diag(scale) A`` with ``S[bucket[i], i] = 1`` (signs folded into
    ``scale``).  ``sq_row_norms(Z)``: the n-vector ``||(A Z)_i||^2`` for ``Z`` (d, k).
    All results are float64 numpy arrays.
    """

    n: int
    d: int

    def rmatmat(self, V: np.ndarray) -> np.ndarray: ...

    def take(self, idx: np.ndarray) -> np.ndarray: ...

    def countsketch(self, scale: np.ndarray, bucket: np.ndarray, k: int) -> np.ndarray: ...

    def sq_row_norms(self, Z: np.ndarray) -> np.ndarray: ...


@njit(cache=True)
def _countsketch(A, scale, bucket, k):
    """``S diag(scale) A`` in one pass over the rows (serial: memory-bound, and deterministic)."""
    n, d = A.shape
    out = np.zeros((k, d))
    for i in range(n):
        s = scale[i]
        if s != 0.0:
            r = bucket[i]
            for j in range(d):
                out[r, j] += s * A[i, j]
    return out


class DenseRows:
    """:class:`RowAccess` for an in-memory float64 C-contiguous ``A`` (no copies)."""

    def __init__(self, A: np.ndarray):
        self.A = A
        self.n, self.d = A.shape

    def rmatmat(self, V: np.ndarray) -> np.ndarray:
        if V.shape[1] <= 8:  # BLAS is slow for (n x d)^T (n x few); one memory-bound pass per three columns
            return rmatmat(self.A, np.ascontiguousarray(V))
        return self.A.T @ V

    def gram_matvec(self, weights: np.ndarray, v: np.ndarray) -> np.ndarray:
        return gram_matvec(self.A, weights, np.ascontiguousarray(v, dtype=np.float64))

    def take(self, idx: np.ndarray) -> np.ndarray:
        return self.A[idx]

    def countsketch(self, scale: np.ndarray, bucket: np.ndarray, k: int) -> np.ndarray:
        return _countsketch(self.A, scale, bucket, k)

    def sq_row_norms(self, Z: np.ndarray) -> np.ndarray:
        out = np.empty(self.n)
        for lo in range(0, self.n, _BLOCK):
            P = self.A[lo:lo + _BLOCK] @ Z
            out[lo:lo + _BLOCK] = np.einsum("ij,ij->i", P, P)
        return out


def row_access(data) -> RowAccess:
    """The row access of ``data``: an objective (its ``row_access()`` if it has one, else its
    ``A``), a :class:`RowAccess`, or an (n, d) array."""
    if isinstance(data, RowAccess):
        return data
    if hasattr(data, "row_access"):
        return data.row_access()
    A = getattr(data, "A", None)
    if hasattr(data, "pieces") and isinstance(A, np.ndarray) and A.dtype == np.float64 and A.flags.c_contiguous:
        return DenseRows(A)  # an objective validated its A when it was built: no second O(nd) check
    return DenseRows(as_array("A", getattr(data, "A", data), 2))


def as_generator(seed) -> np.random.Generator:
    """A ``numpy.random.Generator``: ``seed`` itself, or one seeded with the int ``seed``."""
    seed = check_seed("seed", seed)
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _weights(rows: RowAccess, weights) -> np.ndarray:
    if weights is None:
        return np.ones(rows.n)
    w = as_array("weights", weights, 1, (rows.n,))
    if np.any(w < 0):
        raise ValidationError(f"weights must be >= 0 (they scale rows by sqrt(weight)), min is {w.min():.3g}")
    return w


def _inverse_factor(Y: np.ndarray) -> np.ndarray:
    """``T`` (d, r) with ``Y T`` orthonormal columns, from the SVD of ``Y`` (rank-revealing)."""
    _, s, Vt = np.linalg.svd(Y, full_matrices=False)
    if s.size == 0 or s[0] == 0.0:
        return np.zeros((Y.shape[1], 0))
    r = int(np.count_nonzero(s > s[0] * max(Y.shape) * np.finfo(float).eps))
    return Vt[:r].T / s[:r]


def leverage_scores(data, weights=None, *, method: str = "auto", seed=0, sketch_size: int | None = None,
                    jl_dim: int | None = None) -> np.ndarray:
    """Leverage scores of ``diag(sqrt(weights)) A`` (``tau_i = w_i a_i^T (A^T W A)^+ a_i``).

    ``data``: an (n, d) array, an objective or a :class:`RowAccess`.  ``weights`` >= 0
    (default 1).  ``method``: ``"exact"`` (QR/SVD of the scaled matrix, ``n d^2``),
    ``"approx"`` (CountSketch to ``sketch_size`` rows, default ``min(n, 4 d^2)``, then a JL
    projection to ``jl_dim`` columns, default ``min(rank, 32)``) or ``"auto"`` (exact for
    ``n <= 50000`` or when the sketch would not be smaller than ``n/2``).  Exact scores sum
    to ``rank(W^{1/2} A)``; approximate ones are within a constant factor with high
    probability.  Same seed, same bits.
    """
    rows = row_access(data)
    w = _weights(rows, weights)
    rng = as_generator(seed)
    n, d = rows.n, rows.d
    if method not in ("auto", "exact", "approx"):
        raise ValidationError(f"method must be 'auto', 'exact' or 'approx', got {method!r}")
    k = min(n, 4 * d * d) if sketch_size is None else count("sketch_size", sketch_size, d)
    if method == "auto":
        method = "exact" if n <= 50_000 or 2 * k >= n else "approx"
    sw = np.sqrt(w)
    if method == "exact":
        M = rows.take(np.arange(n)) * sw[:, None]
        T = _inverse_factor(np.linalg.qr(M, mode="r"))
        return w * rows.sq_row_norms(T)
    bucket = rng.integers(0, k, size=n)
    signs = rng.integers(0, 2, size=n) * 2.0 - 1.0
    T = _inverse_factor(np.linalg.qr(rows.countsketch(sw * signs, bucket, k), mode="r"))
    r = T.shape[1]
    kjl = min(r, 32) if jl_dim is None else count("jl_dim", jl_dim, 1)
    if kjl < r:
        T = T @ (rng.standard_normal((r, kjl)) / math.sqrt(kjl))
    return w * rows.sq_row_norms(T)


def chernoff_rate(eps: float) -> float:
    """``h(eps) = min((1+eps) ln(1+eps) - eps, (1-eps) ln(1-eps) + eps)`` (Tropp's matrix Chernoff exponents)."""
    return min((1 + eps) * math.log1p(eps) - eps, (1 - eps) * math.log1p(-eps) + eps)


def sample_size(d_eff: float, d: int, eps: float, delta: float) -> int:
    """Rows to sample so that ``(1-eps) K <= K~ <= (1+eps) K`` with probability >= ``1-delta``.

    Matrix Chernoff (Tropp 2012, Thm 1.1) for i.i.d. rows with ``p_i >= tau_i / d_eff``
    (``d_eff`` = sum of the leverage over-estimates used, = rank for exact scores): each
    sample has norm <= ``d_eff/m`` in the whitened basis, so both tails are at most
    ``d exp(-m h(eps) / d_eff)`` and ``m = d_eff ln(2d/delta) / h(eps)`` suffices.  With
    ``h(eps) >= eps^2/3`` this is the papers' ``O(eps^-2 d log(d/delta))``.
    """
    eps, delta = open_unit("eps0", eps), open_unit("delta", delta)
    return int(math.ceil(positive("d_eff", d_eff) * math.log(2 * d / delta) / chernoff_rate(eps)))


def open_unit(name: str, value) -> float:
    """``value`` as a float in the open interval (0, 1); ``ValidationError`` naming ``name`` otherwise."""
    v = positive(name, value)
    if not v < 1:
        raise ValidationError(f"{name} must lie in (0, 1), got {value!r}")
    return v


def sample_rows(scores, m: int, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """``m`` i.i.d. draws with ``p_i = scores_i / sum(scores)``; returns ``(idx, reweight)``.

    ``idx`` is sorted and unique; ``reweight_i = count_i / (m p_i)`` so that
    ``sum_i reweight_i w_i a_i a_i^T`` is an unbiased estimate of ``A^T W A``.
    """
    tau = as_array("scores", scores, 1)
    if np.any(tau < 0) or not tau.sum() > 0:
        raise ValidationError("scores must be >= 0 with a positive sum")
    m = count("m", m, 1)
    cdf = np.cumsum(tau)
    total = cdf[-1]
    # m sorted i.i.d. uniforms (normalized exponential spacings), then inverse-CDF sampling:
    # sorted queries make the search cache friendly and the draws come out sorted
    gaps = np.cumsum(as_generator(seed).standard_exponential(m + 1))
    draws = np.minimum(np.searchsorted(cdf, gaps[:-1] * (total / gaps[-1]), side="right"), tau.size - 1)
    starts = np.flatnonzero(np.diff(draws, prepend=-1))
    idx = draws[starts]
    cnt = np.diff(starts, append=m)
    return idx, cnt * total / (m * tau[idx])


def sampled_gram(data, weights, idx: np.ndarray, reweight: np.ndarray) -> np.ndarray:
    """``sum_j reweight_j weights_{idx_j} a_{idx_j} a_{idx_j}^T`` (d, d), from the sampled rows only.

    Negative weights are allowed (the signed fallback of the solver): rows enter with the sign
    of their weight.
    """
    rows = row_access(data)
    c = reweight * weights[idx]
    B = rows.take(idx)
    G = (B * np.sqrt(np.abs(c))[:, None])
    if np.all(c >= 0):
        K = G.T @ G
    else:
        K = G.T @ (G * np.sign(c)[:, None])
    return 0.5 * (K + K.T)


def reused_scores(weights: np.ndarray, ref_weights: np.ndarray, ref_scores: np.ndarray,
                  max_discard: float = 0.5) -> tuple[np.ndarray, float] | None:
    """Leverage over-estimates for new weights from scores computed at reference weights.

    With ``r_i = w_i / w0_i`` and any threshold ``t``, the rows with ``r_j >= t`` carry all but
    ``s(t) = sum_{r_j < t} tau0_j`` of the reference leverage, so ``A^T W A >= t (1 - s(t))
    A^T W0 A`` and ``tau_i(w) <= r_i tau0_i / (t (1 - s(t)))``.  Thresholds are tried at powers
    of two (one O(n) histogram) and at ``min r``; the best gives ``d_eff``.  Returns
    ``(scores, d_eff)`` with ``scores = r tau0`` (the sampling weights), or ``None`` when no
    valid bound exists (a row with reference weight 0 now has weight > 0).
    """
    zero = ref_weights == 0
    if np.any(weights[zero] != 0):
        return None
    r = np.divide(weights, ref_weights, out=np.zeros_like(weights), where=~zero)
    scores = r * ref_scores
    total = float(scores.sum())
    if not total > 0:
        return None
    live = r > 0
    lost0 = float(ref_scores[~live].sum())  # leverage of rows whose weight dropped to 0
    best = total / float(r[live].min()) if lost0 == 0 else np.inf
    _, e = np.frexp(r[live])  # r in [2^(e-1), 2^e)
    emin = int(e.min())
    mass = np.cumsum(np.bincount(e - emin, weights=ref_scores[live]))
    for k in range(mass.size):
        s = lost0 + (mass[k - 1] if k else 0.0)  # leverage of rows with r < 2^(emin + k - 1)
        if s <= max_discard:
            best = min(best, total / (2.0 ** (emin + k - 1) * (1 - s)))
    if not np.isfinite(best):
        return None
    return scores, best
