"""The papers' theorems exercised where their assumptions hold (papers 000, 001, 002).

* :func:`certified_instance`: data for a normalized member that satisfies the theorems'
  assumptions -- ``w_min^2 >= C + l / sigma_min(A)^2`` with ``C`` the derived bound at
  ``R_A = ||A||_2`` and a radius ``R_x`` holding the minimizer, and a start ``x0`` certified by
  :func:`softsym.theory.start.start_condition` (``M ||x0 - x*|| <= 0.1 l``).
* :func:`newton_contraction`: paper-mode approximate Newton on such an instance; per-step
  contraction against the theorem's 0.4 and against the bound's prediction, how often the
  ``(1 +- eps0)`` sparsifier holds, iterations against ``log(1/eps)``.
* :func:`zeroth_order_rate`: zeroth-order descent with the certified step
  ``K / ((d + K) smooth)``; iterations to ``eps`` against the predicted rate.
* :func:`perturbation_study`: the perturbation corollary ``||x*(A,b) - x*(A',b')|| <=
  (G_A ||dA|| + G_b ||db||) / l`` measured against the bound.

All functions are deterministic in their ``seed``.  ``benchmarks/theory_guarantees.py`` turns
them into the tables and plots of ``docs/papers/000.md``, ``001.md`` and ``002.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._validate import count, positive
from ..errors import ValidationError
from ..problems import normalized as problems
from ..registry import member
from ..solvers.approx_newton import sparsified_hessian
from ..solvers.base import make_solver, run
from .bounds import Bounds, bounds, data_quantities
from .start import start_condition

#: the rate the papers' approximate-Newton theorem proves from a certified start
PAPER_RATE = 0.4


@dataclass
class CertifiedInstance:
    """A normalized-member instance inside the theorems' assumptions (see :func:`certified_instance`)."""

    name: str
    A: np.ndarray
    b: np.ndarray
    w: np.ndarray
    x_planted: np.ndarray
    x_min: np.ndarray
    x0: np.ndarray
    R_A: float
    R_x: float
    sigma_min: float
    l: float
    bounds: Bounds
    start: dict = field(repr=False)

    def objective(self) -> problems.Objective:
        return problems.Objective(self.name, self.A, self.b, self.w)


def _solve(objective, x0, tol: float = 1e-14, maxiter: int = 200) -> np.ndarray:
    res = run(make_solver("normalized", "newton", {}), objective, x0, tol, maxiter)
    if not res.success:
        raise ValidationError(f"exact Newton did not solve the instance: {res.message}")
    return np.asarray(res.x)


def designed_matrix(n: int, d: int, sigma_min: float, R_A: float, rng: np.random.Generator) -> np.ndarray:
    """``A = Q diag(s) V^T`` with orthonormal ``Q`` (n x d), ``V`` and singular values from ``sigma_min`` to ``R_A``."""
    Q, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = np.linspace(sigma_min, R_A, d) if d > 1 else np.array([R_A])
    return np.ascontiguousarray((Q * s) @ V.T)


def certified_instance(name: str, n: int = 4000, d: int = 5, seed: int = 0, R_A: float = 1.0,
                       sigma_min: float = 0.5, radius: float = 0.5, l_extra: float = 1.0,
                       start_scale: float = 0.5) -> CertifiedInstance:
    """Planted data for ``name`` satisfying the theorems' assumptions, with a certified start.

    ``A`` has singular values from ``sigma_min`` to ``R_A`` (:func:`designed_matrix`); ``b`` is
    planted at ``x_planted`` (``||x_planted|| = radius``); the uniform weight ``w`` has
    ``w^2 = C + l_extra`` with ``C`` the derived bound at ``R_A`` and ``R_x = 2 radius`` (so
    ``l = sigma_min^2 l_extra`` there).  The minimizer ``x_min`` of the regularized loss comes
    from exact Newton; the start ``x0 = x_min + t v`` (``v`` a random unit vector,
    ``t = start_scale ||x_min||`` halved until certified) is certified by
    :func:`~softsym.theory.start.start_condition`, whose radius ``R_x`` and ``l`` are recorded.
    """
    info = member(name, family="normalized")
    n, d = count("n", n, 1), count("d", d, 1)
    R_A, sigma_min, radius = positive("R_A", R_A), positive("sigma_min", sigma_min), positive("radius", radius)
    l_extra, start_scale = positive("l_extra", l_extra), positive("start_scale", start_scale)
    if sigma_min > R_A:
        raise ValidationError(f"sigma_min must be <= R_A, got {sigma_min} > {R_A}")
    rng = np.random.default_rng([seed, n, d])
    A = designed_matrix(n, d, sigma_min, R_A, rng)
    x_planted = rng.standard_normal(d)
    x_planted *= radius / np.linalg.norm(x_planted)
    b = problems.planted(info.name, A, x_planted)
    q = data_quantities(A, b, np.ones(n))
    C = bounds(info.name, n=n, b_norm=q.b_norm, w_max=0.0, region=q.region, R_A=q.norm_A, R_x=2 * radius).C
    if not math.isfinite(C):
        raise ValidationError(f"{info.name}: no finite C at R_A = {q.norm_A:.3g}, R_x = {2 * radius:.3g}")
    w = np.full(n, math.sqrt(C + l_extra))
    obj = problems.Objective(info.name, A, b, w)
    x_min = _solve(obj, x_planted)
    v = rng.standard_normal(d)
    v /= np.linalg.norm(v)
    t = start_scale * max(float(np.linalg.norm(x_min)), radius)
    for _ in range(60):
        x0 = x_min + t * v
        sc = start_condition(obj, x0)
        if sc["start_certified"]:
            break
        t *= 0.5
    else:
        raise ValidationError(f"{info.name}: no certified start found: {sc['start_condition']['reason']}")
    info_sc = sc["start_condition"]
    bd = bounds(info.name, n=n, b_norm=q.b_norm, w_max=float(w[0]), region=q.region, l=info_sc["l"],
                R_A=info_sc["R_A"], R_x=info_sc["R_x"])
    return CertifiedInstance(name=info.name, A=A, b=b, w=w, x_planted=x_planted, x_min=x_min, x0=x0,
                             R_A=info_sc["R_A"], R_x=info_sc["R_x"], sigma_min=q.sigma_min, l=info_sc["l"],
                             bounds=bd, start=sc)
