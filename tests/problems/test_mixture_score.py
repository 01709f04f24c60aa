"""Diffusion score estimation (paper 004): GMM under OU, exact score, DSM training."""

from __future__ import annotations

import numpy as np
import pytest

import softsym
from softsym.errors import ValidationError
from softsym.problems.mixture_score import (
    GaussianMixture,
    ScoreModel,
    TimeScoreModel,
    features,
    score_error,
    score_matching,
    score_matching_over_time,
    time_features,
)


def train_score(gm, t, m=128, n=2000, steps=300, seed=0):
    """Denoising score matching trained by ``steps`` GD steps through ``softsym.minimize``."""
    prob = score_matching(gm, t, m=m, n=n, seed=seed)
    return ScoreModel.from_result(prob, softsym.minimize(prob, method="gd", maxiter=steps), t)


def _gm3():
    return GaussianMixture(means=np.array([[1.0, -0.5, 0.2], [-1.5, 0.3, 0.0]]), stds=np.array([0.5, 0.8]),
                           weights=np.array([0.3, 0.7]))


@pytest.mark.parametrize("t", [0.0, 0.2, 1.5])
def test_score_matches_finite_differences_of_log_density(t):
    gm = _gm3()
    x = np.random.default_rng(0).standard_normal((20, 3)) * 1.5
    s = gm.score(x, t)
    h = 1e-5
    fd = np.stack([(gm.log_density(x + h * e, t) - gm.log_density(x - h * e, t)) / (2 * h) for e in np.eye(3)],
                  axis=1)
    assert np.allclose(s, fd, rtol=1e-7, atol=1e-7)


def test_ou_marginal_moments():
    gm = _gm3()
    t = 0.7
    x = gm.sample(200_000, t, seed=1)
    mu, var = gm.at(t)
    mean = gm.weights @ mu
    second = gm.weights @ (var[:, None] + mu**2)
    assert np.allclose(x.mean(axis=0), mean, atol=0.01)
    assert np.allclose((x**2).mean(axis=0), second, atol=0.02)


def test_score_of_the_mixture_at_large_t_is_standard_normal():
    gm = _gm3()
    x = np.random.default_rng(2).standard_normal((10, 3))
    assert np.allclose(gm.score(x, 40.0), -x, atol=1e-12)


def test_true_score_has_zero_error():
    gm = GaussianMixture.ring()
    assert score_error(gm, lambda x: gm.score(x, 0.5), 0.5) == 0.0


def test_dsm_score_error_decreases_with_steps_and_width():
    gm = GaussianMixture.ring()
    t = 0.5
    short = score_error(gm, train_score(gm, t, m=32, n=600, steps=20, seed=0), t)
    long = score_error(gm, train_score(gm, t, m=32, n=600, steps=300, seed=0), t)
    wide = score_error(gm, train_score(gm, t, m=128, n=600, steps=300, seed=0), t)
    assert long < 0.8 * short
    assert wide < long
    assert wide < 0.5


def test_dsm_training_is_deterministic():
    gm = GaussianMixture.ring()
    a = train_score(gm, 0.5, m=8, n=100, steps=5, seed=3)
    b = train_score(gm, 0.5, m=8, n=100, steps=5, seed=3)
    assert np.array_equal(a.net.W, b.net.W) and np.array_equal(a.losses, b.losses)


def test_bad_input():
    with pytest.raises(ValidationError, match="stds"):
        GaussianMixture(means=np.zeros((2, 2)), stds=np.array([1.0, 0.0]), weights=np.ones(2))
    with pytest.raises(ValidationError, match="weights"):
        GaussianMixture(means=np.zeros((2, 2)), stds=np.ones(2), weights=np.array([1.0, -1.0]))
    with pytest.raises(ValidationError, match="stds"):
        GaussianMixture(means=np.zeros((2, 2)), stds=np.ones(3), weights=np.ones(2))
    gm = GaussianMixture.ring()
    with pytest.raises(ValidationError, match="x"):
        gm.score(np.zeros((4, 3)), 0.5)
    with pytest.raises(ValidationError, match="t"):
        gm.score(np.zeros((4, 2)), -1.0)
    with pytest.raises(ValidationError, match="t"):
        train_score(gm, 0.0)
    with pytest.raises(ValidationError, match="x"):
        features(np.zeros(3))


def test_score_matches_the_mixture_oracle():
    """Independent oracle: grad log p_t = -sum_k r_k (x - m_k) / v_k with responsibilities r."""
    gm = _gm3()
    t = 0.4
    x = np.random.default_rng(5).standard_normal((15, 3))
    mu, var = gm.at(t)
    diff = x[:, None, :] - mu[None]
    logc = np.log(gm.weights) - 1.5 * np.log(2 * np.pi * var) - 0.5 * (diff**2).sum(axis=2) / var
    r = np.exp(logc - logc.max(axis=1, keepdims=True))
    r /= r.sum(axis=1, keepdims=True)
    assert np.allclose(gm.score(x, t), -np.einsum("nk,nkd->nd", r / var, diff), rtol=1e-12, atol=1e-12)
    lse = logc.max(axis=1) + np.log(np.exp(logc - logc.max(axis=1, keepdims=True)).sum(axis=1))
    assert np.allclose(gm.log_density(x, t), lse, rtol=1e-12)


def test_time_conditioned_score_learns_every_noise_level_and_predicts_noise():
    gm = GaussianMixture.ring()
    prob = score_matching_over_time(gm, 0.2, 1.5, m=64, n=1500, seed=0, kappa=8.0)
    assert prob.X.shape == (1500, 4) and np.all(prob.X[:, 3] == 1.0)
    assert np.all((prob.X[:, 2] >= 0.2) & (prob.X[:, 2] <= 1.5))
    res = softsym.minimize(prob, method="gd", maxiter=300)
    model = TimeScoreModel.from_result(prob, res, 0.2, 1.5)
    untrained = TimeScoreModel.from_result(prob, softsym.minimize(prob, method="gd", maxiter=1), 0.2, 1.5)
    for t, gain in ((0.2, 0.95), (0.7, 0.6), (1.5, 0.6)):
        # the model is the network's noise prediction divided by sigma_t ...
        x = gm.sample(5, t, seed=3)
        sigma = np.sqrt(1 - np.exp(-2 * t))
        assert np.allclose(model(x, t), model.net.forward(time_features(x, t)) / sigma)
        # ... and training lowers its score error at every level (least at the sharpest, t = 0.2)
        assert score_error(gm, model.at(t), t) < gain * score_error(gm, untrained.at(t), t)


def test_time_conditioned_options_are_validated():
    gm = GaussianMixture.ring()
    with pytest.raises(ValidationError, match="t_max"):
        score_matching_over_time(gm, 1.0, 0.5)
    with pytest.raises(ValidationError, match="t_min"):
        score_matching_over_time(gm, 0.0, 0.5)
    with pytest.raises(ValidationError, match="t"):
        time_features(np.zeros((3, 2)), np.array([0.1, -1.0, 0.2]))
