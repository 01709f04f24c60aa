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
    """Source of the Numba kernel module for one member (template ``normalized``).

    Besides the per-element passes it holds ``loss_dirs_u`` / ``loss_dirs``, the 2K losses at
    ``u +- mu A z_k`` in one sweep (zeroth-order methods, docs/math.md §2).  Their loss is the
    member's derived ``ell + reg`` (the same expression as ``loss_u``), with every occurrence of
    ``phi(u)`` replaced by the value stored while summing ``alpha``, so a transcendental ``phi`` is
    evaluated once per element and direction, not twice (the substitution is checked to be exactly
    invertible).  ``exp`` is printed as ``_exp``, an arithmetic-only exponential (<= 1 ulp from libm
    on [-707, 709.78]) that lets LLVM vectorize the element loops; sums go through ``_vsum``.
    """
    spec = f.spec

    def block(assignments, names=_NAMES):
        return codegen.code_block([(k, codegen.vectorized(e)) for k, e in assignments], names, indent=0)

    loss = _main(f.ell) + _reg(f.reg)
    batched_names, reads_phi, phik_code = _NAMES, False, ""
    if f.normalized:
        phi = _main(f.phi)
        loss = loss.xreplace({phi: _PHI})
        if loss.xreplace({_PHI: phi}) != _main(f.ell) + _reg(f.reg):  # pragma: no cover - structural identity
            raise AssertionError(f"{spec.name}: phi substitution is not invertible")
        batched_names = {**_NAMES, _PHI: "phii"}
        reads_phi = _PHI in loss.free_symbols
        phik_code = block([("phik[i]", phi)], batched_names)
    taylor_sinh = repr(1.0 / math.factorial(2 * _SINH_TERMS - 1))
    for k in range(_SINH_TERMS - 2, -1, -1):
        taylor_sinh = f"{1.0 / math.factorial(2 * k + 1)!r} + x2 * ({taylor_sinh})"
    values = dict(
        HEADER=codegen.HEADER, NAME=spec.name, DOC=spec.doc, PAPER=spec.paper, SPEC_HASH=spec_hash,
        SHIFT_INVARIANT=str(spec.shift_invariant), NORMALIZED=str(f.normalized), RANK2=str(f.rank2),
        SHIFT="np.max(u)" if spec.shift_invariant else "0.0", SINH_DEGREE=str(2 * _SINH_TERMS - 1),
        fast_exp=codegen.fast_exp_source(), sinh_small=f"small = x * ({taylor_sinh})",
        phi_code=block([("alpha_i", _main(f.phi))]) if f.normalized else "alpha_i = 0.0",
        pass_loss=block([("l_i", _main(f.ell) + _reg(f.reg)), ("s_i", _main(f.partials["ell_alpha"])),
                         ("t_i", _main(f.partials["ell_alphaalpha"]))]),
        pass_loss_only=block([("l_i", _main(f.ell) + _reg(f.reg))]),
        pass_grad=block([("g[i]", _main(f.g_main) + _reg(f.partials["reg_u"]))]),
        pass_pieces=block([("g[i]", _main(f.g_main) + _reg(f.partials["reg_u"])),
                           ("beta[i]", _main(f.beta_main) + _reg(f.partials["reg_uu"])),
                           ("p[i]", _main(f.p)), ("q[i]", _main(f.q))]),
        rescale_code=_rescale_code(f), target_code=block([("b[i]", _main(f.target))]),
        normalized=f.normalized, reads_phi=reads_phi, loss_code=block([("lk[i]", loss)], batched_names),
    )
    if f.normalized:
        values["phik_code"] = phik_code
    return codegen.render("normalized", **values)


_PHI = sp.Symbol("phi_value", real=True)
_SINH_TERMS = 8  # x .. x^15/15! on |x| < 1/2: first omitted term / x = 0.5^16 / 17! < 5e-20
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
    return codegen.code_block([("r", r)], {_M_FROM: "m_from", _M_TO: "m_to"}, indent=0)


def emit_page(f: NormalizedFormulas, claims: list[str], spec_hash: str, extra: str = "") -> str:
    """Markdown/LaTeX page of the derived formulas of one member (``extra``: sections appended)."""
    spec = f.spec
    names = {alpha: r"\alpha", S: "S", T: "T"}

    def tex(e):
        return codegen.latex(e, names)

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
    ]
    lines = [f"<!-- {codegen.HEADER} -->", f"# `{spec.name}`", "", spec.doc + ".", "",
             f"Paper: {spec.paper}. Family: normalized elementwise. Spec hash: `{spec_hash[:16]}`.", "",
             "$$u = Ax,\\quad \\alpha = \\sum_i \\varphi(u_i),\\quad "
             "L(x) = \\sum_i \\ell(u_i, \\alpha; b_i) + \\tfrac12 w_i^2 u_i^2$$" if f.normalized else
             "$$u = Ax,\\quad L(x) = \\sum_i \\ell(u_i; b_i) + \\tfrac12 w_i^2 u_i^2$$", "",
             "## Scalar partials (derived by SymPy)", "", "| quantity | expression |", "|---|---|"]
    lines += [f"| ${k}$ | ${tex(v)}$ |" for k, v in rows if v is not None]
    lines += ["", "## Structured gradient and Hessian", "",
              "$$\\nabla L = A^\\top g,\\qquad \\nabla^2 L = A^\\top\\big(\\operatorname{diag}(\\beta)"
              " + p q^\\top + q p^\\top + T q q^\\top\\big) A$$", "",
              "with $S = \\sum_j \\ell_\\alpha(u_j)$, $T = \\sum_j \\ell_{\\alpha\\alpha}(u_j)$ and, per element,", "",
              f"$$g_i = {tex(f.g)}$$", "", f"$$\\beta_i = {tex(f.beta)}$$", "",
              f"$$p_i = {tex(f.p)},\\qquad q_i = {tex(f.q)}$$", "",
              "Planted target (synthetic instances with minimizer $x^*$ use $b_i = "
              f"b^*(u_i)$, $u = Ax^*$): $$b^*(u) = {tex(f.target)}$$", ""]
    if spec.shift_invariant:
        lines += ["Kernels evaluate the loss part at $u - \\max_i u_i$ (proven shift invariant below), "
                  "so exponentials never overflow.", ""]
    else:
        lines += ["This member is not shift invariant: kernels evaluate at $u$ itself and the runtime "
                  "raises `softsym.OverflowDetected` when a value overflows.", ""]
    lines += ["## Proven exactly (SymPy, difference simplifies to 0)", ""]
    lines += [f"- {c}" for c in claims]
    return "\n".join(lines) + "\n" + extra
