"""softsym.sketch: leverage scores, sample sizes, row sampling, the reuse bound, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from softsym.errors import ValidationError
from softsym.numerics import sketch


def coherent(n: int, d: int, seed: int) -> np.ndarray:
    """Rows with very different norms (heavy tails), so leverage scores are far from uniform."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) * rng.standard_cauchy(n)[:, None] ** 2 / 10


def hat_diagonal(M: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ji->i", M, np.linalg.pinv(M))


def test_exact_scores_are_the_hat_diagonal():
    A = coherent(300, 5, 0)
    w = np.random.default_rng(1).random(300)
    tau = sketch.leverage_scores(A, w, method="exact")
    np.testing.assert_allclose(tau, hat_diagonal(np.sqrt(w)[:, None] * A), atol=1e-12)
    assert tau.sum() == pytest.approx(5)


def test_exact_scores_rank_deficient_and_zero_weights():
    A = coherent(200, 4, 2)
    A[:, 3] = A[:, 0] + A[:, 1]
    w = np.ones(200)
    w[:50] = 0
    tau = sketch.leverage_scores(A, w, method="exact")
    assert tau.sum() == pytest.approx(3)
    assert np.all(tau[:50] == 0)


@pytest.mark.parametrize("jl_dim", [None, 3])
def test_approximate_scores_are_within_a_constant_factor(jl_dim):
    A = coherent(20_000, 6, 3)
    w = np.random.default_rng(4).random(20_000) + 0.1
    exact = sketch.leverage_scores(A, w, method="exact")
    approx = sketch.leverage_scores(A, w, method="approx", seed=5, jl_dim=jl_dim)
    ratio = approx / exact
    lo, hi = (0.5, 2.0) if jl_dim is None else (0.02, 8.0)  # JL to 3 columns: chi^2_3/3 spread
    assert lo < np.median(ratio) < hi and np.quantile(ratio, 0.01) > lo / 4 and np.quantile(ratio, 0.99) < hi * 2
    assert approx.sum() == pytest.approx(6, rel=0.5)


def test_same_seed_same_bits():
    A = coherent(5000, 4, 6)
    a = sketch.leverage_scores(A, method="approx", seed=7, sketch_size=64, jl_dim=2)
    b = sketch.leverage_scores(A, method="approx", seed=np.random.default_rng(7), sketch_size=64, jl_dim=2)
    c = sketch.leverage_scores(A, method="approx", seed=8, sketch_size=64, jl_dim=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    i1, w1 = sketch.sample_rows(a, 100, seed=3)
    i2, w2 = sketch.sample_rows(a, 100, seed=3)
    assert np.array_equal(i1, i2) and np.array_equal(w1, w2)


def test_sample_size_is_chernoff_and_grows_like_eps_squared():
    m1 = sketch.sample_size(10, 10, 0.2, 0.1)
    assert m1 == int(np.ceil(10 * np.log(200) / sketch.chernoff_rate(0.2)))
    assert 3.5 < sketch.sample_size(10, 10, 0.1, 0.1) / m1 < 4.5
    assert sketch.chernoff_rate(0.3) >= 0.3 ** 2 / 3


def test_sampled_gram_is_unbiased():
    A = coherent(400, 3, 9)
    w = np.random.default_rng(10).random(400)
    tau = sketch.leverage_scores(A, w, method="exact")
    K = (A * w[:, None]).T @ A
    est = np.mean([sketch.sampled_gram(A, w, *sketch.sample_rows(tau, 50, seed=s)) for s in range(400)], axis=0)
    assert np.linalg.norm(est - K) / np.linalg.norm(K) < 0.05


@pytest.mark.parametrize("method", ["exact", "approx"])
def test_spectral_guarantee_holds_with_the_stated_probability(method):
    """(1-eps) K <= K~ <= (1+eps) K in >= 1-delta of the seeds (eigenvalues of K^{-1/2} K~ K^{-1/2})."""
    n, d, eps, delta, seeds = 20_000, 6, 0.5, 0.2, 40
    A = coherent(n, d, 11)
    w = np.random.default_rng(12).random(n) ** 3
    K = (A * w[:, None]).T @ A
    Linv = np.linalg.inv(np.linalg.cholesky(K))
    fails, worst = 0, 0.0
    for s in range(seeds):
        tau = sketch.leverage_scores(A, w, method=method, seed=s)
        m = sketch.sample_size(tau.sum(), d, eps, delta)
        assert m < n / 10
        ev = np.linalg.eigvalsh(Linv @ sketch.sampled_gram(A, w, *sketch.sample_rows(tau, m, seed=1000 + s)) @ Linv.T)
        err = max(1 - ev[0], ev[-1] - 1)
        worst = max(worst, err)
        fails += err > eps
    # failures ~ Binomial(seeds, <= delta): allow the mean plus 3 standard deviations
    assert fails <= delta * seeds + 3 * np.sqrt(seeds * delta * (1 - delta)), (fails, worst)
    assert worst < 2 * eps


def test_reused_scores_overestimate_the_new_leverage():
    A = coherent(2000, 5, 13)
    rng = np.random.default_rng(14)
    w0 = rng.random(2000) + 0.01
    tau0 = sketch.leverage_scores(A, w0, method="exact")
    for scale in (0.1, 1.0, 3.0):
        w = w0 * np.exp(scale * rng.standard_normal(2000))
        w[:5] = 0.0
        scores, d_eff = sketch.reused_scores(w, w0, tau0)
        tau = sketch.leverage_scores(A, w, method="exact")
        assert np.all(tau <= scores * d_eff / scores.sum() * (1 + 1e-9))
        assert d_eff >= 5 - 1e-9
    w0z = w0.copy()
    w0z[0] = 0.0
    assert sketch.reused_scores(w0, w0z, tau0) is None  # a row that had no weight now has some


def test_custom_row_access_is_used():
    A = coherent(3000, 4, 15)

    class Counting(sketch.DenseRows):
        calls = 0

        def countsketch(self, scale, bucket, k):
            Counting.calls += 1
            return super().countsketch(scale, bucket, k)

    class Holder:
        def row_access(self):
            return Counting(A)

    a = sketch.leverage_scores(Holder(), method="approx", seed=1)
    assert Counting.calls == 1 and np.array_equal(a, sketch.leverage_scores(A, method="approx", seed=1))


@pytest.mark.parametrize("call", [
    lambda A: sketch.leverage_scores(A, method="qr"),
    lambda A: sketch.leverage_scores(A, -np.ones(50)),
    lambda A: sketch.leverage_scores(A, np.ones(49)),
    lambda A: sketch.leverage_scores(A, seed="x"),
    lambda A: sketch.leverage_scores(A, seed=1.5),
    lambda A: sketch.leverage_scores(A, method="approx", sketch_size=1),
    lambda A: sketch.leverage_scores(A, method="approx", jl_dim=0),
    lambda A: sketch.leverage_scores(np.full((50, 3), np.nan)),
    lambda A: sketch.sample_size(3, 3, 0.0, 0.1),
    lambda A: sketch.sample_size(3, 3, 1.0, 0.1),
    lambda A: sketch.sample_size(3, 3, 0.5, 1.5),
    lambda A: sketch.sample_size(3, 3, 0.5, float("nan")),
    lambda A: sketch.sample_rows(-np.ones(5), 3),
    lambda A: sketch.sample_rows(np.zeros(5), 3),
    lambda A: sketch.sample_rows(np.ones(5), 0),
])
def test_bad_input_raises_validation_error(call):
    with pytest.raises(ValidationError):
        call(np.ones((50, 3)))
