"""Derived bounds of the normalized family, evaluated at given region parameters.

The bounds are derived symbolically by ``softsym.derive.bounds.normalized`` (interval and norm
propagation over each member's derived Hessian structure) and emitted as plain-Python
evaluators into ``generated/<name>_bounds.py``; :func:`bounds` evaluates them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType

import numpy as np

from .._validate import count, positive
from ..errors import ValidationError
from ..registry import catalogue, generated_module, member
from . import two_layer
from .evaluate import evaluate

QUANTITIES = ("C", "smooth", "M", "G_A", "G_b")
REGIONS = ("ball", "simplex")


@cache
def bounds_module(name: str) -> ModuleType:
    """The generated bounds module of normalized member ``name``."""
    return generated_module(member(name, family="normalized"), "_bounds")


@dataclass(frozen=True)
class Bounds:
    """Derived bounds of one member at given region parameters.

    Region: ``||A||_2 <= R_A``, ``||x||_2 <= R_x`` (so ``||Ax||_2 <= R_A R_x``), ``n`` rows,
    ``0 <= w_i <= w_max``, ``||b||_2 <= b_norm`` (ball) or ``b`` on the simplex.

    ``C``: ``B(Ax) >= -C I`` for the u-space Hessian without regularizer, so
    ``w_min^2 >= C + l / sigma_min(A)^2`` implies ``hess L >= l I``.  ``smooth``: gradient
    Lipschitz constant.  ``M``: Hessian Lipschitz constant.  ``G_A``, ``G_b``: Lipschitz
    constants of ``grad L`` in ``A`` (spectral norm) and ``b``.  ``math.inf`` means the
    rules gave no finite bound (see ``finite``).
    """

    name: str
    region: str
    R_A: float
    R_x: float
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

    def l_certified(self, sigma_min: float, w_min: float) -> float:
        """``sigma_min^2 (w_min^2 - C)``: the strong-convexity constant the bound certifies (<= 0: none)."""
        sigma_min = positive("sigma_min", sigma_min, allow_zero=True)
        w_min = positive("w_min", w_min, allow_zero=True)
        return sigma_min**2 * (w_min**2 - self.C)

    def perturbation(self, dA: float, db: float) -> float:
        """Bound on ``||x*(A,b) - x*(A',b')||`` for ``||A - A'|| <= dA``, ``||b - b'|| <= db`` (needs ``l``).

        Valid when both problems lie in the region and are ``l``-strongly convex on it, with
        both minimizers in ``||x|| <= R_x``.
        """
        if self.l is None:
            raise ValidationError("perturbation needs the bounds evaluated with l=...")
        dA = positive("dA", dA, allow_zero=True)
        db = positive("db", db, allow_zero=True)
        return (self.G_A * dA + self.G_b * db) / self.l


def _attention_names() -> set[str]:
    return {m.name for m in catalogue("attention")}


def radii(R: float | None = None, R_A: float | None = None, R_x: float | None = None) -> tuple[float, float]:
    """``(R_A, R_x)`` from the separate radii, ``R`` standing for both where one is not given (default 1)."""
    R = 1.0 if R is None else positive("R", R)
    R_A = R if R_A is None else positive("R_A", R_A)
    R_x = R if R_x is None else positive("R_x", R_x)
    return R_A, R_x


def bounds(name: str, R: float | None = None, n: int = 2, b_norm: float = 1.0, w_max: float = 0.0,
           l: float | None = None, region: str = "ball", *, R_A: float | None = None,
           R_x: float | None = None, **family_params):
    """Evaluate the derived bounds of member ``name``.

    Region: ``||A||_2 <= R_A``, ``||x||_2 <= R_x``, ``n`` rows, ``0 <= w_i <= w_max`` and
    ``||b||_2 <= b_norm`` (``region="ball"``) or ``b`` on the probability simplex
    (``region="simplex"``, ``b_norm`` ignored).  ``R`` is shorthand for ``R_A = R_x = R``
    (either may still be given separately); with neither, both are 1.  ``l`` (optional) is
    the strong-convexity constant used by :meth:`Bounds.w_required` and
    :meth:`Bounds.perturbation`.

    For the attention family (``name="attention"``) the region is given by keywords instead:
    ``R_A, R_X, R_Y, R_B, n, reg_x, reg_y`` (see :func:`softsym.theory.attention.attention_bounds`).
    For a two-layer member (``two_layer_softmax``, ...) the call is forwarded to
    :func:`softsym.theory.two_layer.bounds` with ``n`` and the keywords (``B, m, kappa,
    lam0, rho0``, ...) and returns its :class:`~softsym.theory.two_layer.TwoLayerConstants`.
    """
    other_family = isinstance(name, str) and (name in _attention_names()
                                              or name in {i.name for i in catalogue("two_layer")})
    if other_family and (R is not None or R_x is not None or b_norm != 1.0 or w_max != 0.0 or l is not None
                         or region != "ball"):
        raise ValidationError(f"{name} bounds take their own keywords (attention: R_A, R_X, R_Y, R_B, n, reg_x, "
                              "reg_y; two-layer: B, m, kappa, lam0, rho0, n)")
    if isinstance(name, str) and name in _attention_names():
        from .attention import attention_bounds
        return attention_bounds(name, n=n, **({"R_A": R_A} if R_A is not None else {}), **family_params)
    if isinstance(name, str) and name in {i.name for i in catalogue("two_layer")}:
        if R_A is not None:
            raise ValidationError("two-layer bounds take B, m, kappa, lam0, rho0, n (not R_A)")
        return two_layer.bounds(name, n=n, **family_params)
    if family_params:
        raise ValidationError(f"unknown arguments {sorted(family_params)} for normalized member {name!r}")
    mod = bounds_module(name)
    if region not in REGIONS:
        raise ValidationError(f"region must be one of {REGIONS}, got {region!r}")
    R_A, R_x = radii(R, R_A, R_x)
    n = count("n", n, 1)
    b_norm = positive("b_norm", b_norm)
    w_max = positive("w_max", w_max, allow_zero=True)
    l = None if l is None else positive("l", l)
    args = (R_A, R_x, n, b_norm, w_max) if region == "ball" else (R_A, R_x, n, w_max)
    vals = {q: evaluate(mod.FUNCTIONS[(region, q)], *args) for q in QUANTITIES}
    return Bounds(name=mod.NAME, region=region, R_A=R_A, R_x=R_x, n=n,
                  b_norm=b_norm if region == "ball" else 1.0, w_max=w_max, l=l,
                  assumptions=mod.ASSUMPTIONS[region],
                  finite={q: bool(mod.FINITE[(region, q)]) for q in QUANTITIES}, **vals)


@dataclass(frozen=True)
class DataQuantities:
    """What a user can compute from the data: ``||A||_2``, ``sigma_min(A)``, ``||b||``, region, ``w``."""

    n: int
    d: int
    norm_A: float
    sigma_min: float
    b_norm: float
    region: str
    w_min: float
    w_max: float


def data_quantities(A, b, w) -> DataQuantities:
    """Spectral norm and smallest singular value of ``A`` (from ``A^T A``), ``||b||``, its region, ``w`` range."""
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float)
    w = np.asarray(w, dtype=float)
    if A.ndim != 2 or b.shape != (A.shape[0],) or w.shape != (A.shape[0],):
        raise ValidationError(f"A must be (n, d) with b, w of shape (n,), got A {A.shape}, b {b.shape}, w {w.shape}")
    ev = np.linalg.eigvalsh(A.T @ A)
    simplex = bool(np.all(b >= 0) and abs(float(b.sum()) - 1.0) <= 1e-12)
    return DataQuantities(n=A.shape[0], d=A.shape[1], norm_A=math.sqrt(max(float(ev[-1]), 0.0)),
                          sigma_min=math.sqrt(max(float(ev[0]), 0.0)),
                          b_norm=max(float(np.linalg.norm(b)), np.finfo(float).tiny),
                          region="simplex" if simplex else "ball",
                          w_min=float(np.min(np.abs(w))), w_max=float(np.max(np.abs(w))))


def bounds_for_data(name: str, A, b, w, R_x: float) -> tuple[Bounds, DataQuantities]:
    """Bounds at the data's own quantities: ``R_A = ||A||_2``, its ``||b||`` and region, ``w_max``.

    ``l`` is set to the certified ``sigma_min(A)^2 (w_min^2 - C)`` when positive (else None).
    """
    q = data_quantities(A, b, w)
    bd = bounds(name, n=q.n, b_norm=q.b_norm, w_max=q.w_max, region=q.region, R_A=max(q.norm_A, 1e-300), R_x=R_x)
    l = bd.l_certified(q.sigma_min, q.w_min)
    if l > 0:
        bd = bounds(name, n=q.n, b_norm=q.b_norm, w_max=q.w_max, region=q.region, l=l,
                    R_A=max(q.norm_A, 1e-300), R_x=R_x)
    return bd, q
