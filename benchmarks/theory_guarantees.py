"""The papers' theorems on certified instances: tables for docs/papers/{000,001,002}.md and two plots.

Usage: ``.venv/bin/python benchmarks/theory_guarantees.py [--out docs/figures] [--quick]``.
Prints Markdown tables (approximate Newton contraction and sparsifier, iterations against
log(1/eps), zeroth-order iterations against the predicted rate, perturbation tightness) and
writes ``theory_contraction.png`` and ``theory_perturbation.png`` into ``--out``.  Every number
comes from :mod:`softsym.theory.experiments` with fixed seeds.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from softsym.theory import experiments as ex

NEWTON_MEMBERS = ("softmax", "rescaled_exp", "rescaled_cosh", "rescaled_sinh")
ALL_MEMBERS = ("softmax", "softmax_xent", "exp", "cosh", "sinh", "rescaled_exp", "rescaled_cosh", "rescaled_sinh")


def _share(inst) -> float:
    """Share of the data term in the Hessian at x*: ||H - A^T W^2 A|| / ||H||."""
    obj = inst.objective()
    H = obj.hess(inst.x_min)
    reg = inst.A.T @ (inst.w[:, None] ** 2 * inst.A)
    return float(np.linalg.norm(H - reg, 2) / np.linalg.norm(H, 2))


def instances_table(n: int, d: int) -> str:
    lines = [f"Certified instances (n = {n}, d = {d}, singular values of A from 0.5 to 1, "
             "||x_planted|| = 0.5, w^2 = C + 1):", "",
             "| member | w^2 | C | l | M | R_x | ‖x0 − x*‖ | data share of H(x*) |",
             "|---|---|---|---|---|---|---|---|"]
    for name in ALL_MEMBERS:
        inst = ex.certified_instance(name, n=n, d=d)
        lines.append(f"| {name} | {inst.w[0] ** 2:.4g} | {inst.bounds.C:.3g} | {inst.l:.3g} | "
                     f"{inst.bounds.M:.3g} | {inst.R_x:.3g} | {np.linalg.norm(inst.x0 - inst.x_min):.3g} | "
                     f"{_share(inst):.2g} |")
    return "\n".join(lines)


def newton_tables(n: int, d: int, seeds: int) -> tuple[str, dict]:
    rows = ["| member | eps0 | sample rows m / n | steps | worst measured factor | median | "
            "bound's factor (max) | sparsifier within (1±eps0) | max eps_K |", "|---|---|---|---|---|---|---|---|---|"]
    iter_rows = ["| member | eps0 | " + " | ".join(f"1e-{k}" for k in (2, 4, 6, 8, 10))
                 + " | theorem: ⌈log(1/eps)/log(2.5)⌉ |", "|---|---|" + "---|" * 6]
    curves = {}
    for name in NEWTON_MEMBERS:
        inst = ex.certified_instance(name, n=n, d=d)
        for eps0 in (0.1, 0.25):
            runs = [ex.newton_contraction(inst, eps0=eps0, seed=s) for s in range(seeds)]
            ratios = [r for run in runs for r in run.ratios]
            pred = [p for run in runs for p in run.predicted]
            sa = ex.sparsifier_accuracy(inst.objective(), inst.x0, eps0, draws=20, seed=1)
            m = runs[0].sample_rows[0] if runs[0].sample_rows else n
            rows.append(f"| {name} | {eps0} | {m} / {n} | {len(ratios)} | {max(ratios):.3g} | "
                        f"{np.median(ratios):.3g} | {max(pred):.3g} | {sa['fraction_within']:.2f} | "
                        f"{max(sa['eps_K']):.3g} |")
            its = runs[0].iterations
            ks = (2, 4, 6, 8, 10)
            theo = " / ".join(str(math.ceil(k * math.log(10) / math.log(1 / ex.PAPER_RATE))) for k in ks)
            iter_rows.append(f"| {name} | {eps0} | " + " | ".join(str(its[10.0 ** -k]) for k in ks) + f" | {theo} |")
            curves[(name, eps0)] = runs[0].errors
    text = "\n".join(rows) + "\n\nIterations to reduce ‖x − x*‖ by eps (seed 0):\n\n" + "\n".join(iter_rows)
    return text, curves


def zo_table(n: int, d: int, eps: float) -> str:
    lines = [f"Zeroth order, lr = K/((d+K) smooth) with the certified smooth, gap reduced by {eps:g} "
             f"(n = {n}, d = {d}; Gaussian directions, mu = 1e-5):", "",
             "| member | K | lr | smooth (certified / true) | l (certified / true) | iterations | "
             "predicted (certified) | predicted (true curvatures) | measured / predicted |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in ("softmax", "rescaled_exp"):
        inst = ex.certified_instance(name, n=n, d=d)
        for K in (1, 4, 16, 64):
            r = ex.zeroth_order_rate(inst, K, eps=eps)
            lines.append(f"| {name} | {K} | {r.lr:.3g} | {r.smooth:.4g} / {r.smooth_true:.4g} | "
                         f"{r.l:.4g} / {r.l_true:.4g} | {r.iterations} | {r.predicted:.0f} | "
                         f"{r.predicted_true:.0f} | {r.iterations / r.predicted:.2f} |")
    return "\n".join(lines)


def perturbation(n: int, d: int) -> tuple[str, dict]:
    lines = [f"Perturbation corollary (n = {n}, d = {d}, singular values of A from 0.8 to 1, w^2 = C + 0.01, "
             "5 random perturbations per size; relative size s: ‖dA‖ = s‖A‖, ‖db‖ = s‖b‖):", "",
             "| member | s | median ‖Δx*‖ | median bound | tightness (min / median / max) |",
             "|---|---|---|---|---|"]
    data = {}
    for name in NEWTON_MEMBERS:
        inst = ex.certified_instance(name, n=n, d=d, sigma_min=0.8, l_extra=0.01, radius=1.0)
        rows = ex.perturbation_study(inst, sizes=(1e-4, 1e-3, 1e-2, 3e-2), repeats=5)
        data[name] = rows
        for s in sorted({r.size for r in rows}):
            rs = [r for r in rows if r.size == s]
            t = [r.tightness for r in rs]
            lines.append(f"| {name} | {s:g} | {np.median([r.moved for r in rs]):.3g} | "
                         f"{np.median([r.bound for r in rs]):.3g} | {min(t):.3g} / {np.median(t):.3g} / {max(t):.3g} |")
    return "\n".join(lines), data


def plots(curves: dict, pert: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=80)
    for (name, eps0), errs in sorted(curves.items()):
        if eps0 != 0.25:
            continue
        e = np.array(errs)
        ax.semilogy(np.arange(e.size), e / e[0], marker="o", ms=3, label=name)
    t = np.arange(0, 12)
    ax.semilogy(t, ex.PAPER_RATE ** t, "k--", lw=1, label="theorem: 0.4^t")
    ax.set_ylim(1e-16, 2)
    ax.set_xlabel("iteration t")
    ax.set_ylabel("‖x_t − x*‖ / ‖x_0 − x*‖")
    ax.set_title("paper-mode approximate Newton, eps0 = 0.25", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "theory_contraction.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=80)
    for name, rows in pert.items():
        moved = np.array([r.moved for r in rows])
        if np.max(moved) < 1e-9 * max(r.bound for r in rows):   # x* = 0 whatever the data (rescaled_cosh, _sinh)
            continue
        ax.loglog([r.bound for r in rows], moved, "o", ms=3, label=name)
    lim = np.array([1e-7, 10])
    ax.set_ylim(1e-8, 10)
    ax.loglog(lim, lim, "k--", lw=1, label="measured = bound")
    ax.set_xlabel("bound (G_A‖dA‖ + G_b‖db‖) / l")
    ax.set_ylabel("measured ‖Δx*‖")
    ax.set_title("perturbation corollary (001)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "theory_perturbation.png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/figures"))
    p.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    nN = 4000 if args.quick else 20000
    print(instances_table(1000, 5), "\n", flush=True)
    newton, curves = newton_tables(nN, 5, seeds=2 if args.quick else 5)
    print(f"Approximate Newton, paper mode (n = {nN}, d = 5), from the certified start:\n")
    print(newton, "\n", flush=True)
    print(zo_table(1000, 5, 1e-6), "\n", flush=True)
    table, pert = perturbation(20, 3)
    print(table, "\n", flush=True)
    plots(curves, pert, args.out)
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
