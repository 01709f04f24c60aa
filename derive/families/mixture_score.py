"""Score of a Gaussian mixture (paper 004's diffusion application): derivation, proof, emission.

A mixture with isotropic components factorizes per coordinate: with the per-coordinate
log-density ``q(x, mu, v)`` of a component,

    log p(x) = log sum_k w_k exp(ell_k(x)),   ell_k(x) = sum_j q(x_j, mu_kj, v_k)
    d log p / d x_j = sum_k r_k(x) q_x(x_j, mu_kj, v_k),   r = softmax_k(log w_k + ell_k(x))

(the score is a softmax-weighted sum).  ``q_x`` comes from ``sympy.diff``; the prover checks
the score against brute-force differentiation of ``log p`` and that ``exp(q)`` integrates
to 1.  Under the Ornstein-Uhlenbeck process the mixture stays a mixture (means ``e^-t mu``,
variances ``e^-2t s^2 + 1 - e^-2t``); the runtime (``softsym.problems.mixture_score``) maps the
parameters and calls these kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .. import codegen
from ..proof import ProofLog
from ..spec import NAME_PATTERN, SpecError, fingerprint_of

x, mu = sp.symbols("x mu", real=True)
v = sp.Symbol("v", positive=True)

PROOF_SIZE = (2, 2)  # (components K, dimension d)


@dataclass(frozen=True)
class MixtureScoreSpec:
    """A mixture whose components have the per-coordinate log-density ``q(x, mu, v)``."""

    name: str
    doc: str
    paper: str
    q: sp.Expr

    family = "mixture_score"

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise SpecError(f"spec name {self.name!r} must match {NAME_PATTERN.pattern}")
        extra = set(sp.sympify(self.q).free_symbols) - {x, mu, v}
        if extra:
            raise SpecError(f"spec {self.name!r}: q uses unknown symbols {sorted(map(str, extra))}")

    def fingerprint(self) -> str:
        return fingerprint_of(self.family, self.name, self.doc, self.paper, self.q)


@dataclass(frozen=True)
class MixtureScoreFormulas:
    spec: MixtureScoreSpec
    q: sp.Expr
    q_x: sp.Expr


def derive(spec: MixtureScoreSpec) -> MixtureScoreFormulas:
    q = sp.sympify(spec.q)
    return MixtureScoreFormulas(spec=spec, q=q, q_x=sp.diff(q, x))


def prove(f: MixtureScoreFormulas) -> list[str]:
    """Exact checks: ``exp(q)`` is a density in x; the structured score equals d log p / dx."""
    log = ProofLog()
    log.require("exp(q(x, mu, v)) integrates to 1 over x", sp.integrate(sp.exp(f.q), (x, -sp.oo, sp.oo)) - 1)
    K, d = PROOF_SIZE
    xs = sp.symbols(f"x_0:{d}", real=True)
    ws = sp.symbols(f"w_0:{K}", positive=True)
    vs = sp.symbols(f"v_0:{K}", positive=True)
    mus = [[sp.Symbol(f"mu_{k}{j}", real=True) for j in range(d)] for k in range(K)]

    def ell(k):
        return sum(f.q.xreplace({x: xs[j], mu: mus[k][j], v: vs[k]}) for j in range(d))

    logp = sp.log(sum(ws[k] * sp.exp(ell(k)) for k in range(K)))
    terms = [sp.log(ws[k]) + ell(k) for k in range(K)]
    r = [sp.exp(t) / sum(sp.exp(s) for s in terms) for t in terms]
    log.require_all(f"d log p / d x_j = sum_k softmax_k(log w_k + ell_k) q_x(x_j, mu_kj, v_k) (K={K}, d={d})",
                    [sp.diff(logp, xs[j]) - sum(r[k] * f.q_x.xreplace({x: xs[j], mu: mus[k][j], v: vs[k]})
                                                for k in range(K)) for j in range(d)])
    return log.claims


_NAMES = {x: "xj", mu: "mj", v: "vk"}


def emit_module(f: MixtureScoreFormulas, spec_hash: str) -> str:
    """Source of the Numba kernel module for one member (template ``mixture_score``)."""
    spec = f.spec
    return codegen.render("mixture_score", HEADER=codegen.HEADER, NAME=spec.name, DOC=spec.doc, PAPER=spec.paper,
                          SPEC_HASH=spec_hash, q_code=codegen.code_block([("q", f.q)], _NAMES, indent=0),
                          qx_code=codegen.code_block([("qx", f.q_x)], _NAMES, indent=0))


def emit_page(f: MixtureScoreFormulas, claims: list[str], spec_hash: str) -> str:
    spec = f.spec
    names = {mu: "\\mu", v: "v"}
    lines = [f"<!-- {codegen.HEADER} -->", f"# `{spec.name}`", "", spec.doc + ".", "",
             f"Paper: {spec.paper}. Family: mixture score. Spec hash: `{spec_hash[:16]}`.", "",
             "$$\\log p(x) = \\log \\sum_k w_k e^{\\ell_k(x)},\\quad \\ell_k(x) = \\sum_j q(x_j, \\mu_{kj}, v_k),"
             "\\quad \\partial_{x_j} \\log p = \\sum_k r_k\\, q_x(x_j, \\mu_{kj}, v_k),\\quad "
             "r = \\operatorname{softmax}_k(\\log w_k + \\ell_k)$$", "",
             "| quantity | expression |", "|---|---|",
             f"| $q(x, \\mu, v)$ | ${codegen.latex(f.q, names)}$ |",
             f"| $q_x$ | ${codegen.latex(f.q_x, names)}$ |", "",
             "## Proven exactly (SymPy)", ""]
    lines += [f"- {c}" for c in claims]
    return "\n".join(lines) + "\n"
