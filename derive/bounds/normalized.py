"""Bound deriver for the normalized family: interval and norm propagation over derived formulas.

From one member's derived structure (``beta, p, q, T``, the sums ``S, T`` and their partial
derivatives, all from :mod:`softsym.derive.families.normalized`) this module derives SymPy upper
bounds, in the region parameters ``R_A, R_x, n, b_norm, w_max``, for

* ``C``       with ``B(u) >= -C I`` (``B`` the u-space Hessian without regularizer), so that
  ``w_min^2 >= C + l / sigma_min(A)^2`` implies ``hess L >= l I``;
* ``smooth``  the gradient-Lipschitz constant ``sup ||hess L||``;
* ``M``       the Hessian-Lipschitz constant;
* ``G_A, G_b`` the Lipschitz constants of ``grad L`` in ``A`` (spectral norm) and ``b``,
  giving ``||x*(A,b) - x*(A',b')|| <= (G_A ||A-A'|| + G_b ||b-b'||) / l``.

Region (declared assumptions): ``||A||_2 <= R_A``, ``||x||_2 <= R_x`` (so ``||u||_2 <= R_A R_x`` and
``|u_i| <= R_A R_x``), ``0 <= w_i <= w_max``, and ``||b||_2 <= b_norm`` ("ball") or ``b`` on the
probability simplex ("simplex").

Nothing is typed per member.  The rules are:

* **atoms**: ``u_i`` in ``[-R_A R_x, R_A R_x]`` with ``||u||_2 <= R_A R_x``; ``b`` per region; the
  normalizer ``alpha`` kept as a symbol when ``phi > 0`` (so that powers of ``alpha`` cancel
  exactly, see below) and as an interval otherwise; in the *normalized view* (members with
  ``phi > 0``) ``phi(u_i) = alpha F_i`` with ``F`` on the simplex (``0 <= F_i <= 1``,
  ``||F||_1 = 1``, ``||F||_2 <= 1``).
* **propagation**: every per-element expression carries an interval and bounds on its
  1- and 2-norms as a vector over ``i``; sums, products (Hoelder: ``||xy||_2 <= ||x||_inf
  ||y||_2``, ``||xy||_1 <= ||x||_2 ||y||_2``), integer powers, monotone functions
  (exp, sinh, cosh, log) follow interval/norm arithmetic; a global sum ``sum_j e_j`` is
  bounded monomial by monomial by ``n`` times the interval and by ``||e||_1``.
  Records carry an exact power of ``alpha``: homogeneous expressions (softmax) lose
  ``alpha`` entirely; otherwise ``alpha`` is replaced by its interval ``n [min phi, max phi]``.
* **matrix rules**: ``lambda(diag(beta) + p q^T + q p^T + T q q^T)`` is bounded by Weyl
  (``min beta - 2 ||p|| ||q|| - max(0, -T) ||q||^2``); when ``ell = rho^2 / 2`` the
  Gauss-Newton split ``B = J^T J + sum_i rho_i hess rho_i`` drops the PSD part for ``C``;
  the directional derivative ``DB[h]`` follows the chain rule through ``alpha, S, T``.
* **softmax map** (members with ``phi' = phi``, so ``F = phi / alpha`` is the softmax, and
  ``ell = ell~(F, b)``): the chain rule through ``F`` with bounds on ``||D^k F[h^k]||_2``
  (cumulant polynomials derived by series expansion, moment bounds by two-point extremality)
  and the range of the softmax on ``||u||_2 <= R_A R_x``; lemmas L1-L9 below and on the page.
* **pair expansion** (``ell = rho^2 / 2`` with ``rho`` affine in ``alpha``, e.g. the rescaled
  members): the Gauss-Newton remainder is diagonal and, with ``alpha = sum_j phi(u_j)``, a sum
  of pair terms in ``(u_i, u_j)`` bounded under the joint constraint ``u_i^2 + u_j^2 <= (R_A R_x)^2``
  (``e^{sqrt 2 R_A R_x}`` instead of ``e^{2 R_A R_x}``); lemmas P1-P3 below and on the page.

Each quantity is the minimum over the views and rules that apply; a rule meeting something
it cannot bound (division by an interval containing 0, an unknown function) yields ``oo``,
and a member whose every rule gives ``oo`` is reported as "no finite bound".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache

import sympy as sp

from .. import codegen
from ..families.normalized import NormalizedFormulas, S, T
from ..spec import alpha, b, u

R_A, R_x, n, b_norm, w_max = sp.symbols("R_A R_x n b_norm w_max", positive=True)
F = sp.Symbol("F", nonnegative=True)
U = R_A * R_x     # bound on ||u||_2 = ||A x||_2
oo = sp.oo

REGIONS = ("ball", "simplex")
QUANTITIES = ("C", "smooth", "M", "G_A", "G_b")
PARAMS = {"ball": (R_A, R_x, n, b_norm, w_max), "simplex": (R_A, R_x, n, w_max)}

ASSUMPTIONS = {
    "ball": "||A||_2 <= R_A, ||x||_2 <= R_x (so ||Ax||_2 <= R_A R_x), ||b||_2 <= b_norm, 0 <= w_i <= w_max",
    "simplex": "||A||_2 <= R_A, ||x||_2 <= R_x (so ||Ax||_2 <= R_A R_x), b >= 0 with sum(b) = 1, 0 <= w_i <= w_max",
}
MEANING = {
    "C": "B(Ax) >= -C I for the u-space Hessian B without regularizer; w_min^2 >= C + l/sigma_min(A)^2 "
         "implies hess L >= l I",
    "smooth": "||hess L(x)|| <= smooth (gradient Lipschitz constant)",
    "M": "||hess L(x) - hess L(y)|| <= M ||x - y|| (Hessian Lipschitz constant)",
    "G_A": "||grad L_A(x) - grad L_A'(x)|| <= G_A ||A - A'||_2",
    "G_b": "||grad L_b(x) - grad L_b'(x)|| <= G_b ||b - b'||_2",
}


# ----------------------------------------------------------------------------------------
# Scalar helpers

def _nonneg(e: sp.Expr) -> bool:
    return bool(e == 0 or e.is_nonnegative)


def _nonpos(e: sp.Expr) -> bool:
    return bool(e == 0 or e.is_nonpositive)


def _finite(*es: sp.Expr) -> bool:
    return not any(e.has(oo, -oo, sp.zoo, sp.nan) for e in es)


class _Extreme(sp.Function):
    """Unevaluated min/max printed through a helper of the emitted module."""

    _py = ""
    _tex = ""

    def _pythoncode(self, printer) -> str:
        return f"{self._py}({', '.join(printer._print(a) for a in self.args)})"

    def _latex(self, printer, exp=None) -> str:
        tex = rf"\{self._tex}\left({', '.join(printer._print(a) for a in self.args)}\right)"
        return tex if exp is None else rf"{tex}^{{{exp}}}"


class HullMin(_Extreme):
    """min of values all of which matter (interval hulls): NaN propagates."""

    _py, _tex = "_hmin", "min"


class HullMax(_Extreme):
    """max of values all of which matter: NaN propagates."""

    _py, _tex = "_hmax", "max"


class Least(_Extreme):
    """min of alternative valid upper bounds: one that cannot be evaluated (NaN) is skipped."""

    _py, _tex = "_least", "min"


class Greatest(_Extreme):
    """max of alternative valid lower bounds: NaN skipped."""

    _py, _tex = "_greatest", "max"


def _extreme(es, larger: bool, alternatives: bool = False) -> sp.Expr:
    """Max (``larger``) or Min of ``es`` without SymPy's expensive automatic comparisons.

    Arguments are deduplicated, infinities dropped, and an argument removed only when its
    difference to another one has a sign SymPy's assumptions decide; the rest stays an
    unevaluated Min/Max with arguments in canonical order (deterministic output).
    """
    drop = -oo if larger else oo
    keep = []
    for e in es:
        e = sp.sympify(e)
        if e == drop or e in keep:
            continue
        if e == -drop:
            return e
        keep.append(e)
    if not keep:
        return drop
    out = []
    for i, e in enumerate(keep):
        dominated = False
        for j, o in enumerate(keep):
            if i == j:
                continue
            diff = (o - e) if larger else (e - o)
            if diff.is_nonnegative and (not (-diff).is_nonnegative or j < i):
                dominated = True
                break
        if not dominated:
            out.append(e)
    if len(out) == 1:
        return out[0]
    cls = (Greatest if larger else Least) if alternatives else (HullMax if larger else HullMin)
    return cls(*sorted(out, key=sp.default_sort_key))


def _min(*es: sp.Expr) -> sp.Expr:
    return _extreme(es, False)


def _max(*es: sp.Expr) -> sp.Expr:
    return _extreme(es, True)


# Reference parameter values for choosing among alternative valid bounds (any alternative is
# valid; those never the best at any reference point are dropped to keep expressions small).
_GRID = tuple({R_A: sp.Float(r), R_x: sp.Float(r), n: sp.Integer(m), b_norm: sp.Float(c), w_max: sp.Integer(0)}
              for r in ("0.25", "1", "2", "4") for m in (1, 3, 100, 100000) for c in ("0.25", "1"))


_FLOAT_FUNCS = {sp.exp: math.exp, sp.sinh: math.sinh, sp.cosh: math.cosh, sp.log: math.log}


def _fval(e: sp.Expr, pt: dict, memo: dict) -> float:
    """Float value of ``e`` at the reference point ``pt`` (inf/nan on overflow or a bad domain)."""
    if e in memo:
        return memo[e]
    try:
        if e.is_Number:
            v = float(e)
        elif e.is_Symbol:
            v = float(pt[e])
        elif e.is_Add:
            v = math.fsum(_fval(a, pt, memo) for a in e.args)
        elif e.is_Mul:
            v = math.prod(_fval(a, pt, memo) for a in e.args)
        elif e.is_Pow:
            v = _fval(e.base, pt, memo) ** _fval(e.exp, pt, memo)
        elif isinstance(e, _Extreme):
            vals = [_fval(a, pt, memo) for a in e.args]
            if isinstance(e, (Least, Greatest)):
                vals = [x for x in vals if x == x] or [float("nan")]
            v = (min if isinstance(e, (HullMin, Least)) else max)(vals)
        else:
            v = _FLOAT_FUNCS[type(e)](_fval(e.args[0], pt, memo))
        v = float(v.real) if isinstance(v, complex) else float(v)
    except (OverflowError, ValueError, ZeroDivisionError, KeyError, TypeError):
        v = float("nan")
    memo[e] = v
    return v


_MEMOS: tuple[dict, ...] = tuple({} for _ in range(64))


def _value(e: sp.Expr, j: int) -> float:
    return _fval(e, _GRID[j], _MEMOS[j])


def _best(es, larger: bool) -> sp.Expr:
    """Intersection of alternative valid bounds: Max of lower bounds or Min of upper bounds.

    Alternatives never best (or tied first) at a reference point are dropped; the result is a
    valid bound whichever alternatives are kept.
    """
    es = [sp.sympify(e) for e in es]
    es = [e for e in es if _finite(e)]
    if not es:
        return -oo if larger else oo
    es = sorted(set(es), key=sp.default_sort_key)
    if len(es) == 1:
        return es[0]
    vals = [[_value(e, j) for j in range(len(_GRID))] for e in es]
    keep = set()
    for j in range(len(_GRID)):
        col = [v[j] for v in vals]
        ok = [i for i, v in enumerate(col) if v == v]
        if not ok:
            continue
        target = max(col[i] for i in ok) if larger else min(col[i] for i in ok)
        keep.add(next(i for i in ok if col[i] == target))
    kept = [es[i] for i in sorted(keep)] or es
    return _extreme(kept, larger, alternatives=True)


def _imul(alo, ahi, blo, bhi):
    """Interval product [alo, ahi] * [blo, bhi]."""
    if not _finite(alo, ahi, blo, bhi):
        return -oo, oo
    if _nonneg(alo):
        if _nonneg(blo):
            return alo * blo, ahi * bhi
        if _nonpos(bhi):
            return ahi * blo, alo * bhi
        return ahi * blo, ahi * bhi
    if _nonpos(ahi):
        lo, hi = _imul(-ahi, -alo, blo, bhi)
        return -hi, -lo
    if _nonneg(blo) or _nonpos(bhi):
        return _imul(blo, bhi, alo, ahi)
    prods = [alo * blo, alo * bhi, ahi * blo, ahi * bhi]
    return _min(*prods), _max(*prods)


# ----------------------------------------------------------------------------------------
# Records: interval and norms of a per-element vector (or a scalar), times alpha**k

@dataclass(frozen=True)
class Rec:
    """Value in ``alpha**k * [lo, hi]``; vectors also carry ``||.||_1 <= alpha**k n1``, ``||.||_2 <= alpha**k n2``."""

    lo: sp.Expr
    hi: sp.Expr
    n1: sp.Expr | None = None
    n2: sp.Expr | None = None
    k: int = 0

    @property
    def vector(self) -> bool:
        return self.n1 is not None

    @property
    def inf(self) -> sp.Expr:
        """Bound on the largest absolute entry."""
        if not _finite(self.lo, self.hi):
            return oo
        if _nonneg(self.lo):
            return self.hi
        if _nonpos(self.hi):
            return -self.lo
        return _max(-self.lo, self.hi)

    def finite(self) -> bool:
        return _finite(self.lo, self.hi, *(e for e in (self.n1, self.n2) if e is not None))


UNBOUNDED_SCALAR = Rec(-oo, oo)
UNBOUNDED_VECTOR = Rec(-oo, oo, oo, oo)


def _const(c: sp.Expr) -> Rec:
    return Rec(sp.sympify(c), sp.sympify(c))


def _broadcast(r: Rec) -> Rec:
    """A scalar as the vector with all entries equal to it."""
    if r.vector:
        return r
    a = r.inf
    return Rec(r.lo, r.hi, n * a, sp.sqrt(n) * a, r.k)


def _scale_pos(r: Rec, lo: sp.Expr, hi: sp.Expr) -> Rec:
    """r times a positive interval [lo, hi] (used to flatten alpha powers)."""
    plo, phi = _imul(r.lo, r.hi, lo, hi)
    if not r.vector:
        return Rec(plo, phi)
    return Rec(plo, phi, r.n1 * hi, r.n2 * hi)


@dataclass
class Env:
    """Atoms of one view of one region."""

    region: str
    normalized_view: bool
    alpha_symbolic: bool
    alpha_lo: sp.Expr
    alpha_hi: sp.Expr
    scalars: dict[sp.Symbol, Rec] = field(default_factory=dict)
    F_hi: sp.Expr = sp.Integer(1)   # upper bound on the entries of F = phi / alpha

    # -- atoms ----------------------------------------------------------------------------
    def atom(self, s: sp.Symbol) -> Rec:
        if s == u:
            return Rec(-U, U, sp.sqrt(n) * U, U)
        if s == b:
            if self.region == "simplex":
                return Rec(sp.Integer(0), sp.Integer(1), sp.Integer(1), sp.Integer(1))
            return Rec(-b_norm, b_norm, sp.sqrt(n) * b_norm, b_norm)
        if s == F:   # F on the simplex with entries <= F_hi: ||F||_2^2 <= F_hi ||F||_1
            return Rec(sp.Integer(0), self.F_hi, sp.Integer(1), sp.sqrt(self.F_hi))
        if s == alpha:
            if self.alpha_symbolic:
                return Rec(sp.Integer(1), sp.Integer(1), k=1)
            return Rec(self.alpha_lo, self.alpha_hi)
        if s in self.scalars:
            return self.scalars[s]
        if s in (R_A, R_x, n, b_norm, w_max):
            return _const(s)
        return UNBOUNDED_SCALAR

    def flatten(self, r: Rec) -> Rec:
        """Remove the alpha power by the alpha interval."""
        if r.k == 0:
            return r
        if not _nonneg(self.alpha_lo) or self.alpha_lo == 0 and r.k < 0:
            return UNBOUNDED_VECTOR if r.vector else UNBOUNDED_SCALAR
        lo, hi = (self.alpha_lo**r.k, self.alpha_hi**r.k) if r.k > 0 else (self.alpha_hi**r.k, self.alpha_lo**r.k)
        return _scale_pos(r, lo, hi)

    def direct_rec(self, e: sp.Expr) -> Rec:
        """Record of ``e`` in the direct view (phi kept as a function of u)."""
        return Env(self.region, False, self.alpha_symbolic, self.alpha_lo, self.alpha_hi).rec(e)

    # -- propagation ----------------------------------------------------------------------
    def rec(self, e: sp.Expr) -> Rec:
        """Record of ``e``; the better of ``e`` as written and expanded."""
        e = sp.sympify(e)
        r1 = self._rec(e)
        ex = sp.expand(e)
        if ex == e:
            return r1
        return self._intersect(r1, self._rec(ex))

    def _intersect(self, a: Rec, c: Rec) -> Rec:
        if a.k != c.k:
            a, c = self.flatten(a), self.flatten(c)
        if a.vector != c.vector:
            a, c = _broadcast(a), _broadcast(c)
        if not a.finite():
            return c
        if not c.finite():
            return a
        lo, hi = _best([a.lo, c.lo], True), _best([a.hi, c.hi], False)
        if not a.vector:
            return Rec(lo, hi, k=a.k)
        return Rec(lo, hi, _best([a.n1, c.n1], False), _best([a.n2, c.n2], False), a.k)

    def _rec(self, e: sp.Expr) -> Rec:
        if e.is_Number:
            return _const(e)
        if e.is_Symbol:
            return self.atom(e)
        if e.is_Add:
            out = None
            for t in sp.Add.make_args(e):
                out = self._rec(t) if out is None else self.add(out, self._rec(t))
            return out
        if e.is_Mul:
            out = None
            for t in sp.Mul.make_args(e):
                out = self._rec(t) if out is None else self.mul(out, self._rec(t))
            return out
        if e.is_Pow:
            return self.pow(self._rec(e.base), e.exp)
        if isinstance(e, (sp.exp, sp.sinh, sp.cosh, sp.log)):
            return self.func(type(e), self.flatten(self._rec(e.args[0])))
        return UNBOUNDED_SCALAR if not e.has(u, b, F) else UNBOUNDED_VECTOR

    def add(self, a: Rec, c: Rec) -> Rec:
        if a.k != c.k:
            a, c = self.flatten(a), self.flatten(c)
        if a.vector or c.vector:
            a, c = _broadcast(a), _broadcast(c)
            return Rec(a.lo + c.lo, a.hi + c.hi, a.n1 + c.n1, a.n2 + c.n2, a.k)
        return Rec(a.lo + c.lo, a.hi + c.hi, k=a.k)

    def mul(self, a: Rec, c: Rec) -> Rec:
        lo, hi = _imul(a.lo, a.hi, c.lo, c.hi)
        k = a.k + c.k
        if not _finite(lo, hi):
            return UNBOUNDED_VECTOR if (a.vector or c.vector) else UNBOUNDED_SCALAR
        if a.vector and c.vector:
            ai, ci = a.inf, c.inf
            return Rec(lo, hi, _best([a.n2 * c.n2, ai * c.n1, a.n1 * ci], False), _best([ai * c.n2, a.n2 * ci], False), k)
        if a.vector or c.vector:
            v, s = (a, c) if a.vector else (c, a)
            si = s.inf
            return Rec(lo, hi, v.n1 * si, v.n2 * si, k)
        return Rec(lo, hi, k=k)

    def pow(self, a: Rec, m: sp.Expr) -> Rec:
        if not (m.is_Integer and m != 0):
            return UNBOUNDED_VECTOR if a.vector else UNBOUNDED_SCALAR
        m = int(m)
        if m < 0:
            if not a.vector and a.lo == a.hi == 1:  # a pure power of alpha
                return Rec(sp.Integer(1), sp.Integer(1), k=a.k * m)
            if a.lo.is_positive:
                lo, hi = a.hi**m, a.lo**m
            elif a.hi.is_negative:
                lo, hi = (a.lo**m, a.hi**m) if m % 2 else (a.hi**m, a.lo**m)
                lo, hi = (_min(lo, hi), _max(lo, hi))
            else:
                return UNBOUNDED_VECTOR if a.vector else UNBOUNDED_SCALAR
            r = Rec(lo, hi, k=a.k * m)
            if a.vector:
                ai = Rec(lo, hi).inf
                r = Rec(lo, hi, n * ai, sp.sqrt(n) * ai, a.k * m)
            return r
        if _nonneg(a.lo):
            lo, hi = a.lo**m, a.hi**m
        elif m % 2:
            lo, hi = a.lo**m, a.hi**m
        elif _nonpos(a.hi):
            lo, hi = a.hi**m, a.lo**m
        else:
            lo, hi = sp.Integer(0), a.inf**m
        if not a.vector:
            return Rec(lo, hi, k=a.k * m)
        ai = a.inf
        return Rec(lo, hi, _best([ai ** (m - 1) * a.n1, ai ** (m - 2) * a.n2**2], False) if m >= 2 else a.n1,
                   ai ** (m - 1) * a.n2, a.k * m)

    def func(self, f: type, a: Rec) -> Rec:
        if not a.finite():
            return UNBOUNDED_VECTOR if a.vector else UNBOUNDED_SCALAR
        if f in (sp.exp, sp.sinh):
            lo, hi = f(a.lo), f(a.hi)
        elif f is sp.cosh:
            lo = sp.Integer(1) if not (_nonneg(a.lo) or _nonpos(a.hi)) else sp.cosh(_min(abs(a.lo), abs(a.hi)))
            hi = sp.cosh(a.inf)
        elif f is sp.log and a.lo.is_positive:
            lo, hi = sp.log(a.lo), sp.log(a.hi)
        else:
            return UNBOUNDED_VECTOR if a.vector else UNBOUNDED_SCALAR
        if not a.vector:
            return Rec(lo, hi)
        ai = Rec(lo, hi).inf
        return Rec(lo, hi, n * ai, sp.sqrt(n) * ai)

    def sum(self, e: sp.Expr) -> Rec:
        """Scalar record of ``sum_j e_j`` (monomial by monomial, n times the interval or the 1-norm)."""
        def one(r: Rec) -> Rec:
            if not r.vector:
                return Rec(n * r.lo, n * r.hi, k=r.k)
            return Rec(_best([n * r.lo, -r.n1], True), _best([n * r.hi, r.n1], False), k=r.k)

        whole = one(self.rec(e))
        out = None
        for t in sp.Add.make_args(sp.expand(e)):
            rt = one(self.rec(t))
            out = rt if out is None else self.add(out, rt)
        return self._intersect(whole, out)


# ----------------------------------------------------------------------------------------
# Upper bounds as alpha**k * expr, combined without losing exact alpha cancellation

@dataclass(frozen=True)
class Mag:
    """A nonnegative upper bound ``alpha**k * e``."""

    e: sp.Expr
    k: int = 0


def _mag_mul(*ms: Mag) -> Mag:
    e, k = sp.Integer(1), 0
    for m in ms:
        if m.e == 0:
            return Mag(sp.Integer(0))
        e, k = e * m.e, k + m.k
    return Mag(e if _finite(e) else oo, k)


class Bounder:
    """Adds magnitudes, flattening alpha powers through the env when they differ."""

    def __init__(self, env: Env):
        self.env = env

    def flat(self, m: Mag) -> sp.Expr:
        if m.k == 0 or m.e == 0:
            return m.e
        r = self.env.flatten(Rec(sp.Integer(0), m.e, k=m.k))
        return r.hi

    def add(self, *ms: Mag) -> Mag:
        ms = [m for m in ms if m.e != 0]
        if not ms:
            return Mag(sp.Integer(0))
        if len({m.k for m in ms}) == 1:
            e = sum((m.e for m in ms), sp.Integer(0))
            return Mag(e if _finite(e) else oo, ms[0].k)
        e = sum((self.flat(m) for m in ms), sp.Integer(0))
        return Mag(e if _finite(e) else oo)

    # magnitudes of records
    @staticmethod
    def inf(r: Rec) -> Mag:
        return Mag(r.inf, r.k)

    @staticmethod
    def n2(r: Rec) -> Mag:
        return Mag(r.n2 if r.vector else sp.sqrt(n) * r.inf, r.k)

    @staticmethod
    def neg_lo(r: Rec) -> Mag:
        """Upper bound on max(0, -value)."""
        return Mag(sp.Integer(0) if _nonneg(r.lo) else (oo if not _finite(r.lo) else _max(0, -r.lo)), r.k)

    @staticmethod
    def pos_hi(r: Rec) -> Mag:
        """Upper bound on max(0, value)."""
        return Mag(sp.Integer(0) if _nonpos(r.hi) else (oo if not _finite(r.hi) else _max(0, r.hi)), r.k)


# ----------------------------------------------------------------------------------------
# The derivation

@dataclass(frozen=True)
class MemberBounds:
    """Derived bounds of one member: ``exprs[region][quantity]`` (SymPy, in PARAMS[region])."""

    name: str
    exprs: dict[str, dict[str, sp.Expr]]
    rules: dict[str, list[str]]
    notes: tuple[str, ...] = ()    # Markdown/LaTeX paragraphs (lemmas of the rules that applied)

    def finite(self, region: str, quantity: str) -> bool:
        return _finite(self.exprs[region][quantity])


def _rho(f: NormalizedFormulas) -> sp.Expr | None:
    """``rho`` with ``ell = rho**2 / 2`` when the loss is a half square, else None."""
    two = sp.sympify(2 * f.ell)
    if two.is_Pow and two.exp == 2:
        return two.base
    fac = sp.factor(two)
    if fac.is_Pow and fac.exp == 2:
        return fac.base
    return None


def _normalize(e: sp.Expr, phi: sp.Expr) -> sp.Expr:
    """phi(u) -> alpha F (exp(m u) -> (alpha F)**m when phi = exp(u))."""
    e = sp.sympify(e)
    if phi == sp.exp(u):
        e = e.replace(lambda x: isinstance(x, sp.exp) and (x.args[0] / u).is_Integer,
                      lambda x: (alpha * F) ** (x.args[0] / u))
    return e.xreplace({phi: alpha * F})


def _views(f: NormalizedFormulas, region: str) -> list[tuple[str, Env, object]]:
    """(name, env, transform) for every view that applies to the member."""
    probe = Env(region, False, False, sp.Integer(0), sp.Integer(0))
    if f.normalized:
        a = probe.sum(f.phi)
        a_lo, a_hi = a.lo, a.hi
    else:
        a_lo = a_hi = sp.Integer(0)
    pos = bool(f.normalized and a_lo.is_positive)
    views = [("direct", Env(region, False, pos, a_lo, a_hi), lambda e: sp.sympify(e))]
    if pos and _nonneg(probe.rec(f.phi).lo):
        views.append(("normalized", Env(region, True, True, a_lo, a_hi), lambda e: _normalize(e, f.phi)))
    return views


def _structure_bounds(f: NormalizedFormulas, env: Env, tr, rho) -> dict[str, list[tuple[str, Mag]]]:
    """Candidate magnitudes of every quantity in one view (alpha powers still symbolic)."""
    P = f.partials
    d = sp.diff
    bd = Bounder(env)
    # global sums
    ell_a = P["ell_alpha"]
    env.scalars[S] = env.sum(tr(ell_a))
    env.scalars[T] = env.sum(tr(P["ell_alphaalpha"]))
    T3 = env.sum(tr(d(ell_a, alpha, 2)))
    rec = lambda e: env.rec(tr(e))  # noqa: E731

    beta, p, q = f.beta_main, f.p, f.q
    r_beta, r_p, r_q, r_T = rec(beta), rec(p), rec(q), env.scalars[T]
    nq, np_ = bd.n2(r_q), bd.n2(r_p)
    out: dict[str, list[tuple[str, Mag]]] = {k: [] for k in ("C", "Lam", "g", "Mu", "Gb")}

    def rank2(rp: Rec, rt: Rec) -> tuple[Mag, Mag]:
        """(bound on -lambda_min, bound on lambda_max) of p q^T + q p^T + T q q^T."""
        pq = _mag_mul(Mag(2), bd.n2(rp), nq)
        return (bd.add(pq, _mag_mul(bd.neg_lo(rt), nq, nq)), bd.add(pq, _mag_mul(bd.pos_hi(rt), nq, nq)))

    # Weyl on the structure as derived
    neg, pos = rank2(r_p, r_T) if f.rank2 else (Mag(0), Mag(0))
    out["C"].append(("Weyl", bd.add(bd.neg_lo(r_beta), neg)))
    out["Lam"].append(("Weyl", bd.add(bd.pos_hi(r_beta), pos)))

    # Gauss-Newton split for ell = rho^2 / 2: B = J^T J + sum_i rho_i hess rho_i
    if rho is not None:
        S_R, T_R = sp.Symbol("S_R", real=True), sp.Symbol("T_R", real=True)
        env.scalars[S_R] = env.sum(tr(rho * d(rho, alpha)))
        env.scalars[T_R] = env.sum(tr(rho * d(rho, alpha, 2)))
        beta_R = rho * d(rho, u, 2) + S_R * P["phi_uu"]
        r_bR = rec(beta_R)
        negR, posR = rank2(rec(rho * d(rho, u, alpha)), env.scalars[T_R]) if f.rank2 else (Mag(0), Mag(0))
        J = bd.add(bd.inf(rec(d(rho, u))), _mag_mul(bd.n2(rec(d(rho, alpha))), nq))
        out["C"].append(("Gauss-Newton split + Weyl", bd.add(bd.neg_lo(r_bR), negR)))
        out["Lam"].append(("Gauss-Newton split + Weyl", bd.add(_mag_mul(J, J), bd.pos_hi(r_bR), posR)))

    # gradient u-space norm
    out["g"].append(("norm propagation", bd.n2(rec(f.g_main))))

    # Hessian-Lipschitz in u: ||DB[h]|| for ||h||_2 = 1 by the chain rule through alpha, S, T
    Da = nq
    DS = bd.add(np_, _mag_mul(bd.inf(r_T), Da))
    DT = bd.add(bd.n2(rec(d(P["ell_alphaalpha"], u))), _mag_mul(bd.inf(T3), Da))

    def D(e: sp.Expr, vec_norm) -> Mag:
        terms = [bd.inf(rec(d(e, u)))]
        for sym, dv in ((alpha, Da), (S, DS), (T, DT)):
            de = d(e, sym)
            if de != 0:
                terms.append(_mag_mul(vec_norm(rec(de)), dv))
        return bd.add(*terms)

    Dbeta = D(beta, bd.inf)
    if f.rank2:
        Dp, Dq = D(p, bd.n2), D(q, bd.n2)
        Mu = bd.add(Dbeta, _mag_mul(Mag(2), bd.add(_mag_mul(Dp, nq), _mag_mul(np_, Dq))),
                    _mag_mul(DT, nq, nq), _mag_mul(Mag(2), bd.inf(r_T), nq, Dq))
    else:
        Mu = Dbeta
    out["Mu"].append(("chain rule + Weyl", Mu))

    # Centering (shift-invariant members with q > 0): L(u + c 1) = L(u) gives B 1 = 0 and
    # DB[h] 1 = 0, so v^T B v = w^T B w with w = v - m 1, m = pi.v, pi = q / Q, Q = sum q;
    # then q.w = 0 removes the rank-2 terms: v^T B v = sum_i beta_i w_i^2, and
    # sum_i pi_i w_i^2 <= max(pi) ||v||^2 <= ||v||^2 bounds it by sup_i |beta_i| Q / q_i.
    # Likewise w^T DB[h] w = sum_i Dbeta_i w_i^2 + 2 (p.w)(Dq.w).
    if f.spec.shift_invariant and f.rank2 and env.direct_rec(q).lo.is_positive:
        Q = sp.Symbol("Q_sum", positive=True)
        env.scalars[Q] = env.sum(tr(q))

        def per_weight(e: sp.Expr) -> Rec:
            return env.rec(sp.cancel(tr(e) * Q / tr(q)))

        sb = per_weight(beta)
        out["C"].append(("shift-invariance centering", bd.neg_lo(sb)))
        out["Lam"].append(("shift-invariance centering", bd.pos_hi(sb)))
        terms = [bd.inf(per_weight(d(beta, u)))]
        for sym, dv in ((alpha, Da), (S, DS)):
            de = d(beta, sym)
            if de != 0:
                terms.append(_mag_mul(bd.inf(per_weight(de)), dv))
        terms.append(_mag_mul(Mag(2), bd.inf(per_weight(p)), bd.inf(per_weight(P["phi_uu"]))))
        out["Mu"].append(("shift-invariance centering", bd.add(*terms)))

    # sensitivity of g to b: dg/db = diag(ell_ub) + phi' ell_alphab^T
    Gb = bd.inf(rec(d(P["ell_u"], b)))
    if f.normalized:
        Gb = bd.add(Gb, _mag_mul(nq, bd.n2(rec(d(ell_a, b)))))
    out["Gb"].append(("norm propagation", Gb))
    return out


# ----------------------------------------------------------------------------------------
# Rule for members whose normalized map is the softmax (phi' = phi): chain rule through
# F = phi / alpha with bounds on the norms of its directional derivatives.
#
# Notation: h a unit direction, s = F(u) (the softmax of u), c = h - <s, h> 1 (h centred under
# s), m_j = E_s c^j = sum_i s_i c_i^j the central moments (m_1 = 0), f(u) = sum_i ell~(F_i, b_i).
# Lemmas (each a line of proof; the rule applies them, nothing below is typed per member):
#
# * L1 (cumulants).  F(u + t h) = s * exp(t c) / E_s exp(t c), so D^k F(u)[h^k] = s * P_k(c)
#   with P_k the k! t^k coefficient of exp(t c - log E_s exp(t c)), a polynomial in c and the
#   m_j (derived with SymPy by series expansion; P_1 = c, P_2 = c^2 - m_2, ...).
# * L2 (chain rule).  D^2 f[h^2] = sum ell~'' (DF_i)^2 + sum ell~' D^2F_i and
#   D^3 f[h^3] = sum ell~''' (DF_i)^3 + 3 sum ell~'' DF_i D^2F_i + sum ell~' D^3F_i; each sum is
#   bounded by Cauchy-Schwarz (||v||_3 <= ||v||_2 for the first).
# * L3 (Banach 1938).  A symmetric trilinear form on a Hilbert space has norm
#   sup_{|h| = 1} |T[h, h, h]|; so ||DB(u)[h]||_2 <= sup_h |D^3 f(u)[h^3]| and, the ball being
#   convex, ||B(u) - B(v)|| <= that sup times ||u - v||.
# * L4 ||s * v||_2^2 = sum s_i^2 v_i^2 <= s_max E_s v^2.
# * L5 (range) c_i - c_j = h_i - h_j and |h_i - h_j| <= sqrt(2) ||h||_2: under s, c is a mean-zero
#   variable supported on an interval of length D <= sqrt(2).
# * L6 (two-point extremality) a linear functional E g(c) over mean-zero laws on an interval is
#   maximized at an extreme point of {mass 1, mean 0}, a law with at most two atoms x < 0 < y;
#   for g = |c|^j or +-c^j it is homogeneous of degree j in (x, y), so it is largest at
#   y - x = D: E|c|^j <= D^j max_t t(1-t)((1-t)^{j-1} + t^{j-1}) and
#   |m_j| <= D^j max_t |t(1-t)((1-t)^{j-1} + (-1)^j t^{j-1})| (t in [0, 1], maxima exact).
# * L7 (Jensen) m_{2a} >= m_2^a and m_j^2 >= 0: lower bounds for the monomials of E_s P_k(c)^2
#   with negative coefficients; the rest is a polynomial in m_2 in [0, D^2/4] (maximized
#   exactly) plus positive monomials bounded factor by factor with L6.
# * L8 (Gershgorin) ||DF[h]||_2 = ||(diag(s) - s s^T) h||_2 <= max_i 2 s_i (1 - s_i) <= 1/2.
# * L9 (softmax range) ||u||_2 <= R_A R_x gives s_max <= 1 / (1 + (n-1) exp(-R_A R_x sqrt(n/(n-1)))):
#   sum_{j != i} e^{u_j - u_i} >= (n-1) e^{ubar - u_i} (Jensen, ubar the mean of the others) and
#   u_i - ubar <= ||u||_2 sqrt(n/(n-1)) (Cauchy-Schwarz).
#
# Hence, with Q_k = sqrt(s_max V_k) >= ||s * P_k(c)||_2 (V_k >= E_s P_k^2 from L5-L7) and
# Q_1 = min(1/2, sqrt(s_max V_1)):
#   C   <= max(0, -min ell~'') Q_1^2 + ||ell~'||_2 Q_2,   lambda_max(B) <= max(0, max ell~'') Q_1^2 + ||ell~'||_2 Q_2,
#   M_u <= max|ell~'''| Q_1^3 + 3 max|ell~''| Q_1 Q_2 + ||ell~'||_2 Q_3,
# with the norms of ell~' and its derivatives (functions of F and b) by the propagation rules.

_SQRT2 = sp.sqrt(2)    # L5: range of c for a unit direction


def _round_up(v: sp.Expr) -> sp.Expr:
    """``v`` itself when rational, else a 12-digit float a little above it."""
    if v.is_Rational:
        return v
    scaled = sp.ceiling(sp.N(v, 40) * 10**10) + 1
    return sp.Float(sp.Rational(int(scaled), 10**10), 12)


def _max_on(poly: sp.Expr, var: sp.Symbol, lo: sp.Expr, hi: sp.Expr, absolute: bool = False) -> sp.Expr:
    """Exact max over [lo, hi] of ``poly`` (or of ``|poly|``): endpoints and real critical points."""
    P = sp.Poly(poly, var)
    pts = [lo, hi]
    if P.degree() > 1:
        pts += [r for r in P.diff(var).real_roots() if lo <= r <= hi]
    vals = [abs(P.eval(p)) if absolute else P.eval(p) for p in pts]
    return max(vals, key=lambda v: sp.N(v, 40))


def cumulant_polynomials(K: int) -> tuple[dict[int, sp.Expr], sp.Symbol, dict[int, sp.Symbol]]:
    """L1: ``P_k`` with ``D^k F(u)[h^k] = s * P_k(c)`` for k = 1..K, in ``c`` and moments ``m_j``."""
    t, c = sp.Symbol("t", real=True), sp.Symbol("c", real=True)
    m = {j: sp.Symbol(f"m_{j}", real=True) for j in range(2, 2 * K + 1)}
    mgf = 1 + sum(m[j] * t**j / sp.factorial(j) for j in range(2, K + 1))
    series = sp.series(sp.exp(t * c) / mgf, t, 0, K + 1).removeO()
    return {k: sp.expand(sp.factorial(k) * series.coeff(t, k)) for k in range(1, K + 1)}, c, m


def moment_bound(j: int, D: sp.Expr = _SQRT2) -> sp.Expr:
    """L6: sup of ``|E c^j|`` over mean-zero laws of ``c`` with range ``<= D`` (exact)."""
    t = sp.Symbol("t", real=True)
    g = sp.expand(t * (1 - t) * ((1 - t) ** (j - 1) + (-1) ** j * t ** (j - 1)))
    return D**j * _max_on(g, t, sp.Integer(0), sp.Integer(1), absolute=True)


def square_mean_bound(P: sp.Expr, c: sp.Symbol, m: dict[int, sp.Symbol], D: sp.Expr = _SQRT2) -> sp.Expr:
    """L5-L7: ``V >= E_s P(c)^2`` over mean-zero laws of ``c`` with range ``<= D`` (rounded up)."""
    sq = sp.Poly(sp.expand(P**2), c)
    mean = sp.expand(sum((co * (1 if e == 0 else 0 if e == 1 else m[e]) for (e,), co in sq.terms()),
                         sp.Integer(0)))
    js = sorted(m)
    poly_m2, const = sp.Integer(0), sp.Integer(0)
    for monom, co in sp.Poly(mean, *[m[j] for j in js]).terms():
        powers = {j: e for j, e in zip(js, monom) if e}
        if co > 0 and set(powers) <= {2}:
            poly_m2 += co * m[2] ** powers.get(2, 0)
        elif co > 0 or any(j % 2 and e % 2 for j, e in powers.items()):
            const += abs(co) * sp.Mul(*[moment_bound(j, D) ** e for j, e in powers.items()])
        elif not any(j % 2 for j in powers):     # all even: monomial >= m_2^(sum j e / 2)
            poly_m2 += co * m[2] ** sum(j * e // 2 for j, e in powers.items())
        # else: a negative coefficient times even powers of odd moments: <= 0, dropped
    return _round_up(_max_on(poly_m2, m[2], sp.Integer(0), D**2 / 4) + const)


def softmax_loss(f: NormalizedFormulas) -> sp.Expr | None:
    """``ell~(F, b)`` with ``ell = ell~(phi / alpha, b)`` when ``phi' = phi`` (F is the softmax), else None."""
    if not f.normalized or sp.simplify(sp.diff(f.phi, u) - f.phi) != 0:
        return None
    scale = sp.simplify(f.phi.subs(u, 0))
    if not scale.is_positive:
        return None
    a, Fp = sp.Symbol("alpha_pos", positive=True), sp.Symbol("F_pos", positive=True)
    e = sp.simplify(sp.expand_log(f.ell.subs(alpha, a).subs(u, sp.log(a * Fp / scale)), force=True))
    if e.has(a) or e.has(u):
        return None
    return e.subs(Fp, F)


def softmax_range(region_radius: sp.Expr = U) -> sp.Expr:
    """L9: ``s_max`` for ``||u||_2 <= region_radius``."""
    return 1 / (1 + (n - 1) * sp.exp(-region_radius * sp.sqrt(n / (n - 1))))


SOFTMAX_RULE = "softmax-map cumulant rule (phi' = phi)"


@cache
def softmax_map_constants(K: int = 3) -> tuple[dict[int, sp.Expr], sp.Symbol, dict[int, sp.Symbol], dict[int, sp.Expr]]:
    """``(P, c, m, V)``: cumulant polynomials (L1) and ``V_k >= sup E_s P_k(c)^2`` (L5-L7)."""
    P, c, m = cumulant_polynomials(K)
    return P, c, m, {k: square_mean_bound(P[k], c, m) for k in P}


def _softmax_map_bounds(f: NormalizedFormulas, region: str) -> list[tuple[str, str, sp.Expr]]:
    """(rule, key, bound) candidates for ``C``, ``Lam`` (lambda_max of B), ``Mu`` (u-space M) and ``g``.

    ``g`` bounds ``||grad_u l||_2``: ``<grad_u l, h> = sum_i l~'_i DF_i[h] <= ||l~'||_2 Q_1`` for unit ``h``.
    """
    lt = softmax_loss(f)
    if lt is None:
        return []
    V = softmax_map_constants()[3]
    smax = softmax_range()
    env = Env(region, True, True, sp.Integer(1), sp.Integer(1), F_hi=smax)
    bd = Bounder(env)
    e1, e2, e3 = (env.rec(sp.diff(lt, F, k)) for k in (1, 2, 3))
    Q = {k: sp.sqrt(smax * V[k]) for k in V}
    Q[1] = _best([sp.Rational(1, 2), Q[1]], False)
    n1 = bd.n2(e1).e
    out = [("C", bd.neg_lo(e2).e * Q[1]**2 + n1 * Q[2]),
           ("Lam", bd.pos_hi(e2).e * Q[1]**2 + n1 * Q[2]),
           ("Mu", bd.inf(e3).e * Q[1]**3 + 3 * bd.inf(e2).e * Q[1] * Q[2] + n1 * Q[3]),
           ("g", n1 * Q[1])]
    return [(SOFTMAX_RULE, key, e) for key, e in out if _finite(e)]


def _softmax_map_note(f: NormalizedFormulas) -> str | None:
    """The lemmas of the softmax-map rule with this member's derived pieces, as Markdown/LaTeX."""
    lt = softmax_loss(f)
    if lt is None:
        return None
    P, c, m, V = softmax_map_constants()
    names = {F: "F", c: "c", **{m[j]: f"m_{{{j}}}" for j in m}}
    Ps = ", ".join(f"P_{k} = {codegen.latex(P[k], names)}" for k in sorted(P))
    Vs = ", ".join(f"V_{k} = {codegen.latex(V[k], names)}" for k in sorted(V))
    return "\n".join([
        f"### The {SOFTMAX_RULE}", "",
        r"Here $\phi' = \phi$, so $F = \phi/\alpha = s$ is the softmax of $u$ and "
        rf"$\ell = \tilde\ell(F, b)$ with $\tilde\ell = {codegen.latex(lt, names)}$. For a unit direction $h$, "
        r"$c = h - \langle s, h\rangle 1$ and the central moments $m_j = \sum_i s_i c_i^j$:", "",
        r"* (L1, cumulants) $F(u + th) = s \circ e^{tc} / \mathbb{E}_s e^{tc}$, so "
        rf"$D^kF[h^k] = s \circ P_k(c)$ with (SymPy, series of $e^{{tc}}/\mathbb{{E}}_s e^{{tc}}$) ${Ps}$.",
        r"* (L2, chain rule) $D^2 f[h^2] = \sum_i \tilde\ell''(DF_i)^2 + \tilde\ell' D^2F_i$, "
        r"$D^3 f[h^3] = \sum_i \tilde\ell'''(DF_i)^3 + 3\tilde\ell'' DF_i D^2F_i + \tilde\ell' D^3F_i$ "
        "(Cauchy-Schwarz on each sum).",
        r"* (L3, Banach 1938) a symmetric trilinear form has norm $\sup_{\|h\|=1}|T[h,h,h]|$, so "
        r"$\|DB[h]\| \le \sup_h |D^3 f[h^3]|$ and $M_u$ bounds $\|B(u) - B(v)\|/\|u - v\|$ on the (convex) ball.",
        r"* (L4) $\|s \circ v\|_2^2 \le s_{\max} \mathbb{E}_s v^2$.",
        r"* (L5, range) $c_i - c_j = h_i - h_j$, so under $s$ the variable $c$ has mean 0 and range $D \le \sqrt 2$.",
        r"* (L6, two-point extremality) over mean-zero laws with range $\le D$, $|m_j| \le D^j \max_{t \in [0,1]} "
        r"|t(1-t)((1-t)^{j-1} + (-1)^j t^{j-1})|$ "
        "(the extreme points of {mass 1, mean 0} have two atoms; homogeneity).",
        r"* (L7, Jensen) $m_{2a} \ge m_2^a$, $m_j^2 \ge 0$ for the negative monomials of $\mathbb{E}_s P_k^2$; "
        rf"the $m_2$-polynomial left is maximized exactly on $[0, D^2/4]$: ${Vs}$ ($V_k \ge \mathbb{{E}}_s P_k^2$).",
        r"* (L8, Gershgorin) $\|DF[h]\|_2 \le \max_i 2 s_i(1 - s_i) \le 1/2$.",
        r"* (L9, softmax range) $\|u\|_2 \le R_A R_x$ gives $s_{\max} \le 1/(1 + (n-1)e^{-R_A R_x\sqrt{n/(n-1)}})$ "
        "(Jensen over the other entries, then Cauchy-Schwarz).", "",
        r"With $Q_k = \sqrt{s_{\max} V_k}$ and $Q_1 = \min(1/2, \sqrt{s_{\max} V_1})$: "
        r"$C \le \max(0, -\min\tilde\ell'') Q_1^2 + \|\tilde\ell'\|_2 Q_2$, "
        r"$\lambda_{\max}(B) \le \max(0, \max\tilde\ell'') Q_1^2 + \|\tilde\ell'\|_2 Q_2$, "
        r"$M_u \le \max|\tilde\ell'''| Q_1^3 + 3\max|\tilde\ell''| Q_1 Q_2 + \|\tilde\ell'\|_2 Q_3$ and "
        r"$M = R_A^3 M_u$, and the u-gradient $\|\nabla_u \ell\|_2 \le \|\tilde\ell'\|_2 Q_1$ "
        r"(it enters $G_A$); the norms of $\tilde\ell'$, $\tilde\ell''$, $\tilde\ell'''$ come from the propagation rules "
        r"with $0 \le F_i \le s_{\max}$.", ""])


# ----------------------------------------------------------------------------------------
# Rule for half-square losses whose residual is affine in the normalizer: pair expansion.
#
# With ell = rho^2 / 2 and rho = rho0(u) + alpha rho1(b) (rho_{alpha alpha} = rho_{u alpha} = 0),
# the Gauss-Newton split B = J^T J + sum_i rho_i hess rho_i has a *diagonal* second part,
# d_i = rho_i rho0''(u_i) + phi''(u_i) sum_k rho_k rho1(b_k).  Writing alpha = sum_j phi(u_j) and
# Q = sum_k rho1(b_k)^2 turns it into d_i = self(u_i, b_i) + sum_j pair(u_i, b_i; u_j, b_j; Q):
#
# * P1 (diagonal) the j = i term joins self(u_i, b_i) with Q = rho1(b_i)^2 + Q', Q' >= 0;
# * P2 (pairs) for j != i, Q = rho1(b_i)^2 + rho1(b_j)^2 + Q'' with Q'' in [0, sup Q], and the
#   joint constraint u_i^2 + u_j^2 <= ||u||^2 <= (R_A R_x)^2 bounds every exponential,
#   0 < exp(a u_i + a' u_j) <= exp(R_A R_x sqrt(a^2 + a'^2)) (Cauchy-Schwarz); mirrored pairs
#   c (e^x + e^-x) = 2c + 2c (cosh x - 1) keep their constant exactly (sinh u_i sinh u_j gets
#   +-(cosh(sqrt 2 R_A R_x) - 1) / 2, not cosh(sqrt 2 R_A R_x));
# * P3 the terms are grouped by their u-dependent factor; each factor's interval (P2) times its
#   coefficient's interval (in b_i, b_j, Q', with Q split off as in P1/P2 or kept whole, the
#   tighter of the two) bounds the group from below.  A coefficient that is a sum of
#   one-variable polynomials has its range over the box of b from endpoints and critical points.
# * P4 (sum over j) for a factor that is a positive sum of exponentials, the pairs can also be
#   summed before bounding: sum_{j != i} e^{a u_i + a' u_j} <= e^{R_A R_x sqrt(a^2 + a'^2)}
#   + e^{|a| R_A R_x} ((n - 2) + (sqrt(n - 1) - 1) |a'| R_A R_x) (see _exp_pair_sum), n-linear only in a
#   lower-order term.
#
# Hence C <= max(0, -min diagonal term) + (n - 1) max(0, -min pair term) (or the P4 sum),
# dropping J^T J >= 0.

PAIR_RULE = "Gauss-Newton split + pair expansion (residual affine in alpha)"
_u2, _b2, _Qp = sp.Symbol("u_j", real=True), sp.Symbol("b_j", real=True), sp.Symbol("Q_rest", nonnegative=True)


def _exp_terms(e: sp.Expr, uvars: tuple[sp.Symbol, ...]) -> dict[tuple, sp.Expr] | None:
    """``{a: c}`` with ``e = sum c exp(<a, uvars>)`` (numbers ``a``, ``c``), or None when ``e`` has another form."""
    terms: dict[tuple, sp.Expr] = {}
    for t in sp.Add.make_args(sp.powsimp(sp.expand(e.rewrite(sp.exp)))):
        c, rest = t.as_independent(*uvars, as_Add=False)
        arg = sp.Integer(0) if rest == 1 else rest.args[0] if isinstance(rest, sp.exp) else None
        if arg is None or not c.is_number:
            return None
        a = tuple(sp.diff(arg, v) for v in uvars)
        if any(not k.is_number for k in a) or sp.expand(arg - sum(k * v for k, v in zip(a, uvars))) != 0:
            return None
        terms[a] = terms.get(a, sp.Integer(0)) + c
    return terms


def _exp_interval(e: sp.Expr, uvars: tuple[sp.Symbol, ...]) -> tuple[sp.Expr, sp.Expr] | None:
    """P2: an interval holding ``e`` for ``||uvars||_2 <= R_A R_x`` when ``e`` is a sum of ``c exp(linear)``.

    ``0 < e^{<a,u>} <= e^{R_A R_x |a|}`` (Cauchy-Schwarz); a mirrored pair ``c (e^{<a,u>} + e^{-<a,u>})``
    is ``2c + 2c (cosh <a,u> - 1)`` with ``0 <= cosh <a,u> - 1 <= cosh(R_A R_x |a|) - 1``, so that
    e.g. ``sinh(u_i) sinh(u_j)`` gets ``+-(cosh(sqrt 2 R_A R_x) - 1) / 2``.  None when ``e`` has another form.
    """
    terms = _exp_terms(e, uvars)
    if terms is None:
        return None
    lo, hi = sp.Integer(0), sp.Integer(0)
    for a in sorted(terms, key=sp.default_sort_key):
        c, neg = terms[a], tuple(-k for k in a)
        top = sp.exp(U * sp.sqrt(sum(k**2 for k in a)))
        if all(k == 0 for k in a):
            lo, hi = lo + c, hi + c
        elif terms.get(neg) == c:
            if sp.default_sort_key(neg) < sp.default_sort_key(a):
                continue                              # counted with its mirror image
            spread = 2 * c * (sp.cosh(U * sp.sqrt(sum(k**2 for k in a))) - 1)   # sign of c
            lo, hi = (lo + 2 * c, hi + 2 * c + spread) if c > 0 else (lo + 2 * c + spread, hi + 2 * c)
        else:
            lo, hi = (lo, hi + c * top) if c > 0 else (lo + c * top, hi)
    return lo, hi


def _exp_pair_sum(e: sp.Expr) -> sp.Expr:
    """P4: bound of ``sum_{j != i} e(u_i, u_j)`` for ``||u||_2 <= R_A R_x``, ``e`` a positive sum of ``c exp(linear)``.

    With ``m = n - 1`` and ``x_j = a' u_j`` (``sum x_j^2 <= rho^2 = a'^2 ((R_A R_x)^2 - u_i^2)``),
    ``e^x <= 1 + x + x^2 (e^rho - 1 - rho) / rho^2`` for ``x <= rho`` gives
    ``sum_j e^{x_j} <= (m - 1) + (sqrt(m) - 1) rho + e^rho``; times ``e^{a u_i}``, Cauchy-Schwarz
    bounds ``a u_i + rho`` by ``R_A R_x sqrt(a^2 + a'^2)``.  oo when ``e`` has another form.
    """
    terms = _exp_terms(e, (u, _u2))
    if terms is None or any(not c > 0 for c in terms.values()):
        return oo
    total = sp.Integer(0)
    for (a, a2), c in sorted(terms.items(), key=lambda kv: sp.default_sort_key(kv[0])):
        if a2 == 0:
            total += c * (n - 1) * sp.exp(abs(a) * U)
        else:
            total += c * (sp.exp(U * sp.sqrt(a**2 + a2**2))
                          + sp.exp(abs(a) * U) * (n - 2 + (sp.sqrt(n - 1) - 1) * abs(a2) * U))
    return _max(0, total)     # n = 1: no pairs (the formula assumes m >= 1)


def _poly_extremes(p: sp.Expr, box: dict[sp.Symbol, tuple[sp.Expr, sp.Expr]]) -> tuple[sp.Expr, sp.Expr] | None:
    """P3: (lower bound of min, upper bound of max) of ``p`` over ``box`` when separable, else None."""
    gens = [v for v in sorted(box, key=sp.default_sort_key) if p.has(v)]
    if not gens:
        return p, p
    poly = sp.Poly(sp.expand(p), *gens)
    if any(not co.is_number for co in poly.coeffs()) or any(sum(1 for e in mon if e) > 1 for mon in poly.monoms()):
        return None
    lo, hi = poly.coeff_monomial(1), poly.coeff_monomial(1)
    for i, v in enumerate(gens):
        part = sum((co * v ** mon[i] for mon, co in poly.terms() if mon[i]), sp.Integer(0))
        a, c = box[v]
        pts = [a, c]
        if sp.degree(part, v) > 1:   # critical points, inside the box or not: a valid min / max either way
            pts += sp.Poly(sp.diff(part, v), v).real_roots()
        vals = [part.subs(v, x) for x in pts]
        lo, hi = lo + _min(*vals), hi + _max(*vals)
    return lo, hi


def _neg_part_bound(forms: list[sp.Expr], uvars: tuple[sp.Symbol, ...], box, summed: bool = False) -> sp.Expr:
    """P3: upper bound of ``max(0, -e)``, grouping the terms of ``e`` by their u-dependent factor.

    ``summed``: bound ``max(0, -sum_{j != i} e(u_i, u_j))`` instead, by P4 (oo unless every factor is a
    positive sum of exponentials).

    ``forms`` are equal expressions of ``e`` written with different auxiliary variables (e.g. a
    sum split off or not); each coefficient's range is the intersection of what they give.
    """
    groups: list[dict[sp.Expr, sp.Expr]] = []
    for e in forms:
        g: dict[sp.Expr, sp.Expr] = {}
        for t in sp.Add.make_args(sp.expand(e)):
            c, phi_part = t.as_independent(*uvars, as_Add=False)
            g[phi_part] = g.get(phi_part, sp.Integer(0)) + c
        groups.append(g)
    total = sp.Integer(0)
    for phi_part in sorted(set().union(*groups), key=sp.default_sort_key):
        exts = [ext for g in groups if (ext := _poly_extremes(g.get(phi_part, sp.Integer(0)), box)) is not None]
        rng = _exp_interval(phi_part, uvars)
        if not exts or rng is None:
            return oo
        lo, hi = _max(*(x[0] for x in exts)), _min(*(x[1] for x in exts))
        if summed:     # P4: -sum_j factor_ij coef_ij <= max(0, -min coef) sum_j factor_ij (factor > 0)
            total += _max(0, -lo) * _exp_pair_sum(phi_part)
        else:
            total += _max(0, -_imul(rng[0], rng[1], lo, hi)[0])
    return total if _finite(total) else oo


def _pair_parts(f: NormalizedFormulas) -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Symbol] | None:
    """``(rho1, self, pair, Q)`` of the pair expansion, or None when its precondition fails."""
    rho = _rho(f)
    if rho is None or not f.normalized or sp.diff(rho, alpha, 2) != 0 or sp.diff(rho, u, alpha) != 0:
        return None
    rho1 = sp.diff(rho, alpha)
    rho0 = sp.expand(rho - alpha * rho1)
    if rho0.has(alpha) or rho1.has(u):
        return None
    at_j = {u: _u2, b: _b2}
    r0pp, phipp = sp.diff(rho0, u, 2), f.partials["phi_uu"]
    Q = sp.Symbol("Q_all", nonnegative=True)
    pair = r0pp * f.phi.xreplace({u: _u2}) * rho1 + phipp * rho0.xreplace(at_j) * rho1.xreplace(at_j) \
        + phipp * f.phi.xreplace({u: _u2}) * Q
    return rho1, r0pp * rho0, pair, Q


def _pair_bounds(f: NormalizedFormulas, region: str) -> list[tuple[str, str, sp.Expr]]:
    """(rule, "C", bound) from the pair expansion, when its precondition holds."""
    parts = _pair_parts(f)
    if parts is None:
        return []
    rho1, self_, pair, Q = parts
    diag = self_ + pair.xreplace({_u2: u, _b2: b})
    env = Env(region, False, False, sp.Integer(0), sp.Integer(0))
    q_hi = env.sum(rho1**2).hi
    b_box = (sp.Integer(0), sp.Integer(1)) if region == "simplex" else (-b_norm, b_norm)
    box = {b: b_box, _b2: b_box, _Qp: (sp.Integer(0), q_hi), Q: (sp.Integer(0), q_hi)}
    d = _neg_part_bound([diag, diag.xreplace({Q: rho1**2 + _Qp})], (u,), box)
    forms = [pair, pair.xreplace({Q: rho1**2 + rho1.xreplace({b: _b2}) ** 2 + _Qp})]
    Cs = [d + (n - 1) * _neg_part_bound(forms, (u, _u2), box), d + _neg_part_bound(forms, (u, _u2), box, summed=True)]
    return [(PAIR_RULE, "C", C) for C in Cs if _finite(C)]


def _pair_note(f: NormalizedFormulas) -> str | None:
    """The pair expansion with this member's derived pieces, as Markdown/LaTeX."""
    parts = _pair_parts(f)
    if parts is None:
        return None
    rho1, self_, pair, Q = parts
    names = {_u2: "u_j", _b2: "b_j", Q: "Q", u: "u_i", b: "b_i"}
    tex = lambda e: codegen.latex(e, names)  # noqa: E731
    return "\n".join([
        f"### The {PAIR_RULE}", "",
        r"Here $\ell = \rho^2/2$ with $\rho = \rho_0(u) + \alpha\rho_1(b)$, $\rho_1 = " + tex(rho1) + "$. "
        r"In $B = J^\top J + \sum_i \rho_i \nabla^2\rho_i$ the second part is diagonal, "
        r"$d_i = \mathrm{self}(u_i, b_i) + \sum_j \mathrm{pair}(u_i, b_i; u_j, b_j; Q)$ "
        r"with $Q = \sum_k \rho_1(b_k)^2$, "
        rf"$\mathrm{{self}} = {tex(self_)}$ and $\mathrm{{pair}} = {tex(pair)}$.", "",
        r"* (P1) the $j = i$ term joins self with $Q = \rho_1(b_i)^2 + Q'$, $Q' \ge 0$;",
        r"* (P2) for $j \ne i$, $Q = \rho_1(b_i)^2 + \rho_1(b_j)^2 + Q''$ and $u_i^2 + u_j^2 \le (R_A R_x)^2$, so "
        r"$0 < e^{a u_i + a' u_j} \le e^{R_A R_x\sqrt{a^2 + a'^2}}$ (Cauchy-Schwarz); mirrored pairs "
        r"$c(e^x + e^{-x}) = 2c + 2c(\cosh x - 1)$ keep their constant;",
        r"* (P3) terms grouped by their factor in $u$: the factor's interval (P2) times the interval of its "
        r"coefficient in $b_i, b_j, Q'$ ($Q$ split off or whole, the tighter), separable coefficients "
        r"ranged exactly over the box of $b$.",
        r"* (P4) for positive exponential factors the pairs are summed first: "
        r"$\sum_{j \ne i} e^{a u_i + a' u_j} \le e^{R_A R_x\sqrt{a^2 + a'^2}} + e^{|a|R_A R_x}((n - 2) + "
        r"(\sqrt{n-1} - 1)|a'|R_A R_x)$ (from $e^x \le 1 + x + x^2 (e^\rho - 1 - \rho)/\rho^2$ for $x \le \rho$).", "",
        r"So $C \le \max(0, -\min d^{\mathrm{diag}}) + (n - 1)\max(0, -\min \mathrm{pair}_{j \ne i})$ "
        r"(or the P4 sum), dropping $J^\top J \succeq 0$.", ""])


def derive_bounds(f: NormalizedFormulas) -> MemberBounds:
    """Bounds of every quantity in every region for one member (deterministic)."""
    rho = _rho(f)
    exprs: dict[str, dict[str, sp.Expr]] = {}
    rules: dict[str, list[str]] = {}
    for region in REGIONS:
        cands: dict[str, list[tuple[str, sp.Expr]]] = {}
        for vname, env, tr in _views(f, region):
            bd = Bounder(env)
            for key, ms in _structure_bounds(f, env, tr, rho).items():
                for rule, m in ms:
                    e = bd.flat(m)
                    if _finite(e):
                        cands.setdefault(key, []).append((f"{rule} ({vname} view)", e))
        for rule, key, e in _softmax_map_bounds(f, region) + _pair_bounds(f, region):
            cands.setdefault(key, []).append((rule, e))
        best = {key: _best([e for _, e in cands.get(key, [])], False) for key in ("C", "Lam", "g", "Mu", "Gb")}
        C = best["C"]
        Hu = _max(best["Lam"] + w_max**2, C) if _finite(best["Lam"], C) else oo
        smooth = R_A**2 * Hu
        q = {
            "C": C,
            "smooth": smooth,
            "M": R_A**3 * best["Mu"],
            "G_A": best["g"] + R_A * R_x * (w_max**2 + Hu),
            "G_b": R_A * best["Gb"],
        }
        if region == "simplex":
            q = {k: v.subs(b_norm, 1) for k, v in q.items()}
        exprs[region] = {k: (v if _finite(v) else oo) for k, v in q.items()}
        rules[region] = sorted({r for key in cands for r, _ in cands[key]})
    notes = [note for rule, make in ((SOFTMAX_RULE, _softmax_map_note), (PAIR_RULE, _pair_note))
             if any(rule in rules[r] for r in REGIONS) and (note := make(f))]
    return MemberBounds(name=f.spec.name, exprs=exprs, rules=rules, notes=tuple(notes))


# ----------------------------------------------------------------------------------------
# Emission

_PNAMES = {R_A: "R_A", R_x: "R_x", n: "n", b_norm: "b_norm", w_max: "w_max"}


class _SafePrinter(codegen._KernelPrinter):
    """Prints exp/sinh/cosh/powers through overflow-safe helpers of the emitted module."""

    def _print_exp(self, e):  # noqa: N802 (SymPy printer protocol)
        return f"_exp({self._print(e.args[0])})"

    def _print_sinh(self, e):  # noqa: N802
        return f"_sinh({self._print(e.args[0])})"

    def _print_cosh(self, e):  # noqa: N802
        return f"_cosh({self._print(e.args[0])})"

    def _print_Pow(self, e, rational=False):  # noqa: N802
        if e.exp == sp.Rational(1, 2):
            return f"math.sqrt({self._print(e.base)})"
        return f"_pow({self._print(e.base)}, {self._print(e.exp)})"


def emit_module(mb: MemberBounds, spec_hash: str) -> str:
    """Source of ``generated/<name>_bounds.py``: plain-Python evaluators of every bound."""
    lines = [f"# {codegen.HEADER}",
             f'"""Derived bounds for `{mb.name}` (see softsym.derive.bounds.normalized and {mb.name}.md).',
             "",
             "Each function returns an upper bound (math.inf when the rules give no finite bound;",
             "NaN when it cannot be evaluated in floating point, which callers treat as unknown).",
             '"""', "", "import math", "", f'NAME = "{mb.name}"', f'SPEC_HASH = "{spec_hash}"',
             f"QUANTITIES = {QUANTITIES!r}", f"REGIONS = {REGIONS!r}", "",
             codegen.render("bounds_helpers").strip("\n"), "", "", "ASSUMPTIONS = {"]
    lines += [f"    {r!r}: {ASSUMPTIONS[r]!r}," for r in REGIONS] + ["}", "FINITE = {"]
    lines += [f"    ({r!r}, {q!r}): {mb.finite(r, q)}," for r in REGIONS for q in QUANTITIES] + ["}"]
    for region in REGIONS:
        args = ", ".join(_PNAMES[p] for p in PARAMS[region])
        for q in QUANTITIES:
            e = mb.exprs[region][q]
            lines += ["", "", f"def {q}_{region}({args}):", f'    """{MEANING[q]} ({region} region)."""']
            if not _finite(e):
                lines.append("    return math.inf")
                continue
            body = codegen.code_block([("out", e)], _PNAMES, indent=4, printer_cls=_SafePrinter)
            lines += [body, "    return float(out)"]
    lines += ["", "", "FUNCTIONS = {"]
    lines += [f"    ({r!r}, {q!r}): {q}_{r}," for r in REGIONS for q in QUANTITIES] + ["}", ""]
    return "\n".join(lines)


def formulas(mb: MemberBounds) -> dict[str, dict[str, str]]:
    """The derived bounds as LaTeX, ``{region: {quantity: rhs}}``: ``quantity <= rhs`` in that region.

    ``rhs`` is ``\\infty ...`` where the rules give no finite bound.  The formulas page and the
    manifest entry are both built from this mapping.
    """
    names = {b_norm: r"\bar b", w_max: r"w_{\max}"}
    return {region: {q: codegen.latex(mb.exprs[region][q], names) if _finite(mb.exprs[region][q])
                     else "\\infty \\text{ (no finite bound from the rules)}" for q in QUANTITIES}
            for region in REGIONS}


def quantity_latex(q: str) -> str:
    """LaTeX name of a bound quantity (``G_A`` -> ``G_{A}``)."""
    return q.replace("_", "_{") + ("}" if "_" in q else "")


def emit_section(mb: MemberBounds) -> str:
    """Markdown/LaTeX section appended to the member's formulas page."""
    eqs = formulas(mb)
    lines = ["", "## Derived bounds (interval and norm propagation, `softsym.derive.bounds.normalized`)", "",
             "Here $\\bar b$ is the bound on $\\lVert b\\rVert_2$ of the ball region. Constants: $C$ with $B(x) \\succeq -C I$ (so $w_{\\min}^2 \\ge C + l/\\sigma_{\\min}(A)^2$ "
             "gives $\\nabla^2 L \\succeq l I$), smoothness $\\sup\\|\\nabla^2 L\\|$, Hessian-Lipschitz $M$, and "
             "$G_A, G_b$ with $\\|x^*(A,b) - x^*(A',b')\\| \\le (G_A\\|A-A'\\| + G_b\\|b-b'\\|)/l$.", ""]
    for region in REGIONS:
        lines += [f"### Region `{region}`: {ASSUMPTIONS[region]}", "",
                  "Rules used: " + "; ".join(mb.rules[region]) + ".", ""]
        for q in QUANTITIES:
            lines += [f"$${quantity_latex(q)} \\le {eqs[region][q]}$$", ""]
    lines += list(mb.notes)
    return "\n".join(lines)


def manifest_entry(mb: MemberBounds) -> dict:
    """Bounds info for the manifest."""
    return {"module": f"{mb.name}_bounds", "regions": list(REGIONS), "quantities": list(QUANTITIES),
            "assumptions": dict(ASSUMPTIONS),
            "finite": {r: {q: mb.finite(r, q) for q in QUANTITIES} for r in REGIONS},
            "formulas": formulas(mb)}
