"""Zeroth-order (forward-only) gradient estimators for normalized-family objectives.

The two-point estimator with ``K`` directions ``z_k`` and step ``mu`` (docs/math.md §2)::

    g_hat = (1/K) sum_k delta_k z_k,      delta_k = [L(x + mu z_k) - L(x - mu z_k)] / (2 mu)

uses loss values only.  All ``2K`` losses come from one matrix product ``V = Z A^T``
(n x d x K) and the generated fused kernel ``loss_dirs_u`` of the member, since
``A (x +- mu z_k) = A x +- mu A z_k``.

Directions
----------
``kind="gaussian"``: ``z ~ N(0, I_d)``.  ``kind="sphere"``: ``z`` uniform on the sphere of
radius ``sqrt(d)`` (a normalized Gaussian).  Both have ``E[z z^T] = I``.  Direction ``k`` of an
estimate is a pure function of ``(seed, k, d, kind)``: uniforms from ``PCG64(seed)`` (a fixed
number ``2 ceil(d/2)`` of them per direction), turned into normals by Box-Muller in a scalar
loop, so a direction regenerated alone (``direction``) or all at once (``directions``) has the
same bits.

Bias and variance
-----------------
For ``L`` three times differentiable, ``delta_k = z_k^T grad L(x) + (mu^2/6) D^3L(x)[z_k, z_k, z_k]
+ O(mu^4)``, so ``E[g_hat] = grad L(x) + O(mu^2)`` (exactly unbiased for quadratics; the
``O(mu^2)`` term is the gradient of the smoothed loss minus the gradient).  As ``mu -> 0``,
``g_hat = (1/K) sum_k z_k z_k^T grad L`` and

* Gaussian: ``E ||g_hat||^2 = ((d + K + 1) / K) ||grad L||^2`` (uses ``E[(z^T g)^2 ||z||^2] = (d + 2)||g||^2``),
* sphere:   ``E ||g_hat||^2 = ((d + K - 1) / K) ||grad L||^2`` (``||z||^2 = d`` exactly),

so ``E ||g_hat - grad L||^2 = ((d + 1)/K) ||grad L||^2`` (Gaussian) or ``((d - 1)/K) ||grad L||^2``
(sphere).  Rounding adds about ``eps |L| / mu`` to each ``delta_k``: the default ``mu = 1e-5``
balances it against the ``mu^2`` bias for losses and data of order one.  Also
``g_hat^T grad L = (1/K) sum_k delta_k^2 + O(mu^2) >= 0``: minus the estimate is a descent
direction, and its slope is known from the losses (used by the ZO solver's line search).

Seed replay
-----------
An :class:`Estimate` keeps the seed, the ``K`` coefficients ``delta_k / K`` and the ``2K`` losses,
never the ``K x d`` directions.  ``Estimate.grad()`` regenerates the directions one at a time and
accumulates ``sum_k c_k z_k`` in the same order and arithmetic as the estimator did, so it
returns the estimator's vector bit for bit, in ``O(d + K)`` memory.  With ``block=B`` the
estimator itself never holds more than ``B`` directions (``B`` GEMMs of ``n x d x 1`` for
``B = 1``), the MeZO memory regime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from .._validate import as_array, count, fits, positive
from .._validate import seed as check_seed
from ..errors import OverflowDetected, ValidationError
from ..numerics.threads import blas_threads
from ..registry import kernels

KINDS = ("gaussian", "sphere")


def check_kind(kind: str) -> str:
    """``kind`` if it names a direction distribution (``KINDS``), else ``ValidationError``."""
    if kind not in KINDS:
        raise ValidationError(f"kind must be one of {KINDS}, got {kind!r}")
    return kind


def stream_seed(seed: int | np.random.Generator | None) -> int:
    """A stream seed (int in [0, 2**63)) from an int, a Generator (one draw) or None (fresh entropy)."""
    seed = check_seed("seed", seed, allow_none=True)
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63))
    if seed is None:
        return int(np.random.default_rng().integers(0, 2**63))
    return seed


def _uniforms_per_direction(d: int) -> int:
    return 2 * ((d + 1) // 2)


@njit(cache=True)
def _box_muller(U, d, sphere):
    """Rows of ``U`` (uniforms in [0, 1)) -> rows of ``d`` standard normals (sphere: scaled to norm sqrt(d)).

    A scalar loop, so each output depends only on its own row and has the same bits wherever
    the row sits in memory.
    """
    K = U.shape[0]
    Z = np.empty((K, d))
    two_pi = 2.0 * math.pi
    for k in range(K):
        for j in range(0, d, 2):
            r = math.sqrt(-2.0 * math.log(1.0 - U[k, j]))
            t = two_pi * U[k, j + 1]
            Z[k, j] = r * math.cos(t)
            if j + 1 < d:
                Z[k, j + 1] = r * math.sin(t)
        if sphere:
            ss = 0.0
            for j in range(d):
                ss += Z[k, j] * Z[k, j]
            scale = math.sqrt(d) / math.sqrt(ss)
            for j in range(d):
                Z[k, j] *= scale
    return Z


def _stream(seed: int, start: int = 0) -> np.random.Generator:
    bg = np.random.PCG64(seed)
    if start:
        bg.advance(start)
    return np.random.Generator(bg)


def directions(d: int, K: int, kind: str = "gaussian", seed: int = 0, start: int = 0) -> np.ndarray:
    """Directions ``start .. start+K-1`` of stream ``seed`` as a (K, d) array (row k = z_{start+k})."""
    d, K, kind, seed = count("d", d, 1), count("K", K, 1), check_kind(kind), stream_seed(seed)
    c = _uniforms_per_direction(d)
    U = _stream(seed, count("start", start) * c).random((K, c))
    return _box_muller(U, d, kind == "sphere")


def direction(d: int, k: int, kind: str = "gaussian", seed: int = 0) -> np.ndarray:
    """Direction ``k`` of stream ``seed`` alone (random access: the stream is advanced, not replayed)."""
    return directions(d, 1, kind, seed, start=k)[0]


def _accumulate(g: np.ndarray, coef: np.ndarray, Z: np.ndarray, k0: int) -> None:
    """g += sum_j coef[k0 + j] Z[j], in order: the one place an estimate's vector is formed."""
    for j in range(Z.shape[0]):
        g += coef[k0 + j] * Z[j]


def _blocks(seed: int, kind: str, d: int, K: int, block: int | None):
    """Yield (k0, Z) for consecutive blocks of the K directions of stream ``seed``."""
    block = K if block is None else count("block", block, 1)
    c = _uniforms_per_direction(d)
    rng = _stream(seed)
    for k0 in range(0, K, block):
        kb = min(block, K - k0)
        yield k0, _box_muller(rng.random((kb, c)), d, kind == "sphere")


@dataclass(frozen=True)
class Estimate:
    """A two-point estimate stored as seeds and coefficients (``O(d + K)`` memory).

    ``losses[k] = (L(x + mu z_k), L(x - mu z_k))``; ``coef[k] = delta_k / K``;
    ``g_hat = sum_k coef[k] z_k``.
    """

    seed: int
    kind: str
    d: int
    mu: float
    losses: np.ndarray
    coef: np.ndarray

    @property
    def K(self) -> int:  # noqa: N802 (the paper's name)
        return int(self.coef.shape[0])

    @property
    def deltas(self) -> np.ndarray:
        """delta_k = [L(x + mu z_k) - L(x - mu z_k)] / (2 mu): directional-derivative estimates."""
        return self.coef * self.K

    @property
    def slope(self) -> float:
        """Estimate of ``g_hat^T grad L(x) = (1/K) sum_k delta_k^2`` (exact as mu -> 0), >= 0."""
        dl = self.deltas
        return float(dl @ dl) / self.K

    def directions(self, block: int | None = None):
        """Yield (k0, Z_block) with the directions regenerated from the seed, ``block`` rows at a time."""
        return _blocks(self.seed, self.kind, self.d, self.K, block)

    def grad(self, block: int = 1) -> np.ndarray:
        """Replay ``g_hat`` from the seed: the estimator's vector bit for bit, ``O(d + block d)`` memory."""
        g = np.zeros(self.d)
        for k0, Z in self.directions(block):
            _accumulate(g, self.coef, Z, k0)
        return g


def check_size(n: int, d: int, K: int, block: int | None) -> None:
    """``ValidationError`` naming ``K`` (and ``block``) when an estimate's arrays would not fit in
    memory: ``2K`` losses plus one block of directions ``Z`` (block x d) and of ``Z A^T`` (block x n)."""
    rows = K if block is None else min(block, K)
    blocks = "" if block is None else f" in blocks of {block}"
    fits("K" if block is None else "K, block", 8 * (2 * K + rows * (d + n)),
         f"a zeroth-order estimate with K={K} directions{blocks} (n={n}, d={d})")


def estimate(objective, x, K: int = 16, mu: float = 1e-5, kind: str = "gaussian",
             seed: int | np.random.Generator | None = 0, block: int | None = None) -> tuple[np.ndarray, Estimate]:
    """Two-point zeroth-order gradient estimate of ``objective`` at ``x`` from ``2K`` loss values.

    Parameters
    ----------
    objective : a normalized-family objective (:class:`softsym.NormalizedObjective`; it needs ``u(x)``, ``A``, ``b``, ``w``).
    K : number of directions.   mu : finite-difference step (> 0).
    kind : ``"gaussian"`` or ``"sphere"`` (uniform on the sqrt(d)-sphere).
    seed : stream seed (int), a Generator (one integer is drawn from it) or None (fresh).
    block : directions per matrix product; ``None`` = all K at once (one n x d x K GEMM and one
        fused kernel call).  ``block=1`` never holds more than one direction: ``O(d + n + K)`` memory.

    Returns ``(g_hat, est)``; ``est.grad()`` replays ``g_hat`` bit-exactly from the seed.  Adds
    ``2K`` to ``objective.nfev``.  Raises ``OverflowDetected`` when a perturbed loss is not finite.
    """
    K, kind, seed = count("K", K, 1), check_kind(kind), stream_seed(seed)
    mu = positive("mu", mu)
    x = as_array("x", x, 1, (objective.d,))
    if not isinstance(getattr(objective, "A", None), np.ndarray):
        raise ValidationError(f"the zeroth-order estimator needs an objective with A in memory (a NumPy array); "
                              f"{type(objective).__name__} has none")
    check_size(objective.A.shape[0], objective.d, K, block)
    # u = A x from the objective (memoized: ZO-GD has just evaluated L(x)), so the estimate's
    # bits never depend on whether x was evaluated before
    u = objective.u(x)
    kern = kernels(objective.name)
    if not hasattr(kern, "loss_dirs_u"):
        raise ValidationError(f"kernels of {objective.name!r} predate the batched loss kernel; regenerate them")
    losses = np.empty((K, 2))
    key = f"zeroth order directions {objective.A.shape[0]}x{objective.d}x{K if block is None else block}"
    for k0, Z in _blocks(seed, kind, objective.d, K, block):
        with blas_threads(key):
            V = Z @ objective.A.T
        losses[k0:k0 + Z.shape[0]] = kern.loss_dirs_u(u, V, mu, objective.b, objective.w)
    add = getattr(objective, "add_evaluations", None)
    if add is not None:  # under the objective's lock (threads sharing it keep exact counts)
        add("nfev", 2 * K)
    else:
        objective.nfev += 2 * K
    if not np.all(np.isfinite(losses)):
        hint = "" if objective.info.shift_invariant else " (this member is not shift invariant: reduce mu or rescale A)"
        raise OverflowDetected(f"{objective.name}: non-finite loss at x +- mu z_k{hint}")
    with np.errstate(over="ignore", invalid="ignore"):
        coef = (losses[:, 0] - losses[:, 1]) / (2.0 * mu * K)
    if not np.all(np.isfinite(coef)):  # finite losses near the float limit whose difference overflows
        raise OverflowDetected(f"{objective.name}: the finite differences overflow at this x (losses up to "
                               f"{float(np.max(np.abs(losses))):.3g}, mu = {mu:g})")
    est = Estimate(seed=seed, kind=kind, d=objective.d, mu=mu, losses=losses, coef=coef)
    if block is None or block >= K:  # the single block's directions are still at hand
        g = np.zeros(objective.d)
        _accumulate(g, coef, Z, 0)
    else:  # memory-lean: regenerate block by block
        g = est.grad(block)
    if not np.all(np.isfinite(g)):
        raise OverflowDetected(f"{objective.name}: the gradient estimate overflows at this x "
                               f"(largest |delta_k| = {float(np.max(np.abs(coef))) * K:.3g})")
    return g, est


def second_moment_factor(d: int, K: int, kind: str = "gaussian") -> float:
    """``E||g_hat||^2 / ||grad L||^2`` as mu -> 0: (d+K+1)/K (Gaussian) or (d+K-1)/K (sphere)."""
    d, K, kind = count("d", d, 1), count("K", K, 1), check_kind(kind)
    return (d + K + (1 if kind == "gaussian" else -1)) / K


def replay_path(x0, record: list[tuple[int, np.ndarray, float]], kind: str, block: int = 1) -> np.ndarray:
    """Replay a ZO-GD run from ``x0`` and its record ``[(seed, coef, step), ...]`` (``res.zo_record``).

    Recomputes ``x <- x - step * g_hat`` with every ``g_hat`` regenerated from its seed, so the
    final iterate equals the solver's bit for bit while only seeds and coefficients were stored.
    """
    x = as_array("x0", x0, 1).copy()
    for seed, coef, step in record:
        est = Estimate(seed=int(seed), kind=kind, d=x.shape[0], mu=1.0, losses=np.empty((0, 2)),
                       coef=np.asarray(coef, dtype=float))
        x = x - step * est.grad(block)
    return x
