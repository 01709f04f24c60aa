"""softsym: derived, proven and fast softmax/attention optimization problems.

    >>> import numpy as np, softsym
    >>> from softsym.problems.normalized import synthetic
    >>> inst = synthetic("softmax", n=200, d=5, seed=0)
    >>> softsym.minimize(softsym.objective("softmax", inst.A, inst.b), method="newton").success
    True
"""

from __future__ import annotations

from .api import minimize, objective
from .errors import OverflowDetected, UnknownObjectiveError, ValidationError
from .problems.attention import AttentionRegression
from .problems.base import Objective
from .problems.normalized import NormalizedObjective
from .problems.two_layer import TwoLayerNetwork, TwoLayerRegression
from .registry import MemberInfo, catalogue, load_kernels
from .theory.bounds import Bounds, bounds
from .theory.certify import Certificate, certify

__version__ = "0.1.0"

__all__ = [
    "AttentionRegression", "Bounds", "Certificate", "MemberInfo", "NormalizedObjective", "Objective", "OverflowDetected",
    "TwoLayerNetwork", "TwoLayerRegression", "UnknownObjectiveError", "ValidationError", "bounds", "catalogue", "certify",
    "load_kernels", "minimize", "objective",
]
