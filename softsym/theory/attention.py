"""Derived bounds of the attention family: evaluation, the certified region, adversarial certification.

The bounds are derived symbolically by ``softsym.derive.bounds.attention`` and emitted into
``generated/<name>_bounds.py``; :func:`attention_bounds` evaluates them and adds the
regularizers.  :func:`region_certificate` decides, from computable norms of a problem, whether
the reduced function phi(X) = min_Y L(X, Y) is strongly convex on a ball that holds every
minimizer (then a stationary point in that ball is the global minimizer).
:func:`certify_attention` tries to break the bounds by adversarial search over the region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from types import ModuleType

import numpy as np
from scipy.optimize import minimize as _scipy_minimize

from .._validate import count, positive
from ..errors import OverflowDetected, ValidationError
from ..problems.attention import AttentionRegression
from ..registry import generated_module, member
from .evaluate import evaluate

QUANTITIES = ("smooth_x", "C_x", "M_x", "smooth_y", "cross", "cross_res")
#: what certify_attention searches: the emitted quantities plus the reduced-function deficit C_phi
SEARCHED = ("smooth_x", "C_x", "M_x", "smooth_y", "cross", "C_phi")


@cache
def attention_bounds_module(name: str = "attention") -> ModuleType:
    """The generated bounds module of attention member ``name``."""
    return generated_module(member(name, family="attention"), "_bounds")


@dataclass(frozen=True)
class AttentionBounds:
    """Derived bounds of one attention member on the region
    ``||A_i||_2 <= R_A, ||X||_F <= R_X, ||Y||_F <= R_Y, ||B||_F <= R_B`` (n rows).

    ``smooth_x``, ``C_x``, ``M_x``, ``smooth_y``, ``cross``, ``cross_res``: the emitted
    quantities (regularizers excluded; see ``MEANING``).  With the regularizers:
    ``lmin_x = 2 reg_x - C_x`` (hess_x L >= lmin_x I), ``C_phi = C_x + cross_res^2 / (2 reg_y)``
    and ``lmin_phi = 2 reg_x - C_phi`` (hess phi >= lmin_phi I; -inf without reg_y),
    ``smooth_phi`` (||hess phi||).  ``math.inf`` means no finite bound.
    """

    name: str
    R_A: float
    R_X: float
    R_Y: float
    R_B: float
    n: int
    reg_x: float
    reg_y: float
    smooth_x: float
    C_x: float
    M_x: float
    smooth_y: float
    cross: float
    cross_res: float
    assumptions: str

    @property
    def C_phi(self) -> float:
        if self.cross_res == 0:
            return self.C_x
        return self.C_x + self.cross_res**2 / (2 * self.reg_y) if self.reg_y > 0 else math.inf

    @property
    def lmin_x(self) -> float:
        return 2 * self.reg_x - self.C_x

    @property
    def lmin_phi(self) -> float:
        return 2 * self.reg_x - self.C_phi

    @property
    def smooth_phi(self) -> float:
        return max(self.smooth_x + 2 * self.reg_x, self.C_phi - 2 * self.reg_x)

    def reg_x_threshold(self, l: float = 0.0, reduced: bool = False) -> float:
        """Smallest ``reg_x`` with hess_x L >= l I (``reduced``: hess phi >= l I) on this region."""
        l = positive("l", l, allow_zero=True)
        return ((self.C_phi if reduced else self.C_x) + l) / 2

    def as_dict(self) -> dict[str, float]:
        out = {q: getattr(self, q) for q in QUANTITIES}
        out.update(C_phi=self.C_phi, lmin_x=self.lmin_x, lmin_phi=self.lmin_phi, smooth_phi=self.smooth_phi,
                   reg_x_threshold=self.reg_x_threshold(), reg_x_threshold_phi=self.reg_x_threshold(reduced=True))
        return out


def attention_bounds(name: str = "attention", R_A: float = 1.0, R_X: float = 1.0, R_Y: float = 1.0,
                     R_B: float = 1.0, n: int = 2, reg_x: float = 0.0, reg_y: float = 0.0) -> AttentionBounds:
    """Evaluate the derived bounds of attention member ``name`` on the region given by the radii."""
    mod = attention_bounds_module(name)
    R_A, R_X, R_Y, R_B = (positive(k, v, allow_zero=True) for k, v in
                          (("R_A", R_A), ("R_X", R_X), ("R_Y", R_Y), ("R_B", R_B)))
    n = count("n", n, 1)
    reg_x = positive("reg_x", reg_x, allow_zero=True)
    reg_y = positive("reg_y", reg_y, allow_zero=True)
    vals = {q: evaluate(mod.FUNCTIONS[q], R_A, R_X, R_Y, R_B, n) for q in QUANTITIES}
    return AttentionBounds(name=mod.NAME, R_A=R_A, R_X=R_X, R_Y=R_Y, R_B=R_B, n=n, reg_x=reg_x, reg_y=reg_y,
                           assumptions=mod.ASSUMPTIONS, **vals)


# ---------------------------------------------------------------------------------------------
# The certified region of a problem


def data_norms(prob: AttentionRegression) -> dict[str, float]:
    """``R_A = max_i ||A_i||_2`` and ``R_B = ||B||_F`` of a problem (scaled: no overflow in the squares)."""
    R_A = max(_scaled_norm(M, 2) for M in (prob.A1, prob.A2, prob.A3))
    return {"R_A": R_A, "R_B": _scaled_norm(prob.B, "fro"), "n": prob.n}


def _scaled_norm(M: np.ndarray, order) -> float:
    """``||M||`` computed on ``M / max |M_ij|``: finite for every finite ``M`` whose norm is representable."""
    s = float(np.max(np.abs(M)))
    return 0.0 if s == 0.0 else s * float(np.linalg.norm(M / s, order))


def region_certificate(prob: AttentionRegression, name: str = "attention") -> dict:
    """Whether the derived bounds certify a global guarantee for ``prob``.

    With ``reg_x, reg_y > 0`` every minimizer lies in ``{L <= L(0, 0) = ||B||_F^2}``, hence in
    ``||X||_F <= R_X = ||B||_F / sqrt(reg_x)``; for such X, ``||Y*(X)||_F <= R_Y =
    sqrt(2) ||B||_F / sqrt(reg_y)`` (since ``L(X, Y*(X)) <= L(X, 0) <= 2 ||B||_F^2``).  If the
    derived ``lmin_phi > 0`` on that region, phi is strongly convex on the ball: its one
    stationary point there is the global minimizer of L.  Returns a dict with
    ``certified`` (bool), ``lmin_phi``, the radii, and ``reason``.
    """
    norms = data_norms(prob)
    if prob.reg_x <= 0 or prob.reg_y <= 0:
        return {"certified": False, "reason": "needs reg_x > 0 and reg_y > 0 (the region is a sublevel set)",
                **norms}
    R_X = norms["R_B"] / math.sqrt(prob.reg_x)
    R_Y = math.sqrt(2.0) * norms["R_B"] / math.sqrt(prob.reg_y)
    b = attention_bounds(name, norms["R_A"], R_X, R_Y, norms["R_B"], prob.n, prob.reg_x, prob.reg_y)
    ok = b.lmin_phi > 0
    return {"certified": bool(ok), "lmin_phi": b.lmin_phi, "R_X": R_X, "R_Y": R_Y, **norms,
            "reason": ("derived hess phi >= lmin_phi I > 0 on ||X||_F <= R_X, which holds every minimizer" if ok
                       else f"derived lower bound lmin_phi = {b.lmin_phi:.3g} is not positive on the region")}


def certified_reg_x(A1, A2, A3, B, reg_y: float, l: float = 0.0, name: str = "attention") -> float:
    """Smallest ``reg_x`` (to 1e-6 relative, by bisection) at which :func:`region_certificate`
    certifies the data with this ``reg_y`` and ``lmin_phi >= l``; ``math.inf`` if none up to 1e12."""
    reg_y = positive("reg_y", reg_y)
    probe = AttentionRegression(A1, A2, A3, B, reg_x=1.0, reg_y=reg_y)
    norms = data_norms(probe)

    def margin(rx: float) -> float:
        R_X = norms["R_B"] / math.sqrt(rx)
        R_Y = math.sqrt(2.0) * norms["R_B"] / math.sqrt(reg_y)
        return attention_bounds(name, norms["R_A"], R_X, R_Y, norms["R_B"], norms["n"], rx, reg_y).lmin_phi - l

    lo, hi = 1e-12, 1.0
    while margin(hi) <= 0:
        lo, hi = hi, hi * 10
        if hi > 1e12:
            return math.inf
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if margin(mid) > 0 else (mid, hi)
        if hi / lo < 1 + 1e-6:
            break
    return hi


# ---------------------------------------------------------------------------------------------
# Adversarial certification


def _proj_spec(M: np.ndarray, r: float) -> np.ndarray:
    s = float(np.linalg.norm(M, 2))
    return M if s <= r else M * (r / s)


def _proj_fro(M: np.ndarray, r: float) -> np.ndarray:
    s = float(np.linalg.norm(M))
    return M if s <= r else M * (r / s)


class AttentionSearch:
    """One search problem: an unconstrained vector -> a point of the region -> the searched value."""

    def __init__(self, quantity: str, R: float, n: int, d: int, reg_y: float, min_gap: float = 1e-4):
        self.q, self.R, self.n, self.d, self.reg_y, self.min_gap = quantity, R, n, d, reg_y, min_gap
        nd, dd = n * d, d * d
        self.sizes = [nd, nd, nd, nd, dd, dd, dd]  # A1 A2 A3 B X Y D

    def point(self, z: np.ndarray):
        out, i = [], 0
        for s in self.sizes:
            out.append(z[i:i + s])
            i += s
        n, d, R = self.n, self.d, self.R
        A1, A2, A3 = (_proj_spec(v.reshape(n, d), R) for v in out[:3])
        B = _proj_fro(out[3].reshape(n, d), R)
        X, Y = (_proj_fro(v.reshape(d, d), R) for v in out[4:6])
        D = out[6].reshape(d, d)
        D = D / max(float(np.linalg.norm(D)), 1e-300)
        return A1, A2, A3, B, X, Y, D

    def value(self, z: np.ndarray) -> float:
        A1, A2, A3, B, X, Y, D = self.point(z)
        if self.q == "C_phi":
            prob = AttentionRegression(A1, A2, A3, B, reg_x=0.0, reg_y=self.reg_y)
            ev = np.linalg.eigvalsh(prob.reduced_hess_x(X, Y))
            return max(0.0, -float(ev[0]))
        prob = AttentionRegression(A1, A2, A3, B)
        if self.q in ("smooth_x", "C_x"):
            ev = np.linalg.eigvalsh(prob.hess_x(X, Y))
            return float(np.max(np.abs(ev))) if self.q == "smooth_x" else max(0.0, -float(ev[0]))
        if self.q == "smooth_y":
            return float(np.linalg.eigvalsh(prob.hess_y_block(X))[-1])
        if self.q == "cross":
            return float(np.linalg.norm(prob.hess_xy(X, Y), 2))
        # M_x: a pair X, X' = X + t D inside the ball (the Lipschitz ratio is a local supremum)
        t = self.min_gap * self.R
        X2 = _proj_fro(X + t * D, self.R)
        gap = float(np.linalg.norm(X2 - X))
        if gap < 0.5 * t:
            X2 = _proj_fro(X - t * D, self.R)
            gap = float(np.linalg.norm(X2 - X))
        if gap == 0:
            return 0.0
        H1 = prob.hess_x(X, Y)
        H2 = AttentionRegression(A1, A2, A3, B).hess_x(X2, Y)
        return float(np.linalg.norm(H1 - H2, 2)) / gap

    def safe_value(self, z: np.ndarray) -> float:
        try:
            return self.value(z)
        except OverflowDetected:
            return 0.0

    def start(self, rng: np.random.Generator) -> np.ndarray:
        z = []
        for s in self.sizes:
            v = rng.standard_normal(s)
            scale = self.R * (1.0 if rng.random() < 0.7 else 10.0 ** (-rng.random()))
            z.append(v * scale / max(float(np.linalg.norm(v)), 1e-12))
        # spectral projection of the A's at radius R leaves them on the boundary; scale up so they are
        return np.concatenate(z) * 3.0


@dataclass(frozen=True)
class AttentionCertRow:
    quantity: str
    R: float
    n: int
    d: int
    bound: float
    worst: float
    tightness: float
    violated: bool


@dataclass(frozen=True)
class AttentionCertificate:
    """Result of :func:`certify_attention`."""

    name: str
    reg_y: float
    seed: int
    restarts: int
    maxfev: int
    rows: tuple[AttentionCertRow, ...]

    @property
    def violations(self) -> list[AttentionCertRow]:
        return [r for r in self.rows if r.violated]

    def table(self) -> str:
        lines = ["| quantity | R | n | d | bound | worst found | tightness |", "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            tight = "inf" if math.isinf(r.tightness) else f"{r.tightness:.3g}"
            flag = " **VIOLATED**" if r.violated else ""
            lines.append(f"| {r.quantity} | {r.R:g} | {r.n} | {r.d} | {r.bound:.4g} | {r.worst:.4g} | {tight}{flag} |")
        return "\n".join(lines)


def certify_attention(name: str = "attention", R=(1.0, 2.0), n=(2, 4), d: int = 2, reg_y: float = 1.0,
                      quantities=SEARCHED, seed: int = 0, restarts: int = 3, maxfev: int = 400,
                      rtol: float = 1e-7, scale: float = 1.0) -> AttentionCertificate:
    """Try to break the derived bounds by adversarial search (all radii equal to ``R``).

    For each quantity, ``R`` and ``n``: ``restarts`` seeded starts (each the best of 16 random
    draws) refined by Powell's method (at most ``maxfev`` evaluations) maximizing, over
    ``A1, A2, A3`` (spectral norm <= R), ``B, X, Y`` (Frobenius norm <= R) and a unit direction
    ``D``, the quantity the bound dominates, computed with the generated kernels (``hess_x``,
    ``hess_y_block``, ``hess_xy``, ``reduced_hess_x``).  ``C_phi`` (the deficit of the reduced
    Hessian) is searched at ``reg_x = 0`` and the given ``reg_y``.  ``scale`` multiplies the bound
    (``scale=0.5`` is the test that a halved bound is caught).  A cell is violated when the
    worst value exceeds ``scale * bound (1 + rtol)``.
    """
    Rs = tuple(positive("R", r) for r in np.atleast_1d(R))
    ns = tuple(count("n", int(m), 1) for m in np.atleast_1d(n))
    d = count("d", d, 1)
    reg_y = positive("reg_y", reg_y)
    restarts, maxfev, seed = count("restarts", restarts, 1), count("maxfev", maxfev, 1), count("seed", seed)
    bad = [q for q in quantities if q not in SEARCHED]
    if bad:
        raise ValidationError(f"unknown quantities {bad}; choose from {SEARCHED}")
    rows = []
    for q in quantities:
        for ri, r in enumerate(Rs):
            for ni, m in enumerate(ns):
                b = attention_bounds(name, r, r, r, r, m, 0.0, reg_y)
                bound = scale * (b.C_phi if q == "C_phi" else getattr(b, q))
                prob = AttentionSearch(q, r, m, d, reg_y)
                rng = np.random.default_rng([seed, SEARCHED.index(q), ri, ni])
                worst = 0.0
                for _ in range(restarts):
                    draws = [prob.start(rng) for _ in range(16)]
                    z0 = max(draws, key=prob.safe_value)
                    res = _scipy_minimize(lambda z: -prob.safe_value(z), z0, method="Powell",
                                          options={"maxfev": maxfev, "xtol": 1e-6, "ftol": 1e-9})
                    worst = max(worst, prob.safe_value(z0), prob.safe_value(res.x))
                tight = bound / worst if worst > 0 else math.inf
                rows.append(AttentionCertRow(q, r, m, d, float(bound), float(worst), float(tight),
                                             bool(worst > bound * (1 + rtol))))
    return AttentionCertificate(name=name, reg_y=reg_y, seed=seed, restarts=restarts, maxfev=maxfev,
                                rows=tuple(rows))


def attention_guarantee(prob: AttentionRegression, res) -> dict:
    """What is known about a solver result ``res`` of ``prob``: ``guarantee`` is ``"global"`` when
    the run converged to a minimum (``res.is_minimum``), :func:`region_certificate` certifies the
    problem and ``||X||_F <= R_X`` (the unique stationary point of the strongly convex phi on the
    ball, hence the global minimizer); ``"local"`` for a minimum without that certificate;
    ``"none"`` otherwise (not converged, or not a minimum)."""
    cert = region_certificate(prob)
    X = res.get("X")
    inside = bool(cert["certified"]) and X is not None and float(np.linalg.norm(X)) <= cert.get("R_X", 0.0)
    is_min = bool(res.get("is_minimum", False)) and bool(res.get("success", False))
    guarantee = "global" if is_min and inside else ("local" if is_min else "none")
    return {"guarantee": guarantee, "certificate": cert}
