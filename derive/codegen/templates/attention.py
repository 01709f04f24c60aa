# <<template only>>
# Template of the kernel module of one attention-family member (docs/math.md §3), filled by
# softsym.derive.families.attention.emit_module; the template syntax is softsym.derive.codegen.template's.
# Inline values: HEADER, NAME, DOC, PAPER, SPEC_HASH, ELL_SS (the constant d2 ell / ds2) and BLOCK_ROWS.
# Blocks: the shared fast_exp template and the derived scalar code (phi_code, ell_pass, ell_value,
# reg_value, reg_grad, reg_curv).
# <<end template only>>
# __HEADER__
"""Kernels for `__NAME__` (__DOC__; paper __PAPER__).

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

# <<template only>>
from softsym.derive.codegen.templates import derived

__ELL_SS__ = __BLOCK_ROWS__ = derived()

# <<end template only>>
NAME = "__NAME__"
SPEC_HASH = "__SPEC_HASH__"
# d2 ell / ds2: a constant (the outer loss is linear-quadratic in s).
ELL_SS = float(__ELL_SS__)
# Rows per block of the sweeps (measured: see BLOCK_ROWS in derive/attention.py).
BLOCK_ROWS = __BLOCK_ROWS__


_as_float = _as_int = _exp = derived(math, ir, njit, types, intrinsic)  # <<fast_exp>>


def block_rows(n):
    """Rows per block of the sweeps for U of shape (n, n)."""
    return max(1, min(n, BLOCK_ROWS))


def workspace(n):
    """The two (block_rows(n), n) workspaces the row-blocked sweeps reuse across calls."""
    m = block_rows(n)
    return np.empty((m, n)), np.empty((m, n))


@njit(cache=True, fastmath={"reassoc"})
def _sum(v):
    """sum(v), vectorized (reassociated)."""
    acc = 0.0
    for i in range(v.shape[0]):
        acc += v[i]
    return acc


@njit(cache=True, fastmath={"reassoc"})
def _dot(v, w):
    """<v, w>, vectorized (reassociated)."""
    acc = 0.0
    for i in range(v.shape[0]):
        acc += v[i] * w[i]
    return acc


@njit(cache=True, fastmath={"reassoc"})
def _dot3(v, w, z):
    """sum(v o w o z), vectorized (reassociated)."""
    acc = 0.0
    for i in range(v.shape[0]):
        acc += v[i] * w[i] * z[i]
    return acc


@njit(cache=True)
def reg_curv(lam):
    """Second derivative of one regularizer entry (the regularizer Hessian is reg_curv(lam) I)."""
    h = derived(lam)  # <<reg_curv>>
    return h


@njit(cache=True)
def reg_value(Z, lam):
    """Regularizer sum over the entries of Z."""
    total = 0.0
    for j in range(Z.shape[0]):
        for k in range(Z.shape[1]):
            zi = Z[j, k]
            r_i = derived(zi, lam)  # <<reg_value>>
            total += r_i
    return total


@njit(cache=True)
def reg_grad(Z, lam):
    """Gradient of the regularizer in Z."""
    out = np.empty_like(Z)
    for j in range(Z.shape[0]):
        for k in range(Z.shape[1]):
            zi = Z[j, k]
            out[j, k] = derived(zi, lam)  # <<reg_grad>>
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


@njit(cache=True, fastmath={"contract"})
def _numerators(U, inv):
    """In place: U <- phi(U - rowmax) (softmax numerators, shift invariant); inv <- 1 / rowsums.

    row-softmax(U) = diag(inv) U afterwards; the callers fold the scaling into later passes.
    """
    for j in range(U.shape[0]):
        row = U[j]
        mx = _max(row)
        for i in range(row.shape[0]):
            ui = row[i] - mx
            e_i = derived(ui)  # <<phi_code>>
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
            l_i, ls_i = derived(si, bi)  # <<ell_pass>>
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
            l_i = derived(si, bi)  # <<ell_value>>
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
