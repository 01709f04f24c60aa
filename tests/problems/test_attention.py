"""Attention regression (paper 003): generated kernels vs the literal Kronecker definition,
finite differences, Hessian consistency, memory (no n^2 x d^2 matrix), the solver and bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import softsym
from softsym.errors import OverflowDetected, ValidationError
from softsym.numerics.cg import truncated_cg
from softsym.problems.attention import AttentionRegression, planted
from softsym.registry import kernels

FAST = settings(max_examples=25, deadline=None)


def _problem(n, d, seed, reg=(0.0, 0.0), scale=0.7):
    rng = np.random.default_rng(seed)
    A1, A2, A3, B = (rng.standard_normal((n, d)) for _ in range(4))
    X, Y, V = (scale * rng.standard_normal((d, d)) for _ in range(3))
    return AttentionRegression(A1, A2, A3, B, *reg), X, Y, V


def literal_loss(prob: AttentionRegression, X, Y) -> float:
    """The paper's definition verbatim: Acal = A1 kron A2 (n^2 x d^2), x = vec(X) row-major."""
    n = prob.n
    Acal = np.kron(prob.A1, prob.A2)
    x = X.ravel()
    total = 0.0
    for j0 in range(n):
        zrow = Acal[j0 * n:(j0 + 1) * n] @ x
        f = np.exp(zrow - zrow.max())
        f /= f.sum()
        for i0 in range(prob.d):
            total += (f @ (prob.A3 @ Y[:, i0]) - prob.B[j0, i0]) ** 2
    return total + prob.reg_x * np.sum(X**2) + prob.reg_y * np.sum(Y**2)


sizes = st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(0, 2**32 - 1),
                  st.sampled_from([(0.0, 0.0), (0.3, 0.1)]))


@FAST
@given(sizes)
def test_literal_kronecker_loss_equals_tensor_trick(case):
    n, d, seed, reg = case
    prob, X, Y, _ = _problem(n, d, seed, reg)
    lit = literal_loss(prob, X, Y)
    assert prob.loss(X, Y) == pytest.approx(lit, rel=1e-12, abs=1e-300)
    assert prob.value_and_grad(X, Y)[0] == pytest.approx(lit, rel=1e-12, abs=1e-300)


def _fd(fun, Z, h):
    """Central differences of scalar fun at matrix Z (error O(h^2) + O(eps/h))."""
    out = np.empty(Z.size)
    for k in range(Z.size):
        E = np.zeros(Z.size)
        E[k] = h
        E = E.reshape(Z.shape)
        out[k] = (fun(Z + E) - fun(Z - E)) / (2 * h)
    return out.reshape(Z.shape)


@FAST
@given(sizes)
def test_gradients_match_finite_differences(case):
    n, d, seed, reg = case
    prob, X, Y, _ = _problem(n, d, seed, reg)
    gX, gY = prob.grad(X, Y)
    h = 1e-5  # O(h^2) truncation ~1e-10 times third derivatives, rounding ~1e-16 L / h
    scale = 1.0 + prob.loss(X, Y)
    np.testing.assert_allclose(gX, _fd(lambda Z: prob.loss(Z, Y), X, h), atol=1e-6 * scale)
    np.testing.assert_allclose(gY, _fd(lambda Z: prob.loss(X, Z), Y, h), atol=1e-6 * scale)


@FAST
@given(sizes)
def test_hvp_matches_finite_differences_of_gradient(case):
    n, d, seed, reg = case
    prob, X, Y, V = _problem(n, d, seed, reg)
    h = 1e-5
    fd = (prob.grad(X + h * V, Y)[0] - prob.grad(X - h * V, Y)[0]) / (2 * h)
    hv = prob.hessp_x(X, Y, V)
    np.testing.assert_allclose(hv, fd, atol=1e-6 * (1.0 + np.abs(fd).max()))


@FAST
@given(sizes)
def test_full_hessians_match_hvps_and_structure(case):
    n, d, seed, reg = case
    prob, X, Y, V = _problem(n, d, seed, reg)
    H = prob.hess_x(X, Y)
    assert H.shape == (d * d, d * d)
    np.testing.assert_allclose(H, H.T, atol=1e-12 * (1 + np.abs(H).max()))
    for k in range(d * d):  # column by column: H e_k == hessp(e_k)
        E = np.zeros(d * d)
        E[k] = 1.0
        np.testing.assert_allclose(H[:, k], prob.hessp_x(X, Y, E.reshape(d, d)).ravel(),
                                   atol=1e-10 * (1 + np.abs(H).max()))
    HY = prob.hess_y(X)
    h = 1e-5
    fd = np.column_stack([((prob.grad(X, Y + h * E.reshape(d, d))[1] - prob.grad(X, Y - h * E.reshape(d, d))[1])
                           / (2 * h)).ravel() for E in np.eye(d * d)])
    np.testing.assert_allclose(HY, fd, atol=1e-6 * (1 + np.abs(fd).max()))
    assert np.linalg.eigvalsh(HY).min() >= -1e-10 * (1 + np.abs(HY).max())  # convex in Y


def test_hess_x_matches_literal_kronecker_hessian_numerically():
    """d2L/dx2 from the literal definition by finite differences of the literal loss's gradient."""
    prob, X, Y, _ = _problem(4, 2, 11, (0.2, 0.0))
    H = prob.hess_x(X, Y)
    h = 1e-4
    d2 = prob.d * prob.d
    fd = np.empty((d2, d2))
    x = X.ravel()
    for p in range(d2):
        for r in range(d2):
            def L(dp, dr):
                z = x.copy()
                z[p] += dp
                z[r] += dr
                return literal_loss(prob, z.reshape(X.shape), Y)
            fd[p, r] = (L(h, h) - L(h, -h) - L(-h, h) + L(-h, -h)) / (4 * h * h)
    np.testing.assert_allclose(H, fd, atol=1e-5 * (1 + np.abs(H).max()))


@FAST
@given(sizes)
def test_cross_hessian_matches_finite_differences_of_gradient(case):
    n, d, seed, reg = case
    prob, X, Y, V = _problem(n, d, seed, reg)
    E = np.random.default_rng(seed + 1).standard_normal((d, d))
    h = 1e-5
    fd_xy = (prob.grad(X, Y + h * E)[0] - prob.grad(X, Y - h * E)[0]) / (2 * h)   # d/dt dL/dX(X, Y + t E)
    fd_yx = (prob.grad(X + h * V, Y)[1] - prob.grad(X - h * V, Y)[1]) / (2 * h)   # d/dt dL/dY(X + t V, Y)
    np.testing.assert_allclose(prob.hessp_xy(X, Y, E), fd_xy, atol=1e-6 * (1.0 + np.abs(fd_xy).max()))
    np.testing.assert_allclose(prob.hessp_yx(X, Y, V), fd_yx, atol=1e-6 * (1.0 + np.abs(fd_yx).max()))
    Hxy = prob.hess_xy(X, Y)  # rows vec X, columns vec Y; its transpose is d2L/dy dx
    np.testing.assert_allclose(Hxy @ E.ravel(), prob.hessp_xy(X, Y, E).ravel(), atol=1e-10 * (1 + np.abs(Hxy).max()))
    np.testing.assert_allclose(Hxy.T @ V.ravel(), prob.hessp_yx(X, Y, V).ravel(), atol=1e-10 * (1 + np.abs(Hxy).max()))


reduced_sizes = st.tuples(st.integers(2, 4), st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.2]))


@FAST
@given(reduced_sizes)
def test_reduced_hessian_is_the_hessian_of_min_over_y(case):
    """The Schur complement at Y*(X) equals finite differences of grad phi(X) = dL/dX(X, Y*(X))."""
    d, seed, reg_y = case
    prob, X, Y, V = _problem(d + 4, d, seed, (0.1, reg_y))

    def grad_phi(Z):
        return prob.grad(Z, prob.minimize_y(Z, Y))[0]

    Ys = prob.minimize_y(X, Y)
    h = 1e-5
    fd = (grad_phi(X + h * V) - grad_phi(X - h * V)) / (2 * h)
    hv = prob.reduced_hessp_x(X, Ys, V)
    np.testing.assert_allclose(hv, fd, atol=1e-5 * (1.0 + np.abs(fd).max()))
    S = prob.reduced_hess_x(X, Ys)
    np.testing.assert_allclose(S @ V.ravel(), hv.ravel(), atol=1e-9 * (1.0 + np.abs(S).max()))
    # Schur complement of the joint Hessian, assembled from its blocks
    Hxy = prob.hess_xy(X, Ys)
    joint = np.block([[prob.hess_x(X, Ys), Hxy], [Hxy.T, prob.hess_y(X)]])
    k = d * d
    ref = joint[:k, :k] - joint[:k, k:] @ np.linalg.pinv(joint[k:, k:]) @ joint[k:, :k]
    np.testing.assert_allclose(S, ref, atol=1e-8 * (1.0 + np.abs(joint).max()))


def test_row_blocked_sweeps_match_one_block():
    """Ragged row blocks (7 rows, n = 50) give the one-block results; the runtime reuses its workspaces."""
    k = kernels("attention")
    prob, X, Y, _ = _problem(50, 3, 4, (0.2, 0.1))
    args = (prob.A1, prob.A2, prob.A3, prob.B, X, Y, 0.2, 0.1)
    small = [np.empty((7, 50)) for _ in range(2)]
    full = [np.empty((50, 50)) for _ in range(2)]
    for a, b in zip(k.value_and_grad(*args, *small), k.value_and_grad(*args, *full)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    assert k.loss(*args, small[0]) == pytest.approx(k.loss(*args, full[0]), rel=1e-13)
    np.testing.assert_allclose(k.hess_y_block(prob.A1, prob.A2, prob.A3, X, 0.1, small[0]),
                               prob.hess_y_block(X), rtol=1e-12)
    # the Hessian state: ragged blocks fill the full F and C like one block does
    F7, C7, F50, C50 = (np.empty((50, 50)) for _ in range(4))
    for a, b in zip(k.hess_state(*args, F7, C7, small[0]), k.hess_state(*args, F50, C50, full[0])):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    # the Hessian-vector sweeps (reduced: two sweeps, dU recomputed when there is more than one block)
    V, E = np.sin(np.arange(9.0)).reshape(3, 3), np.cos(np.arange(9.0)).reshape(3, 3)
    _, _, _, F, C, gamma, K, Ls = prob.hess_state(X, Y)
    Gp = prob._y_block_pinv(X, Y)
    for name, head, tail in [("hessp_x", (Y, F, C, gamma, V, 0.2), 2), ("hessp_yx", (Y, F, K, Ls, V), 1),
                             ("hessp_xy", (Y, F, K, Ls, E), 1),
                             ("hessp_reduced_x", (Y, F, C, gamma, K, Ls, Gp, V, 0.2), 2)]:
        kernel = getattr(k, name)
        a = kernel(prob.A1, prob.A2, prob.A3, *head, *small[:tail])
        b = kernel(prob.A1, prob.A2, prob.A3, *head, *full[:tail])
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max(), err_msg=name)
    prob.value_and_grad(X, Y)
    work = prob._workspace()
    prob.loss(X, Y)
    prob.value_and_grad(X + 1.0, Y)
    assert prob._workspace() is work and all(w.shape == (k.block_rows(50), 50) for w in work)


def test_hessian_state_reuses_its_arrays_and_matches_a_fresh_problem():
    prob, X, Y, V = _problem(40, 3, 6, (0.1, 0.0))
    first = prob.hess_state(X, Y)
    F, C = first[3], first[4]
    X2 = X + 0.3 * V
    again = prob.hess_state(X2, Y)
    assert again[3] is F and again[4] is C  # rewritten in place, no fresh n x n arrays
    other = AttentionRegression(prob.A1, prob.A2, prob.A3, prob.B, 0.1, 0.0)
    for a, b in zip(again, other.hess_state(X2, Y)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(prob.hessp_x(X2, Y, V), other.hessp_x(X2, Y, V))


def test_y_parts_from_k_equal_the_full_sweep():
    """Loss, dL/dY and the Y-Hessian block from K = F A3 alone (one forward sweep) equal the
    full kernels; the reduced objective's value comes with Y*(X) at no extra sweep."""
    k = kernels("attention")
    prob, X, Y, _ = _problem(45, 3, 8, (0.2, 0.3))
    K = k.forward_k(prob.A1, prob.A2, prob.A3, X, np.empty((7, 45)))
    val, gY, G = k.y_parts(K, prob.B, X, Y, 0.2, 0.3)
    assert val == pytest.approx(prob.loss(X, Y), rel=1e-13)
    np.testing.assert_allclose(gY, prob.grad(X, Y)[1], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(G, prob.hess_y_block(X), rtol=1e-13)
    Ys, phi = prob.y_star_and_value(X, Y)
    np.testing.assert_array_equal(Ys, prob.minimize_y(X, Y))
    assert phi == pytest.approx(prob.loss(X, Ys), rel=1e-13)


def test_minimize_y_is_exact():
    prob, X, Y, _ = _problem(30, 3, 5, (0.0, 0.01))
    Ys = prob.minimize_y(X, Y)
    gY = prob.grad(X, Ys)[1]
    assert np.abs(gY).max() < 1e-9 * (1 + np.abs(prob.grad(X, Y)[1]).max())
    assert prob.loss(X, Ys) <= prob.loss(X, Y)


def test_truncated_cg_solves_spd_system():
    rng = np.random.default_rng(0)
    M = rng.standard_normal((6, 6))
    H = M @ M.T + np.eye(6)
    g = rng.standard_normal(6) * 1e-6
    p, _ = truncated_cg(lambda v: H @ v, g, 50)
    assert np.linalg.norm(H @ p + g) <= np.sqrt(np.linalg.norm(g)) * np.linalg.norm(g) + 1e-18
    p, it = truncated_cg(lambda v: -v, g, 50)  # negative curvature at once: steepest descent
    assert it == 1 and np.array_equal(p, -g)


@pytest.mark.parametrize("method", ["newton", "newton-cg"])
def test_solve_recovers_planted_solution(method):
    inst = planted(60, 2, seed=1)
    prob = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B)
    X0 = inst.X_star + 0.2 * np.random.default_rng(2).standard_normal((2, 2))
    f0 = prob.loss(X0, np.zeros((2, 2)))
    res = softsym.minimize(prob, (X0, None), method=method, tol=1e-8, maxiter=200)
    assert res.X.shape == res.Y.shape == (2, 2)
    assert res.fun < 1e-10 * f0
    assert np.linalg.norm(res.X - inst.X_star) < 1e-3 * np.linalg.norm(inst.X_star)
    assert np.linalg.norm(res.Y - inst.Y_star) < 1e-3 * np.linalg.norm(inst.Y_star)
    assert res.success and res.status == 0
    assert np.all(np.diff(res.history["fun"]) <= 1e-12 * f0)  # monotone


def test_reduced_newton_converges_fast_where_the_alternation_is_slow():
    """Newton on phi(X) = min_Y L (Schur complement) needs few iterations, with a superlinear
    finish; the coupling-blind alternation (reduced=False) exceeds the same bound."""
    inst = planted(60, 2, seed=1)
    X0 = inst.perturbed_start(seed=2)
    bound = 20
    for method in ("newton", "newton-cg"):
        prob = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B)
        res = softsym.minimize(prob, (X0, None), method=method, tol=1e-10, maxiter=bound)
        assert res.success and res.nit <= bound, (method, res.nit, res.message)
        assert np.linalg.norm(res.X - inst.X_star) < 1e-8 * np.linalg.norm(inst.X_star)
        g = res.history["grad_norm"]
        assert g[-1] < 1e-3 * g[-2]  # the last step is in the superlinear regime
        old = softsym.minimize(AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B), (X0, None),
                               method=method, tol=1e-10, maxiter=bound, reduced=False)
        assert not old.success and old.status == 1 and old.nit == bound


def test_solve_callback_stops():
    inst = planted(20, 2, seed=0)
    prob = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B)

    def cb(r):
        raise StopIteration

    res = softsym.minimize(prob, method="newton", callback=cb)
    assert res.status == 99 and res.nit == 1 and not res.success


def test_no_n2_by_d2_allocation():
    """At n = 512, d = 16 the n^2 x d^2 matrix would take 537 MB: peak RSS must grow far less."""
    code = textwrap.dedent("""
        import resource, numpy as np
        import softsym
        from softsym.problems.attention import AttentionRegression
        def peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB
        def run(n, d):
            rng = np.random.default_rng(0)
            A1, A2, A3, B = (rng.standard_normal((n, d)) for _ in range(4))
            X, Y, V = (0.3 * rng.standard_normal((d, d)) for _ in range(3))
            p = AttentionRegression(A1, A2, A3, B)
            p.loss(X, Y); p.grad(X, Y); p.hessp_x(X, Y, V); p.hess_x(X, Y); p.hess_y(X)
            p.hessp_xy(X, Y, V); p.hessp_yx(X, Y, V); p.hess_xy(X, Y)
            p.reduced_hessp_x(X, Y, V); p.reduced_hess_x(X, Y)
            for reduced in (True, False):
                softsym.minimize(p, (X, None), method="newton-cg", maxiter=1, reduced=reduced)
                softsym.minimize(p, (X, None), method="newton", maxiter=1, reduced=reduced)
        run(8, 2)  # compile / load caches
        before = peak()
        run(512, 16)
        print(peak() - before)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    growth_mib = float(out.stdout.strip().splitlines()[-1])
    assert growth_mib < 120, f"peak RSS grew by {growth_mib:.0f} MiB (n^2 d^2 floats = 512 MiB)"


def test_bad_input():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 2))
    ok = AttentionRegression(A, A, A, A)
    X = np.zeros((2, 2))
    with pytest.raises(ValidationError, match="A2"):
        AttentionRegression(A, A[:4], A, A)
    with pytest.raises(ValidationError, match="B"):
        AttentionRegression(A, A, A, np.zeros((5, 3)))
    bad = A.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValidationError, match="A3"):
        AttentionRegression(A, A, bad, A)
    with pytest.raises(ValidationError, match="A1"):
        AttentionRegression(A.astype(complex), A, A, A)
    with pytest.raises(ValidationError, match="A1"):
        AttentionRegression(A > 0, A, A, A)
    with pytest.raises(ValidationError, match="A1"):
        AttentionRegression(A[0], A, A, A)
    with pytest.raises(ValidationError, match="reg_x"):
        AttentionRegression(A, A, A, A, reg_x=-1.0)
    with pytest.raises(ValidationError, match="reg_y"):
        AttentionRegression(A, A, A, A, reg_y=float("inf"))
    with pytest.raises(ValidationError, match="X"):
        ok.loss(np.zeros((3, 3)), X)
    with pytest.raises(ValidationError, match="Y"):
        ok.grad(X, np.full((2, 2), np.inf))
    with pytest.raises(ValidationError, match="V"):
        ok.hessp_x(X, X, np.zeros(4))
    with pytest.raises(ValidationError, match="E"):
        ok.hessp_xy(X, X, np.zeros(4))
    with pytest.raises(ValidationError, match="D"):
        ok.hessp_yx(X, X, np.zeros((3, 3)))
    with pytest.raises(ValidationError, match="V"):
        ok.reduced_hessp_x(X, X, np.full((2, 2), np.nan))
    with pytest.raises(ValidationError, match="method"):
        softsym.minimize(ok, method="bfgs")
    with pytest.raises(ValidationError, match="maxiter"):
        softsym.minimize(ok, maxiter=-1)
    with pytest.raises(ValidationError, match="tol"):
        softsym.minimize(ok, tol=-1.0)
    with pytest.raises(ValidationError, match="X0"):
        softsym.minimize(ok, (np.zeros((2, 3)), None))


def test_overflow_is_reported_not_returned():
    A = np.full((3, 2), 1e200)
    prob = AttentionRegression(A, A, A, A)
    with pytest.raises(OverflowDetected):
        prob.loss(np.ones((2, 2)), np.ones((2, 2)))
    res = softsym.minimize(prob, (np.ones((2, 2)), np.ones((2, 2))))
    assert not res.success and res.status == 3
