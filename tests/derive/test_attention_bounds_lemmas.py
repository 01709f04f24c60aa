"""The softmax-row lemmas behind the attention bounds: SymPy's constants, and random and extremal
checks that each lemma holds and is not far from sharp."""

import numpy as np
import pytest
import sympy as sp

from softsym.derive.bounds import attention as ab


def _row(rng, k):
    u = rng.standard_normal(k) * rng.choice([0.1, 1.0, 4.0])
    f = np.exp(u - u.max())
    f /= f.sum()
    h = rng.standard_normal(k)
    w = h - f @ h
    v = f @ w**2
    g2 = w**2 - v
    g3 = w**3 - 3 * v * w - f @ w**3
    return f, h, w, v, g2, g3


def test_sympy_derives_the_spread_constants():
    k2, k3, claims = ab._moment_lemmas()
    assert (k2, k3) == (sp.Rational(1, 4), sp.Rational(9, 32))
    assert any(c.startswith("S5:") for c in claims) and any(c.startswith("S6:") for c in claims)


def test_spread_and_centering_lemmas_hold_on_random_rows():
    rng = np.random.default_rng(0)
    for _ in range(3000):
        k = int(rng.integers(2, 7))
        f, h, w, v, g2, g3 = _row(rng, k)
        spread = h.max() - h.min()
        assert abs(f @ g2) < 1e-12 and abs(f @ g3) < 1e-12              # the centering identity
        assert f @ np.abs(g2) <= 0.25 * spread**2 + 1e-12               # S5
        assert f @ np.abs(g2) <= 2 * v + 1e-12
        assert f @ np.abs(g3) <= 9 / 32 * spread**3 + 1e-12             # S6
        c = rng.standard_normal(k)
        assert abs(c @ (f * g2)) <= (c.max() - c.min()) / 2 * (f @ np.abs(g2)) + 1e-12
        # spread of V r is at most sqrt(2) ||V||_F ||r||
        V, r = rng.standard_normal((k, 3)), rng.standard_normal(3)
        Vr = V @ r
        assert Vr.max() - Vr.min() <= np.sqrt(2) * np.linalg.norm(V) * np.linalg.norm(r) + 1e-12


def test_spread_constants_are_close_to_attained():
    """Two-point rows come within 30% of kappa_2 and 12% of kappa_3: the constants cannot be
    lowered much, and a constant below the attained value would fail the checks above."""
    p = np.linspace(1e-4, 1 - 1e-4, 20001)
    # f = (p, 1 - p), h = (1, 0): Delta = 1, w = (1 - p, -p)
    e2 = 2 * p * (1 - p) * np.abs(1 - 2 * p)
    w1, w2 = 1 - p, -p
    v = p * (1 - p)
    mu3 = p * w1**3 + (1 - p) * w2**3
    e3 = p * np.abs(w1**3 - 3 * v * w1 - mu3) + (1 - p) * np.abs(w2**3 - 3 * v * w2 - mu3)
    assert 0.7 * 0.25 < e2.max() <= 0.25
    assert 0.88 * 9 / 32 < e3.max() <= 9 / 32


def _kappa_f(R_U, n):
    return min(np.exp(R_U) / n, 1 / (1 + (n - 1) * np.exp(-R_U * np.sqrt(n / max(n - 1, 1)))))


def test_entry_bound_holds_and_is_attained():
    """max_i f_i <= kappa_f for ||u||_2 <= R_U, with equality at u = (a, -b, ..., -b); ||F||_2 <= sqrt(n kappa_f)."""
    rng = np.random.default_rng(1)
    for n in (2, 3, 5, 8):
        for R_U in (0.3, 1.0, 3.0):
            a, b = R_U * np.sqrt((n - 1) / n), R_U / np.sqrt(n * (n - 1))
            u = np.r_[a, -b * np.ones(n - 1)]
            assert np.linalg.norm(u) == pytest.approx(R_U)
            f = np.exp(u) / np.exp(u).sum()
            # the AM-GM / Cauchy-Schwarz form is attained there (so it cannot be lowered)
            assert f[0] == pytest.approx(1 / (1 + (n - 1) * np.exp(-R_U * np.sqrt(n / (n - 1)))), rel=1e-12)
            assert f[0] <= _kappa_f(R_U, n) * (1 + 1e-12)
            for _ in range(50):
                U = rng.standard_normal((n, n))
                U *= R_U * rng.random((n, 1)) / np.linalg.norm(U, axis=1, keepdims=True)
                F = np.exp(U) / np.exp(U).sum(axis=1, keepdims=True)
                assert F.max() <= _kappa_f(R_U, n) * (1 + 1e-12)
                assert np.linalg.norm(F, 2) <= np.sqrt(n * _kappa_f(R_U, n)) * (1 + 1e-12)
