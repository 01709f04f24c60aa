"""The normalized family (papers 000 and 001): data bound to a member's generated kernels.

    L(x) = sum_i ell(alpha(x)^-1 phi(u_i), b_i) + 1/2 ||W A x||^2,   u = A x

One object owns how derivatives are obtained and memoizes them at the last ``x`` (as
scipy's ``ScalarFunction`` does), so solvers stay derivative-agnostic and
``scipy.optimize.minimize(obj.fun, x0, jac=obj.jac, hess=obj.hess)`` works as is.  Also here:
deterministic synthetic instances with a planted minimizer (:func:`synthetic`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import as_array, count, fits, positive
from .._validate import seed as check_seed
from ..numerics import rows
from ..numerics.serial import serialized
from ..numerics.threads import blas_threads
from ..registry import kernels, member
from .base import MemoObjective, read_only


@dataclass(frozen=True)
class Pieces:
    """Structured derivatives at one x: dL/du = g, d2L/du2 = diag(beta) + p q^T + q p^T + T q q^T."""

    u: np.ndarray
    loss: float
    g: np.ndarray
    beta: np.ndarray
    p: np.ndarray
    q: np.ndarray
    T: float


class NormalizedObjective(MemoObjective):
    """A normalized-family objective ``L(x)`` on data ``A, b, w`` (the objective protocol of
    :mod:`softsym.problems.base`, normalized-family part included).

    Methods ``fun, jac, hess, hessp`` follow ``scipy.optimize`` conventions.  Results are
    memoized at the last ``x``; counters ``nfev, njev, nhev`` count kernel evaluations.
    Arrays are not copied when already float64 and C-contiguous: do not modify them while
    the objective is in use.

    Raises ``ValidationError`` for bad input and ``OverflowDetected`` instead of returning
    non-finite values.
    """

    family = "normalized"

    def __init__(self, name: str, A, b, w=None):
        self.info = member(name, family="normalized")
        self.name = self.info.name
        self.A = as_array("A", A, 2)
        self.n, self.d = self.A.shape
        self.b = as_array("b", b, 1, (self.n,))
        self.w = np.zeros(self.n) if w is None else as_array("w", w, 1, (self.n,))
        self._k = kernels(self.name)
        self._grad_unit: float | None = None

    def __repr__(self) -> str:
        return f"NormalizedObjective({self.name!r}, n={self.n}, d={self.d})"

    @property
    def grad_unit(self) -> float:
        """``max_i ||A_i||``: a unit change of one loss term per unit of ``x`` (computed once)."""
        if self._grad_unit is None:
            self._grad_unit = float(rows.max_row_norm(self.A))
        return self._grad_unit

    # -- evaluation at x ------------------------------------------------------------------
    def _new_point(self, x: np.ndarray) -> dict[str, object]:
        return {"u": rows.matvec(self.A, x)}

    def _overflow_hint(self, what: str) -> str:
        memo = self._memo
        u = memo[1].get("u") if memo is not None else None
        umax = float(np.max(np.abs(u))) if isinstance(u, np.ndarray) else float("nan")
        hint = "" if self.info.shift_invariant else (
            "; this member is not shift invariant, so exp/cosh/sinh overflow once |Ax| exceeds ~709:"
            " rescale A or start closer to 0")
        return f"{self.name}: non-finite {what} at this x (max |Ax| = {umax:.4g}){hint}"

    @serialized
    def u(self, x) -> np.ndarray:
        """u = A x (memoized at the last x; a new array)."""
        return self._at(x)["u"].copy()

    @serialized
    def fun(self, x) -> float:
        """L(x)."""
        return self._loss(self._at(x))

    def _loss(self, c: dict) -> float:
        if "loss" not in c:
            loss = float(self._k.loss_u(c["u"], self.b, self.w))
            self.nfev += 1
            self._check("loss", loss)
            c["loss"] = loss
        return c["loss"]

    def _grad_u(self, c: dict) -> np.ndarray:
        if "g" not in c:
            loss, g = self._k.grad_u(c["u"], self.b, self.w)
            self.njev += 1
            self._check("gradient", loss, g)
            c["loss"], c["g"] = float(loss), g
        return c["g"]

    def _jac(self, c: dict) -> np.ndarray:
        if "jac" not in c:
            c["jac"] = rows.rmatvec(self.A, self._grad_u(c))
        return c["jac"]

    @serialized
    def jac(self, x) -> np.ndarray:
        """grad L(x) = A^T g (a new array)."""
        return self._jac(self._at(x)).copy()

    @serialized
    def fun_and_jac(self, x) -> tuple[float, np.ndarray]:
        """(L(x), grad L(x)), one fused kernel pass."""
        c = self._at(x)
        g = self._jac(c).copy()
        return self._loss(c), g

    def _pieces(self, c: dict) -> Pieces:
        if "pieces" not in c:
            loss, g, beta, p, q, T = self._k.pieces_u(c["u"], self.b, self.w)
            self.nhev += 1
            self._check("Hessian pieces", loss, g, beta, p, q, T)
            c["pieces"] = Pieces(u=c["u"], loss=float(loss), g=g, beta=beta, p=p, q=q, T=float(T))
            # The loss comes from the same sums in every kernel; the pieces' g is a differently
            # factored expression (equal to rounding), so jac keeps its own: bits never depend on
            # whether the Hessian was evaluated first.
            c.setdefault("loss", float(loss))
        return c["pieces"]

    @serialized
    def pieces(self, x) -> Pieces:
        """The structured derivatives in u-space (for Newton-type and sketching solvers).

        The arrays are read-only views of the memo's (copy them to modify).
        """
        pc = self._pieces(self._at(x))
        return Pieces(u=read_only(pc.u), loss=pc.loss, g=read_only(pc.g), beta=read_only(pc.beta),
                      p=read_only(pc.p), q=read_only(pc.q), T=pc.T)

    @serialized
    def hess(self, x) -> np.ndarray:
        """hess L(x), a new symmetric (d, d) array."""
        c = self._at(x)
        if "hess" not in c:
            pc = self._pieces(c)
            with blas_threads(f"normalized hess {self.n}x{self.d}"):
                H = self._k.hess_assemble(self.A, pc.beta, pc.p, pc.q, pc.T)
            self._check("Hessian", H)
            c["hess"] = H
        return c["hess"].copy()

    @serialized
    def hessp(self, x, p) -> np.ndarray:
        """hess L(x) @ p in two matrix-vector products."""
        c = self._at(x)
        v = as_array("p", p, 1, (self.d,))
        pc = self._pieces(c)
        out = self._k.hessp_assemble(self.A, pc.beta, pc.p, pc.q, pc.T, v)
        self._check("Hessian-vector product", out)
        return out


@dataclass(frozen=True)
class Instance:
    """Data ``A, b, w`` of a catalogue member and the planted solution ``x_star``."""

    name: str
    A: np.ndarray
    b: np.ndarray
    w: np.ndarray
    x_star: np.ndarray

    def objective(self) -> NormalizedObjective:
        return NormalizedObjective(self.name, self.A, self.b, self.w)


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
    fits("n, d", 8 * (n * d + 4 * n), f"a synthetic instance with n={n}, d={d}")
    radius = positive("radius", radius)
    w = positive("w", w, allow_zero=True)
    rng = np.random.default_rng(check_seed("seed", seed))
    A = rng.standard_normal((n, d))
    x_star = rng.standard_normal(d)
    x_star *= radius / np.linalg.norm(x_star)
    return Instance(name=member(name).name, A=A, b=planted(name, A, x_star), w=np.full(n, w), x_star=x_star)
