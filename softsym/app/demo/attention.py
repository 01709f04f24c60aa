"""Paper 003 (single-layer attention regression): variable projection against the alternation."""

from __future__ import annotations

import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np

from ...api import minimize
from ...problems.attention import AttentionRegression, planted
from ...solvers.variable_projection import VariableProjectionNewton, VariableProjectionNewtonCG
from ..report import SectionResult, Verdict

METHODS = (VariableProjectionNewtonCG.name, VariableProjectionNewton.name)
PAPER = "003"
TITLE = ("A Fast Optimization View: Reformulating Single Layer Attention in LLM Based on Tensor and SVM Trick, "
         "and Solving It in Matrix Multiplication Time (Gao, Song, Wang, Yin; arXiv 2309.07418)")
CLAIM = ("The single-layer attention loss L(X, Y) = sum ||row-softmax(A1 X A2^T) A3 Y - B||^2, rewritten with the "
         "tensor trick (A = A1 kron A2 is never formed), can be driven to any accuracy epsilon by an iterative "
         "greedy (Newton-type) method, each step costing about the time of a matrix multiplication.")
#: relative distance to the planted (X*, Y*) that counts as recovered
RECOVERED = 1e-6


def section(out_dir: pathlib.Path) -> SectionResult:
    """Recover a planted (X*, Y*) with both methods, reduced (Schur-complement) Newton against the
    coupling-blind alternation; writes attention_convergence.png into out_dir."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n, d = 100, 3
    inst = planted(n, d, seed=3)
    X0 = inst.perturbed_start(seed=4)
    small = planted(20, d, seed=3)
    for reduced in (True, False):   # warm-up: compile every kernel and solver path before timing
        for method in METHODS:
            minimize(AttentionRegression(small.A1, small.A2, small.A3, small.B), (small.perturbed_start(seed=4), None),
                     method=method, tol=1e-10, maxiter=2, reduced=reduced)
    rows, fig, ax = [], *plt.subplots(figsize=(6.5, 4))
    reduced_runs = []
    for reduced, label in ((True, "reduced Newton (Schur)"), (False, "alternation (before)")):
        for method in METHODS:
            prob = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B)
            t0 = time.perf_counter()
            res = minimize(prob, (X0, None), method=method, tol=1e-10, maxiter=400, reduced=reduced)
            dt = time.perf_counter() - t0
            ex = np.linalg.norm(res.X - inst.X_star) / np.linalg.norm(inst.X_star)
            ey = np.linalg.norm(res.Y - inst.Y_star) / np.linalg.norm(inst.Y_star)
            if reduced:
                reduced_runs.append((method, res, max(ex, ey), dt))
            rows.append(f"| {label} | {method} | {res.nit} | {res.cg_iters} | {res.fun:.2e} | {res.rel_grad_norm:.1e} "
                        f"| {ex:.1e} | {ey:.1e} | {res.success} | {dt:.2f} |")
            ax.semilogy(np.maximum(res.history["fun"], 1e-32), "o-" if reduced else "-", ms=3,
                        label=f"{label}, {method}")
    ax.set_xscale("symlog", linthresh=20)
    ax.set_xlabel("iteration (linear up to 20, then log)")
    ax.set_ylabel("loss L(X, Y)")
    ax.set_title(f"attention regression, planted (X*, Y*), n={n}, d={d}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "attention_convergence.png", dpi=110)
    plt.close(fig)
    recovered = [r for r in reduced_runs if r[1].success and r[2] < RECOVERED]
    evidence = ("; ".join(f"reduced Newton ({m}) from X* + 50% noise reached relative gradient "
                          f"{res.rel_grad_norm:.1e} in {res.nit} iterations ({dt:.2f} s), distance to the planted "
                          f"(X*, Y*) {err:.1e}" for m, res, err, dt in reduced_runs)
                + f" (n = {n}, d = {d}).")
    if len(recovered) == len(reduced_runs):
        verdict = Verdict("partly reproduced",
                          "Convergence to epsilon reproduced locally: " + evidence + " Not shown here: convergence "
                          "from arbitrary starts (the solve is local) and the matrix-multiplication-time bound "
                          "(the demo times one size only).")
    else:
        verdict = Verdict("not reproduced here", evidence)
    lines = ["### Variable projection against the alternation", "",
             f"Planted instance n = {n}, d = {d} (B = row-softmax(A1 X* A2^T) A3 Y*), start X0 = X* + "
             "noise (relative 50%), Y0 = 0, tol 1e-10. Default solver: Newton on the reduced function "
             "phi(X) = min_Y L(X, Y) (Y*(X) by least squares, Hessian = Schur complement "
             "H_xx - H_xy H_yy^+ H_yx, Armijo on phi): quadratic local convergence. Before: alternating "
             "exact Y-minimization with a Newton step in X at fixed Y (the X-Y coupling ignored), "
             "which converges linearly.", "",
             "| solver | method | iterations | CG iterations | final loss | rel. grad | ‖X−X*‖/‖X*‖ | ‖Y−Y*‖/‖Y*‖ "
             "| success | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|", *rows, "",
             "![convergence](attention_convergence.png)", ""]
    return SectionResult("\n".join(lines) + "\n" + guarantees_summary(), verdict,
                         len(recovered) == len(reduced_runs))


def guarantees_summary(seed: int = 0) -> str:
    """Short markdown summary of the attention guarantees (a few seconds): derived bounds at
    R = 1, 2; the derived reg_x threshold on small data and what the solver reports there from
    X0 = 0 and five random starts; a constructed saddle (never reported as success); and
    multi-start recovery of one planted instance."""
    from ...api import minimize_multistart
    from ...theory.attention import attention_bounds, certified_reg_x

    lines = ["### Guarantees (derived bounds, honest results, planted recovery)", "",
             "| R (all radii) | n | smooth_x | C_x | M_x | smooth_y | cross | C_phi (reg_y = 1) |",
             "|---|---|---|---|---|---|---|---|"]
    for R in (1.0, 2.0):
        b = attention_bounds("attention", R, R, R, R, 3, 0.0, 1.0)
        lines.append(f"| {R:g} | 3 | {b.smooth_x:.4g} | {b.C_x:.4g} | {b.M_x:.4g} | {b.smooth_y:.4g} | {b.cross:.4g} "
                     f"| {b.C_phi:.4g} |")
    rng = np.random.default_rng(seed)
    n, d = 20, 2
    A1, A2, A3, B = (rng.standard_normal((n, d)) / np.sqrt(n) for _ in range(4))
    thr = certified_reg_x(A1, A2, A3, B, reg_y=0.1)
    lines += ["", f"Derived reg_x threshold (reg_y = 0.1, n = {n}, d = {d}, ||A_i||_2 ~ 1): {thr:.4g}.", "",
              "| reg_x / threshold | runs | success | distinct minimizers | guarantee |", "|---|---|---|---|---|"]
    starts = [None] + [(rng.standard_normal((d, d)), None) for _ in range(5)]
    for fac in (1.0, 1e-3, 0.0):
        prob = AttentionRegression(A1, A2, A3, B, reg_x=fac * thr, reg_y=0.1)
        res = [minimize(prob, s, method="newton", tol=1e-10) for s in starts]
        reps: list[np.ndarray] = []
        for r in res:
            if r.success and not any(np.linalg.norm(r.X - x) <= 1e-6 * max(1.0, np.linalg.norm(x)) for x in reps):
                reps.append(r.X)
        guar = sorted({r.guarantee for r in res})
        lines.append(f"| {fac:g} | {len(res)} | {sum(r.success for r in res)} | {len(reps)} | {', '.join(guar)} |")
    # the saddle: rows duplicated with A1 negated make L even in X, so X = 0 is stationary
    A1s = np.vstack([A1, -A1])
    sad = AttentionRegression(A1s, np.vstack([A2, A2]), np.vstack([A3, A3]), 3 * np.vstack([B, B]) * np.sqrt(n))
    r = minimize(sad, None, method="newton")
    lines += ["", f"Constructed symmetric problem (L(-X, Y) = L(X, Y)), start X0 = 0: status {r.status}, success "
                  f"{r.success}, lambda_min of the reduced Hessian {r.lambda_min:.3g} ({r.message})."]
    inst = planted(100, 3, seed=202)
    prob = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B)
    one = minimize(prob, None, method="newton", tol=1e-10, maxiter=60)
    ms = minimize_multistart(prob, seed=2, method="newton", tol=1e-10, maxiter=60)
    b2 = float(np.sum(inst.B ** 2))
    lines += ["", f"Planted n = 100, d = 3 (seed 202): from X0 = 0 relative loss {one.fun / b2:.2e} "
                  f"({one.guarantee}); multi-start (screened by L-BFGS on the reduced loss) with certified "
                  f"selection: {ms.fun / b2:.2e} after {ms.starts_used} starts ({ms.finished} finished), "
                  f"||X - X*||_F = {np.linalg.norm(ms.X - inst.X_star):.1e}.", ""]
    return "\n".join(lines)
