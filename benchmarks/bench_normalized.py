"""Normalized family (issue 2): generated kernels against BLAS floors and autodiff peers.

Prints medians and ratios measured in one run, n = 8192, d = 256 by default:
* generated Hessian ÷ one dense A^T diag(beta) A product (goal <= 1.25)
* generated gradient ÷ two matrix-vector products (goal <= 1.3)
* JAX jit(hessian) ÷ ours (goal >= 8), torch.func.hessian ÷ ours (goal >= 50), when installed.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
from _timing import median_time, table

import softsym
from softsym.registry import kernels


def _jax_hessian(A, b, w):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    Aj, bj, wj = jnp.asarray(A), jnp.asarray(b), jnp.asarray(w)

    def loss(x):
        u = Aj @ x
        f = jax.nn.softmax(u)
        return 0.5 * jnp.sum((f - bj) ** 2) + 0.5 * jnp.sum((wj * u) ** 2)

    h = jax.jit(jax.hessian(loss))
    return lambda x: h(jnp.asarray(x)).block_until_ready()


def _torch_hessian(A, b, w):
    try:
        import torch
        from torch.func import hessian
    except ImportError:
        return None
    At, bt, wt = (torch.from_numpy(a) for a in (A, b, w))

    def loss(x):
        u = At @ x
        f = torch.softmax(u, dim=0)
        return 0.5 * torch.sum((f - bt) ** 2) + 0.5 * torch.sum((wt * u) ** 2)

    h = hessian(loss)
    return lambda x: h(torch.from_numpy(x))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--sizes", default="8192x256,50000x64,200000x64",
                        help="NxD sizes of the Hessian-assembly table")
    args = parser.parse_args(argv)
    n, d = args.n, args.d
    inst = softsym.problems.normalized.synthetic("softmax", n, d, seed=0, w=0.1)
    A, b, w = inst.A, inst.b, inst.w
    x = np.random.default_rng(1).standard_normal(d) * 0.05
    k = kernels("softmax")
    beta = k.pieces_u(A @ x, b, w)[2]
    g = k.grad_u(A @ x, b, w)[1]

    # The objective's methods are what users call: NumPy BLAS for the products, the generated
    # Numba kernels for the fused elementwise passes and the Hessian assembly.  Alternating
    # between two points defeats the memoization, so every call is a fresh evaluation.
    obj = softsym.objective("softmax", A, b, w)
    points = [x, x * (1 + 1e-9)]
    fresh = itertools.cycle(points)
    t = {
        "hess (objective.hess)": median_time(lambda: obj.hess(next(fresh)), args.repeat),
        "floor: A^T diag(beta) A": median_time(lambda: A.T @ (A * beta[:, None]), args.repeat),
        "grad (objective.jac)": median_time(lambda: obj.jac(next(fresh)), args.repeat, min_time=0.05),
        "floor: A x and A^T g": median_time(lambda: (A @ x, A.T @ g), args.repeat, min_time=0.05),
        "hessp (objective.hessp, fresh x)": median_time(lambda: obj.hessp(next(fresh), x), args.repeat,
                                                        min_time=0.05),
        "grad (module kernel, BLAS inside Numba)": median_time(lambda: k.grad(A, b, w, x), args.repeat,
                                                               min_time=0.05),
    }
    peers = {"JAX jit(hessian)": _jax_hessian(A, b, w), "torch.func.hessian": _torch_hessian(A, b, w)}
    ours = obj.hess(x)
    for label, fn in peers.items():
        if fn is None:
            print(f"({label}: not installed; `make bench` installs the bench extra)")
            continue
        err = float(np.abs(np.asarray(fn(x)) - ours).max() / np.abs(ours).max())
        t[label] = median_time(lambda fn=fn: fn(x), max(3, args.repeat // 2))
        print(f"{label}: max rel. difference to ours {err:.1e}")

    rows = [(name, f"{sec * 1e3:.2f}") for name, sec in t.items()]
    print(f"\nsoftmax, n={n}, d={d}: median times")
    print(table(rows, ("kernel", "ms")))
    ratios = [
        ("generated Hessian ÷ A^T diag(beta) A", t["hess (objective.hess)"] / t["floor: A^T diag(beta) A"], "<= 1.25"),
        ("generated gradient ÷ two matvecs", t["grad (objective.jac)"] / t["floor: A x and A^T g"], "<= 1.3"),
    ]
    if "JAX jit(hessian)" in t:
        ratios.append(("JAX jit(hessian) ÷ ours", t["JAX jit(hessian)"] / t["hess (objective.hess)"], ">= 8"))
    if "torch.func.hessian" in t:
        ratios.append(("torch.func.hessian ÷ ours", t["torch.func.hessian"] / t["hess (objective.hess)"], ">= 50"))
    print()
    print(table([(a, f"{r:.2f}", goal) for a, r, goal in ratios], ("ratio", "measured", "goal")))
    print()
    print(hessian_assembly(args.sizes, args.repeat))


def hessian_assembly(sizes: str, repeat: int) -> str:
    """The Hessian (two dsyrk per row block, then the rank-2 update) against the GEMM floor
    ``(A * beta[:, None]).T @ A`` (scaling pass included), at each ``NxD`` of ``sizes``."""
    rows = []
    for n, d in (tuple(int(v) for v in size.split("x")) for size in sizes.split(",")):
        inst = softsym.problems.normalized.synthetic("softmax", n, d, seed=0, w=0.1)
        A, b, w = inst.A, inst.b, inst.w
        x = np.random.default_rng(1).standard_normal(d) * 0.05
        _, _, beta, p, q, T = kernels("softmax").pieces_u(A @ x, b, w)
        assemble = kernels("softmax").hess_assemble
        t_h = median_time(lambda: assemble(A, beta, p, q, T), repeat)
        t_f = median_time(lambda: (A * beta[:, None]).T @ A, repeat)
        rows.append((f"{n} x {d}", f"{t_h * 1e3:.2f}", f"{t_f * 1e3:.2f}", f"{t_h / t_f:.2f}"))
    return ("Hessian assembly against the GEMM floor (goal <= 0.75):\n"
            + table(rows, ("n x d", "hess_assemble ms", "GEMM floor ms", "ratio")))


if __name__ == "__main__":
    main()
