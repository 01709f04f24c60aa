"""Score estimation for diffusion models with two-layer networks (paper 004).

A Gaussian mixture ``p_0 = sum_k pi_k N(mu_k, s_k^2 I)`` in ``R^d`` under the
Ornstein-Uhlenbeck forward process ``dX = -X dt + sqrt(2) dB`` stays a Gaussian mixture::

    X_t = e^{-t} X_0 + sigma_t Z,  sigma_t^2 = 1 - e^{-2t}
    p_t = sum_k pi_k N(e^{-t} mu_k, v_k(t) I),  v_k(t) = e^{-2t} s_k^2 + sigma_t^2

so its score ``grad log p_t`` is known exactly and a learned score's error can be measured.
The network is a vector-output :class:`~softsym.problems.two_layer.TwoLayerNetwork` on the features
``(x, 1)`` (a constant input acts as the first-layer bias), trained by denoising score
matching: regress ``-Z / sigma_t`` on ``X_t`` (the minimizer of that least-squares problem is
the true score), one network per noise level ``t``
(:func:`score_matching`), or one time-conditioned network for a range of noise levels
(:func:`score_matching_over_time`: inputs ``(x, t, 1)``, noise prediction).

    >>> from softsym.problems.mixture_score import GaussianMixture
    >>> gm = GaussianMixture.ring(k=3, d=2)
    >>> gm.score(gm.sample(4, t=0.5, seed=0), t=0.5).shape
    (4, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import as_array, count, fits, positive
from .._validate import seed as check_seed
from ..errors import OverflowDetected, ValidationError
from ..registry import kernels
from .two_layer import TwoLayerNetwork, TwoLayerRegression

_SCORE_MEMBER = "gaussian_mixture_score"


@dataclass(frozen=True)
class GaussianMixture:
    """``p_0 = sum_k weights_k N(means_k, stds_k^2 I_d)``."""

    means: np.ndarray    # (k, d)
    stds: np.ndarray     # (k,)
    weights: np.ndarray  # (k,), sums to 1

    def __post_init__(self) -> None:
        means = as_array("means", self.means, 2)
        k = means.shape[0]
        stds = as_array("stds", self.stds, 1, (k,))
        weights = as_array("weights", self.weights, 1, (k,))
        if np.any(stds <= 0):
            raise ValidationError("stds must be > 0")
        if np.any(weights < 0) or weights.sum() <= 0:
            raise ValidationError("weights must be >= 0 with a positive sum")
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "stds", stds)
        object.__setattr__(self, "weights", weights / weights.sum())

    @classmethod
    def ring(cls, k: int = 3, d: int = 2, radius: float = 2.0, std: float = 0.4) -> GaussianMixture:
        """``k`` equal-weight components on a circle in the first two coordinates."""
        k, d = count("k", k, 1), count("d", d, 2)
        ang = 2 * np.pi * np.arange(k) / k
        means = np.zeros((k, d))
        means[:, 0], means[:, 1] = radius * np.cos(ang), radius * np.sin(ang)
        return cls(means=means, stds=np.full(k, float(std)), weights=np.full(k, 1.0 / k))

    @property
    def d(self) -> int:
        return self.means.shape[1]

    def at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(means, variances) of ``p_t``'s components under the OU process.

        ``OverflowDetected`` when a variance is not a normal positive float (a standard deviation
        below ~1e-154 or above ~1e154 at a small ``t``): the densities are then not representable.
        """
        t = positive("t", t, allow_zero=True)
        e = np.exp(-t)
        with np.errstate(over="ignore", under="ignore"):
            var = e**2 * self.stds**2 + (1.0 - e**2)
        if not np.all(np.isfinite(var)) or np.any(var < np.finfo(float).tiny):
            raise OverflowDetected(f"the component variances at t={t:g} (from stds {self.stds.min():.3g} .. "
                                   f"{self.stds.max():.3g}) leave the float64 range; rescale the data")
        return e * self.means, var

    def _args(self, x, t: float) -> tuple:
        x = as_array("x", x, 2, (None, self.d))
        mu, var = self.at(t)
        return x, np.ascontiguousarray(mu), var, np.log(self.weights)

    @staticmethod
    def _finite(what: str, out: np.ndarray) -> np.ndarray:
        if not np.all(np.isfinite(out)):
            bad = int(out.size - np.count_nonzero(np.isfinite(out)))
            raise OverflowDetected(f"{what}: {bad} non-finite entries ((x - mean)^2 / variance leaves the float64 "
                                   "range: x too far from every component for its variance); rescale x or the mixture")
        return out

    def log_density(self, x, t: float) -> np.ndarray:
        """``log p_t(x)`` (n,), from the generated ``gaussian_mixture_score`` kernels.

        ``OverflowDetected`` instead of inf/NaN when a point is too far from every component.
        """
        with np.errstate(all="ignore"):
            out = kernels(_SCORE_MEMBER).log_density(*self._args(x, t))
        return self._finite("log_density", out)

    def score(self, x, t: float) -> np.ndarray:
        """Exact ``grad log p_t(x)`` (n, d): ``sum_k r_k(x) q_x``, ``r = softmax_k(log w_k + ell_k(x))``.

        Derived and proven in ``derive/score.py`` (see ``generated/gaussian_mixture_score.md``).
        The score of a Gaussian mixture is itself a softmax-weighted sum -- the reason a softmax
        network is a natural score model.
        """
        with np.errstate(all="ignore"):
            out = kernels(_SCORE_MEMBER).score(*self._args(x, t))
        return self._finite("score", out)

    def sample(self, n: int, t: float = 0.0, seed: int | np.random.Generator = 0) -> np.ndarray:
        """``n`` samples of ``p_t``."""
        return self.noised(n, t, seed)[1]

    def noised(self, n: int, t: float, seed: int | np.random.Generator = 0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x_0, x_t, z)`` with ``x_0 ~ p_0``, ``z ~ N(0, I)``, ``x_t = e^{-t} x_0 + sigma_t z``."""
        n = count("n", n, 1)
        fits("n", 8 * 4 * n * self.d, f"{n} samples in dimension {self.d}")
        t = positive("t", t, allow_zero=True)
        rng = np.random.default_rng(check_seed("seed", seed))
        comp = rng.choice(len(self.weights), size=n, p=self.weights)
        x0 = self.means[comp] + self.stds[comp, None] * rng.standard_normal((n, self.d))
        z = rng.standard_normal((n, self.d))
        return x0, np.exp(-t) * x0 + np.sqrt(1.0 - np.exp(-2 * t)) * z, z


def features(x) -> np.ndarray:
    """Network inputs ``(x, 1)``: the constant column is the first layer's bias."""
    x = as_array("x", x, 2)
    return np.hstack([x, np.ones((x.shape[0], 1))])


@dataclass
class ScoreModel:
    """A trained score network for one noise level ``t``."""

    net: TwoLayerNetwork
    t: float
    losses: np.ndarray

    def __call__(self, x) -> np.ndarray:
        return self.net.forward(features(x))

    @classmethod
    def from_result(cls, problem: TwoLayerRegression, res, t: float) -> "ScoreModel":
        """The model trained by ``res = softsym.minimize(problem, ...)`` on ``score_matching(gm, t, ...)``."""
        return cls(net=problem.net.with_weights(res.W), t=positive("t", t), losses=np.asarray(res.history["fun"]))


def score_matching(gm: GaussianMixture, t: float, m: int = 128, activation: str = "softmax", n: int = 2000,
                   seed: int = 0, kappa: float | None = None) -> TwoLayerRegression:
    """Denoising score matching at noise level ``t > 0`` as a problem: ``1/2 sum_i ||s(x_t,i) + z_i / sigma_t||^2``
    over the first layer of a vector-output two-layer network on the features ``(x_t, 1)``.

    Train it with ``res = softsym.minimize(problem, method="gd", maxiter=steps)`` (default step
    ``1 / lambda_max`` of the NTK at initialization, :mod:`softsym.solvers.network_gd`) and wrap
    the result with :meth:`ScoreModel.from_result`.  ``kappa`` is the output scale (default: the
    activation's, see :class:`~softsym.problems.two_layer.TwoLayerNetwork`).
    """
    t = positive("t", t)
    _, xt, z = gm.noised(n, t, seed)
    sigma = np.sqrt(1.0 - np.exp(-2 * t))
    net = TwoLayerNetwork(gm.d + 1, m, activation=activation, d_out=gm.d, kappa=kappa, seed=seed + 1)
    return TwoLayerRegression(net, features(xt), -z / sigma)


def score_error(gm: GaussianMixture, model, t: float, n: int = 4000, seed: int = 12345) -> float:
    """Relative L2 score error ``sqrt(E||s(x) - grad log p_t(x)||^2 / E||grad log p_t(x)||^2)``, ``x ~ p_t``."""
    x = gm.sample(n, t, seed)
    true = gm.score(x, t)
    return float(np.sqrt(np.mean(np.sum((model(x) - true) ** 2, axis=1)) / np.mean(np.sum(true**2, axis=1))))


def time_features(x, t) -> np.ndarray:
    """Inputs ``(x, t, 1)`` of a time-conditioned network: ``t`` a scalar or one value per row."""
    x = as_array("x", x, 2)
    n = x.shape[0]
    t = as_array("t", t, 1, (n,)) if np.ndim(t) else np.full(n, positive("t", t))
    if np.any(t <= 0):
        raise ValidationError("t must be > 0")
    return np.hstack([x, t[:, None], np.ones((n, 1))])


def _sigma(t) -> np.ndarray:
    return np.sqrt(-np.expm1(-2 * np.asarray(t, dtype=float)))


def score_matching_over_time(gm: GaussianMixture, t_min: float = 0.1, t_max: float = 2.0, m: int = 128,
                             activation: str = "softmax", n: int = 4000, seed: int = 0,
                             kappa: float | None = None) -> TwoLayerRegression:
    """Denoising score matching over noise levels ``t ~ U[t_min, t_max]`` with one time-conditioned network.

    The network sees ``(x_t, t, 1)`` and predicts the noise: the problem is
    ``1/2 sum_i ||F(W, (x_t,i, t_i, 1)) + z_i||^2``, the usual ``sigma_t^2``-weighted score-matching loss,
    whose minimizer is ``F = sigma_t grad log p_t``; the score model is ``s(x, t) = F / sigma_t``
    (:class:`TimeScoreModel`).  Train it with ``softsym.minimize(problem, method="gd", maxiter=steps)``;
    ``kappa`` as in :func:`score_matching`.
    """
    t_min, t_max = positive("t_min", t_min), positive("t_max", t_max)
    if t_max < t_min:
        raise ValidationError(f"t_max must be >= t_min, got t_min={t_min:g}, t_max={t_max:g}")
    n = count("n", n, 1)
    rng = np.random.default_rng(check_seed("seed", seed))
    t = rng.uniform(t_min, t_max, size=n)
    comp = rng.choice(len(gm.weights), size=n, p=gm.weights)
    x0 = gm.means[comp] + gm.stds[comp, None] * rng.standard_normal((n, gm.d))
    z = rng.standard_normal((n, gm.d))
    xt = np.exp(-t)[:, None] * x0 + _sigma(t)[:, None] * z
    net = TwoLayerNetwork(gm.d + 2, m, activation=activation, d_out=gm.d, kappa=kappa, seed=seed + 1)
    return TwoLayerRegression(net, time_features(xt, t), -z)


@dataclass
class TimeScoreModel:
    """A trained time-conditioned score network: ``s(x, t) = F(W, (x, t, 1)) / sigma_t`` for ``t`` in its range."""

    net: TwoLayerNetwork
    t_min: float
    t_max: float
    losses: np.ndarray

    def __call__(self, x, t: float) -> np.ndarray:
        t = positive("t", t)
        return self.net.forward(time_features(x, t)) / float(_sigma(t))

    def at(self, t: float):
        """The score at one noise level, as a function of ``x`` (e.g. for :func:`score_error`)."""
        t = positive("t", t)
        return lambda x: self(x, t)

    @classmethod
    def from_result(cls, problem: TwoLayerRegression, res, t_min: float, t_max: float) -> "TimeScoreModel":
        """The model trained by ``res = softsym.minimize(problem, ...)`` on :func:`score_matching_over_time`."""
        return cls(net=problem.net.with_weights(res.W), t_min=positive("t_min", t_min),
                   t_max=positive("t_max", t_max), losses=np.asarray(res.history["fun"]))
