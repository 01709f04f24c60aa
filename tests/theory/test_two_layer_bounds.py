"""Derived two-layer constants (softsym.theory.two_layer): never violated, and tight where claimed.

The tightness tests evaluate worst cases of the derivation; each would fail if the constant it
tests were halved (measured / bound > 1/2 there).
"""

import itertools
import math

import numpy as np
import pytest

import softsym
from softsym.errors import ValidationError
from softsym.problems.two_layer import TwoLayerNetwork
from softsym.registry import kernels
from softsym.theory import two_layer as tl


def _g(name, U, a, kappa):
    return kernels(name).jac_rows(np.ascontiguousarray(np.atleast_2d(U)), a, kappa)


def _ntk(name, W, X, a, kappa):
    return kernels(name).ntk(np.ascontiguousarray(W), np.ascontiguousarray(X), a, kappa)


@pytest.mark.parametrize("act", ["softmax", "exp", "relu"])
def test_certify_finds_no_violation(act):
    cert = tl.certify(act, restarts=2, maxiter=120, seed=3)
    assert not cert.violations, cert.table()
    assert all(0 < r.max_ratio <= 1 + 1e-9 for r in cert.rows), cert.table()   # attained bounds: rounding
    if act != "relu":
        assert cert.gd["certified"] and cert.gd["ok"], cert.gd


@pytest.mark.parametrize("act", ["softmax", "exp"])
def test_random_networks_respect_every_bound(act):
    name = tl.member_name(act)
    rng = np.random.default_rng(7)
    n, d, m = 5, 3, 16
    kap = kernels(name).default_kappa(m)
    for _ in range(25):
        X = rng.standard_normal((n, d))
        X /= np.linalg.norm(X, axis=1, keepdims=True) * rng.uniform(1, 2, (n, 1))
        a = rng.choice([-1.0, 1.0], (m, 1))
        W0 = rng.standard_normal((d, m)) * rng.uniform(0.1, 2)
        W = W0 + rng.standard_normal((d, m)) * rng.uniform(1e-4, 0.5)
        B = float(max(np.abs(X @ W0).max(), np.abs(X @ W).max()))
        c = tl.bounds(act, B=B, m=m, n=n, kappa=kap)
        G0 = _g(name, X @ W0, a, kap)
        assert np.abs(G0).max() <= c["g_inf"] * (1 + 1e-12)
        assert np.linalg.norm(G0, axis=1).max() <= c["G"] * (1 + 1e-12)
        H0, H = _ntk(name, W0, X, a, kap), _ntk(name, W, X, a, kap)
        assert np.linalg.eigvalsh(H0)[-1] <= c["lam_max"] * (1 + 1e-12)
        D = float(np.abs(X @ (W - W0)).max())
        assert np.linalg.norm(H - H0, 2) <= c["L_H"] * D * (1 + 1e-12)


def test_softmax_g_inf_and_G_are_tight():
    m, B, kap = 64, 1.0, 3.0
    c = tl.bounds("softmax", B=B, m=m, n=1, kappa=kap)
    U = np.full(m, -B)
    U[0] = B
    a = -np.ones((m, 1))
    a[0] = 1
    assert np.abs(_g("two_layer_softmax", U, a, kap)).max() / c["g_inf"] > 0.85
    Bs = 1e-6
    a = np.repeat([[1.0], [-1.0]], m // 2, axis=0)
    g = _g("two_layer_softmax", np.full(m, Bs), a, kap)
    assert np.linalg.norm(g) / tl.bounds("softmax", B=Bs, m=m, n=1, kappa=kap)["G"] > 0.99


def test_softmax_L_g_never_violated_exact_inf_to_2_norm():
    """||J||_{inf->2} by enumeration of the sign vectors (m = 8); tightness ~0.3 is reported, not asserted."""
    m, kap, h = 8, 1.0, 1e-6
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=m)))
    rng = np.random.default_rng(1)
    best = 0.0
    for t in range(60):
        B = rng.uniform(0.05, 3)
        U = rng.uniform(-B, B, m) if t % 2 else np.where(np.arange(m) < rng.integers(1, m), B, -B)
        a = rng.choice([-1.0, 1.0], (m, 1))
        name = "two_layer_softmax"
        J = np.array([(_g(name, U + h * e, a, kap) - _g(name, U - h * e, a, kap))[0] / (2 * h) for e in np.eye(m)]).T
        val = np.linalg.norm(signs @ J.T, axis=1).max()
        r = val / tl.bounds("softmax", B=float(np.abs(U).max()), m=m, n=1, kappa=kap)["L_g"]
        assert r <= 1 + 1e-6
        best = max(best, r)
    assert best > 0.2


def test_exp_constants_are_attained():
    """All inputs equal and every pre-activation at B: G, L_g, lam_max and L_H are attained (ratio -> 1)."""
    n, d, m, B, kap = 3, 2, 10, 0.7, 0.3
    name = "two_layer_exp"
    x = np.array([1.0, 0.0])
    X = np.tile(x, (n, 1))
    a = np.ones((m, 1))
    W0 = np.zeros((d, m))
    W0[0] = B
    c = tl.bounds("exp", B=B, m=m, n=n, kappa=kap)
    G = _g(name, X @ W0, a, kap)
    assert np.linalg.norm(G[0]) / c["G"] == pytest.approx(1, rel=1e-12)
    assert np.linalg.eigvalsh(_ntk(name, W0, X, a, kap))[-1] / c["lam_max"] == pytest.approx(1, rel=1e-12)
    D = 1e-6
    W = W0.copy()
    W[0] -= D
    dH = np.linalg.norm(_ntk(name, W, X, a, kap) - _ntk(name, W0, X, a, kap), 2)
    assert 0.99 < dH / (c["L_H"] * D) <= 1
    dg = np.linalg.norm(_g(name, X[:1] @ W, a, kap) - G[:1])
    assert 0.99 < dg / (c["L_g"] * D) <= 1


def test_softmax_lam_max_attained():
    n, m, kap, Bs = 4, 32, 5.0, 1e-8
    X = np.tile([0.0, 1.0], (n, 1))
    W = np.full((2, m), Bs)
    a = np.repeat([[1.0], [-1.0]], m // 2, axis=0)
    c = tl.bounds("softmax", B=Bs, m=m, n=n, kappa=kap)
    assert np.linalg.eigvalsh(_ntk("two_layer_softmax", W, X, a, kap))[-1] / c["lam_max"] > 0.999


@pytest.mark.parametrize("act", ["softmax", "exp"])
def test_smoothness_attained_at_zero_residual(act):
    """With y = F(W) the loss Hessian is J^T J; its norm reaches smooth as rho0 -> 0 (tight GN part)."""
    name = tl.member_name(act)
    n, m, B, kap = 3, 8, 1e-6 if act == "softmax" else 0.5, 2.0
    X = np.tile([1.0, 0.0], (n, 1))
    W = np.zeros((2, m))
    W[0] = B
    a = np.repeat([[1.0], [-1.0]], m // 2, axis=0) if act == "softmax" else np.ones((m, 1))
    Y = kernels(name).forward(W, X, a, kap)
    J = np.vstack([np.kron(X[i], _g(name, X[i:i + 1] @ W, a, kap)[0]) for i in range(n)])
    hess_norm = np.linalg.eigvalsh(J.T @ J)[-1]
    c = tl.bounds(act, B=B, m=m, n=n, kappa=kap, rho0=1e-12)
    assert 0.999 < hess_norm / c["smooth"] <= 1 + 1e-9
    assert kernels(name).loss_grad(W, X, Y, a, kap)[0] == pytest.approx(0, abs=1e-20)


def test_relu_margin_count_attained_half():
    """All neurons flip off: ||dH|| = kappa^2 m while the bound is 2 kappa^2 sqrt(n m N) = 2 kappa^2 m."""
    m, kap, dl = 12, 0.4, 1e-3
    X = np.array([[1.0, 0.0]])
    a = np.ones((m, 1))
    W0 = np.zeros((2, m))
    W0[0] = dl
    W = W0.copy()
    W[0] = -dl
    dH = np.linalg.norm(_ntk("two_layer_relu", W, X, a, kap) - _ntk("two_layer_relu", W0, X, a, kap), 2)
    N = int(np.sum(np.abs(X @ W0) <= 2 * dl))
    bound = tl.bounds("relu", m=m, n=1, kappa=kap, D=2 * dl, N=N)["dH_count"]
    assert dH / bound == pytest.approx(0.5, rel=1e-12)


def test_guarantee_and_run_check():
    rng = np.random.default_rng(0)
    n, d, m = 4, 3, 8
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    net = TwoLayerNetwork(d, m, activation="exp", seed=0, init_scale=0.5, symmetric=False)
    F0 = net.forward(X)
    z = rng.standard_normal(n)
    far = tl.guarantee(net, X, F0 + 5 * z)
    assert not far.holds and far.steps_bound(1e-3) == math.inf
    near = tl.guarantee(net, X, F0 + 1e-6 * z)
    assert near.holds and near.margin >= 1 and near.lr > 0
    y = F0 + 1e-6 * z
    Ws, W = [net.W.copy()], net.W.copy()
    for _ in range(50):
        W = W - near.lr * net.loss_grad(X, y, W)[1]
        Ws.append(W)
    rep = tl.check_run(net, X, Ws, near)
    assert rep.inside and rep.D.max() <= near.drift and rep.lam_min_certified >= near.lam0 / 2
    big = [net.W, net.W + 10.0]
    assert not tl.check_run(net, X, big, near).inside


def test_public_entry_points_and_validation():
    c = softsym.bounds("two_layer_softmax", B=1.0, m=64, n=8)
    assert c.kind == "normalized-exp" and c["radius"] > 0
    assert softsym.bounds("two_layer_relu", m=64, n=8).deterministic is False
    with pytest.raises(ValidationError, match="B"):
        tl.bounds("softmax", B=-1.0)
    net = TwoLayerNetwork(2, 4, activation="relu")
    with pytest.raises(ValidationError, match="no deterministic"):
        tl.guarantee(net, np.eye(2), np.zeros(2))


def test_width_requirement_meets_the_condition_and_moves_with_lambda():
    kap = float  # the paper's kappa = m
    w = tl.width_requirement("softmax", n=4, rho0=1.0, lam_bar=0.5, kappa_rule=kap)
    assert math.isfinite(w.m) and w.margin >= 1
    m, k = w.m, kap(w.m)
    lam0 = 0.5 * tl.bounds("softmax", B=0.0, m=int(m), n=4, kappa=k)["G"] ** 2
    c = tl.bounds("softmax", B=w.B, m=int(m), n=4, kappa=k, lam0=lam0, rho0=1.0)
    assert c["drift"] <= c["radius"]
    mh = int(m // 2)
    lam_half = 0.5 * tl.bounds("softmax", B=0.0, m=mh, n=4, kappa=kap(mh))["G"] ** 2
    c_half = tl.bounds("softmax", B=w.B, m=mh, n=4, kappa=kap(mh), lam0=lam_half, rho0=1.0)
    assert c_half["drift"] > c_half["radius"] or m == 2
    easier = tl.width_requirement("softmax", n=4, rho0=1.0, lam_bar=5.0, kappa_rule=kap)
    assert easier.m < w.m


@pytest.mark.parametrize("act", ["softmax", "exp"])
def test_vector_output_certify_finds_no_violation(act):
    cert = tl.certify(act, outputs=2, restarts=1, maxiter=80, seed=5)
    assert cert.outputs == 2 and not cert.violations, cert.table()
    assert all(0 < r.max_ratio <= 1 + 1e-9 for r in cert.rows), cert.table()
    assert cert.gd["certified"] and cert.gd["ok"], cert.gd


def test_vector_output_bound_scaled_below_worst_case_is_caught(monkeypatch):
    """lam_max for c outputs scaled to 1/(2c) of the derived value (half the scalar formula n G^2):
    the search finds the violation (L_H's scaling is caught by the attained configuration below)."""
    mod = tl.bounds_module("exp")
    orig = mod.FUNCTIONS["lam_max"]
    monkeypatch.setitem(mod.FUNCTIONS, "lam_max", lambda *a: orig(*a) / (2 * a[6]))
    cert = tl.certify("exp", outputs=2, restarts=1, maxiter=80, seed=5, gd=False)
    assert cert.violations == ["lam_max"], cert.table()


def test_exp_vector_output_constants_are_attained():
    """Equal inputs, every pre-activation at B and a = 1 (m, c): lam_max = n c G^2 and L_H are attained."""
    n, d, m, B, kap, cc = 3, 2, 10, 0.7, 0.3, 3
    name = "two_layer_exp"
    X = np.tile([1.0, 0.0], (n, 1))
    a = np.ones((m, cc))
    W0 = np.zeros((d, m))
    W0[0] = B
    c = tl.bounds("exp", B=B, m=m, n=n, kappa=kap, c=cc)
    assert c["lam_max"] == pytest.approx(cc * tl.bounds("exp", B=B, m=m, n=n, kappa=kap)["lam_max"], rel=1e-12)
    assert np.linalg.eigvalsh(_ntk(name, W0, X, a, kap))[-1] / c["lam_max"] == pytest.approx(1, rel=1e-12)
    D = 1e-6
    W = W0.copy()
    W[0] -= D
    dH = np.linalg.norm(_ntk(name, W, X, a, kap) - _ntk(name, W0, X, a, kap), 2)
    assert 0.99 < dH / (c["L_H"] * D) <= 1
    with pytest.raises(ValidationError, match="c=1"):
        tl.bounds("relu", m=8, n=2, c=2)
