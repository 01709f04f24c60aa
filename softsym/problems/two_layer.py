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

from dataclasses import dataclass, field
from functools import cache
from types import ModuleType

import numpy as np

from .._validate import as_array, count, positive
from .._validate import seed as check_seed
from ..errors import OverflowDetected, ValidationError
from ..registry import catalogue, kernels


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


@dataclass(frozen=True)
class FitResult:
    """Record of full-batch gradient descent on ``1/2 sum_i ||F(W, x_i) - y_i||^2``.

    ``loss[t]``, ``drift[t] = ||H(W_t) - H(W_0)||_2`` and ``lam_min[t] = lambda_min(H(W_t))`` for
    ``t = 0 .. steps`` (``drift``/``lam_min`` are empty with ``record=False``).
    """

    W: np.ndarray
    loss: np.ndarray
    drift: np.ndarray
    lam_min: np.ndarray
    lam_max0: float
    lr: float
    lr_rule: str
    steps: int
    message: str = ""
    extra: dict = field(default_factory=dict)

    def steps_to(self, eps: float) -> int | None:
        """First step t with ``loss[t] <= eps * loss[0]`` (None if never reached)."""
        hit = np.nonzero(self.loss <= eps * self.loss[0])[0]
        return int(hit[0]) if hit.size else None

    @property
    def rate(self) -> float:
        """Geometric mean per-step loss ratio over the recorded run."""
        if self.steps == 0 or self.loss[0] <= 0 or self.loss[-1] <= 0:
            return float("nan")
        return float((self.loss[-1] / self.loss[0]) ** (1.0 / self.steps))


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
        F = self._k.forward(self._W(W), self._X(X), self.a, self.kappa)
        _finite("network output", F)
        return self._out(F)

    __call__ = forward

    def loss_grad(self, X, y, W=None) -> tuple[float, np.ndarray]:
        """``(L, grad_W L)`` for ``L = 1/2 sum_i ||F(W, x_i) - y_i||^2`` (generated kernel)."""
        X = self._X(X)
        loss, grad, _ = self._k.loss_grad(self._W(W), X, self._Y(y, X.shape[0]), self.a, self.kappa)
        _finite("loss or gradient", loss, grad)
        return float(loss), grad

    def jac_rows(self, X, W=None) -> np.ndarray:
        """``G`` (n*c, m): ``dF_j(W, x_i)/dW = x_i G[i*c + j]^T`` (rows ordered ``i*c + j``)."""
        X = self._X(X)
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
        H = self._k.ntk(self._W(W), X, self.a, self.kappa)
        _finite("NTK", H)
        return H

    def lam_max(self, X, W=None) -> float:
        """Largest eigenvalue of the NTK (= of the Gauss-Newton matrix J^T J), from the smaller side."""
        X = self._X(X)
        n_rows = X.shape[0] * self.d_out
        if n_rows <= self.d * self.m:
            return float(np.linalg.eigvalsh(self.ntk(X, W))[-1])
        J = self.jacobian(X, W)
        return float(np.linalg.eigvalsh(J.T @ J)[-1])

    # -- training -----------------------------------------------------------------------
    def fit(self, X, y, lr: float | None = None, steps: int = 500, tol: float | None = None,
            record: bool = True, callback=None) -> FitResult:
        """Full-batch gradient descent ``W <- W - lr grad L(W)``, updating ``self.W``.

        Default ``lr = 1 / lambda_max(H(W_0))``: the loss Hessian is ``J^T J + sum_i r_i
        grad^2 F_i``; its Gauss-Newton part has norm ``lambda_max(H)`` and the residual part
        vanishes with the residual (and with width, in the NTK regime), so ``lambda_max(H(W_0))``
        is the smoothness constant of the linearized problem and ``1/smoothness`` the classical
        step; the linearized residual then contracts at least by ``1 - lambda_min/lambda_max``
        per step.  With ``record`` each step also stores ``||H(W_t) - H(W_0)||_2`` and
        ``lambda_min(H(W_t))`` (an eigendecomposition of the (n*c)^2 Gram per step).
        ``tol`` stops once ``loss <= tol * loss[0]``.  ``callback(t, W, loss)`` may return True
        to stop.
        """
        X = self._X(X)
        Y = self._Y(y, X.shape[0])
        steps = count("steps", steps)
        tol = None if tol is None else positive("tol", tol)
        H0 = self.ntk(X) if record else None
        if H0 is not None:
            ev = np.linalg.eigvalsh(H0)
            lam_max0, lam_min = float(ev[-1]), [float(ev[0])]
        else:
            lam_max0, lam_min = self.lam_max(X), []
        if lr is None:
            if lam_max0 <= 0:
                raise ValidationError("NTK is zero at W_0 (dead network); pass lr explicitly")
            lr, rule = 1.0 / lam_max0, "1/lambda_max(H(W_0))"
        else:
            lr, rule = positive("lr", lr), "given"
        W = self.W.copy()
        losses, drift = [], [0.0] if record else []
        message = f"ran {steps} steps"
        for t in range(steps + 1):
            loss, grad, _ = self._k.loss_grad(W, X, Y, self.a, self.kappa)
            _finite(f"loss or gradient at step {t}", loss, grad)
            losses.append(float(loss))
            if record and t > 0:
                H = self.ntk(X, W)
                ev = np.linalg.eigvalsh(H)
                lam_min.append(float(ev[0]))
                drift.append(float(np.max(np.abs(np.linalg.eigvalsh(H - H0)))))
            if tol is not None and loss <= tol * losses[0]:
                message = f"loss <= {tol:g} * initial loss after {t} steps"
                break
            if callback is not None and callback(t, W, float(loss)):
                message = f"stopped by callback after {t} steps"
                break
            if t < steps:
                W -= lr * grad
        self.W = W
        return FitResult(W=W.copy(), loss=np.array(losses), drift=np.array(drift), lam_min=np.array(lam_min),
                         lam_max0=lam_max0, lr=lr, lr_rule=rule, steps=len(losses) - 1, message=message)


def regression_task(n: int = 32, d: int = 8, seed: int | np.random.Generator = 0) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic regression task: ``x_i`` uniform on the unit sphere, ``y = sin(3 <v, x>) + <v', x>^2``.

    ``y`` is centred and scaled to unit RMS.
    """
    n, d = count("n", n, 1), count("d", d, 1)
    rng = np.random.default_rng(check_seed("seed", seed))
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    v, v2 = rng.standard_normal(d), rng.standard_normal(d)
    y = np.sin(3 * X @ v / np.linalg.norm(v)) + (X @ v2 / np.linalg.norm(v2)) ** 2
    y -= y.mean()
    return X, y / np.sqrt(np.mean(y**2))


def compare_widths(widths=(64, 256, 1024), activations_=("softmax", "relu", "exp"), n: int = 32, d: int = 8,
                   steps: int = 400, eps: float = 1e-3, seed: int = 0, kappa_rules: dict | None = None) -> list[dict]:
    """Train every (activation, width) on :func:`regression_task`; one dict of numbers per run.

    ``kappa_rules`` maps extra row labels to ``(activation, kappa(m))``, e.g.
    ``{"softmax, kappa=sqrt(m)": ("softmax", np.sqrt)}``, to separate the effect of the output
    scale from that of the activation.  Keys: activation (the label), kappa, m, steps_to_eps (None if not reached in ``steps``), final_rel_loss,
    rel_drift (max_t ||H_t - H_0||_2 / ||H_0||_2), cond0 = lam_max0/lam_min0, lam_min_ratio =
    min_t lam_min / lam_min0, and ``fit`` (the :class:`FitResult`).
    """
    X, y = regression_task(n, d, seed)
    runs = [(act, act, None) for act in activations_]
    runs += [(label, act, rule) for label, (act, rule) in (kappa_rules or {}).items()]
    rows = []
    for label, act, rule in runs:
        for m in widths:
            net = TwoLayerNetwork(d, m, activation=act, seed=seed, kappa=None if rule is None else float(rule(m)))
            res = net.fit(X, y, steps=steps, tol=eps)
            lam0 = res.lam_min[0]
            rows.append({"activation": label, "kappa": net.kappa, "m": m, "steps_to_eps": res.steps_to(eps),
                         "final_rel_loss": float(res.loss[-1] / res.loss[0]),
                         "rel_drift": float(res.drift.max() / res.lam_max0),
                         "cond0": float(res.lam_max0 / lam0) if lam0 > 0 else float("inf"),
                         "lam_min_ratio": float(res.lam_min.min() / lam0) if lam0 > 0 else float("nan"),
                         "fit": res})
    return rows
