"""Two-layer softmax network: the NTK Gram (closed form vs Jacobian contraction) and training.

``ntk`` table -- softsym: ``H = (X X^T) o (G G^T)`` from the generated kernels, O(n^2 (d + m)).
Peers (same run, float64): JAX ``jacrev`` Jacobian (n, d*m) contracted as ``J J^T``,
O(n^2 d m), jitted; neural-tangents' empirical NTK when it imports.  Floor: one bare GEMM
``G G^T`` of the same (n, m) size.

``training`` table -- full-batch gradient descent on ``1/2 sum_i (F(W, x_i) - y_i)^2`` from
``W_0`` with step ``1/lambda_max(H(W_0))`` until the loss is ``<= 1e-3`` of the initial one:
``softsym.minimize(TwoLayerRegression(...), method="gd", lr=..., loss_tol=1e-3)`` against a
jitted JAX step (``jax.value_and_grad``, x64) driven by a Python loop with the same stopping
rule.  Times per step are run time / steps (the step size is computed once, outside the
timing, and given to both).  Floor: the two bare GEMMs ``X W`` and ``X^T Gamma`` plus one
NumPy ``exp`` of the (n, m) matrix (into a preallocated output).  Medians of ``--repeat`` runs
with [min, max].

``certify`` table -- the cost of the certified-region report of two-layer training: the same GD
run (fixed step, ``maxiter`` steps, no early stop) with ``certify=True`` (the default: the
preactivation maxima read in the gradient kernel's row sweep, one pass over ``W`` per step, plus
the guarantee once, after the run) and with
``certify=False``; per-step overhead is the difference of the run times over the steps, the
one-off part is timed separately (:func:`softsym.theory.two_layer.training_report`).

Usage: ``python benchmarks/bench_ntk.py [--table ntk|training|certify|all] [--n N --m M --d D]``
(the training table's defaults are the regression task n = 512, d = 16, m = 2048; the certify
table's n = 256, d = 16, m = 1024).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_time, table  # noqa: E402

import softsym  # noqa: E402
from softsym.problems.two_layer import TwoLayerNetwork, TwoLayerRegression, regression_task  # noqa: E402


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


def _runs(fn, repeat: int) -> list[float]:
    """Sorted wall times of ``repeat`` calls of ``fn`` after one untimed call."""
    fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return sorted(out)


def _per_step(times: list[float], steps: int) -> tuple[str, str, float]:
    med = times[len(times) // 2] / steps
    return f"{med * 1e3:.3f}", f"[{times[0] / steps * 1e3:.3f}, {times[-1] / steps * 1e3:.3f}]", med


def _jax_training(net: TwoLayerNetwork, X: np.ndarray, y: np.ndarray, lr: float, loss_tol: float, maxiter: int):
    """A function running the jitted JAX GD loop to ``loss_tol`` (returns its step count), or None."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    Xj, yj, aj, kappa = jnp.asarray(X), jnp.asarray(y), jnp.asarray(net.a[:, 0]), net.kappa

    def loss(W):
        F = kappa * jax.nn.softmax(Xj @ W, axis=1) @ aj
        return 0.5 * jnp.sum((F - yj) ** 2)

    step = jax.jit(lambda W: (lambda v, g: (W - lr * g, v))(*jax.value_and_grad(loss)(W)))
    W0 = jnp.asarray(net.W)

    def train() -> int:
        W, f0 = W0, None
        for t in range(maxiter + 1):
            W_next, v = step(W)
            v = float(v)  # the loss at W (before the step), as the stopping rule needs
            f0 = v if f0 is None else f0
            if v <= loss_tol * f0:
                return t
            W = W_next
        return maxiter

    return train


def training(n: int, m: int, d: int, repeat: int) -> str:
    """The ``training`` table (see the module docstring)."""
    X, y = regression_task(n, d, seed=0)
    net = TwoLayerNetwork(d, m, seed=0)
    lr, loss_tol, maxiter = 1.0 / net.lam_max(X), 1e-3, 100_000
    problem = TwoLayerRegression(net, X, y)

    def ours():
        return softsym.minimize(problem, method="gd", lr=lr, loss_tol=loss_tol, maxiter=maxiter)

    res = ours()
    steps = res.nit
    rows = []
    t_ours = _runs(ours, repeat)
    med_ours, rng_ours, s_ours = _per_step(t_ours, steps)
    U = X @ net.W
    E = np.empty_like(U)
    Gam = np.random.default_rng(1).standard_normal((n, m))

    def floor():
        np.exp(X @ net.W, out=E)
        return X.T @ Gam

    t_floor = _runs(floor, max(repeat, 7) * 5)
    s_floor = t_floor[len(t_floor) // 2]
    rows.append((f"softsym minimize(method='gd'), {steps} steps", med_ours, rng_ours, "1.0",
                 f"{s_ours / s_floor:.2f}", f"{t_ours[len(t_ours) // 2]:.3f}", f"{res.fun / res.history['fun'][0]:.2e}"))
    train = _jax_training(net, X, y, lr, loss_tol, maxiter)
    if train is None:
        rows.append(("JAX jit(value_and_grad) step + loop", "unavailable", "-", "-", "-", "-", "-"))
    else:
        jsteps = train()
        t_jax = _runs(train, repeat)
        med, rng_, s_jax = _per_step(t_jax, jsteps)
        rows.append((f"JAX jit(value_and_grad) step + loop, {jsteps} steps", med, rng_, f"{s_jax / s_ours:.2f}",
                     f"{s_jax / s_floor:.2f}", f"{t_jax[len(t_jax) // 2]:.3f}", "-"))
    rows.append(("floor: X W + X^T Gamma (BLAS) + np.exp (n x m)", f"{s_floor * 1e3:.3f}",
                 f"[{t_floor[0] * 1e3:.3f}, {t_floor[-1] * 1e3:.3f}]", f"{s_floor / s_ours:.2f}", "1.0", "-", "-"))
    head = (f"Training (GD, lr = 1/lambda_max(H(W_0)) = {lr:.3g}, to loss <= {loss_tol:g} x initial): "
            f"n={n}, m={m}, d={d}, threads={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")
    return head + "\n" + table(rows, ("method", "ms / step (median)", "[min, max]", "x softsym", "x floor",
                                      "run s (median)", "final / initial loss"))


def certify_overhead(n: int, m: int, d: int, repeat: int, steps: int = 50) -> str:
    """The ``certify`` table (see the module docstring)."""
    from softsym.theory.two_layer import training_report

    X, y = regression_task(n, d, seed=0)
    net = TwoLayerNetwork(d, m, seed=0)
    problem = TwoLayerRegression(net, X, y)
    lr = 1.0 / net.lam_max(X)

    def run(certify: bool):
        return softsym.minimize(problem, method="gd", lr=lr, maxiter=steps, tol=0, gtol_abs=0, certify=certify)

    res = run(True)
    rows, per = [], {}
    for certify in (False, True):
        t = _runs(lambda certify=certify: run(certify), repeat)
        med, rng_, per[certify] = _per_step(t, steps)
        rows.append((f"minimize(method='gd', certify={certify}), {steps} steps", med, rng_,
                     f"{t[len(t) // 2]:.3f}"))
    t_rep = _runs(lambda: training_report(problem, res), repeat)
    rows.append(("of which once per run: training_report (guarantee at W_0)", "-", "-", f"{t_rep[len(t_rep) // 2]:.3f}"))
    step_over = per[True] - per[False] - t_rep[len(t_rep) // 2] / steps
    head = (f"Certified-region report: n={n}, m={m}, d={d}, threads={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}; "
            f"per-step tracking overhead {step_over * 1e3:.3f} ms ({step_over / per[False]:.1%} of a step), "
            f"guarantee {res.guarantee!r}: {res.guarantee_message}")
    return head + "\n" + table(rows, ("run", "ms / step (median)", "[min, max]", "run s (median)"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--table", choices=("ntk", "training", "certify", "all"), default="all")
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--m", type=int, default=2048)
    p.add_argument("--d", type=int, default=None, help="features (default 32 for ntk, 16 for training)")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    if args.table == "certify":
        print(certify_overhead(256 if args.n == 512 else args.n, 1024 if args.m == 2048 else args.m,
                               args.d or 16, args.repeat))
        return 0
    if args.table in ("training", "all"):
        print(training(args.n, args.m, args.d or 16, args.repeat))
        if args.table == "training":
            return 0
    n, m, d = args.n, args.m, args.d or 32
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
