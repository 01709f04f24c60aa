"""Adversarial certification of the derived bounds: search for violations, report tightness.

Every number in the search comes from the members' generated kernels (``hess`` and ``grad``
of ``softsym.kernels.<name>``, the ones ``softsym.objective`` binds); no derivative formula
is typed here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize as _scipy_minimize

from .._validate import count, positive
from .._validate import seed as check_seed
from ..errors import OverflowDetected, ValidationError
from ..registry import kernels, member
from .bounds import QUANTITIES, bounds, bounds_module


def _finite(v: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(v)):
        raise OverflowDetected("non-finite kernel output during the bound search")
    return v


def _to_ball(z: np.ndarray, r: float) -> np.ndarray:
    nz = float(np.linalg.norm(z))
    return z if nz <= r else z * (r / nz)


def _to_simplex(z: np.ndarray) -> np.ndarray:
    """Euclidean projection onto the probability simplex."""
    if not np.all(np.isfinite(z)) or float(np.max(np.abs(z))) > 1e150:
        z = np.clip(np.nan_to_num(z), -1e150, 1e150)
        top = np.zeros_like(z)
        top[int(np.argmax(z))] = 1.0
        return top
    s = np.sort(z)[::-1]
    css = np.cumsum(s) - 1.0
    idx = np.arange(1, z.size + 1)
    pos = np.nonzero(s - css / idx > 0)[0]
    rho = int(pos[-1]) if pos.size else 0
    return np.maximum(z - css[rho] / (rho + 1.0), 0.0)


def _to_spectral_ball(Z: np.ndarray, r: float) -> np.ndarray:
    s = float(np.linalg.norm(Z, 2))
    return Z if s <= r else Z * (r / s)


class SearchProblem:
    """One search problem: maps an unconstrained vector to a point of the region and a ratio."""

    def __init__(self, name: str, quantity: str, region: str, R: float, n: int, b_norm: float,
                 R_x: float | None = None):
        self.name, self.q, self.region, self.n, self.b_norm = name, quantity, region, n, b_norm
        self.R_A, self.R_x = R, (R if R_x is None else R_x)
        self.d = min(n, 3)
        self.k = kernels(name)
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
        return _finite(self.k.hess(self.eye, b, self.zero_w, u))

    def _scale(self, u: np.ndarray, b: np.ndarray) -> float:
        """Size of the terms B is assembled from: max|beta| + 2 max|p| max|q| + |T| max|q|^2."""
        _, _, beta, p, q, T = self.k.pieces_u(u, b, self.zero_w)
        mq = float(np.max(np.abs(q)))
        return float(np.max(np.abs(beta)) + 2 * np.max(np.abs(p)) * mq + abs(T) * mq * mq)

    def _jac(self, A: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
        return _finite(self.k.grad(A, b, self.zero_w, x))

    def value(self, z: np.ndarray) -> float:
        """The quantity the bound claims to dominate, at the point encoded by ``z``."""
        R, Rx, U = self.R_A, self.R_x, self.R_A * self.R_x
        parts = self._split(z)
        if self.q in ("C", "smooth"):
            u, b = _to_ball(parts[0], U), self._b(parts[1])
            ev = np.linalg.eigvalsh(self._hess_u(u, b))
            # The computed B (sums of terms of size `scale`, then eigvalsh) is B + E with
            # ||E|| <~ n eps scale: count only what survives that rounding, so a value found is
            # a value of the true B.
            top = float(np.max(np.abs(ev)))
            err = 8.0 * self.n * np.finfo(float).eps * max(top, self._scale(u, b))
            # realized by A = R_A I, x = u / R_A: hess L = R_A^2 B(u)
            return max(0.0, -float(ev[0]) - err) if self.q == "C" else R**2 * max(0.0, top - err)
        if self.q == "M":
            # a pair u, v = u + t h at distance t = min_gap R_A R_x (the Lipschitz ratio is a local sup)
            u = _to_ball(parts[0], U)
            h = parts[1] / max(float(np.linalg.norm(parts[1])), 1e-300)
            v = _to_ball(u + self.min_gap * U * h, U)
            if float(np.linalg.norm(u - v)) < 0.5 * self.min_gap * U:
                v = _to_ball(u - self.min_gap * U * h, U)
            b = self._b(parts[2])
            if not np.any(u != v):    # n = 1 at the boundary: both steps project back onto u
                return 0.0
            dB = self._hess_u(u, b) - self._hess_u(v, b)
            # realized by A = R_A I: ||hess L(x) - hess L(y)|| / ||x - y|| = R_A^3 ||dB|| / ||u - v||
            return R**3 * float(np.linalg.norm(dB, 2)) / float(np.linalg.norm(u - v))
        n, d = self.n, self.d
        if self.q == "G_A":
            A = _to_spectral_ball(parts[0].reshape(n, d), R)
            A2 = _to_spectral_ball(parts[1].reshape(n, d), R)
            x, b = _to_ball(parts[2], Rx), self._b(parts[3])
            gap = float(np.linalg.norm(A - A2, 2))
            if gap < self.min_gap * R:
                return 0.0
            g1, g2 = self._jac(A, b, x), self._jac(A2, b, x)
            return float(np.linalg.norm(g1 - g2)) / gap
        A = _to_spectral_ball(parts[0].reshape(n, d), R)
        x, b, b2 = _to_ball(parts[1], Rx), self._b(parts[2]), self._b(parts[3])
        gap = float(np.linalg.norm(b - b2))
        if gap < self.min_gap * max(self.b_norm, 1e-300):
            return 0.0
        g1, g2 = self._jac(A, b, x), self._jac(A, b2, x)
        return float(np.linalg.norm(g1 - g2)) / gap

    def safe_value(self, z: np.ndarray) -> float:
        """``value``, with points where the kernels overflow counted as 0 (no witness)."""
        try:
            return self.value(z)
        except OverflowDetected:
            return 0.0

    def start(self, rng: np.random.Generator) -> np.ndarray:
        """A random start: each block Gaussian, scaled into or onto its region."""
        z = []
        for s in self.sizes:
            v = rng.standard_normal(s)
            scale = self.R_A * self.R_x * (1.0 if rng.random() < 0.5 else 10.0 ** (-2.0 * rng.random()))
            z.append(v * scale / max(float(np.linalg.norm(v)), 1e-12))
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
    R_x: float | None = None


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
        """The row of ``quantity`` at ``R_A = R`` and ``n``."""
        for r in self.rows:
            if r.quantity == quantity and r.R == R and r.n == n:
                return r
        raise KeyError((quantity, R, n))

    def table(self) -> str:
        """Markdown table: quantity, R, n, bound, worst found, tightness."""
        lines = ["| quantity | R_A | R_x | n | bound | worst found | tightness |", "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            tight = "inf" if math.isinf(r.tightness) else f"{r.tightness:.3g}"
            flag = " **VIOLATED**" if r.violated else ""
            rx = r.R if r.R_x is None else r.R_x
            lines.append(f"| {r.quantity} | {r.R:g} | {rx:g} | {r.n} | {r.bound:.4g} | {r.worst:.4g} | {tight}{flag} |")
        return "\n".join(lines)


_DRAWS = 16


def certify(name: str, R=(1.0, 2.0, 4.0), n=(2, 3, 5), b_norm: float = 1.0, region: str = "ball",
            quantities=QUANTITIES, seed: int = 0, restarts: int = 6, maxfev: int = 300,
            rtol: float = 1e-9, progress: Callable[[int, str, float, int], None] | None = None,
            R_x: float | None = None) -> Certificate:
    """Try to break the derived bounds of ``name`` by adversarial search.

    For each quantity, each ``R`` and each ``n``: ``restarts`` random starts (seeded; each the
    best of 16 random draws), each refined by Powell's method (at most ``maxfev`` evaluations) maximizing the quantity the
    bound claims to dominate over points of the assumed region (``x``, ``A``, ``b``; for
    ``C``, ``smooth`` and ``M`` the search runs over ``u = Ax`` in the ball of radius
    ``R R_x``, realized by ``A = R I``).  ``R`` is ``R_A`` (``||A||_2 <= R``); ``R_x`` (default:
    equal to ``R``) bounds ``||x||``.  Regularizer ``w = 0`` (bounds at ``w_max = 0``).
    A cell is *violated* when the worst value found exceeds the bound by more than the
    relative rounding allowance ``rtol``.  Same seed, same result.  ``progress(i, quantity, R, n)``
    is called before cell ``i`` (0-based) is searched.
    """
    Rs = tuple(positive("R", r) for r in np.atleast_1d(R))
    ns = tuple(count("n", int(m), 1) for m in np.atleast_1d(n))
    b_norm = positive("b_norm", b_norm)
    Rx_fixed = None if R_x is None else positive("R_x", R_x)
    restarts, maxfev = count("restarts", restarts, 1), count("maxfev", maxfev, 1)
    seed = check_seed("seed", seed, allow_generator=False)
    bad = [q for q in quantities if q not in QUANTITIES]
    if bad:
        raise ValidationError(f"unknown quantities {bad}; choose from {QUANTITIES}")
    rows = []
    for q in quantities:
        for ri, r in enumerate(Rs):
            for ni, m in enumerate(ns):
                if progress is not None:
                    progress(len(rows), q, r, m)
                rx = r if Rx_fixed is None else Rx_fixed
                bound = getattr(bounds(name, n=m, b_norm=b_norm, region=region, R_A=r, R_x=rx), q)
                prob = SearchProblem(name, q, region, r, m, b_norm, R_x=rx)
                rng = np.random.default_rng([seed, QUANTITIES.index(q), ri, ni])
                worst = 0.0
                for _ in range(restarts):
                    # start from the best of a few random draws (cheap), then refine
                    draws = [prob.start(rng) for _ in range(_DRAWS)]
                    z0 = max(draws, key=prob.safe_value)
                    res = _scipy_minimize(lambda z: -prob.safe_value(z), z0, method="Powell",
                                          options={"maxfev": maxfev, "xtol": 1e-7, "ftol": 1e-10})
                    worst = max(worst, prob.safe_value(z0), prob.safe_value(res.x))
                tight = bound / worst if worst > 0 else math.inf
                violated = worst > bound * (1 + rtol) + 1e-300
                rows.append(CertRow(q, r, m, float(bound), float(worst), float(tight), bool(violated),
                                    None if Rx_fixed is None else rx))
    return Certificate(name=member(name).name, region=region, b_norm=b_norm, seed=seed, restarts=restarts,
                       maxfev=maxfev, assumptions=bounds_module(name).ASSUMPTIONS[region], rows=tuple(rows))
