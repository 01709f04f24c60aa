"""End to end: time to a stated accuracy, softsym against the code users would write instead.

For each paper's problem at a realistic size, the same instance, start and stopping rule are
handed to softsym and to its peers:

* softmax and rescaled_exp regression (papers 000/001), n = 50 000, d = 64, planted, x0 = 0, until
  ||grad L(x)|| <= 1e-8 ||grad L(x0)||: softsym Newton against scipy.optimize (trust-exact,
  Newton-CG, L-BFGS-B) on ``jax.jit`` derivatives, ``torch.optim.LBFGS`` (strong Wolfe) and Adam on
  torch autograd;
* attention regression (003), planted n = 2048, d = 32 (2048 variables), from X* perturbed by 50%
  and Y0 = 0, until the joint relative gradient is <= 1e-8: softsym variable-projection Newton-CG
  against scipy Newton-CG / L-BFGS-B on ``jax.jit`` derivatives and torch L-BFGS (a dense Hessian
  of 2048 variables, as trust-exact needs, is not run: it costs ~2048 gradient evaluations a step);
* two-layer softmax network training (004), n = 512, m = 2048, d = 16, full-batch gradient descent
  with the same step 1/lambda_max(H(W0)) until the loss is <= 1e-3 of its initial value: softsym
  against a jitted JAX loop and a torch autograd loop;
* zeroth-order softmax regression (002), n = 2000, d = 256, K = 16 two-point directions per step,
  until the true relative gradient is <= 1e-3: softsym (batched directions, one GEMM and one fused
  kernel per estimate, Armijo on losses) against a MeZO-style JAX loop (fixed step
  K / ((d + K) l), l = lambda_max of the Hessian at the solution, given to the peer for free).

Every converged claim is checked by softsym's exact gradient at the returned point; a peer that
stops short is reported as not converged with its relative gradient, never timed as a win.
Times are medians of ``--repeat`` runs after one untimed warm-up run (JIT compilation excluded),
with the range.  Each problem runs in a fresh subprocess per thread setting:

* ``one-cpu``: pinned to one core, one BLAS/OpenMP/XLA/torch thread;
* ``default``: no limits (this machine: 2 cores);
* ``busy``: default threads while another process runs a two-thread NumPy GEMM loop.

Usage: ``python benchmarks/bench_end_to_end.py [--problems softmax,attention,...] [--settings ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _timing import table  # noqa: E402

PROBLEMS = ("softmax", "rescaled_exp", "attention", "two_layer", "zeroth_order")
SETTINGS = ("one-cpu", "default", "busy")
TOL = 1e-8
#: sizes per problem; ``--quick`` runs small ones (a smoke test of the script, not a measurement)
SIZES = {"normalized": (50_000, 64), "attention": (2048, 32), "two_layer": (512, 2048, 16), "zeroth_order": (2000, 256)}
QUICK = {"normalized": (5000, 16), "attention": (128, 4), "two_layer": (64, 128, 8), "zeroth_order": (500, 32)}


# -- the thread settings ----------------------------------------------------------------------

def _env(setting: str) -> dict[str, str]:
    env = dict(os.environ)
    if setting == "one-cpu":
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            env[var] = "1"
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        env["SOFTSYM_BENCH_PIN"] = "1"
    return env


_BUSY = """
import numpy as np, time
a = np.random.default_rng(0).standard_normal((1500, 1500))
t_end = time.time() + {seconds}
while time.time() < t_end:
    a @ a
"""


def _busy(seconds: float) -> subprocess.Popen:
    """Another process running a two-thread NumPy GEMM loop for ``seconds``."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2")
    return subprocess.Popen([sys.executable, "-c", _BUSY.format(seconds=seconds)], env=env)


# -- timing --------------------------------------------------------------------------------

class OutOfBudget(Exception):
    """A peer used up its time budget (reported as not converged, with its last point)."""


class Budget:
    """A deadline for one peer run; the peers' loops call :meth:`check` with their current point."""

    seconds = 60.0

    def start(self) -> None:
        self.deadline, self.last = time.perf_counter() + self.seconds, None

    def check(self, x) -> None:
        self.last = np.array(x, dtype=float, copy=True)
        if time.perf_counter() > self.deadline:
            raise OutOfBudget


BUDGET = Budget()


def _timed(run, repeat: int) -> dict:
    """Run ``run()`` (returns (x, info)) once untimed, then ``repeat`` times; median and range.

    A run that exceeds ``BUDGET.seconds`` stops there and counts with its last point."""
    times, out = [], None
    for k in range(repeat + 1):
        BUDGET.start()
        t0 = time.perf_counter()
        try:
            out = run()
        except OutOfBudget:
            out = (BUDGET.last, {"nit": "-", "stopped": f"time budget {BUDGET.seconds:.0f} s"})
        if k:
            times.append(time.perf_counter() - t0)
        if "stopped" in out[1]:
            break   # one budget-long run is enough to know
    return {"times": times or [BUDGET.seconds], "info": out[1], "x": out[0]}


def _judge(rel: float, tol: float) -> bool:
    return bool(np.isfinite(rel) and rel <= tol)


# -- normalized members (papers 000, 001) -----------------------------------------------------

def _jax_normalized_loss(member: str, A, b, w):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    Aj, bj, wj = jnp.asarray(A), jnp.asarray(b), jnp.asarray(w)

    def loss(x):
        u = Aj @ x
        if member == "softmax":
            f = jax.nn.softmax(u)
            r = f - bj
        else:  # rescaled_exp: exp(u) - <exp(u), 1> b
            e = jnp.exp(u)
            r = e - jnp.sum(e) * bj
        return 0.5 * jnp.sum(r ** 2) + 0.5 * jnp.sum((wj * u) ** 2)

    return jax, jnp, loss


def _torch_normalized_loss(member: str, A, b, w):
    import torch

    At, bt, wt = (torch.from_numpy(a) for a in (A, b, w))

    def loss(x):
        u = At @ x
        if member == "softmax":
            r = torch.softmax(u, dim=0) - bt
        else:
            e = torch.exp(u)
            r = e - e.sum() * bt
        return 0.5 * (r ** 2).sum() + 0.5 * ((wt * u) ** 2).sum()

    return torch, loss


def _scipy_runs(fun_and_grad, hess, hessp, x0, gtol_abs: float, methods=("trust-exact", "Newton-CG", "L-BFGS-B")):
    """scipy.optimize runs on the given derivatives, each stopping at ||g|| <= gtol_abs (2-norm,
    or the inf-norm bound gtol_abs / sqrt(d) where the method tests the inf-norm)."""
    from scipy.optimize import minimize

    d = x0.size
    runs = {}
    for method in methods:
        def run(method=method):
            kw = {"jac": True}
            if method == "trust-exact":
                kw.update(hess=hess, options={"gtol": gtol_abs, "maxiter": 500})
            elif method == "Newton-CG":
                kw.update(hessp=hessp, options={"xtol": 1e-16, "maxiter": 500})
            else:
                kw.update(options={"gtol": gtol_abs / np.sqrt(d), "ftol": 0.0, "maxiter": 20_000,
                                   "maxfun": 40_000, "maxcor": 20})
            res = minimize(fun_and_grad, x0, method=method, **kw)
            return res.x, {"nit": int(res.nit)}
        runs[f"scipy {method} (jax.jit)"] = run
    return runs


def _torch_runs(torch, loss, x0, gtol_abs: float, adam_steps: int = 1_000_000):
    d = x0.size
    runs = {}

    def lbfgs():
        x = torch.from_numpy(x0.copy()).requires_grad_(True)
        opt = torch.optim.LBFGS([x], lr=1, max_iter=5000, max_eval=10_000, history_size=20,
                                tolerance_grad=gtol_abs / np.sqrt(d), tolerance_change=0.0,
                                line_search_fn="strong_wolfe")

        def closure():
            BUDGET.check(x.detach().numpy())
            opt.zero_grad()
            v = loss(x)
            v.backward()
            return v
        opt.step(closure)
        return x.detach().numpy().copy(), {"nit": int(opt.state[opt._params[0]]["n_iter"])}

    def adam():
        x = torch.from_numpy(x0.copy()).requires_grad_(True)
        opt = torch.optim.Adam([x], lr=1e-2)
        for t in range(adam_steps):
            BUDGET.check(x.detach().numpy())
            opt.zero_grad()
            v = loss(x)
            v.backward()
            if float(torch.linalg.vector_norm(x.grad)) <= gtol_abs:   # the same stopping rule
                break
            opt.step()
        return x.detach().numpy().copy(), {"nit": t}

    runs["torch L-BFGS (strong Wolfe)"] = lbfgs
    runs["torch Adam (lr 1e-2)"] = adam
    return runs


def normalized_problem(member: str, repeat: int) -> list[dict]:
    import softsym
    from softsym.problems.normalized import synthetic

    n, d = SIZES["normalized"]
    inst = synthetic(member, n, d, seed=0, radius=0.5)
    x0 = np.zeros(d)
    exact = softsym.objective(member, inst.A, inst.b, inst.w)
    g0 = float(np.linalg.norm(exact.jac(x0)))

    def rel(x) -> float:
        return float(np.linalg.norm(exact.jac(x)) / g0)

    def ours():
        res = softsym.minimize(softsym.objective(member, inst.A, inst.b, inst.w), x0, method="newton", tol=TOL)
        return res.x, {"nit": res.nit}

    runs = {"softsym newton": ours}
    try:
        jax, jnp, loss = _jax_normalized_loss(member, inst.A, inst.b, inst.w)
    except ImportError:
        pass
    else:
        vg = jax.jit(jax.value_and_grad(loss))
        hs = jax.jit(jax.hessian(loss))
        hvp = jax.jit(lambda x, v: jax.jvp(jax.grad(loss), (x,), (v,))[1])

        def fun_and_grad(x):
            BUDGET.check(x)
            v, g = vg(jnp.asarray(x))
            return float(v), np.asarray(g)

        runs.update(_scipy_runs(fun_and_grad, lambda x: np.asarray(hs(jnp.asarray(x))),
                                lambda x, v: np.asarray(hvp(jnp.asarray(x), jnp.asarray(v))), x0, TOL * g0))
    try:
        torch, tloss = _torch_normalized_loss(member, inst.A, inst.b, inst.w)
    except ImportError:
        pass
    else:
        runs.update(_torch_runs(torch, tloss, x0, TOL * g0))
    return _rows(runs, repeat, rel, TOL)


#: a peer run stops after this many times softsym's median time (at least 10 s, at most 120 s):
#: past it the peer has lost by far more than the 5x the goal asks for
BUDGET_FACTOR, BUDGET_MIN, BUDGET_MAX = 20.0, 10.0, 120.0


def _rows(runs: dict, repeat: int, rel, tol: float) -> list[dict]:
    """Time softsym (the first run) and then each peer within its budget."""
    rows = []
    for k, (name, run) in enumerate(runs.items()):
        t_ours = float(np.median(rows[0]["times"])) if rows else 0.0
        BUDGET.seconds = 3600.0 if k == 0 else min(max(BUDGET_MIN, BUDGET_FACTOR * t_ours), BUDGET_MAX)
        timed = _timed(run, repeat)
        r = rel(timed["x"]) if timed["x"] is not None else float("nan")
        ok = _judge(r, tol) and "stopped" not in timed["info"]
        rows.append({"solver": name, "times": timed["times"], "rel": r, "converged": ok, **timed["info"]})
    return rows


# -- attention regression (paper 003) ----------------------------------------------------------

def attention_problem(repeat: int) -> list[dict]:
    import softsym
    from softsym.problems.attention import AttentionRegression, planted

    n, d = SIZES["attention"]
    inst = planted(n, d, seed=3)
    X0 = inst.perturbed_start(seed=4)
    z0 = np.concatenate([X0.ravel(), np.zeros(d * d)])
    exact = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B)

    def grad_norm(z) -> float:
        gx, gy = exact.grad(z[:d * d].reshape(d, d), z[d * d:].reshape(d, d))
        return float(np.hypot(np.linalg.norm(gx), np.linalg.norm(gy)))

    g0 = grad_norm(z0)

    def ours():
        prob = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B)
        res = softsym.minimize(prob, (X0, None), method="newton-cg", tol=TOL)
        return res.x, {"nit": res.nit}

    runs = {"softsym newton-cg (variable projection)": ours}
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        pass
    else:
        jax.config.update("jax_enable_x64", True)
        A1, A2, A3, B = (jnp.asarray(a) for a in (inst.A1, inst.A2, inst.A3, inst.B))

        def loss(z):
            X, Y = z[:d * d].reshape(d, d), z[d * d:].reshape(d, d)
            F = jax.nn.softmax(A1 @ X @ A2.T, axis=1)
            return jnp.sum(((F @ A3) @ Y - B) ** 2)

        vg = jax.jit(jax.value_and_grad(loss))
        hvp = jax.jit(lambda z, v: jax.jvp(jax.grad(loss), (z,), (v,))[1])

        def fun_and_grad(z):
            BUDGET.check(z)
            v, g = vg(jnp.asarray(z))
            return float(v), np.asarray(g)

        runs.update(_scipy_runs(fun_and_grad, None, lambda z, v: np.asarray(hvp(jnp.asarray(z), jnp.asarray(v))),
                                z0, TOL * g0, methods=("Newton-CG", "L-BFGS-B")))
    try:
        import torch
    except ImportError:
        pass
    else:
        T1, T2, T3, TB = (torch.from_numpy(a) for a in (inst.A1, inst.A2, inst.A3, inst.B))

        def tloss(z):
            X, Y = z[:d * d].reshape(d, d), z[d * d:].reshape(d, d)
            F = torch.softmax(T1 @ X @ T2.T, dim=1)
            return (((F @ T3) @ Y - TB) ** 2).sum()

        runs.update({k: v for k, v in _torch_runs(torch, tloss, z0, TOL * g0).items() if "L-BFGS" in k})
    return _rows(runs, repeat, lambda z: grad_norm(z) / g0, TOL)


# -- two-layer softmax network training (paper 004) ----------------------------------------------

def two_layer_problem(repeat: int) -> list[dict]:
    import softsym
    from softsym.problems.two_layer import TwoLayerNetwork, TwoLayerRegression, regression_task

    (n, m, d), eps = SIZES["two_layer"], 1e-3
    X, y = regression_task(n, d, seed=0)
    net0 = TwoLayerNetwork(d, m, seed=0)
    lr = 1.0 / net0.lam_max(X)
    W0 = net0.W.copy()
    loss0 = net0.loss_grad(X, y)[0]

    def rel_loss(W) -> float:
        return float(net0.loss_grad(X, y, W)[0] / loss0)

    def ours():
        net = TwoLayerNetwork(d, m, seed=0)
        res = softsym.minimize(TwoLayerRegression(net, X, y), method="gd", lr=lr, maxiter=100_000, loss_tol=eps)
        return res.W, {"nit": res.nit}

    runs = {"softsym gd (generated kernels)": ours}
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        pass
    else:
        jax.config.update("jax_enable_x64", True)
        Xj, yj, aj = jnp.asarray(X), jnp.asarray(y), jnp.asarray(net0.a[:, 0])
        kappa = net0.kappa

        def loss(W):
            F = kappa * jax.nn.softmax(Xj @ W, axis=1) @ aj
            return 0.5 * jnp.sum((F - yj) ** 2)

        step = jax.jit(lambda W: (lambda v, g: (W - lr * g, v))(*jax.value_and_grad(loss)(W)))

        def jax_gd():
            W, target, t = jnp.asarray(W0), eps * loss0, 0
            while True:
                BUDGET.check(W)
                W_next, v = step(W)
                if float(v) <= target or t >= 100_000:
                    return np.asarray(W), {"nit": t}
                W, t = W_next, t + 1

        runs["JAX gd loop (jit value_and_grad)"] = jax_gd
    try:
        import torch
    except ImportError:
        pass
    else:
        Xt, yt, at = torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(net0.a[:, 0].copy())

        def torch_gd():
            W = torch.from_numpy(W0.copy()).requires_grad_(True)
            target = eps * loss0
            for t in range(100_000):
                BUDGET.check(W.detach().numpy())
                v = 0.5 * ((net0.kappa * torch.softmax(Xt @ W, dim=1) @ at - yt) ** 2).sum()
                if float(v) <= target:
                    break
                W.grad = None
                v.backward()
                with torch.no_grad():
                    W -= lr * W.grad
            return W.detach().numpy().copy(), {"nit": t}

        runs["torch gd loop (autograd)"] = torch_gd
    return _rows(runs, repeat, rel_loss, eps)


# -- zeroth order (paper 002) --------------------------------------------------------------------

def zeroth_order_problem(repeat: int) -> list[dict]:
    import softsym
    from softsym.problems.normalized import synthetic

    (n, d), K, tol, mu = SIZES["zeroth_order"], 16, 1e-3, 1e-5
    inst = synthetic("softmax", n, d, seed=5, w=0.05)
    exact = inst.objective()
    x0 = np.zeros(d)
    g0 = float(np.linalg.norm(exact.jac(x0)))
    x_star = softsym.minimize(inst.objective(), x0, method="newton", tol=1e-12).x
    ell = float(np.linalg.eigvalsh(exact.hess(x_star))[-1])
    lr = K / ((d + K) * ell)

    def rel(x) -> float:
        return float(np.linalg.norm(exact.jac(x)) / g0)

    def ours():
        res = softsym.minimize(inst.objective(), x0, method="zo", K=K, mu=mu, seed=7, tol=tol, maxiter=200_000)
        return res.x, {"nit": res.nit}

    runs = {f"softsym zo (K={K}, Armijo on losses)": ours}
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        pass
    else:
        jax.config.update("jax_enable_x64", True)
        Aj, bj, wj = jnp.asarray(inst.A), jnp.asarray(inst.b), jnp.asarray(inst.w)

        def loss(x):
            u = Aj @ x
            return 0.5 * jnp.sum((jax.nn.softmax(u) - bj) ** 2) + 0.5 * jnp.sum((wj * u) ** 2)

        @jax.jit
        def zo_step(x, key):
            Z = jax.random.normal(key, (K, d), dtype=jnp.float64)
            lp = jax.vmap(lambda z: loss(x + mu * z))(Z)
            lm = jax.vmap(lambda z: loss(x - mu * z))(Z)
            g = ((lp - lm) / (2 * mu)) @ Z / K
            return x - lr * g

        grad = jax.jit(jax.grad(loss))

        def jax_zo():
            x, key, t = jnp.asarray(x0), jax.random.PRNGKey(7), 0
            while t < 200_000:
                BUDGET.check(x)
                if t % 10 == 0 and float(jnp.linalg.norm(grad(x))) <= tol * g0:
                    break
                key, sub = jax.random.split(key)
                x, t = zo_step(x, sub), t + 1
            return np.asarray(x), {"nit": t}

        runs[f"JAX MeZO-style loop (K={K}, fixed lr K/((d+K) l))"] = jax_zo
    return _rows(runs, repeat, rel, tol)


WORKERS = {
    "softmax": lambda r: normalized_problem("softmax", r),
    "rescaled_exp": lambda r: normalized_problem("rescaled_exp", r),
    "attention": attention_problem,
    "two_layer": two_layer_problem,
    "zeroth_order": zeroth_order_problem,
}


def _worker(problem: str, repeat: int, quick: bool) -> None:
    if os.environ.get("SOFTSYM_BENCH_PIN") and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:1])
    if os.environ.get("SOFTSYM_BENCH_PIN"):
        try:
            import torch
            torch.set_num_threads(1)
        except ImportError:
            pass
    if quick:
        SIZES.update(QUICK)
    rows = WORKERS[problem](repeat)
    for r in rows:
        r.pop("x", None)
    print("JSON" + json.dumps(rows))


def _run(problem: str, setting: str, repeat: int, quick: bool) -> list[dict]:
    busy = _busy(3600) if setting == "busy" else None
    try:
        out = subprocess.run([sys.executable, __file__, "--worker", problem, "--repeat", str(repeat)]
                             + (["--quick"] if quick else []),
                             env=_env(setting), capture_output=True, text=True, timeout=3600)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("JSON")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"{problem} / {setting} failed:\n{out.stderr[-3000:]}")
    return json.loads(line[4:])


def report(problem: str, setting: str, rows: list[dict]) -> str:
    ours = rows[0]
    t_ours = float(np.median(ours["times"]))
    peers = [r for r in rows[1:] if r["converged"]]
    best = min(peers, key=lambda r: np.median(r["times"]), default=None)
    lines = []
    for r in rows:
        t = float(np.median(r["times"]))
        why = f"no (rel {r['rel']:.1e}" + (f", {r['stopped']})" if "stopped" in r else ")")
        lines.append((r["solver"], "yes" if r["converged"] else why, r.get("nit", "-"),
                      f"{t:.3f}", f"{min(r['times']):.3f}-{max(r['times']):.3f}",
                      f"{t / t_ours:.1f}" if r is not ours else "1.0"))
    verdict = ("no converged peer" if best is None else
               f"best converged peer: {best['solver']}, {np.median(best['times']) / t_ours:.1f}x softsym's time")
    return (f"{problem}, {setting}:\n" + table(lines, ("solver", "converged", "iterations", "median s", "range s",
                                                        "time / softsym")) + f"\n{verdict}\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problems", default=",".join(PROBLEMS), help=f"comma-separated subset of {PROBLEMS}")
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated subset of {SETTINGS}")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the script, not a measurement")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.repeat, args.quick)
        return 0
    for problem in args.problems.split(","):
        for setting in args.settings.split(","):
            print(report(problem, setting, _run(problem, setting, args.repeat, args.quick)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
