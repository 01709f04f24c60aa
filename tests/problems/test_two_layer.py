"""Two-layer networks (paper 004): generated gradient, closed-form NTK, GD training, proofs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import softsym
from softsym.derive.catalogue import TWO_LAYER
from softsym.derive.families import two_layer as dntk
from softsym.derive.proof import ProofError
from softsym.errors import OverflowDetected, ValidationError
from softsym.problems.two_layer import TwoLayerNetwork, TwoLayerRegression, activations, regression_task, steps_to

ACTS = ("softmax", "relu", "exp")


def _data(n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True), rng


def test_catalogue_has_the_three_networks():
    assert set(activations()) == set(ACTS)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("d_out", [None, 3])
def test_gradient_matches_finite_differences(act, d_out):
    n, d, m = 6, 4, 10
    X, rng = _data(n, d, 1)
    net = TwoLayerNetwork(d, m, activation=act, d_out=d_out, seed=2, symmetric=False)
    y = rng.standard_normal(n if d_out is None else (n, d_out))
    W = net.W + 0.1 * rng.standard_normal(net.W.shape)
    if act == "relu":  # keep every pre-activation away from the kink so central differences are valid
        U = X @ W
        assert np.min(np.abs(U)) > 1e-3
    loss, grad = net.loss_grad(X, y, W)
    h = 1e-6
    fd = np.empty_like(W)
    for k in range(d):
        for r in range(m):
            E = np.zeros_like(W)
            E[k, r] = h
            fd[k, r] = (net.loss_grad(X, y, W + E)[0] - net.loss_grad(X, y, W - E)[0]) / (2 * h)
    assert np.allclose(grad, fd, rtol=1e-6, atol=1e-7 * max(1.0, np.abs(grad).max()))
    F = net.forward(X, W)
    assert loss == pytest.approx(0.5 * np.sum((F - y) ** 2), rel=1e-12)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("d_out", [None, 3])
def test_fused_loss_grad_equals_the_jacobian_contraction(act, d_out):
    """The one-sweep loss_grad kernel agrees with forward and J^T r from the unfused kernels, at
    a width that is not a multiple of the vector length, and leaves its inputs untouched."""
    n, d, m = 37, 5, 67
    X, rng = _data(n, d, 5)
    net = TwoLayerNetwork(d, m, activation=act, d_out=d_out, seed=6, symmetric=False, init_scale=2.0)
    y = rng.standard_normal(n if d_out is None else (n, d_out))
    W = net.W + 0.3 * rng.standard_normal(net.W.shape)
    W_before, X_before = W.copy(), X.copy()
    loss, grad = net.loss_grad(X, y, W)
    assert np.array_equal(W, W_before) and np.array_equal(X, X_before)
    F = net.forward(X, W)
    r = (F - y).reshape(-1)
    assert loss == pytest.approx(0.5 * np.sum(r * r), rel=1e-12)
    g_ref = (net.jacobian(X, W).T @ r).reshape(d, m)
    assert np.allclose(grad, g_ref, rtol=1e-11, atol=1e-12 * np.abs(g_ref).max())


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("d_out", [None, 2])
def test_loss_grad_region_is_loss_grad_plus_the_preactivation_maxima(act, d_out):
    """The tracking kernel returns loss_grad's bits and max |X W|, max |X W - U0| of the same sweep."""
    n, d, m = 23, 4, 45
    X, rng = _data(n, d, 7)
    net = TwoLayerNetwork(d, m, activation=act, d_out=d_out, seed=8, symmetric=False)
    prob = TwoLayerRegression(net, X, rng.standard_normal(n if d_out is None else (n, d_out)))
    w = net.W.ravel() + 0.2 * rng.standard_normal(prob.d)
    U0 = prob.preactivations(net.W.ravel())
    f, g, big, dif = prob.fun_and_jac_region(w, U0)
    ref = TwoLayerRegression(net, prob.X, prob.y).fun_and_jac(w)
    assert f == ref[0] and np.array_equal(g, ref[1])
    U = X @ w.reshape(d, m)
    assert big == np.max(np.abs(U)) and dif == pytest.approx(np.max(np.abs(U - U0)), rel=1e-14)


@pytest.mark.parametrize("act", ACTS)
def test_jacobian_matches_finite_differences(act):
    n, d, m = 4, 3, 6
    X, rng = _data(n, d, 3)
    net = TwoLayerNetwork(d, m, activation=act, d_out=2, seed=4, symmetric=False)
    J = net.jacobian(X)
    h = 1e-6
    fd = np.empty_like(J)
    for p in range(d * m):
        E = np.zeros(d * m)
        E[p] = h
        fd[:, p] = ((net.forward(X, net.W + E.reshape(d, m)) - net.forward(X, net.W - E.reshape(d, m))) / (2 * h)).ravel()
    assert np.allclose(J, fd, rtol=1e-6, atol=1e-7 * np.abs(J).max())


def test_softmax_gradient_rows_match_paper_form():
    """docs/math.md §4: g = kappa (a - <a, f>) o f, f = softmax(W^T x)."""
    X, _ = _data(5, 4, 5)
    net = TwoLayerNetwork(4, 12, seed=6, symmetric=False)
    U = X @ net.W
    f = np.exp(U - U.max(axis=1, keepdims=True))
    f /= f.sum(axis=1, keepdims=True)
    a = net.a[:, 0]
    g = net.kappa * (a[None, :] - (f @ a)[:, None]) * f
    assert np.allclose(net.jac_rows(X), g, rtol=1e-13, atol=1e-13 * np.abs(g).max())
    assert np.allclose(net.forward(X), net.kappa * f @ a, rtol=1e-13)


@settings(max_examples=25, deadline=None)
@given(act=st.sampled_from(ACTS), n=st.integers(1, 9), d=st.integers(1, 5), half=st.integers(1, 12),
       d_out=st.sampled_from([None, 1, 2, 3]), seed=st.integers(0, 2**16), scale=st.floats(0.1, 3.0))
def test_ntk_closed_form_equals_jacobian_contraction(act, n, d, half, d_out, seed, scale):
    X, _ = _data(n, d, seed)
    net = TwoLayerNetwork(d, 2 * half, activation=act, d_out=d_out, seed=seed, init_scale=scale)
    J = net.jacobian(X)
    H_ref = J @ J.T
    H = net.ntk(X)
    assert H.shape == H_ref.shape == (n * net.d_out,) * 2
    assert np.array_equal(H, H.T)
    norm = np.linalg.norm(H_ref)
    assert np.linalg.norm(H - H_ref) <= 1e-12 * norm + 1e-300


def test_lam_max_from_both_sides_agree():
    X, _ = _data(40, 2, 7)   # n*c = 80 > d*m = 16: the Gauss-Newton side is used
    net = TwoLayerNetwork(2, 8, d_out=2, seed=7)
    assert net.lam_max(X) == pytest.approx(np.linalg.eigvalsh(net.ntk(X))[-1], rel=1e-10)


def test_symmetric_init_gives_zero_output_and_same_seed_same_bits():
    X, _ = _data(7, 5, 8)
    for act in ACTS:
        net = TwoLayerNetwork(5, 16, activation=act, d_out=2, seed=9)
        assert np.abs(net.forward(X)).max() <= 1e-12 * max(1.0, net.kappa)
        again = TwoLayerNetwork(5, 16, activation=act, d_out=2, seed=9)
        assert np.array_equal(net.W, again.W) and np.array_equal(net.a, again.a)


def _train(net, X, y, steps, **options):
    return softsym.minimize(TwoLayerRegression(net, X, y), method="gd", maxiter=steps, **options)


def test_training_loss_decreases_linearly_overparametrized():
    X, y = regression_task(n=16, d=8, seed=0)
    net = TwoLayerNetwork(8, 512, seed=0)
    W0 = net.W.copy()
    res = _train(net, X, y, 60, record=True)
    assert res.nit == 60 and res.status == 1
    assert res.lr == pytest.approx(1.0 / res.lam_max0) and res.lr_rule == "1/lambda_max(H(W_0))"
    loss = np.asarray(res.history["fun"])
    lam0 = res.lam_min[0]
    assert lam0 > 0 and res.lam_min.shape == res.ntk_drift.shape == loss.shape == (61,)
    # Linear convergence at the rate the NTK predicts: every step contracts the loss by at
    # least (1 - lr * lambda_min(H_t) / 2) -- the linearized rate is (1 - lr lambda_min)^2.
    ratios = loss[1:] / loss[:-1]
    assert np.all(ratios <= 1 - res.lr * res.lam_min[:-1] / 2)
    # ... because the NTK barely moves: drift stays far below lambda_min(H_0) (the perturbation condition).
    assert res.ntk_drift.max() < 0.25 * lam0
    assert loss[-1] < 1e-3 * loss[0]
    # the result carries W; the network is left as it was
    assert res.W.shape == (8, 512) and np.array_equal(res.W.ravel(), res.x)
    assert np.array_equal(net.W, W0)
    assert net.loss_grad(X, y, res.W)[0] == pytest.approx(res.fun, rel=1e-14)


def test_training_matches_the_gradient_descent_recursion():
    """Each iterate is exactly W - lr grad L(W) with the network's own gradient."""
    X, y = regression_task(n=6, d=4, seed=3)
    net = TwoLayerNetwork(4, 16, activation="exp", seed=3)
    lr = 0.5 / net.lam_max(X)
    res = _train(net, X, y, 3, lr=lr)
    assert res.nit == 3
    W = net.W.copy()
    for _ in range(3):
        W = W - lr * net.loss_grad(X, y, W)[1]
    np.testing.assert_array_equal(res.W, W)
    assert res.lr_rule == "given" and np.isnan(res.lam_max0)


def test_ntk_drift_shrinks_with_width():
    X, y = regression_task(n=16, d=8, seed=1)
    drifts = [_train(TwoLayerNetwork(8, m, seed=1), X, y, 30, record=True).ntk_drift.max() for m in (32, 512)]
    lam = [TwoLayerNetwork(8, m, seed=1).lam_max(X) for m in (32, 512)]
    assert drifts[1] / lam[1] < 0.2 * drifts[0] / lam[0]


def test_loss_tol_stops_and_steps_to():
    X, y = regression_task(n=12, d=6, seed=2)
    res = _train(TwoLayerNetwork(6, 128, activation="relu", seed=2), X, y, 500, loss_tol=1e-2)
    loss = np.asarray(res.history["fun"])
    assert res.success and res.status == 0 and "loss_tol" in res.message
    assert loss[-1] <= 1e-2 * loss[0] < loss[-2]
    assert steps_to(loss, 1e-2) == res.nit
    assert steps_to(loss, 1e-30) is None


def test_solver_is_stateless_and_training_deterministic():
    X, y = regression_task(n=8, d=4, seed=5)
    prob = TwoLayerRegression(TwoLayerNetwork(4, 32, seed=5), X, y)
    a = softsym.minimize(prob, maxiter=20, record=True)
    b = softsym.minimize(prob, maxiter=20, record=True)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.lam_min, b.lam_min)
    assert a.lam_min.shape == (21,)
    # a restart from the result continues from there
    c = softsym.minimize(prob, a.W, maxiter=5)
    assert c.history["fun"][0] == a.fun


def test_problem_is_an_objective():
    X, y = regression_task(n=5, d=3, seed=6)
    prob = TwoLayerRegression(TwoLayerNetwork(3, 8, seed=6), X, y)
    assert isinstance(prob, softsym.Objective) and prob.family == "two_layer" and prob.d == 24
    w = prob.start()
    f, g = prob.fun_and_jac(w)
    assert (f, prob.njev) == (prob.fun(w), 1)  # memoized: one kernel call
    g[0] += 1.0  # the caller owns the array
    assert prob.jac(w)[0] != g[0]


def test_bad_input():
    X, _ = _data(5, 3, 0)
    with pytest.raises(ValidationError, match="activation"):
        TwoLayerNetwork(3, 8, activation="tanh")
    with pytest.raises(ValidationError, match="even"):
        TwoLayerNetwork(3, 7)
    with pytest.raises(ValidationError, match="m must"):
        TwoLayerNetwork(3, 0)
    with pytest.raises(ValidationError, match="kappa"):
        TwoLayerNetwork(3, 8, kappa=-1.0)
    net = TwoLayerNetwork(3, 8)
    with pytest.raises(ValidationError, match="X"):
        net.ntk(X[:, :2])
    with pytest.raises(ValidationError, match="non-finite"):
        net.forward(np.where(X > 0.5, np.nan, X))
    with pytest.raises(ValidationError, match="y"):
        TwoLayerRegression(net, X, np.zeros(4))
    with pytest.raises(ValidationError, match="lr"):
        softsym.minimize(TwoLayerRegression(net, X, np.zeros(5)), lr=0.0)
    with pytest.raises(ValidationError, match="net"):
        TwoLayerRegression("net", X, np.zeros(5))
    with pytest.raises(ValidationError, match="x0"):
        softsym.minimize(TwoLayerRegression(net, X, np.zeros(5)), np.zeros((3, 7)))
    with pytest.raises(ValidationError, match="y"):
        TwoLayerNetwork(3, 8, d_out=2).loss_grad(X, np.zeros(5))


def test_exp_overflow_is_detected():
    X, _ = _data(4, 3, 0)
    net = TwoLayerNetwork(3, 8, activation="exp", init_scale=1e3, seed=0)
    with pytest.raises(OverflowDetected):
        net.ntk(X * 10)


def test_softmax_is_overflow_free():
    X, _ = _data(4, 3, 0)
    net = TwoLayerNetwork(3, 8, init_scale=1e3, seed=0)
    assert np.all(np.isfinite(net.ntk(X * 10)))


def test_prover_refuses_a_wrong_gradient():
    spec = next(s for s in TWO_LAYER if s.activation == "exp")
    f = dntk.derive(spec)
    assert dntk.prove(f)
    bad = dataclasses.replace(f, h_u=f.h_u * (1 + dntk.u / 100))
    with pytest.raises(ProofError, match="dF_c"):
        dntk.prove(bad)


def test_prover_refuses_a_missing_normalizer_term():
    spec = next(s for s in TWO_LAYER if s.activation == "softmax")
    f = dntk.derive(spec)
    bad = dataclasses.replace(f, phi_u=f.phi_u * 0)   # drops the S phi' coupling of softmax
    with pytest.raises(ProofError):
        dntk.prove(bad)


def test_spec_validation():
    with pytest.raises(ValueError, match="unknown symbols"):
        dntk.TwoLayerSpec(name="bad", doc="-", paper="-", activation="bad", sigma=dntk.a * dntk.u, kappa=dntk.m)
    with pytest.raises(ValueError, match="shift invariance"):
        dntk.TwoLayerSpec(name="bad", doc="-", paper="-", activation="bad", sigma=dntk.u, kappa=dntk.m,
                          shift_invariant=True)


def test_generation_refuses_to_emit_an_unproven_member(monkeypatch):
    from softsym.derive import pipeline as generate

    spec = next(s for s in TWO_LAYER if s.activation == "exp")
    good = dntk.derive

    def wrong(s):
        f = good(s)
        return dataclasses.replace(f, h_u=2 * f.h_u)

    monkeypatch.setattr(dntk, "derive", wrong)
    with pytest.raises(ProofError, match="refusing to emit"):
        generate.build([spec])


def test_with_weights_shares_the_network_but_not_its_first_layer():
    net = TwoLayerNetwork(3, 8, seed=0)
    W0 = net.W.copy()
    other = net.with_weights(np.ones((3, 8)))
    assert np.array_equal(net.W, W0) and np.array_equal(other.W, np.ones((3, 8)))
    assert other.a is net.a and other.kappa == net.kappa and other.activation == net.activation
    with pytest.raises(ValidationError, match="W"):
        net.with_weights(np.ones((8, 3)))
