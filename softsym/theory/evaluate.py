"""Evaluating an emitted bound: a plain-Python formula that may overflow for large radii."""

from __future__ import annotations

import math
from collections.abc import Callable


def evaluate(fn: Callable[..., float], *args) -> float:
    """``fn(*args)`` as a float, with ``math.inf`` where the formula overflows or is not finite
    (a bound too large to represent is no bound)."""
    try:
        v = float(fn(*args))
    except (OverflowError, ZeroDivisionError):
        return math.inf
    return v if math.isfinite(v) else math.inf
