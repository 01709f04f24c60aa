"""Derived attention bounds: never violated under random/adversarial draws; halved bounds are caught."""

import math

import numpy as np
import pytest

import softsym
from softsym.problems.attention import AttentionRegression
from softsym.theory.attention import attention_bounds, certified_reg_x, certify_attention, region_certificate


def _random_point(rng, n, d, R):
    def spec(M):
        return M * (R / np.linalg.norm(M, 2))

    def fro(M):
        return M * (R * rng.random() / np.linalg.norm(M))

    A1, A2, A3 = (spec(rng.standard_normal((n, d))) for _ in range(3))
    return A1, A2, A3, fro(rng.standard_normal((n, d))), fro(rng.standard_normal((d, d))), \
        fro(rng.standard_normal((d, d)))


@pytest.mark.parametrize("R", [0.5, 1.0, 2.0])
def test_random_draws_respect_bounds(R):
    rng = np.random.default_rng(1)
    n, d, reg_y = 4, 2, 0.5
    b = attention_bounds("attention", R, R, R, R, n, 0.0, reg_y)
    for _ in range(40):
        A1, A2, A3, B, X, Y = _random_point(rng, n, d, R)
        prob = AttentionRegression(A1, A2, A3, B, reg_y=reg_y)
        ev = np.linalg.eigvalsh(prob.hess_x(X, Y))
        assert max(abs(ev)) <= b.smooth_x
        assert -ev[0] <= b.C_x
        assert np.linalg.eigvalsh(prob.hess_y_block(X))[-1] - 2 * reg_y <= b.smooth_y * (1 + 1e-12)
        assert np.linalg.norm(prob.hess_xy(X, Y), 2) <= b.cross
        assert -np.linalg.eigvalsh(prob.reduced_hess_x(X, Y))[0] <= b.C_phi


def test_adversarial_search_finds_no_violation_and_catches_halved_bounds():
    cert = certify_attention(R=(1.0,), n=(3,), d=2, restarts=1, maxfev=150, seed=0)
    assert not cert.violations, cert.table()
    assert all(r.worst > 0 and r.tightness >= 1 for r in cert.rows)
    # a bound scaled below the worst value the search finds must be reported as violated
    tight = min(r.tightness for r in cert.rows)
    broken = certify_attention(R=(1.0,), n=(3,), d=2, restarts=1, maxfev=150, seed=0, scale=0.99 / tight)
    assert broken.violations


def test_bounds_halved_are_violated_at_a_search_witness():
    """smooth_y is nearly tight (rows of F concentrate): halving it must be caught by the search."""
    cert = certify_attention(R=(2.0,), n=(2,), d=2, quantities=("smooth_y",), restarts=1, maxfev=150,
                             scale=0.5)
    assert cert.violations


def test_public_entry_and_threshold():
    b = softsym.bounds("attention", R_A=1.0, R_X=1.0, R_Y=1.0, R_B=1.0, n=4, reg_x=3.0, reg_y=1.0)
    assert b.lmin_x == pytest.approx(6.0 - b.C_x)
    assert b.reg_x_threshold(l=1.0) == pytest.approx((b.C_x + 1.0) / 2)
    assert math.isinf(softsym.bounds("attention", n=4, reg_y=0.0).C_phi)
    with pytest.raises(softsym.ValidationError):
        softsym.bounds("attention", R_A=-1.0)


def test_region_certificate_threshold_is_sharp_for_the_rule():
    rng = np.random.default_rng(0)
    n, d = 6, 2
    A1, A2, A3, B = (0.3 * rng.standard_normal((n, d)) for _ in range(4))
    rx = certified_reg_x(A1, A2, A3, B, reg_y=1.0)
    assert math.isfinite(rx)
    assert region_certificate(AttentionRegression(A1, A2, A3, B, reg_x=rx * 1.01, reg_y=1.0))["certified"]
    assert not region_certificate(AttentionRegression(A1, A2, A3, B, reg_x=rx * 0.9, reg_y=1.0))["certified"]
