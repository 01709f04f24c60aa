"""The objective catalogue: every objective softsym generates kernels for.

Adding an objective is adding one entry here (or, for users, writing the same few lines in
a spec file of their own).  Each member carries the regularizer 1/2 ||W A x||^2 with
W = diag(w), added by its family.
"""

from __future__ import annotations

from sympy import Piecewise, cosh, exp, log, pi, sinh, sqrt

from .families.attention import AttentionSpec, s
from .families.mixture_score import MixtureScoreSpec, mu, v, x
from .families.two_layer import TwoLayerSpec, m
from .spec import NormalizedSpec, alpha, b, u

_RESCALED_DOC = "rescaled {f} regression: min 1/2 ||{f}(Ax) - <{f}(Ax), 1> b||^2"
_PLAIN_DOC = "{f} regression (no normalization): min 1/2 ||{f}(Ax) - b||^2"

NORMALIZED: tuple[NormalizedSpec, ...] = (
    NormalizedSpec(
        name="softmax",
        doc="softmax regression: min 1/2 ||<exp(Ax), 1>^-1 exp(Ax) - b||^2",
        paper="000",
        phi=exp(u),
        ell=(exp(u) / alpha - b) ** 2 / 2,
        shift_invariant=True,
    ),
    *(
        NormalizedSpec(name=f"rescaled_{f.__name__}", doc=_RESCALED_DOC.format(f=f.__name__),
                       paper="001", phi=f(u), ell=(f(u) - alpha * b) ** 2 / 2)
        for f in (exp, cosh, sinh)
    ),
    *(
        NormalizedSpec(name=f.__name__, doc=_PLAIN_DOC.format(f=f.__name__), paper="-",
                       ell=(f(u) - b) ** 2 / 2)
        for f in (exp, cosh, sinh)
    ),
    NormalizedSpec(
        name="softmax_xent",
        doc="softmax cross-entropy: min -sum_i b_i log softmax(Ax)_i",
        paper="-",
        phi=exp(u),
        # -b log(exp(u)/alpha), written with log(exp(u)) = u so that it evaluates stably.
        ell=-b * (u - log(alpha)),
        shift_invariant=True,
        # ell is linear in b, so d ell / d b = 0 has no solution: plant b = softmax(u).
        target=exp(u) / alpha,
    ),
)

# Two-layer networks (paper 004): softmax with the paper's scale kappa = m; ReLU and exp with
# the standard NTK scale 1/sqrt(m) (O(1) NTK entries at init), for comparison.
TWO_LAYER: tuple[TwoLayerSpec, ...] = (
    TwoLayerSpec(name="two_layer_softmax", doc="two-layer softmax network F = kappa <a, softmax(W^T x)>",
                 paper="004", activation="softmax", sigma=exp(u), phi=exp(u), kappa=m, shift_invariant=True),
    TwoLayerSpec(name="two_layer_relu", doc="two-layer ReLU network F = kappa <a, relu(W^T x)>", paper="-",
                 activation="relu", sigma=Piecewise((u, u > 0), (0, True)), kappa=1 / sqrt(m)),
    TwoLayerSpec(name="two_layer_exp", doc="two-layer exp network F = kappa <a, exp(W^T x)>", paper="-",
                 activation="exp", sigma=exp(u), kappa=1 / sqrt(m)),
)

# The exact score of isotropic Gaussian mixtures (diffusion targets for the score networks).
MIXTURE_SCORE = (
    MixtureScoreSpec(name="gaussian_mixture_score", doc="score of an isotropic Gaussian mixture", paper="004",
                     q=-(x - mu) ** 2 / (2 * v) - log(2 * pi * v) / 2),
)

ATTENTION: tuple[AttentionSpec, ...] = (
    AttentionSpec(
        name="attention",
        doc="single-layer attention regression: min ||row-softmax(A1 X A2^T) A3 Y - B||_F^2",
        paper="003",
        ell=(s - b) ** 2,
    ),
)

CATALOGUE = NORMALIZED + ATTENTION + TWO_LAYER + MIXTURE_SCORE
