"""NTK Gram of a two-layer softmax network: closed form vs Jacobian contraction.

softsym: ``H = (X X^T) o (G G^T)`` from the generated kernels, O(n^2 (d + m)).
Peers (same run, float64): JAX ``jacrev`` Jacobian (n, d*m) contracted as ``J J^T``,
O(n^2 d m), jitted; neural-tangents' empirical NTK when it imports.  Floor: one bare GEMM
``G G^T`` of the same (n, m) size.  Usage: ``python benchmarks/bench_ntk.py [--n N --m M --d D]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_time, table  # noqa: E402

from softsym.problems.two_layer import TwoLayerNetwork  # noqa: E402


def _jax_peer(net: TwoLayerNetwork, X: np.ndarray):
    """A jitted JAX function W -> J J^T with J the (n, d*m) Jacobian, or None without JAX."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    a = jnp.asarray(net.a[:, 0])
    Xj = jnp.asarray(X)
    kappa = net.kappa

    def f(W, x):
        return kappa * jnp.dot(a, jax.nn.softmax(W.T @ x))

    @jax.jit
    def gram(W):
        J = jax.vmap(jax.jacrev(f), in_axes=(None, 0))(W, Xj).reshape(Xj.shape[0], -1)
        return J @ J.T

    Wj = jnp.asarray(net.W)
    return lambda: np.asarray(gram(Wj).block_until_ready())


def _nt_peer(net: TwoLayerNetwork, X: np.ndarray):
    """neural-tangents' empirical NTK (Jacobian contraction), or None when it does not import."""
    try:
        import jax
        import jax.numpy as jnp
        import neural_tangents as nt
    except Exception:  # noqa: BLE001 -- any import failure (version clash) means "peer unavailable"
        return None
    jax.config.update("jax_enable_x64", True)
    a = jnp.asarray(net.a[:, 0])

    def apply_fn(W, x):
        return net.kappa * (jax.nn.softmax(x @ W, axis=-1) @ a)[:, None]

    fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0))
    Xj, Wj = jnp.asarray(X), jnp.asarray(net.W)
    return lambda: np.asarray(fn(Xj, None, Wj)).reshape(X.shape[0], X.shape[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--m", type=int, default=2048)
    p.add_argument("--d", type=int, default=32)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    n, m, d = args.n, args.m, args.d
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    net = TwoLayerNetwork(d, m, seed=0)
    print(f"NTK Gram, two-layer softmax network: n={n}, m={m}, d={d}, kappa={net.kappa:g}, "
          f"threads={os.environ.get('OMP_NUM_THREADS', 'default')}")

    H = net.ntk(X)
    G = net.jac_rows(X)
    t_ours = median_time(lambda: net.ntk(X), repeat=args.repeat)
    t_floor = median_time(lambda: G @ G.T, repeat=args.repeat)
    rows = [("softsym closed form (X X^T) o (G G^T)", f"{t_ours * 1e3:.2f}", "1.0", f"{t_ours / t_floor:.2f}", "-")]
    results = {"softsym": t_ours}
    for name, make in (("JAX jacrev + J J^T (jit, x64)", _jax_peer), ("neural-tangents empirical NTK", _nt_peer)):
        fn = make(net, X)
        if fn is None:
            rows.append((name, "unavailable", "-", "-", "-"))
            continue
        H_peer = fn()
        rel = np.linalg.norm(H - H_peer) / np.linalg.norm(H_peer)
        t = median_time(fn, repeat=args.repeat)
        results[name] = t
        rows.append((name, f"{t * 1e3:.2f}", f"{t / t_ours:.1f}", f"{t / t_floor:.2f}", f"{rel:.2e}"))
    rows.append(("floor: bare GEMM G G^T (n x m)", f"{t_floor * 1e3:.2f}", f"{t_floor / t_ours:.2f}", "1.0", "-"))
    print(table(rows, ("method", "median ms", "x softsym", "x floor", "rel. diff ||H - H_peer||_F/||H_peer||_F")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
