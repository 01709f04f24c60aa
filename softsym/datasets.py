"""Deterministic synthetic instances with a planted minimizer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import as_array, count, positive
from .objective import Objective, kernels, member


@dataclass(frozen=True)
class Instance:
    """Data ``A, b, w`` of a catalogue member and the planted solution ``x_star``."""

    name: str
    A: np.ndarray
    b: np.ndarray
    w: np.ndarray
    x_star: np.ndarray

    def objective(self) -> Objective:
        return Objective(self.name, self.A, self.b, self.w)


def planted(name: str, A, x_star) -> np.ndarray:
    """Targets ``b`` for which ``x_star`` is a stationary point of the unregularized loss.

    Uses the member's derived target map ``b_i = b*(u_i)``, ``u = A x_star`` (see its
    formulas page); for least-squares members this makes the loss exactly 0 at ``x_star``.
    """
    A = as_array("A", A, 2)
    x_star = as_array("x_star", x_star, 1, (A.shape[1],))
    return kernels(member(name).name).target_u(A @ x_star)


def synthetic(name: str, n: int, d: int, seed: int | np.random.Generator = 0, radius: float = 0.5,
              w: float = 0.0) -> Instance:
    """A planted instance: ``A`` with i.i.d. N(0, 1) entries, ``||x_star|| = radius``, uniform ``w``.

    ``u = A x_star`` then has entries of standard deviation ``radius``; ``b`` comes from
    :func:`planted`.  Same seed, same bits.
    """
    n, d = count("n", n, 1), count("d", d, 1)
    radius = positive("radius", radius)
    w = positive("w", w, allow_zero=True)
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d))
    x_star = rng.standard_normal(d)
    x_star *= radius / np.linalg.norm(x_star)
    return Instance(name=member(name).name, A=A, b=planted(name, A, x_star), w=np.full(n, w), x_star=x_star)
