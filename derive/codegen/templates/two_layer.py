# <<template only>>
# Template of the kernel module of one two-layer-family member (docs/math.md §4), filled by
# softsym.derive.families.two_layer.emit_module; the template syntax is softsym.derive.codegen.template's.
# Inline values: HEADER, NAME, DOC, PAPER, SPEC_HASH, ACTIVATION, the flags NORMALIZED and SHIFT_INVARIANT,
# SHIFT (the shift of row i of U) and ALPHA_INIT (alpha before the normalizer pass).  Blocks: the derived
# code kappa, phi_code, act_code and pass_code, and load_ph (reads the stored phi value; empty without a
# normalizer).
# <<end template only>>
# __HEADER__
"""Kernels for `__NAME__` (__DOC__; paper __PAPER__).

Two-layer network F(W, x) = sum_r h(u_r, a_r, alpha), u = W^T x (see __NAME__.md).
Arrays are float64 C-contiguous: W (d, m), X (n, d), U = X W (n, m), a (m, c).
The runtime (softsym.problems.two_layer) validates inputs and checks outputs for overflow.
"""

import math

import numpy as np
from numba import njit
from scipy.linalg.blas import dsyrk as _syrk

# <<template only>>
from softsym.derive.codegen.templates import derived

__NORMALIZED__ = __SHIFT_INVARIANT__ = __SHIFT__ = __ALPHA_INIT__ = derived()

# <<end template only>>
NAME = "__NAME__"
SPEC_HASH = "__SPEC_HASH__"
ACTIVATION = "__ACTIVATION__"
NORMALIZED = __NORMALIZED__
SHIFT_INVARIANT = __SHIFT_INVARIANT__


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
        shift[i] = __SHIFT__
        alpha = __ALPHA_INIT__
        if NORMALIZED:
            for r in range(m):
                ui = U[i, r] - shift[i]
                alpha_r = derived(ui)  # <<phi_code>>
                E[i, r] = alpha_r
                alpha += alpha_r
        al[i] = alpha
    return shift, al, E


@njit(cache=True)
def activations(U):
    """P (n, m) with F = kappa P a: P_ir = sigma(u_ir) / alpha_i."""
    n, m = U.shape
    shift, al, E = _alphas(U)
    P = np.empty((n, m))
    for i in range(n):
        alpha = al[i]
        for r in range(m):
            ui = U[i, r] - shift[i]
            ph = E[i, r]  # <<load_ph>>
            P[i, r] = derived(ui, alpha, ph, math)  # <<act_code>>
    return P


@njit(cache=True)
def _g_rows(U, Aw, arow, kappa, shift, al, E, G, row0, stride):
    """G[row0 + stride*i, r] = dF/du_ir for the scalar output with weights Aw[arow[i]] (m,).

    One pass computes h_u, phi' and S = sum_r h_alpha; a second adds S phi' (normalizer only).
    """
    n, m = U.shape
    for i in range(n):
        alpha = al[i]
        w = Aw[arow[i]]
        row = row0 + stride * i
        q = np.empty(m)
        S = 0.0
        for r in range(m):
            ui = U[i, r] - shift[i]
            ai = w[r]
            ph = E[i, r]  # <<load_ph>>
            s_r, gu_r, q_r = derived(ui, ai, alpha, kappa, ph, math)  # <<pass_code>>
            S += s_r
            G[row, r] = gu_r
            q[r] = q_r
        if NORMALIZED:
            for r in range(m):
                G[row, r] += S * q[r]


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
def loss_grad(W, X, Y, a, kappa):
    """(L, grad_W L, F) for L = 1/2 ||F(W, X) - Y||_F^2: grad = X^T Gamma."""
    U = X @ W
    F = kappa * (activations(U) @ a)
    R = F - Y
    loss = 0.5 * np.sum(R * R)
    Gam = vjp_rows(U, R @ a.T, kappa)
    return loss, X.T @ Gam, F


def ntk(W, X, a, kappa):
    """NTK Gram (n*c, n*c) at W over inputs X (rows ordered i*c + j)."""
    G = jac_rows(X @ W, a, kappa)
    return ntk_gram(X, G, a.shape[1])
