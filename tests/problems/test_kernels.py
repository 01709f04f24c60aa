"""Generated kernels against finite differences, each other, and the paper-form formulas (docs/math.md §1).

Tolerances: central differences with step h have truncation error ~h^2 |f'''| / 6 and
rounding error ~eps |f| / h.  With h = 1e-5 and the bounded data drawn here (|A|, |x| <= 1,
so |u| <= d), both are below 1e-8 relative to the scale (1 + |f| + max|g|); we allow 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import softsym
from softsym.registry import kernels
from tests.conftest import central_diff

MEMBERS = [m.name for m in softsym.catalogue("normalized")]
H = 1e-5
RTOL = 1e-6


@st.composite
def instances(draw, simplex_b: bool = False):
    n = draw(st.integers(1, 25))
    d = draw(st.integers(1, 5))
    unit = st.floats(-1, 1, allow_nan=False, allow_subnormal=False)
    A = draw(arrays(np.float64, (n, d), elements=unit))
    x = draw(arrays(np.float64, (d,), elements=unit))
    b = draw(arrays(np.float64, (n,), elements=unit))
    if simplex_b:
        b = np.abs(b) + 1e-3
        b /= b.sum()
    w = draw(arrays(np.float64, (n,), elements=st.floats(0, 1, allow_subnormal=False)))
    v = draw(arrays(np.float64, (d,), elements=unit))
    return A, b, w, x, v


def _scale(obj, x):
    return 1.0 + abs(obj.fun(x)) + float(np.max(np.abs(obj.jac(x))))


@pytest.mark.parametrize("name", MEMBERS)
@given(data=instances())
def test_gradient_matches_central_differences_of_loss(name, data):
    A, b, w, x, _ = data
    obj = softsym.objective(name, A, b, w)
    fd = central_diff(obj.fun, x, H)
    np.testing.assert_allclose(obj.jac(x), fd, rtol=0, atol=RTOL * _scale(obj, x))


@pytest.mark.parametrize("name", MEMBERS)
@given(data=instances())
def test_hessian_matches_central_differences_of_gradient(name, data):
    A, b, w, x, _ = data
    obj = softsym.objective(name, A, b, w)
    Hx = obj.hess(x)
    fd = central_diff(obj.jac, x, H)
    scale = 1.0 + float(np.max(np.abs(Hx))) + _scale(obj, x)
    np.testing.assert_allclose(Hx, fd, rtol=0, atol=RTOL * scale)
    np.testing.assert_array_equal(Hx, Hx.T)


@pytest.mark.parametrize("name", MEMBERS)
@given(data=instances())
def test_hessp_equals_hessian_times_vector(name, data):
    A, b, w, x, v = data
    obj = softsym.objective(name, A, b, w)
    Hx = obj.hess(x)
    np.testing.assert_allclose(obj.hessp(x, v), Hx @ v, rtol=1e-12, atol=1e-12 * (1 + np.abs(Hx).sum()))


@pytest.mark.parametrize("name", MEMBERS)
@given(data=instances())
def test_full_kernels_equal_objective_methods(name, data):
    """The module-level kernels (loss, grad, hess, hessp of A, b, w, x) agree with the objective."""
    A, b, w, x, v = data
    obj = softsym.objective(name, A, b, w)
    k = kernels(name)
    assert k.loss(obj.A, obj.b, obj.w, x) == pytest.approx(obj.fun(x), rel=1e-13, abs=1e-13)
    np.testing.assert_allclose(k.grad(obj.A, obj.b, obj.w, x), obj.jac(x), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(k.hess(obj.A, obj.b, obj.w, x), obj.hess(x), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(k.hessp(obj.A, obj.b, obj.w, x, v), obj.hessp(x, v), rtol=1e-12, atol=1e-13)


# ---- paper-form oracles (docs/math.md §1), typed here only as test oracles -------------------

def _paper_softmax(A, b, w, x):
    u = A @ x
    f = np.exp(u - u.max())
    f /= f.sum()
    c = f - b
    grad = A.T @ (f * c - (f @ c) * f) + A.T @ (w**2 * u)
    v = f * (2 * f - b)
    B = ((3 * f - 2 * b) @ f) * np.outer(f, f) - np.outer(v, f) - np.outer(f, v) + np.diag(v) - (c @ f) * np.diag(f)
    return 0.5 * c @ c + 0.5 * np.sum((w * u) ** 2), grad, A.T @ (B + np.diag(w**2)) @ A


def _paper_rescaled(phi, dphi):
    def form(A, b, w, x):
        u = A @ x
        s, ph = dphi(u), phi(u)
        c = ph - ph.sum() * b
        grad = A.T @ (s * c - (b @ c) * s) + A.T @ (w**2 * u)
        B = (np.diag(s * s) - np.outer(s * b, s) - np.outer(s, s * b) + (b @ b) * np.outer(s, s)
             + np.diag(c * ph) - (c @ b) * np.diag(ph))
        return 0.5 * c @ c + 0.5 * np.sum((w * u) ** 2), grad, A.T @ (B + np.diag(w**2)) @ A
    return form


PAPER = {
    "softmax": _paper_softmax,
    "rescaled_exp": _paper_rescaled(np.exp, np.exp),
    "rescaled_cosh": _paper_rescaled(np.cosh, np.sinh),
    "rescaled_sinh": _paper_rescaled(np.sinh, np.cosh),
}


@pytest.mark.parametrize("name", sorted(PAPER))
@given(data=instances())
def test_paper_form_formulas_agree_with_kernels(name, data):
    A, b, w, x, _ = data
    obj = softsym.objective(name, A, b, w)
    f, g, Hx = PAPER[name](obj.A, obj.b, obj.w, x)
    scale = 1.0 + abs(f) + np.abs(g).max() + np.abs(Hx).max()
    assert obj.fun(x) == pytest.approx(f, abs=1e-12 * scale)
    np.testing.assert_allclose(obj.jac(x), g, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(obj.hess(x), Hx, rtol=0, atol=1e-12 * scale)


def test_softmax_is_stable_for_huge_inputs():
    """Shift by max u: the softmax loss stays exact where exp(u) alone overflows."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((50, 3))
    b = rng.dirichlet(np.ones(50))
    x = np.array([400.0, -300.0, 250.0])
    obj = softsym.objective("softmax", A, b)
    small = softsym.objective("softmax", A, b)
    u = A @ x
    f = np.exp(u - u.max())
    f /= f.sum()
    assert obj.fun(x) == pytest.approx(0.5 * np.sum((f - b) ** 2), rel=1e-12)
    assert np.isfinite(obj.hess(x)).all() and np.isfinite(small.jac(x)).all()
