"""The vectorized paths against plain references: row kernels, block sums, and the
arithmetic-only exp/cosh/sinh as the kernels compile them (inlined, with fused multiply-add)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import softsym
from softsym.numerics import rows as _rows
from softsym.registry import kernels

EPS = np.finfo(float).eps


@given(n=st.integers(1, 40), d=st.integers(1, 9), k=st.integers(1, 7), seed=st.integers(0, 2**32 - 1))
def test_row_kernels_equal_numpy(n, d, k, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d))
    x, w, V = rng.standard_normal(d), rng.standard_normal(n), rng.standard_normal((n, k))
    g = rng.standard_normal(n)
    # error bound of a length-m dot product: m eps sum |a_i b_i|
    np.testing.assert_array_less(np.abs(_rows.matvec(A, x) - A @ x), d * EPS * (np.abs(A) @ np.abs(x)) + 1e-300)
    np.testing.assert_array_less(np.abs(_rows.rmatvec(A, g) - A.T @ g),
                                 2 * n * EPS * (np.abs(A).T @ np.abs(g)) + 1e-300)
    np.testing.assert_array_less(np.abs(_rows.rmatmat(A, V) - A.T @ V),
                                 2 * n * EPS * (np.abs(A).T @ np.abs(V)) + 1e-300)
    ref = A.T @ (w * (A @ x))
    bound = 2 * (n + d) * EPS * (np.abs(A).T @ (np.abs(w) * (np.abs(A) @ np.abs(x)))) + 1e-300
    np.testing.assert_array_less(np.abs(_rows.gram_matvec(A, w, x) - ref), bound)


@given(arrays(np.float64, st.integers(0, 300),
              elements=st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                 st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324]))))
def test_all_finite_equals_numpy(v):
    assert _rows.all_finite(v) == bool(np.all(np.isfinite(v)))


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_all_finite_finds_one_bad_entry_anywhere(bad):
    v = np.full(1001, 1e308)  # finite entries whose sum would overflow
    assert _rows.all_finite(v)
    for pos in (0, 500, 1000):
        w = v.copy()
        w[pos] = bad
        assert not _rows.all_finite(w)


@pytest.mark.parametrize("n", [1, 511, 512, 513, 3 * 512 + 7])
@pytest.mark.parametrize("name", ["softmax", "rescaled_cosh", "softmax_xent"])
def test_block_sums_match_exact_sums_across_block_edges(name, n):
    """loss_u and alpha add in blocks of SUM_BLOCK values; compare with math.fsum of the same
    per-element terms.  The tolerances allow the rounding of a 64-term running sum per SIMD lane
    on any vector width; a dropped or doubled block would be off by >= 1/n relative."""
    k = kernels(name)
    assert k.SUM_BLOCK == 512
    rng = np.random.default_rng(n)
    u = rng.standard_normal(n)
    b = rng.dirichlet(np.ones(n)) if name != "rescaled_cosh" else rng.standard_normal(n) / n
    w = rng.uniform(0, 1, n)
    m = float(np.max(u)) if k.SHIFT_INVARIANT else 0.0
    phi = np.exp(u - m) if name != "rescaled_cosh" else np.cosh(u)
    alpha = math.fsum(phi)
    assert k._alpha(u, m) == pytest.approx(alpha, rel=64 * EPS)
    if name == "softmax":
        terms = 0.5 * (phi / alpha - b) ** 2 + 0.5 * (w * u) ** 2
    elif name == "softmax_xent":
        terms = -b * np.log(phi / alpha) + 0.5 * (w * u) ** 2
    else:
        terms = 0.5 * (phi - alpha * b) ** 2 + 0.5 * (w * u) ** 2
    loss = math.fsum(terms)
    assert k.loss_u(u, b, w) == pytest.approx(loss, rel=256 * EPS)
    assert k.pieces_u(u, b, w)[0] == pytest.approx(loss, rel=256 * EPS)


@pytest.mark.parametrize("name,fn,ulps", [("rescaled_exp", math.exp, 1), ("rescaled_cosh", math.sinh, 2),
                                          ("rescaled_sinh", math.cosh, 2)])
def test_inlined_transcendentals_are_within_ulps_of_libm(name, fn, ulps):
    """q = phi'(u) from pieces_at is exp, sinh or cosh as the vectorized, FMA-contracted loop
    computes it: within 1 ulp (exp) or 2 ulp (cosh, sinh) of libm, and overflowing where libm does."""
    xs = np.concatenate([np.linspace(-700.0, 700.0, 40001), np.linspace(-3.0, 3.0, 12001),
                         [0.0, -0.0, 0.5, -0.5, 709.78, 710.5, -710.5, 1e-300]])
    z = np.zeros(xs.size)
    q = kernels(name).pieces_at(xs, z, z, 0.0, 1.0, 0.0)[3]
    ref = np.array([_libm(fn, v) for v in xs])
    finite = np.isfinite(ref)
    assert np.array_equal(np.isinf(q), ~finite) and np.array_equal(np.sign(q[~finite]), np.sign(ref[~finite]))
    flushed = xs < -707.0 if fn is math.exp else np.zeros(xs.size, bool)  # _exp is 0 below exp(-707) ~ 9e-308
    assert np.all(q[flushed] == 0.0)
    ok = finite & ~flushed
    assert np.max(np.abs(q[ok] - ref[ok]) / np.spacing(np.abs(ref[ok]))) <= ulps


def _libm(fn, v):
    try:
        return fn(v)
    except OverflowError:
        return math.copysign(math.inf, v) if fn is math.sinh else math.inf


def test_objective_products_do_not_depend_on_blas():
    """NormalizedObjective computes A x and A^T g with the row kernels: the same bits as calling them directly."""
    rng = np.random.default_rng(3)
    A, b, x = rng.standard_normal((300, 7)), rng.dirichlet(np.ones(300)), rng.standard_normal(7) * 0.1
    obj = softsym.objective("softmax", A, b)
    _, g = kernels("softmax").grad_u(_rows.matvec(A, x), b, np.zeros(300))
    assert np.array_equal(obj.jac(x), _rows.rmatvec(A, g))
