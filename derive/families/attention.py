"""The row-softmax attention family (docs/math.md §3): derivation, proof, emission.

Literal definition (paper 003, no factor 1/2)::

    L(X, Y) = sum_{j0, i0} ell(<softmax(Acal_{j0} x), A3 Y[:, i0]>, B[j0, i0])
              + reg_x ||X||_F^2 + reg_y ||Y||_F^2,      Acal = A1 kron A2 (n^2 x d^2),

with ``x = vec(X)`` row-major (``x[p d + q] = X[p, q]``) and ``Acal_{j0}`` the j0-th block of
n rows.  With that convention ``Acal_{j0} x`` is row j0 of ``U = A1 X A2^T`` (tensor trick),
so the kernels never form the n^2 x d^2 matrix.

Per row j0 (u = U[j0], f = softmax(u), c = dL/df = row j0 of C, gamma = <f, c>) the
structure derived and proven here is::

    dL/du   = f o (c - gamma)                                   (softmax Jacobian J = diag f - f f^T)
    d2L/du2 = J V diag(ell_ss) V^T J + diag(f o (c - gamma)) - (f o c) f^T - f (f o c)^T + 2 gamma f f^T

with ``V = A3 Y``, ``S = F V`` and ``C = ell_s(S, B) V^T``.  Hence, with K = F A3::

    dL/dX = A1^T G A2 (+ reg),  G = F o (C - gamma 1^T)
    dL/dY = K^T ell_s(S, B)  (+ reg)
    hess_x = sum_j0 (a1_j0 a1_j0^T) kron (A2^T B_j0 A2)        (d^2 x d^2, Kronecker accumulation)
    hess_y = kron(ell_ss K^T K, I_d) (+ reg)                     (row-major vec(Y))

Every scalar piece (ell, ell_s, ell_ss, the regularizer and its partials, the softmax
numerator) comes from ``sympy.diff`` of the spec; the matrix structure is the template of
the emitted module, and :func:`prove` shows it equal to brute-force derivatives of the
literal Kronecker definition at small sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .. import codegen
from ..proof import ProofError, ProofLog
from ..spec import NAME_PATTERN, SpecError, b, fingerprint_of, u
from . import normalized

# Per-entry symbols of the attention family: ``s`` is one entry of S = F A3 Y (a prediction),
# ``b`` the matching entry of B; ``z`` one entry of X or Y and ``lam`` its regularizer weight.
s = sp.Symbol("s", real=True)
z, lam = sp.symbols("z lam", real=True)


# Sizes (n, d, with Hessians) at which the structured formulas are proven against the literal
# definition.  The Hessian claims at n = 3 take minutes of exact expansion, so n = 3 proves
# the loss and both gradients only.
PROOF_SIZES: tuple[tuple[int, int, bool], ...] = ((2, 2, True), (3, 2, False))

# Rows per block of the generated sweeps (value and gradient, 2 cores, 1 and 2 BLAS threads,
# sizes interleaved): 128 rows was fastest or within 4% of it at n = 1024, 2048, 4096 (d = 16
# and 64) and 8192, except at n = 4096, d = 64 on one thread (256 rows 9% faster, but 12% slower
# on two); the earlier rule of ~2 MiB blocks gave 64 rows at n = 4096 (7-13% slower) and 32 at
# n = 8192 (4-28% slower), 256 rows at n = 1024 (4-5% slower).
BLOCK_ROWS = 128


@dataclass(frozen=True)
class AttentionSpec:
    """One member of the row-softmax attention family (docs/math.md §3).

    ``L(X, Y) = sum_{j, k} ell(S[j, k], B[j, k]) + reg_x ||X||_F^2 + reg_y ||Y||_F^2`` with
    ``S = row-softmax(A1 X A2^T) A3 Y``.  ``ell`` (in ``s`` and ``b``) must be
    linear-quadratic in ``s`` with a positive constant ``d2 ell / ds2``, so that ``L`` is a
    convex quadratic in ``Y`` (exact minimization in Y is a linear solve).
    """

    name: str
    doc: str
    paper: str
    ell: sp.Expr

    family = "attention"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise SpecError(f"spec name {self.name!r} must match {NAME_PATTERN.pattern}")
        ell = sp.sympify(self.ell)
        extra = set(ell.free_symbols) - {s, b}
        if extra:
            raise SpecError(f"spec {self.name!r}: ell uses unknown symbols {sorted(map(str, extra))};"
                            " allowed: ['b', 's']")
        ell_ss = sp.simplify(sp.diff(ell, s, 2))
        if not (ell_ss.is_number and ell_ss.is_positive):
            raise SpecError(f"spec {self.name!r}: d2 ell/ds2 = {ell_ss} must be a positive constant"
                            " (the outer loss must be linear-quadratic in s)")

    def fingerprint(self) -> str:
        """SHA-256 of everything that defines the spec (stable across runs and machines)."""
        return fingerprint_of(self.family, self.name, self.doc, self.paper, self.ell)


@dataclass(frozen=True)
class AttentionFormulas:
    """Derived scalar pieces of one member."""

    spec: AttentionSpec
    phi: sp.Expr          # softmax numerator exp(u)
    ell: sp.Expr          # ell(s, b)
    ell_s: sp.Expr
    ell_ss: sp.Expr       # a positive constant
    reg: sp.Expr          # lam z^2 (one entry of reg ||Z||_F^2)
    reg_z: sp.Expr
    reg_zz: sp.Expr


def derive(spec: AttentionSpec) -> AttentionFormulas:
    """All scalar partials, by ``sympy.diff``."""
    ell = sp.sympify(spec.ell)
    reg = lam * z**2
    return AttentionFormulas(spec=spec, phi=sp.exp(u), ell=ell, ell_s=sp.diff(ell, s),
                             ell_ss=sp.simplify(sp.diff(ell, s, 2)), reg=reg,
                             reg_z=sp.diff(reg, z), reg_zz=sp.diff(reg, z, 2))


# ----------------------------------------------------------------------------------------
# Proof: structured (tensor-trick) formulas == brute-force derivatives of the literal form


def _mat(name: str, rows: int, cols: int) -> sp.Matrix:
    return sp.Matrix(rows, cols, lambda i, k: sp.Symbol(f"{name}_{i}{k}", real=True))


def _vec(M: sp.Matrix) -> list[sp.Expr]:
    """Row-major vectorization: vec(M)[p * cols + q] = M[p, q]."""
    return [M[p, q] for p in range(M.rows) for q in range(M.cols)]


def _emap(M: sp.Matrix) -> dict[sp.Expr, sp.Expr]:
    """exp(U[j, i]) -> independent symbols, keyed by the expanded exponent.

    Row j becomes ``E_j0, ..., E_j(n-2)`` and ``alpha_j - sum_i E_ji`` for the last entry, so
    every softmax denominator is the single symbol ``alpha_j`` and both sides turn into
    Laurent polynomials in algebraically independent symbols: a difference is identically
    zero iff its expansion is the literal 0.
    """
    out = {}
    for j in range(M.rows):
        es = [sp.Symbol(f"E_{j}{i}", positive=True) for i in range(M.cols - 1)]
        es.append(sp.Symbol(f"alpha_{j}", positive=True) - sum(es))
        out.update({sp.expand(M[j, i]): es[i] for i in range(M.cols)})
    return out


def _rational(expr: sp.Expr, emap: dict[sp.Expr, sp.Symbol]) -> sp.Expr:
    """Replace every exp(arg) by its symbol: both sides become rational functions."""
    def sub(e):
        key = sp.expand(e.args[0])
        if key not in emap:
            raise ProofError(f"unexpected exponent {key}")
        return emap[key]
    return sp.sympify(expr).replace(lambda e: isinstance(e, sp.exp), sub)


def _zero(expr: sp.Expr) -> bool:
    """Exact zero test for a Laurent polynomial in independent symbols (see :func:`_emap`)."""
    return sp.expand(expr) == 0


def _elementwise(expr: sp.Expr, rep_syms, *mats: sp.Matrix) -> sp.Matrix:
    rows, cols = mats[0].shape
    return sp.Matrix(rows, cols, lambda j, k: expr.xreplace({sym: M[j, k] for sym, M in zip(rep_syms, mats)}))


def structured(f: AttentionFormulas, A1, A2, A3, B, X, Y, lx, ly, Dx, Ey=None, Wy=None):
    """The emitted kernels' algorithm written with SymPy matrices (same steps, same order).

    ``A1`` may have any number m of rows (U is m x n); returns (loss, grad_X, grad_Y,
    hessp_x(Dx), hess_x, hess_y, U, hessp_yx(Dx), hessp_xy(Ey), reduced(Dx, Wy)), each as SymPy
    matrices/exprs; the last two are None without ``Ey`` / ``Wy``.  ``reduced(Dx, Wy)`` is the
    fused pass of ``hessp_reduced_x`` with ``W = Wy`` (the kernel passes W = H_yy^+ H_yx vec Dx).
    """
    m, d = A1.shape
    n = A2.rows
    U = A1 * X * A2.T
    E = U.applyfunc(lambda e: f.phi.xreplace({u: e}))
    F = sp.Matrix(m, n, lambda j, i: E[j, i] / sum(E[j, k] for k in range(n)))
    K = F * A3
    S = K * Y
    ell = _elementwise(f.ell, (s, b), S, B)
    Ls = _elementwise(f.ell_s, (s, b), S, B)
    reg = (lambda M, lw: sum(f.reg.xreplace({z: e, lam: lw}) for e in M))
    reg_g = (lambda M, lw: M.applyfunc(lambda e: f.reg_z.xreplace({z: e, lam: lw})))
    reg_h_x, reg_h_y = f.reg_zz.xreplace({lam: lx}), f.reg_zz.xreplace({lam: ly})
    loss = sum(ell) + reg(X, lx) + reg(Y, ly)
    gY = K.T * Ls + reg_g(Y, ly)
    LY = Ls * Y.T
    C = LY * A3.T                                           # dL/dF
    # gamma_j = <F_j, C_j> = sum_i F_ji (LY A3^T)_ji = <LY_j, K_j>: K.cols terms per row, not n
    gamma = [sum(LY[j, k] * K[j, k] for k in range(K.cols)) for j in range(m)]
    G = sp.Matrix(m, n, lambda j, i: F[j, i] * (C[j, i] - gamma[j]))   # dL/dU
    gX = A1.T * G * A2 + reg_g(X, lx)
    # Hessian-vector product in x = vec(X), direction Dx (d x d)
    dU = A1 * Dx * A2.T
    t1 = [sum(F[j, i] * dU[j, i] for i in range(n)) for j in range(m)]
    JdU = sp.Matrix(m, n, lambda j, i: F[j, i] * (dU[j, i] - t1[j]))
    P = ((f.ell_ss * ((JdU * A3) * Y)) * Y.T) * A3.T
    t2 = [sum(F[j, i] * C[j, i] * dU[j, i] for i in range(n)) for j in range(m)]

    def row_pass(Pm):  # _hvp_rows: J Pm + (second-order softmax terms) dU, per row
        t3 = [sum(F[j, i] * Pm[j, i] for i in range(n)) for j in range(m)]
        return sp.Matrix(m, n, lambda j, i: F[j, i] * (Pm[j, i] - t3[j] + (C[j, i] - gamma[j]) * dU[j, i]
                                                        - C[j, i] * t1[j] - t2[j] + 2 * gamma[j] * t1[j]))
    hv = A1.T * row_pass(P) * A2 + reg_h_x * Dx
    # Cross Hessians: d2L/dy dx vec(Dx) and d2L/dx dy vec(Ey); the fused reduced pass
    dK = JdU * A3
    hyx = dK.T * Ls + f.ell_ss * (K.T * (dK * Y))
    hxy = red = None
    if Ey is not None:
        dC = (f.ell_ss * ((K * Ey) * Y.T) + Ls * Ey.T) * A3.T
        tc = [sum(F[j, i] * dC[j, i] for i in range(n)) for j in range(m)]
        hxy = A1.T * sp.Matrix(m, n, lambda j, i: F[j, i] * (dC[j, i] - tc[j])) * A2
    if Wy is not None:
        red = A1.T * row_pass((f.ell_ss * ((dK * Y - K * Wy) * Y.T) - Ls * Wy.T) * A3.T) * A2 + reg_h_x * Dx
    # Full Hessian in x: sum_j (a1_j a1_j^T) kron C_j, C_j = A2^T B_j A2 (d x d), built per row
    V = A3 * Y
    Q = F * A2
    H = sp.zeros(d * d, d * d)
    for j in range(m):
        f_j = F[j, :]
        M = V.T * sp.diag(*f_j) * A2 - (V.T * f_j.T) * Q[j, :]              # V^T J_j A2
        W = sp.diag(*[F[j, i] * (C[j, i] - gamma[j]) for i in range(n)])
        pc = A2.T * sp.Matrix([F[j, i] * C[j, i] for i in range(n)])         # A2^T (f o c)
        q = Q[j, :].T
        Cj = f.ell_ss * M.T * M + A2.T * W * A2 - pc * q.T - q * pc.T + 2 * gamma[j] * q * q.T
        H += sp.kronecker_product(A1[j, :].T * A1[j, :], Cj)
    H += reg_h_x * sp.eye(d * d)
    HY = sp.kronecker_product(f.ell_ss * K.T * K + reg_h_y * sp.eye(d), sp.eye(d))
    return loss, gX, gY, hv, H, HY, U, hyx, hxy, red


def _literal(f: AttentionFormulas, A1, A2, A3, B, X, Y, lx, ly) -> sp.Expr:
    """The paper's definition, written literally with the Kronecker product.

    ``Acal = A1 kron A2`` (SymPy's ``kronecker_product``), ``x = vec(X)`` row-major, block j0 =
    rows ``j0 n ... j0 n + n - 1`` of Acal; ``A1`` may have any number of rows.
    """
    n = A2.rows
    Acal = sp.kronecker_product(A1, A2)
    xcol = sp.Matrix(_vec(X))
    lit = sp.Integer(0)
    for j0 in range(A1.rows):
        ez = [f.phi.xreplace({u: zi}) for zi in Acal[j0 * n:(j0 + 1) * n, :] * xcol]
        for i0 in range(Y.cols):
            pred = sum(ez[i] / sum(ez) * (A3 * Y[:, i0])[i] for i in range(n))
            lit += f.ell.xreplace({s: pred, b: B[j0, i0]})
    return lit + sum(f.reg.xreplace({z: e, lam: lx}) for e in _vec(X)) + \
        sum(f.reg.xreplace({z: e, lam: ly}) for e in _vec(Y))


def prove(f: AttentionFormulas) -> list[str]:
    """Prove the structured formulas equal brute-force derivatives of the literal definition.

    All data are symbols.  The literal loss is a sum over blocks j0 (rows of A1), and so is
    every structured formula; derivatives are therefore proven block by block (A1 reduced to
    its row j0, B to its row j0; the regularizers with block 0), which keeps the exact
    expansions small, and the sum over j0 gives the full identity.  The loss identity is
    also proven for the whole matrix at once.  Raises ProofError.
    """
    log = ProofLog()
    for n, d, hessians in PROOF_SIZES:
        A1, A2, A3, B = _mat("a", n, d), _mat("c", n, d), _mat("e", n, d), _mat("b", n, d)
        X, Y, Dx = _mat("X", d, d), _mat("Y", d, d), _mat("D", d, d)
        lx, ly = sp.symbols("lx ly", real=True)
        x, y, dx = _vec(X), _vec(Y), _vec(Dx)
        em = _emap(A1 * X * A2.T)
        size = f"n={n}, d={d}"

        def zero(claim, diffs):
            for k, dlt in enumerate(diffs):
                if not _zero(_rational(dlt, em)):
                    raise ProofError(f"could not prove: {claim} (entry {k})")

        lit = _literal(f, A1, A2, A3, B, X, Y, lx, ly)
        zero("loss", [lit - structured(f, A1, A2, A3, B, X, Y, lx, ly, Dx)[0]])
        log.claims.append(f"literal Kronecker loss == ||row-softmax(A1 X A2^T) A3 Y - B||-form loss ({size})")
        claims = [f"dL/dx (literal, entrywise) == vec(A1^T G A2) ({size}, per block j0)",
                  f"dL/dy (literal, entrywise) == vec(K^T ell_s(S, B)) ({size}, per block j0)",
                  f"d2L/dx2 (literal) == sum_j (a1_j a1_j^T) kron (A2^T B_j A2) ({size}, per block j0)",
                  f"d2L/dx2 (literal) vec(D) == vec(A1^T (H_u dU) A2), dU = A1 D A2^T ({size}, per block j0)",
                  f"d2L/dy2 (literal) == kron(ell_ss K^T K + reg, I_d), a constant in Y ({size}, per block j0)",
                  f"d2L/dy dx (literal) vec(D) == vec(dK^T ell_s + ell_ss K^T dK Y), dK = J (A1 D A2^T) A3 "
                  f"({size}, per block j0)",
                  f"d2L/dx dy (literal) vec(W) == vec(A1^T J[(ell_ss K W Y^T + ell_s W^T) A3^T] A2) "
                  f"({size}, per block j0)",
                  f"fused reduced pass(D, W) == d2L/dx2 vec(D) - d2L/dx dy vec(W) for every W; with "
                  f"W = H_yy^+ H_yx vec(D) it is the Schur complement of phi(X) = min_Y L ({size}, per block j0)"]
        Vs, I, Ws = _mat("v", n, d), sp.eye(d), _mat("W", d, d)
        for j0 in range(n):
            rx, ry = (lx, ly) if j0 == 0 else (0, 0)
            a1, bj = A1[j0:j0 + 1, :], B[j0:j0 + 1, :]
            # Y-claims with the actual A3 and Y.
            lit = _literal(f, a1, A2, A3, bj, X, Y, rx, ry)
            _, _, gY, hv_y, _, HY, _, hyx, hxy, red = structured(f, a1, A2, A3, bj, X, Y, rx, ry, Dx, Ws, Ws)
            g_lit_y = [sp.diff(lit, yi) for yi in y]
            zero(claims[1], [g_lit_y[k] - e for k, e in enumerate(_vec(gY))])
            if not hessians:
                lit = _literal(f, a1, A2, Vs, bj, X, I, rx, 0)
                gX = structured(f, a1, A2, Vs, bj, X, I, rx, 0, Dx)[1]
                zero(claims[0], [sp.diff(lit, xi) - e for xi, e in zip(x, _vec(gX))])
                continue
            HY_lit = [[sp.diff(g_lit_y[p], y[r]) for r in range(d * d)] for p in range(d * d)]
            zero(claims[4], [HY_lit[p][r] - HY[p, r] for p in range(d * d) for r in range(p, d * d)]
                 + [sp.diff(HY[p, r], yi) for p in range(d * d) for r in range(d * d) for yi in y])
            # Cross claims, also with the actual A3 and Y: M[p][r] = d2L/dy_p dx_r of the literal form.
            M = [[sp.diff(g_lit_y[p], x[r]) for r in range(d * d)] for p in range(d * d)]
            zero(claims[5], [sum(M[p][r] * dx[r] for r in range(d * d)) - e for p, e in enumerate(_vec(hyx))])
            ws = _vec(Ws)
            zero(claims[6], [sum(M[p][r] * ws[p] for p in range(d * d)) - e for r, e in enumerate(_vec(hxy))])
            zero(claims[7], [a_ - b_ for a_, b_ in zip(_vec(red), _vec(hv_y - hxy))])
            # X-claims: both sides see A3 and Y only through V = A3 Y, so they are proven for a
            # general symbolic V (A3 = V, Y = I), which covers every A3, Y and keeps expansions small.
            lit = _literal(f, a1, A2, Vs, bj, X, I, rx, 0)
            _, gX, _, hv, H, _, _, _, _, _ = structured(f, a1, A2, Vs, bj, X, I, rx, 0, Dx)
            g_lit_x = [sp.diff(lit, xi) for xi in x]
            zero(claims[0], [g_lit_x[k] - e for k, e in enumerate(_vec(gX))])
            H_lit = [[sp.diff(g_lit_x[p], x[r]) for r in range(d * d)] for p in range(d * d)]
            zero(claims[2], [H_lit[p][r] - H[p, r] for p in range(d * d) for r in range(p, d * d)])
            zero(claims[3], [sum(H_lit[p][r] * dx[r] for r in range(d * d)) - e for p, e in enumerate(_vec(hv))])
        log.claims.extend(claims if hessians else claims[:2])
    # Softmax shift invariance: the kernels evaluate exp(u - max u).
    n = 3
    us = sp.symbols(f"u_0:{n}", real=True)
    cc = sp.Symbol("c", real=True)
    fs = [f.phi.xreplace({u: v}) / sum(f.phi.xreplace({u: w_}) for w_ in us) for v in us]
    fsh = [f.phi.xreplace({u: v + cc}) / sum(f.phi.xreplace({u: w_ + cc}) for w_ in us) for v in us]
    log.require_all(f"row softmax is invariant under u -> u + c 1 (n={n})", [a - b_ for a, b_ in zip(fs, fsh)])
    return log.claims


# ----------------------------------------------------------------------------------------
# Emission

_NAMES = {u: "ui", s: "si", b: "bi", z: "zi", lam: "lam"}


def emit_module(f: AttentionFormulas, spec_hash: str) -> str:
    """Source of the Numba kernel module for one member."""
    spec = f.spec
    return _MODULE.format(
        header=codegen.HEADER, name=spec.name, doc=spec.doc, paper=spec.paper, spec_hash=spec_hash,
        ell_ss=f"ELL_SS = float({sp.pycode(f.ell_ss)})",
        phi_code=codegen.code_block([("e_i", normalized._vec_exp(f.phi))], _NAMES, indent=12),
        vec_exp=normalized.vec_exp_source().rstrip("\n"), block_rows=BLOCK_ROWS,
        ell_pass=codegen.code_block([("l_i", f.ell), ("ls_i", f.ell_s)], _NAMES, indent=12),
        ell_value=codegen.code_block([("l_i", f.ell)], _NAMES, indent=12),
        reg_value=codegen.code_block([("r_i", f.reg)], _NAMES, indent=12),
        reg_grad=codegen.code_block([("out[j, k]", f.reg_z)], _NAMES, indent=12),
        reg_curv=codegen.code_block([("h", f.reg_zz)], _NAMES, indent=4),
    )


_MODULE = '''\
# {header}
"""Kernels for `{name}` ({doc}; paper {paper}).

Row-softmax attention family; row-major vec convention x = vec(X), x[p d + q] = X[p, q], so
that the literal (A1 kron A2) x is vec(U) with U = A1 X A2^T (tensor trick: the n^2 x d^2
matrix is never formed).  A1, A2, A3, B are (n, d), X and Y (d, d), all float64 C-contiguous.
Dense products go to BLAS; the row softmax and the fused elementwise passes are Numba loops
(``_exp`` is the arithmetic-only exponential and the reductions are reassociated, so they
vectorize).  ``loss``, ``value_and_grad``, ``forward_k`` (with it ``hess_y_block``) and the
Hessian-vector kernels sweep blocks of rows (flash-attention style) through caller-owned
(rows, n) workspaces from ``workspace(n)``: no n x n array is materialised.  ``hess_state``
sweeps the same way but keeps F and dL/dF (n x n each, written into caller-owned arrays),
which the Hessian kernels read.  The runtime (softsym.problems.attention) validates inputs and checks
outputs for overflow.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

NAME = "{name}"
SPEC_HASH = "{spec_hash}"
# d2 ell / ds2: a constant (the outer loss is linear-quadratic in s).
{ell_ss}
# Rows per block of the sweeps (measured: see BLOCK_ROWS in derive/attention.py).
BLOCK_ROWS = {block_rows}


{vec_exp}


def block_rows(n):
    """Rows per block of the sweeps for U of shape (n, n)."""
    return max(1, min(n, BLOCK_ROWS))


def workspace(n):
    """The two (block_rows(n), n) workspaces the row-blocked sweeps reuse across calls."""
    m = block_rows(n)
    return np.empty((m, n)), np.empty((m, n))


@njit(cache=True, fastmath={{"reassoc"}})
def _sum(v):
    """sum(v), vectorized (reassociated)."""
    acc = 0.0
    for i in range(v.shape[0]):
        acc += v[i]
    return acc


@njit(cache=True, fastmath={{"reassoc"}})
def _dot(v, w):
    """<v, w>, vectorized (reassociated)."""
    acc = 0.0
    for i in range(v.shape[0]):
        acc += v[i] * w[i]
    return acc


@njit(cache=True, fastmath={{"reassoc"}})
def _dot3(v, w, z):
    """sum(v o w o z), vectorized (reassociated)."""
    acc = 0.0
    for i in range(v.shape[0]):
        acc += v[i] * w[i] * z[i]
    return acc


@njit(cache=True)
def reg_curv(lam):
    """Second derivative of one regularizer entry (the regularizer Hessian is reg_curv(lam) I)."""
{reg_curv}
    return h


@njit(cache=True)
def reg_value(Z, lam):
    """Regularizer sum over the entries of Z."""
    total = 0.0
    for j in range(Z.shape[0]):
        for k in range(Z.shape[1]):
            zi = Z[j, k]
{reg_value}
            total += r_i
    return total


@njit(cache=True)
def reg_grad(Z, lam):
    """Gradient of the regularizer in Z."""
    out = np.empty_like(Z)
    for j in range(Z.shape[0]):
        for k in range(Z.shape[1]):
            zi = Z[j, k]
{reg_grad}
    return out


@njit(cache=True)
def _max(v):
    """max(v) with four interleaved accumulators (a NaN entry is skipped here but reaches _exp)."""
    n = v.shape[0]
    m0 = m1 = m2 = m3 = v[0]
    k = n - n % 4
    for i in range(0, k, 4):
        m0 = max(m0, v[i])
        m1 = max(m1, v[i + 1])
        m2 = max(m2, v[i + 2])
        m3 = max(m3, v[i + 3])
    for i in range(k, n):
        m0 = max(m0, v[i])
    return max(max(m0, m1), max(m2, m3))


@njit(cache=True, fastmath={{"contract"}})
def _numerators(U, inv):
    """In place: U <- phi(U - rowmax) (softmax numerators, shift invariant); inv <- 1 / rowsums.

    row-softmax(U) = diag(inv) U afterwards; the callers fold the scaling into later passes.
    """
    for j in range(U.shape[0]):
        row = U[j]
        mx = _max(row)
        for i in range(row.shape[0]):
            ui = row[i] - mx
{phi_code}
            row[i] = e_i
        inv[j] = 1.0 / _sum(row)


@njit(cache=True)
def softmax_rows(U):
    """In place: U <- row-softmax(U), each row evaluated at u - max(u) (shift invariant)."""
    inv = np.empty(U.shape[0])
    _numerators(U, inv)
    for j in range(U.shape[0]):
        U[j] *= inv[j]


@njit(cache=True)
def outer_loss(S, B):
    """(sum ell(S, B), ell_s(S, B)) over all entries of S = F A3 Y."""
    n, d = S.shape
    Ls = np.empty((n, d))
    total = 0.0
    for j in range(n):
        for k in range(d):
            si = S[j, k]
            bi = B[j, k]
{ell_pass}
            Ls[j, k] = ls_i
            total += l_i
    return total, Ls


@njit(cache=True)
def outer_value(S, B):
    """sum ell(S, B)."""
    total = 0.0
    for j in range(S.shape[0]):
        for k in range(S.shape[1]):
            si = S[j, k]
            bi = B[j, k]
{ell_value}
            total += l_i
    return total


@njit(cache=True)
def _forward_rows(P1, A2, A3, Fb):
    """For a block of rows of P1 = A1 X: Fb <- the softmax numerators of P1 A2^T (unscaled),
    returns (K_b, inv) with row-softmax(P1 A2^T) = diag(inv) Fb and K_b = diag(inv) Fb A3."""
    np.dot(P1, A2.T, Fb)
    inv = np.empty(Fb.shape[0])
    _numerators(Fb, inv)
    Kb = Fb @ A3
    for j in range(Kb.shape[0]):
        Kb[j] *= inv[j]
    return Kb, inv


@njit(cache=True)
def forward(A1, A2, A3, X, Y):
    """(F, K, S): F = row-softmax(A1 X A2^T) (n, n), K = F A3, S = K Y."""
    F = np.empty((A1.shape[0], A2.shape[0]))
    K, inv = _forward_rows(A1 @ X, A2, A3, F)
    for j in range(F.shape[0]):
        F[j] *= inv[j]
    return F, K, K @ Y


@njit(cache=True)
def softmax_jvp(F, V, out):
    """out <- J V row-wise, J = diag(f) - f f^T (symmetric: also dL/dF -> dL/dU); returns
    rowsum(F o V).  ``out`` may be ``V`` itself (in place)."""
    n, m = F.shape
    t1 = np.empty(n)
    for j in range(n):
        f = F[j]
        v = V[j]
        o = out[j]
        t = _dot(f, v)
        for i in range(m):
            o[i] = f[i] * (v[i] - t)
        t1[j] = t
    return t1


@njit(cache=True)
def _scaled_jvp(E, inv, C, G, gamma):
    """Per row with f = inv_j E_j (the softmax): E_j <- f and G_j <- f o (C_j - gamma_j) = J C_j,
    given gamma = rowsum(F o C).  G may be C (in place)."""
    n, m = E.shape
    for j in range(n):
        e = E[j]
        c = C[j]
        g = G[j]
        a = inv[j]
        t = gamma[j]
        for i in range(m):
            f = a * e[i]
            e[i] = f
            g[i] = f * (c[i] - t)


@njit(cache=True)
def loss(A1, A2, A3, B, X, Y, reg_x, reg_y, W1):
    """L(X, Y) = sum ell(F A3 Y, B) + regularizers, in blocks of W1.shape[0] rows (W1: workspace)."""
    n = A1.shape[0]
    nb = W1.shape[0]
    P1 = A1 @ X
    total = 0.0
    for j0 in range(0, n, nb):
        m = min(nb, n - j0)
        Kb, _ = _forward_rows(P1[j0:j0 + m], A2, A3, W1[:m])
        total += outer_value(Kb @ Y, B[j0:j0 + m])
    return total + reg_value(X, reg_x) + reg_value(Y, reg_y)


@njit(cache=True)
def _sweep(A1, A2, A3, B, X, Y, reg_x, reg_y, W1, W2, W3):
    """(L, dL/dX, dL/dY, K, Ls, gamma) by one forward/backward sweep over blocks of rows.

    Per block (nb = W3.shape[0] rows): W1 <- F = row-softmax(A1 X A2^T) (numerators first,
    scaled in the backward pass), K = F A3, S = K Y,
    Ls = ell_s(S, B), M = Ls Y^T, W2 <- C = M A3^T = dL/dF, W3 <- F o (C - gamma 1^T) = dL/dU
    (W3 may be W2: in place) with gamma = rowsum(F o C) = rowsum(M o K); dL/dY += K^T Ls and the block's
    rows of dL/dU A2.  Four n^2 d GEMMs in all.  W1 and W2 are either (nb, n) workspaces or
    (n, n) arrays, which then end up holding the full F and C (hess_state).
    """
    n, d = A1.shape
    nb = W3.shape[0]
    P1 = A1 @ X
    YT = np.ascontiguousarray(Y.T)
    K = np.empty((n, d))
    Ls = np.empty((n, d))
    GA2 = np.empty((n, d))
    gamma = np.empty(n)
    gY = reg_grad(Y, reg_y)
    total = 0.0
    for j0 in range(0, n, nb):
        m = min(nb, n - j0)
        r = j0 if W1.shape[0] == n else 0  # full (n, n) F and C, or block workspaces
        Fb, Cb, Gb = W1[r:r + m], W2[r:r + m], W3[:m]
        Kb, inv = _forward_rows(P1[j0:j0 + m], A2, A3, Fb)
        val, Lb = outer_loss(Kb @ Y, B[j0:j0 + m])
        total += val
        gY += Kb.T @ Lb
        Mb = Lb @ YT
        np.dot(Mb, A3.T, Cb)
        for j in range(m):  # gamma_j = <F_j, C_j> = <M_j, K_j> (C = M A3^T, K = F A3): d terms, not n
            gamma[j0 + j] = _dot(Mb[j], Kb[j])
        _scaled_jvp(Fb, inv, Cb, Gb, gamma[j0:j0 + m])
        np.dot(Gb, A2, GA2[j0:j0 + m])
        K[j0:j0 + m] = Kb
        Ls[j0:j0 + m] = Lb
    gX = A1.T @ GA2 + reg_grad(X, reg_x)
    return total + reg_value(X, reg_x) + reg_value(Y, reg_y), gX, gY, K, Ls, gamma


@njit(cache=True)
def value_and_grad(A1, A2, A3, B, X, Y, reg_x, reg_y, W1, W2):
    """(L, dL/dX, dL/dY) in one row-blocked sweep through the workspaces W1, W2."""
    val, gX, gY, _, _, _ = _sweep(A1, A2, A3, B, X, Y, reg_x, reg_y, W1, W2, W2)
    return val, gX, gY


@njit(cache=True)
def hess_state(A1, A2, A3, B, X, Y, reg_x, reg_y, F, C, W1):
    """(L, dL/dX, dL/dY, F, C, gamma, K, Ls) for the Hessian kernels: F = row-softmax(U) and
    C = dL/dF written into the given (n, n) arrays, gamma = rowsum(F o C), K = F A3,
    Ls = ell_s(K Y, B) (n, d); the sweep runs in blocks of W1.shape[0] rows (dL/dU goes
    through the workspace W1)."""
    val, gX, gY, K, Ls, gamma = _sweep(A1, A2, A3, B, X, Y, reg_x, reg_y, F, C, W1)
    return val, gX, gY, F, C, gamma, K, Ls


@njit(cache=True)
def _hvp_rows(F, C, gamma, dU, t1, P):
    """In place: P <- J P + [diag(f o (c - gamma)) - (f o c) f^T - f (f o c)^T + 2 gamma f f^T] du, per row."""
    n, m = F.shape
    for j in range(n):
        f = F[j]
        c = C[j]
        du = dU[j]
        p = P[j]
        t2 = _dot3(f, c, du)
        t3 = _dot(f, p)
        g = gamma[j]
        a = t1[j]
        for i in range(m):
            p[i] = f[i] * (p[i] - t3 + (c[i] - g) * du[i] - c[i] * a - t2 + 2.0 * g * a)


@njit(cache=True)
def hessp_x(A1, A2, A3, Y, F, C, gamma, D, reg_x, W1, W2):
    """d2L/dx2 vec(D) as a (d, d) matrix, O(n^2 d): dU = A1 D A2^T, H_u dU row-wise, A1^T (.) A2.

    Four n^2 d GEMMs, in blocks of W1.shape[0] rows through the workspaces W1 <- dU and
    W2 <- J dU, then P (every step is row-local): no n x n temporary.
    """
    n = A1.shape[0]
    nb = W1.shape[0]
    Q1 = A1 @ D
    PA2 = np.empty_like(A1)
    for j0 in range(0, n, nb):
        m = min(nb, n - j0)
        dU, P = W1[:m], W2[:m]
        Fb = F[j0:j0 + m]
        np.dot(Q1[j0:j0 + m], A2.T, dU)
        t1 = softmax_jvp(Fb, dU, P)
        np.dot((ELL_SS * ((P @ A3) @ Y)) @ Y.T, A3.T, P)
        _hvp_rows(Fb, C[j0:j0 + m], gamma[j0:j0 + m], dU, t1, P)
        np.dot(P, A2, PA2[j0:j0 + m])
    return A1.T @ PA2 + reg_curv(reg_x) * D


@njit(cache=True)
def _cross_yx(dK, K, Ls, Y):
    """d2L/dy dx vec(D) as a (d, d) matrix from dK = J (A1 D A2^T) A3: dK^T Ls + ELL_SS K^T dK Y."""
    return dK.T @ Ls + ELL_SS * (K.T @ (dK @ Y))


@njit(cache=True)
def _jvp_a3(Q1, A2, A3, F, W1, W2):
    """(dK, t1) with dK = J (Q1 A2^T) A3 (n, d) and t1 = rowsum(F o Q1 A2^T), in blocks of
    W1.shape[0] rows: W1 <- dU = Q1 A2^T, W2 <- J dU (W2 may be W1: in place)."""
    n, d = Q1.shape[0], A3.shape[1]
    nb = W1.shape[0]
    dK = np.empty((n, d))
    t1 = np.empty(n)
    for j0 in range(0, n, nb):
        m = min(nb, n - j0)
        np.dot(Q1[j0:j0 + m], A2.T, W1[:m])
        t1[j0:j0 + m] = softmax_jvp(F[j0:j0 + m], W1[:m], W2[:m])
        np.dot(W2[:m], A3, dK[j0:j0 + m])
    return dK, t1


@njit(cache=True)
def hessp_yx(A1, A2, A3, Y, F, K, Ls, D, W1):
    """d2L/dy dx vec(D) as a (d, d) matrix (the change of dL/dY along X + t D), O(n^2 d):
    dK^T Ls + ELL_SS K^T dK Y with dK = J (A1 D A2^T) A3 (J: the row-wise softmax Jacobian),
    in blocks of W1.shape[0] rows through the workspace W1."""
    dK, _ = _jvp_a3(A1 @ D, A2, A3, F, W1, W1)
    return _cross_yx(dK, K, Ls, Y)


@njit(cache=True)
def hessp_xy(A1, A2, A3, Y, F, K, Ls, E, W1):
    """d2L/dx dy vec(E) as a (d, d) matrix (the change of dL/dX along Y + t E), O(n^2 d):
    A1^T (J dC) A2 with dC = (ELL_SS K E Y^T + Ls E^T) A3^T, in blocks of W1.shape[0] rows
    through the workspace W1."""
    n = A1.shape[0]
    nb = W1.shape[0]
    R = ELL_SS * ((K @ E) @ Y.T) + Ls @ E.T
    dCA2 = np.empty_like(A1)
    for j0 in range(0, n, nb):
        m = min(nb, n - j0)
        dC = W1[:m]
        np.dot(R[j0:j0 + m], A3.T, dC)
        softmax_jvp(F[j0:j0 + m], dC, dC)
        np.dot(dC, A2, dCA2[j0:j0 + m])
    return A1.T @ dCA2


@njit(cache=True)
def hessp_reduced_x(A1, A2, A3, Y, F, C, gamma, K, Ls, Gp, D, reg_x, W1, W2):
    """(H_xx - H_xy H_yy^+ H_yx) vec(D) as a (d, d) matrix: the Hessian of the reduced function
    phi(X) = min_Y L(X, Y) at Y = Y*(X) (Schur complement), matrix-free.

    Gp is the pseudo-inverse of the (d, d) block G with H_yy = kron(G, I_d), so
    W = Gp (H_yx vec D) is H_yy^+ H_yx vec(D) in row-major vec.  H_xx vec(D) and H_xy vec(W) both
    end in A1^T [J (.)] A2, so the coupling enters as P - dC(W) before the row pass.  W needs
    dK = J dU A3 of every row, so the row blocks (W1.shape[0] rows, workspaces W1 and W2, no
    n x n temporary) are swept twice: dU, J dU and dK first, then dU again (unless one block
    holds all rows), P and the row pass: five n^2 d GEMMs.
    """
    n = A1.shape[0]
    nb = W1.shape[0]
    Q1 = A1 @ D
    dK, t1 = _jvp_a3(Q1, A2, A3, F, W1, W2)
    W = Gp @ _cross_yx(dK, K, Ls, Y)
    R = ELL_SS * ((dK @ Y - K @ W) @ Y.T) - Ls @ W.T
    PA2 = np.empty_like(A1)
    for j0 in range(0, n, nb):
        m = min(nb, n - j0)
        dU, P = W1[:m], W2[:m]
        if n > nb:
            np.dot(Q1[j0:j0 + m], A2.T, dU)
        np.dot(R[j0:j0 + m], A3.T, P)
        _hvp_rows(F[j0:j0 + m], C[j0:j0 + m], gamma[j0:j0 + m], dU, t1[j0:j0 + m], P)
        np.dot(P, A2, PA2[j0:j0 + m])
    return A1.T @ PA2 + reg_curv(reg_x) * D


@njit(cache=True)
def khatri_rao(P, Q):
    """Row-wise Kronecker product: out[i, a d + b] = P[i, a] Q[i, b] (n, d^2)."""
    n, d = P.shape
    out = np.empty((n, d * d))
    for i in range(n):
        for a in range(d):
            for c in range(d):
                out[i, a * d + c] = P[i, a] * Q[i, c]
    return out


@njit(cache=True)
def _row_blocks(M, S, Q, D2, Pc, gamma, d):
    """Per row j the (d, d) block C_j = A2^T B_j A2, flattened (n, d^2).

    C_j = ELL_SS M_j^T M_j + D2_j - pc q^T - q pc^T + 2 gamma_j q q^T with
    M_j = V^T (diag f_j - f_j f_j^T) A2, q = A2^T f_j, pc = A2^T (f_j o c_j).
    """
    n = M.shape[0]
    out = np.empty((n, d * d))
    for j in range(n):
        Mj = np.empty((d, d))
        for a in range(d):
            for c in range(d):
                Mj[a, c] = M[j, a * d + c] - S[j, a] * Q[j, c]
        MtM = Mj.T @ Mj
        g2 = 2.0 * gamma[j]
        for a in range(d):
            for c in range(d):
                out[j, a * d + c] = (ELL_SS * MtM[a, c] + D2[j, a * d + c] - Pc[j, a] * Q[j, c]
                                     - Q[j, a] * Pc[j, c] + g2 * Q[j, a] * Q[j, c])
    return out


@njit(cache=True)
def hess_x(A1, A2, A3, Y, F, C, gamma, reg_x):
    """Full d^2 x d^2 Hessian in x = vec(X): sum_j (a1_j a1_j^T) kron C_j, one (d^2, n) x (n, d^2) GEMM.

    Time O(n^2 d^2 + n d^4), memory O(n d^2 + d^4); never the n^2 x d^2 matrix.
    """
    n, d = A1.shape
    V = A3 @ Y
    M = F @ khatri_rao(V, A2)
    S = F @ V
    Q = F @ A2
    W = np.empty_like(F)
    for j in range(n):
        for i in range(F.shape[1]):
            W[j, i] = F[j, i] * (C[j, i] - gamma[j])
    D2 = W @ khatri_rao(A2, A2)
    Pc = W @ A2
    for j in range(n):
        for a in range(d):
            Pc[j, a] += gamma[j] * Q[j, a]
    Cj = _row_blocks(M, S, Q, D2, Pc, gamma, d)
    H4 = khatri_rao(A1, A1).T @ Cj
    H = np.empty((d * d, d * d))
    for p in range(d):
        for q in range(d):
            for r in range(d):
                for t in range(d):
                    H[p * d + q, r * d + t] = H4[p * d + r, q * d + t]
    h = reg_curv(reg_x)
    for k in range(d * d):
        H[k, k] += h
        for m in range(k + 1, d * d):
            v = 0.5 * (H[k, m] + H[m, k])
            H[k, m] = v
            H[m, k] = v
    return H


@njit(cache=True)
def hess_y_from_k(K, reg_y):
    """(d, d) block G with d2L/dy2 = kron(G, I_d) (row-major vec(Y)) from K = F A3: ELL_SS K^T K + reg."""
    G = ELL_SS * (K.T @ K)
    h = reg_curv(reg_y)
    for a in range(G.shape[0]):
        G[a, a] += h
    return G


@njit(cache=True)
def forward_k(A1, A2, A3, X, W1):
    """K = row-softmax(A1 X A2^T) A3 (n, d) in row blocks through W1: two n^2 d GEMMs.

    Everything about Y at this X follows from K (``y_parts``): L is a quadratic in Y.
    """
    n, d = A1.shape
    nb = W1.shape[0]
    P1 = A1 @ X
    K = np.empty((n, d))
    for j0 in range(0, n, nb):
        m = min(nb, n - j0)
        K[j0:j0 + m] = _forward_rows(P1[j0:j0 + m], A2, A3, W1[:m])[0]
    return K


@njit(cache=True)
def y_parts(K, B, X, Y, reg_x, reg_y):
    """(L, dL/dY, G) at (X, Y) from K = F A3 of X (``forward_k``), in O(n d^2): L = sum ell(K Y, B)
    + regularizers, dL/dY = K^T Ls + reg, and G with d2L/dy2 = kron(G, I_d)."""
    val, Ls = outer_loss(K @ Y, B)
    gY = K.T @ Ls + reg_grad(Y, reg_y)
    return val + reg_value(X, reg_x) + reg_value(Y, reg_y), gY, hess_y_from_k(K, reg_y)


@njit(cache=True)
def hess_y_block(A1, A2, A3, X, reg_y, W1):
    """(d, d) block G with d2L/dy2 = kron(G, I_d): K = F A3 in row blocks through W1, then hess_y_from_k."""
    return hess_y_from_k(forward_k(A1, A2, A3, X, W1), reg_y)
'''


def emit_page(f: AttentionFormulas, claims: list[str], spec_hash: str) -> str:
    """Markdown/LaTeX page of the derived formulas of one member (states the vec convention)."""
    spec = f.spec
    tex = codegen.latex
    lines = [
        f"<!-- {codegen.HEADER} -->", f"# `{spec.name}`", "", spec.doc + ".", "",
        f"Paper: {spec.paper}. Family: row-softmax attention. Spec hash: `{spec_hash[:16]}`.", "",
        "## Definition (literal) and vec convention", "",
        "$$L(X, Y) = \\sum_{j_0=1}^{n} \\sum_{i_0=1}^{d} \\ell\\big(\\langle \\mathrm{softmax}(\\mathsf{A}_{j_0} x),"
        " A_3 Y_{*, i_0}\\rangle, B_{j_0 i_0}\\big) + \\lambda_X \\|X\\|_F^2 + \\lambda_Y \\|Y\\|_F^2,"
        "\\qquad \\mathsf{A} = A_1 \\otimes A_2 \\in \\mathbb{R}^{n^2 \\times d^2}$$", "",
        "**vec convention: row-major**, $x = \\mathrm{vec}(X)$ with $x_{p d + q} = X_{pq}$ (NumPy's `X.ravel()`, "
        "`np.kron(A1, A2)` for $\\mathsf{A}$). Then $\\mathsf{A}_{j_0} x$ is row $j_0$ of $U = A_1 X A_2^\\top$ "
        "(tensor trick), so", "",
        "$$U = A_1 X A_2^\\top,\\quad F = \\text{row-softmax}(U),\\quad K = F A_3,\\quad S = K Y,"
        "\\quad L = \\sum_{jk} \\ell(S_{jk}, B_{jk}) + \\text{reg}$$", "",
        "The same convention holds for $y = \\mathrm{vec}(Y)$. Kernels never form the $n^2 \\times d^2$ matrix.", "",
        "## Scalar pieces (derived by SymPy)", "", "| quantity | expression |", "|---|---|",
        f"| softmax numerator $\\varphi(u)$ | ${tex(f.phi)}$ |",
        f"| $\\ell(s, b)$ | ${tex(f.ell)}$ |",
        f"| $\\ell_s$ | ${tex(f.ell_s)}$ |",
        f"| $\\ell_{{ss}}$ (constant) | ${tex(f.ell_ss)}$ |",
        f"| regularizer entry | ${tex(f.reg)}$ |",
        f"| its derivative | ${tex(f.reg_z)}$ |",
        f"| its curvature | ${tex(f.reg_zz)}$ |", "",
        "## Structured derivatives (tensor trick)", "",
        "Per row $j$ ($f = F_{j*}$, $c = C_{j*}$, $\\gamma_j = \\langle f, c\\rangle$, "
        "$J = \\mathrm{diag}(f) - f f^\\top$):", "",
        "$$C = \\ell_s(S, B)\\, Y^\\top A_3^\\top = \\partial L/\\partial F,\\qquad "
        "G = F \\circ (C - \\gamma 1^\\top) = \\partial L/\\partial U$$", "",
        "$$\\frac{\\partial L}{\\partial X} = A_1^\\top G A_2 + \\nabla\\text{reg},\\qquad "
        "\\frac{\\partial L}{\\partial Y} = K^\\top \\ell_s(S, B) + \\nabla\\text{reg}$$", "",
        "$$B_j = \\frac{\\partial^2 L}{\\partial u_j^2} = \\ell_{ss} J V V^\\top J + \\mathrm{diag}(f \\circ (c - \\gamma_j))"
        " - (f\\circ c) f^\\top - f (f \\circ c)^\\top + 2 \\gamma_j f f^\\top,\\quad V = A_3 Y$$", "",
        "$$\\nabla_x^2 L = \\sum_{j} (a_{1,j} a_{1,j}^\\top) \\otimes (A_2^\\top B_j A_2) + \\text{reg}''\\, I"
        "\\quad (d^2 \\times d^2;\\ O(n^2 d^2 + n d^4)\\text{ time})$$", "",
        "$$\\nabla_x^2 L\\, \\mathrm{vec}(D) = \\mathrm{vec}\\big(A_1^\\top [B_j\\, dU_{j*}]_j A_2\\big) + \\text{reg}''\\, D,"
        "\\quad dU = A_1 D A_2^\\top\\quad (O(n^2 d)\\text{ time})$$", "",
        "$$\\nabla_y^2 L = \\big(\\ell_{ss} K^\\top K + \\text{reg}''\\, I_d\\big) \\otimes I_d"
        "\\quad\\text{(constant in } Y\\text{: } L \\text{ is a convex quadratic in } Y)$$", "",
        "Cross Hessian (directions $D$ in $X$, $W$ in $Y$; $dK = J(A_1 D A_2^\\top) A_3$ row-wise):", "",
        "$$\\frac{\\partial^2 L}{\\partial y\\, \\partial x} \\mathrm{vec}(D) = \\mathrm{vec}\\big(dK^\\top \\ell_s(S, B)"
        " + \\ell_{ss} K^\\top dK\\, Y\\big),\\qquad"
        "\\frac{\\partial^2 L}{\\partial x\\, \\partial y} \\mathrm{vec}(W) = \\mathrm{vec}\\big(A_1^\\top"
        " [J_j\\, dC_{j*}]_j A_2\\big),\\quad dC = (\\ell_{ss} K W Y^\\top + \\ell_s(S, B) W^\\top) A_3^\\top$$", "",
        "Reduced function $\\varphi(X) = \\min_Y L(X, Y)$ (variable projection): $\\nabla\\varphi = \\partial L/\\partial X$"
        " at $Y^*(X)$ and", "",
        "$$\\nabla^2\\varphi = \\nabla_x^2 L - \\frac{\\partial^2 L}{\\partial x\\, \\partial y}"
        " (\\nabla_y^2 L)^{+} \\frac{\\partial^2 L}{\\partial y\\, \\partial x}$$"
        " applied matrix-free in one pass of four $n^2 d$ products: with $W = G^{+} (H_{yx} \\mathrm{vec} D)$"
        " ($H_{yy} = G \\otimes I_d$), $H_{xx}\\mathrm{vec}(D) - H_{xy}\\mathrm{vec}(W)$ replaces"
        " $P$ by $P - dC(W)$ before the row pass.", "",
        "## Proven exactly (SymPy, all data symbolic, difference expands to 0)", "",
        "Each exponential $e^{U_{ji}}$ is replaced by an independent symbol after differentiation (the last of each "
        "row by $\\alpha_j - \\sum$ of the others), so both sides are Laurent polynomials and the difference expands "
        "to the literal 0. The brute-force side differentiates the literal Kronecker definition entry by entry.", "",
    ]
    lines += [f"- {c}" for c in claims]
    return "\n".join(lines) + "\n"


def member_files(spec: AttentionSpec) -> tuple[dict[str, str], dict]:
    """Derive, prove (refusing to emit on failure) and emit: (files, manifest entry)."""
    f = derive(spec)
    claims = prove(f)
    h = spec.fingerprint()
    files = {f"{spec.name}.py": emit_module(f, h), f"{spec.name}.md": emit_page(f, claims, h)}
    return files, {"family": spec.family, "doc": spec.doc, "paper": spec.paper, "spec_hash": h,
                   "vec": "row-major", "proof": claims}
