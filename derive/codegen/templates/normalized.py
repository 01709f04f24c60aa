# <<template only>>
# Template of the kernel module of one normalized-family member (docs/math.md §1), filled by
# softsym.derive.families.normalized.emit_module; the template syntax is softsym.derive.codegen.template's.
# Inline values: HEADER, NAME, DOC, PAPER, SPEC_HASH, the flags SHIFT_INVARIANT, NORMALIZED, RANK2,
# SHIFT (the common shift of u) and SINH_DEGREE.  Blocks: the shared fast_exp template, sinh_small and
# the derived per-element code of every pass.  Sections: normalized (the batched kernel's alpha pass)
# and reads_phi (the batched loss reads the stored phi values).
# <<end template only>>
# __HEADER__
"""Kernels for `__NAME__` (__DOC__; paper __PAPER__).

All functions take float64 C-contiguous arrays: A (n, d), b (n,), w (n,), x (d,), u = A x (n,).
The runtime (softsym.problems.normalized) validates inputs and checks outputs for overflow.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic
from scipy.linalg.blas import dsyrk as _syrk

# <<template only>>
from softsym.derive.codegen.templates import derived

__SHIFT_INVARIANT__ = __NORMALIZED__ = __RANK2__ = __SHIFT__ = derived()

# <<end template only>>
NAME = "__NAME__"
SPEC_HASH = "__SPEC_HASH__"
SHIFT_INVARIANT = __SHIFT_INVARIANT__
NORMALIZED = __NORMALIZED__
RANK2 = __RANK2__
GRAM_ROWS = 4096
SUM_BLOCK = 512


_as_float = _as_int = _exp = derived(math, ir, njit, types, intrinsic)  # <<fast_exp>>


@njit(cache=True, inline="always")
def _cosh(x):
    """cosh(x) = (e^|x| + e^-|x|) / 2 from _exp (vectorizes): within 2 ulp of libm; inf once e^|x| overflows."""
    a = abs(x)
    return 0.5 * (_exp(a) + _exp(-a))  # no division: Numba's ZeroDivisionError check would block vectorizing


@njit(cache=True, inline="always")
def _sinh(x):
    """sinh(x) from _exp (vectorizes): Taylor (degree __SINH_DEGREE__) for |x| < 1/2, else (e^|x| - e^-|x|) / 2 with x's sign."""
    a = abs(x)
    x2 = x * x
    small = derived(x, x2)  # <<sinh_small>>
    return small if a < 0.5 else math.copysign(0.5 * (_exp(a) - _exp(-a)), x)


@njit(cache=True, fastmath={"reassoc"})
def _vsum(v):
    """sum(v), vectorized (reassociation is its only fast-math flag)."""
    acc = 0.0
    for i in range(v.shape[0]):
        acc += v[i]
    return acc


@njit(cache=True)
def _shift(u):
    """Common shift of u (max u for shift-invariant members, else 0)."""
    return __SHIFT__


# The element loops below vectorize: exp/cosh/sinh are the arithmetic-only _exp/_cosh/_sinh,
# error_model="numpy" drops the ZeroDivisionError branch (a zero divisor gives inf, which the
# runtime reports as overflow), and sums go through blocks of SUM_BLOCK values added by _vsum.
# "contract" (fused multiply-add, one rounding instead of two) is the only fast-math flag:
# it halves the cost of _exp's polynomial and keeps its range reduction exact.


@njit(cache=True, error_model="numpy", fastmath={"contract"})
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
            alpha_i = derived(ui)  # <<phi_code>>
            buf[j] = alpha_i
        alpha += _vsum(buf[:k])
    return alpha


@njit(cache=True, error_model="numpy", fastmath={"contract"})
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
            l_i = derived(ui, ur, bi, wi, alpha)  # <<pass_loss_only>>
            buf[j] = l_i
        total += _vsum(buf[:k])
    return total


@njit(cache=True, error_model="numpy", fastmath={"contract"})
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
            l_i, s_i, t_i = derived(ui, ur, bi, wi, alpha)  # <<pass_loss>>
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


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def g_at(u, b, w, m, alpha, S):
    """g = dL/du on a slice of u, given the global m, alpha and S."""
    g = np.empty(u.shape[0])
    for i in range(u.shape[0]):
        ui = u[i] - m
        ur = u[i]
        bi = b[i]
        wi = w[i]
        g[i] = derived(ui, ur, bi, wi, alpha, S)  # <<pass_grad>>
    return g


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
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
        g[i], beta[i], p[i], q[i] = derived(ui, ur, bi, wi, alpha, S)  # <<pass_pieces>>
    return g, beta, p, q


@njit(cache=True)
def rescale(m_from, m_to):
    """r with phi(u - m_to) = r phi(u - m_from) for every u (derived; shifts are 0 unless SHIFT_INVARIANT)."""
    r = derived(m_from, m_to)  # <<rescale_code>>
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


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def target_u(u):
    """b with b_i = target(u_i): makes u a stationary point of L without regularizer."""
    m = _shift(u)
    alpha = _alpha(u, m)
    b = np.empty(u.shape[0])
    for i in range(u.shape[0]):
        ui = u[i] - m
        b[i] = derived(ui, alpha)  # <<target_code>>
    return b


@njit(cache=True, nogil=True)
def _split_rows(A, beta, p, q, s, e, S, ap, aq):
    """Rows s .. e-1 of A scaled by sqrt|beta_i| into S, those with beta_i >= 0 from the top and the
    others from the bottom, with A^T p and A^T q accumulated in the same pass; the number of top rows."""
    d = A.shape[1]
    top = 0
    bottom = e - s
    for i in range(s, e):
        bi = beta[i]
        r = math.sqrt(abs(bi))
        if bi >= 0.0:
            row = top
            top += 1
        else:
            bottom -= 1
            row = bottom
        pi = p[i]
        qi = q[i]
        for k in range(d):
            a = A[i, k]
            S[row, k] = a * r
            if RANK2:
                ap[k] += pi * a
                aq[k] += qi * a
    return top


@njit(cache=True)
def _lower_difference(Hp, Hm):
    """The symmetric matrix whose lower triangle is that of Hp - Hm."""
    d = Hp.shape[0]
    H = np.empty((d, d))
    for j in range(d):
        for k in range(j + 1):
            v = Hp[j, k] - Hm[j, k]
            H[j, k] = v
            H[k, j] = v
    return H


def hess_assemble(A, beta, p, q, T):
    """A^T (diag(beta) + p q^T + q p^T + T q q^T) A, then symmetric: per block of GRAM_ROWS rows the
    rows are scaled by sqrt|beta| and split by the sign of beta, and two symmetric rank-k updates
    (BLAS dsyrk: half the flops of a GEMM, the data passed transposed so no layout copy is made)
    accumulate A^T diag(beta+) A and A^T diag(beta-) A; the rank-2 update follows."""
    n, d = A.shape
    S = np.empty((min(GRAM_ROWS, n), d))
    ap = np.zeros(d)
    aq = np.zeros(d)
    Hp = np.zeros((d, d), order="F")
    Hm = np.zeros((d, d), order="F")
    for s in range(0, n, GRAM_ROWS):
        e = min(s + GRAM_ROWS, n)
        top = _split_rows(A, beta, p, q, s, e, S, ap, aq)
        if top:
            Hp = _syrk(1.0, S[:top].T, beta=1.0, c=Hp, lower=1, overwrite_c=1)
        if top < e - s:
            Hm = _syrk(1.0, S[top:e - s].T, beta=1.0, c=Hm, lower=1, overwrite_c=1)
    return hess_combine(_lower_difference(Hp, Hm), ap, aq, T)


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


def hess(A, b, w, x):
    """hess L(x) (d, d)."""
    _, _, beta, p, q, T = pieces_u(A @ x, b, w)
    return hess_assemble(A, beta, p, q, T)


@njit(cache=True)
def hessp(A, b, w, x, v):
    """hess L(x) v."""
    _, _, beta, p, q, T = pieces_u(A @ x, b, w)
    return hessp_assemble(A, beta, p, q, T, v)


@njit(cache=True, fastmath={"contract"})
def loss_dirs_u(u, V, mu, b, w):
    """Losses at u + mu V[k] and u - mu V[k] for every row k of V (K, n): array (K, 2).

    With V = Z A^T (row k = A z_k) these are L(x + mu z_k) and L(x - mu z_k): the 2K losses
    cost one GEMM (done by the caller) and this sweep, which reads each row of V once and,
    per direction and sign, forms the perturbed u, its shift (max for shift-invariant
    members), the phi values and alpha, and the loss from the stored phi values, in cache.
    """
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
            # <<if normalized>>
            phik = work[1]
            for i in range(n):
                ui = uk[i] - m
                phik[i] = derived(ui)  # <<phik_code>>
            alpha = _vsum(phik)
            # <<end normalized>>
            for i in range(n):
                ui = uk[i] - m
                ur = uk[i]
                bi = b[i]
                wi = w[i]
                # <<if reads_phi>>
                phii = phik[i]
                # <<end reads_phi>>
                lk[i] = derived(ui, ur, bi, wi, alpha, phii)  # <<loss_code>>
            out[k, j] = _vsum(lk)
    return out


@njit(cache=True)
def loss_dirs(A, b, w, x, Z, mu):
    """(K, 2) losses L(x + mu z_k), L(x - mu z_k) for the rows z_k of Z (K, d)."""
    return loss_dirs_u(A @ x, Z @ A.T, mu, b, w)
