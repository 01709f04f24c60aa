"""Approximate Newton with a leverage-score sparsified Hessian (seeds 000/001).

    x <- x - H~^{-1} grad L(x),   H~ = K~ + A^T (p q^T + q p^T + T q q^T) A,

where ``K~`` is a spectral ``(1 +- eps0)`` approximation of the diagonal part
``K = A^T diag(beta) A`` (``beta`` includes the regularizer ``w^2``) built from
``m = d_eff ln(2d/delta)/h(eps0)`` rows of ``D^{1/2} A`` sampled by leverage scores and
reweighted (:mod:`softsym.numerics.sketch`), and the rank-2 part is added exactly from the two
matrix-vector products ``A^T p`` and ``A^T q``.

Per iteration the papers' step touches ``A`` only in two passes (``u = A x`` inside the
objective and one ``A^T [g p q]``), a gather of the sampled rows and an ``m d^2`` Gram
product: the ``n d^2`` Hessian product of exact Newton never happens.  Leverage scores of
``D^{1/2} A`` depend on ``x``; they are computed at a *reference* ``beta0`` and reused while
the over-estimate ``tau_i(beta) <= (beta_i/beta0_i) tau0_i / (t (1 - s(t)))``
(:func:`softsym.numerics.sketch.reused_scores`) inflates the sample size by at most ``refresh``
(default 4: a refresh costs about ``n d min(d, 32)`` flops, a larger sample only ``m d^2``),
and recomputed otherwise.

Modes: ``"paper"`` takes the full step with no safeguard; when ``beta`` has non-positive
entries (the papers need ``w^2`` large enough for ``beta > 0``) or ``H~`` is not positive
definite it stops with ``status=4`` and says so.

``"safeguarded"`` (the default) is what the benchmark suite measured fastest
(``benchmarks/bench_approx_newton.py``; numbers in docs/benchmarks.md):

* **cost rule**: when even exact leverage scores (``d_eff = d``) would ask for
  ``m >= exact_above * n`` rows (default ``n/25``: small ``n/d``, where the ``n d^2`` Gram is
  cheaper than the leverage scores, refinement and extra iterations it would save), steps
  use the exact Hessian (``objective.hess``; counted in ``exact_steps``; ``sample_rows``
  then reads ``n``), except that a local-phase step right after an exact one reuses that
  factorization as ``H~`` and refines (``reused_hessian_steps``).  ``exact_above=1``
  samples whenever ``m < n``.
* **refinement** (``refine="auto"``): ``k`` iterative-refinement steps
  ``s += H~^{-1}(-g - H s)`` with exact Hessian-vector products (``A^T diag(beta) A v`` in
  one pass over ``A`` plus the rank-2 part, from the solver's own pieces;
  ``hessian_vector_products`` in the result): with ``H~`` within ``e`` of ``H`` the step's
  contraction factor ``e`` becomes ``e^(k+1)``.  ``k = 2`` in the local phase (the
  previous step was a full step and ``beta`` is not far from positive), ``k = 1``
  otherwise; a refinement that would stop being a descent direction is dropped.
  ``refine=0`` is the papers' step.
* **signed steps and the global phase**: when ``beta`` is not positive, ``|beta|`` is
  sampled with signs (no spectral guarantee in those steps; counted in ``signed_steps``);
  an indefinite ``H~`` is shifted (``shifted_steps``).  In the global phase (a damped
  previous step, or a negative part of ``beta`` above 1e-3 of the positive one) no fresh
  leverage scores are computed: the reference is reused if it covers every row (sample
  capped at ``refresh`` times the reference's), else rows are sampled by ``|beta_i|`` alone
  with ``refresh`` times the sample of ``d_eff = d`` (no pass over ``A``).
* **line search**: Armijo backtracking from the full step by halving; each
  trial is evaluated in one kernel pass (all pieces at once, reused by the next iteration)
  and accepted on Armijo's decrease or, near the rounding floor of the loss
  (``sqrt(n) eps |L|`` for a sum of ``n`` terms, where Armijo's test is noise), on a
  smaller gradient.

Data access (what a non-numpy objective must provide): ``d``, ``n``, ``pieces(x)`` (n-vectors
are turned into numpy arrays with ``np.asarray``: 16 MB each at n = 2e6), ``hess(x)``
(only for exact steps: the cost rule, or ``m >= n``), ``hessp(x, v)`` (only for refinement when the row
access has no ``gram_matvec``) and ``softsym.numerics.sketch.row_access(objective)``
(``objective.row_access()`` or ``objective.A``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from .._validate import count, optional_count, positive
from ..errors import ValidationError
from ..numerics import sketch
from ..numerics.cholesky import shifted_cholesky
from . import line_search
from .base import Solver, SolverFailure, State, Status, norm, register

MODES = ("paper", "safeguarded")
#: refinement steps with ``refine="auto"``: (local phase, otherwise)
AUTO_REFINE = (2, 1)
#: under the cost rule, local-phase steps reuse the previous exact Hessian (refined) this many times in a row
REUSE_EXACT = 1


def _as_numpy(pc):
    """Pieces with numpy n-vectors (a lazy objective may hand out e.g. Dask vectors)."""
    if all(isinstance(v, np.ndarray) for v in (pc.g, pc.beta, pc.p, pc.q)):
        return pc
    return dataclasses.replace(pc, **{k: np.asarray(getattr(pc, k), dtype=np.float64)
                                      for k in ("u", "g", "beta", "p", "q")})


def _rank2(pc, ap: np.ndarray, aq: np.ndarray) -> np.ndarray:
    """The exact rank-2 part ``A^T (p q^T + q p^T + T q q^T) A`` from ``A^T p`` and ``A^T q``."""
    return np.outer(ap, aq) + np.outer(aq, ap) + pc.T * np.outer(aq, aq)


def _assemble(rows, pc, ap: np.ndarray, aq: np.ndarray, scores: np.ndarray, m: int, rng) -> np.ndarray:
    """K~ from m rows sampled by ``scores`` plus the exact rank-2 part (A^T p, A^T q given)."""
    idx, rew = sketch.sample_rows(scores, m, rng)
    return sketch.sampled_gram(rows, pc.beta, idx, rew) + _rank2(pc, ap, aq)


def sparsified_hessian(objective, x, eps0: float = 0.25, delta: float = 0.01, seed=0,
                       leverage: str = "auto") -> tuple[np.ndarray, int]:
    """``(H~, m)``: the solver's Hessian approximation at ``x`` from fresh leverage scores.

    ``K~`` samples ``m = sample_size(sum tau, d, eps0, delta)`` rows of ``|D|^{1/2} A``, so
    ``(1-eps0) K <= K~ <= (1+eps0) K`` with probability >= ``1-delta`` when ``beta > 0``; on
    ``H`` the accuracy is ``eps0 * lambda_max(H^{-1/2} K H^{-1/2})``.
    """
    x = np.asarray(x, dtype=float)
    rows = sketch.row_access(objective)
    rng = sketch.as_generator(seed)
    pc = _as_numpy(objective.pieces(x))
    G = rows.rmatmat(np.column_stack((pc.p, pc.q)))
    tau = sketch.leverage_scores(rows, np.abs(pc.beta), method=leverage, seed=rng)
    m = sketch.sample_size(max(float(tau.sum()), 1.0), x.size, eps0, delta)
    return _assemble(rows, pc, np.ascontiguousarray(G[:, 0]), np.ascontiguousarray(G[:, 1]), tau, m, rng), m


@dataclass
class ApproxNewtonState(State):
    """Approximate Newton's state: the row access and sampling stream of the run, the pieces at
    ``x`` with ``A^T p`` and ``A^T q``, the leverage reference ``(weights, scores, d_eff)``, the
    phase flags and the counters reported in the result."""

    rows: Any = None
    rng: np.random.Generator | None = None
    rule_exact: bool = False
    pieces: Any = None
    ap: np.ndarray | None = None
    aq: np.ndarray | None = None
    V: np.ndarray | None = None
    ref: tuple | None = None
    full_step: bool = False
    lag: tuple | None = None
    samples: list = field(default_factory=list)
    refreshes: int = 0
    exact_steps: int = 0
    reused_steps: int = 0
    signed_steps: int = 0
    shifted_steps: int = 0
    hvps: int = 0


@register
class ApproxNewton(Solver):
    """The papers' approximate Newton method (see the module docstring).

    Options: ``eps0`` in (0, 1) (spectral accuracy of ``K~``, default 0.25), ``delta`` in
    (0, 1) (failure probability per iteration, default 0.01), ``seed`` (int or Generator,
    default 0), ``mode`` ("safeguarded" default, or "paper"), ``leverage`` ("auto", "exact",
    "approx"), ``refresh`` (>= 1, re-sketch when reused scores inflate the sample by more),
    ``sketch_size`` and ``jl_dim`` (see :func:`softsym.numerics.sketch.leverage_scores`), ``refine``
    (safeguarded mode only: ``"auto"`` (default), or k >= 0 iterative-refinement steps per
    iteration; 0 is the papers' step) and ``exact_above`` (safeguarded mode only, default
    0.04: the cost rule's fraction of ``n``).  Result fields: ``sample_rows``,
    ``leverage_refreshes``, ``exact_steps``, ``reused_hessian_steps``, ``signed_steps``, ``shifted_steps``,
    ``hessian_vector_products``, ``mode``, ``eps0``, ``delta``.
    """

    name = "approx-newton"

    def __init__(self, eps0: float = 0.25, delta: float = 0.01, seed=0, mode: str = "safeguarded",
                 leverage: str = "auto", refresh: float = 4.0, sketch_size: int | None = None,
                 jl_dim: int | None = None, refine: int | str = "auto", exact_above: float = 0.04, **unknown):
        super().__init__(**unknown)  # rejects unknown options with ValidationError
        self.eps0 = sketch.open_unit("eps0", eps0)
        self.delta = sketch.open_unit("delta", delta)
        self.seed = seed
        sketch.as_generator(seed)  # validate now
        if mode not in MODES:
            raise ValidationError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        if leverage not in ("auto", "exact", "approx"):
            raise ValidationError(f"leverage must be 'auto', 'exact' or 'approx', got {leverage!r}")
        self.leverage = leverage
        self.refresh = positive("refresh", refresh)
        if self.refresh < 1:
            raise ValidationError(f"refresh must be >= 1, got {refresh!r}")
        # checked here as leverage_scores would check them mid-run (sketch_size >= d needs the data)
        self.sketch_size = optional_count("sketch_size", sketch_size, 1)
        self.jl_dim = optional_count("jl_dim", jl_dim, 1)
        self.refine = refine if isinstance(refine, str) and refine == "auto" else count("refine", refine)
        if mode == "paper":  # the papers' step: no refinement, no exact Hessian
            if self.refine not in (0, "auto"):
                raise ValidationError("refine > 0 is not the papers' method; use it with mode='safeguarded'")
            self.refine = 0
        self.exact_above = positive("exact_above", exact_above)
        if mode == "paper":  # the exact Hessian only when the sample would have >= n rows (the sparsifier's limit)
            self.exact_above = np.inf

    # -- state ----------------------------------------------------------------------------
    def _evaluate(self, objective, x: np.ndarray, ex: ApproxNewtonState) -> ApproxNewtonState:
        """The state ``ex`` moved to ``x``: loss, gradient and the rank-2 vectors there, one A^T [g p q] pass."""
        pc = _as_numpy(objective.pieces(x))
        V = ex.V
        if V is None or V.shape[0] != pc.g.size:  # one (n, 3) buffer per run: no fresh pages per point
            V = np.empty((pc.g.size, 3))
        V[:, 0], V[:, 1], V[:, 2] = pc.g, pc.p, pc.q
        G = ex.rows.rmatmat(V)
        return dataclasses.replace(ex, x=x, f=pc.loss, g=np.ascontiguousarray(G[:, 0]), V=V, pieces=pc,
                                   ap=np.ascontiguousarray(G[:, 1]), aq=np.ascontiguousarray(G[:, 2]))

    def init(self, objective, x0: np.ndarray) -> ApproxNewtonState:
        rows = sketch.row_access(objective)
        rng = sketch.as_generator(self.seed)  # a fresh Generator per run for an int seed: same seed, same iterates
        d = objective.d
        if self.sketch_size is not None and self.sketch_size < d:
            raise ValidationError(f"sketch_size must be >= d = {d} (the number of columns of A), got {self.sketch_size}")
        # the cost rule (safeguarded mode): exact Hessians when even exact scores (d_eff = d)
        # would ask for >= exact_above * n rows
        rule_exact = sketch.sample_size(float(d), d, self.eps0, self.delta) >= self.exact_above * objective.n
        start = ApproxNewtonState(x=x0, f=np.nan, g=np.zeros(d), rows=rows, rng=rng, rule_exact=rule_exact)
        return self._evaluate(objective, x0, start)

    # -- one iteration --------------------------------------------------------------------
    def _scores(self, ex: ApproxNewtonState, weights: np.ndarray, cheap: bool) -> tuple[np.ndarray, float]:
        """Leverage over-estimates of diag(sqrt(weights)) A: reused from the reference when cheap enough.

        With ``cheap`` (global-phase steps: no guarantee to keep) the reference is reused
        whenever it covers every row, with the sample size capped at ``refresh`` times the
        reference's; without such a reference rows are sampled by ``weights`` alone (as if the
        rows of ``A`` had equal leverage) with ``refresh`` times the sample size of
        ``d_eff = d``, which costs no pass over ``A``.
        """
        ref = ex.ref
        if ref is not None:
            got = sketch.reused_scores(weights, ref[0], ref[1])
            if got is not None and got[1] <= self.refresh * ref[2]:
                return got
            if got is not None and cheap:
                return got[0], self.refresh * ref[2]
        if cheap:
            return weights, self.refresh * ex.rows.d
        tau = sketch.leverage_scores(ex.rows, weights, method=self.leverage, seed=ex.rng,
                                     sketch_size=self.sketch_size, jl_dim=self.jl_dim)
        d_eff = float(tau.sum())
        ex.ref = (weights, tau, d_eff)
        ex.refreshes += 1
        return tau, d_eff

    def step(self, objective, state: ApproxNewtonState) -> ApproxNewtonState:
        ex = dataclasses.replace(state, samples=list(state.samples))
        pc = ex.pieces
        beta = pc.beta
        signed = not np.all(beta > 0)
        if signed:
            bad = int(np.count_nonzero(beta <= 0))
            msg = (f"the diagonal part is not positive: {bad} of {beta.size} entries of beta <= 0 "
                   f"(min {beta.min():.3g}); the papers' guarantee needs w^2 large enough that beta > 0")
            if self.mode == "paper":
                raise SolverFailure(Status.INDEFINITE, msg + "; use mode='safeguarded' or a larger regularizer w")
            ex.signed_steps += 1
        weights = np.abs(beta) if signed else beta
        # negative entries at rounding level (a negative mass below 1e-3 of the positive one) do
        # not make a step "global": scores are refreshed and refinement is that of the local phase
        far = signed and float(weights.sum() - beta.sum()) > 2e-3 * float(beta.sum() + weights.sum()) / 2
        d = state.x.size
        n = objective.n
        # exact Hessian by the cost rule (see init), or when the sample would take >= n rows
        exact, m = ex.rule_exact, n
        if not exact and sketch.sample_size(1.0, d, self.eps0, self.delta) < n:
            # global phase (safeguarded mode: a damped previous step, or beta far from positive):
            # no guarantee to keep, so no fresh leverage scores either
            scores, d_eff = self._scores(ex, weights, self.mode != "paper" and (far or not ex.full_step))
            m = sketch.sample_size(max(d_eff, 1.0), d, self.eps0, self.delta)
        exact = exact or m >= n
        local = ex.full_step and not far
        R = _rank2(pc, ex.ap, ex.aq)
        lagged = exact and local and ex.lag is not None and ex.lag[1] < REUSE_EXACT
        if lagged:  # local phase under the cost rule: the previous exact Hessian, refined below
            factor = ex.lag[0]
            ex.lag = (factor, ex.lag[1] + 1)
            ex.reused_steps += 1
        else:
            if exact:
                H = objective.hess(state.x)
                ex.exact_steps += 1
            else:
                idx, rew = sketch.sample_rows(scores, m, ex.rng)
                H = sketch.sampled_gram(ex.rows, beta, idx, rew) + R
            factor = self._factor(H, ex)
            ex.lag = (factor, 0) if exact else None
        ex.samples.append(n if exact else m)
        step = factor(-state.g)
        k = 0 if exact and not lagged else self.refine
        if k == "auto":  # more refinement in the local phase: after a full step, with a positive diagonal part
            k = AUTO_REFINE[0] if local else AUTO_REFINE[1]
        for _ in range(k):  # iterative refinement with exact Hessian-vector products
            refined = step + factor(-state.g - self._hvp(objective, ex.rows, state.x, pc, R, step))
            ex.hvps += 1
            if not float(state.g @ refined) < 0:  # a poor H~ (signed steps) can diverge: keep the descent step
                break
            step = refined
        if not signed:  # a (sketched) Newton step: at the rounding level of x it cannot move x
            line_search.newton_stall(objective, state.x, state.f, state.g, step)
        if self.mode == "paper":
            return self._evaluate(objective, state.x + step, ex)
        return self._line_search(objective, state, step, ex)

    def _line_search(self, objective, state: ApproxNewtonState, step: np.ndarray,
                     ex: ApproxNewtonState) -> ApproxNewtonState:
        """The state at ``x + t step``, ``t`` = 1, 1/2, 1/4, ... (:func:`softsym.solvers.line_search.armijo`).

        A trial is accepted on Armijo's decrease or, with a loss within the rounding floor of a
        sum of n terms, on a smaller gradient.  Every piece at a trial point comes from one
        kernel pass, reused by the next iteration when the trial is accepted.
        """
        evaluated: dict[float, ApproxNewtonState] = {}

        def evaluate(t: float) -> tuple[float, np.ndarray]:
            with np.errstate(over="ignore", invalid="ignore"):
                x = state.x + t * step
            ex.full_step = t == 1.0
            return (objective.pieces(x).loss if np.all(np.isfinite(x)) else np.inf), x

        def near_floor(t: float, ft: float, x: np.ndarray) -> bool:
            evaluated[t] = new = self._evaluate(objective, x, ex)
            return norm(new.g) < norm(state.g)

        # (starting from the previous step length, or quadratic interpolation, measured worse:
        # shorter steps in the global phase)
        t, _, x = line_search.armijo(evaluate, state.f, float(state.g @ step), 1.0,
                                     floor=line_search.rounding_floor(state.f, objective.n), near_floor=near_floor)
        return evaluated[t] if t in evaluated else self._evaluate(objective, x, ex)

    @staticmethod
    def _hvp(objective, rows, x: np.ndarray, pc, R: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Exact ``hess L(x) v``: ``A^T diag(beta) A v + R v`` (one pass) when ``rows`` has
        ``gram_matvec``, else ``objective.hessp``."""
        gram_matvec = getattr(rows, "gram_matvec", None)
        if gram_matvec is None:
            return objective.hessp(x, v)
        return gram_matvec(pc.beta, v) + R @ v

    def _factor(self, H: np.ndarray, ex: ApproxNewtonState):
        """``rhs -> H^{-1} rhs`` by Cholesky; shifted (safeguarded) or SolverFailure (paper) if indefinite."""
        try:
            c = cho_factor(H, lower=True, check_finite=False)
        except LinAlgError:
            if self.mode == "paper":
                raise SolverFailure(Status.INDEFINITE, "the sparsified Hessian is not positive definite "
                                                "(paper mode has no shift); use mode='safeguarded'") from None
            ex.shifted_steps += 1
            c, _ = shifted_cholesky(H)
        return lambda rhs: cho_solve(c, rhs, check_finite=False)

    def extra_result(self, state: ApproxNewtonState) -> dict:
        ex = state
        return {"sample_rows": list(ex.samples), "leverage_refreshes": ex.refreshes,
                "exact_steps": ex.exact_steps, "reused_hessian_steps": ex.reused_steps,
                "signed_steps": ex.signed_steps, "shifted_steps": ex.shifted_steps,
                "hessian_vector_products": ex.hvps, "mode": self.mode, "eps0": self.eps0, "delta": self.delta}
