# <<template only>>
# Template of the kernel module of one mixture-score member (paper 004's diffusion application), filled
# by softsym.derive.families.mixture_score.emit_module; the template syntax is softsym.derive.codegen.template's.
# Inline values: HEADER, NAME, DOC, PAPER, SPEC_HASH.  Blocks: the derived code q_code and qx_code.
# <<end template only>>
# __HEADER__
"""Kernels for `__NAME__` (__DOC__; paper __PAPER__).

Mixture sum_k w_k prod_j exp(q(x_j, mu_kj, v_k)); arrays float64 C-contiguous:
X (n, d), means (k, d), var (k,), logw (k,) = log w.
"""

import math

import numpy as np
from numba import njit

# <<template only>>
from softsym.derive.codegen.templates import derived

# <<end template only>>
NAME = "__NAME__"
SPEC_HASH = "__SPEC_HASH__"


@njit(cache=True)
def log_terms(X, means, var, logw):
    """L (n, k): L_ik = log w_k + sum_j q(x_ij, mu_kj, v_k); log p(x_i) = logsumexp_k L_ik."""
    n, d = X.shape
    K = means.shape[0]
    L = np.empty((n, K))
    for i in range(n):
        for k in range(K):
            vk = var[k]
            acc = logw[k]
            for j in range(d):
                xj = X[i, j]
                mj = means[k, j]
                q = derived(xj, mj, vk, math)  # <<q_code>>
                acc += q
            L[i, k] = acc
    return L


@njit(cache=True)
def log_density(X, means, var, logw):
    """log p(x_i) (n,)."""
    L = log_terms(X, means, var, logw)
    out = np.empty(L.shape[0])
    for i in range(L.shape[0]):
        mx = np.max(L[i])
        out[i] = mx + math.log(np.sum(np.exp(L[i] - mx)))
    return out


@njit(cache=True)
def score(X, means, var, logw):
    """grad log p(x_i) (n, d) = sum_k r_ik q_x(x_ij, mu_kj, v_k), r_i = softmax(L_i)."""
    n, d = X.shape
    K = means.shape[0]
    L = log_terms(X, means, var, logw)
    S = np.zeros((n, d))
    for i in range(n):
        r = np.exp(L[i] - np.max(L[i]))
        r /= np.sum(r)
        for k in range(K):
            vk = var[k]
            for j in range(d):
                xj = X[i, j]
                mj = means[k, j]
                qx = derived(xj, mj, vk, math)  # <<qx_code>>
                S[i, j] += r[k] * qx
    return S
