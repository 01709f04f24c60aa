"""Objective specs: a few lines of SymPy per objective.

A spec names an objective and gives its scalar building blocks; the family module
(``softsym.derive.families.normalized`` for :class:`NormalizedSpec`) turns it into derived,
proven formulas and the emitter writes kernels for them.

The symbols a normalized spec may use are exported here::

    from softsym.derive.spec import NormalizedSpec, u, alpha, b
    from sympy import exp
    spec = NormalizedSpec(name="softmax", doc="...", paper="000",
                          phi=exp(u), ell=(exp(u) / alpha - b) ** 2 / 2,
                          shift_invariant=True)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import sympy as sp

# Per-element symbols of the normalized family.  ``u`` is one entry of A x, ``alpha`` the
# normalizer sum_i phi(u_i), ``b`` and ``w`` the entry's target and regularizer weight.
u, alpha, b, w = sp.symbols("u alpha b w", real=True)

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")  # used with fullmatch: no trailing newline slips through


def fingerprint_of(*parts) -> str:
    """SHA-256 of a spec's defining parts: strings, bools and None as text, SymPy objects by srepr.

    Stable across runs, machines and hash seeds; every spec class's ``fingerprint`` uses it.
    """
    def text(part) -> str:
        return str(part) if part is None or isinstance(part, (str, bool)) else sp.srepr(sp.sympify(part))

    return hashlib.sha256("\x1f".join(map(text, parts)).encode()).hexdigest()


class SpecError(ValueError):
    """A spec is malformed (bad name, free symbols the family does not know, ...)."""


@dataclass(frozen=True)
class NormalizedSpec:
    """One member of the normalized elementwise family (docs/math.md §1).

    ``L(x) = sum_i ell(u_i, alpha; b_i) + 1/2 w_i^2 u_i^2`` with ``u = A x`` and
    ``alpha = sum_i phi(u_i)``.  The regularizer is added by the family, never by the spec.

    Parameters
    ----------
    name : identifier used for the kernel module and ``softsym.objective(name, ...)``.
    doc : one line describing the objective.
    paper : the paper it comes from (``"000"`` ... ``"004"``) or ``"-"``.
    ell : per-element loss in ``u``, ``alpha``, ``b``.
    phi : normalizer summand in ``u``; ``None`` for unnormalized objectives.
    target : optional ``b`` (in ``u``, ``alpha``) that makes ``u = A x*`` a stationary point, used to
        plant synthetic instances.  Default: the solution of ``d ell / d b = 0``.  The prover
        checks that the planted target zeroes the gradient.
    shift_invariant : claim that ``L`` (without regularizer) is unchanged when every
        ``u_i`` is shifted by the same constant.  The prover checks the claim; the kernels
        then evaluate at ``u - max(u)``, which keeps softmax-type members overflow free.
    """

    name: str
    doc: str
    paper: str
    ell: sp.Expr
    phi: sp.Expr | None = None
    shift_invariant: bool = False
    target: sp.Expr | None = None

    family = "normalized"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise SpecError(f"spec name {self.name!r} must match {NAME_PATTERN.pattern}")
        allowed_ell = {u, alpha, b} if self.phi is not None else {u, b}
        extra = set(sp.sympify(self.ell).free_symbols) - allowed_ell
        if extra:
            raise SpecError(f"spec {self.name!r}: ell uses unknown symbols {sorted(map(str, extra))};"
                            f" allowed: {sorted(map(str, allowed_ell))}")
        if self.phi is not None:
            extra = set(sp.sympify(self.phi).free_symbols) - {u}
            if extra:
                raise SpecError(f"spec {self.name!r}: phi may depend on u only, got {sorted(map(str, extra))}")
        if self.shift_invariant and self.phi is None:
            raise SpecError(f"spec {self.name!r}: shift invariance needs a normalizer phi")

    def fingerprint(self) -> str:
        """SHA-256 of everything that defines the spec (stable across runs and machines)."""
        return fingerprint_of(self.family, self.name, self.doc, self.paper, self.ell, self.phi,
                              self.shift_invariant, self.target)
