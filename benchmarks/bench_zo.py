"""Zeroth-order estimator: batched K-direction loss kernel against its floor and a loop.

Floor: one n x d x K matrix product (the GEMM ``Z A^T`` every batched estimate needs).
Goal (issue 5, n = 8192, d = 256, K = 64): batched estimate / GEMM <= 1.5 and
loop of 2K loss calls / batched estimate >= 10.

Usage: ``python benchmarks/bench_zo.py [--n N] [--d D] [--K K] [--member NAME]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_time, table  # noqa: E402

import softsym  # noqa: E402
from softsym import zo  # noqa: E402
from softsym.registry import kernels  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--K", type=int, default=64)
    ap.add_argument("--member", default="softmax")
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args(argv)
    n, d, K, mu = args.n, args.d, args.K, 1e-5
    inst = softsym.problems.normalized.synthetic(args.member, n, d, seed=0, radius=0.5)
    obj = inst.objective()
    A, b, w = obj.A, obj.b, obj.w
    rng = np.random.default_rng(1)
    xs = [inst.x_star + 0.01 * rng.standard_normal(d) for _ in range(2)]
    Z = zo.directions(d, K, seed=3)
    kern = kernels(args.member)
    u = A @ xs[0]
    V = Z @ A.T
    state = {"i": 0}

    def estimate_fresh():  # a new x every call: includes u = A x
        state["i"] ^= 1
        return zo.estimate(obj, xs[state["i"]], K=K, mu=mu, seed=5)

    def estimate_memo():  # x already evaluated (as in ZO-GD, where L(x) is known): u memoized
        return zo.estimate(obj, xs[0], K=K, mu=mu, seed=5)

    def loop():
        return [obj.fun(x) for z in Z for x in (xs[0] + mu * z, xs[0] - mu * z)]

    r = args.repeat
    fns = {
        "gemm": lambda: Z @ A.T,
        "gemv": lambda: A @ xs[0],
        "kernel": lambda: kern.loss_dirs_u(u, V, mu, b, w),
        "directions": lambda: zo.directions(d, K, seed=3),
        "estimate": estimate_fresh,
        "estimate_memo": estimate_memo,
        "loop": loop,
    }
    labels = {
        "gemm": "GEMM Z A^T (floor)",
        "gemv": "GEMV A x",
        "kernel": "fused kernel loss_dirs_u alone",
        "directions": "K directions (seeded Box-Muller)",
        "estimate": "batched estimate, fresh x (A x as GEMM row)",
        "estimate_memo": "batched estimate, x memoized",
        "loop": f"Python loop of {2 * K} loss calls",
    }
    # medians (the project's convention) and, because the machine is shared, the best run too
    t, best = {}, {}
    for key, fn in fns.items():
        reps = max(3, r // 3) if key == "loop" else r
        t[key] = median_time(fn, repeat=reps)
        best[key] = min(median_time(fn, repeat=1, warmup=0) for _ in range(reps))
    rows = [(labels[k], f"{t[k] * 1e3:.2f}", f"{t[k] / t['gemm']:.2f}", f"{best[k] * 1e3:.2f}",
             f"{best[k] / best['gemm']:.2f}") for k in fns]
    print(f"{args.member}: n={n} d={d} K={K} ({r} runs each)")
    print(table(rows, ("what", "median ms", "/ GEMM", "best ms", "/ GEMM (best)")))
    ratios = {"estimate_over_gemm": t["estimate"] / t["gemm"],
              "estimate_memo_over_gemm": t["estimate_memo"] / t["gemm"],
              "loop_over_estimate": t["loop"] / t["estimate"],
              "best_estimate_over_gemm": best["estimate"] / best["gemm"],
              "best_estimate_memo_over_gemm": best["estimate_memo"] / best["gemm"],
              "best_loop_over_estimate": best["loop"] / best["estimate"]}
    # paired: GEMM, estimate and loop timed back to back in each round, ratio per round, median of
    # the rounds -- robust to the load of other jobs drifting between the blocks above
    paired = {"estimate": [], "estimate_memo": [], "loop": []}
    for _ in range(r):
        tg = median_time(fns["gemm"], repeat=1, warmup=0)
        te = median_time(fns["estimate"], repeat=1, warmup=0)
        paired["estimate"].append(te / tg)
        paired["estimate_memo"].append(median_time(fns["estimate_memo"], repeat=1, warmup=0) / tg)
        paired["loop"].append(median_time(fns["loop"], repeat=1, warmup=0) / te)
    for key, vals in paired.items():
        ratios[f"paired_{key}"] = float(np.median(vals))
    print(f"paired rounds (median of {r}): estimate / GEMM = {ratios['paired_estimate']:.2f} "
          f"(x memoized {ratios['paired_estimate_memo']:.2f}); loop / estimate = {ratios['paired_loop']:.1f}")
    print(f"batched estimate / GEMM = {ratios['estimate_over_gemm']:.2f} median, "
          f"{ratios['best_estimate_over_gemm']:.2f} best (goal <= 1.5); with A x memoized "
          f"{ratios['estimate_memo_over_gemm']:.2f} / {ratios['best_estimate_memo_over_gemm']:.2f}")
    print(f"loop of {2 * K} loss calls / batched estimate = {ratios['loop_over_estimate']:.1f} median, "
          f"{ratios['best_loop_over_estimate']:.1f} best (goal >= 10)")
    return ratios


if __name__ == "__main__":
    main()
