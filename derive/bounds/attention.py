"""Bound deriver for the attention family: norm propagation over the family's derivative structure.

For ``L(X, Y) = sum ell(S, B) + reg_x ||X||_F^2 + reg_y ||Y||_F^2`` with ``S = F(X) A3 Y``,
``F = row-softmax(U)``, ``U = A1 X A2^T`` (the family of :mod:`softsym.derive.families.attention`),
this module derives SymPy upper bounds in the region parameters

    ||A1||_2, ||A2||_2, ||A3||_2 <= R_A,  ||X||_F <= R_X,  ||Y||_F <= R_Y,  ||B||_F <= R_B,  n rows

for (all without the regularizers, which only add ``2 reg`` on the diagonal):

* ``smooth_x``  sup ||hess_x L|| - 2 reg_x (gradient-Lipschitz constant in x = vec X);
* ``C_x``       hess_x L >= (2 reg_x - C_x) I, so ``reg_x >= (C_x + l) / 2`` gives hess_x L >= l I;
* ``M_x``       the Hessian-Lipschitz constant in x (sup of the third derivative);
* ``smooth_y``  ||hess_y L|| - 2 reg_y (and hess_y L >= 2 reg_y I always: L is a convex quadratic in Y);
* ``cross``     ||d2L / dx dy||;
* ``cross_res`` the part of the cross term that is not Gauss-Newton (it is what can break the convexity
  of phi): |<ell_s(S, B), dF A3 E>| <= cross_res ||D|| ||E||.

and, for the reduced function phi(X) = min_Y L(X, Y), whose Hessian is the Schur complement
``H_xx - H_xy H_yy^+ H_yx`` (which is min over E of the joint quadratic form with D fixed):
``hess phi >= (2 reg_x - C_x - cross_res^2 / (2 reg_y)) I`` and ``hess phi <= hess_x L``.
Those combinations are formed in :mod:`softsym.theory.attention` (they involve ``reg_y``).

How the bounds are derived (nothing is typed per quantity):

1. **Chain rule, by SymPy.** With ``S(t) = F(X + t D) A3 (Y + t E)`` the k-th derivative of
   ``sum ell(S(t), B)`` is obtained by ``sympy.diff`` of the member's ``ell`` composed with an
   undefined function ``s(t)``; since ``ell`` is linear-quadratic in ``s`` the expansion has the
   monomials ``ell_s s^(k)`` (residual terms) and ``ell_ss s^(i) s^(j)`` (Gauss-Newton terms).
2. **Softmax derivatives, by SymPy.** For one row ``f = softmax(u)`` and direction ``h`` with
   ``w = h - <f, h>``, ``v = <f, w^2>``, ``mu3 = <f, w^3>``:
   ``Df[h] = f o w``, ``D2f[h, h] = f o (w^2 - v)``, ``D3f[h, h, h] = f o (w^3 - 3 v w - mu3)``.
   These identities are proven exactly at n = 3 (all symbols free) before anything is emitted.
3. **Moment bounds** (lemmas S1-S4 on the page): ``|w_i| <= sqrt(2) ||h||``;
   ``v <= kappa_v ||h||^2`` with ``kappa_v = min(1/2, kappa_f)``; ``f_i <= kappa_f =
   min(e^{R_U}/n, 1 / (1 + (n - 1) e^{-R_U sqrt(n/(n-1))}))`` (Jensen: ``f_i <= e^{u_i - mean(u)} / n``
   and ``|u_i - mean(u)| <= ||u||_2 <= R_U = R_A^2 R_X``; or ``f_i = 1 / (1 + sum_{k != i} e^{u_k - u_i})``
   with AM-GM over the ``n - 1`` others and ``u_i - mean_{k != i} u_k <= R_U sqrt(n / (n - 1))``);
   ``||diag f - f f^T||_2 <= kappa_1 = min(1/2, kappa_f)`` (Gershgorin and ``diag f - f f^T <= diag f``);
   ``||F||_2 <= N_F = sqrt(n kappa_f)`` (``||F||_2^2 <= ||F||_1 ||F||_inf``: rows sum to 1, columns to
   at most ``n kappa_f``).
4. **Centering and spread** (lemmas S5, S6, derived by SymPy in :func:`_moment_lemmas`): every
   ``D^k f[h^k] = f o g_k`` has ``<f, g_k> = 0``, so ``<c, D^k f> = <c - gamma 1, D^k f>`` for any
   ``gamma`` and ``|<c, D^k f>| <= spread(c)/2 E_f|g_k|``; with ``Delta = max h - min h <= sqrt(2) ||h||``,
   ``E_f|w^2 - v| <= min(2 v, kappa_2 Delta^2)`` and ``E_f|g_3| <= min(2 sqrt(2) ||h|| v + 3 v^{3/2},
   kappa_3 Delta^3)`` with ``kappa_2 = 1/4``, ``kappa_3 = 9/32``.
5. **Products** follow Cauchy-Schwarz / Hoelder over rows, with ``dU = A1 D A2^T``:
   ``sum_j ||h_j||^2 <= R_A^4`` and ``max_j ||h_j|| <= R_A^2`` for ``||D||_F = 1``;
   ``||V||_2, ||V||_F <= R_A R_Y`` (``V = A3 Y``); row ``j`` of ``C = ell_s(S, B) V^T`` is
   ``c_j = V r_j`` with spread ``<= max_{i != i'} ||v_i - v_i'|| ||r_j|| <= sqrt(2) R_A R_Y rho_row``
   (``||v_i||^2 + ||v_i'||^2 <= ||V||_F^2``), ``rho_row`` a bound on one residual row ``r_j``;
   ``||V^T D^2 f[h, h]|| <= max_i ||v_i|| E_f|w^2 - v|``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from .. import codegen
from ..families.attention import AttentionFormulas, s
from ..proof import ProofError
from ..spec import b

R_A, R_X, R_Y, R_B, n = sp.symbols("R_A R_X R_Y R_B n", positive=True)
PARAMS = (R_A, R_X, R_Y, R_B, n)
_PNAMES = {R_A: "R_A", R_X: "R_X", R_Y: "R_Y", R_B: "R_B", n: "n"}

QUANTITIES = ("smooth_x", "C_x", "M_x", "smooth_y", "cross", "cross_res")
#: the one region of the family, as named in the manifest (``bound_formulas``, ``softsym formulas --latex``)
REGION = "norm_ball"
ASSUMPTIONS = ("||A1||_2, ||A2||_2, ||A3||_2 <= R_A, ||X||_F <= R_X, ||Y||_F <= R_Y, ||B||_F <= R_B, "
               "n rows (A_i, B are n x d)")
MEANING = {
    "smooth_x": "||hess_x L|| <= smooth_x + 2 reg_x",
    "C_x": "hess_x L >= (2 reg_x - C_x) I",
    "M_x": "||hess_x L(X) - hess_x L(X')|| <= M_x ||X - X'||_F (Y fixed)",
    "smooth_y": "2 reg_y I <= hess_y L <= (smooth_y + 2 reg_y) I",
    "cross": "||d2 L / dx dy|| <= cross",
    "cross_res": "|<ell_s(S, B), dF A3 E>| <= cross_res ||D||_F ||E||_F (non-Gauss-Newton cross term)",
}


@dataclass(frozen=True)
class AttentionBounds:
    """Derived bound expressions of one attention member, with the lemmas used."""

    name: str
    exprs: dict[str, sp.Expr]
    pieces: dict[str, sp.Expr]
    chain: dict[int, sp.Expr]
    claims: tuple[str, ...]


# ----------------------------------------------------------------------------------------
# 1-2. Symbolic expansions and their proofs

ELL_S, ELL_SS = sp.symbols("ell_s ell_ss", real=True)


def chain_rule(f: AttentionFormulas, order: int) -> sp.Expr:
    """d^k/dt^k of ell(s(t), b) by SymPy for a generic outer ell, its partials renamed ``ell_s``,
    ``ell_ss`` and the higher ones replaced by the member's (zero for linear-quadratic ell)."""
    t = sp.Symbol("t", real=True)
    st = sp.Function("s")(t)
    g = sp.Function("ell")
    e = sp.diff(g(st), t, order).doit()

    def partial(expr):
        m = sum(c for _, c in expr.variable_count) if isinstance(expr, sp.Derivative) else 0
        if m == 1:
            return ELL_S
        if m == 2:
            return ELL_SS
        return sp.diff(f.ell, s, m).xreplace({s: st})

    e = e.replace(lambda x: isinstance(x, sp.Subs), lambda x: partial(x.expr))
    e = e.replace(lambda x: isinstance(x, sp.Derivative) and x.expr.func == g, partial)
    return sp.expand(e)


def _softmax_claims() -> list[str]:
    """Prove the directional-derivative identities of the softmax (n = 3, all symbols free).

    ``f(u + t h)_i = E_i e^{t h_i} / sum_k E_k e^{t h_k}`` with ``E_i = e^{u_i}`` independent
    positive symbols; after differentiating in t and setting t = 0 both sides are rational
    functions of ``E, h`` and their difference cancels to the literal 0.
    """
    k = 3
    t = sp.Symbol("t", real=True)
    hh = sp.symbols("h0:3", real=True)
    E = sp.symbols("E0:3", positive=True)
    num = [E[i] * sp.exp(t * hh[i]) for i in range(k)]
    den = sum(num)
    f0 = [E[i] / sum(E) for i in range(k)]
    m = sum(f0[i] * hh[i] for i in range(k))
    w = [hh[i] - m for i in range(k)]
    v = sum(f0[i] * w[i] ** 2 for i in range(k))
    mu3 = sum(f0[i] * w[i] ** 3 for i in range(k))
    claimed = {1: [f0[i] * w[i] for i in range(k)],
               2: [f0[i] * (w[i] ** 2 - v) for i in range(k)],
               3: [f0[i] * (w[i] ** 3 - 3 * v * w[i] - mu3) for i in range(k)]}
    out = []
    for order, rhs in claimed.items():
        for i in range(k):
            lhs = sp.diff(num[i] / den, t, order).subs(t, 0)
            diff = sp.cancel(sp.together(lhs - rhs[i]))
            if diff != 0:
                raise ProofError(f"softmax derivative identity of order {order} fails at entry {i}: {diff}")
        out.append(f"D^{order} softmax(u)[h^{order}] identity (n=3, symbolic u, h): exact")
    return out


def _chain_claims(f: AttentionFormulas) -> tuple[list[str], dict[int, sp.Expr]]:
    """The chain-rule expansions and the check that ell is linear-quadratic (no third partial)."""
    if sp.diff(f.ell, s, 3) != 0:
        raise ProofError("ell has a nonzero third partial in s; the bound rules assume linear-quadratic ell")
    chain = {k: chain_rule(f, k) for k in (1, 2, 3)}
    return [f"chain rule d^k ell(s(t))/dt^k, k=1..3, by sympy.diff: {sp.sstr(chain[3])}"], chain


# ----------------------------------------------------------------------------------------
# 3-4. Bounds

def _affine_coeffs(f: AttentionFormulas) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """|coefficients| of ell_s = a s + c b + e (derived; ell is linear-quadratic)."""
    poly = sp.Poly(sp.expand(f.ell_s), s, b)
    a = poly.coeff_monomial(s)
    c = poly.coeff_monomial(b)
    e = poly.coeff_monomial(1)
    if sp.expand(f.ell_s - a * s - c * b - e) != 0:
        raise ProofError(f"ell_s = {f.ell_s} is not affine in (s, b)")
    return sp.Abs(a), sp.Abs(c), sp.Abs(e)


def _moment_lemmas() -> tuple[sp.Expr, sp.Expr, list[str]]:
    """The spread constants ``kappa_2``, ``kappa_3``: ``E_f|w^2 - v| <= kappa_2 Delta^2`` and
    ``E_f|w^3 - 3 v w - mu3| <= kappa_3 Delta^3`` for every distribution ``f`` and ``h`` of spread
    ``Delta = max h - min h`` (lemmas S5, S6 on the page), maximized here by SymPy.

    ``w = h - <f, h>`` has mean 0 and lies in ``[-alpha, b]`` with ``alpha + b <= Delta``; by the
    symmetry ``w -> -w`` (which keeps both absolute moments) take ``alpha <= b``.  Then
    ``v <= alpha b`` (Bhatia-Davis: ``E (b - w)(w + alpha) >= 0``) and ``w^2 <= b^2``.

    * S5: for ``X = w^2`` in ``[0, b^2]``, ``(X - v)_+`` lies below the chord ``(1 - v/b^2) X``, so
      ``E|X - v| = 2 E (X - v)_+ <= 2 v (1 - v / b^2)``, increasing in ``v`` up to ``b^2 / 2``.
    * S6: ``E|g| <= sqrt(E g^2) <= sqrt(E (w^3 - 3 v w)^2)`` and ``E w^6 <= b^4 v``, ``E w^4 >= v^2`` give
      ``E g^2 <= b^4 v + 3 v^3``, increasing in ``v``.

    Both bounds increase in ``alpha`` and ``b``, so with ``Delta = 1``, ``alpha = t`` in ``[0, 1/2]`` and
    ``b = 1 - t`` the constants are maxima of explicit functions of ``t``, found from the real roots
    of their derivatives (exact).
    """
    t = sp.Symbol("t", nonnegative=True)
    vv = sp.Symbol("v", nonnegative=True)
    bb = 1 - t

    def sup(expr, lo, hi):
        crit = [r for r in sp.real_roots(sp.Poly(sp.numer(sp.together(sp.diff(expr, t))), t))
                if lo <= r <= hi]
        points = [lo, hi, *crit]                           # a maximum on [lo, hi] is at one of these
        vals = [sp.simplify(expr.subs(t, c)) for c in points]
        best = max(vals, key=lambda e: float(e))
        return best, points[vals.index(best)]

    mad = 2 * vv * (1 - vv / bb**2)
    if sp.simplify(sp.diff(mad, vv).subs(vv, bb**2 / 2)) != 0:
        raise ProofError("moment lemma S5: 2v(1 - v/b^2) does not peak at v = b^2/2")
    # v <= alpha b <= b^2/2 iff t <= 1/3; otherwise the MAD bound is at most its peak b^2/2
    k2a, t2a = sup(sp.expand(mad.subs(vv, t * bb)), sp.Integer(0), sp.Rational(1, 3))
    k2b, t2b = sup(sp.expand(bb**2 / 2), sp.Rational(1, 3), sp.Rational(1, 2))
    kappa2 = sp.Max(k2a, k2b)
    sq = bb**4 * vv + 3 * vv**3
    if not sp.diff(sq, vv).is_nonnegative:
        raise ProofError("moment lemma S6: b^4 v + 3 v^3 is not increasing in v")
    k3sq, t3 = sup(sp.expand(sq.subs(vv, t * bb)), sp.Integer(0), sp.Rational(1, 2))
    kappa3 = sp.sqrt(k3sq)
    claims = [f"S5: E_f|w^2 - v| <= kappa_2 Delta^2, kappa_2 = max(max_t 2 t (1-t) (1 - t/(1-t)) on [0, 1/3] "
              f"= {k2a} at t = {t2a}, max (1-t)^2/2 on [1/3, 1/2] = {k2b}) = {kappa2} (sympy)",
              f"S6: E_f|w^3 - 3 v w - mu3| <= kappa_3 Delta^3, kappa_3^2 = max_t t (1-t)^5 + 3 t^3 (1-t)^3 on "
              f"[0, 1/2] = {k3sq} at t = {t3}, kappa_3 = {kappa3} (sympy)"]
    return kappa2, kappa3, claims


def derive_bounds(f: AttentionFormulas) -> AttentionBounds:
    """Every quantity of :data:`QUANTITIES` as a SymPy expression in the region parameters."""
    claims = _softmax_claims()
    chain_claims, chain = _chain_claims(f)
    claims += chain_claims
    ell_ss = sp.Abs(f.ell_ss)
    ca, cb, ce = _affine_coeffs(f)
    if ce != 0:
        raise ProofError("ell_s has a constant term; the residual bound would need d (not a region parameter)")

    R_U = R_A**2 * R_X                                    # ||u_j||_2 <= ||a1_j|| ||X||_2 ||A2||_2
    # max_i f_i: Jensen over all entries, and AM-GM over the others with Cauchy-Schwarz
    # u_i - mean_{k != i} u_k <= ||u|| sqrt(n / (n - 1)) (the max keeps n = 1 defined: kf = 1 there)
    kf = sp.Min(sp.exp(R_U) / n, 1 / (1 + (n - 1) * sp.exp(-R_U * sp.sqrt(n / sp.Max(n - 1, 1)))))
    k1 = sp.Min(sp.Rational(1, 2), kf)                    # ||diag f - f f^T||_2
    kv = sp.Min(sp.Rational(1, 2), kf)                    # variance factor: v <= kv ||h||^2
    NF = sp.sqrt(n * kf)                                   # ||F||_2^2 <= ||F||_1 ||F||_inf <= n kf * 1
    V = R_A * R_Y                                          # ||A3 Y||_2 and ||A3 Y||_F
    rho = ca * NF * R_A * R_Y + cb * R_B                   # ||ell_s(S, B)||_F
    rho_row = ca * sp.sqrt(kf) * R_A * R_Y + cb * R_B      # max_j ||ell_s(S, B)_j||_2  (||f_j||_2 <= sqrt(kf))
    H2, Hinf = R_A**4, R_A**2                              # sum_j ||h_j||^2, max_j ||h_j|| for ||D||_F = 1
    # c_j = V r_j has spread <= max_{i != i'} ||v_i - v_i'|| ||r_j|| <= sqrt(2) ||V||_F ||r_j||; every
    # D^k f = f o g_k has sum_i f_i g_k,i = 0, so <c, D^k f> = <c - gamma, D^k f> <= spread(c)/2 E_f|g_k|
    chalf = V * rho_row / sp.sqrt(2)                       # max_j spread(c_j) / 2
    kappa2, kappa3, lemma_claims = _moment_lemmas()
    claims += lemma_claims
    # E_f|g_k| / ||h||^k, spread(h)^2 <= 2 ||h||^2: the moment bounds in kv and the spread lemmas
    g2 = sp.Min(2 * kv, 2 * kappa2)                        # E_f|w^2 - v|
    g3 = sp.Min(2 * sp.sqrt(2) * kv + 3 * kv**sp.Rational(3, 2), 2 * sp.sqrt(2) * kappa3)  # E_f|w^3 - 3vw - mu3|
    # softmax row lemmas, as factors of ||h||^k
    Df = k1                                                # ||Df[h]|| / ||h||
    D2f = g2                                               # ||V^T D2f[h,h]|| / (||V||_2 ||h||^2)  (max_i ||v_i|| E_f|g_2|)

    # per-monomial bounds of the chain-rule expansion, summed over entries of S (directions D in X)
    t = sp.Symbol("t", real=True)
    sd = sp.Function("s")(t)
    s1, s2, s3 = (sp.Derivative(sd, (t, k)) for k in (1, 2, 3))
    pair = {(1, 1): V**2 * Df**2 * H2,                     # sum_j ||V^T Df_j||^2
            (1, 2): V**2 * Df * D2f * Hinf * H2}           # sum_j ||V^T Df_j|| ||V^T D2f_j||
    resid = {2: chalf * g2 * H2, 3: chalf * g3 * Hinf * H2}  # |sum_j <c_j, D^k f_j>|

    def bound_of(expansion: sp.Expr, drop_gauss_newton: bool = False) -> sp.Expr:
        total = sp.Integer(0)
        for term in sp.Add.make_args(expansion):
            coeff, orders, outer = sp.Integer(1), [], None
            for fac in sp.Mul.make_args(term):
                base, ex = fac.as_base_exp()
                if base in (s1, s2, s3):
                    orders += [(s1, s2, s3).index(base) + 1] * int(ex)
                elif fac.is_number:
                    coeff *= sp.Abs(fac)
                elif fac in (ELL_S, ELL_SS) and outer is None:
                    outer = fac
                else:
                    raise ProofError(f"unexpected factor {fac} in the chain-rule term {term}")
            if outer == ELL_S and len(orders) == 1 and orders[0] in resid:
                total += coeff * resid[orders[0]]          # sum_j <c_j, D^k f_j>, c_j = V ell_s(S, B)_j
            elif outer == ELL_SS and tuple(sorted(orders)) in pair:
                if not (tuple(orders) == (1, 1) and drop_gauss_newton):
                    total += coeff * ell_ss * pair[tuple(sorted(orders))]
            else:
                raise ProofError(f"no bound rule for the chain-rule term {term}")
        return total

    smooth_x = bound_of(chain[2])
    C_x = bound_of(chain[2], drop_gauss_newton=True)
    M_x = bound_of(chain[3])
    smooth_y = ell_ss * NF**2 * R_A**2                     # ell_ss ||K||_2^2, K = F A3
    cross_res = rho * k1 * R_A**3                          # ||ell_s||_F ||dF||_F ||A3||_2
    cross = ell_ss * (k1 * R_A**2 * V) * (NF * R_A) + cross_res
    exprs = {"smooth_x": smooth_x, "C_x": C_x, "M_x": M_x, "smooth_y": smooth_y,
             "cross": cross, "cross_res": cross_res}
    pieces = {"R_U": R_U, "kappa_f": kf, "kappa_1": k1, "kappa_v": kv, "N_F": NF, "rho": rho,
              "rho_row": rho_row, "kappa_2": kappa2, "kappa_3": kappa3, "g_2": g2, "g_3": g3}
    _sanity(exprs)
    return AttentionBounds(name=f.spec.name, exprs=exprs, pieces=pieces, chain=chain, claims=tuple(claims))


def _sanity(exprs: dict[str, sp.Expr]) -> None:
    """Every bound is finite, nonnegative and increasing in every radius at a sample point."""
    pt = {R_A: 1.3, R_X: 0.7, R_Y: 1.1, R_B: 0.9, n: 5}
    for q, e in exprs.items():
        v = float(e.evalf(subs=pt))
        if not (math.isfinite(v) and v >= 0):
            raise ProofError(f"bound {q} evaluates to {v} at {pt}")
        for p in (R_A, R_X, R_Y, R_B):
            up = float(e.evalf(subs={**pt, p: pt[p] * 1.01}))
            if up < v * (1 - 1e-12):
                raise ProofError(f"bound {q} decreases in {p}")


# ----------------------------------------------------------------------------------------
# Emission

class _Printer(PythonCodePrinter):
    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "standard": "python3"})

    def _print_Symbol(self, expr):  # noqa: N802
        return _PNAMES.get(expr, str(expr))

    def _print_exp(self, expr):  # noqa: N802
        return f"_exp({self._print(expr.args[0])})"


def emit_module(ab: AttentionBounds, spec_hash: str) -> str:
    """Source of ``generated/<name>_bounds.py``: plain-Python evaluators of every bound."""
    args = ", ".join(_PNAMES[p] for p in PARAMS)
    lines = [f"# {codegen.HEADER}",
             f'"""Derived bounds for `{ab.name}` (see softsym.derive.bounds.attention and {ab.name}.md).',
             "",
             "Each function returns an upper bound without the regularizers (math.inf on overflow).",
             '"""', "", "import math", "", f'NAME = "{ab.name}"', f'SPEC_HASH = "{spec_hash}"',
             f"QUANTITIES = {QUANTITIES!r}", f"PARAMS = {tuple(_PNAMES[p] for p in PARAMS)!r}",
             f"ASSUMPTIONS = {ASSUMPTIONS!r}", "MEANING = {"]
    lines += [f"    {q!r}: {MEANING[q]!r}," for q in QUANTITIES] + ["}", "", "",
                                                                    "def _exp(x):", "    try:",
                                                                    "        return math.exp(x)",
                                                                    "    except OverflowError:",
                                                                    "        return math.inf"]
    printer = _Printer()
    for q in QUANTITIES:
        e = ab.exprs[q]
        temps = sp.numbered_symbols("c")
        reps, (red,) = sp.cse([e], symbols=temps, order="canonical")
        lines += ["", "", f"def {q}({args}):", f'    """{MEANING[q]}."""']
        lines += [f"    {sym} = {printer.doprint(x)}" for sym, x in reps]
        lines += [f"    return float({printer.doprint(red)})"]
    lines += ["", "", "FUNCTIONS = {"] + [f"    {q!r}: {q}," for q in QUANTITIES] + ["}", ""]
    return "\n".join(lines)


def emit_section(ab: AttentionBounds) -> str:
    """Markdown/LaTeX section appended to the member's formulas page."""
    names = {R_A: "R_A", R_X: "R_X", R_Y: "R_Y", R_B: "R_B"}
    tex = lambda e: codegen.latex(e, names)  # noqa: E731
    lines = ["", "## Derived bounds (norm propagation, `softsym.derive.bounds.attention`)", "",
             "Region: $\\|A_i\\|_2 \\le R_A$, $\\|X\\|_F \\le R_X$, $\\|Y\\|_F \\le R_Y$, $\\|B\\|_F \\le R_B$, "
             "$n$ rows. Quantities exclude the regularizers (they add $2\\lambda_X$, $2\\lambda_Y$ "
             "on the diagonal).", "",
             "Derived pieces: $R_U = R_A^2 R_X$ bounds every row of $U$; "
             f"$\\kappa_f = {tex(ab.pieces['kappa_f'])}$ bounds every softmax entry (Jensen over all entries, "
             "or $f_i = 1/(1 + \\sum_{k \\ne i} e^{u_k - u_i})$ with AM-GM over the others and "
             "$u_i - \\mathrm{mean}_{k\\ne i} u_k \\le R_U\\sqrt{n/(n-1)}$ by Cauchy-Schwarz); "
             f"$\\kappa_1 = {tex(ab.pieces['kappa_1'])}$ bounds $\\|\\mathrm{{diag}} f - f f^\\top\\|_2$ (Gershgorin); "
             f"$N_F = {tex(ab.pieces['N_F'])}$ bounds $\\|F\\|_2$ ($\\|F\\|_2^2 \\le \\|F\\|_1\\|F\\|_\\infty$: "
             "rows sum to 1, columns to at most $n\\kappa_f$); "
             f"$\\rho = {tex(ab.pieces['rho'])}$ bounds $\\|\\ell_s(S, B)\\|_F$ and "
             f"$\\rho_{{row}} = {tex(ab.pieces['rho_row'])}$ one of its rows.", "",
             "Softmax lemmas (proven by SymPy at $n = 3$): with $w = h - \\langle f, h\\rangle$, "
             "$v = \\langle f, w^2\\rangle$, $\\mu_3 = \\langle f, w^3\\rangle$: "
             "$Df[h] = f\\circ w$, $D^2 f[h,h] = f \\circ (w^2 - v)$, $D^3 f[h,h,h] = f\\circ(w^3 - 3 v w - \\mu_3)$. "
             "Moment bounds: $|w_i| \\le \\sqrt 2 \\|h\\|$, $v \\le \\min(1/2, \\kappa_f)\\|h\\|^2$. "
             "Centering: each $D^k f = f\\circ g_k$ has $\\langle f, g_k\\rangle = 0$, so "
             "$|\\langle c, D^k f\\rangle| \\le \\tfrac12 \\mathrm{spread}(c)\\, E_f|g_k|$; "
             "row $j$ of $C = \\ell_s(S, B) V^\\top$ has spread at most $\\sqrt2 \\|V\\|_F \\|r_j\\|$. "
             "Spread lemmas (S5, S6; $\\Delta = \\max h - \\min h \\le \\sqrt2\\|h\\|$; $w$ has mean 0 in "
             "$[-\\alpha, b]$, $v \\le \\alpha b$, $w^2 \\le b^2$): "
             "$E_f|w^2 - v| \\le 2v(1 - v/b^2) \\le \\kappa_2\\Delta^2$ and "
             "$E_f|w^3 - 3vw - \\mu_3| \\le \\sqrt{b^4 v + 3v^3} \\le \\kappa_3\\Delta^3$, "
             f"$\\kappa_2 = {sp.latex(ab.pieces['kappa_2'])}$, $\\kappa_3 = {sp.latex(ab.pieces['kappa_3'])}$ "
             "(maxima over $t = \\alpha/\\Delta$ by SymPy). Hence "
             f"$E_f|g_2| \\le {tex(ab.pieces['g_2'])}\\,\\|h\\|^2$ and "
             f"$E_f|g_3| \\le {tex(ab.pieces['g_3'])}\\,\\|h\\|^3$.", "",
             f"Chain rule (SymPy): $\\frac{{d^3}}{{dt^3}}\\ell(s(t), b) = {codegen.latex(ab.chain[3], {})}$.", ""]
    eqs = formulas(ab)[REGION]
    for q in QUANTITIES:
        qtex = q.replace("_", "\\_")
        lines += [f"- `{q}`: {MEANING[q]}", "", f"$$\\mathrm{{{qtex}}} \\le {eqs[q]}$$", ""]
    lines += ["Reduced function $\\varphi(X) = \\min_Y L$: $\\nabla^2\\varphi \\preceq \\nabla_x^2 L$ and "
              "$\\nabla^2\\varphi \\succeq (2\\lambda_X - C_x - \\mathrm{cross\\_res}^2 / (2\\lambda_Y)) I$ "
              "(minimize the joint quadratic form over the Y-direction; the Gauss-Newton part is a square and is "
              "dropped). Hence $\\lambda_X \\ge (C_x + l)/2$ gives $\\nabla_x^2 L \\succeq l I$ and "
              "$\\lambda_X \\ge (C_x + \\mathrm{cross\\_res}^2/(2\\lambda_Y) + l)/2$ gives $\\nabla^2\\varphi \\succeq l I$ "
              "on the region.", ""]
    lines += ["Lemmas checked while deriving:", ""] + [f"- {c}" for c in ab.claims]
    return "\n".join(lines)


def formulas(ab: AttentionBounds) -> dict[str, dict[str, str]]:
    """The derived bounds as LaTeX, ``{REGION: {quantity: rhs}}`` (``quantity <= rhs`` on the region);
    the formulas page and the manifest entry are both rendered from it."""
    names = {R_A: "R_A", R_X: "R_X", R_Y: "R_Y", R_B: "R_B"}
    return {REGION: {q: codegen.latex(ab.exprs[q], names) for q in QUANTITIES}}


def manifest_entry(ab: AttentionBounds) -> dict:
    """Bounds info for the manifest: module, quantities, region with its assumptions, LaTeX formulas."""
    return {"module": f"{ab.name}_bounds", "quantities": list(QUANTITIES), "regions": [REGION],
            "assumptions": {REGION: ASSUMPTIONS}, "params": [_PNAMES[p] for p in PARAMS],
            "meaning": dict(MEANING), "relation": "<=", "formulas": formulas(ab)}
