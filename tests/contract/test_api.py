"""Fuzzed public API: every draw either gives finite values or raises ValidationError /
OverflowDetected; solvers report failure through ``success=False`` (issue 19)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import softsym
from softsym.errors import OverflowDetected, ValidationError
from softsym.estimators import zeroth_order as zo
from softsym.problems.mixture_score import GaussianMixture
from softsym.registry import catalogue
from softsym.solvers.base import gradient_floor

from .conftest import drawn

FUZZ = settings(deadline=None, database=None, max_examples=60,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
NORMALIZED = [m.name for m in catalogue("normalized")]
ALLOWED = (ValidationError, OverflowDetected)


def finite(*values) -> bool:
    return all(np.all(np.isfinite(np.asarray(v, dtype=float))) for v in values)


def outcome(fn, *args, **kwargs):
    """``fn(...)`` under the contract: the value, or None when it raised an allowed error.
    Any other exception propagates (a contract violation)."""
    try:
        return fn(*args, **kwargs)
    except ALLOWED as exc:
        assert str(exc), "errors carry a message"
        return None


# -- strategies ----------------------------------------------------------------------------
scales = st.sampled_from([0.0, 1e-300, 1e-160, 1e-20, 1e-3, 1.0, 3.0, 30.0, 700.0, 1e5, 1e20, 1e160, 1e200, 1e300])
dtypes = st.sampled_from(["float64", "float32", "int64", "bool", "complex128", "object", "str"])


@st.composite
def arrays(draw, shape, dtype=None, special=True):
    """An array of ``shape`` with entries of mixed magnitude (and sometimes NaN/inf, odd dtypes)."""
    size = int(np.prod(shape))
    base = draw(st.lists(st.floats(-1, 1, allow_nan=False), min_size=size, max_size=size))
    a = np.array(base, dtype=float).reshape(shape) * draw(scales)
    if special and size and draw(st.integers(0, 9)) == 0:
        a.flat[draw(st.integers(0, size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    dtype = dtype or (draw(dtypes) if special and draw(st.integers(0, 7)) == 0 else "float64")
    if dtype == "str":
        return a.astype(str)
    if dtype == "object":
        return a.astype(object)
    with np.errstate(all="ignore"):
        return a.astype(dtype)


@st.composite
def problems(draw):
    n, d = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    shape_A = draw(st.sampled_from([(n, d), (n, d), (n, d), (n,), (d, n), (n, d, 1), (0, d)]))
    A = draw(arrays(shape_A))
    b = draw(arrays(draw(st.sampled_from([(n,), (n,), (n,), (n + 1,), (n, 1)]))))
    w = draw(st.one_of(st.none(), arrays((n,), special=False)))
    name = draw(st.one_of(st.sampled_from(NORMALIZED), st.sampled_from(["nope", "softmax\n", "", "SOFTMAX"]),
                          st.sampled_from([None, 5])))
    x = draw(arrays((d,)))
    return name, A, b, w, x


# -- objectives ----------------------------------------------------------------------------
@FUZZ
@given(problems(), st.data())
def test_objective_builds_or_refuses(case, data):
    drawn("api: objective()")
    name, A, b, w, x = case
    obj = outcome(softsym.objective, name, A, b, w)
    if obj is None:
        return
    assert (obj.n, obj.d) == np.shape(A)
    for method in ("fun", "fun_and_jac"):
        value = outcome(getattr(obj, method), x)
        if value is not None:
            assert finite(*(value if isinstance(value, tuple) else (value,))), (method, value)
    pc = outcome(obj.pieces, x)
    if pc is not None:
        assert finite(pc.loss, pc.g, pc.beta, pc.p, pc.q, pc.T)
        with pytest.raises(ValueError):  # the memo's arrays are handed out read-only
            pc.g[...] = 0.0


@FUZZ
@given(st.sampled_from(NORMALIZED), st.integers(1, 5), st.integers(1, 3), st.sampled_from([0.0, 1e-160, 1.0, 1e100]),
       st.sampled_from([1e-5, 1e-3, 1.0, 1e150, 1e300]), st.integers(1, 4), st.sampled_from(["gaussian", "sphere"]),
       st.one_of(st.none(), st.integers(1, 3)), st.integers(0, 2**63 - 1))
def test_zo_estimate_is_finite_or_overflows(name, n, d, xscale, mu, K, kind, block, seed):
    drawn("api: zo.estimate")
    rng = np.random.default_rng(0)
    obj = softsym.objective(name, rng.standard_normal((n, d)), rng.random(n))
    x = rng.standard_normal(d) * xscale
    got = outcome(zo.estimate, obj, x, K=K, mu=mu, kind=kind, seed=seed, block=block)
    if got is not None:
        g, est = got
        assert finite(g, est.coef, est.losses)
        assert np.array_equal(est.grad(), g)  # replay is bit-exact
        # the estimate does not depend on whether x was evaluated just before
        obj.fun(x)
        assert np.array_equal(zo.estimate(obj, x, K=K, mu=mu, kind=kind, seed=seed, block=block)[0], g)


@FUZZ
@given(st.sampled_from([1e-300, 1e-160, 1e-20, 1e-3, 0.4, 1.0, 1e20, 1e160, 1e300]),
       st.sampled_from([0.0, 1.0, 1e5, 1e20, 1e155, 1e160, 1e300]), st.sampled_from([0.0, 1e-12, 0.1, 1.0, 50.0]),
       st.integers(1, 3))
def test_mixture_score_is_finite_or_overflows(std, xscale, t, k):
    drawn("api: mixture score/log_density")
    gm = GaussianMixture(means=np.arange(2.0 * k).reshape(k, 2), stds=np.full(k, std), weights=np.ones(k))
    x = np.array([[xscale, -xscale], [0.5, 0.25]])
    for fn in (gm.score, gm.log_density):
        value = outcome(fn, x, t)
        if value is not None:
            assert finite(value)


# -- options and minimize -------------------------------------------------------------------
junk = st.sampled_from([None, True, False, "true", "false", "1", -1, 0, 1, 2, 0.5, -0.5, 1e300, float("nan"),
                        float("inf"), 2**64, [], {}, "auto", "paper", "gaussian", np.int64(3), np.bool_(True)])
OPTIONS = {"newton": [], "gd": ["lr"],
           "zo": ["K", "mu", "lr", "seed", "kind", "true_grad", "block"],
           "approx-newton": ["eps0", "delta", "seed", "mode", "leverage", "refresh", "sketch_size", "jl_dim",
                             "refine", "exact_above"]}


@pytest.fixture(scope="module")
def small():
    return softsym.problems.normalized.synthetic("softmax", 40, 3, seed=1)


@FUZZ
@given(st.sampled_from(sorted(OPTIONS)), st.data())
def test_options_refused_at_the_start_or_run(small, method, data):
    drawn("api: minimize options")
    keys = data.draw(st.lists(st.sampled_from(OPTIONS[method] + ["bogus", "maxfev"]), max_size=3, unique=True))
    options = {k: data.draw(junk) for k in keys}
    tol = data.draw(st.sampled_from([None, 0.0, 1e-8, -1.0, float("nan"), "1e-8"]))
    maxiter = data.draw(st.sampled_from([None, 0, 3, 25, -1, 2.5, True]))
    callback = data.draw(st.sampled_from([None, print, "print", 3]))
    x0 = data.draw(st.one_of(st.none(), arrays((3,))))
    calls = []

    def cb(r):
        calls.append(r.nit)

    obj = small.objective()
    res = outcome(softsym.minimize, obj, x0, method=method, tol=tol, maxiter=maxiter,
                  callback=cb if callback is print else callback, **options)
    if res is None:
        assert not calls, "options must be refused before the first iteration"
        return
    assert res.status in (0, 1, 2, 3, 4, 99) and isinstance(res.message, str) and res.message
    if res.success:  # stationary: the relative test or the absolute floor, at the true gradient
        assert finite(res.x, res.fun, res.jac)
        g = np.linalg.norm(obj.jac(res.x))
        assert (res.rel_grad_norm <= (1e-10 if tol is None else tol)
                or g <= gradient_floor(obj, res.fun)), res.message


def test_bad_callback_and_flags_are_refused_before_work(small):
    drawn("api: minimize options")
    obj = small.objective()
    for kwargs in ({"callback": 3}, {"certify_start": "no"}, {"method": "zo", "true_grad": "false"},
                   {"method": "approx-newton", "sketch_size": -2}, {"method": "approx-newton", "jl_dim": 0},
                   {"method": "approx-newton", "seed": -1}, {"method": "zo", "seed": 1.5}, {"method": "gd", "K": 3}):
        nfev = obj.nfev
        with pytest.raises(ValidationError):
            softsym.minimize(obj, **kwargs)
        assert obj.nfev == nfev


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, "3", True, None])
def test_seeds_validated_everywhere(seed):
    drawn("api: seeds")
    from softsym.problems.attention import planted
    from softsym.problems.normalized import synthetic
    from softsym.problems.two_layer import TwoLayerNetwork

    for fn in (lambda: synthetic("softmax", 4, 2, seed=seed), lambda: planted(4, 2, seed=seed),
               lambda: TwoLayerNetwork(3, 4, seed=seed), lambda: GaussianMixture.ring().sample(3, seed=seed)):
        if seed is None:
            continue
        with pytest.raises(ValidationError, match="seed"):
            fn()


# -- threads --------------------------------------------------------------------------------
def test_one_objective_shared_by_threads_gives_the_serial_values():
    drawn("api: threads")
    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((3000, 6)), rng.random(3000)
    obj = softsym.objective("softmax", A, b)
    xs = [rng.standard_normal(6) * 0.3 for _ in range(6)]
    ref = [(softsym.objective("softmax", A, b).jac(x), softsym.objective("softmax", A, b).hess(x)) for x in xs]
    bad = []

    def work(i: int) -> None:
        for r in range(60):
            k = (i + r) % len(xs)
            g, H = obj.jac(xs[k]), obj.hess(xs[k])
            if not (np.array_equal(g, ref[k][0]) and np.array_equal(H, ref[k][1])):
                bad.append(k)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_one_attention_problem_shared_by_threads_gives_the_serial_values():
    drawn("api: threads")
    from softsym.problems.attention import AttentionRegression, planted

    inst = planted(200, 3, seed=0)
    prob = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B)
    points = [(inst.perturbed_start(seed=s), inst.Y_star) for s in range(4)]
    fresh = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B)
    ref = [fresh.value_and_grad(X, Y) for X, Y in points]
    bad = []

    def work(i: int) -> None:
        for r in range(20):
            k = (i + r) % len(points)
            val, gX, gY = prob.value_and_grad(*points[k])
            if not (val == ref[k][0] and np.array_equal(gX, ref[k][1]) and np.array_equal(gY, ref[k][2])):
                bad.append(k)
            prob.hessp_x(*points[k], points[0][0])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


@pytest.mark.parametrize("make", [
    lambda: zo.estimate(softsym.objective("softmax", np.ones((4, 2)), np.full(4, 0.25)), np.zeros(2), K=10**11),
    lambda: softsym.minimize(softsym.objective("softmax", np.ones((4, 2)), np.full(4, 0.25)), method="zo",
                             K=10**11, maxiter=1),
    lambda: __import__("softsym.problems.normalized", fromlist=["x"]).synthetic("softmax", 10**8, 10**5),
    lambda: __import__("softsym.problems.attention", fromlist=["x"]).planted(10**7, 3),
    lambda: __import__("softsym.problems.two_layer", fromlist=["x"]).regression_task(10**8, 10**5),
    lambda: __import__("softsym.problems.two_layer", fromlist=["x"]).TwoLayerNetwork(10**6, 10**8),
    lambda: GaussianMixture.ring().sample(10**12),
])
def test_sizes_beyond_memory_are_refused_before_allocating(make):
    """A request larger than half the machine's memory is a ValidationError naming the size
    arguments, never a MemoryError (or minutes of swapping) after allocating."""
    drawn("api: sizes beyond memory")
    with pytest.raises(ValidationError, match="GiB"):
        make()
