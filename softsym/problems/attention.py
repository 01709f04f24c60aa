"""Single-layer attention regression (paper 003, docs/math.md §3).

    L(X, Y) = ||row-softmax(A1 X A2^T) A3 Y - B||_F^2 + reg_x ||X||_F^2 + reg_y ||Y||_F^2

which equals the paper's literal definition through the Kronecker product A1 kron A2 with the
row-major convention x = vec(X) (``x[p d + q] = X[p, q]``, i.e. ``X.ravel()``).  Every
derivative comes from the generated kernels ``softsym.kernels.attention`` (derived and proven
in ``softsym.derive.families.attention``); nothing here forms the n^2 x d^2 matrix.

    >>> import softsym
    >>> from softsym.problems.attention import AttentionRegression, planted
    >>> inst = planted(n=32, d=3, seed=0)
    >>> prob = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B)
    >>> res = softsym.minimize(prob, (inst.perturbed_start(), None), method="newton")
    >>> bool(res.success) and res.fun < 1e-12
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.linalg

from .._validate import as_array, count, fits, positive
from .._validate import seed as check_seed
from ..errors import OverflowDetected, ValidationError
from ..numerics.serial import new_lock, serialized
from ..numerics.threads import blas_threads
from ..registry import kernels
from .base import MemoObjective, is_finite

MEMBER = "attention"


class AttentionRegression:
    """The attention regression problem bound to data ``A1, A2, A3, B`` (each (n, d)).

    Variables ``X, Y`` are (d, d).  Hessians in X use the row-major vectorization
    ``x = X.ravel()``; ``hess_y`` uses ``y = Y.ravel()``.  The state needed for Hessian
    products in X (the softmax matrix F and dL/dF) is memoized at the last (X, Y).  Counters
    ``nfev, njev, nhev`` count loss, gradient and Hessian-state kernel calls.  ``loss``,
    ``value_and_grad`` and ``hess_y_block`` reuse two (rows, n) workspaces owned by the
    instance (allocated on first use); every public evaluation method therefore holds the
    instance's lock (:mod:`softsym.numerics.serial`), so threads sharing one instance are served
    one call at a time.
    Raises ``ValidationError`` for bad input and ``OverflowDetected`` instead of returning
    non-finite values.
    """

    def __init__(self, A1, A2, A3, B, reg_x: float = 0.0, reg_y: float = 0.0):
        self.A1 = as_array("A1", A1, 2)
        self.n, self.d = self.A1.shape
        shape = (self.n, self.d)
        self.A2 = as_array("A2", A2, 2, shape)
        self.A3 = as_array("A3", A3, 2, shape)
        self.B = as_array("B", B, 2, shape)
        self.reg_x = positive("reg_x", reg_x, allow_zero=True)
        self.reg_y = positive("reg_y", reg_y, allow_zero=True)
        self._k = kernels(MEMBER)
        self._work: tuple[np.ndarray, np.ndarray] | None = None
        self.nfev = self.njev = self.nhev = 0
        self.lock = new_lock()  # see softsym.numerics.serial: one thread at a time through the state
        self._state_key: tuple[np.ndarray, np.ndarray] | None = None
        self._state: tuple | None = None
        self._y_pinv: np.ndarray | None = None  # pseudo-inverse of the Y-Hessian block at the state's X

    family = "attention"

    def objective(self) -> JointObjective:
        """This problem as an objective in z = [vec X, vec Y] (what ``softsym.minimize`` drives)."""
        return JointObjective(self)

    def start(self, x0=None) -> np.ndarray:
        """The joint start z0 from ``None`` (zeros), a pair ``(X0, Y0)`` (either may be None) or a
        joint vector of length 2 d^2."""
        zeros = np.zeros((self.d, self.d))
        if x0 is None:
            x0 = (None, None)
        if isinstance(x0, tuple):
            if len(x0) != 2:
                raise ValidationError(f"x0 must be (X0, Y0), a joint vector or None; got a tuple of {len(x0)}")
            X0 = zeros if x0[0] is None else self._var("X0", x0[0])
            Y0 = zeros if x0[1] is None else self._var("Y0", x0[1])
            return np.concatenate([X0.ravel(), Y0.ravel()])
        return as_array("x0", x0, 1, (2 * self.d * self.d,))

    def __repr__(self) -> str:
        return f"AttentionRegression(n={self.n}, d={self.d}, reg_x={self.reg_x}, reg_y={self.reg_y})"

    # -- helpers -----------------------------------------------------------------------------
    def _var(self, name: str, value) -> np.ndarray:
        return as_array(name, value, 2, (self.d, self.d))

    @staticmethod
    def _check(what: str, *values) -> None:
        for v in values:
            if not is_finite(v):
                raise OverflowDetected(f"attention: non-finite {what} (the data or iterate is too large)")

    def _data(self) -> tuple[np.ndarray, ...]:
        return self.A1, self.A2, self.A3, self.B

    def _workspace(self) -> tuple[np.ndarray, np.ndarray]:
        """The two (rows, n) blocks the row-blocked kernels reuse across calls (allocated once)."""
        if self._work is None:
            self._work = self._k.workspace(self.n)
        return self._work

    def _key(self, kernel: str) -> str:
        """The BLAS-thread policy's key of ``kernel`` at this size (softsym.numerics.threads)."""
        return f"attention {kernel} {self.n}x{self.d}"

    # -- evaluation --------------------------------------------------------------------------
    @serialized
    def loss(self, X, Y) -> float:
        """L(X, Y)."""
        X, Y = self._var("X", X), self._var("Y", Y)
        with blas_threads(self._key("sweep")):
            val = float(self._k.loss(*self._data(), X, Y, self.reg_x, self.reg_y, self._workspace()[0]))
        self.nfev += 1
        self._check("loss", val)
        return val

    @serialized
    def value_and_grad(self, X, Y) -> tuple[float, np.ndarray, np.ndarray]:
        """(L, dL/dX, dL/dY) in one row-blocked sweep (four n^2 d matrix products, no n x n array)."""
        X, Y = self._var("X", X), self._var("Y", Y)
        with blas_threads(self._key("value_and_grad")):
            val, gX, gY = self._k.value_and_grad(*self._data(), X, Y, self.reg_x, self.reg_y, *self._workspace())
        self.njev += 1
        self._check("gradient", val, gX, gY)
        return float(val), gX, gY

    @serialized
    def grad(self, X, Y) -> tuple[np.ndarray, np.ndarray]:
        """(dL/dX, dL/dY), each (d, d)."""
        _, gX, gY = self.value_and_grad(X, Y)
        return gX, gY

    @serialized
    def hess_state(self, X: np.ndarray, Y: np.ndarray) -> tuple:
        key = self._state_key
        if key is None or not (np.array_equal(key[0], X) and np.array_equal(key[1], Y)):
            # F and C (n x n each) are rewritten in place: the state is private, so the previous
            # point's arrays are reused instead of faulting in 2 n^2 fresh doubles per point
            F, C = (self._state[3], self._state[4]) if self._state is not None else (
                np.empty((self.n, self.n)), np.empty((self.n, self.n)))
            self._state_key = self._state = None  # invalid until the new state is complete
            with blas_threads(self._key("hess_state")):
                st = self._k.hess_state(*self._data(), X, Y, self.reg_x, self.reg_y, F, C, self._workspace()[0])
            self.nhev += 1
            self._check("Hessian state", *st)
            self._state_key, self._state, self._y_pinv = (X.copy(), Y.copy()), st, None
        return self._state

    def _y_block_pinv(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Pseudo-inverse of G (hess_y = kron(G, I_d)) at X, from the memoized Hessian state."""
        K = self.hess_state(X, Y)[6]
        if self._y_pinv is None:
            G = self._k.hess_y_from_k(K, self.reg_y)
            self._check("Hessian in Y", G)
            self._y_pinv = scipy.linalg.pinvh(G, check_finite=False)
        return self._y_pinv

    @serialized
    def hessp_x(self, X, Y, V) -> np.ndarray:
        """Hessian in x = vec(X) applied to vec(V), returned as a (d, d) matrix; O(n^2 d), row-blocked."""
        X, Y, V = self._var("X", X), self._var("Y", Y), self._var("V", V)
        _, _, _, F, C, gamma, _, _ = self.hess_state(X, Y)
        with blas_threads(self._key("hessp_x")):
            out = self._k.hessp_x(self.A1, self.A2, self.A3, Y, F, C, gamma, V, self.reg_x, *self._workspace())
        self._check("Hessian-vector product", out)
        return out

    def _cross(self, kernel: Callable, X, Y, name: str, Z) -> np.ndarray:
        X, Y, Z = self._var("X", X), self._var("Y", Y), self._var(name, Z)
        _, _, _, F, _, _, K, Ls = self.hess_state(X, Y)
        out = kernel(self.A1, self.A2, self.A3, Y, F, K, Ls, Z, self._workspace()[0])
        self._check("cross Hessian-vector product", out)
        return out

    @serialized
    def hessp_xy(self, X, Y, E) -> np.ndarray:
        """Cross Hessian d2L/dx dy applied to vec(E) (a direction in Y), as a (d, d) matrix; O(n^2 d)."""
        return self._cross(self._k.hessp_xy, X, Y, "E", E)

    @serialized
    def hessp_yx(self, X, Y, D) -> np.ndarray:
        """Cross Hessian d2L/dy dx applied to vec(D) (a direction in X), as a (d, d) matrix; O(n^2 d)."""
        return self._cross(self._k.hessp_yx, X, Y, "D", D)

    @serialized
    def hess_x(self, X, Y) -> np.ndarray:
        """Full (d^2, d^2) Hessian in x = vec(X) (row-major); O(n^2 d^2 + n d^4) time, O(n d^2) memory."""
        X, Y = self._var("X", X), self._var("Y", Y)
        _, _, _, F, C, gamma, _, _ = self.hess_state(X, Y)
        H = self._k.hess_x(self.A1, self.A2, self.A3, Y, F, C, gamma, self.reg_x)
        self._check("Hessian", H)
        return H

    @serialized
    def hess_xy(self, X, Y) -> np.ndarray:
        """Full (d^2, d^2) cross Hessian d2L/dx dy (rows vec X, columns vec Y; row-major vecs).

        Assembled column by column from ``hessp_xy`` (d^2 products, O(n^2 d^3)); d2L/dy dx is
        its transpose.
        """
        k = self.d
        cols = [self.hessp_xy(X, Y, e.reshape(k, k)).ravel() for e in np.eye(k * k)]
        return np.column_stack(cols)

    @serialized
    def reduced_hessp_x(self, X, Y, V) -> np.ndarray:
        """Hessian of phi(X) = min_Y L(X, Y) applied to vec(V), as a (d, d) matrix; O(n^2 d).

        The Schur complement (H_xx - H_xy H_yy^+ H_yx) vec(V), matrix-free (five n^2 d products
        in two row-blocked sweeps, no n x n temporary).  It is the Hessian of phi when ``Y``
        minimizes L(X, .) (e.g. ``Y = minimize_y(X, Y0)``); at other Y it is the Schur complement
        of the joint Hessian.
        """
        X, Y, V = self._var("X", X), self._var("Y", Y), self._var("V", V)
        _, _, _, F, C, gamma, K, Ls = self.hess_state(X, Y)
        pinv = self._y_block_pinv(X, Y)
        with blas_threads(self._key("reduced_hessp_x")):
            out = self._k.hessp_reduced_x(self.A1, self.A2, self.A3, Y, F, C, gamma, K, Ls, pinv, V, self.reg_x,
                                          *self._workspace())
        self._check("reduced Hessian-vector product", out)
        return out

    @serialized
    def reduced_hess_x(self, X, Y) -> np.ndarray:
        """Full (d^2, d^2) Hessian of phi(X) = min_Y L(X, Y) at Y = Y*(X) (see ``reduced_hessp_x``):
        ``hess_x - hess_xy kron(G^+, I_d) hess_xy^T`` with hess_y = kron(G, I_d); O(n^2 d^3)."""
        X, Y = self._var("X", X), self._var("Y", Y)
        Hxy = self.hess_xy(X, Y)
        S = self.hess_x(X, Y) - Hxy @ np.kron(self._y_block_pinv(X, Y), np.eye(self.d)) @ Hxy.T
        return 0.5 * (S + S.T)

    @serialized
    def hess_y_block(self, X) -> np.ndarray:
        """(d, d) matrix G with hess_y(X) = kron(G, I_d); L is a convex quadratic in Y."""
        X = self._var("X", X)
        G = self._k.hess_y_block(self.A1, self.A2, self.A3, X, self.reg_y, self._workspace()[0])
        self._check("Hessian in Y", G)
        return G

    @serialized
    def hess_y(self, X) -> np.ndarray:
        """Full (d^2, d^2) Hessian in y = vec(Y) (row-major); it does not depend on Y."""
        return np.kron(self.hess_y_block(X), np.eye(self.d))

    # -- solving -----------------------------------------------------------------------------
    @serialized
    def minimize_y(self, X, Y) -> np.ndarray:
        """argmin_Y L(X, Y): L is quadratic in Y, so one exact Newton step (a least-squares solve).

        Uses the minimum-norm step when the Y-Hessian is singular (reg_y = 0, rank-deficient F A3).
        """
        X, Y = self._var("X", X), self._var("Y", Y)
        return self.y_star_and_value(X, Y)[0]

    @serialized
    def y_star_and_value(self, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, float]:
        """(Y*(X), L(X, Y*(X))) from one forward sweep: given K = F A3 of X (two n^2 d GEMMs), the
        loss, dL/dY and the Y-Hessian at any Y cost O(n d^2) (``y_parts``), so one exact Newton
        step from Y and the loss at its end need no second sweep."""
        with blas_threads(self._key("sweep")):
            K = self._k.forward_k(self.A1, self.A2, self.A3, X, self._workspace()[0])
        self.nfev += 1
        self._check("F A3", K)
        _, gY, G = self._k.y_parts(K, self.B, X, Y, self.reg_x, self.reg_y)
        self._check("Y-gradient and Y-Hessian", gY, G)
        Ys = Y - scipy.linalg.lstsq(G, gY, check_finite=False)[0]
        val = float(self._k.y_parts(K, self.B, X, Ys, self.reg_x, self.reg_y)[0])
        self._check("loss", val)
        return Ys, val


class JointObjective(MemoObjective):
    """The problem as an objective in z = [vec X, vec Y] (row-major vecs), for the solver driver.

    Implements the objective protocol of :mod:`softsym.problems.base` (``fun, jac,
    fun_and_jac, d``, counters: those of the problem) on the shared memo base; ``prob`` gives
    the structured operations the variable-projection solvers use.
    """

    family = "attention"

    def __init__(self, prob: AttentionRegression):
        self.prob = prob
        self.d = 2 * prob.d * prob.d

    def __repr__(self) -> str:
        return f"JointObjective({self.prob!r})"

    def split(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(X, Y) of the joint vector ``z`` (new arrays)."""
        k = self.prob.d
        z = as_array("z", z, 1, (self.d,))
        return z[:k * k].reshape(k, k).copy(), z[k * k:].reshape(k, k).copy()

    @property
    def nfev(self) -> int:
        return self.prob.nfev

    @property
    def njev(self) -> int:
        return self.prob.njev

    @property
    def nhev(self) -> int:
        return self.prob.nhev

    def _overflow_hint(self, what: str) -> str:
        return f"attention: non-finite {what} (the data or iterate is too large)"

    @serialized
    def fun(self, z) -> float:
        """L(X, Y) at z."""
        c = self._at(z)
        if "loss" not in c:
            val = self.prob.loss(*self.split(z))
            self._check("loss", val)
            c["loss"] = val
        return c["loss"]

    @serialized
    def jac(self, z) -> np.ndarray:
        """[vec dL/dX, vec dL/dY] at z (a new array)."""
        return self.fun_and_jac(z)[1]

    @serialized
    def fun_and_jac(self, z) -> tuple[float, np.ndarray]:
        """(L, gradient) at z."""
        c = self._at(z)
        if "jac" not in c:
            # from the Hessian state's sweep, which yields value and gradients too: the reduced Newton
            # step that follows starts at the same (X, Y), so each accepted point is swept once, not twice
            val, gX, gY = self.prob.hess_state(*self.split(z))[:3]
            jac = np.concatenate([gX.ravel(), gY.ravel()])
            self._check("gradient", val, jac)
            c["loss"], c["jac"] = float(val), jac
        return c["loss"], c["jac"].copy()

    def result_fields(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """What a result adds for this problem: the matrices ``X`` and ``Y`` of ``z``."""
        X, Y = self.split(z)
        return {"X": X, "Y": Y}


# ---------------------------------------------------------------------------------------------
# Planted instances


@dataclass(frozen=True)
class PlantedInstance:
    """Data with a planted exact solution: B = row-softmax(A1 X* A2^T) A3 Y*, so L(X*, Y*) = 0."""

    A1: np.ndarray
    A2: np.ndarray
    A3: np.ndarray
    B: np.ndarray
    X_star: np.ndarray
    Y_star: np.ndarray

    def perturbed_start(self, seed: int = 4, rel: float = 0.5) -> np.ndarray:
        """X* + rel ||X*||_F E with E i.i.d. N(0, 1/d^2) (so ||E||_F ~ 1): the start of the demo,
        the CLI and the benchmark (``solve`` is local; from X0 = 0 it stalls elsewhere)."""
        d = self.X_star.shape[0]
        noise = np.random.default_rng(check_seed("seed", seed)).standard_normal((d, d)) / d
        return self.X_star + rel * np.linalg.norm(self.X_star) * noise


def planted(n: int, d: int, seed: int | np.random.Generator = 0, x_scale: float = 1.0) -> PlantedInstance:
    """A1, A2, A3 with i.i.d. N(0, 1) entries, ||X*||_F = x_scale, Y* with N(0, 1) entries.

    Entries of U* = A1 X* A2^T then have standard deviation ~x_scale (softmax neither flat
    nor saturated).  Same seed, same bits.
    """
    n, d = count("n", n, 1), count("d", d, 1)
    fits("n, d", 8 * (4 * n * d + 2 * n * n), f"a planted attention instance with n={n}, d={d}")
    x_scale = positive("x_scale", x_scale)
    rng = np.random.default_rng(check_seed("seed", seed))
    A1, A2, A3 = (rng.standard_normal((n, d)) for _ in range(3))
    X_star = rng.standard_normal((d, d))
    X_star *= x_scale / np.linalg.norm(X_star)
    Y_star = rng.standard_normal((d, d))
    k = kernels(MEMBER)
    _, _, B = k.forward(A1, A2, A3, X_star, Y_star)
    return PlantedInstance(A1=A1, A2=A2, A3=A3, B=B, X_star=X_star, Y_star=Y_star)
