"""softsym.objective: bad input, overflow, memoization, scipy compatibility."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize as scipy_minimize

import softsym
from softsym import OverflowDetected, UnknownObjectiveError, ValidationError


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((40, 3)), rng.dirichlet(np.ones(40)), np.full(40, 0.1)


def test_catalogue_lists_members_with_docs_and_proofs():
    members = softsym.catalogue()
    assert {"softmax", "rescaled_exp", "rescaled_cosh", "rescaled_sinh"} <= {m.name for m in members}
    for m in members:
        assert m.doc and m.proof and len(m.spec_hash) == 64


def test_unknown_member(data):
    with pytest.raises(UnknownObjectiveError, match="unknown objective 'softmaxx'.*softmax"):
        softsym.objective("softmaxx", *data)
    assert issubclass(UnknownObjectiveError, ValueError)


@pytest.mark.parametrize("change, match", [
    (dict(A=np.ones(5)), "A must be 2-dimensional"),
    (dict(b=np.ones(39)), r"b must have shape \(40,\)"),
    (dict(w=np.ones((40, 1))), "w must be 1-dimensional"),
    (dict(A=np.ones((0, 3)), b=np.ones(0), w=None), "A is empty"),
    (dict(A=np.full((40, 3), np.nan)), "A has 120 non-finite"),
    (dict(b=np.r_[np.inf, np.ones(39)]), "b has 1 non-finite"),
    (dict(A=np.ones((40, 3), dtype=complex)), "complex"),
    (dict(b=np.array(["a"] * 40)), "string"),
    (dict(w=np.ones(40, dtype=bool)), "bool"),
    (dict(A=None), "A is required"),
])
def test_bad_data_is_rejected(data, change, match):
    kw = dict(zip("Abw", data)) | change
    with pytest.raises(ValidationError, match=match):
        softsym.objective("softmax", kw["A"], kw["b"], kw["w"])


def test_bad_x_and_p_are_rejected(data):
    obj = softsym.objective("softmax", *data)
    with pytest.raises(ValidationError, match=r"x must have shape \(3,\)"):
        obj.fun(np.zeros(4))
    with pytest.raises(ValidationError, match="x has 1 non-finite"):
        obj.jac(np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ValidationError, match="p must be 1-dimensional"):
        obj.hessp(np.zeros(3), np.zeros((3, 1)))


def test_integer_data_is_accepted_as_float(data):
    A, b, w = data
    obj = softsym.objective("softmax", np.round(A * 3).astype(int), b, w)
    assert obj.A.dtype == np.float64 and np.isfinite(obj.fun(np.zeros(3)))


@pytest.mark.parametrize("name", ["exp", "rescaled_exp", "rescaled_cosh", "cosh", "sinh", "rescaled_sinh"])
def test_overflow_is_detected_and_named(name):
    A = np.ones((4, 1))
    obj = softsym.objective(name, A, np.full(4, 0.25))
    x = np.array([800.0])
    for method in (obj.fun, obj.jac, obj.hess):
        with pytest.raises(OverflowDetected, match=rf"{name}: non-finite .*max \|Ax\| = 800"):
            method(x)
    assert issubclass(OverflowDetected, ValueError)


def test_memoization_at_last_x(data):
    obj = softsym.objective("softmax", *data)
    x = np.array([0.1, -0.2, 0.3])
    obj.fun(x), obj.jac(x), obj.hess(x), obj.hessp(x, x), obj.fun(x.copy())
    assert (obj.nfev, obj.njev, obj.nhev) == (1, 1, 1)
    obj.fun(x + 1)
    assert obj.nfev == 2
    H = obj.hess(x)
    H[0, 0] = 1e9          # callers get copies: the cache is not corrupted
    assert obj.hess(x)[0, 0] != 1e9


@pytest.mark.parametrize("name", ["softmax", "rescaled_exp", "softmax_xent"])
@pytest.mark.parametrize("method", ["trust-exact", "Newton-CG"])
def test_scipy_reaches_the_same_minimizer(name, method):
    inst = softsym.problems.normalized.synthetic(name, 300, 4, seed=3, w=0.05)
    obj = inst.objective()
    ours = softsym.minimize(obj, method="newton", tol=1e-12)
    assert ours.success, ours.message
    kw = dict(hess=obj.hess) if method == "trust-exact" else dict(hessp=obj.hessp)
    opts = {"gtol": 1e-12} if method == "trust-exact" else {"xtol": 1e-14}
    theirs = scipy_minimize(obj.fun, np.zeros(4), jac=obj.jac, method=method, options=opts, **kw)
    np.testing.assert_allclose(theirs.x, ours.x, rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", [m.name for m in softsym.catalogue("normalized")])
def test_values_do_not_depend_on_what_was_evaluated_first(name):
    """The loss and gradient at x are the same bits whether or not the Hessian was evaluated there first."""
    from softsym.problems.normalized import synthetic

    inst = synthetic(name, 50, 3, seed=1)
    x = np.random.default_rng(2).standard_normal(3) * 0.3
    fresh = inst.objective().fun_and_jac(x)
    after = inst.objective()
    after.hess(x)
    f, g = after.fun_and_jac(x)
    assert f == fresh[0] and np.array_equal(g, fresh[1])
