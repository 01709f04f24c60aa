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
    return SectionResult("\n".join(lines), verdict, len(recovered) == len(reduced_runs))
