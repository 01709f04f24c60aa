"""Bound deriver for the two-layer family: NTK perturbation, λ_min radius, smoothness, GD region.

Network (see :mod:`softsym.derive.families.two_layer`): ``u = W^T x``, ``F(W, x) = sum_r
h(u_r, a_r, alpha)`` with a scalar output (``c = 1``; ``c`` outputs below).  ``F`` depends on ``W`` only through ``u``, so with
``g(u) = dF/du in R^m`` (the member's derived ``g = h_u + S phi'``) and ``G`` the ``(n, m)``
matrix of rows ``g(u_i)``::

    dF/dw_r = x g_r(u),     H(W) = (X X^T) o (G G^T).

Declared assumptions (the region): ``||x_i||_2 <= 1``, ``|<w_r, x_i>| <= B`` for every ``r, i``,
``||a||_inf <= 1``, ``n`` inputs, width ``m``, output scale ``kappa``.  Nothing is typed per
member: from the derived ``g`` SymPy proves (exactly, at ``m = 3``) which *structure* the
member has and derives the scalar constants from it:

* **normalized, sigma = phi = exp** (softmax): ``g_r = kappa p_r (a_r - <a, p>)`` with ``p``
  the softmax of ``u``, and the Jacobian ``dg/du = kappa [diag(p o b) - (p o b) p^T - p (p o b)^T]``
  with ``b = a - <a, p>``; ``p_r`` increases in ``u_r`` and decreases in ``u_s`` (proven signs of
  ``dp_r/du``), so on the box ``p_r <= p_max = p(B, -B, ..., -B)``.  Norm rules: the proven
  variance identity ``sum_r p_r b_r^2 = sum_r p_r a_r^2 - <a, p>^2 <= 1`` gives ``||p o b||_2^2 <=
  p_max`` and ``sum_r p_r |b_r| <= 1``; ``|b_r| <= 2``, ``||p||_1 = 1``, ``||p||_2^2 <= p_max``.
* **elementwise** (no normalizer, ``h_u`` differentiable in ``u``; exp): ``g_r = h_u(u_r, a_r)``,
  the Jacobian is diagonal (proven), and ``max |h_u|``, ``max |h_uu|`` over ``|u| <= B,
  |a| <= 1`` come from linearity in ``a`` and proven monotonicity in ``u`` (endpoint values).
* **jump** (``h_u`` piecewise with a discontinuity; ReLU): the one-sided limits of ``h_u`` at
  the breakpoint differ by ``kappa a`` (derived), so ``g`` has no Lipschitz constant in ``u``
  and no deterministic ``L_H`` exists: moving a weight by any ``D > 0`` can flip a neuron
  whose pre-activation is within ``D`` of 0 and change ``H`` by ``O(kappa^2)`` at once.  What
  replaces it is the *margin count* ``N_i(D) = #{r : |<w_r(0), x_i>| <= D}`` (only those
  neurons can flip): ``||H(W) - H(W0)|| <= 2 kappa^2 sqrt(n m sum_i N_i(D))``, deterministic
  given ``W0``; for Gaussian ``W0`` (std ``s0``) and ``||x_i|| = 1``, ``E N_i <= m 2D /
  (sqrt(2 pi) s0)``, so with probability ``>= 1 - delta`` (Markov) the bound holds with
  ``sum_i N_i <= n m 2D / (sqrt(2 pi) s0 delta)``.  The loss gradient is discontinuous too: no
  certified step size.

Constants (deterministic members), with ``D = max_{r,i} |<w_r - w_r(0), x_i>| <= max_r ||w_r - w_r(0)||``:

* ``g_inf >= max_r |g_r|``, ``G >= ||g||_2``, ``L_g >= ||g(u) - g(u')||_2 / ||u - u'||_inf``
  (also ``>= ||d^2F/du^2||_2``);
* ``lam_max = n G^2 >= lambda_max(H)`` and ``L_H = 2 n G L_g``: by Schur's theorem
  (``X X^T`` is PSD with diagonal ``<= 1``), ``||H - H0|| <= ||G G^T - G0 G0^T|| <=
  ||G - G0|| (||G|| + ||G0||) <= sqrt(n) L_g D * 2 sqrt(n) G``;
* ``radius = lam0 / (2 L_H)``: ``D <= radius`` keeps ``lambda_min(H(W)) >= lam0 / 2``;
* ``smooth = n G^2 + 2 sqrt(n) rho0 L_g`` bounds ``||hess_W L||`` on every GD segment from a point
  with ``||r|| <= rho0`` when ``lr <= 1 / smooth`` (``J^T J`` plus the residual term, the
  residual at most doubling along the segment); ``lr = 1 / smooth`` is the certified step;
* ``drift = 4 sqrt(n) g_inf rho0 / lam0``: GD with ``lr <= 1/smooth`` started at residual
  ``rho0`` moves no ``w_r`` farther than this, *if* it stays in the region, where the loss
  contracts by ``1 - lr lam0 / 2`` per step.  Hence the over-parametrization condition:
  ``B0 + drift <= B`` and ``drift <= radius`` (``B0 = max |<w_r(0), x_i>|``) imply, by
  induction, that GD never leaves the region and converges linearly.

Vector output (``c`` outputs, ``a in R^{m x c}``, ``||a||_inf <= 1``; score networks): the
outputs share ``u``, output ``j`` is the scalar network with output weights ``a_j`` and ``g`` is
proven linear in ``a``.  So ``G`` has ``n c`` rows ``g(u_i; a_j)``, each obeying the per-row
bounds ``g_inf, G, L_g`` unchanged, ``H = (X X^T (x) 1 1^T) o (G G^T)`` is ``(n c) x (n c)``
with the PSD factor's diagonal still ``<= 1``, and the residual enters through ``sum_j r_ij
g(u_i; a_j) = g(u_i; a r_i)`` with ``||a r_i||_inf <= ||r_i||_1``.  Every ``n`` of the scalar
argument becomes ``n c``: ``lam_max = n c G^2``, ``L_H = 2 n c G L_g``, ``smooth = n c G^2 +
2 sqrt(n c) rho0 L_g``, ``drift = 4 sqrt(n c) g_inf rho0 / lam0`` (``radius`` and ``lr`` follow);
``lam0`` is the smallest eigenvalue of the ``(n c) x (n c)`` NTK.  The margin-count bounds of a
jump member are stated for ``c = 1`` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .. import codegen
from ..families.two_layer import S, TwoLayerFormulas, a
from ..families.two_layer import kappa as _kappa_real
from ..proof import ProofLog, is_zero
from ..spec import alpha, u

B = sp.Symbol("B", positive=True)
kappa = sp.Symbol("kappa", positive=True)
m = sp.Symbol("m", positive=True, integer=True)
n = sp.Symbol("n", positive=True, integer=True)
lam0 = sp.Symbol("lambda_0", positive=True)
rho0 = sp.Symbol("rho_0", positive=True)
D = sp.Symbol("D", positive=True)
s0 = sp.Symbol("s_0", positive=True)
delta = sp.Symbol("delta", positive=True)
flips = sp.Symbol("N", nonnegative=True)
c_out = sp.Symbol("c", positive=True, integer=True)

ARGS = (B, m, kappa, n, lam0, rho0, c_out)
#: arguments with a default in the emitted evaluators (``c = 1``: a scalar output)
ARG_DEFAULTS = {c_out: 1}
ARG_NAMES = {B: "B", m: "m", kappa: "kappa", n: "n", lam0: "lam0", rho0: "rho0", D: "D", s0: "s0",
             delta: "delta", flips: "N", c_out: "c"}
ASSUMPTIONS = ("c outputs (c = 1: scalar; the margin-count bounds of a jump member are for c = 1 only); "
               "||x_i||_2 <= 1; |<w_r, x_i>| <= B for all r, i (at W and W0); ||a||_inf <= 1 (a in R^{m x c}); "
               "n inputs, width m, output scale kappa; lam0 = lambda_min(H(W0)) > 0 (H is (n c) x (n c)); "
               "rho0 = ||F(W0, X) - Y||_F")
DETERMINISTIC = ("g_inf", "G", "L_g", "lam_max", "L_H", "radius", "smooth", "lr", "drift")
MARGIN = ("g_inf", "G", "lam_max", "jump", "flip_prob", "dH_count", "dH_whp", "radius_whp")
MEANING = {
    "g_inf": "max_r |dF/du_r| on the box",
    "G": "max ||dF/du||_2 on the box",
    "L_g": "Lipschitz constant of dF/du in u (inf -> 2 norm); bounds ||d^2F/du^2||_2",
    "lam_max": "upper bound on lambda_max(H(W))",
    "L_H": "||H(W) - H(W0)||_2 <= L_H * D, D = max_{r,i} |<w_r - w_r(0), x_i>|",
    "radius": "D <= radius keeps lambda_min(H(W)) >= lam0 / 2",
    "smooth": "smoothness of the training loss on GD segments (lr <= 1/smooth, ||r|| <= rho0)",
    "lr": "certified GD step 1 / smooth",
    "drift": "max_r ||w_r(t) - w_r(0)|| along certified GD while in the region",
    "jump": "jump of dF/du_r across the activation's breakpoint (no Lipschitz constant)",
    "flip_prob": "P(|<w_r(0), x>| <= D) for w_r(0) ~ N(0, s0^2 I), ||x|| = 1 (upper bound)",
    "dH_count": "||H(W) - H(W0)||_2 bound from the margin count N = sum_i N_i(D)",
    "dH_whp": "||H(W) - H(W0)||_2 bound holding with probability >= 1 - delta over W0",
    "radius_whp": "D keeping lambda_min(H(W)) >= lam0/2 with probability >= 1 - delta over W0",
}
PROOF_M = 3


@dataclass(frozen=True)
class TwoLayerBounds:
    """Derived constants of one two-layer member."""

    name: str
    activation: str
    kind: str                      # "normalized-exp", "elementwise" or "jump"
    exprs: dict[str, sp.Expr]
    claims: tuple[str, ...]
    rules: tuple[str, ...] = field(default_factory=tuple)

    @property
    def quantities(self) -> tuple[str, ...]:
        return tuple(self.exprs)

    @property
    def deterministic(self) -> bool:
        return self.kind != "jump"

    def args(self, q: str) -> tuple[sp.Symbol, ...]:
        return ARGS if self.deterministic else _MARGIN_ARGS[q]


_MARGIN_ARGS = {"g_inf": (B, m, kappa), "G": (B, m, kappa), "lam_max": (B, m, kappa, n), "jump": (kappa,),
                "flip_prob": (D, s0), "dH_count": (m, kappa, n, flips),
                "dH_whp": (D, m, kappa, n, s0, delta), "radius_whp": (m, kappa, n, lam0, s0, delta)}


def _g_vector(f: TwoLayerFormulas, us, As):
    """The member's derived ``g(u)`` at ``m = len(us)`` (S and alpha substituted)."""
    al = sum(f.phi.xreplace({u: v}) for v in us) if f.normalized else sp.Integer(1)
    rep = [{u: v, a: ai, alpha: al, _kappa_real: kappa} for v, ai in zip(us, As)]
    S_v = sum(f.h_alpha.xreplace(r) for r in rep) if f.normalized else sp.Integer(0)
    return [f.g.xreplace({**r, S: S_v}) for r in rep]


def _max_abs_on_box(expr: sp.Expr, log: ProofLog, what: str) -> sp.Expr:
    """``max |expr|`` over ``|u| <= B``, ``|a| <= 1`` for ``expr`` linear in ``a`` and monotone in ``u``."""
    expr = expr.xreplace({_kappa_real: kappa})
    coef = sp.diff(expr, a)
    log.require(f"{what} is linear in a (= a * {coef})", expr - a * coef)
    du = sp.simplify(sp.diff(coef, u))
    if not (du.is_positive or du.is_negative or du.is_zero):
        raise ValueError(f"{what}: cannot prove monotonicity in u of {coef}")
    log.claims.append(f"d/du ({coef}) = {du} has constant sign, so max |{what}| on |u| <= B is at u = +-B")
    hi, lo = sp.Abs(coef.xreplace({u: B})), sp.Abs(coef.xreplace({u: -B}))
    return sp.simplify(hi if (hi - lo).is_nonnegative else lo if (lo - hi).is_nonnegative else sp.Max(hi, lo))


def _normalized_exp(f: TwoLayerFormulas, log: ProofLog) -> tuple[dict, tuple[str, ...]]:
    us = sp.symbols(f"u_0:{PROOF_M}", real=True)
    As = sp.symbols(f"a_0:{PROOF_M}", real=True)
    g = _g_vector(f, us, As)
    al = sum(sp.exp(v) for v in us)
    p = [sp.exp(v) / al for v in us]
    abar = sum(ai * pi for ai, pi in zip(As, p))
    b_ = [ai - abar for ai in As]
    log.require_all(f"g_r = kappa p_r (a_r - <a, p>), p = softmax(u) (m={PROOF_M})",
                    [g[r] - kappa * p[r] * b_[r] for r in range(PROOF_M)])
    log.require_all(f"dg_r/du_t = kappa [delta_rt p_r b_r - p_r b_r p_t - p_r p_t b_t], b = a - <a, p> (m={PROOF_M})",
                    [sp.diff(g[r], us[t]) - kappa * ((1 if r == t else 0) * p[r] * b_[r] - p[r] * b_[r] * p[t]
                                                     - p[r] * p[t] * b_[t])
                     for r in range(PROOF_M) for t in range(PROOF_M)])
    log.require_all(f"dp_r/du_r = p_r (1 - p_r) > 0 and dp_r/du_s = -p_r p_s < 0 (m={PROOF_M})",
                    [sp.diff(p[r], us[t]) - (p[r] * (1 - p[r]) if r == t else -p[r] * p[t])
                     for r in range(PROOF_M) for t in range(PROOF_M)])
    log.require(f"sum_r p_r b_r^2 = sum_r p_r a_r^2 - <a, p>^2 <= ||a||_inf^2 (m={PROOF_M})",
                sum(pi * bi**2 for pi, bi in zip(p, b_)) - (sum(pi * ai**2 for pi, ai in zip(p, As)) - abar**2))
    # p_r is largest at u_r = B, u_s = -B (s != r): general m by the proven monotonicity.
    p_max = sp.simplify(sp.exp(B) / (sp.exp(B) + (m - 1) * sp.exp(-B)))
    a_inf = sp.Integer(1)
    # ||p o b||_2^2 = sum_r p_r (p_r b_r^2) <= p_max sum_r p_r b_r^2 <= p_max ||a||_inf^2 (variance identity)
    pb2 = a_inf * sp.sqrt(p_max)
    # sum_r p_r |b_r| <= sqrt(sum_r p_r b_r^2) <= ||a||_inf (Cauchy-Schwarz with weights p)
    pb1 = a_inf
    p2 = sp.sqrt(p_max)                      # ||p||_2^2 <= p_max ||p||_1 = p_max
    g_inf = kappa * 2 * a_inf * p_max        # |b_r| <= 2 ||a||_inf
    G = kappa * pb2
    # ||Jv||_2 <= kappa (||p o b||_2 ||v||_inf + ||p o b||_2 |<p, v>| + ||p||_2 |<p o b, v>|)
    L_g = kappa * (pb2 + pb2 * 1 + p2 * pb1)
    rules = ("g = kappa p o b and dg/du = kappa [diag(p o b) - (p o b) p^T - p (p o b)^T] (proven)",
             "p_max = p(B, -B, ..., -B) by the proven signs of dp/du",
             "||p o b||_2^2 <= p_max sum_r p_r b_r^2 <= p_max ||a||_inf^2 (proven variance identity), "
             "sum_r p_r |b_r| <= ||a||_inf, ||p||_1 = 1, ||p||_2^2 <= p_max, |b_r| <= 2 ||a||_inf")
    return {"g_inf": g_inf, "G": G, "L_g": L_g}, rules


def _elementwise(f: TwoLayerFormulas, log: ProofLog) -> tuple[dict, tuple[str, ...]]:
    us = sp.symbols(f"u_0:{PROOF_M}", real=True)
    As = sp.symbols(f"a_0:{PROOF_M}", real=True)
    g = _g_vector(f, us, As)
    log.require_all(f"g_r = h_u(u_r, a_r) and dg_r/du_t = 0 for r != t (m={PROOF_M})",
                    [g[r] - f.h_u.xreplace({u: us[r], a: As[r], _kappa_real: kappa}) for r in range(PROOF_M)]
                    + [sp.diff(g[r], us[t]) for r in range(PROOF_M) for t in range(PROOF_M) if r != t])
    g_inf = _max_abs_on_box(f.h_u, log, "h_u")
    ell = _max_abs_on_box(sp.diff(f.h_u, u), log, "h_uu")
    rules = ("g_r = h_u(u_r, a_r), diagonal Jacobian (proven)",
             "max over the box by linearity in a and monotonicity in u",
             "||g||_2 <= sqrt(m) max|h_u|; ||diag(h_uu) v||_2 <= sqrt(m) max|h_uu| ||v||_inf")
    return {"g_inf": g_inf, "G": sp.sqrt(m) * g_inf, "L_g": sp.sqrt(m) * ell}, rules


def _jump(f: TwoLayerFormulas, log: ProofLog) -> tuple[dict, tuple[str, ...]]:
    h_u = f.h_u.xreplace({_kappa_real: kappa})
    eps = sp.Symbol("epsilon", positive=True)
    up = sp.limit(sp.piecewise_fold(h_u.xreplace({u: eps})), eps, 0)
    dn = sp.limit(sp.piecewise_fold(h_u.xreplace({u: -eps})), eps, 0)
    jump = sp.simplify(up - dn)
    if is_zero(jump):
        raise ValueError(f"{f.spec.name}: piecewise h_u without a jump is not handled")
    log.claims.append(f"h_u = {h_u} jumps by {jump} at u = 0: dF/du has no Lipschitz constant")
    G = sp.sqrt(m) * kappa
    p_flip = sp.Min(1, 2 * D / (sp.sqrt(2 * sp.pi) * s0))
    dH_count = 2 * kappa**2 * sp.sqrt(n * m * flips)
    dH_whp = 2 * kappa**2 * sp.sqrt(n * m * n * m * p_flip / delta)
    # Largest D with dH_whp(D) <= lam0 / 2 (on the branch p_flip < 1).
    radius = sp.solve(sp.Eq(2 * kappa**2 * n * m * sp.sqrt(2 * D / (sp.sqrt(2 * sp.pi) * s0) / delta), lam0 / 2), D)
    rules = ("no Lipschitz constant: jump of h_u at the breakpoint (derived by one-sided limits)",
             "margin count: only neurons with |<w_r(0), x_i>| <= D can flip; ||G - G0||_F <= kappa sqrt(N)",
             "Gaussian W0: P(|N(0, s0^2)| <= D) <= 2D/(sqrt(2 pi) s0); Markov over sum_i N_i")
    return {"g_inf": kappa, "G": G, "lam_max": n * G**2, "jump": sp.Abs(jump).xreplace({a: 1}),
            "flip_prob": p_flip, "dH_count": dH_count, "dH_whp": dH_whp, "radius_whp": radius[0]}, rules


def _vector_outputs(f: TwoLayerFormulas, log: ProofLog) -> tuple[str, ...]:
    """Prove that ``g(u; a)`` is linear in the output weights ``a`` (exactly, at ``m = PROOF_M``).

    A ``c``-output network shares ``u`` (and the normalizer) across outputs and its output ``j``
    has output weights ``a_j`` (column ``j`` of ``a``), so its gradient rows are the scalar rows
    ``g(u; a_j)``; linearity gives ``sum_j r_j g(u; a_j) = g(u; a r)`` with ``||a r||_inf <=
    ||r||_1 <= sqrt(c) ||r||_2``, which is what the residual and drift terms use.
    """
    us = sp.symbols(f"u_0:{PROOF_M}", real=True)
    A1 = sp.symbols(f"a_0:{PROOF_M}", real=True)
    A2 = sp.symbols(f"ap_0:{PROOF_M}", real=True)
    r1, r2 = sp.symbols("r_1 r_2", real=True)
    g1, g2 = _g_vector(f, us, A1), _g_vector(f, us, A2)
    g12 = _g_vector(f, us, [r1 * x + r2 * y for x, y in zip(A1, A2)])
    log.require_all(f"g(u; r_1 a + r_2 a') = r_1 g(u; a) + r_2 g(u; a') (m={PROOF_M}): "
                    "output j of a c-output network has rows g(u; a_j), and sum_j r_j g(u; a_j) = g(u; a r)",
                    [g12[r] - r1 * g1[r] - r2 * g2[r] for r in range(PROOF_M)])
    return ("c outputs: rows g(u_i; a_j) (proven linear in a); the (n c) x (n c) NTK is (X X^T (x) 1 1^T) o (G G^T) "
            "with G of n c rows, so every n of the scalar proof becomes n c: ||G||_2 <= sqrt(n c) G, "
            "sum_{i,j} |r_ij| <= sqrt(n c) ||r||_F, and sum_j r_ij g(u_i; a_j) = g(u_i; a r_i) with "
            "||a r_i||_inf <= ||r_i||_1",)


def derive_bounds(f: TwoLayerFormulas) -> TwoLayerBounds:
    """Classify the member's derived ``g`` and derive its constants (``ValueError`` if no rule applies)."""
    log = ProofLog()
    spec = f.spec
    if f.normalized:
        if not (is_zero(f.sigma - f.phi) and is_zero(f.phi - sp.exp(u))):
            raise ValueError(f"{spec.name}: only the normalized member with sigma = phi = exp has bound rules")
        kind = "normalized-exp"
        base, rules = _normalized_exp(f, log)
    elif f.h_u.atoms(sp.Piecewise):
        kind = "jump"
        exprs, rules = _jump(f, log)
        return TwoLayerBounds(spec.name, spec.activation, kind, exprs, tuple(log.claims), rules)
    else:
        kind = "elementwise"
        base, rules = _elementwise(f, log)
    g_inf, G, L_g = (sp.simplify(base[k]) for k in ("g_inf", "G", "L_g"))
    rules += _vector_outputs(f, log)
    rows = n * c_out  # rows of the Jacobian (and of the NTK): one per input and output
    lam_max = rows * G**2
    L_H = 2 * rows * G * L_g
    smooth = rows * G**2 + 2 * sp.sqrt(rows) * rho0 * L_g
    exprs = {"g_inf": g_inf, "G": G, "L_g": L_g, "lam_max": lam_max, "L_H": L_H, "radius": lam0 / (2 * L_H),
             "smooth": smooth, "lr": 1 / smooth, "drift": 4 * sp.sqrt(rows) * g_inf * rho0 / lam0}
    rules += ("L_H = 2 n c G L_g (Schur: ||K o M|| <= max K_ii ||M|| for PSD K = X X^T (x) 1 1^T)",
              "smooth = n c G^2 + 2 sqrt(n c) rho0 L_g (Gauss-Newton part + residual part on GD segments)",
              "drift = 4 sqrt(n c) g_inf rho0 / lam0 (geometric sum of per-step moves at rate 1 - lr lam0/2)")
    return TwoLayerBounds(spec.name, spec.activation, kind, exprs, tuple(log.claims), rules)


# ----------------------------------------------------------------------------------------
# Emission


def emit_module(tb: TwoLayerBounds, spec_hash: str) -> str:
    """Source of ``generated/<name>_bounds.py``: plain-Python evaluators of every constant."""
    lines = [f"# {codegen.HEADER}",
             f'"""Derived constants for `{tb.name}` (see softsym.derive.bounds.two_layer and {tb.name}.md).',
             "",
             "Each function returns an upper bound; it raises OverflowError when a constant is too large",
             "for floating point (callers treat that as infinite).",
             '"""', "", "import math", "", f'NAME = "{tb.name}"', f'SPEC_HASH = "{spec_hash}"',
             f'ACTIVATION = "{tb.activation}"', f'KIND = "{tb.kind}"', f"DETERMINISTIC = {tb.deterministic}",
             f"QUANTITIES = {tb.quantities!r}", f"ASSUMPTIONS = {ASSUMPTIONS!r}", "MEANING = {"]
    lines += [f"    {q!r}: {MEANING[q]!r}," for q in tb.quantities] + ["}", "ARGS = {"]
    lines += [f"    {q!r}: {tuple(ARG_NAMES[s] for s in tb.args(q))!r}," for q in tb.quantities] + ["}"]
    for q in tb.quantities:
        args = ", ".join(ARG_NAMES[s] + (f"={ARG_DEFAULTS[s]}" if s in ARG_DEFAULTS else "") for s in tb.args(q))
        lines += ["", "", f"def {q}({args}):", f'    """{MEANING[q]}."""']
        lines += [codegen.code_block([("out", tb.exprs[q])], ARG_NAMES, indent=4), "    return float(out)"]
    lines += ["", "", "FUNCTIONS = {"] + [f"    {q!r}: {q}," for q in tb.quantities] + ["}", ""]
    return "\n".join(lines)


def emit_section(tb: TwoLayerBounds) -> str:
    """Markdown/LaTeX section appended to the member's formulas page."""
    eqs = formulas(tb)[REGION]
    lines = ["", "## Derived constants (`softsym.derive.bounds.two_layer`)", "",
             f"Assumptions: {ASSUMPTIONS}.", "",
             "With $G$ the $(n c, m)$ matrix of rows $g_j(u_i) = \\partial F_j/\\partial u(u_i)$ ($c$ outputs), "
             "$H(W) = (X X^\\top \\otimes 1 1^\\top) \\circ (G G^\\top)$ and $D = \\max_{r,i} |\\langle w_r - w_r(0), x_i\\rangle| "
             "\\le \\max_r \\lVert w_r - w_r(0)\\rVert$.", "",
             f"Structure: `{tb.kind}`. Rules: " + "; ".join(tb.rules) + ".", ""]
    if tb.deterministic:
        lines += ["If $B_0 + \\mathrm{drift} \\le B$ and $\\mathrm{drift} \\le \\mathrm{radius}$ "
                  "($B_0 = \\max|\\langle w_r(0), x_i\\rangle|$), gradient descent with step "
                  "$\\eta \\le 1/\\mathrm{smooth}$ stays in the region, keeps "
                  "$\\lambda_{\\min}(H) \\ge \\lambda_0/2$ and contracts the loss by "
                  "$1 - \\eta\\lambda_0/2$ per step.", ""]
    else:
        lines += ["The activation's derivative jumps, so there is no deterministic NTK perturbation constant "
                  "and no certified step size; the margin-count bounds below replace them "
                  "($N = \\sum_i \\#\\{r : |\\langle w_r(0), x_i\\rangle| \\le D\\}$).", ""]
    for q in tb.quantities:
        label = q.replace("_", "\\_")
        lines += [f"- {MEANING[q]}: $\\mathrm{{{label}}} = {eqs[q]}$"]
    lines += ["", "Proven (SymPy, exact):", ""] + [f"- {c}" for c in tb.claims]
    return "\n".join(lines) + "\n"


#: the one region of the family, as named in the manifest (``bound_formulas``, ``softsym formulas --latex``)
REGION = "preactivation_box"
LATEX_NAMES = {kappa: r"\kappa", lam0: r"\lambda_0", rho0: r"\rho_0", s0: r"s_0", delta: r"\delta", flips: "N",
               c_out: "c"}


def formulas(tb: TwoLayerBounds) -> dict[str, dict[str, str]]:
    """The derived constants as LaTeX, ``{REGION: {quantity: rhs}}`` (``quantity = rhs``; each
    constant's meaning, an upper or lower bound, is in ``MEANING``); the formulas page and the
    manifest entry are both rendered from it."""
    return {REGION: {q: codegen.latex(tb.exprs[q], LATEX_NAMES) for q in tb.quantities}}


def manifest_entry(tb: TwoLayerBounds) -> dict:
    """Bounds info for the manifest: module, structure, region with its assumptions, LaTeX formulas."""
    return {"module": f"{tb.name}_bounds", "kind": tb.kind, "deterministic": tb.deterministic,
            "quantities": list(tb.quantities), "regions": [REGION], "assumptions": {REGION: ASSUMPTIONS},
            "meaning": {q: MEANING[q] for q in tb.quantities}, "relation": "=", "formulas": formulas(tb),
            "proof": list(tb.claims)}
