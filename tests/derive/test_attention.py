"""The attention family's derivation: spec validation and refusal to emit on a failed proof."""

from __future__ import annotations

import pytest
import sympy as sp

from softsym.derive import pipeline as generate
from softsym.derive.families import attention
from softsym.derive.proof import ProofError
from softsym.derive.spec import SpecError, b

SPEC = attention.AttentionSpec(name="att_test", doc="test", paper="003", ell=(attention.s - b) ** 2)


def test_spec_rejects_non_quadratic_or_unknown_symbols():
    with pytest.raises(SpecError, match="positive constant"):
        attention.AttentionSpec(name="a", doc="", paper="-", ell=(attention.s - b) ** 4)
    with pytest.raises(SpecError, match="unknown symbols"):
        attention.AttentionSpec(name="a", doc="", paper="-", ell=(attention.s - sp.Symbol("q")) ** 2)
    with pytest.raises(SpecError, match="name"):
        attention.AttentionSpec(name="Bad", doc="", paper="-", ell=(attention.s - b) ** 2)


def test_tiny_proof_passes_and_a_wrong_formula_is_refused(monkeypatch):
    monkeypatch.setattr(attention, "PROOF_SIZES", ((1, 1, True), (2, 1, False)))
    files, manifest = attention.member_files(SPEC)
    assert set(files) == {"att_test.py", "att_test.md"} and manifest["proof"]
    assert "row-major" in files["att_test.md"]
    real = attention.structured

    def wrong(*args):
        out = list(real(*args))
        out[1] = out[1] + sp.ones(*out[1].shape) * sp.Rational(1, 10**6)  # perturb dL/dX
        return tuple(out)

    monkeypatch.setattr(attention, "structured", wrong)
    with pytest.raises(ProofError, match="refusing to emit"):
        generate.build_member(SPEC)


@pytest.mark.parametrize("slot", [7, 8])  # d2L/dy dx vec(D), d2L/dx dy vec(W)
def test_a_wrong_cross_hessian_is_refused(monkeypatch, slot):
    monkeypatch.setattr(attention, "PROOF_SIZES", ((1, 1, True),))
    real = attention.structured

    def wrong(*args):
        out = list(real(*args))
        if out[slot] is not None:
            out[slot] = out[slot] + sp.ones(*out[slot].shape) * sp.Rational(1, 10**6)
        return tuple(out)

    monkeypatch.setattr(attention, "structured", wrong)
    with pytest.raises(ProofError, match="d2L/d"):
        attention.prove(attention.derive(SPEC))
