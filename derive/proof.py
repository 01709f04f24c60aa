"""Exact zero tests shared by the family provers.

A proof here is exact: SymPy must reduce a difference of two closed-form expressions to the
literal ``0``.  Numerical agreement never counts as a proof.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp


class ProofError(RuntimeError):
    """A structured formula could not be proven equal to its brute-force definition."""


def is_zero(expr: sp.Expr) -> bool:
    """True when ``expr`` simplifies to exactly 0 (cheap strategies first)."""
    expr = sp.sympify(expr)
    if expr == 0:
        return True
    e = sp.expand(expr)
    if e == 0:
        return True
    e = sp.expand(e.rewrite(sp.exp), power_exp=True)
    if e == 0 or sp.cancel(sp.together(e)) == 0:
        return True
    return sp.simplify(expr) == 0


@dataclass
class ProofLog:
    """What was proven, for the manifest and the formulas page."""

    claims: list[str] = field(default_factory=list)

    def require(self, claim: str, difference: sp.Expr) -> None:
        if not is_zero(difference):
            raise ProofError(f"could not prove: {claim}")
        self.claims.append(claim)

    def require_all(self, claim: str, differences) -> None:
        for k, diff in enumerate(differences):
            if not is_zero(diff):
                raise ProofError(f"could not prove: {claim} (entry {k})")
        self.claims.append(claim)
