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

from .._validate import count, positive
from ..errors import ValidationError
from ..registry import catalogue, generated_module, member
from . import two_layer

QUANTITIES = ("C", "smooth", "M", "G_A", "G_b")
REGIONS = ("ball", "simplex")


@cache
def bounds_module(name: str) -> ModuleType:
    """The generated bounds module of normalized member ``name``."""
    return generated_module(member(name, family="normalized"), "_bounds")


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


def _attention_names() -> set[str]:
    return {m.name for m in catalogue("attention")}


def _call(fn, *args) -> float:
    try:
        v = float(fn(*args))
    except (OverflowError, ZeroDivisionError):
        return math.inf
    return v if math.isfinite(v) else math.inf


def bounds(name: str, R: float = 1.0, n: int = 2, b_norm: float = 1.0, w_max: float = 0.0,
           l: float | None = None, region: str = "ball", **family_params):
    """Evaluate the derived bounds of member ``name``.

    For the attention family (``name="attention"``) the region is given by keywords instead:
    ``R_A, R_X, R_Y, R_B, n, reg_x, reg_y`` (see :func:`softsym.theory.attention.attention_bounds`).

    Region: ``||A||_2 <= R``, ``||x||_2 <= R``, ``n`` rows, ``0 <= w_i <= w_max`` and
    ``||b||_2 <= b_norm`` (``region="ball"``) or ``b`` on the probability simplex
    (``region="simplex"``, ``b_norm`` ignored).  ``l`` (optional) is the strong-convexity
    constant used by :meth:`Bounds.w_required` and :meth:`Bounds.perturbation`.

    For a two-layer member (``two_layer_softmax``, ...) the call is forwarded to
    :func:`softsym.theory.two_layer.bounds` with ``n`` and the keywords (``B, m, kappa,
    lam0, rho0``, ...) and returns its :class:`~softsym.theory.two_layer.TwoLayerConstants`.
    """
    if isinstance(name, str) and name in _attention_names():
        from .attention import attention_bounds
        if not isinstance(R, (int, float)) or R != 1.0 or b_norm != 1.0 or w_max != 0.0 or l is not None \
                or region != "ball":
            raise ValidationError("attention bounds take R_A, R_X, R_Y, R_B, n, reg_x, reg_y")
        return attention_bounds(name, n=n, **family_params)
    if isinstance(name, str) and name in {i.name for i in catalogue("two_layer")}:
        return two_layer.bounds(name, n=n, **family_params)
    if family_params:
        raise ValidationError(f"unknown arguments {sorted(family_params)} for normalized member {name!r}")
    mod = bounds_module(name)
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
