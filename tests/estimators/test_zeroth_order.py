"""Zeroth-order estimators and ZO gradient descent (issue 5, docs/math.md §2).

Statistical tests use fixed seeds (so they are deterministic) and tolerances from the
central limit theorem: a sample mean of N i.i.d. draws is compared with its expectation
within Z_BOUND standard errors, the standard error being the sample standard deviation over
sqrt(N).  Z_BOUND = 5 makes a false failure (two-sided, per compared number) a ~6e-7 event
for any seed, while a wrong formula (e.g. swapping the Gaussian and sphere second moments,
or dropping the O(mu^2) bias) is off by more than 8 standard errors at the sizes used here.
"""

from __future__ import annotations

import numpy as np
import pytest

import softsym
from softsym import OverflowDetected, ValidationError
from softsym.estimators import zeroth_order as zo
from softsym.registry import kernels

Z_BOUND = 5.0
MEMBERS = [m.name for m in softsym.catalogue("normalized")]


def _instance(name="softmax", n=200, d=4, seed=1, w=0.1):
    inst = softsym.problems.normalized.synthetic(name, n, d, seed=seed, w=w)
    x = inst.x_star + 0.3 * np.random.default_rng(seed + 100).standard_normal(d)
    return inst, inst.objective(), x


# -- the generated batched kernel -------------------------------------------------------

@pytest.mark.parametrize("name", MEMBERS)
def test_batched_kernel_equals_a_loop_of_loss_calls(name):
    inst, obj, x = _instance(name, n=300, d=7, seed=3, w=0.2)
    k = kernels(name)
    Z = np.random.default_rng(4).standard_normal((6, 7))
    for mu in (1e-6, 1e-2, 0.3):
        out = k.loss_dirs_u(inst.A @ x, Z @ inst.A.T, mu, inst.b, inst.w)
        ref = np.array([[k.loss(inst.A, inst.b, inst.w, x + mu * z), k.loss(inst.A, inst.b, inst.w, x - mu * z)]
                        for z in Z])
        assert out.shape == (6, 2)
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=0)
        np.testing.assert_allclose(k.loss_dirs(inst.A, inst.b, inst.w, x, Z, mu), ref, rtol=1e-12, atol=0)


def test_vectorizable_exp_is_within_two_ulp_of_libm():
    """The batched kernels print exp as the generated arithmetic-only ``_exp``."""
    import math

    _exp = kernels("softmax")._exp
    xs = np.concatenate([np.linspace(-707.0, 709.78, 20001), np.linspace(-2.0, 2.0, 4001),
                         [0.0, -0.0, 1e-300, -1e-300, 709.782712893384]])
    got = np.array([_exp(v) for v in xs])
    ref = np.array([math.exp(v) for v in xs])
    assert np.max(np.abs(got - ref) / np.spacing(ref)) <= 2.0
    assert _exp(-707.5) == 0.0 and _exp(-np.inf) == 0.0  # flush below exp(-707) ~ 9e-308
    assert _exp(709.8) == np.inf and _exp(np.inf) == np.inf
    assert np.isnan(_exp(np.nan))


def test_vectorizable_cosh_sinh_are_within_four_ulp_of_libm():
    import math

    k = kernels("rescaled_sinh")
    xs = np.concatenate([np.linspace(-700.0, 700.0, 20001), np.linspace(-1.0, 1.0, 4001),
                         np.geomspace(1e-300, 0.6, 2000), -np.geomspace(1e-300, 0.6, 2000), [0.0, 0.5, -0.5]])
    for fast, ref_fn in ((k._cosh, math.cosh), (k._sinh, math.sinh)):
        got = np.array([fast(v) for v in xs])
        ref = np.array([ref_fn(v) for v in xs])
        ulps = np.abs(got - ref) / np.maximum(np.spacing(np.abs(ref)), np.finfo(float).tiny)
        assert np.max(ulps) <= 4.0, (fast, xs[np.argmax(ulps)], np.max(ulps))
    assert k._cosh(720.0) == np.inf and k._sinh(-720.0) == -np.inf
    assert np.isnan(k._cosh(np.nan)) and np.isnan(k._sinh(np.nan))
    assert math.copysign(1.0, k._sinh(-0.0)) == -1.0


def test_batched_kernel_is_shift_safe_for_softmax():
    """Per-direction max shift: huge u (exp would overflow unshifted) still gives finite losses."""
    inst, obj, x = _instance("softmax", n=100, d=3)
    k = kernels("softmax")
    u = inst.A @ x + 2000.0
    V = np.random.default_rng(0).standard_normal((4, 100))
    out = k.loss_dirs_u(u, V, 0.5, inst.b, np.zeros(100))
    ref = [[k.loss_u(u + s * 0.5 * v, inst.b, np.zeros(100)) for s in (1, -1)] for v in V]
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref, rtol=1e-12)


# -- directions and seed replay -------------------------------------------------------

@pytest.mark.parametrize("kind", zo.KINDS)
def test_directions_are_pure_functions_of_seed_and_index(kind):
    Z = zo.directions(9, 5, kind, seed=42)
    assert Z.shape == (5, 9)
    np.testing.assert_array_equal(Z, zo.directions(9, 5, kind, seed=42))
    for k in range(5):
        np.testing.assert_array_equal(zo.direction(9, k, kind, seed=42), Z[k])
    np.testing.assert_array_equal(zo.directions(9, 2, kind, seed=42, start=3), Z[3:])
    assert not np.array_equal(Z, zo.directions(9, 5, kind, seed=43))
    if kind == "sphere":
        np.testing.assert_allclose(np.sum(Z**2, axis=1), 9.0, rtol=1e-14)


def test_gaussian_directions_have_identity_covariance():
    Z = zo.directions(3, 40000, "gaussian", seed=7)
    n = Z.shape[0]
    # entries of z z^T have variance 1 (off-diagonal) or 2 (diagonal): standard error sqrt(var/n)
    C = Z.T @ Z / n
    se = np.sqrt(np.where(np.eye(3) > 0, 2.0, 1.0) / n)
    assert np.all(np.abs(C - np.eye(3)) <= Z_BOUND * se)
    assert np.all(np.abs(Z.mean(axis=0)) <= Z_BOUND / np.sqrt(n))


@pytest.mark.parametrize("kind", zo.KINDS)
def test_seed_replay_is_bit_exact(kind):
    inst, obj, x = _instance("softmax", d=6)
    g, est = zo.estimate(obj, x, K=7, mu=1e-4, kind=kind, seed=123)
    for block in (1, 3, 7, 100):
        np.testing.assert_array_equal(est.grad(block), g)  # bit for bit
    g2, est2 = zo.estimate(obj, x, K=7, mu=1e-4, kind=kind, seed=123)
    np.testing.assert_array_equal(g2, g)
    np.testing.assert_array_equal(est2.losses, est.losses)
    # memory-lean mode (one direction per product): same directions, its own bit-exact replay
    g3, est3 = zo.estimate(obj, x, K=7, mu=1e-4, kind=kind, seed=123, block=1)
    np.testing.assert_array_equal(est3.grad(), g3)
    np.testing.assert_allclose(g3, g, rtol=1e-9, atol=1e-12 * np.linalg.norm(g))
    # the stored state is O(d + K): a seed and K coefficients
    assert isinstance(est.seed, int) and est.coef.shape == (7,)
    # a Generator seed draws one stream seed: reproducible given the Generator's seed
    ga, _ = zo.estimate(obj, x, K=3, seed=np.random.default_rng(5))
    gb, _ = zo.estimate(obj, x, K=3, seed=np.random.default_rng(5))
    np.testing.assert_array_equal(ga, gb)


def test_zo_gd_path_replays_bit_exactly_from_seeds():
    inst, obj, x0 = _instance("softmax", d=5)
    res = softsym.minimize(obj, x0, method="zo", K=3, maxiter=25, tol=0.0, seed=9)
    assert len(res.zo_record) == res.nit == 25
    np.testing.assert_array_equal(zo.replay_path(x0, res.zo_record, "gaussian"), res.x)


def test_estimator_counts_loss_evaluations():
    inst, obj, x = _instance()
    before = obj.nfev
    zo.estimate(obj, x, K=5, seed=0)
    assert obj.nfev - before == 10


# -- statistics of the estimator --------------------------------------------------------

def _draws(obj, x, K, kind, mu, N, seed0=0):
    return np.array([zo.estimate(obj, x, K=K, mu=mu, kind=kind, seed=seed0 + s)[0] for s in range(N)])


@pytest.mark.parametrize("kind", zo.KINDS)
def test_estimator_mean_is_the_gradient_as_mu_goes_to_zero(kind):
    inst, obj, x = _instance("softmax", d=4)
    g = obj.jac(x)
    N = 3000
    G = _draws(obj, x, 2, kind, 1e-6, N)
    se = G.std(axis=0, ddof=1) / np.sqrt(N)
    assert np.all(np.abs(G.mean(axis=0) - g) <= Z_BOUND * se), (G.mean(axis=0), g, se)


def test_estimator_bias_vanishes_like_mu_squared():
    """With common directions, g_hat(mu) - g_hat(0) = (mu^2/6) mean_k D3L[z,z,z] z + O(mu^4):
    halving mu divides it by 4 (up to O(mu^2) relative), and it vanishes as mu -> 0."""
    inst, obj, x = _instance("softmax", d=4, w=0.0)
    g = obj.jac(x)
    seeds = range(300)
    ref = []
    for s in seeds:  # mu -> 0 limit with the same directions: (1/K) sum_k z_k z_k^T grad L
        Z = zo.directions(4, 3, "gaussian", seed=s)
        ref.append(Z.T @ (Z @ g) / 3)
    ref = np.mean(ref, axis=0)
    bias = {mu: np.linalg.norm(_draws(obj, x, 3, "gaussian", mu, len(seeds)).mean(axis=0) - ref)
            for mu in (0.04, 0.02, 0.01, 1e-5)}
    assert 3.6 <= bias[0.04] / bias[0.02] <= 4.4
    assert 3.8 <= bias[0.02] / bias[0.01] <= 4.2
    assert bias[1e-5] <= 1e-6 * bias[0.01]


@pytest.mark.parametrize("kind,K", [("gaussian", 1), ("sphere", 1), ("gaussian", 4), ("sphere", 4)])
def test_second_moment_matches_theory(kind, K):
    """E||g_hat||^2 = ((d+K+1)/K)||grad L||^2 (Gaussian), ((d+K-1)/K)||grad L||^2 (sphere)."""
    d, N = 4, 6000
    inst, obj, x = _instance("softmax", d=d)
    g = obj.jac(x)
    r = np.sum(_draws(obj, x, K, kind, 1e-6, N, seed0=1000) ** 2, axis=1) / (g @ g)
    se = r.std(ddof=1) / np.sqrt(N)
    want = zo.second_moment_factor(d, K, kind)
    other = zo.second_moment_factor(d, K, "sphere" if kind == "gaussian" else "gaussian")
    assert abs(r.mean() - want) <= Z_BOUND * se, (r.mean(), want, se)
    if K == 1:  # the test can tell the two formulas apart
        assert abs(r.mean() - other) > Z_BOUND * se


# -- ZO gradient descent ------------------------------------------------------------------

@pytest.mark.parametrize("name,w", [("softmax", 0.05), ("rescaled_exp", 0.0), ("rescaled_cosh", 0.0)])
def test_zo_gd_converges(name, w):
    inst = softsym.problems.normalized.synthetic(name, 400, 10, seed=4, w=w)
    obj = inst.objective()
    x0 = np.random.default_rng(5).standard_normal(10) * 0.1
    res = softsym.minimize(obj, x0, method="zo", K=4, tol=1e-6, maxiter=5000, seed=1)
    assert res.success and res.status == 0, res.message
    assert res.rel_grad_norm <= 1e-6
    x_ref = softsym.minimize(obj, x0, method="newton", tol=1e-12).x  # = x_star when w = 0
    assert np.linalg.norm(res.x - x_ref) <= 1e-4 * max(1.0, np.linalg.norm(x_ref))
    assert np.all(np.diff(res.history["fun"]) <= 1e-12 * (1 + abs(res.history["fun"][0])))  # monotone
    # nfev counts only loss evaluations: 2K per iteration plus at least one line-search trial
    assert res.nfev >= (2 * 4 + 1) * res.nit
    assert res.njev == res.nit + 1  # the true gradient, for reporting/stopping only


def test_zo_gd_iteration_ratio_scales_like_d_over_k():
    """Iterations to rel. gradient 1e-6, ZO-GD (line search) against GD (line search) on one instance.

    Theory (expected decrease per step): ZO needs about (d+K)/K times as many iterations.  The
    line search along -g_hat adapts to the curvature of the sampled subspace, which makes ZO
    somewhat better than that worst-case factor on well-spread spectra, so the band is
    [1/3, 3] around (d+K)/K, and the ratio must fall as K grows.
    """
    d = 20
    inst = softsym.problems.normalized.synthetic("softmax", 400, d, seed=4, w=0.05)
    obj = inst.objective()
    x0 = np.random.default_rng(5).standard_normal(d) * 0.1
    gd = softsym.minimize(obj, x0, method="gd", tol=1e-6)
    assert gd.success
    ratios = {}
    for K in (1, 4, 16):
        res = softsym.minimize(obj, x0, method="zo", K=K, tol=1e-6, maxiter=20000, seed=1)
        assert res.success, res.message
        ratios[K] = res.nit / gd.nit
        print(f"d={d} K={K}: ZO {res.nit} it / GD {gd.nit} it = {ratios[K]:.2f}; (d+K)/K = {(d + K) / K:.2f}")
        assert 1 / 3 <= ratios[K] / ((d + K) / K) <= 3
    assert ratios[1] > ratios[4] > ratios[16]


def test_fixed_step_and_estimate_state():
    """lr = K/((d+K) l) from the curvature at the solution converges; true_grad=False stores g_hat."""
    d, K = 8, 4
    inst = softsym.problems.normalized.synthetic("softmax", 300, d, seed=2, w=0.1)
    obj = inst.objective()
    ell = float(np.linalg.eigvalsh(obj.hess(inst.x_star))[-1])
    x0 = np.full(d, 0.05)
    res = softsym.minimize(obj, x0, method="zo", K=K, lr=K / ((d + K) * ell), tol=1e-5, maxiter=20000, seed=3)
    assert res.success, res.message
    res2 = softsym.minimize(obj, x0, method="zo", K=K, true_grad=False, tol=0.0, maxiter=300, seed=3)
    assert res2.status == 1 and res2.njev == 0
    assert res2.nfev >= 2 * K * 301
    assert res2.fun < 1e-3 * res2.history["fun"][0] + obj.fun(inst.x_star)


def test_bad_input_is_rejected():
    inst, obj, x = _instance()
    with pytest.raises(ValidationError, match="K"):
        zo.estimate(obj, x, K=0)
    with pytest.raises(ValidationError, match="mu"):
        zo.estimate(obj, x, mu=-1.0)
    with pytest.raises(ValidationError, match="kind"):
        zo.estimate(obj, x, kind="uniform")
    with pytest.raises(ValidationError, match="seed"):
        zo.estimate(obj, x, seed=-3)
    with pytest.raises(ValidationError, match="x"):
        zo.estimate(obj, np.ones(3))
    with pytest.raises(ValidationError, match="unexpected|unknown|K"):
        softsym.minimize(obj, x, method="zo", K=1.5)


def test_overflow_is_reported_not_returned():
    inst, obj, x = _instance("rescaled_exp", d=4, w=0.0)
    with pytest.raises(OverflowDetected):
        zo.estimate(obj, x, K=4, mu=1e3)
    res = softsym.minimize(obj, x, method="zo", K=2, lr=1e6, maxiter=50, seed=0)
    assert not res.success and res.status == 3
