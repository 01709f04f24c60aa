# <<template only>>
# Template of the kernel module of one two-layer-family member (docs/math.md §4), filled by
# softsym.derive.families.two_layer.emit_module; the template syntax is softsym.derive.codegen.template's.
# Inline values: HEADER, NAME, DOC, PAPER, SPEC_HASH, ACTIVATION, the flags NORMALIZED and SHIFT_INVARIANT,
# SHIFT (the shift of the row u = U[i]) and ALPHA_INIT (alpha before the normalizer pass).  Blocks: the
# shared fast_exp template, the derived code kappa, phi_code, act_code and pass_code (in terms of
# ia = 1 / alpha), and load_ph (reads the stored phi value; empty without a normalizer).  ROW_FASTMATH is
# the fastmath set of the per-neuron passes that also reduce: reassociated only when their derived code
# has no _exp (reassociation would break _exp's rounding trick once inlined).
# <<end template only>>
# __HEADER__
"""Kernels for `__NAME__` (__DOC__; paper __PAPER__).

Two-layer network F(W, x) = sum_r h(u_r, a_r, alpha), u = W^T x (see __NAME__.md).
Arrays are float64 C-contiguous: W (d, m), X (n, d), U = X W (n, m), a (m, c).
Dense products go to BLAS; the element passes are Numba loops over one row at a time (``_exp`` is
the arithmetic-only exponential, and the row reductions are reassociated helpers, so they vectorize).
The runtime (softsym.problems.two_layer) validates inputs and checks outputs for overflow.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic
from scipy.linalg.blas import dsyrk as _syrk

# <<template only>>
from softsym.derive.codegen.templates import derived

__NORMALIZED__ = __SHIFT_INVARIANT__ = __SHIFT__ = __ALPHA_INIT__ = __ROW_FASTMATH__ = derived()

# <<end template only>>
NAME = "__NAME__"
SPEC_HASH = "__SPEC_HASH__"
ACTIVATION = "__ACTIVATION__"
NORMALIZED = __NORMALIZED__
SHIFT_INVARIANT = __SHIFT_INVARIANT__


_as_float = _as_int = _exp = derived(math, ir, njit, types, intrinsic)  # <<fast_exp>>


@njit(cache=True, fastmath={"reassoc"})
def _sum(v):
    """sum(v), vectorized (reassociated)."""
    acc = 0.0
    for r in range(v.shape[0]):
        acc += v[r]
    return acc


def default_kappa(m):
    """The member's default output scale for width m."""
    k = derived(m)  # <<kappa>>
    return float(k)


@njit(cache=True)
def _alphas(U):
    """(shift, alpha, E) per row: alpha_i = sum_r phi(u_ir - shift_i) (1 without a normalizer).

    E[i, r] = phi(u_ir - shift_i) is kept (normalized members) so later passes reuse it.
    """
    n, m = U.shape
    shift = np.empty(n)
    al = np.empty(n)
    E = np.empty((n, m if NORMALIZED else 0))
    for i in range(n):
        u = U[i]
        shift[i] = __SHIFT__
        alpha = __ALPHA_INIT__
        if NORMALIZED:
            e = E[i]
            _phi_pass(u, shift[i], e)
            alpha += _sum(e)
        al[i] = alpha
    return shift, al, E


@njit(cache=True, fastmath={"contract"})
def _phi_pass(u, shift, e):
    """e[r] = phi(u[r] - shift) (normalized members)."""
    for r in range(u.shape[0]):
        ui = u[r] - shift
        alpha_r = derived(ui)  # <<phi_code>>
        e[r] = alpha_r


@njit(cache=True)
def activations(U):
    """P (n, m) with F = kappa P a: P_ir = sigma(u_ir) / alpha_i."""
    n, m = U.shape
    shift, al, E = _alphas(U)
    P = np.empty((n, m))
    for i in range(n):
        _act_pass(U[i], shift[i], 1.0 / al[i], E[i], P[i])
    return P


@njit(cache=True, fastmath={"contract"})
def _act_pass(u, shift, ia, e, p):
    """p[r] = sigma(u_r) / alpha (ia = 1 / alpha; e holds phi(u_r - shift) for normalized members)."""
    for r in range(u.shape[0]):
        ui = u[r] - shift
        ph = e[r]  # <<load_ph>>
        p[r] = derived(ui, ia, ph, math)  # <<act_code>>


@njit(cache=True, fastmath=__ROW_FASTMATH__)
def _act_dot(u, shift, ia, e, aj):
    """sum_r sigma(u_r) / alpha * aj[r] (ia = 1 / alpha; e holds phi(u_r - shift) for normalized members)."""
    acc = 0.0
    for r in range(u.shape[0]):
        ui = u[r] - shift
        ph = e[r]  # <<load_ph>>
        p = derived(ui, ia, ph, math)  # <<act_value>>
        acc += p * aj[r]
    return acc


@njit(cache=True, fastmath=__ROW_FASTMATH__)
def _g_pass(u, shift, ia, w, kappa, e, g):
    """g[r] = h_u at output weights w (m,), e[r] becomes phi'(u_r) (read first); returns S = sum_r h_alpha.

    ``g`` may be ``u`` itself: entry r is read before it is written.
    """
    S = 0.0
    for r in range(u.shape[0]):
        ui = u[r] - shift
        ai = w[r]
        ph = e[r]  # <<load_ph>>
        s_r, gu_r, q_r = derived(ui, ai, ia, kappa, ph, math)  # <<pass_code>>
        S += s_r
        g[r] = gu_r
        e[r] = q_r
    return S


@njit(cache=True, fastmath={"contract"})
def _scaled(g, S, q):
    """g = S q."""
    for r in range(g.shape[0]):
        g[r] = S * q[r]


@njit(cache=True, fastmath={"contract"})
def _add_scaled(g, S, q):
    """g += S q."""
    for r in range(g.shape[0]):
        g[r] += S * q[r]


@njit(cache=True)
def _g_rows(U, Aw, arow, kappa, shift, al, E, G, row0, stride):
    """G[row0 + stride*i, r] = dF/du_ir for the scalar output with weights Aw[arow[i]] (m,).

    One pass computes h_u, phi' and h_alpha; S = sum_r h_alpha and a second pass adds S phi'
    (normalizer only).  E is left unchanged.
    """
    n, m = U.shape
    q = np.empty(m)
    for i in range(n):
        row = G[row0 + stride * i]
        if NORMALIZED:
            q[:] = E[i]
        S = _g_pass(U[i], shift[i], 1.0 / al[i], Aw[arow[i]], kappa, q, row)
        if NORMALIZED:
            _add_scaled(row, S, q)


@njit(cache=True)
def jac_rows(U, a, kappa):
    """G (n*c, m), row i*c + j = dF_j(W, x_i)/du_i; the Jacobian row is x_i (x) G[i*c + j]."""
    n, m = U.shape
    c = a.shape[1]
    shift, al, E = _alphas(U)
    G = np.empty((n * c, m))
    aT = np.ascontiguousarray(a.T)
    for j in range(c):
        _g_rows(U, aT, np.full(n, j), kappa, shift, al, E, G, j, c)
    return G


@njit(cache=True)
def vjp_rows(U, D, kappa):
    """Gamma (n, m), Gamma_i = sum_j D'_ij dF_j/du_i where D = R a^T (n, m) holds a r_i per row."""
    n, m = U.shape
    shift, al, E = _alphas(U)
    Gam = np.empty((n, m))
    _g_rows(U, D, np.arange(n), kappa, shift, al, E, Gam, 0, 1)
    return Gam


@njit(cache=True)
def _hadamard_upper(K, C, c):
    """H = (K (x) 1_c 1_c^T) o C from the upper triangle of C (both triangles written)."""
    N = C.shape[0]
    H = np.empty((N, N))
    for p in range(N):
        for q in range(p, N):
            v = K[p // c, q // c] * C[p, q]
            H[p, q] = v
            H[q, p] = v
    return H


def ntk_gram(X, G, c):
    """H = (X X^T (x) 1_c 1_c^T) o (G G^T): two BLAS Grams (dsyrk: upper triangle) and one Hadamard pass."""
    K = _syrk(1.0, X.T, trans=1)
    C = _syrk(1.0, G.T, trans=1)
    return _hadamard_upper(K, C, c)


@njit(cache=True)
def forward(W, X, a, kappa):
    """F (n, c) = kappa * activations(X W) @ a."""
    return kappa * (activations(X @ W) @ a)


@njit(cache=True)
def _loss_grad_row(u, y, aT, kappa, f, e, w):
    """One row of the loss sweep: f = F(u), the row's loss term (returned) and Gamma_i over u in place.

    ``e`` and ``w`` are (m,) buffers: phi(u_r - shift) then phi'(u_r), and the row's output
    weights a r_i.
    """
    shift = __SHIFT__
    alpha = __ALPHA_INIT__
    if NORMALIZED:
        _phi_pass(u, shift, e)
        alpha += _sum(e)
    ia = 1.0 / alpha
    loss = 0.0
    for j in range(aT.shape[0]):
        fj = kappa * _act_dot(u, shift, ia, e, aT[j])
        f[j] = fj
        rj = fj - y[j]
        loss += 0.5 * rj * rj
        if j == 0:
            _scaled(w, rj, aT[j])
        else:
            _add_scaled(w, rj, aT[j])
    S = _g_pass(u, shift, ia, w, kappa, e, u)
    if NORMALIZED:
        _add_scaled(u, S, e)
    return loss


@njit(cache=True)
def loss_grad(W, X, Y, a, kappa):
    """(L, grad_W L, F) for L = 1/2 ||F(W, X) - Y||_F^2: grad = X^T Gamma.

    One sweep over the rows of U = X W (BLAS) computes F_i, r_i = F_i - Y_i, the loss term and
    Gamma_i = g(u_i; a -> a r_i), written over U in place; then grad = X^T Gamma (BLAS).  Only
    (m,) row buffers are allocated besides U.
    """
    U = X @ W
    n, m = U.shape
    aT = np.ascontiguousarray(a.T)
    F = np.empty((n, a.shape[1]))
    e = np.empty(m)
    w = np.empty(m)
    loss = 0.0
    for i in range(n):
        loss += _loss_grad_row(U[i], Y[i], aT, kappa, F[i], e, w)
    return loss, X.T @ U, F


@njit(cache=True)
def loss_grad_region(W, X, Y, a, kappa, U0):
    """``loss_grad`` plus ``(max |U|, max |U - U0|)`` of ``U = X W``, read in the same row sweep.

    What the two-layer guarantee tracks along a run (``U0 = X W_0``): the preactivation box and
    the displacement ``max_{r,i} |<w_r - w_r(0), x_i>|``, without a second product ``X W``.
    """
    U = X @ W
    n, m = U.shape
    aT = np.ascontiguousarray(a.T)
    F = np.empty((n, a.shape[1]))
    e = np.empty(m)
    w = np.empty(m)
    big = np.zeros(m)  # column-wise running maxima, so the inner loop vectorizes
    dif = np.zeros(m)
    loss = 0.0
    for i in range(n):
        u = U[i]
        u0 = U0[i]
        for r in range(m):
            big[r] = max(big[r], abs(u[r]))
            dif[r] = max(dif[r], abs(u[r] - u0[r]))
        loss += _loss_grad_row(u, Y[i], aT, kappa, F[i], e, w)
    return loss, X.T @ U, F, big.max(), dif.max()


def ntk(W, X, a, kappa):
    """NTK Gram (n*c, n*c) at W over inputs X (rows ordered i*c + j)."""
    G = jac_rows(X @ W, a, kappa)
    return ntk_gram(X, G, a.shape[1])
