"""The papers' theorems exercised where their assumptions hold (papers 000, 001, 002).

* :func:`certified_instance`: data for a normalized member that satisfies the theorems'
  assumptions -- ``w_min^2 >= C + l / sigma_min(A)^2`` with ``C`` the derived bound at
  ``R_A = ||A||_2`` and a radius ``R_x`` holding the minimizer, and a start ``x0`` certified by
  :func:`softsym.theory.start.start_condition` (``M ||x0 - x*|| <= 0.1 l``).
* :func:`newton_contraction`: paper-mode approximate Newton on such an instance; per-step
  contraction against the theorem's 0.4 and against the bound's prediction, how often the
  ``(1 +- eps0)`` sparsifier holds, iterations against ``log(1/eps)``.
* :func:`zeroth_order_rate`: zeroth-order descent with the certified step
  ``K / ((d + K) smooth)``; iterations to ``eps`` against the predicted rate.
* :func:`perturbation_study`: the perturbation corollary ``||x*(A,b) - x*(A',b')|| <=
  (G_A ||dA|| + G_b ||db||) / l`` measured against the bound.

All functions are deterministic in their ``seed``.  ``benchmarks/theory_guarantees.py`` turns
them into the tables and plots of ``docs/papers/000.md``, ``001.md`` and ``002.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._validate import count, positive
from ..errors import ValidationError
from ..problems import normalized as problems
from ..registry import member
from ..solvers.approx_newton import sparsified_hessian
from ..solvers.base import make_solver, run
from .bounds import Bounds, bounds, data_quantities
from .start import start_condition

#: the rate the papers' approximate-Newton theorem proves from a certified start
PAPER_RATE = 0.4


@dataclass
class CertifiedInstance:
    """A normalized-member instance inside the theorems' assumptions (see :func:`certified_instance`)."""

    name: str
    A: np.ndarray
    b: np.ndarray
    w: np.ndarray
    x_planted: np.ndarray
    x_min: np.ndarray
    x0: np.ndarray
    R_A: float
    R_x: float
    sigma_min: float
    l: float
    bounds: Bounds
    start: dict = field(repr=False)

    def objective(self) -> problems.Objective:
        return problems.NormalizedObjective(self.name, self.A, self.b, self.w)


def _solve(objective, x0, tol: float = 1e-14, maxiter: int = 200) -> np.ndarray:
    res = run(make_solver("normalized", "newton", {}), objective, x0, tol, maxiter)
    if not res.success:
        raise ValidationError(f"exact Newton did not solve the instance: {res.message}")
    return np.asarray(res.x)


def designed_matrix(n: int, d: int, sigma_min: float, R_A: float, rng: np.random.Generator) -> np.ndarray:
    """``A = Q diag(s) V^T`` with orthonormal ``Q`` (n x d), ``V`` and singular values from ``sigma_min`` to ``R_A``."""
    Q, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = np.linspace(sigma_min, R_A, d) if d > 1 else np.array([R_A])
    return np.ascontiguousarray((Q * s) @ V.T)


def certified_instance(name: str, n: int = 4000, d: int = 5, seed: int = 0, R_A: float = 1.0,
                       sigma_min: float = 0.5, radius: float = 0.5, l_extra: float = 1.0,
                       start_scale: float = 0.5) -> CertifiedInstance:
    """Planted data for ``name`` satisfying the theorems' assumptions, with a certified start.

    ``A`` has singular values from ``sigma_min`` to ``R_A`` (:func:`designed_matrix`); ``b`` is
    planted at ``x_planted`` (``||x_planted|| = radius``); the uniform weight ``w`` has
    ``w^2 = C + l_extra`` with ``C`` the derived bound at ``R_A`` and ``R_x = 2 radius`` (so
    ``l = sigma_min^2 l_extra`` there).  The minimizer ``x_min`` of the regularized loss comes
    from exact Newton; the start ``x0 = x_min + t v`` (``v`` a random unit vector,
    ``t = start_scale ||x_min||`` halved until certified) is certified by
    :func:`~softsym.theory.start.start_condition`, whose radius ``R_x`` and ``l`` are recorded.
    """
    info = member(name, family="normalized")
    n, d = count("n", n, 1), count("d", d, 1)
    R_A, sigma_min, radius = positive("R_A", R_A), positive("sigma_min", sigma_min), positive("radius", radius)
    l_extra, start_scale = positive("l_extra", l_extra), positive("start_scale", start_scale)
    if sigma_min > R_A:
        raise ValidationError(f"sigma_min must be <= R_A, got {sigma_min} > {R_A}")
    rng = np.random.default_rng([seed, n, d])
    A = designed_matrix(n, d, sigma_min, R_A, rng)
    x_planted = rng.standard_normal(d)
    x_planted *= radius / np.linalg.norm(x_planted)
    b = problems.planted(info.name, A, x_planted)
    q = data_quantities(A, b, np.ones(n))
    C = bounds(info.name, n=n, b_norm=q.b_norm, w_max=0.0, region=q.region, R_A=q.norm_A, R_x=2 * radius).C
    if not math.isfinite(C):
        raise ValidationError(f"{info.name}: no finite C at R_A = {q.norm_A:.3g}, R_x = {2 * radius:.3g}")
    w = np.full(n, math.sqrt(C + l_extra))
    obj = problems.NormalizedObjective(info.name, A, b, w)
    x_min = _solve(obj, x_planted)
    v = rng.standard_normal(d)
    v /= np.linalg.norm(v)
    t = start_scale * max(float(np.linalg.norm(x_min)), radius)
    for _ in range(60):
        x0 = x_min + t * v
        sc = start_condition(obj, x0)
        if sc["start_certified"]:
            break
        t *= 0.5
    else:
        raise ValidationError(f"{info.name}: no certified start found: {sc['start_condition']['reason']}")
    info_sc = sc["start_condition"]
    bd = bounds(info.name, n=n, b_norm=q.b_norm, w_max=float(w[0]), region=q.region, l=info_sc["l"],
                R_A=info_sc["R_A"], R_x=info_sc["R_x"])
    return CertifiedInstance(name=info.name, A=A, b=b, w=w, x_planted=x_planted, x_min=x_min, x0=x0,
                             R_A=info_sc["R_A"], R_x=info_sc["R_x"], sigma_min=q.sigma_min, l=info_sc["l"],
                             bounds=bd, start=sc)


# ----------------------------------------------------------------------------------------
# Approximate Newton (papers 000, 001)

def _k_part(objective, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(H, K)``: the exact Hessian and its diagonal part ``A^T diag(beta) A`` at ``x``."""
    pc = objective.pieces(x)
    A = objective.A
    return objective.hess(x), A.T @ (np.asarray(pc.beta)[:, None] * A)


def _rel_spectrum(H: np.ndarray, E: np.ndarray) -> np.ndarray:
    """Eigenvalues of ``H^{-1/2} E H^{-1/2}`` (``H`` positive definite)."""
    L = np.linalg.cholesky(H)
    Li = np.linalg.inv(L)
    return np.linalg.eigvalsh(Li @ E @ Li.T)


def sparsifier_accuracy(objective, x, eps0: float, draws: int = 20, seed: int = 0) -> dict:
    """How often the sampled ``K~`` is a ``(1 +- eps0)`` approximation of ``K = A^T diag(beta) A`` at ``x``.

    ``draws`` independent sparsified Hessians (the solver's own :func:`sparsified_hessian`);
    for each, ``eps_K = max |eig(K^{-1/2} (K~ - K) K^{-1/2})|`` (``H~ - H = K~ - K``) and
    ``eps_H`` the same relative to ``H``.  Returns the fraction with ``eps_K <= eps0``, the
    measured values and the sample sizes.
    """
    x = np.asarray(x, dtype=float)
    H, K = _k_part(objective, x)
    if not np.all(np.linalg.eigvalsh(K) > 0):
        raise ValidationError("K = A^T diag(beta) A is not positive definite: the sparsifier has no guarantee here")
    rng = np.random.default_rng(seed)
    eK, eH, ms = [], [], []
    for _ in range(count("draws", draws, 1)):
        Ht, m = sparsified_hessian(objective, x, eps0=eps0, seed=rng)
        eK.append(float(np.max(np.abs(_rel_spectrum(K, Ht - H)))))
        eH.append(float(np.max(np.abs(_rel_spectrum(H, Ht - H)))))
        ms.append(int(m))
    eK_a = np.array(eK)
    return {"eps0": eps0, "fraction_within": float(np.mean(eK_a <= eps0)), "eps_K": eK, "eps_H": eH,
            "sample_rows": ms, "n": objective.n}


@dataclass
class ContractionRun:
    """One paper-mode approximate-Newton run from a certified start (see :func:`newton_contraction`)."""

    name: str
    eps0: float
    seed: int
    errors: list[float]          # ||x_t - x_min||, t = 0, 1, ...
    ratios: list[float]          # errors[t+1] / errors[t] above the rounding floor
    predicted: list[float]       # the bound's per-step factor at x_t (same steps as ratios)
    iterations: dict[float, int]  # eps -> first t with errors[t] <= eps errors[0]
    sample_rows: list[int]
    status: int
    message: str

    @property
    def worst_ratio(self) -> float:
        return max(self.ratios) if self.ratios else 0.0


def predicted_factor(objective, x: np.ndarray, x_min: np.ndarray, eps0: float, l: float, M: float) -> float:
    """The bound's per-step factor at ``x``: ``(sqrt(kappa) e + M r / (2 l)) / (1 - e)``.

    From ``x+ - x* = H~^{-1} [(H~ - H) e + (H - H_bar) e]`` with ``H_bar`` the mean Hessian on
    the segment (``||H - H_bar|| <= M r / 2``, ``r = ||x - x*||``), ``H~ = H^{1/2} (I + E)
    H^{1/2}`` with ``||E|| <= e`` and ``H >= l I``: ``e = eps0 lambda_max(H^{-1/2} K H^{-1/2})``
    is what a ``(1 +- eps0)`` sparsifier of ``K`` gives on ``H``; ``kappa = cond(H(x))``.
    ``inf`` when ``e >= 1``.
    """
    H, K = _k_part(objective, x)
    ev = np.linalg.eigvalsh(H)
    e = eps0 * float(np.max(_rel_spectrum(H, K)))
    if e >= 1 or ev[0] <= 0:
        return math.inf
    r = float(np.linalg.norm(x - x_min))
    return (math.sqrt(ev[-1] / ev[0]) * e + M * r / (2 * l)) / (1 - e)


def newton_contraction(inst: CertifiedInstance, eps0: float = 0.25, seed: int = 0, tol: float = 1e-13,
                       maxiter: int = 60, eps_grid=tuple(10.0 ** -k for k in range(1, 11))) -> ContractionRun:
    """Paper-mode approximate Newton from the certified start ``inst.x0``.

    Per step: the measured ``||x_{t+1} - x*|| / ||x_t - x*||`` (steps whose error is above
    ``1e3 eps_mach max(1, ||x*||)``, the rounding floor of ``x*``), the bound's factor
    (:func:`predicted_factor` with the certified ``l`` and ``M``), and the iterations needed to
    reduce the error by each factor in ``eps_grid``.
    """
    obj = inst.objective()
    xs: list[np.ndarray] = []
    solver = make_solver("normalized", "approx-newton", {"mode": "paper", "eps0": eps0, "seed": seed})
    res = run(solver, obj, inst.x0, tol, maxiter, callback=lambda r: xs.append(np.asarray(r.x)))
    pts = [np.asarray(inst.x0)] + xs
    errs = [float(np.linalg.norm(x - inst.x_min)) for x in pts]
    floor = 1e3 * np.finfo(float).eps * max(1.0, float(np.linalg.norm(inst.x_min)))
    ratios, pred = [], []
    for t in range(len(errs) - 1):
        if errs[t] > floor:
            ratios.append(errs[t + 1] / errs[t])
            pred.append(predicted_factor(obj, pts[t], inst.x_min, eps0, inst.l, inst.bounds.M))
    iters = {}
    for eps in eps_grid:
        hit = [t for t, e in enumerate(errs) if e <= eps * errs[0]]
        iters[float(eps)] = hit[0] if hit else -1
    return ContractionRun(name=inst.name, eps0=eps0, seed=seed, errors=errs, ratios=ratios, predicted=pred,
                          iterations=iters, sample_rows=list(res.get("sample_rows", [])), status=int(res.status),
                          message=str(res.message))


# ----------------------------------------------------------------------------------------
# Zeroth order (paper 002)

@dataclass
class ZORun:
    """Zeroth-order descent with the certified step (see :func:`zeroth_order_rate`)."""

    name: str
    K: int
    d: int
    lr: float
    smooth: float             # certified gradient-Lipschitz bound used for the step
    l: float                  # certified strong convexity
    l_true: float             # lambda_min(hess L(x*))
    smooth_true: float        # lambda_max(hess L(x*))
    eps: float
    iterations: int           # first t with (L(x_t) - L*) <= eps (L(x0) - L*); -1 if not reached
    predicted: float          # log(1/eps) / -log(rho), rho from the certified constants
    predicted_true: float     # the same with the true curvatures at x*
    left_region: bool         # an iterate left ||x|| <= R_x


def zo_rate(K: int, d: int, l: float, smooth: float) -> float:
    """Expected per-iteration contraction of the loss gap with ``lr = K / ((d + K) smooth)``.

    ``E L(x+) <= L - lr ||g||^2 + (smooth lr^2 / 2) ((d + K + 1) / K) ||g||^2`` (Gaussian
    directions, ``mu -> 0``) ``= L - lr (d + K - 1) / (2 (d + K)) ||g||^2``, and
    ``||g||^2 >= 2 l (L - L*)``: ``rho = 1 - K (d + K - 1) l / ((d + K)^2 smooth)``.
    """
    return 1.0 - K * (d + K - 1) * l / ((d + K) ** 2 * smooth)


def zeroth_order_rate(inst: CertifiedInstance, K: int, eps: float = 1e-6, seed: int = 0,
                      maxiter: int = 200_000) -> ZORun:
    """ZO descent (``lr="certified"``, ``R_x`` of the instance) from ``inst.x0`` until the gap drops by ``eps``."""
    obj = inst.objective()
    f_star = obj.fun(inst.x_min)
    gap0 = obj.fun(inst.x0) - f_star
    state = {"t": 0, "hit": -1, "out": False}
    R_x = inst.R_x

    def cb(r):
        state["t"] += 1
        if float(np.linalg.norm(r.x)) > R_x:
            state["out"] = True
        if r.fun - f_star <= eps * gap0:
            state["hit"] = state["t"]
            raise StopIteration

    solver = make_solver("normalized", "zo", {"K": K, "lr": "certified", "R_x": R_x, "seed": seed})
    res = run(solver, obj, inst.x0, 0.0, maxiter, callback=cb)
    d = obj.d
    ev = np.linalg.eigvalsh(obj.hess(inst.x_min))
    smooth = float(res.zo_options["certified_smooth"])
    rho, rho_t = zo_rate(K, d, inst.l, smooth), zo_rate(K, d, float(ev[0]), float(ev[-1]))
    return ZORun(name=inst.name, K=K, d=d, lr=float(res.zo_options["lr"]), smooth=smooth, l=inst.l, l_true=float(ev[0]),
                 smooth_true=float(ev[-1]), eps=eps, iterations=state["hit"],
                 predicted=math.log(1 / eps) / -math.log(rho), predicted_true=math.log(1 / eps) / -math.log(rho_t),
                 left_region=state["out"])


# ----------------------------------------------------------------------------------------
# Perturbation corollary (paper 001)

@dataclass
class PerturbationRow:
    """One perturbation of ``(A, b)``: sizes, measured displacement, bound, tightness."""

    size: float
    dA: float
    db: float
    moved: float
    bound: float

    @property
    def tightness(self) -> float:
        return self.bound / self.moved if self.moved > 0 else math.inf


def perturbation_study(inst: CertifiedInstance, sizes=(1e-4, 1e-3, 1e-2, 3e-2), repeats: int = 5,
                       seed: int = 0) -> list[PerturbationRow]:
    """Perturb ``(A, b)`` by relative size ``s`` (``||dA||_2 = s ||A||_2``, ``||db|| = s ||b||``), re-solve.

    The bound ``(G_A ||dA|| + G_b ||db||) / l`` is evaluated at radii and norms covering both
    problems (``R_A = max(||A||, ||A'||)``, ``b_norm = max(||b||, ||b'||)``, ``R_x`` of the
    instance) with ``l`` the smaller certified ``sigma_min^2 (w^2 - C)`` of the two; a row whose
    perturbed problem leaves the instance's region (a minimizer outside ``R_x``) raises.
    """
    rng = np.random.default_rng([seed, 7])
    obj = inst.objective()
    n, d = inst.A.shape
    rows = []
    nA, nb = float(np.linalg.norm(inst.A, 2)), float(np.linalg.norm(inst.b))
    simplex = bool(np.all(inst.b >= 0) and abs(float(inst.b.sum()) - 1.0) <= 1e-12)
    for s in sizes:
        for _ in range(count("repeats", repeats, 1)):
            dA = rng.standard_normal((n, d))
            dA *= s * nA / np.linalg.norm(dA, 2)
            A2 = inst.A + dA
            if simplex:
                b2 = np.abs(inst.b * (1 + s * rng.standard_normal(n)))
                b2 /= b2.sum()
            else:
                db = rng.standard_normal(n)
                b2 = inst.b + s * nb * db / np.linalg.norm(db)
            obj2 = problems.NormalizedObjective(inst.name, A2, b2, inst.w)
            x2 = _solve(obj2, inst.x_planted)
            if max(float(np.linalg.norm(x2)), float(np.linalg.norm(inst.x_min))) > inst.R_x:
                raise ValidationError(f"perturbed minimizer left ||x|| <= R_x = {inst.R_x:.3g}")
            q2 = data_quantities(A2, b2, inst.w)
            region = "simplex" if simplex else "ball"
            bd = bounds(inst.name, n=n, b_norm=max(nb, q2.b_norm), w_max=float(inst.w[0]), region=region,
                        R_A=max(inst.R_A, q2.norm_A), R_x=inst.R_x)
            l = min(bd.l_certified(inst.sigma_min, float(inst.w[0])), bd.l_certified(q2.sigma_min, float(inst.w[0])))
            if not l > 0:
                raise ValidationError("perturbed problem not certified strongly convex")
            dA_n, db_n = float(np.linalg.norm(dA, 2)), float(np.linalg.norm(b2 - inst.b))
            rows.append(PerturbationRow(size=float(s), dA=dA_n, db=db_n, moved=float(np.linalg.norm(x2 - inst.x_min)),
                                        bound=(bd.G_A * dA_n + bd.G_b * db_n) / l))
    del obj
    return rows
