"""Contract cases owned by the shared objective base and the stopping rule (helper S's part of
issue 19): derivatives at extreme scales, success only at stationary points, exact minimizers
and restarts, failure statuses at the start."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import softsym
from softsym.errors import OverflowDetected, ValidationError
from softsym.problems.normalized import synthetic
from softsym.registry import catalogue

from .conftest import drawn

FUZZ = settings(deadline=None, database=None, max_examples=60,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
NORMALIZED = [m.name for m in catalogue("normalized")]
EXTREME = [1e-300, 1e-200, 1e-160, 1e-20, 1.0, 1e20, 1e150, 1e160, 1e200, 1e300]


@FUZZ
@given(st.sampled_from(NORMALIZED), st.sampled_from(EXTREME), st.sampled_from([0.0, 1e-3, 0.3, 1.0, 1e3]),
       st.integers(0, 5))
def test_derivatives_at_extreme_scales_are_finite_or_overflow(name, scale, xscale, seed):
    drawn("api: derivatives at extreme scales")
    rng = np.random.default_rng(seed)
    obj = softsym.objective(name, rng.standard_normal((6, 3)) * scale, rng.random(6))
    x, v = rng.standard_normal(3) * xscale, rng.standard_normal(3)
    for fn, args in ((obj.fun, (x,)), (obj.jac, (x,)), (obj.hess, (x,)), (obj.hessp, (x, v))):
        try:
            out = fn(*args)
        except OverflowDetected:
            continue
        assert np.all(np.isfinite(out)), (fn.__name__, scale, xscale)


@FUZZ
@given(st.sampled_from(NORMALIZED), st.sampled_from([1e-300, 1e-200, 1e-160, 1e-100, 1.0]),
       st.sampled_from(["newton", "gd", "approx-newton"]))
def test_success_only_at_a_stationary_point(name, scale, method):
    drawn("api: success is stationary")
    inst = synthetic(name, 30, 3, seed=2)
    base = inst.objective()
    obj = softsym.objective(name, inst.A * scale, inst.b)
    res = softsym.minimize(obj, method=method, maxiter=200)
    if res.success:  # L_s(x) = L_1(s x): x is stationary for L_s iff s x is for L_1
        g = np.linalg.norm(base.jac(scale * res.x))
        assert g <= 1e-6 * np.linalg.norm(base.jac(np.zeros(3))) + 1e-12, (res.message, res.nit)


@pytest.mark.parametrize("name", ["softmax", "rescaled_exp", "softmax_xent", "cosh"])
@pytest.mark.parametrize("method", ["newton", "gd", "approx-newton"])
def test_exact_minimizer_and_restart_succeed(name, method):
    drawn("api: exact minimizer / restart")
    inst = synthetic(name, 40, 3, seed=3)
    obj = inst.objective()
    at_star = softsym.minimize(obj, inst.x_star, method=method, maxiter=50)
    assert at_star.success, at_star.message
    if method == "gd":  # gd stops at 1e-10 of the start's gradient, not at rounding level: a restart is a new solve
        return
    first = softsym.minimize(obj, method=method)
    if first.success:  # Newton-type methods end at rounding level: a restart there is already converged
        again = softsym.minimize(obj, first.x, method=method, maxiter=50)
        assert again.success, again.message


@pytest.mark.parametrize("lr", [1e2, 1e4, 1e8])
def test_zo_huge_step_is_not_a_success_at_a_worse_loss(lr):
    drawn("api: zo huge lr")
    inst = synthetic("softmax", 40, 3, seed=4)
    obj = inst.objective()
    x0 = inst.x_star + 0.5
    res = softsym.minimize(obj, x0, method="zo", lr=lr, maxiter=50)
    if res.success:
        assert res.fun <= obj.fun(x0) * (1 + 1e-12)


@pytest.mark.parametrize("method", ["newton", "gd", "zo", "approx-newton"])
def test_non_finite_gradient_at_the_start_is_an_overflow_status(method):
    drawn("api: overflow at the start")
    A = np.ones((5, 2)) * 300.0
    obj = softsym.objective("exp", A, np.ones(5))
    x0 = np.full(2, 1.18)  # loss finite (u = 708), gradient terms overflow
    try:
        res = softsym.minimize(obj, x0, method=method)
    except ValidationError as exc:
        pytest.fail(f"a start the user passed must not be a ValidationError: {exc}")
    assert not res.success and res.status == 3, (res.status, res.message)
