"""The normalized elementwise family (docs/math.md §1): derivation, proof, emission.

``u = A x``, ``alpha = sum_i phi(u_i)``, ``L = sum_i ell(u_i, alpha; b_i) + 1/2 w_i^2 u_i^2``.

Structure theorem (the chain rule through alpha; proven exactly per member below)::

    dL/du_i      = g_i    = ell_u(u_i) + S phi'(u_i),            S = sum_j ell_alpha(u_j)
    d2L/du_i du_k = delta_ik beta_i + p_i q_k + q_i p_k + T q_i q_k
                   beta_i = ell_uu(u_i) + S phi''(u_i),  p_i = ell_ualpha(u_i),
                   q_i = phi'(u_i),                       T = sum_j ell_alphaalpha(u_j)

so ``grad L = A^T g`` and ``hess L = A^T (diag(beta) + p q^T + q p^T + T q q^T) A``.  Every
scalar partial comes from ``sympy.diff``; nothing here is typed by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy as sp

from .. import codegen
from ..proof import ProofLog
from ..spec import NormalizedSpec, SpecError, alpha, b, u, w

S, T = sp.symbols("S T", real=True)

# Sizes at which the structure theorem is proven exactly, per member.
PROOF_SIZES: tuple[tuple[int, int], ...] = ((3, 2),)
SHIFT_PROOF_N = 3


@dataclass(frozen=True)
class NormalizedFormulas:
    """Derived per-element formulas of one member (functions of u, alpha, b, w, S, T)."""

    spec: NormalizedSpec
    phi: sp.Expr
    ell: sp.Expr
    reg: sp.Expr
    partials: dict[str, sp.Expr]
    target: sp.Expr

    @property
    def normalized(self) -> bool:
        return self.spec.phi is not None

    @property
    def rank2(self) -> bool:
        return not (self.partials["ell_ualpha"] == 0 and self.partials["phi_u"] == 0)

    # Main part (evaluated at the possibly shifted u) and regularizer part (raw u).
    @property
    def g_main(self) -> sp.Expr:
        return self.partials["ell_u"] + S * self.partials["phi_u"]

    @property
    def beta_main(self) -> sp.Expr:
        return self.partials["ell_uu"] + S * self.partials["phi_uu"]

    @property
    def p(self) -> sp.Expr:
        return self.partials["ell_ualpha"]

    @property
    def q(self) -> sp.Expr:
        return self.partials["phi_u"]

    @property
    def g(self) -> sp.Expr:
        return self.g_main + self.partials["reg_u"]

    @property
    def beta(self) -> sp.Expr:
        return self.beta_main + self.partials["reg_uu"]


def derive(spec: NormalizedSpec) -> NormalizedFormulas:
    """All scalar partials of ell, phi and the regularizer, by ``sympy.diff``."""
    phi = sp.sympify(spec.phi) if spec.phi is not None else sp.Integer(0)
    ell = sp.sympify(spec.ell)
    reg = w**2 * u**2 / 2
    partials = {
        "ell_u": sp.diff(ell, u),
        "ell_alpha": sp.diff(ell, alpha),
        "ell_uu": sp.diff(ell, u, 2),
        "ell_ualpha": sp.diff(ell, u, alpha),
        "ell_alphaalpha": sp.diff(ell, alpha, 2),
        "phi_u": sp.diff(phi, u),
        "phi_uu": sp.diff(phi, u, 2),
        "reg_u": sp.diff(reg, u),
        "reg_uu": sp.diff(reg, u, 2),
    }
    if spec.target is not None:
        target = sp.sympify(spec.target)
    else:
        solutions = sp.solve(sp.diff(ell, b), b)
        if len(solutions) != 1:
            raise SpecError(f"spec {spec.name!r}: d ell/d b = 0 has {len(solutions)} solutions for b;"
                            " give `target` explicitly")
        target = solutions[0]
    return NormalizedFormulas(spec=spec, phi=phi, ell=ell, reg=reg, partials=partials, target=target)


def prove(f: NormalizedFormulas) -> list[str]:
    """Prove the structure theorem for this member exactly at concrete small sizes.

    Brute force: build ``L(x)`` with symbolic ``A``, ``x``, ``b``, ``w`` and differentiate
    elementwise.  Structured: the derived ``g, beta, p, q, S, T`` substituted per element and
    contracted as ``A^T g`` and ``A^T H A``.  Their difference must simplify to 0.  Members
    claiming shift invariance are also proven invariant.  Raises ``ProofError``.
    """
    log = ProofLog()
    for n, d in PROOF_SIZES:
        A = sp.Matrix(n, d, lambda i, k: sp.Symbol(f"A_{i}{k}", real=True))
        x = sp.Matrix(d, 1, lambda k, _: sp.Symbol(f"x_{k}", real=True))
        bs = sp.symbols(f"b_0:{n}", real=True)
        ws = sp.symbols(f"w_0:{n}", real=True)
        us = A * x
        alpha_v = sum((f.phi.xreplace({u: us[i]}) for i in range(n)), sp.Integer(0))

        def at(expr, i, extra=None):
            rep = {u: us[i], alpha: alpha_v, b: bs[i], w: ws[i]}
            rep.update(extra or {})
            return expr.xreplace(rep)

        L = sum(at(f.ell + f.reg, i) for i in range(n))
        grad_bf = [sp.diff(L, x[k]) for k in range(d)]
        hess_bf = [[sp.diff(grad_bf[j], x[k]) for k in range(d)] for j in range(d)]

        S_v = sum(at(f.partials["ell_alpha"], i) for i in range(n))
        T_v = sum(at(f.partials["ell_alphaalpha"], i) for i in range(n))
        st = {S: S_v, T: T_v}
        g = sp.Matrix([at(f.g, i, st) for i in range(n)])
        beta = [at(f.beta, i, st) for i in range(n)]
        p = sp.Matrix([at(f.p, i, st) for i in range(n)])
        q = sp.Matrix([at(f.q, i, st) for i in range(n)])
        H = sp.diag(*beta) + p * q.T + q * p.T + T_v * q * q.T
        grad_st = A.T * g
        hess_st = A.T * H * A
        log.require_all(f"grad L = A^T g elementwise (n={n}, d={d})",
                        [grad_bf[k] - grad_st[k] for k in range(d)])
        log.require_all(f"hess L = A^T (diag(beta) + p q^T + q p^T + T q q^T) A elementwise (n={n}, d={d})",
                        [hess_bf[j][k] - hess_st[j, k] for j in range(d) for k in range(j, d)])
    n = SHIFT_PROOF_N
    vs = sp.symbols(f"u_0:{n}", real=True)
    a_v = sum((f.phi.xreplace({u: v}) for v in vs), sp.Integer(0))
    planted = [f.target.xreplace({u: v, alpha: a_v}) for v in vs]
    S_v = sum(f.partials["ell_alpha"].xreplace({u: v, alpha: a_v, b: bt}) for v, bt in zip(vs, planted))
    log.require_all(f"b_i = target(u_i) makes u a stationary point of L without regularizer (n={n})",
                    [f.g_main.xreplace({u: v, alpha: a_v, b: bt, S: S_v}) for v, bt in zip(vs, planted)])
    if f.spec.shift_invariant:
        vs = sp.symbols(f"u_0:{n}", real=True)
        bs = sp.symbols(f"b_0:{n}", real=True)
        c = sp.Symbol("c", real=True)

        def main_loss(vals):
            a = sum(f.phi.xreplace({u: v}) for v in vals)
            return sum(f.ell.xreplace({u: v, alpha: a, b: bi}) for v, bi in zip(vals, bs))

        log.require(f"L without regularizer is invariant under u -> u + c 1 (n={n})",
                    main_loss([v + c for v in vs]) - main_loss(vs))
        a_c = sum(f.phi.xreplace({u: v + c}) for v in vs)
        log.require_all(f"the planted target is invariant under u -> u + c 1 (n={n})",
                        [f.target.xreplace({u: v + c, alpha: a_c}) - bt for v, bt in zip(vs, planted)])
    return log.claims


# ----------------------------------------------------------------------------------------
# Emission

_U, _UR = sp.Symbol("u_shifted", real=True), sp.Symbol("u_raw", real=True)
_NAMES = {_U: "ui", _UR: "ur", alpha: "alpha", b: "bi", w: "wi", S: "S", T: "T"}


def _main(expr: sp.Expr) -> sp.Expr:
    return sp.sympify(expr).xreplace({u: _U})


def _reg(expr: sp.Expr) -> sp.Expr:
    return sp.sympify(expr).xreplace({u: _UR})


def emit_module(f: NormalizedFormulas, spec_hash: str) -> str:
    """Source of the Numba kernel module for one member."""
    spec = f.spec
    pass_loss = codegen.code_block(
        [("l_i", _vec_exp(_main(f.ell) + _reg(f.reg))), ("s_i", _vec_exp(_main(f.partials["ell_alpha"]))),
         ("t_i", _vec_exp(_main(f.partials["ell_alphaalpha"])))], _NAMES, indent=12)
    pass_loss_only = codegen.code_block([("l_i", _vec_exp(_main(f.ell) + _reg(f.reg)))], _NAMES, indent=12)
    pass_pieces = codegen.code_block(
        [("g[i]", _vec_exp(_main(f.g_main) + _reg(f.partials["reg_u"]))),
         ("beta[i]", _vec_exp(_main(f.beta_main) + _reg(f.partials["reg_uu"]))),
         ("p[i]", _vec_exp(_main(f.p))), ("q[i]", _vec_exp(_main(f.q)))], _NAMES, indent=8)
    pass_grad = codegen.code_block(
        [("g[i]", _vec_exp(_main(f.g_main) + _reg(f.partials["reg_u"])))], _NAMES, indent=8)
    target_code = codegen.code_block([("b[i]", _vec_exp(_main(f.target)))], _NAMES, indent=8)
    phi_code = (codegen.code_block([("alpha_i", _vec_exp(_main(f.phi)))], _NAMES, indent=12)
                if f.normalized else "")
    shift = "np.max(u)" if spec.shift_invariant else "0.0"
    return _MODULE.format(
        batched=_emit_batched(f), helpers=_helpers(),
        header=codegen.HEADER, name=spec.name, doc=spec.doc, paper=spec.paper, spec_hash=spec_hash,
        shift_invariant=spec.shift_invariant, normalized=f.normalized, rank2=f.rank2,
        shift=shift, phi_code=phi_code or "            alpha_i = 0.0",
        pass_loss=pass_loss, pass_loss_only=pass_loss_only, pass_pieces=pass_pieces,
        pass_grad=pass_grad, target_code=target_code, rescale_code=_rescale_code(f),
    )


# -- batched K-direction loss kernel (zeroth-order methods, docs/math.md §2) ------------

_PHI = sp.Symbol("phi_value", real=True)


class _VecExp(sp.Function):
    """``exp`` printed as the generated module's branch-free ``_exp`` (loops calling it vectorize)."""

    def _pythoncode(self, printer):
        return f"_exp({printer._print(self.args[0])})"


class _VecCosh(sp.Function):
    """``cosh`` printed as the generated module's ``_cosh`` (built on ``_exp``)."""

    def _pythoncode(self, printer):
        return f"_cosh({printer._print(self.args[0])})"


class _VecSinh(sp.Function):
    """``sinh`` printed as the generated module's ``_sinh`` (built on ``_exp``)."""

    def _pythoncode(self, printer):
        return f"_sinh({printer._print(self.args[0])})"


def _vec_exp(expr: sp.Expr) -> sp.Expr:
    return expr.replace(sp.exp, _VecExp).replace(sp.cosh, _VecCosh).replace(sp.sinh, _VecSinh)


def _emit_batched(f: NormalizedFormulas) -> str:
    """Source of ``loss_dirs_u`` / ``loss_dirs``: the 2K losses at ``u +- mu A z_k`` in one sweep.

    The loss is the member's derived ``ell + reg`` (the same expression as ``loss_u``), with
    every occurrence of ``phi(u)`` replaced by the value stored while summing ``alpha``, so a
    transcendental ``phi`` is evaluated once per element and direction, not twice (the
    substitution is checked to be exactly invertible).  ``exp`` is printed as ``_exp``, an
    arithmetic-only exponential (<= 1 ulp from libm on [-707, 709.78]) that lets LLVM vectorize
    the element loops; sums go through ``_vsum``.
    """
    loss = _main(f.ell) + _reg(f.reg)
    if f.normalized:
        phi = _main(f.phi)
        loss_phi = loss.xreplace({phi: _PHI})
        if loss_phi.xreplace({_PHI: phi}) != loss:  # pragma: no cover - structural identity
            raise AssertionError(f"{f.spec.name}: phi substitution is not invertible")
        names = {**_NAMES, _PHI: "phii"}
        phi_code = codegen.code_block([("phik[i]", _vec_exp(phi))], names, indent=16)
        alpha_pass = _BATCHED_ALPHA.format(phi_code=phi_code)
        load_phi = "                phii = phik[i]\n" if _PHI in loss_phi.free_symbols else ""
    else:
        loss_phi, names, alpha_pass, load_phi = loss, _NAMES, "", ""
    loss_code = codegen.code_block([("lk[i]", _vec_exp(loss_phi))], names, indent=16)
    return _BATCHED.format(alpha_pass=alpha_pass, load_phi=load_phi, loss_code=loss_code)


def _helpers() -> str:
    """Source of the vectorizing ``_exp``, ``_cosh``, ``_sinh`` and ``_vsum`` every kernel uses."""
    taylor_sinh = repr(1.0 / math.factorial(2 * _SINH_TERMS - 1))
    for k in range(_SINH_TERMS - 2, -1, -1):
        taylor_sinh = f"{1.0 / math.factorial(2 * k + 1)!r} + x2 * ({taylor_sinh})"
    return _HELPERS.format(vec_exp=vec_exp_source().rstrip("\n"), taylor_sinh=taylor_sinh,
                           sinh_degree=2 * _SINH_TERMS - 1).rstrip("\n")


_EXP_DEGREE = 13  # Taylor remainder (ln2/2)^14 / 14! < 5e-18 relative on |r| <= ln2/2
_SINH_TERMS = 8  # x .. x^15/15! on |x| < 1/2: first omitted term / x = 0.5^16 / 17! < 5e-20

_BATCHED_ALPHA = """\
            phik = work[1]
            for i in range(n):
                ui = uk[i] - m
{phi_code}
            alpha = _vsum(phik)
"""

VEC_EXP = """\
@intrinsic
def _as_float(typingctx, i):
    \"\"\"The float64 whose bits are the int64 ``i``.\"\"\"
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _as_int(typingctx, x):
    \"\"\"The int64 whose bits are the float64 ``x``.\"\"\"
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@njit(cache=True, inline="always")
def _exp(x):
    \"\"\"exp(x) from arithmetic only (vectorizes): 2^k e^r, k = round(x / ln 2), Cody-Waite r, Taylor degree {degree}.

    Within 1 ulp of libm for -707 <= x <= 709.78; 0 below -707 (where exp < 1e-307), inf above.
    \"\"\"
    xc = min(max(x, -707.0), 709.782712893384)
    t = xc * 1.4426950408889634 + 6755399441055744.0  # 1.5 * 2^52: k lands in the low bits
    kf = t - 6755399441055744.0
    r = (xc - kf * 0.6931471803691238) - kf * 1.9082149292705877e-10
    p = {taylor}
    y = p * _as_float((_as_int(t) + 1022) << 52) * 2.0
    y = 0.0 if x < -707.0 else y
    y = math.inf if x > 709.782712893384 else y
    return x if x != x else y


"""


def vec_exp_source() -> str:
    """Source of ``_exp`` (arithmetic-only, vectorizable, <= 1 ulp) and its bit-cast helpers.

    The one definition every generated module that wants a vectorizing ``exp`` embeds; the module
    must import ``math``, ``llvmlite.ir``, ``numba.njit``/``types`` and ``numba.extending.intrinsic``.
    """
    taylor = repr(1.0 / math.factorial(_EXP_DEGREE))
    for k in range(_EXP_DEGREE - 1, -1, -1):
        taylor = f"{1.0 / math.factorial(k)!r} + r * ({taylor})"
    return VEC_EXP.format(taylor=taylor, degree=_EXP_DEGREE)


_HELPERS = """\
{vec_exp}


@njit(cache=True, inline="always")
def _cosh(x):
    \"\"\"cosh(x) = (e^|x| + e^-|x|) / 2 from _exp (vectorizes): within 2 ulp of libm; inf once e^|x| overflows.\"\"\"
    a = abs(x)
    return 0.5 * (_exp(a) + _exp(-a))  # no division: Numba's ZeroDivisionError check would block vectorizing


@njit(cache=True, inline="always")
def _sinh(x):
    \"\"\"sinh(x) from _exp (vectorizes): Taylor (degree {sinh_degree}) for |x| < 1/2, else (e^|x| - e^-|x|) / 2 with x's sign.\"\"\"
    a = abs(x)
    x2 = x * x
    small = x * ({taylor_sinh})
    return small if a < 0.5 else math.copysign(0.5 * (_exp(a) - _exp(-a)), x)


@njit(cache=True, fastmath={{"reassoc"}})
def _vsum(v):
    \"\"\"sum(v), vectorized (reassociation is its only fast-math flag).\"\"\"
    acc = 0.0
    for i in range(v.shape[0]):
        acc += v[i]
    return acc
"""

_BATCHED = """

@njit(cache=True, fastmath={{"contract"}})
def loss_dirs_u(u, V, mu, b, w):
    \"\"\"Losses at u + mu V[k] and u - mu V[k] for every row k of V (K, n): array (K, 2).

    With V = Z A^T (row k = A z_k) these are L(x + mu z_k) and L(x - mu z_k): the 2K losses
    cost one GEMM (done by the caller) and this sweep, which reads each row of V once and,
    per direction and sign, forms the perturbed u, its shift (max for shift-invariant
    members), the phi values and alpha, and the loss from the stored phi values, in cache.
    \"\"\"
    K, n = V.shape
    out = np.empty((K, 2))
    work = np.empty((3, n))
    uk = work[0]
    lk = work[2]
    for k in range(K):
        for j in range(2):
            s = mu if j == 0 else -mu
            for i in range(n):
                uk[i] = u[i] + s * V[k, i]
            m = _shift(uk)
{alpha_pass}\
            for i in range(n):
                ui = uk[i] - m
                ur = uk[i]
                bi = b[i]
                wi = w[i]
{load_phi}\
{loss_code}
            out[k, j] = _vsum(lk)
    return out


@njit(cache=True)
def loss_dirs(A, b, w, x, Z, mu):
    \"\"\"(K, 2) losses L(x + mu z_k), L(x - mu z_k) for the rows z_k of Z (K, d).\"\"\"
    return loss_dirs_u(A @ x, Z @ A.T, mu, b, w)
"""


_M_FROM, _M_TO = sp.symbols("m_from m_to", real=True)


def _rescale_code(f: NormalizedFormulas) -> str:
    """Body of ``rescale``: the factor r(m_from, m_to) = phi(u - m_to) / phi(u - m_from).

    Chunked evaluation (softsym.backends.dask) sums phi(u - m_c) per chunk at the chunk's own shift
    and rescales to the global shift; that needs the ratio to be free of u, which SymPy
    checks here.  Members that are not shift invariant always use shift 0, so r = 1.
    """
    r = sp.Integer(1)
    if f.spec.shift_invariant:
        r = sp.simplify(f.phi.xreplace({u: u - _M_TO}) / f.phi.xreplace({u: u - _M_FROM}))
        if u in r.free_symbols:
            raise SpecError(f"spec {f.spec.name!r}: phi(u - m') / phi(u - m) = {r} depends on u, so chunk "
                            "sums at different shifts cannot be combined")
    return codegen.code_block([("r", r)], {_M_FROM: "m_from", _M_TO: "m_to"}, indent=4)


_MODULE = '''\
# {header}
"""Kernels for `{name}` ({doc}; paper {paper}).

All functions take float64 C-contiguous arrays: A (n, d), b (n,), w (n,), x (d,), u = A x (n,).
The runtime (softsym.problems.normalized) validates inputs and checks outputs for overflow.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

NAME = "{name}"
SPEC_HASH = "{spec_hash}"
SHIFT_INVARIANT = {shift_invariant}
NORMALIZED = {normalized}
RANK2 = {rank2}
GRAM_ROWS = 4096
SUM_BLOCK = 512


{helpers}


@njit(cache=True)
def _shift(u):
    """Common shift of u (max u for shift-invariant members, else 0)."""
    return {shift}


# The element loops below vectorize: exp/cosh/sinh are the arithmetic-only _exp/_cosh/_sinh,
# error_model="numpy" drops the ZeroDivisionError branch (a zero divisor gives inf, which the
# runtime reports as overflow), and sums go through blocks of SUM_BLOCK values added by _vsum.
# "contract" (fused multiply-add, one rounding instead of two) is the only fast-math flag:
# it halves the cost of _exp's polynomial and keeps its range reduction exact.


@njit(cache=True, error_model="numpy", fastmath={{"contract"}})
def _alpha(u, m):
    """alpha = sum_i phi(u_i - m)."""
    n = u.shape[0]
    buf = np.empty(SUM_BLOCK)
    alpha = 0.0
    for s in range(0, n, SUM_BLOCK):
        k = min(SUM_BLOCK, n - s)
        us = u[s:s + k]
        for j in range(k):
            ui = us[j] - m
{phi_code}
            buf[j] = alpha_i
        alpha += _vsum(buf[:k])
    return alpha


@njit(cache=True, error_model="numpy", fastmath={{"contract"}})
def loss_u(u, b, w):
    """L as a function of u = A x."""
    m = _shift(u)
    alpha = _alpha(u, m)
    n = u.shape[0]
    buf = np.empty(SUM_BLOCK)
    total = 0.0
    for s in range(0, n, SUM_BLOCK):
        k = min(SUM_BLOCK, n - s)
        us, bs, ws = u[s:s + k], b[s:s + k], w[s:s + k]
        for j in range(k):
            ui = us[j] - m
            ur = us[j]
            bi = bs[j]
            wi = ws[j]
{pass_loss_only}
            buf[j] = l_i
        total += _vsum(buf[:k])
    return total


@njit(cache=True, error_model="numpy", fastmath={{"contract"}})
def _sums(u, b, w, m, alpha):
    """(L, S, T): loss and the global sums S = sum ell_alpha, T = sum ell_alphaalpha."""
    n = u.shape[0]
    buf = np.empty((3, SUM_BLOCK))
    total = 0.0
    S = 0.0
    T = 0.0
    for s in range(0, n, SUM_BLOCK):
        k = min(SUM_BLOCK, n - s)
        us, bs, ws = u[s:s + k], b[s:s + k], w[s:s + k]
        for j in range(k):
            ui = us[j] - m
            ur = us[j]
            bi = bs[j]
            wi = ws[j]
{pass_loss}
            buf[0, j] = l_i
            buf[1, j] = s_i
            buf[2, j] = t_i
        total += _vsum(buf[0, :k])
        S += _vsum(buf[1, :k])
        T += _vsum(buf[2, :k])
    return total, S, T


@njit(cache=True)
def grad_u(u, b, w):
    """(L, g) with g = dL/du."""
    m = _shift(u)
    alpha = _alpha(u, m)
    loss, S, T = _sums(u, b, w, m, alpha)
    return loss, g_at(u, b, w, m, alpha, S)


@njit(cache=True)
def pieces_u(u, b, w):
    """(L, g, beta, p, q, T): dL/du = g and d2L/du2 = diag(beta) + p q^T + q p^T + T q q^T."""
    m = _shift(u)
    alpha = _alpha(u, m)
    loss, S, T = _sums(u, b, w, m, alpha)
    g, beta, p, q = pieces_at(u, b, w, m, alpha, S)
    return loss, g, beta, p, q, T


# -- Row-chunk partial kernels (used by softsym.backends.dask) ------------------------------------
# Each *_at / *_partial function works on any row slice of u, b, w (and A) given the global
# shift m, normalizer alpha and sum S.  Chunk results combine by plain sums, except the
# per-chunk (m_c, alpha_c), which combine by alpha_combine (max-shifted sums).


@njit(cache=True, nogil=True, error_model="numpy", fastmath={{"contract"}})
def g_at(u, b, w, m, alpha, S):
    """g = dL/du on a slice of u, given the global m, alpha and S."""
    g = np.empty(u.shape[0])
    for i in range(u.shape[0]):
        ui = u[i] - m
        ur = u[i]
        bi = b[i]
        wi = w[i]
{pass_grad}
    return g


@njit(cache=True, nogil=True, error_model="numpy", fastmath={{"contract"}})
def pieces_at(u, b, w, m, alpha, S):
    """(g, beta, p, q) on a slice of u, given the global m, alpha and S."""
    n = u.shape[0]
    g = np.empty(n)
    beta = np.empty(n)
    p = np.empty(n)
    q = np.empty(n)
    for i in range(n):
        ui = u[i] - m
        ur = u[i]
        bi = b[i]
        wi = w[i]
{pass_pieces}
    return g, beta, p, q


@njit(cache=True)
def rescale(m_from, m_to):
    """r with phi(u - m_to) = r phi(u - m_from) for every u (derived; shifts are 0 unless SHIFT_INVARIANT)."""
{rescale_code}
    return r


@njit(cache=True, nogil=True)
def alpha_partial(u):
    """(m_c, alpha_c) of a chunk of u: its own shift and sum_i phi(u_i - m_c)."""
    m = _shift(u)
    return m, _alpha(u, m)


@njit(cache=True)
def alpha_combine(ms, alphas):
    """Global (m, alpha) from chunk partials: m = max_c m_c, alpha = sum_c alpha_c rescale(m_c, m)."""
    m = np.max(ms)
    alpha = 0.0
    for c in range(ms.shape[0]):
        alpha += alphas[c] * rescale(ms[c], m)
    return m, alpha


@njit(cache=True, nogil=True)
def sums_partial(u, b, w, m, alpha):
    """(L_c, S_c, T_c) of a chunk given the global m and alpha; L, S, T are their sums."""
    return _sums(u, b, w, m, alpha)


@njit(cache=True, nogil=True)
def grad_partial(A, u, b, w, m, alpha, S):
    """A_c^T g_c of a row chunk; grad L is the sum over chunks."""
    return A.T @ g_at(u, b, w, m, alpha, S)


@njit(cache=True, nogil=True)
def _gram_rank2(A, beta, p, q):
    """(A^T diag(beta) A, A^T p, A^T q) in one pass: one GEMM per block of GRAM_ROWS rows
    (temporary memory GRAM_ROWS x d), A^T p and A^T q accumulated while the block is scaled."""
    n, d = A.shape
    H = np.zeros((d, d))
    ap = np.zeros(d)
    aq = np.zeros(d)
    Ab = np.empty((min(GRAM_ROWS, n), d))
    for s in range(0, n, GRAM_ROWS):
        e = min(s + GRAM_ROWS, n)
        for i in range(s, e):
            bi = beta[i]
            pi = p[i]
            qi = q[i]
            for k in range(d):
                a = A[i, k]
                Ab[i - s, k] = a * bi
                if RANK2:
                    ap[k] += pi * a
                    aq[k] += qi * a
        H += A[s:e].T @ Ab[: e - s]
    return H, ap, aq


@njit(cache=True, nogil=True)
def hess_partial(A, u, b, w, m, alpha, S):
    """(A_c^T g_c, A_c^T diag(beta_c) A_c, A_c^T p_c, A_c^T q_c) of a row chunk (sum them; then hess_combine)."""
    g, beta, p, q = pieces_at(u, b, w, m, alpha, S)
    H, ap, aq = _gram_rank2(A, beta, p, q)
    return A.T @ g, H, ap, aq


@njit(cache=True, nogil=True)
def rank2_partial(A, u, b, w, m, alpha, S):
    """(A_c^T p_c, A_c^T q_c) of a row chunk (sum them; then hessp_combine)."""
    _, _, p, q = pieces_at(u, b, w, m, alpha, S)
    return A.T @ p, A.T @ q


@njit(cache=True, nogil=True)
def hessp_partial(A, u, b, w, m, alpha, S, v):
    """A_c^T diag(beta_c) A_c v of a row chunk (sum them; then hessp_combine)."""
    _, beta, _, _ = pieces_at(u, b, w, m, alpha, S)
    return A.T @ (beta * (A @ v))


@njit(cache=True)
def hess_combine(H, ap, aq, T):
    """Symmetric H + ap aq^T + aq ap^T + T aq aq^T, with H = A^T diag(beta) A, ap = A^T p, aq = A^T q."""
    d = H.shape[0]
    H = H.copy()
    if RANK2:
        for j in range(d):
            for k in range(d):
                H[j, k] += ap[j] * aq[k] + aq[j] * ap[k] + T * aq[j] * aq[k]
    for j in range(d):
        for k in range(j + 1, d):
            s = 0.5 * (H[j, k] + H[k, j])
            H[j, k] = s
            H[k, j] = s
    return H


@njit(cache=True)
def hessp_combine(hv, ap, aq, T, v):
    """hv + ap (aq.v) + aq (ap.v) + T aq (aq.v), with hv = A^T diag(beta) A v: the Hessian times v."""
    out = hv.copy()
    if RANK2:
        pv = ap @ v
        qv = aq @ v
        out += ap * qv + aq * (pv + T * qv)
    return out


@njit(cache=True, error_model="numpy", fastmath={{"contract"}})
def target_u(u):
    """b with b_i = target(u_i): makes u a stationary point of L without regularizer."""
    m = _shift(u)
    alpha = _alpha(u, m)
    b = np.empty(u.shape[0])
    for i in range(u.shape[0]):
        ui = u[i] - m
{target_code}
    return b


@njit(cache=True)
def hess_assemble(A, beta, p, q, T):
    """A^T (diag(beta) + p q^T + q p^T + T q q^T) A: one pass of blocked GEMMs plus a rank-2 update."""
    H, ap, aq = _gram_rank2(A, beta, p, q)
    return hess_combine(H, ap, aq, T)


@njit(cache=True)
def hessp_assemble(A, beta, p, q, T, v):
    """A^T (diag(beta) + p q^T + q p^T + T q q^T) A v: two matrix-vector products."""
    av = A @ v
    hv = beta * av
    if RANK2:
        pv = p @ av
        qv = q @ av
        hv += p * qv + q * (pv + T * qv)
    return A.T @ hv


@njit(cache=True)
def loss(A, b, w, x):
    """L(x)."""
    return loss_u(A @ x, b, w)


@njit(cache=True)
def grad(A, b, w, x):
    """grad L(x) = A^T g."""
    _, g = grad_u(A @ x, b, w)
    return A.T @ g


@njit(cache=True)
def hess(A, b, w, x):
    """hess L(x) (d, d)."""
    _, _, beta, p, q, T = pieces_u(A @ x, b, w)
    return hess_assemble(A, beta, p, q, T)


@njit(cache=True)
def hessp(A, b, w, x, v):
    """hess L(x) v."""
    _, _, beta, p, q, T = pieces_u(A @ x, b, w)
    return hessp_assemble(A, beta, p, q, T, v)
{batched}'''


#: left-hand sides of the per-element quantities of the structured gradient and Hessian
STRUCTURED = ("g_i", "\\beta_i", "p_i", "q_i", "b^*(u)")


def formulas(f: NormalizedFormulas) -> list[tuple[str, str]]:
    """The derived equations of one member as ``(lhs, rhs)`` LaTeX pairs, in page order.

    The scalar partials come first, then the per-element quantities named in
    :data:`STRUCTURED`; the formulas page and the manifest entry are both built from this list.
    """
    names = {alpha: r"\alpha", S: "S", T: "T"}
    rows = [
        ("\\varphi(u)", f.phi if f.normalized else None),
        ("\\ell(u, \\alpha; b)", f.ell),
        ("\\text{regularizer}", f.reg),
        ("\\ell_u", f.partials["ell_u"]),
        ("\\ell_\\alpha", f.partials["ell_alpha"]),
        ("\\ell_{uu}", f.partials["ell_uu"]),
        ("\\ell_{u\\alpha}", f.partials["ell_ualpha"]),
        ("\\ell_{\\alpha\\alpha}", f.partials["ell_alphaalpha"]),
        ("\\varphi'", f.partials["phi_u"]),
        ("\\varphi''", f.partials["phi_uu"]),
        ("g_i", f.g), ("\\beta_i", f.beta), ("p_i", f.p), ("q_i", f.q), ("b^*(u)", f.target),
    ]
    return [(k, codegen.latex(v, names)) for k, v in rows if v is not None]


def emit_page(f: NormalizedFormulas, claims: list[str], spec_hash: str, extra: str = "") -> str:
    """Markdown/LaTeX page of the derived formulas of one member (``extra``: sections appended)."""
    spec = f.spec
    eqs = formulas(f)
    g, beta, p, q, target = (dict(eqs)[k] for k in STRUCTURED)
    lines = [f"<!-- {codegen.HEADER} -->", f"# `{spec.name}`", "", spec.doc + ".", "",
             f"Paper: {spec.paper}. Family: normalized elementwise. Spec hash: `{spec_hash[:16]}`.", "",
             "$$u = Ax,\\quad \\alpha = \\sum_i \\varphi(u_i),\\quad "
             "L(x) = \\sum_i \\ell(u_i, \\alpha; b_i) + \\tfrac12 w_i^2 u_i^2$$" if f.normalized else
             "$$u = Ax,\\quad L(x) = \\sum_i \\ell(u_i; b_i) + \\tfrac12 w_i^2 u_i^2$$", "",
             "## Scalar partials (derived by SymPy)", "", "| quantity | expression |", "|---|---|"]
    lines += [f"| ${k}$ | ${v}$ |" for k, v in eqs if k not in STRUCTURED]
    lines += ["", "## Structured gradient and Hessian", "",
              "$$\\nabla L = A^\\top g,\\qquad \\nabla^2 L = A^\\top\\big(\\operatorname{diag}(\\beta)"
              " + p q^\\top + q p^\\top + T q q^\\top\\big) A$$", "",
              "with $S = \\sum_j \\ell_\\alpha(u_j)$, $T = \\sum_j \\ell_{\\alpha\\alpha}(u_j)$ and, per element,", "",
              f"$$g_i = {g}$$", "", f"$$\\beta_i = {beta}$$", "",
              f"$$p_i = {p},\\qquad q_i = {q}$$", "",
              "Planted target (synthetic instances with minimizer $x^*$ use $b_i = "
              f"b^*(u_i)$, $u = Ax^*$): $$b^*(u) = {target}$$", ""]
    if spec.shift_invariant:
        lines += ["Kernels evaluate the loss part at $u - \\max_i u_i$ (proven shift invariant below), "
                  "so exponentials never overflow.", ""]
    else:
        lines += ["This member is not shift invariant: kernels evaluate at $u$ itself and the runtime "
                  "raises `softsym.OverflowDetected` when a value overflows.", ""]
    lines += ["## Proven exactly (SymPy, difference simplifies to 0)", ""]
    lines += [f"- {c}" for c in claims]
    return "\n".join(lines) + "\n" + extra
