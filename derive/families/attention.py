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
        if not NAME_PATTERN.match(self.name):
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
    """Source of the Numba kernel module for one member (template ``attention``)."""
    spec = f.spec

    def block(assignments):
        return codegen.code_block(assignments, _NAMES, indent=0)

    return codegen.render(
        "attention", HEADER=codegen.HEADER, NAME=spec.name, DOC=spec.doc, PAPER=spec.paper, SPEC_HASH=spec_hash,
        ELL_SS=sp.pycode(f.ell_ss), BLOCK_ROWS=str(BLOCK_ROWS), fast_exp=codegen.fast_exp_source(),
        phi_code=block([("e_i", codegen.vectorized(f.phi))]),
        ell_pass=block([("l_i", f.ell), ("ls_i", f.ell_s)]), ell_value=block([("l_i", f.ell)]),
        reg_value=block([("r_i", f.reg)]), reg_grad=block([("out[j, k]", f.reg_z)]), reg_curv=block([("h", f.reg_zz)]),
    )


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
