"""``softsym verify``: the verification ladder for catalogue members of every family.

Rungs (``RUNGS``), each run where it applies:

1. ``exact``: re-derive and re-prove the member with SymPy and check that what it would emit is
   byte-identical to the installed kernel module and formulas page (every built-in member;
   a member loaded with ``--kernels`` has no spec here: re-run ``softsym generate SPEC.py --out DIR
   --check`` for it);
2. ``numeric``: the derivatives against central finite differences at random points of a small
   random instance — normalized: gradient, Hessian and Hessian-vector product; attention: loss
   gradient in X and Y and the Hessian-vector product in X; two_layer: the gradient of the
   training loss in W; mixture_score: the score against the gradient of the log density;
3. ``bounds``: a small-budget adversarial search for violations of the derived bounds (members
   with derived bounds: the normalized family).

A rung that does not apply is reported as ``n/a``; only failures make the exit code 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..api import objective
from ..registry import MemberInfo, catalogue, kernels, member
from ..theory.certify import certify
from .progress import progress
from .report import table

RUNGS = ("exact", "numeric", "bounds")
FD_POINTS = 3
FD_STEP = 1e-5
FD_TOL = 1e-6

#: a rung's outcome: passed (True), failed (False) or not applicable (None), and a detail
Outcome = tuple[bool | None, str]


def fd_check(obj, x: np.ndarray, h: float = FD_STEP) -> float:
    """Largest scaled error of the gradient and Hessian against central differences at ``x``."""
    eye = np.eye(x.size)
    g_fd = np.array([(obj.fun(x + h * e) - obj.fun(x - h * e)) / (2 * h) for e in eye])
    H_fd = np.array([(obj.jac(x + h * e) - obj.jac(x - h * e)) / (2 * h) for e in eye])
    g, H = obj.jac(x), obj.hess(x)
    scale = 1.0 + abs(obj.fun(x)) + np.abs(g).max() + np.abs(H).max()
    return float(max(np.abs(g - g_fd).max(), np.abs(H - H_fd).max()) / scale)


def fd_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = FD_STEP) -> np.ndarray:
    """Central-difference gradient of the scalar function ``f`` at the array ``x`` (any shape)."""
    g = np.empty_like(x, dtype=float)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x, dtype=float)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def _scaled(err: np.ndarray, *refs) -> float:
    """max |err| relative to 1 + the largest magnitude among ``refs``."""
    return float(np.abs(err).max() / (1.0 + max(float(np.abs(r).max()) for r in refs)))


def exact_step(info: MemberInfo) -> Outcome:
    """Re-derive and re-prove ``info``; compare the emission with the installed files."""
    if info.package != "softsym.kernels":
        return None, "user member: check it with `softsym generate SPEC.py --out DIR --check`"
    from ..derive.catalogue import CATALOGUE
    from ..derive.pipeline import build_member
    from ..derive.proof import ProofError

    spec = next((s for s in CATALOGUE if s.name == info.name), None)
    if spec is None:
        return False, "no spec in the built-in catalogue"
    try:
        built = build_member(spec)
    except ProofError as exc:
        return False, str(exc)
    from importlib import resources

    installed = resources.files("softsym.kernels")
    stale = [f for f, text in built.files.items() if installed.joinpath(f).read_text("utf-8") != text]
    if stale:
        return False, f"installed files differ from a fresh derivation: {', '.join(stale)} (run make generate)"
    return True, f"{len(built.manifest['proof'])} claims proven, emission identical"


def _numeric_normalized(info: MemberInfo, rng: np.random.Generator) -> float:
    n, d = 30, 4
    A = rng.uniform(-1, 1, (n, d))
    obj = objective(info.name, A, rng.dirichlet(np.ones(n)), rng.uniform(0, 1, n))
    worst = 0.0
    for _ in range(FD_POINTS):
        x = rng.uniform(-1, 1, d)
        v = rng.standard_normal(d)
        worst = max(worst, fd_check(obj, x))
        H = obj.hess(x)
        worst = max(worst, float(np.abs(obj.hessp(x, v) - H @ v).max() / (1 + np.abs(H).sum())))
    return worst


def _numeric_attention(info: MemberInfo, rng: np.random.Generator) -> float:
    from ..problems.attention import MEMBER, AttentionRegression

    if info.name != MEMBER:
        raise LookupError(f"no problem class binds the attention member {info.name!r}")
    n, d = 6, 3
    A1, A2, A3, B = (rng.standard_normal((n, d)) for _ in range(4))
    prob = AttentionRegression(A1, A2, A3, B, reg_x=0.1, reg_y=0.05)
    worst = 0.0
    for _ in range(FD_POINTS):
        X, Y, V = (rng.standard_normal((d, d)) * 0.5 for _ in range(3))
        val, gX, gY = prob.value_and_grad(X, Y)
        worst = max(worst, abs(val - prob.loss(X, Y)) / (1 + abs(val)))
        worst = max(worst, _scaled(gX - fd_gradient(lambda Z: prob.loss(Z, Y), X), gX, val))
        worst = max(worst, _scaled(gY - fd_gradient(lambda Z: prob.loss(X, Z), Y), gY, val))
        hv = prob.hessp_x(X, Y, V)
        hv_fd = (prob.grad(X + FD_STEP * V, Y)[0] - prob.grad(X - FD_STEP * V, Y)[0]) / (2 * FD_STEP)
        worst = max(worst, _scaled(hv - hv_fd, hv, gX))
    return worst


def _numeric_two_layer(info: MemberInfo, rng: np.random.Generator) -> float:
    from ..problems.two_layer import TwoLayerNetwork

    n, d, m = 5, 3, 6
    net = TwoLayerNetwork(d, m, activation=kernels(info.name).ACTIVATION, d_out=2, seed=int(rng.integers(2**31)),
                          init_scale=0.5, symmetric=False)
    worst = 0.0
    for _ in range(FD_POINTS):
        X = rng.standard_normal((n, d)) / np.sqrt(d)
        y = rng.standard_normal((n, 2))
        W = rng.standard_normal((d, m)) * 0.5
        loss, grad = net.loss_grad(X, y, W)
        worst = max(worst, _scaled(grad - fd_gradient(lambda Z: net.loss_grad(X, y, Z)[0], W), grad, loss))
    return worst


def _numeric_mixture_score(info: MemberInfo, rng: np.random.Generator) -> float:
    k = kernels(info.name)
    n, d, K = 8, 3, 4
    means = rng.standard_normal((K, d))
    var = rng.uniform(0.3, 1.5, K)
    logw = np.log(rng.dirichlet(np.ones(K)))
    worst = 0.0
    for _ in range(FD_POINTS):
        X = rng.standard_normal((n, d))
        score = k.score(X, means, var, logw)
        fd = np.empty_like(X)
        for j in range(d):
            e = np.zeros(d)
            e[j] = FD_STEP
            fd[:, j] = (k.log_density(X + e, means, var, logw) - k.log_density(X - e, means, var, logw)) / (2 * FD_STEP)
        worst = max(worst, _scaled(score - fd, score))
    return worst


#: the finite-difference check of each family: (what is checked, worst scaled error)
NUMERIC: dict[str, tuple[str, Callable[[MemberInfo, np.random.Generator], float]]] = {
    "normalized": ("gradient, Hessian, HVP", _numeric_normalized),
    "attention": ("grad X/Y, hessp_x", _numeric_attention),
    "two_layer": ("loss gradient in W", _numeric_two_layer),
    "mixture_score": ("score vs grad log density", _numeric_mixture_score),
}


def numeric_step(info: MemberInfo, seed: int) -> Outcome:
    """Finite-difference checks at ``FD_POINTS`` random points of a random instance of ``info``'s family."""
    if info.family not in NUMERIC:
        return None, f"no finite-difference check for the {info.family} family"
    what, check = NUMERIC[info.family]
    worst = check(info, np.random.default_rng(seed))
    return worst < FD_TOL, f"{what}: max scaled error {worst:.1e} (tol {FD_TOL:.0e})"


def bounds_step(info: MemberInfo, seed: int) -> Outcome:
    """Small-budget certification of every derived bound of ``info`` (R in {1, 2}, n = 3)."""
    if not info.has_bounds:
        return None, f"no derived bounds ({info.family} family)"
    cert = certify(info.name, R=(1.0, 2.0), n=(3,), seed=seed, restarts=2, maxfev=150)
    finite = [r for r in cert.rows if np.isfinite(r.bound)]
    if cert.violations:
        bad = ", ".join(f"{r.quantity} at R={r.R:g}" for r in cert.violations)
        return False, f"violated: {bad}"
    worst = max((r for r in finite if np.isfinite(r.tightness)), key=lambda r: -r.tightness, default=None)
    detail = f"{len(finite)} cells, no violation"
    if worst is not None:
        detail += f"; tightest {worst.quantity} at R={worst.R:g}: {worst.tightness:.3g}x"
    return True, detail


def _status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("pass" if ok else "FAIL")


def run_verify(names: list[str] | None = None, seed: int = 0, rungs: tuple[str, ...] = RUNGS) -> int:
    """Run the ladder's ``rungs`` for ``names`` (default: every member, including loaded ones).

    Prints one row per member; returns the exit code: 1 if any rung failed, else 0.
    Unknown names raise ``UnknownObjectiveError`` before anything runs.
    """
    infos = [member(name) for name in names] if names else catalogue()
    steps = {"exact": lambda i: exact_step(i), "numeric": lambda i: numeric_step(i, seed),
             "bounds": lambda i: bounds_step(i, seed)}
    rows, ok = [], True
    for info in progress(infos, "verify", describe=lambda i: i.name):
        row: list[str] = [info.name, info.family]
        for rung in RUNGS:
            passed, detail = steps[rung](info) if rung in rungs else (None, "not run (--rungs)")
            ok &= passed is not False
            row += [_status(passed), detail]
        rows.append(row)
    print(table(rows, ("member", "family", "exact", "detail", "finite differences", "detail", "bounds", "detail")))
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


__all__ = ["FD_TOL", "RUNGS", "bounds_step", "exact_step", "fd_check", "fd_gradient", "numeric_step",
           "run_verify"]
