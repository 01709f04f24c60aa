"""Derived bounds: evaluation, adversarial certification, and the Newton start condition.

The bounds themselves are derived symbolically by ``softsym.derive.bounds`` (interval and
norm propagation over each member's derived Hessian structure) and emitted as plain-Python
evaluators into ``generated/<name>_bounds.py``.  This module evaluates them
(:func:`bounds`), tries to break them by adversarial search (:func:`certify`), and decides
whether a solver run starts inside the region where the Newton convergence theory applies
(:func:`start_condition`).

Every number in the search comes from the objectives' generated kernels
(``softsym.objective(...).hess`` / ``.jac``); no derivative formula is typed here.
"""

from __future__ import annotations

import importlib
import math
import pathlib
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType

import numpy as np
from scipy.optimize import minimize as _scipy_minimize

from ._validate import count, positive
from .errors import ValidationError
from .objective import Objective, member

QUANTITIES = ("C", "smooth", "M", "G_A", "G_b")
REGIONS = ("ball", "simplex")


@cache
def _module(name: str) -> ModuleType:
    info = member(name, family="normalized")
    mod = importlib.import_module(f"softsym.kernels.{info.name}_bounds")
    if mod.SPEC_HASH != info.spec_hash:
        raise RuntimeError(f"generated bounds module of {name} does not match the manifest; run `make generate`")
    return mod


@dataclass(frozen=True)
class Bounds:
    """Derived bounds of one member at given region parameters.

    ``C``: ``B(Ax) >= -C I`` for the u-space Hessian without regularizer, so
    ``w_min^2 >= C + l / sigma_min(A)^2`` implies ``hess L >= l I``.  ``smooth``: gradient
    Lipschitz constant.  ``M``: Hessian Lipschitz constant.  ``G_A``, ``G_b``: Lipschitz
    constants of ``grad L`` in ``A`` (spectral norm) and ``b``.  ``math.inf`` means the
    rules gave no finite bound (see ``finite``).
    """

    name: str
    region: str
    R: float
    n: int
    b_norm: float
    w_max: float
    l: float | None
    C: float
    smooth: float
    M: float
    G_A: float
    G_b: float
    assumptions: str
    finite: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        return {q: getattr(self, q) for q in QUANTITIES}

    def w_required(self, sigma_min: float) -> float:
        """Smallest uniform regularizer weight w with ``w^2 >= C + l / sigma_min^2`` (needs ``l``)."""
        if self.l is None:
            raise ValidationError("w_required needs the bounds evaluated with l=...")
        sigma_min = positive("sigma_min", sigma_min)
        return math.sqrt(self.C + self.l / sigma_min**2)

    def perturbation(self, dA: float, db: float) -> float:
        """Bound on ``||x*(A,b) - x*(A',b')||`` for ``||A - A'|| <= dA``, ``||b - b'|| <= db`` (needs ``l``)."""
        if self.l is None:
            raise ValidationError("perturbation needs the bounds evaluated with l=...")
        dA = positive("dA", dA, allow_zero=True)
        db = positive("db", db, allow_zero=True)
        return (self.G_A * dA + self.G_b * db) / self.l


def _call(fn, *args) -> float:
    try:
        v = float(fn(*args))
    except (OverflowError, ZeroDivisionError):
        return math.inf
    return v if math.isfinite(v) else math.inf


def bounds(name: str, R: float = 1.0, n: int = 2, b_norm: float = 1.0, w_max: float = 0.0,
           l: float | None = None, region: str = "ball") -> Bounds:
    """Evaluate the derived bounds of member ``name``.

    Region: ``||A||_2 <= R``, ``||x||_2 <= R``, ``n`` rows, ``0 <= w_i <= w_max`` and
    ``||b||_2 <= b_norm`` (``region="ball"``) or ``b`` on the probability simplex
    (``region="simplex"``, ``b_norm`` ignored).  ``l`` (optional) is the strong-convexity
    constant used by :meth:`Bounds.w_required` and :meth:`Bounds.perturbation`.
    """
    mod = _module(name)
    if region not in REGIONS:
        raise ValidationError(f"region must be one of {REGIONS}, got {region!r}")
    R = positive("R", R)
    n = count("n", n, 1)
    b_norm = positive("b_norm", b_norm)
    w_max = positive("w_max", w_max, allow_zero=True)
    l = None if l is None else positive("l", l)
    args = (R, n, b_norm, w_max) if region == "ball" else (R, n, w_max)
    vals = {q: _call(mod.FUNCTIONS[(region, q)], *args) for q in QUANTITIES}
    return Bounds(name=mod.NAME, region=region, R=R, n=n, b_norm=b_norm if region == "ball" else 1.0,
                  w_max=w_max, l=l, assumptions=mod.ASSUMPTIONS[region],
                  finite={q: bool(mod.FINITE[(region, q)]) for q in QUANTITIES}, **vals)


# ----------------------------------------------------------------------------------------
# Adversarial certification

def _to_ball(z: np.ndarray, r: float) -> np.ndarray:
    nz = float(np.linalg.norm(z))
    return z if nz <= r else z * (r / nz)


def _to_simplex(z: np.ndarray) -> np.ndarray:
    """Euclidean projection onto the probability simplex."""
    s = np.sort(z)[::-1]
    css = np.cumsum(s) - 1.0
    idx = np.arange(1, z.size + 1)
    rho = int(np.nonzero(s - css / idx > 0)[0][-1])
    return np.maximum(z - css[rho] / (rho + 1.0), 0.0)


def _to_spectral_ball(Z: np.ndarray, r: float) -> np.ndarray:
    s = float(np.linalg.norm(Z, 2))
    return Z if s <= r else Z * (r / s)


class _Problem:
    """One search problem: maps an unconstrained vector to a point of the region and a ratio."""

    def __init__(self, name: str, quantity: str, region: str, R: float, n: int, b_norm: float):
        self.name, self.q, self.region, self.R, self.n, self.b_norm = name, quantity, region, R, n, b_norm
        self.d = min(n, 3)
        self.eye = np.eye(n)
        self.zero_w = np.zeros(n)
        nd = n * self.d
        sizes = {"C": [n, n], "smooth": [n, n], "M": [n, n, n], "G_A": [nd, nd, self.d, n],
                 "G_b": [nd, self.d, n, n]}[quantity]
        self.sizes = sizes
        self.dim = sum(sizes)
        self.min_gap = 1e-3

    def _b(self, z: np.ndarray) -> np.ndarray:
        return _to_simplex(z) if self.region == "simplex" else _to_ball(z, self.b_norm)

    def _split(self, z: np.ndarray) -> list[np.ndarray]:
        out, i = [], 0
        for s in self.sizes:
            out.append(z[i:i + s])
            i += s
        return out

    def _hess_u(self, u: np.ndarray, b: np.ndarray) -> np.ndarray:
        # With A = I the Hessian in x is the u-space matrix B(u) (regularizer w = 0).
        return Objective(self.name, self.eye, b, self.zero_w).hess(u)

    def _apart(self, a: np.ndarray, c: np.ndarray, r: float) -> np.ndarray:
        """c moved (inside the radius-r ball) to at least min_gap * r away from a."""
        diff = c - a
        nd = float(np.linalg.norm(diff))
        gap = self.min_gap * r
        if nd >= gap:
            return c
        direction = diff / nd if nd > 0 else np.eye(a.size)[0]
        c = a + gap * direction
        if np.linalg.norm(c) > r:
            c = a - gap * direction
        return c

    def value(self, z: np.ndarray) -> float:
        """The quantity the bound claims to dominate, at the point encoded by ``z``."""
        R, U = self.R, self.R**2
        parts = self._split(z)
        if self.q in ("C", "smooth"):
            u, b = _to_ball(parts[0], U), self._b(parts[1])
            ev = np.linalg.eigvalsh(self._hess_u(u, b))
            # realized by A = R I, x = u / R: hess L = R^2 B(u)
            return max(0.0, -float(ev[0])) if self.q == "C" else R**2 * float(np.max(np.abs(ev)))
        if self.q == "M":
            u = _to_ball(parts[0], U)
            v = self._apart(u, _to_ball(parts[1], U), U)
            b = self._b(parts[2])
            dB = self._hess_u(u, b) - self._hess_u(v, b)
            # realized by A = R I: ||hess L(x) - hess L(y)|| / ||x - y|| = R^3 ||dB|| / ||u - v||
            return R**3 * float(np.linalg.norm(dB, 2)) / float(np.linalg.norm(u - v))
        n, d = self.n, self.d
        if self.q == "G_A":
            A = _to_spectral_ball(parts[0].reshape(n, d), R)
            A2 = _to_spectral_ball(parts[1].reshape(n, d), R)
            x, b = _to_ball(parts[2], R), self._b(parts[3])
            gap = float(np.linalg.norm(A - A2, 2))
            if gap < self.min_gap * R:
                return 0.0
            g1 = Objective(self.name, A, b, self.zero_w).jac(x)
            g2 = Objective(self.name, A2, b, self.zero_w).jac(x)
            return float(np.linalg.norm(g1 - g2)) / gap
        A = _to_spectral_ball(parts[0].reshape(n, d), R)
        x, b, b2 = _to_ball(parts[1], R), self._b(parts[2]), self._b(parts[3])
        gap = float(np.linalg.norm(b - b2))
        if gap < self.min_gap * max(self.b_norm, 1e-300):
            return 0.0
        g1 = Objective(self.name, A, b, self.zero_w).jac(x)
        g2 = Objective(self.name, A, b2, self.zero_w).jac(x)
        return float(np.linalg.norm(g1 - g2)) / gap

    def start(self, rng: np.random.Generator) -> np.ndarray:
        """A random start: each block Gaussian, scaled into or onto its region."""
        z = []
        for s in self.sizes:
            v = rng.standard_normal(s)
            z.append(v * (self.R**2 if rng.random() < 0.5 else self.R**2 * rng.random()) / max(np.linalg.norm(v), 1e-12))
        return np.concatenate(z)


@dataclass(frozen=True)
class CertRow:
    """One (quantity, R, n) cell of a certification: bound, worst value found, tightness."""

    quantity: str
    R: float
    n: int
    bound: float
    worst: float
    tightness: float
    violated: bool


@dataclass(frozen=True)
class Certificate:
    """Result of :func:`certify`."""

    name: str
    region: str
    b_norm: float
    seed: int
    restarts: int
    maxfev: int
    assumptions: str
    rows: tuple[CertRow, ...]

    @property
    def violations(self) -> list[CertRow]:
        return [r for r in self.rows if r.violated]

    def row(self, quantity: str, R: float, n: int) -> CertRow:
        for r in self.rows:
            if r.quantity == quantity and r.R == R and r.n == n:
                return r
        raise KeyError((quantity, R, n))

    def table(self) -> str:
        """Markdown table: quantity, R, n, bound, worst found, tightness."""
        lines = ["| quantity | R | n | bound | worst found | tightness |", "|---|---|---|---|---|---|"]
        for r in self.rows:
            tight = "inf" if math.isinf(r.tightness) else f"{r.tightness:.3g}"
            flag = " **VIOLATED**" if r.violated else ""
            lines.append(f"| {r.quantity} | {r.R:g} | {r.n} | {r.bound:.4g} | {r.worst:.4g} | {tight}{flag} |")
        return "\n".join(lines)


def certify(name: str, R=(1.0, 2.0, 4.0), n=(2, 3, 5), b_norm: float = 1.0, region: str = "ball",
            quantities=QUANTITIES, seed: int = 0, restarts: int = 6, maxfev: int = 300,
            rtol: float = 1e-9) -> Certificate:
    """Try to break the derived bounds of ``name`` by adversarial search.

    For each quantity, each ``R`` and each ``n``: ``restarts`` random starts (seeded), each
    refined by Powell's method (at most ``maxfev`` evaluations) maximizing the quantity the
    bound claims to dominate over points of the assumed region (``x``, ``A``, ``b``; for
    ``C``, ``smooth`` and ``M`` the search runs over ``u = Ax`` in the ball of radius
    ``R^2``, realized by ``A = R I``).  Regularizer ``w = 0`` (bounds at ``w_max = 0``).
    A cell is *violated* when the worst value found exceeds the bound by more than the
    relative rounding allowance ``rtol``.  Same seed, same result.
    """
    Rs = tuple(positive("R", r) for r in np.atleast_1d(R))
    ns = tuple(count("n", int(m), 1) for m in np.atleast_1d(n))
    b_norm = positive("b_norm", b_norm)
    restarts, maxfev = count("restarts", restarts, 1), count("maxfev", maxfev, 1)
    seed = count("seed", seed)
    bad = [q for q in quantities if q not in QUANTITIES]
    if bad:
        raise ValidationError(f"unknown quantities {bad}; choose from {QUANTITIES}")
    rows = []
    for qi, q in enumerate(quantities):
        for ri, r in enumerate(Rs):
            for ni, m in enumerate(ns):
                bound = getattr(bounds(name, R=r, n=m, b_norm=b_norm, region=region), q)
                prob = _Problem(name, q, region, r, m, b_norm)
                rng = np.random.default_rng([seed, QUANTITIES.index(q), ri, ni])
                worst = 0.0
                for _ in range(restarts):
                    z0 = prob.start(rng)
                    res = _scipy_minimize(lambda z: -prob.value(z), z0, method="Powell",
                                          options={"maxfev": maxfev, "xtol": 1e-7, "ftol": 1e-10})
                    worst = max(worst, prob.value(z0), prob.value(res.x))
                tight = bound / worst if worst > 0 else math.inf
                violated = worst > bound * (1 + rtol) + 1e-300
                rows.append(CertRow(q, r, m, bound, worst, tight, bool(violated)))
        del qi
    return Certificate(name=member(name).name, region=region, b_norm=b_norm, seed=seed, restarts=restarts,
                       maxfev=maxfev, assumptions=_module(name).ASSUMPTIONS[region], rows=tuple(rows))
