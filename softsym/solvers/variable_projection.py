"""Variable projection for attention regression (paper 003): Newton on phi(X) = min_Y L(X, Y).

Our reading of the paper's iterative (Newton-type) algorithm.  L is a convex quadratic in Y,
so Y*(X) is one least-squares solve (``AttentionRegression.minimize_y``).  Each iteration takes
a Newton step on phi, whose gradient is dL/dX at (X, Y*(X)) and whose Hessian is the Schur
complement H_xx - H_xy H_yy^+ H_yx (the X-Y coupling included), with Armijo backtracking on
phi (every trial X gets its own Y*(X)); convergence is quadratic near a nondegenerate
minimizer.  Registered for the attention family as ``newton`` (the full reduced Hessian) and
``newton-cg`` (truncated CG on the matrix-free reduced Hessian-vector product).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import OverflowDetected, ValidationError
from ..numerics.cg import truncated_cg
from ..numerics.cholesky import NotPositiveDefinite, shifted_cholesky_solve
from ..problems.attention import AttentionRegression, JointObjective
from .base import Solver, SolverFailure, State, Status, norm, register
from .line_search import backtracking, newton_stall


@dataclass
class VariableProjectionState(State):
    """State in z = [vec X, vec Y]: CG iterations so far, and whether Y is Y*(X) (after a step)."""

    cg_iters: int = 0
    y_star: bool = False


#: above this many unknowns in X (d^2) lambda_min comes from Lanczos on the matrix-free product
#: (the dense reduced Hessian costs d^2 cross-Hessian products, O(n^2 d^3))
DENSE_LIMIT = 64


def reduced_spectrum(prob: AttentionRegression, X: np.ndarray, Y: np.ndarray) -> tuple[float, float]:
    """(lambda_min, max |lambda|) of the reduced Hessian (Schur complement) at (X, Y*(X)).

    Dense ``eigvalsh`` of the d^2 x d^2 matrix up to ``DENSE_LIMIT`` unknowns, otherwise
    Lanczos (``eigsh``) on ``reduced_hessp_x``.
    """
    k = prob.d
    if k * k <= DENSE_LIMIT:
        ev = np.linalg.eigvalsh(prob.reduced_hess_x(X, Y))
        return float(ev[0]), float(np.max(np.abs(ev)))
    from scipy.sparse.linalg import LinearOperator, eigsh
    op = LinearOperator((k * k, k * k), dtype=float,
                        matvec=lambda v: prob.reduced_hessp_x(X, Y, np.ravel(v).reshape(k, k)).ravel())
    ev = eigsh(op, k=2, which="BE", tol=1e-6, return_eigenvectors=False,
               v0=np.ones(k * k) / k)   # both ends in one Lanczos run; fixed v0: same input, same answer
    return float(np.min(ev)), float(np.max(np.abs(ev)))


class _InX:
    """L(., Y) as a function of x = vec(X), for the line search."""

    def __init__(self, prob, Y: np.ndarray):
        self.prob, self.Y = prob, Y

    def fun(self, x: np.ndarray) -> float:
        k = self.prob.d
        return self.prob.loss(x.reshape(k, k), self.Y)

    def jac(self, x: np.ndarray) -> np.ndarray:
        k = self.prob.d
        return self.prob.grad(x.reshape(k, k), self.Y)[0].ravel()


class _Reduced:
    """phi(X) = min_Y L(X, Y) as a function of x = vec(X), for the line search.

    Each trial X gets Y*(X) by one least-squares solve started from the current Y, and phi(X)
    with it, from one forward sweep (``AttentionRegression.y_star_and_value``); the last
    (x, Y*(x), phi(x)) is kept so the accepted step's Y need not be recomputed.
    """

    def __init__(self, prob, Y: np.ndarray):
        self.prob, self.Y = prob, Y
        self.last: tuple[np.ndarray, np.ndarray, float] | None = None

    def _at(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        if self.last is None or not np.array_equal(self.last[0], x):
            k = self.prob.d
            self.last = (x.copy(), *self.prob.y_star_and_value(x.reshape(k, k), self.Y))
        return self.last

    def y_star(self, x: np.ndarray) -> np.ndarray:
        return self._at(x)[1]

    def fun(self, x: np.ndarray) -> float:
        return self._at(x)[2]

    def jac(self, x: np.ndarray) -> np.ndarray:
        k = self.prob.d
        return self.prob.grad(x.reshape(k, k), self.y_star(x))[0].ravel()


def _newton_direction(method: str, g: np.ndarray, hess: Callable[[], np.ndarray],
                      hvp: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, int, bool]:
    """Newton direction in x for ``method`` ("newton": shifted Cholesky on ``hess()``, "newton-cg":
    truncated CG on ``hvp``), steepest descent when that is not a descent direction; (d, CG iters,
    whether ``d`` is a Newton step: unshifted, not replaced by steepest descent)."""
    cg_iters, tau = 0, 0.0
    if method == "newton":
        try:
            d, tau = shifted_cholesky_solve(hess(), -g)
        except NotPositiveDefinite as exc:
            raise SolverFailure(Status.INDEFINITE, str(exc)) from None
    else:
        d, cg_iters = truncated_cg(hvp, g, 2 * g.size + 10)
    if not float(g @ d) < 0:
        return -g, cg_iters, False
    return d, cg_iters, tau == 0


class _VariableProjection(Solver):
    """Newton on phi(X) = min_Y L(X, Y) (Schur-complement Hessian), backtracking on phi.

    ``reduced=False`` runs the coupling-blind alternation instead (kept for comparison): exact
    Y-minimization, then a Newton step in X with d2L/dx2 at fixed Y and backtracking on
    L(., Y); it converges only linearly.
    """

    families = ("attention",)
    direction: str  # "newton" or "newton-cg"

    def __init__(self, reduced: bool = True, psd_tol: float = 1e-8):
        if not isinstance(reduced, bool):
            raise ValidationError(f"reduced must be True or False, got {reduced!r}")
        if not (isinstance(psd_tol, (int, float)) and np.isfinite(psd_tol) and psd_tol >= 0):
            raise ValidationError(f"psd_tol must be a finite number >= 0, got {psd_tol!r}")
        self.reduced = reduced
        self.psd_tol = float(psd_tol)

    def assess(self, objective: JointObjective, state: State, status: int) -> dict:
        """lambda_min of the reduced Hessian at the final X (with Y = Y*(X)) and what is known.

        The point counts as a minimum when ``lambda_min >= -psd_tol * max(1, max |lambda|)``;
        a converged run at a point that is not is reported with status ``SADDLE`` (5).
        (``softsym.minimize`` adds whether the derived bounds give a global guarantee.)
        """
        prob = objective.prob
        X, Y = objective.split(state.x)
        Y = prob.minimize_y(X, Y)
        lmin, lmax = reduced_spectrum(prob, X, Y)
        tol = self.psd_tol * max(1.0, lmax)
        is_min = lmin >= -tol
        out = {"lambda_min": lmin, "psd_tol": tol, "is_minimum": bool(is_min and status == 0)}
        if status == 0 and not is_min:
            out.update(status=Status.SADDLE, message=f"stationary point is not a minimum: lambda_min of the reduced Hessian "
                                              f"{lmin:.3g} < -{tol:.3g}")
        return out

    def init(self, objective: JointObjective, x0: np.ndarray) -> VariableProjectionState:
        f, g = objective.fun_and_jac(x0)
        return VariableProjectionState(x=x0, f=f, g=g)

    def step(self, objective: JointObjective, state: VariableProjectionState) -> VariableProjectionState:
        step = self._reduced_step if self.reduced else self._alternating_step
        return step(objective, state)

    def _reduced_step(self, objective: JointObjective, state: VariableProjectionState) -> VariableProjectionState:
        prob = objective.prob
        k = prob.d
        X, Y = objective.split(state.x)
        if not state.y_star:  # the start's Y0 is arbitrary: project once
            Y = prob.minimize_y(X, Y)
        f, gX = prob.hess_state(X, Y)[:2]
        g = gX.ravel()
        d, cg_iters, is_newton = _newton_direction(self.direction, g, lambda: prob.reduced_hess_x(X, Y),
                                                   lambda v: prob.reduced_hessp_x(X, Y, v.reshape(k, k)).ravel())
        phi = _Reduced(prob, Y)
        if norm(g) > 0:
            if is_newton and state.y_star:
                newton_stall(phi, X.ravel(), float(f), g, d, n_terms=prob.n * k)
            t, _ = backtracking(phi, X.ravel(), float(f), g, d, n_terms=prob.n * k)
            X = X + t * d.reshape(k, k)
        Y = phi.y_star(X.ravel())
        z = np.concatenate([X.ravel(), Y.ravel()])
        f, gz = objective.fun_and_jac(z)
        return VariableProjectionState(x=z, f=f, g=gz, cg_iters=state.cg_iters + cg_iters, y_star=True)

    def _alternating_step(self, objective: JointObjective,
                          state: VariableProjectionState) -> VariableProjectionState:
        """Exact Y-minimization, then a Newton step in X at fixed Y with backtracking on L(., Y)."""
        prob = objective.prob
        k = prob.d
        X, Y_in = objective.split(state.x)
        Y = prob.minimize_y(X, Y_in)
        f, gX = prob.hess_state(X, Y)[:2]
        g = gX.ravel()
        d, cg_iters, is_newton = _newton_direction(self.direction, g, lambda: prob.hess_x(X, Y),
                                                   lambda v: prob.hessp_x(X, Y, v.reshape(k, k)).ravel())
        if norm(g) > 0:
            if is_newton and np.array_equal(Y, Y_in):  # Y did not move: the step in X alone decides
                newton_stall(_InX(prob, Y), X.ravel(), float(f), g, d, n_terms=prob.n * k)
            t, _ = backtracking(_InX(prob, Y), X.ravel(), float(f), g, d, n_terms=prob.n * k)
            X = X + t * d.reshape(k, k)
        z = np.concatenate([X.ravel(), Y.ravel()])
        f, gz = objective.fun_and_jac(z)
        return VariableProjectionState(x=z, f=f, g=gz, cg_iters=state.cg_iters + cg_iters)

    def extra_result(self, state: VariableProjectionState) -> dict:
        return {"cg_iters": int(state.cg_iters)}


@register
class VariableProjectionNewton(_VariableProjection):
    """Variable projection with the full d^2 x d^2 reduced Hessian (Cholesky, shifted when
    indefinite); for small d."""

    name = "newton"
    direction = "newton"


@register
class VariableProjectionNewtonCG(_VariableProjection):
    """Variable projection with truncated CG on the matrix-free reduced Hessian-vector product
    (one pass of five n^2 d products each); the default for attention."""

    name = "newton-cg"
    direction = "newton-cg"


@dataclass
class Screened:
    """The end of a screening descent on phi: ``X``, ``Y = Y*(X)``, ``phi`` = L(X, Y*(X)), and the
    iterations and phi-and-gradient evaluations it took."""

    X: np.ndarray
    Y: np.ndarray
    phi: float
    nit: int
    nfev: int


def screen_reduced(prob: AttentionRegression, X0: np.ndarray, iters: int) -> Screened:
    """A cheap first-order descent on phi(X) = min_Y L(X, Y) from ``X0``: ``iters`` L-BFGS iterations.

    Each evaluation is one forward sweep for Y*(X) and phi (``y_star_and_value``) and one for the
    gradient dL/dX at (X, Y*(X)), which is the gradient of phi (Y*(X) minimizes L(X, .)); O(n^2 d)
    each, against d^2 Hessian-vector products per Newton iteration.  Used to rank the starts of a
    multi-start by where they lead (``softsym.minimize_multistart``), not as a solver: it reports
    no convergence, and the ranked starts are finished by ``softsym.minimize``.
    """
    from scipy.optimize import minimize as scipy_minimize

    k = prob.d
    X0 = np.asarray(X0, dtype=float).reshape(k, k)
    scale = max(float(np.sum(prob.B * prob.B)), np.finfo(float).tiny)  # L-BFGS on phi / ||B||^2 (order one)
    Y = np.zeros((k, k))
    best: list = [np.inf, X0.copy(), Y]
    nfev = nit = 0

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal Y, nfev
        X = x.reshape(k, k)
        Y, val = prob.y_star_and_value(X, Y)
        _, gX, _ = prob.value_and_grad(X, Y)
        nfev += 1
        if val < best[0]:
            best[:] = [val, X.copy(), Y.copy()]
        return val / scale, gX.ravel() / scale

    def count_iteration(_x: np.ndarray) -> None:
        nonlocal nit
        nit += 1

    try:
        scipy_minimize(fun, X0.ravel(), jac=True, method="L-BFGS-B", callback=count_iteration,
                       options={"maxiter": iters, "gtol": 0.0, "ftol": 0.0, "maxcor": 20})
    except OverflowDetected:  # a trial step too long for the softmax: keep the best point so far
        pass
    if not np.isfinite(best[0]):
        raise OverflowDetected("attention: non-finite loss at the screening start")
    return Screened(X=best[1], Y=best[2], phi=float(best[0]), nit=nit, nfev=nfev)
