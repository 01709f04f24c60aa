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
from softsym.objective import kernels  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--K", type=int, default=64)
    ap.add_argument("--member", default="softmax")
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args(argv)
    n, d, K, mu = args.n, args.d, args.K, 1e-5
    inst = softsym.datasets.synthetic(args.member, n, d, seed=0, radius=0.5)
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
    t = {
        "gemm": median_time(lambda: Z @ A.T, repeat=r),
        "gemv": median_time(lambda: A @ xs[0], repeat=r),
        "kernel": median_time(lambda: kern.loss_dirs_u(u, V, mu, b, w), repeat=r),
        "directions": median_time(lambda: zo.directions(d, K, seed=3), repeat=r, min_time=0.01),
        "estimate": median_time(estimate_fresh, repeat=r),
        "estimate_memo": median_time(estimate_memo, repeat=r),
        "loop": median_time(loop, repeat=max(3, r // 3)),
    }
    rows = [
        ("GEMM Z A^T (floor)", f"{t['gemm'] * 1e3:.2f}", "1.00"),
        ("GEMV A x", f"{t['gemv'] * 1e3:.2f}", f"{t['gemv'] / t['gemm']:.2f}"),
        ("fused kernel loss_dirs_u alone", f"{t['kernel'] * 1e3:.2f}", f"{t['kernel'] / t['gemm']:.2f}"),
        ("K directions (seeded Box-Muller)", f"{t['directions'] * 1e3:.2f}", f"{t['directions'] / t['gemm']:.2f}"),
        ("batched estimate, fresh x (A x as GEMM row)", f"{t['estimate'] * 1e3:.2f}", f"{t['estimate'] / t['gemm']:.2f}"),
        ("batched estimate, x memoized", f"{t['estimate_memo'] * 1e3:.2f}", f"{t['estimate_memo'] / t['gemm']:.2f}"),
        (f"Python loop of {2 * K} loss calls", f"{t['loop'] * 1e3:.2f}", f"{t['loop'] / t['gemm']:.2f}"),
    ]
    print(f"{args.member}: n={n} d={d} K={K} (median of {r} runs)")
    print(table(rows, ("what", "ms", "/ GEMM")))
    ratios = {"estimate_over_gemm": t["estimate"] / t["gemm"],
              "estimate_memo_over_gemm": t["estimate_memo"] / t["gemm"],
              "loop_over_estimate": t["loop"] / t["estimate"]}
    print(f"batched estimate / GEMM = {ratios['estimate_over_gemm']:.2f} (goal <= 1.5; "
          f"{ratios['estimate_memo_over_gemm']:.2f} with A x memoized)")
    print(f"loop of {2 * K} loss calls / batched estimate = {ratios['loop_over_estimate']:.1f} (goal >= 10)")
    return ratios


if __name__ == "__main__":
    main()
