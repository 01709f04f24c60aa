"""The two-layer network family (docs/math.md §4, paper 004): derivation, proof, emission.

Width ``m``, trained first layer ``W in R^{d x m}``, fixed output weights ``a`` (``(m,)`` signs
for a scalar output, ``(m, c)`` for a vector output), scale ``kappa``::

    u = W^T x,   alpha = sum_s phi(u_s)   (alpha = 1 without a normalizer),
    F_c(W, x) = sum_r h(u_r, a_rc, alpha),   h = kappa a sigma(u) / alpha

Softmax is ``sigma = phi = exp``; ReLU and exp networks have no normalizer.  ``F`` depends
on ``W`` only through ``u = W^T x``, so for *every* member the chain rule gives::

    dF_c/dW = x g_c^T,   g_c,r = h_u(u_r, a_rc) + S_c phi'(u_r),   S_c = sum_s h_alpha(u_s, a_sc)

(the second term is the normalizer's coupling, absent for ReLU/exp), and the NTK Gram over
inputs ``x_i`` and outputs ``c`` is a Hadamard product of two Grams::

    H[(i,c), (j,c')] = <x_i, x_j> <g_ic, g_jc'>,   H = (X X^T (x) 1 1^T) o (G G^T)

Since ``h`` is linear in ``a``, the gradient of ``1/2 sum_i ||F(W, x_i) - y_i||^2`` is
``X^T Gamma`` with ``Gamma_i = g(u_i; a -> a r_i)``, ``r_i = F(W, x_i) - y_i`` (a VJP with
per-row output weights ``a r_i``).  Every partial comes from ``sympy.diff``; the prover checks
each identity exactly against brute-force differentiation in ``W``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import sympy as sp

from .. import codegen
from ..proof import ProofLog, is_zero
from ..spec import NAME_PATTERN, SpecError, alpha, fingerprint_of, u

a, kappa, S = sp.symbols("a kappa S", real=True)
m = sp.Symbol("m", positive=True, integer=True)

# Sizes (n inputs, d features, m neurons, c outputs) at which the identities are proven.
PROOF_SIZES: tuple[tuple[int, int, int, int], ...] = ((2, 2, 3, 1), (2, 2, 2, 2))


@dataclass(frozen=True)
class TwoLayerSpec:
    """One member of the two-layer family.

    Parameters
    ----------
    name : identifier of the kernel module (``softsym.kernels.<name>``).
    doc : one line describing the network.
    paper : the paper it comes from (``"004"``) or ``"-"``.
    activation : short name the runtime uses (``softsym.problems.two_layer.TwoLayerNetwork(activation=...)``).
    sigma : per-neuron activation in ``u``.
    phi : normalizer summand in ``u`` (``alpha = sum_s phi(u_s)``); ``None`` for none.
    kappa : default output scale as an expression in the width ``m``.
    shift_invariant : claim that ``F`` is unchanged by ``u -> u + c 1`` (kernels then
        evaluate at ``u - max u``, overflow free).  Proven by the prover.
    """

    name: str
    doc: str
    paper: str
    activation: str
    sigma: sp.Expr
    kappa: sp.Expr
    phi: sp.Expr | None = None
    shift_invariant: bool = False

    family = "two_layer"

    def __post_init__(self) -> None:
        if not all(isinstance(s, str) and NAME_PATTERN.fullmatch(s) for s in (self.name, self.activation)):
            raise SpecError(f"spec name {self.name!r} / activation {self.activation!r} must match {NAME_PATTERN.pattern}")
        for what, expr, allowed in (("sigma", self.sigma, {u}), ("phi", self.phi, {u}), ("kappa", self.kappa, {m})):
            if expr is None:
                continue
            extra = set(sp.sympify(expr).free_symbols) - allowed
            if extra:
                raise SpecError(f"spec {self.name!r}: {what} uses unknown symbols {sorted(map(str, extra))}")
        if self.shift_invariant and self.phi is None:
            raise SpecError(f"spec {self.name!r}: shift invariance needs a normalizer phi")

    def fingerprint(self) -> str:
        """SHA-256 of everything that defines the spec (stable across runs and machines)."""
        return fingerprint_of(self.family, self.name, self.doc, self.paper, self.activation, self.sigma,
                              self.kappa, self.phi, self.shift_invariant)


@dataclass(frozen=True)
class TwoLayerFormulas:
    """Derived per-neuron formulas of one member (functions of u, a, alpha, kappa, S)."""

    spec: TwoLayerSpec
    sigma: sp.Expr
    phi: sp.Expr
    act: sp.Expr          # sigma(u) / alpha: F = kappa * act @ a
    h: sp.Expr            # per-neuron output term kappa a sigma(u) / alpha
    h_u: sp.Expr
    h_alpha: sp.Expr
    phi_u: sp.Expr

    @property
    def normalized(self) -> bool:
        return self.spec.phi is not None

    @property
    def g(self) -> sp.Expr:
        """dF/du_r = h_u(u_r) + S phi'(u_r), S = sum_s h_alpha(u_s)."""
        return self.h_u + S * self.phi_u


def derive(spec: TwoLayerSpec) -> TwoLayerFormulas:
    """Per-neuron partials by ``sympy.diff``."""
    sigma = sp.sympify(spec.sigma)
    phi = sp.sympify(spec.phi) if spec.phi is not None else sp.Integer(0)
    act = sigma / alpha if spec.phi is not None else sigma
    h = kappa * a * act
    return TwoLayerFormulas(spec=spec, sigma=sigma, phi=phi, act=act, h=h, h_u=sp.diff(h, u),
                            h_alpha=sp.diff(h, alpha), phi_u=sp.diff(phi, u))


def _zero(expr: sp.Expr) -> bool:
    """Exact zero test; piecewise (ReLU) expressions are proven case by case.

    Every distinct branch condition is set True or False in all combinations (exhaustive
    case analysis, including sign patterns that cannot occur), and each case must reduce to 0.
    """
    expr = sp.sympify(expr)
    conds = sorted({cnd for pw in expr.atoms(sp.Piecewise) for _, cnd in pw.args if cnd is not sp.true}, key=str)
    if not conds:
        return is_zero(expr)
    return all(is_zero(expr.xreplace(dict(zip(conds, map(sp.sympify, case)))))
               for case in itertools.product((True, False), repeat=len(conds)))


def _require_all(log: ProofLog, claim: str, differences) -> None:
    log.require_all(claim, [sp.Integer(0) if _zero(d) else d for d in differences])


def prove(f: TwoLayerFormulas) -> list[str]:
    """Prove the gradient, NTK and VJP identities exactly at small sizes (``ProofError`` if not).

    Brute force: ``F(W, x_i)`` built from the spec with symbolic ``W, X, a`` and differentiated
    in every entry of ``W``; the NTK is ``J J^T`` of that Jacobian.  Structured: the derived
    per-neuron ``g`` contracted as ``x g^T`` and ``(X X^T (x) 1 1^T) o (G G^T)``.
    """
    log = ProofLog()
    for n, d, mm, c in PROOF_SIZES:
        W = sp.Matrix(d, mm, lambda k, r: sp.Symbol(f"W_{k}{r}", real=True))
        X = sp.Matrix(n, d, lambda i, k: sp.Symbol(f"x_{i}{k}", real=True))
        A = sp.Matrix(mm, c, lambda r, j: sp.Symbol(f"a_{r}{j}", real=True))
        Y = sp.Matrix(n, c, lambda i, j: sp.Symbol(f"y_{i}{j}", real=True))
        U = X * W  # (n, m): U[i, r] = <x_i, w_r>
        k_ = sp.Symbol("kappa", positive=True)

        def alpha_of(i):
            return sum((f.phi.xreplace({u: U[i, r]}) for r in range(mm)), sp.Integer(0)) if f.normalized else 1

        def F(i, j):
            al = alpha_of(i)
            return sum((f.h.xreplace({u: U[i, r], a: A[r, j], alpha: al, kappa: k_}) for r in range(mm)),
                       sp.Integer(0))

        def g_rows(i, weights):
            al = alpha_of(i)
            rep = [{u: U[i, r], a: weights[r], alpha: al, kappa: k_} for r in range(mm)]
            S_v = sum((f.h_alpha.xreplace(rp) for rp in rep), sp.Integer(0))
            return [f.g.xreplace({**rp, S: S_v}) for rp in rep]

        rows = [(i, j) for i in range(n) for j in range(c)]
        params = [W[k, r] for k in range(d) for r in range(mm)]
        J = sp.Matrix([[sp.diff(F(i, j), p) for p in params] for i, j in rows])
        G = {(i, j): g_rows(i, [A[r, j] for r in range(mm)]) for i, j in rows}
        size = f"n={n}, d={d}, m={mm}, c={c}"
        _require_all(log, f"dF_c(W, x)/dW = x g_c^T entrywise ({size})",
                     [J[p, k * mm + r] - X[i, k] * G[(i, j)][r]
                      for p, (i, j) in enumerate(rows) for k in range(d) for r in range(mm)])
        H_bf = J * J.T
        _require_all(log, f"NTK J J^T = (X X^T (x) 1 1^T) o (G G^T) entrywise ({size})",
                     [H_bf[p, q] - sum(X[i, k] * X[i2, k] for k in range(d))
                      * sum(G[(i, j)][r] * G[(i2, j2)][r] for r in range(mm))
                      for p, (i, j) in enumerate(rows) for q, (i2, j2) in enumerate(rows) if q >= p])
        loss = sum(((F(i, j) - Y[i, j]) ** 2 for i, j in rows), sp.Integer(0)) / 2
        resid = {(i, j): F(i, j) - Y[i, j] for i, j in rows}
        gam = [g_rows(i, [sum(A[r, j] * resid[(i, j)] for j in range(c)) for r in range(mm)]) for i in range(n)]
        _require_all(log, f"grad_W 1/2 sum ||F(W, x_i) - y_i||^2 = X^T Gamma, Gamma_i = g(u_i; a -> a r_i) ({size})",
                     [sp.diff(loss, W[k, r]) - sum(X[i, k] * gam[i][r] for i in range(n))
                      for k in range(d) for r in range(mm)])
    if f.spec.shift_invariant:
        us = sp.symbols("u_0:3", real=True)
        As = sp.symbols("a_0:3", real=True)
        cc = sp.Symbol("c", real=True)

        def out(vals):
            al = sum(f.phi.xreplace({u: v}) for v in vals)
            return sum(f.h.xreplace({u: v, a: ai, alpha: al}) for v, ai in zip(vals, As))

        log.require("F is invariant under u -> u + c 1 (m=3)", out([v + cc for v in us]) - out(us))
    return log.claims


# ----------------------------------------------------------------------------------------
# Emission

_NAMES = {u: "ui", a: "ai", alpha: "alpha", kappa: "kappa", S: "S"}
_PH = sp.Symbol("phi_value", real=True)
_IA = sp.Symbol("inv_alpha", positive=True)


def emit_module(f: TwoLayerFormulas, spec_hash: str) -> str:
    """Source of the Numba kernel module for one member (template ``two_layer``).

    For normalized members every occurrence of phi(u) in the per-neuron formulas is replaced
    by the value ``ph = E[i, r]`` the normalizer pass stored (an exact rewrite: ``ph = phi(u)``),
    so exponentials are evaluated once per neuron and input, and ``alpha`` by ``1 / ia`` with
    ``ia = 1 / alpha`` computed once per row (exact), so the element loops multiply instead
    of dividing.  ``exp`` is printed as the module's vectorizing ``_exp``.
    """
    spec = f.spec
    names = dict(_NAMES)

    def rewritten(expr):
        return expr.subs(f.phi, _PH).subs(alpha, 1 / _IA) if f.normalized else expr

    def per_neuron(expr):
        return codegen.vectorized(rewritten(expr))

    # the reducing per-neuron passes may reassociate only when no exponential is inlined into them
    row_exp = any(rewritten(e).has(sp.exp) for e in (f.act, f.h_alpha, f.h_u, f.phi_u))

    if f.normalized:
        names[_PH] = "ph"
        names[_IA] = "ia"
    return codegen.render(
        "two_layer", HEADER=codegen.HEADER, NAME=spec.name, DOC=spec.doc, PAPER=spec.paper, SPEC_HASH=spec_hash,
        ACTIVATION=spec.activation, NORMALIZED=str(f.normalized), SHIFT_INVARIANT=str(spec.shift_invariant),
        kappa=codegen.code_block([("k", sp.sympify(spec.kappa))], {m: "m"}, indent=0),
        SHIFT="np.max(u)" if spec.shift_invariant else "0.0",
        fast_exp=codegen.fast_exp_source(),
        phi_code=(codegen.code_block([("alpha_r", codegen.vectorized(f.phi))], _NAMES, indent=0)
                  if f.normalized else "alpha_r = 0.0"),
        ALPHA_INIT="0.0" if f.normalized else "1.0",
        # without a normalizer the line that loads the stored phi value is left empty
        load_ph="ph = e[r]" if f.normalized else "",
        act_code=codegen.code_block([("p[r]", per_neuron(f.act))], names, indent=0),
        act_value=codegen.code_block([("p", per_neuron(f.act))], names, indent=0),
        ROW_FASTMATH='{"contract"}' if row_exp else '{"reassoc", "contract"}',
        pass_code=codegen.code_block([("s_r", per_neuron(f.h_alpha)), ("gu_r", per_neuron(f.h_u)),
                                      ("q_r", per_neuron(f.phi_u))], names, indent=0),
    )


def formulas(f: TwoLayerFormulas) -> list[tuple[str, str]]:
    """The derived equations of one member as ``(lhs, rhs)`` LaTeX pairs, in page order (the last
    is the per-neuron gradient ``g_{c,r}``); the formulas page and the manifest entry use this list."""
    names = {alpha: r"\alpha", kappa: r"\kappa", S: "S"}
    rows = [("\\sigma(u)", f.sigma), ("\\varphi(u)", f.phi if f.normalized else None),
            ("\\kappa \\text{ (default, width } m)", sp.sympify(f.spec.kappa)),
            ("h(u, a, \\alpha)", f.h), ("h_u", f.h_u), ("h_\\alpha", f.h_alpha),
            ("\\varphi'", f.phi_u if f.normalized else None), ("g_{c,r}", f.g)]
    return [(k, codegen.latex(v, names)) for k, v in rows if v is not None]


def emit_page(f: TwoLayerFormulas, claims: list[str], spec_hash: str) -> str:
    """Markdown/LaTeX page of the derived formulas of one member."""
    spec = f.spec
    *rows, (_, g) = formulas(f)
    lines = [f"<!-- {codegen.HEADER} -->", f"# `{spec.name}`", "", spec.doc + ".", "",
             f"Paper: {spec.paper}. Family: two-layer network (activation `{spec.activation}`). "
             f"Spec hash: `{spec_hash[:16]}`.", "",
             "$$u = W^\\top x,\\quad " + ("\\alpha = \\sum_s \\varphi(u_s),\\quad " if f.normalized else "")
             + "F_c(W, x) = \\sum_r h(u_r, a_{rc}, \\alpha)$$", "",
             "## Per-neuron partials (derived by SymPy)", "", "| quantity | expression |", "|---|---|"]
    lines += [f"| ${k}$ | ${v}$ |" for k, v in rows]
    lines += ["", "## Gradient and NTK Gram", "",
              "$$\\frac{\\partial F_c}{\\partial W} = x\\, g_c^\\top,\\qquad g_{c,r} = " + g
              + ",\\qquad S = \\sum_s h_\\alpha(u_s, a_{sc}, \\alpha)$$", "",
              "$$H\\big[(i,c),(j,c')\\big] = \\langle x_i, x_j\\rangle\\,\\langle g_{ic}, g_{jc'}\\rangle,\\qquad "
              "H = (X X^\\top \\otimes \\mathbf 1 \\mathbf 1^\\top) \\circ (G G^\\top)$$", "",
              "Cost $O(n^2 c^2 (d + m))$ instead of $O(n^2 c^2 d m)$ for a Jacobian contraction.  "
              "The gradient of $\\tfrac12\\sum_i \\|F(W, x_i) - y_i\\|^2$ is $X^\\top \\Gamma$ with "
              "$\\Gamma_i = g(u_i; a \\to a r_i)$, $r_i = F(W, x_i) - y_i$ ($h$ is linear in $a$).", ""]
    if f.normalized:
        lines += ["The normalizer couples the neurons only through the scalar $S$; without it "
                  "(ReLU, exp) $g_r = h_u(u_r)$ is elementwise, and the NTK has the same Hadamard form.", ""]
    if spec.shift_invariant:
        lines += ["Kernels evaluate at $u - \\max_r u_r$ (proven shift invariant below), so exponentials "
                  "never overflow.", ""]
    lines += ["## Proven exactly (SymPy, brute-force derivative in every entry of W)", ""]
    lines += [f"- {c}" for c in claims]
    return "\n".join(lines) + "\n"
