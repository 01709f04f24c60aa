"""``softsym verify``: the verification ladder for catalogue members.

1. exact: re-derive and re-prove the member with SymPy, and check that what it would emit
   is byte-identical to the installed kernel module and formulas page;
2. numeric: gradient and Hessian against central finite differences at random points,
   HVP against the Hessian;
3. bounds: an adversarial search (small budget) for violations of the derived bounds.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from ..api import objective
from ..registry import catalogue, member
from ..theory import two_layer as two_layer_theory
from ..theory.certify import certify
from .progress import progress
from .report import table

FD_POINTS = 3
FD_STEP = 1e-5
FD_TOL = 1e-6


def fd_check(obj, x: np.ndarray, h: float = FD_STEP) -> float:
    """Largest scaled error of the gradient and Hessian against central differences at ``x``."""
    eye = np.eye(x.size)
    g_fd = np.array([(obj.fun(x + h * e) - obj.fun(x - h * e)) / (2 * h) for e in eye])
    H_fd = np.array([(obj.jac(x + h * e) - obj.jac(x - h * e)) / (2 * h) for e in eye])
    g, H = obj.jac(x), obj.hess(x)
    scale = 1.0 + abs(obj.fun(x)) + np.abs(g).max() + np.abs(H).max()
    return float(max(np.abs(g - g_fd).max(), np.abs(H - H_fd).max()) / scale)


def exact_step(name: str) -> tuple[bool, str]:
    """Re-derive and re-prove ``name``; compare the emission with the installed files."""
    from ..derive.catalogue import CATALOGUE
    from ..derive.pipeline import build_member
    from ..derive.proof import ProofError

    spec = next((s for s in CATALOGUE if s.name == name), None)
    if spec is None:
        return False, "no spec in the built-in catalogue"
    try:
        built = build_member(spec)
    except ProofError as exc:
        return False, str(exc)
    installed = resources.files("softsym.kernels")
    stale = [f for f, text in built.files.items() if installed.joinpath(f).read_text("utf-8") != text]
    if stale:
        return False, f"installed files differ from a fresh derivation: {', '.join(stale)} (run make generate)"
    return True, f"{len(built.manifest['proof'])} claims proven, emission identical"


def numeric_step(name: str, seed: int) -> tuple[bool, str]:
    """Finite-difference checks at ``FD_POINTS`` random points of a random instance."""
    rng = np.random.default_rng(seed)
    n, d = 30, 4
    A = rng.uniform(-1, 1, (n, d))
    b = rng.dirichlet(np.ones(n))
    obj = objective(name, A, b, rng.uniform(0, 1, n))
    worst = 0.0
    for _ in range(FD_POINTS):
        x = rng.uniform(-1, 1, d)
        v = rng.standard_normal(d)
        worst = max(worst, fd_check(obj, x))
        H = obj.hess(x)
        worst = max(worst, float(np.abs(obj.hessp(x, v) - H @ v).max() / (1 + np.abs(H).sum())))
    return worst < FD_TOL, f"max scaled error {worst:.1e} (tol {FD_TOL:.0e})"


def two_layer_numeric_step(name: str, seed: int) -> tuple[bool, str]:
    """Loss gradient of a two-layer member against central finite differences (random network)."""
    from ..problems.two_layer import TwoLayerNetwork

    rng = np.random.default_rng(seed)
    n, d, m = 6, 3, 8
    act = member_activation(name)
    net = TwoLayerNetwork(d, m, activation=act, seed=seed, symmetric=False, init_scale=0.5)
    X = rng.standard_normal((n, d)) / np.sqrt(d)
    y = rng.standard_normal(n)
    _, g = net.loss_grad(X, y)
    W = net.W
    g_fd = np.zeros_like(W)
    for idx in np.ndindex(*W.shape):
        E = np.zeros_like(W)
        E[idx] = FD_STEP
        g_fd[idx] = (net.loss_grad(X, y, W + E)[0] - net.loss_grad(X, y, W - E)[0]) / (2 * FD_STEP)
    worst = float(np.abs(g - g_fd).max() / (1 + np.abs(g).max()))
    tol = 1e-4 if act == "relu" else FD_TOL
    return worst < tol, f"max scaled gradient error {worst:.1e} (tol {tol:.0e})"


def member_activation(name: str) -> str:
    """The activation name of two-layer member ``name``."""
    return two_layer_theory.bounds_module(name).ACTIVATION


def two_layer_bounds_step(name: str, seed: int) -> tuple[bool, str]:
    """Small-budget adversarial certification of the two-layer constants and the GD theorem."""
    cert = two_layer_theory.certify(name, seed=seed, restarts=2, maxiter=120)
    if cert.violations:
        return False, f"violated: {', '.join(cert.violations)}"
    tight = ", ".join(f"{r.quantity} {r.max_ratio:.2g}" for r in cert.rows)
    gd = f"; GD theorem held (margin {cert.gd['margin']:.3g})" if cert.gd.get("certified") else ""
    return True, f"no violation; measured/bound: {tight}{gd}"


def bounds_step(name: str, seed: int) -> tuple[bool, str]:
    """Small-budget certification of every derived bound of ``name`` (R in {1, 2}, n = 3)."""
    cert = certify(name, R=(1.0, 2.0), n=(3,), seed=seed, restarts=2, maxfev=150)
    finite = [r for r in cert.rows if np.isfinite(r.bound)]
    if cert.violations:
        bad = ", ".join(f"{r.quantity} at R={r.R:g}" for r in cert.violations)
        return False, f"violated: {bad}"
    worst = max((r for r in finite if np.isfinite(r.tightness)), key=lambda r: -r.tightness, default=None)
    detail = f"{len(finite)} cells, no violation"
    if worst is not None:
        detail += f"; tightest {worst.quantity} at R={worst.R:g}: {worst.tightness:.3g}x"
    return True, detail


def run_verify(names: list[str] | None = None, seed: int = 0) -> int:
    """Run the ladder for ``names`` (default all normalized members; two-layer members by name);
    exit code 1 on any failure."""
    names = list(names) if names else [m.name for m in catalogue("normalized")]
    two_layer = {m.name for m in catalogue("two_layer")}
    for name in names:
        if name not in two_layer:
            member(name, family="normalized")      # unknown names are bad input (exit 2)
    rows, ok = [], True
    for name in progress(names, "verify"):
        ex_ok, ex_msg = exact_step(name)
        if name in two_layer:
            nu_ok, nu_msg = two_layer_numeric_step(name, seed)
            bd_ok, bd_msg = two_layer_bounds_step(name, seed)
        else:
            nu_ok, nu_msg = numeric_step(name, seed)
            bd_ok, bd_msg = bounds_step(name, seed)
        ok &= ex_ok and nu_ok and bd_ok
        rows.append((name, "pass" if ex_ok else "FAIL", ex_msg, "pass" if nu_ok else "FAIL", nu_msg,
                     "pass" if bd_ok else "FAIL", bd_msg))
    print(table(rows, ("member", "exact", "detail", "finite differences", "detail", "bounds", "detail")))
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1
