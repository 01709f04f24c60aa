"""The stopping rule at rounding-level gradients, the Status codes, stateless solvers and the one line search."""

from __future__ import annotations

import numpy as np
import pytest

import softsym
from softsym.errors import ValidationError
from softsym.problems import attention
from softsym.problems.normalized import synthetic
from softsym.solvers import Status
from softsym.solvers.base import GTOL_FACTOR, gradient_floor, norm
from softsym.solvers.line_search import STALL_ENABLED, armijo, backtracking, loss_only, newton_stall, rounding_floor
from softsym.solvers.status import RoundingStall, SolverFailure


def test_status_codes_are_scipy_compatible_ints():
    assert [int(s) for s in Status] == [0, 1, 2, 3, 4, 5, 99]
    res = softsym.minimize(synthetic("softmax", 50, 2, seed=0).objective(), maxiter=1, tol=0.0, gtol_abs=0.0)
    assert type(res.status) is int and res.status == Status.MAXITER == 1


def test_norm_does_not_underflow():
    v = np.full(4, 1e-170)
    assert np.linalg.norm(v) == 0.0  # what the driver must not use
    assert norm(v) == pytest.approx(2e-170, rel=1e-15)
    assert norm(np.zeros(3)) == 0.0 and norm(np.array([3.0, 4.0])) == 5.0


@pytest.mark.parametrize("method", ["newton", "gd", "approx-newton"])
def test_start_at_the_exact_minimizer_succeeds(method):
    """At a planted minimizer ||grad L(x0)|| is rounding noise: the relative test cannot be met,
    the absolute floor is, within a few iterations (no maxiter)."""
    inst = synthetic("softmax", 400, 6, seed=11)
    obj = inst.objective()
    res = softsym.minimize(obj, inst.x_star, method=method, maxiter=50)
    assert res.success and res.status == 0, res.message
    assert res.nit <= 3
    assert np.linalg.norm(res.x - inst.x_star) <= 1e-12
    # and without the floor the same start runs into the cap: the case the floor exists for
    old = softsym.minimize(obj, inst.x_star, method=method, maxiter=20, gtol_abs=0.0)
    assert not old.success


@pytest.mark.parametrize("name", [m.name for m in softsym.catalogue("normalized")])
def test_restart_from_a_converged_point_succeeds(name):
    inst = synthetic(name, 400, 6, seed=11)
    obj = inst.objective()
    x0 = np.random.default_rng(1).standard_normal(6) * 0.1
    first = softsym.minimize(obj, x0, method="newton")
    assert first.success, first.message
    again = softsym.minimize(obj, first.x, method="newton")
    assert again.success and again.status == 0, again.message
    assert again.nit <= 5
    # below the absolute floor, or stopped by a Newton step at the rounding level of x (which then barely moved)
    if "rounding level: the Newton step" in again.message:
        assert np.linalg.norm(again.x - first.x) <= 1e3 * np.finfo(float).eps * np.linalg.norm(first.x)
    else:
        assert np.linalg.norm(again.jac) <= gradient_floor(obj, again.fun)


# the starts whose gradient is rounding noise far above the absolute floor (cancellation in the
# normalizer alpha, ill-conditioned Hessians): up to 1e4 floor units for rescaled_sinh at n = 4000
@pytest.mark.parametrize("name,n,seed", [("rescaled_sinh", 4000, 0), ("rescaled_sinh", 400, 2), ("exp", 1200, 3),
                                         ("rescaled_exp", 1200, 3)])
@pytest.mark.parametrize("method", ["newton", "approx-newton", "gd"])
def test_noise_level_start_stops_at_rounding_level(name, n, seed, method):
    inst = synthetic(name, n, 6, seed=seed)
    obj = inst.objective()
    assert norm(obj.jac(inst.x_star)) > gradient_floor(obj, obj.fun(inst.x_star))  # the floor alone cannot stop it
    res = softsym.minimize(obj, inst.x_star, method=method, maxiter=30)
    assert res.success and res.status == 0, res.message
    # gradient descent stops at its first stalled step, which may take a few noise-level steps
    assert res.nit <= (6 if method == "gd" else 3) and "rounding level" in res.message
    assert np.linalg.norm(res.x - inst.x_star) <= 1e3 * np.finfo(float).eps * np.linalg.norm(inst.x_star)
    # gtol_abs=0 asks for the purely relative test: no rounding-level stop either
    assert not softsym.minimize(obj, inst.x_star, method=method, maxiter=5, gtol_abs=0.0).success


def test_newton_stall_needs_a_tiny_step_and_no_decrease():
    inst = synthetic("softmax", 200, 4, seed=1)
    obj = inst.objective()
    x = inst.x_star + 0.1
    f, g = obj.fun_and_jac(x)
    d = np.linalg.solve(obj.hess(x), -g)
    newton_stall(obj, x, f, g, d)  # a real step: no stop
    with pytest.raises(RoundingStall):
        newton_stall(obj, x, f, g, d * 1e-17 / np.linalg.norm(d) * np.linalg.norm(x))
    tiny = np.finfo(float).tiny
    newton_stall(obj, x, f, g * tiny, d * tiny)  # an underflowing gradient proves nothing
    newton_stall(obj, x, f, g, np.zeros(4))  # nor does a step that is exactly 0
    token = STALL_ENABLED.set(False)
    try:
        newton_stall(obj, x, f, g, d * 1e-17 / np.linalg.norm(d) * np.linalg.norm(x))
    finally:
        STALL_ENABLED.reset(token)


def test_attention_restart_stops_at_rounding_level():
    p = attention.planted(40, 3, seed=3)
    prob = attention.AttentionRegression(p.A1, p.A2, p.A3, p.B)
    first = softsym.minimize(prob, np.concatenate([p.perturbed_start(seed=3).ravel(), np.zeros(9)]), method="newton")
    assert first.success, first.message
    again = softsym.minimize(prob, first.x, method="newton", maxiter=30)
    assert again.success and again.status == 0 and again.nit <= 3, again.message


@pytest.mark.parametrize("method", ["newton", "gd"])
def test_underflowing_gradient_is_not_stationary(method):
    """With A scaled by 1e-160 the gradient has entries ~1e-163 (its naive norm underflows to 0):
    not a stationary point, so no success with 0 iterations."""
    inst = synthetic("softmax", 200, 5, seed=0)
    obj = softsym.objective("softmax", inst.A * 1e-160, inst.b)
    g = obj.jac(np.zeros(5))
    assert np.linalg.norm(g) == 0.0 < norm(g)
    assert gradient_floor(obj, obj.fun(np.zeros(5))) < 1e-6 * norm(g)  # the floor scales with A
    res = softsym.minimize(obj, method=method, maxiter=20)
    assert not (res.success and res.nit == 0)
    assert res.history["grad_norm"][0] > 0


def test_floor_is_documented_size():
    obj = synthetic("softmax", 30, 4, seed=1).objective()
    amax = np.max(np.linalg.norm(obj.A, axis=1))
    assert obj.grad_unit == pytest.approx(amax, rel=1e-14)
    want = GTOL_FACTOR * np.finfo(float).eps * 2.0 * max(1.0, 3.0) * amax
    assert gradient_floor(obj, -3.0) == pytest.approx(want, rel=1e-14)


def test_explicit_gtol_abs():
    inst = synthetic("softmax", 300, 4, seed=3)
    obj = inst.objective()
    g0 = np.linalg.norm(obj.jac(np.zeros(4)))
    res = softsym.minimize(obj, method="gd", gtol_abs=1e-3 * g0, tol=0.0)
    assert res.success and "absolute floor" in res.message
    assert res.history["grad_norm"][-1] <= 1e-3 * g0 < res.history["grad_norm"][-2]
    with pytest.raises(ValidationError, match="gtol_abs"):
        softsym.minimize(obj, gtol_abs=-1.0)


def test_zo_huge_fixed_step_is_not_a_success():
    """A fixed step that jumps into the flat tail of softmax has a tiny gradient at a much worse loss."""
    inst = synthetic("softmax", 200, 5, seed=0)
    obj = inst.objective()
    for lr in (1e3, 1e6):
        res = softsym.minimize(obj, method="zo", lr=lr, K=4, maxiter=50, seed=0)
        assert res.fun > 100 * res.history["fun"][0]  # the case of the contract: far worse than the start
        assert not res.success and res.status == 2 and "above the start" in res.message, res.message


def test_no_success_above_the_start_loss():
    class Climb:
        """A problem whose loss rises while the gradient vanishes (driven by the unguarded two-layer GD)."""

        family, d, nfev, njev, nhev = "two_layer", 1, 0, 0, 0

        def objective(self):
            return self

        def start(self, x0):
            return x0

        def fun(self, x):
            return float(1.0 - np.exp(-x[0] ** 2))

        def jac(self, x):
            return np.array([2 * x[0] * np.exp(-x[0] ** 2)])

        def fun_and_jac(self, x):
            return self.fun(x), self.jac(x)

    res = softsym.minimize(Climb(), np.array([-0.5]), method="gd", lr=400.0, maxiter=5)
    assert res.fun > res.history["fun"][0]
    assert not res.success and res.status == 2 and "above the start" in res.message


def test_non_finite_gradient_at_the_start_is_an_overflow():
    class Bad:
        family, d, nfev, njev, nhev = "normalized", 2, 0, 0, 0

        def fun(self, x):
            return 1.0

        def jac(self, x):
            return np.array([np.inf, 0.0])

        def fun_and_jac(self, x):
            return self.fun(x), self.jac(x)

    for method in ("gd", "newton"):
        res = softsym.minimize(Bad(), method=method, certify_start=False)
        assert not res.success and res.status == 3 and "x0" in res.message, res.message


def test_callback_must_be_callable():
    obj = synthetic("softmax", 50, 2).objective()
    with pytest.raises(ValidationError, match="callback"):
        softsym.minimize(obj, callback=3)


# -- stateless solvers ----------------------------------------------------------------------

@pytest.mark.parametrize("method,options", [("zo", {"K": 3, "seed": 9}), ("approx-newton", {"seed": 2}),
                                            ("gd", {}), ("newton", {})])
def test_running_one_solver_instance_twice_gives_the_same_run(method, options):
    from softsym.solvers import make_solver, run

    inst = synthetic("softmax", 3000, 5, seed=4, w=0.05)
    obj = inst.objective()
    x0 = np.full(5, 0.05)
    solver = make_solver("normalized", method, options)
    before = dict(vars(solver))
    a = run(solver, obj, x0, 1e-8, 20)
    b = run(solver, obj, x0, 1e-8, 20)
    assert vars(solver).keys() == before.keys()  # nothing added to the instance by a run
    np.testing.assert_array_equal(a.x, b.x)
    assert a.nit == b.nit and a.history["fun"] == b.history["fun"]
    if method == "zo":
        assert len(a.zo_record) == len(b.zo_record) == a.nit


def test_zo_record_does_not_grow_across_runs():
    obj = synthetic("softmax", 200, 4, seed=1).objective()
    r1 = softsym.minimize(obj, method="zo", K=2, maxiter=20, tol=0.0, seed=5)
    from softsym.solvers import make_solver, run

    solver = make_solver("normalized", "zo", {"K": 2, "seed": 5})
    lens = [len(run(solver, obj, np.zeros(4), 0.0, 20).zo_record) for _ in range(2)]
    assert lens == [20, 20] and len(r1.zo_record) == 20


def test_zo_rejects_string_booleans():
    obj = synthetic("softmax", 50, 2).objective()
    with pytest.raises(ValidationError, match="true_grad"):
        softsym.minimize(obj, method="zo", true_grad="False")


# -- the line search -------------------------------------------------------------------------

def test_armijo_accepts_sufficient_decrease_and_halves():
    f = lambda t: ((1.0 - t) ** 2, None)  # noqa: E731  (L(x + t d) with L(0) = 1, slope -2)
    t, ft, _ = armijo(f, 1.0, -2.0, t0=4.0)
    assert t == 1.0 and ft == 0.0  # 4 and 2 fail Armijo, 1 is exact
    with pytest.raises(SolverFailure) as e:
        armijo(f, 1.0, 0.0)
    assert e.value.status == Status.LINE_SEARCH and "descent" in str(e.value)
    with pytest.raises(SolverFailure) as e:
        armijo(f, 1.0, np.nan)
    assert e.value.status == Status.OVERFLOW


def test_armijo_treats_overflow_as_infinite_loss():
    def f(t):
        if t > 0.3:
            raise softsym.OverflowDetected("too far")
        return 1.0 - t, None

    t, ft, _ = armijo(f, 1.0, -1.0, t0=1.0)
    assert t == 0.25 and ft == 0.75


def test_near_floor_acceptance_only_within_the_rounding_floor():
    f0 = 1.0
    floor = rounding_floor(f0, 400)
    assert floor == pytest.approx(64 * np.finfo(float).eps * 20)
    calls = []

    def evaluate(t):
        return f0 + 0.5 * floor, t  # within the floor, no Armijo decrease

    def near(t, ft, payload):
        calls.append(t)
        return True

    t, ft, payload = armijo(evaluate, f0, -1e-30, 1.0, floor=floor, near_floor=near)
    assert t == 1.0 and calls == [1.0] and payload == 1.0
    with pytest.raises(SolverFailure):  # outside the floor the fallback is never consulted
        armijo(lambda t: (f0 + 2 * floor, t), f0, -1e-30, 1.0, floor=floor, near_floor=near, max_trials=5)
    assert calls == [1.0]


def test_backtracking_and_loss_only_on_an_objective():
    inst = synthetic("softmax", 300, 4, seed=2)
    obj = inst.objective()
    x = np.zeros(4)
    f, g = obj.fun_and_jac(x)
    t, ft = backtracking(obj, x, f, g, -g, t0=1e6)
    assert ft <= f - 1e-4 * t * (g @ g) and ft == obj.fun(x - t * g)
    t2, ft2 = loss_only(obj, x, f, -g, -(g @ g), t0=1e6)
    assert t2 == t and ft2 == ft  # far from the floor both are Armijo's test


def test_a_trial_step_that_overflows_x_is_shortened_not_a_validation_error():
    inst = synthetic("softmax", 100, 3, seed=0)
    obj = inst.objective()
    f, g = obj.fun_and_jac(np.zeros(3))
    d = -g / np.abs(g).min()
    with np.errstate(over="ignore"):
        assert not np.all(np.isfinite(1e308 * d))  # the first trial point is not a float vector
    try:
        t, ft = backtracking(obj, np.zeros(3), f, g, d, t0=1e308)
    except SolverFailure as exc:  # 60 halvings may not reach a sensible step: a failure, with its status
        assert exc.status == Status.LINE_SEARCH
    else:
        assert np.isfinite(ft) and ft < f
