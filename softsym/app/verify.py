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


def attention_numeric_step(name: str, seed: int) -> tuple[bool, str]:
    """Attention: gradients and Hessians (x, y, cross) against central differences, and the loss and
    gradient against the literal Kronecker definition (``np.kron(A1, A2)``, per-entry softmax)."""
    from ..problems.attention import AttentionRegression

    rng = np.random.default_rng(seed)
    n, d = 5, 2
    A1, A2, A3, B = (rng.standard_normal((n, d)) for _ in range(4))
    prob = AttentionRegression(A1, A2, A3, B, reg_x=0.3, reg_y=0.2)
    X, Y = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    k, h = d * d, FD_STEP
    eye = np.eye(k)
    Xm = lambda v: v.reshape(d, d)  # noqa: E731
    gX, gY = prob.grad(X, Y)
    fd_gX = np.array([(prob.loss(X + h * Xm(e), Y) - prob.loss(X - h * Xm(e), Y)) / (2 * h) for e in eye])
    fd_gY = np.array([(prob.loss(X, Y + h * Xm(e)) - prob.loss(X, Y - h * Xm(e))) / (2 * h) for e in eye])
    fd_Hx = np.array([(prob.grad(X + h * Xm(e), Y)[0] - prob.grad(X - h * Xm(e), Y)[0]).ravel() / (2 * h) for e in eye])
    fd_Hxy = np.array([(prob.grad(X, Y + h * Xm(e))[0] - prob.grad(X, Y - h * Xm(e))[0]).ravel() / (2 * h)
                       for e in eye]).T
    fd_Hy = np.array([(prob.grad(X, Y + h * Xm(e))[1] - prob.grad(X, Y - h * Xm(e))[1]).ravel() / (2 * h) for e in eye])
    Hx, Hxy, Hy = prob.hess_x(X, Y), prob.hess_xy(X, Y), prob.hess_y(X)
    scale = 1.0 + abs(prob.loss(X, Y)) + np.abs(Hx).max() + np.abs(Hxy).max()
    fd_err = max(np.abs(gX.ravel() - fd_gX).max(), np.abs(gY.ravel() - fd_gY).max(), np.abs(Hx - fd_Hx).max(),
                 np.abs(Hxy - fd_Hxy).max(), np.abs(Hy - fd_Hy).max()) / scale
    Acal = np.kron(A1, A2)

    def literal(x):
        total = 0.0
        for j0 in range(n):
            u = Acal[j0 * n:(j0 + 1) * n] @ x
            f = np.exp(u - u.max())
            f /= f.sum()
            total += float(np.sum((f @ A3 @ Y - B[j0]) ** 2))
        return total + 0.3 * float(x @ x) + 0.2 * float(np.sum(Y * Y))

    x = X.ravel()
    lit_g = np.array([(literal(x + h * e) - literal(x - h * e)) / (2 * h) for e in eye])
    lit_err = max(abs(literal(x) - prob.loss(X, Y)) / (1 + abs(literal(x))),
                  np.abs(lit_g - gX.ravel()).max() / scale)
    ok = fd_err < FD_TOL and lit_err < FD_TOL
    return ok, f"finite differences {fd_err:.1e}, literal Kronecker {lit_err:.1e} (tol {FD_TOL:.0e})"


def attention_bounds_step(name: str, seed: int) -> tuple[bool, str]:
    """Small-budget adversarial certification of the derived attention bounds (R in {1, 2}, n = 3)."""
    from ..theory.attention import certify_attention

    cert = certify_attention(name, R=(1.0, 2.0), n=(3,), seed=seed, restarts=1, maxfev=150)
    if cert.violations:
        return False, "violated: " + ", ".join(f"{r.quantity} at R={r.R:g}" for r in cert.violations)
    worst = max(cert.rows, key=lambda r: r.tightness)
    best = min(cert.rows, key=lambda r: r.tightness)
    return True, (f"{len(cert.rows)} cells, no violation; tightness {best.tightness:.3g}x ({best.quantity}) to "
                  f"{worst.tightness:.3g}x ({worst.quantity} at R={worst.R:g})")


def run_verify(names: list[str] | None = None, seed: int = 0) -> int:
    """Run the ladder for ``names`` (default all normalized members); exit code 1 on any failure."""
    names = list(names) if names else [m.name for m in catalogue("normalized")]
    families = {name: member(name).family for name in names}   # unknown names are bad input (exit 2)
    for name, fam in families.items():
        if fam not in ("normalized", "attention"):
            member(name, family="normalized")
    rows, ok = [], True
    for name in progress(names, "verify"):
        attention = families[name] == "attention"
        ex_ok, ex_msg = exact_step(name)
        nu_ok, nu_msg = (attention_numeric_step if attention else numeric_step)(name, seed)
        bd_ok, bd_msg = (attention_bounds_step if attention else bounds_step)(name, seed)
        ok &= ex_ok and nu_ok and bd_ok
        rows.append((name, "pass" if ex_ok else "FAIL", ex_msg, "pass" if nu_ok else "FAIL", nu_msg,
                     "pass" if bd_ok else "FAIL", bd_msg))
    print(table(rows, ("member", "exact", "detail", "finite differences", "detail", "bounds", "detail")))
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1
