"""Two-layer training reports its certified region (softsym.minimize -> theory.two_layer.training_report)."""


import numpy as np
import pytest

import softsym
from softsym.errors import ValidationError
from softsym.problems.mixture_score import GaussianMixture, score_matching
from softsym.problems.two_layer import TwoLayerNetwork, TwoLayerRegression
from softsym.theory import two_layer as tl


def _near_problem(act="exp", rho=1e-6, c=None, seed=0):
    """A small problem where the GD theorem's condition holds (target close to F(W0))."""
    rng = np.random.default_rng(seed)
    n, d, m = 4, 3, 8
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    net = TwoLayerNetwork(d, m, activation=act, seed=seed, init_scale=0.5, symmetric=False, d_out=c)
    F0 = net.forward(X)
    z = rng.standard_normal(F0.shape)
    return TwoLayerRegression(net, X, F0 + rho * z / np.linalg.norm(z))


def _path(prob, **kw):
    Ws = [prob.net.W.copy()]
    res = softsym.minimize(prob, callback=lambda r: Ws.append(prob.weights(r.x)), **kw)
    return res, Ws


@pytest.mark.parametrize("act,c", [("exp", None), ("softmax", None), ("exp", 2)])
def test_certified_run_is_reported_global_and_tracking_matches_the_path(act, c):
    prob = _near_problem(act, rho=1e-6 if c is None else 1e-8, c=c)
    res, Ws = _path(prob, lr="certified", maxiter=40, tol=0, gtol_abs=0)
    cert = res.certificate
    assert cert["holds"] and cert["c"] == (c or 1), cert
    assert res.lr == cert["lr_certified"] and res.lr_rule.startswith("certified")
    assert res.guarantee == "global", res.guarantee_message
    g = tl.guarantee(prob.net, prob.X, prob.y)
    rep = tl.check_run(prob.net, prob.X, Ws, g)
    reg = res.region
    assert reg["D"] == pytest.approx(rep.D.max(), rel=1e-12, abs=1e-300)
    assert reg["max_abs_u"] == pytest.approx(rep.max_abs_u.max(), rel=1e-12)
    assert reg["w_drift"] == pytest.approx(rep.w_drift.max(), rel=1e-12, abs=1e-300)
    assert reg["inside"] and reg["D"] <= cert["drift"] and reg["lam_min_certified"] >= cert["lam0"] / 2
    # the theorem's contraction holds for the reported run
    L = np.asarray(res.history["fun"])
    assert np.all(L <= L[0] * (1 - res.lr * cert["lam0"] / 2) ** np.arange(L.size) * (1 + 1e-9))


def test_run_forced_outside_the_region_is_reported_outside():
    prob = _near_problem("exp")
    g = tl.guarantee(prob.net, prob.X, prob.y)
    assert g.holds
    res, Ws = _path(prob, lr=3e3 * g.lr, maxiter=20, tol=0, gtol_abs=0)
    reg = res.region
    assert res.guarantee == "none"
    assert not reg["inside_radius"] and reg["D"] > g.radius
    assert "step" in res.guarantee_message and "left the radius" in res.guarantee_message
    assert reg["D"] == pytest.approx(tl.check_run(prob.net, prob.X, Ws, g).D.max(), rel=1e-12)
    assert reg["lam_min_certified"] < g.lam0 / 2


def test_step_above_certified_alone_loses_the_guarantee():
    prob = _near_problem("exp")
    g = tl.guarantee(prob.net, prob.X, prob.y)
    res = softsym.minimize(prob, lr=1.5 * g.lr, maxiter=5)
    assert res.region["inside"] and res.guarantee == "none" and "certified" in res.guarantee_message


def test_unmet_assumptions_are_reported_never_raised():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6, 3)) * 3          # ||x_i|| > 1
    net = TwoLayerNetwork(3, 8, activation="softmax", seed=0)
    res = softsym.minimize(TwoLayerRegression(net, X, rng.standard_normal(6)), maxiter=3)
    assert res.guarantee == "none" and "||x_i||_2 <= 1" in res.guarantee_message
    assert not res.certificate["holds"] and res.region["D"] > 0 and not res.region["inside"]
    Xu = X / np.linalg.norm(X, axis=1, keepdims=True)
    relu = TwoLayerRegression(TwoLayerNetwork(3, 8, activation="relu", seed=0), Xu, rng.standard_normal(6))
    res = softsym.minimize(relu, maxiter=3)
    assert res.guarantee == "none" and "no deterministic" in res.guarantee_message
    with pytest.raises(ValidationError, match="certified.*no deterministic"):
        softsym.minimize(relu, lr="certified", maxiter=3)
    with pytest.raises(ValidationError, match="lr"):
        softsym.minimize(relu, lr="fast", maxiter=3)


def test_certify_false_skips_tracking_and_says_so():
    prob = _near_problem("exp")
    on = softsym.minimize(prob, maxiter=5)
    off = softsym.minimize(prob, maxiter=5, certify=False)
    assert "region" in on and "region" not in off
    assert off.guarantee == "none" and "certify=False" in off.guarantee_message
    np.testing.assert_array_equal(on.x, off.x)
    with pytest.raises(ValidationError, match="certify"):
        softsym.minimize(prob, maxiter=5, certify="yes")


def test_score_matching_result_says_whether_the_certificate_holds():
    gm = GaussianMixture.ring(k=3, d=2)
    prob = score_matching(gm, t=0.5, m=16, n=40, seed=0)
    res = softsym.minimize(prob, maxiter=3)                       # features (x, 1): ||x_i|| > 1
    assert res.guarantee == "none" and "||x_i||_2 <= 1" in res.guarantee_message
    X = prob.X / np.linalg.norm(prob.X, axis=1, keepdims=True)   # the bounds' ||x_i|| <= 1
    # n c = 80 targets, d m = 48 weights: H is singular, said without an eigendecomposition
    res = softsym.minimize(TwoLayerRegression(prob.net, X, prob.y), maxiter=3)
    cert = res.certificate
    assert cert["c"] == 2 and cert["n"] == 40 and not cert["holds"] and cert["lam0"] == 0
    assert res.guarantee == "none" and "rank <= d m = 48" in res.guarantee_message
    assert cert["lr_certified"] > 0
    # fewer targets than weights: lam0 > 0 is measured, and the condition fails by a reported factor
    net = TwoLayerNetwork(3, 16, d_out=2, symmetric=False, seed=1)
    res = softsym.minimize(TwoLayerRegression(net, X[:8], prob.y[:8]), maxiter=3)
    cert = res.certificate
    assert cert["lam0"] > 0 and not cert["holds"] and "not certified" in res.guarantee_message
    assert cert["margin"] < 1


def test_screen_skips_the_eigendecomposition_only_when_the_bound_already_fails(monkeypatch):
    gm = GaussianMixture.ring(k=3, d=2)
    p = score_matching(gm, t=0.5, m=16, n=40, seed=0)
    X = p.X / np.linalg.norm(p.X, axis=1, keepdims=True)
    net = TwoLayerNetwork(3, 16, d_out=2, symmetric=False, seed=1)
    exact = tl.guarantee(net, X[:20], p.y[:20])
    monkeypatch.setattr(tl, "SCREEN_ROWS", 0)
    screened = tl.guarantee(net, X[:20], p.y[:20])
    assert exact.lam0_exact and not screened.lam0_exact and not screened.holds
    assert screened.lam0 >= exact.lam0 and screened.drift <= exact.drift * (1 + 1e-12)
    near = _near_problem("exp", c=2, rho=1e-8)
    g = tl.guarantee(near.net, near.X, near.y)        # holds: the screen cannot decide, lam0 is exact
    assert g.holds and g.lam0_exact
