"""softsym: derived, proven and fast softmax/attention optimization problems.

    >>> import numpy as np, softsym
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((200, 5)) / 4
    >>> obj = softsym.objective("softmax", A, softsym.datasets.planted("softmax", A, rng)[0])
    >>> softsym.minimize(obj, method="newton").success
    True
"""

from __future__ import annotations

from . import datasets
from .errors import OverflowDetected, UnknownObjectiveError, ValidationError
from .guarantees import Bounds, Certificate, bounds, certify
from .objective import MemberInfo, Objective, catalogue, load_kernels, objective
from .solvers import minimize

__version__ = "0.1.0"

__all__ = [
    "Bounds", "Certificate", "bounds", "certify",
    "MemberInfo", "Objective", "OverflowDetected", "UnknownObjectiveError", "ValidationError",
    "catalogue", "datasets", "load_kernels", "minimize", "objective",
]
