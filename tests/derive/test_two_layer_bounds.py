"""The two-layer bound deriver classifies each member's derived structure and refuses what it cannot bound."""

import pytest
import sympy as sp

from softsym.derive.bounds import two_layer as tb
from softsym.derive.catalogue import TWO_LAYER
from softsym.derive.families import two_layer as tl
from softsym.derive.spec import u


@pytest.fixture(scope="module")
def derived():
    return {s.activation: tb.derive_bounds(tl.derive(s)) for s in TWO_LAYER}


def test_kinds_and_quantities(derived):
    assert derived["softmax"].kind == "normalized-exp" and derived["exp"].kind == "elementwise"
    assert derived["relu"].kind == "jump" and not derived["relu"].deterministic
    for act in ("softmax", "exp"):
        assert derived[act].quantities == tb.DETERMINISTIC
    assert derived["relu"].quantities == tb.MARGIN


def test_softmax_constants_carry_the_normalizer(derived):
    e = derived["softmax"].exprs
    p_max = sp.exp(2 * tb.B) / (sp.exp(2 * tb.B) + tb.m - 1)
    assert sp.simplify(e["G"] - tb.kappa * sp.sqrt(p_max)) == 0
    assert sp.simplify(e["L_H"] - 6 * tb.n * tb.c_out * tb.kappa**2 * p_max) == 0
    assert sp.simplify(e["radius"] * 2 * e["L_H"] - tb.lam0) == 0
    assert any("variance" in c or "sum_r p_r b_r^2" in c for c in derived["softmax"].claims)


def test_vector_output_scales_every_n_by_c(derived):
    """c outputs: the per-row constants do not depend on c; lam_max, L_H, smooth, drift are the
    scalar expressions with n -> n c (and reduce to them at c = 1); linearity in a is proven."""
    for act in ("softmax", "exp"):
        e = derived[act].exprs
        for q in ("g_inf", "G", "L_g"):
            assert tb.c_out not in e[q].free_symbols
        for q in ("lam_max", "L_H", "smooth", "drift", "radius", "lr"):
            assert tb.c_out in e[q].free_symbols
            scalar = e[q].subs(tb.c_out, 1)
            assert sp.simplify(e[q] - scalar.subs(tb.n, tb.n * tb.c_out)) == 0
        assert any("g(u; r_1 a + r_2 a') = r_1 g(u; a) + r_2 g(u; a')" in c for c in derived[act].claims)
        assert sp.simplify(e["L_H"] - 2 * tb.n * tb.c_out * e["G"] * e["L_g"]) == 0


def test_relu_has_no_lipschitz_constant(derived):
    r = derived["relu"]
    assert "L_H" not in r.exprs and "smooth" not in r.exprs
    assert any("jumps by" in c for c in r.claims)


def test_non_monotone_activation_is_refused():
    spec = tl.TwoLayerSpec(name="two_layer_tanh", doc="tanh network", paper="-", activation="tanh",
                           sigma=sp.tanh(u), kappa=1 / sp.sqrt(tl.m))
    with pytest.raises(ValueError, match="monotonicity"):
        tb.derive_bounds(tl.derive(spec))


def test_emission_is_python_and_latex(derived):
    for act, b in derived.items():
        src = tb.emit_module(b, "0" * 64)
        ns = {}
        exec(compile(src, f"{act}_bounds", "exec"), ns)
        assert set(ns["FUNCTIONS"]) == set(b.quantities)
        assert "## Derived constants" in tb.emit_section(b)
