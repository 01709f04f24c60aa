"""Two-layer networks and their neural tangent kernel (paper 004, docs/math.md §4).

``F(W, x) = kappa <a, sigma(W^T x)>`` with a trained first layer ``W (d, m)`` and fixed output
weights ``a`` (``(m,)`` signs for a scalar output, ``(m, d_out)`` for a vector output).  The
activation is a catalogue member of the ``two_layer`` family (``softmax`` -- the paper's
network, ``relu``, ``exp``); gradients and the NTK Gram come from its generated kernels::

    H = (X X^T (x) 1 1^T) o (G G^T)        O(n^2 c^2 (d + m)), two BLAS Grams

    >>> import numpy as np
    >>> from softsym.problems.two_layer import TwoLayerNetwork
    >>> X = np.random.default_rng(0).standard_normal((16, 4))
    >>> net = TwoLayerNetwork(d=4, m=64, seed=0)
    >>> net.ntk(X).shape
    (16, 16)
"""

from __future__ import annotations

import copy
from functools import cache
from types import ModuleType

import numpy as np
from scipy.linalg import eigh

from .._validate import as_array, count, fits, positive
from .._validate import seed as check_seed
from ..errors import OverflowDetected, ValidationError
from ..numerics.serial import serialized
from ..numerics.threads import blas_threads
from ..registry import catalogue, kernels
from .base import MemoObjective


@cache
def activations() -> dict[str, str]:
    """Available activations -> their catalogue member names (``two_layer`` family)."""
    return {kernels(i.name).ACTIVATION: i.name for i in catalogue("two_layer")}


def _member_kernels(activation: str) -> ModuleType:
    acts = activations()
    if not isinstance(activation, str) or activation not in acts:
        raise ValidationError(f"activation must be one of {sorted(acts)}, got {activation!r}")
    return kernels(acts[activation])


def _finite(what: str, *values) -> None:
    for v in values:
        if not np.all(np.isfinite(v)):
            raise OverflowDetected(f"non-finite {what} (exp overflow: reduce init_scale, the inputs or lr)")


class TwoLayerNetwork:
    """``F(W, x) = kappa <a, sigma(W^T x)>``, only ``W`` is trained.

    Parameters
    ----------
    d : input dimension.  m : width (even when ``symmetric``).
    activation : ``"softmax"`` (default), ``"relu"`` or ``"exp"`` (see :func:`activations`).
    d_out : ``None`` for a scalar output (``a in {+-1}^m``), else the output dimension
        (``a in {+-1}^{m x d_out}``).
    kappa : output scale; default is the member's (``m`` for softmax as in the seed,
        ``1/sqrt(m)`` for ReLU/exp).
    seed : seeds ``W_0 ~ N(0, init_scale^2)`` entrywise and the signs ``a``.
    symmetric : pair neuron ``r + m/2`` with ``(w_r, -a_r)`` so that ``F(W_0, x) = 0`` for every
        ``x`` (the usual antisymmetric initialization; it does not change the NTK's form).
    """

    def __init__(self, d: int, m: int, *, activation: str = "softmax", d_out: int | None = None,
                 kappa: float | None = None, seed: int | np.random.Generator = 0, init_scale: float = 1.0,
                 symmetric: bool = True):
        self.d = count("d", d, 1)
        self.m = count("m", m, 2 if symmetric else 1)
        if symmetric and self.m % 2:
            raise ValidationError(f"m must be even with symmetric=True, got {m}")
        self.activation = activation
        self._k = _member_kernels(activation)
        self.scalar = d_out is None
        self.d_out = 1 if d_out is None else count("d_out", d_out, 1)
        fits("d, m", 8 * self.m * (self.d + 2 * self.d_out), f"a network with d={self.d}, m={self.m}")
        self.kappa = self._k.default_kappa(self.m) if kappa is None else positive("kappa", kappa)
        init_scale = positive("init_scale", init_scale)
        rng = np.random.default_rng(check_seed("seed", seed))
        half = self.m // 2 if symmetric else self.m
        W = rng.standard_normal((self.d, half)) * init_scale
        a = rng.choice(np.array([-1.0, 1.0]), size=(half, self.d_out))
        if symmetric:
            W, a = np.concatenate([W, W], axis=1), np.concatenate([a, -a], axis=0)
        self.W = np.ascontiguousarray(W)
        self.a = np.ascontiguousarray(a)

    def __repr__(self) -> str:
        return (f"TwoLayerNetwork(activation={self.activation!r}, d={self.d}, m={self.m}, "
                f"d_out={None if self.scalar else self.d_out}, kappa={self.kappa:g})")

    def with_weights(self, W) -> "TwoLayerNetwork":
        """The same network (activation, ``a``, ``kappa``) with first layer ``W`` (d, m); ``self`` is unchanged."""
        out = copy.copy(self)
        out.W = np.ascontiguousarray(as_array("W", W, 2, (self.d, self.m)))
        return out

    # -- validation ---------------------------------------------------------------------
    def _X(self, X) -> np.ndarray:
        return as_array("X", X, 2, (None, self.d))

    def _Y(self, y, n: int) -> np.ndarray:
        if self.scalar:
            return as_array("y", y, 1, (n,)).reshape(n, 1)
        return as_array("y", y, 2, (n, self.d_out))

    def _W(self, W) -> np.ndarray:
        return self.W if W is None else as_array("W", W, 2, (self.d, self.m))

    def _out(self, F: np.ndarray) -> np.ndarray:
        return F[:, 0].copy() if self.scalar else F

    # -- evaluation ---------------------------------------------------------------------
    def forward(self, X, W=None) -> np.ndarray:
        """Outputs ``F(W, x_i)``: (n,) for a scalar network, (n, d_out) otherwise."""
        X = self._X(X)
        with blas_threads(self._key("forward", X)):
            F = self._k.forward(self._W(W), X, self.a, self.kappa)
        _finite("network output", F)
        return self._out(F)

    __call__ = forward

    def loss_grad(self, X, y, W=None) -> tuple[float, np.ndarray]:
        """``(L, grad_W L)`` for ``L = 1/2 sum_i ||F(W, x_i) - y_i||^2`` (generated kernel)."""
        X = self._X(X)
        Y = self._Y(y, X.shape[0])
        with blas_threads(self._key("loss_grad", X)):
            loss, grad, _ = self._k.loss_grad(self._W(W), X, Y, self.a, self.kappa)
        _finite("loss or gradient", loss, grad)
        return float(loss), grad

    def jac_rows(self, X, W=None) -> np.ndarray:
        """``G`` (n*c, m): ``dF_j(W, x_i)/dW = x_i G[i*c + j]^T`` (rows ordered ``i*c + j``)."""
        X = self._X(X)
        with blas_threads(self._key("jac_rows", X)):
            G = self._k.jac_rows(X @ self._W(W), self.a, self.kappa)
        _finite("Jacobian", G)
        return G

    def jacobian(self, X, W=None) -> np.ndarray:
        """The explicit Jacobian (n*c, d*m) of the outputs in ``vec(W)`` (row-major ``W``).

        Built from the generated gradient rows (row ``i*c + j`` is ``x_i (x) G[i*c + j]``);
        ``O(n c d m)`` memory: for tests and small problems.
        """
        X = self._X(X)
        G = self.jac_rows(X, W)
        return (np.repeat(X, self.d_out, axis=0)[:, :, None] * G[:, None, :]).reshape(G.shape[0], -1)

    def ntk(self, X, W=None) -> np.ndarray:
        """NTK Gram ``H = J J^T`` (n*c, n*c) in closed form ``(X X^T (x) 1 1^T) o (G G^T)``."""
        X = self._X(X)
        with blas_threads(self._key("ntk", X)):
            H = self._k.ntk(self._W(W), X, self.a, self.kappa)
        _finite("NTK", H)
        return H

    def lam_max(self, X, W=None) -> float:
        """Largest eigenvalue of the NTK (= of the Gauss-Newton matrix J^T J), from the smaller side.

        Only that eigenvalue is computed (LAPACK ``syevr`` on one index).
        """
        X = self._X(X)
        n_rows = X.shape[0] * self.d_out
        if n_rows <= self.d * self.m:
            M = self.ntk(X, W)
        else:
            J = self.jacobian(X, W)
            M = J.T @ J
        with blas_threads(f"two_layer lam_max {M.shape[0]}"):
            return float(eigh(M, eigvals_only=True, subset_by_index=(M.shape[0] - 1, M.shape[0] - 1),
                              overwrite_a=True, check_finite=False)[0])

    def _key(self, what: str, X: np.ndarray) -> str:
        """The BLAS thread-policy key of a product (kind and size, see :mod:`softsym.numerics.threads`)."""
        return f"two_layer {what} {X.shape[0]}x{self.d}x{self.m}x{self.d_out}"



class TwoLayerRegression(MemoObjective):
    """Training a network's first layer as a problem: ``L(W) = 1/2 sum_i ||F(W, x_i) - y_i||^2``.

    Variables ``w = vec(W)`` (row-major ``W``, ``d * m`` of them); an objective of the
    ``two_layer`` family (the protocol of :mod:`softsym.problems.base`).  Solve it with
    ``softsym.minimize(TwoLayerRegression(net, X, y), method="gd")`` (full-batch gradient
    descent, default step ``1/lambda_max(H(W_0))``; see :mod:`softsym.solvers.network_gd`);
    the start defaults to the network's ``W`` and the result carries the trained ``W``.  The
    network itself is not modified.

        >>> import numpy as np, softsym
        >>> from softsym.problems.two_layer import TwoLayerNetwork, TwoLayerRegression, regression_task
        >>> X, y = regression_task(n=8, d=4, seed=0)
        >>> res = softsym.minimize(TwoLayerRegression(TwoLayerNetwork(4, 64, seed=0), X, y), maxiter=50)
        >>> bool(res.fun < 1e-2 * res.history["fun"][0]), res.W.shape
        (True, (4, 64))
    """

    family = "two_layer"

    def __init__(self, net: TwoLayerNetwork, X, y):
        if not isinstance(net, TwoLayerNetwork):
            raise ValidationError(f"net must be a TwoLayerNetwork, got {type(net).__name__}")
        self.net = net
        self.X = as_array("X", X, 2, (None, net.d))
        self.n = self.X.shape[0]
        self.y = as_array("y", y, 1, (self.n,)) if net.scalar else as_array("y", y, 2, (self.n, net.d_out))
        self.d = net.d * net.m
        self._Y = np.ascontiguousarray(self.y.reshape(self.n, net.d_out))

    def __repr__(self) -> str:
        return f"TwoLayerRegression({self.net!r}, n={self.n})"

    def _overflow_hint(self, what: str) -> str:
        return f"non-finite {what} (exp overflow: reduce init_scale, the inputs or lr)"

    def weights(self, w) -> np.ndarray:
        """``W`` (d, m) of the vector ``w`` (a new array)."""
        return as_array("w", w, 1, (self.d,)).reshape(self.net.d, self.net.m).copy()

    def objective(self) -> "TwoLayerRegression":
        """The objective ``softsym.minimize`` drives: the problem itself."""
        return self

    def start(self, x0=None) -> np.ndarray:
        """``vec(W_0)`` from ``None`` (the network's ``W``), a (d, m) matrix or a vector of length d*m."""
        if x0 is None:
            return self.net.W.ravel().copy()
        x0 = np.asarray(x0) if not isinstance(x0, np.ndarray) else x0
        if x0.ndim == 2:
            return as_array("x0", x0, 2, (self.net.d, self.net.m)).ravel().copy()
        return as_array("x0", x0, 1, (self.d,)).copy()

    def _new_point(self, w: np.ndarray) -> dict:
        return {"W": w.reshape(self.net.d, self.net.m)}

    def _loss_grad(self, c: dict) -> None:
        # X, y were validated at construction and W by the memo: the kernel is called directly.
        if "jac" not in c:
            net = self.net
            with blas_threads(f"two_layer loss_grad {self.X.shape[0]}x{net.m}"):
                loss, grad, _ = net._k.loss_grad(c["W"], self.X, self._Y, net.a, net.kappa)
            self.njev += 1
            self._check("loss or gradient", loss, grad)
            c["loss"], c["jac"] = float(loss), grad.ravel()

    @serialized
    def fun(self, w) -> float:
        """L(W) at ``w = vec(W)``."""
        c = self._at(w)
        self._loss_grad(c)
        return c["loss"]

    @serialized
    def jac(self, w) -> np.ndarray:
        """``vec(grad_W L)`` (a new array)."""
        c = self._at(w)
        self._loss_grad(c)
        return c["jac"].copy()

    @serialized
    def fun_and_jac(self, w) -> tuple[float, np.ndarray]:
        """(L, gradient) from one kernel call (the gradient is a new array)."""
        c = self._at(w)
        self._loss_grad(c)
        return c["loss"], c["jac"].copy()

    @serialized
    def fun_and_jac_region(self, w, U0: np.ndarray) -> tuple[float, np.ndarray, float, float]:
        """(L, gradient, ``max |X W|``, ``max |X W - U0|``) from one kernel call at ``w = vec(W)``.

        What the certified-region tracking of gradient descent needs per step (``U0 = X W_0``, see
        :meth:`preactivations`); the loss and gradient are memoized as by :meth:`fun_and_jac`.
        """
        c = self._at(w)
        U0 = as_array("U0", U0, 2, (self.n, self.net.m))
        net = self.net
        with blas_threads(f"two_layer loss_grad {self.X.shape[0]}x{net.m}"):
            loss, grad, _, big, dif = net._k.loss_grad_region(c["W"], self.X, self._Y, net.a, net.kappa, U0)
        self.njev += 1
        self._check("loss or gradient", loss, grad)
        c["loss"], c["jac"] = float(loss), grad.ravel()
        return c["loss"], c["jac"].copy(), float(big), float(dif)

    def preactivations(self, w) -> np.ndarray:
        """``U = X W`` (n, m): ``U_ir = <w_r, x_i>`` at ``w = vec(W)`` (one BLAS product)."""
        W = w.reshape(self.net.d, self.net.m) if isinstance(w, np.ndarray) and w.shape == (self.d,) \
            else self.weights(w)
        with blas_threads(f"two_layer preactivations {self.X.shape[0]}x{self.net.m}"):
            return self.X @ W

    @serialized
    def ntk(self, w) -> np.ndarray:
        """The NTK Gram ``H(W)`` (n*c, n*c) at ``w = vec(W)``."""
        self.nhev += 1
        return self.net.ntk(self.X, self.weights(w))

    @serialized
    def lam_max(self, w) -> float:
        """``lambda_max(H(W))``, the smoothness constant of the linearized problem."""
        self.nhev += 1
        return self.net.lam_max(self.X, self.weights(w))

    def result_fields(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """What a result adds for this problem: the trained matrix ``W``."""
        return {"W": self.weights(w)}


def steps_to(losses, eps: float) -> int | None:
    """First step ``t`` with ``losses[t] <= eps * losses[0]`` (None if never reached)."""
    losses = np.asarray(losses, dtype=float)
    hit = np.nonzero(losses <= eps * losses[0])[0]
    return int(hit[0]) if hit.size else None


def regression_task(n: int = 32, d: int = 8, seed: int | np.random.Generator = 0) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic regression task: ``x_i`` uniform on the unit sphere, ``y = sin(3 <v, x>) + <v', x>^2``.

    ``y`` is centred and scaled to unit RMS.
    """
    n, d = count("n", n, 1), count("d", d, 1)
    fits("n, d", 8 * (n * d + 3 * n), f"a regression task with n={n}, d={d}")
    rng = np.random.default_rng(check_seed("seed", seed))
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    v, v2 = rng.standard_normal(d), rng.standard_normal(d)
    y = np.sin(3 * X @ v / np.linalg.norm(v)) + (X @ v2 / np.linalg.norm(v2)) ** 2
    y -= y.mean()
    return X, y / np.sqrt(np.mean(y**2))
