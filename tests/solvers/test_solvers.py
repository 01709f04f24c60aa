"""softsym.minimize: convergence, result fields, failure reporting, callbacks."""

from __future__ import annotations

import numpy as np
import pytest

import softsym
from softsym import ValidationError


@pytest.mark.parametrize("name", [m.name for m in softsym.catalogue("normalized")])
def test_newton_solves_planted_instances(name):
    inst = softsym.problems.normalized.synthetic(name, 400, 6, seed=11)
    obj = inst.objective()
    x0 = np.random.default_rng(1).standard_normal(6) * 0.1
    res = softsym.minimize(obj, x0, method="newton", tol=1e-10)
    assert res.success and res.status == 0, res.message
    assert res.rel_grad_norm <= 1e-10
    assert np.linalg.norm(obj.jac(res.x)) <= 1e-10 * np.linalg.norm(obj.jac(x0))
    for key in ("x", "fun", "jac", "nit", "nfev", "njev", "nhev", "success", "status", "message"):
        assert key in res
    assert len(res.history["fun"]) == res.nit + 1
    assert np.all(np.diff(res.history["fun"]) <= 1e-12 * (1 + abs(res.history["fun"][0])))


def test_newton_is_quadratic_near_the_solution():
    inst = softsym.problems.normalized.synthetic("softmax", 500, 5, seed=2)
    res = softsym.minimize(inst.objective(), method="newton", tol=1e-14)
    g = np.array(res.history["grad_norm"])
    assert res.success and res.nit <= 12
    # once in the quadratic region, each step at least squares the (relative) gradient
    rel = g / g[0]
    k = int(np.argmax(rel < 1e-3))
    assert rel[k + 1] <= 10 * rel[k] ** 1.5 or rel[k + 1] < 1e-13


def test_newton_handles_indefinite_hessians():
    """cosh regression with targets b = 3 > cosh(0): near x = 0 every beta_i = 1 - b < 0, so the
    Hessian is negative definite and the shifted Cholesky must kick in."""
    A = np.random.default_rng(5).standard_normal((200, 4))
    obj = softsym.objective("cosh", A, np.full(200, 3.0))
    x0 = np.full(4, 0.01)          # (x0 = 0 itself is a stationary point: a local maximum)
    assert np.linalg.eigvalsh(obj.hess(x0)).max() < 0
    res = softsym.minimize(obj, x0, method="newton", maxiter=200)
    assert res.success, res.message
    assert res.indefinite_steps > 0


def test_gd_converges_more_slowly_but_converges():
    inst = softsym.problems.normalized.synthetic("softmax", 300, 4, seed=7, w=0.2)
    obj = inst.objective()
    newton = softsym.minimize(obj, method="newton", tol=1e-8)
    gd = softsym.minimize(obj, method="gd", tol=1e-8, maxiter=5000)
    assert gd.success, gd.message
    np.testing.assert_allclose(gd.x, newton.x, atol=1e-6)
    assert gd.nit > newton.nit


def test_gd_fixed_step_too_large_fails_cleanly():
    inst = softsym.problems.normalized.synthetic("exp", 100, 3, seed=1)
    res = softsym.minimize(inst.objective(), method="gd", lr=10.0, maxiter=50)
    assert not res.success and res.status in (2, 3)
    assert np.isfinite(res.x).all()


def test_overflow_is_reported_not_returned():
    A = np.ones((3, 1)) * 100.0
    obj = softsym.objective("exp", A, np.ones(3))
    res = softsym.minimize(obj, np.array([8.0]), method="newton")
    assert not res.success and res.status == 3 and "overflow" in res.message.lower()


def test_maxiter_and_callback_stop():
    inst = softsym.problems.normalized.synthetic("softmax", 300, 4, seed=3)
    obj = inst.objective()
    res = softsym.minimize(obj, method="gd", maxiter=3, tol=1e-14)
    assert not res.success and res.status == 1 and res.nit == 3
    seen = []

    def cb(r):
        seen.append(r.fun)
        if len(seen) == 2:
            raise StopIteration

    res = softsym.minimize(obj, method="newton", callback=cb)
    assert res.status == 99 and res.nit == 2 and len(seen) == 2 and not res.success


def test_bad_solver_arguments():
    obj = softsym.problems.normalized.synthetic("softmax", 50, 2).objective()
    with pytest.raises(ValidationError, match="unknown method 'bfgs'"):
        softsym.minimize(obj, method="bfgs")
    with pytest.raises(ValidationError, match="unknown option"):
        softsym.minimize(obj, method="newton", lr=0.1)
    with pytest.raises(ValidationError, match="tol"):
        softsym.minimize(obj, tol=-1)
    with pytest.raises(ValidationError, match="maxiter"):
        softsym.minimize(obj, maxiter=2.5)
    with pytest.raises(ValidationError, match="x0"):
        softsym.minimize(obj, np.zeros(3))
