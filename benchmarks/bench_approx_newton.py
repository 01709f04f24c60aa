"""Approximate Newton (leverage-score sparsified Hessian) against exact Newton, GD and scipy.

For each suite instance (planted minimizers far from 0, exact Newton needing >= 5 iterations
from x0 = 0, several (n, d) up to the tall n = 2e6, d = 64):

* convergence plot: ||x_t - x*|| against iteration and against time for Newton,
  approximate Newton and gradient descent (``benchmarks/out/approx_newton_<instance>.png``);
* the issue's targets, with a check mark per instance: (a) on tall data (n d >= 1e8)
  approximate-Newton seconds per iteration / exact Newton's <= 1/3, (b) iterations /
  exact Newton's <= 1.5, (c) time to relative gradient norm 1e-10 below the best of scipy
  ``trust-exact``, ``trust-ncg``, ``Newton-CG`` and ``L-BFGS-B`` given the objective's
  analytic numpy derivatives;
* approximate Newton in its default configuration (``seed=0`` only) and in ``mode="paper"``
  (which stops when beta is not positive), with exact-Hessian steps, Hessian-vector
  products, rows sampled and leverage refreshes;
* floors: one ``A x`` (the faster of BLAS GEMV and ``softsym.numerics.rows.matvec``) and one ``A^T A``
  (SYRK) of the same size.

Every time is the median over ``--repeat`` runs (one run at tall sizes); iterations and
seconds per iteration count up to the first iterate at relative gradient norm 1e-10.
x* is the final iterate of an exact Newton run to relative gradient norm 1e-13.
Usage: ``python benchmarks/bench_approx_newton.py [--quick] [--only NAME] [--budget SECONDS] [--repeat K]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.optimize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_time, table  # noqa: E402

import softsym  # noqa: E402
from softsym.numerics import rows as _rows  # noqa: E402
from softsym.problems import normalized as datasets  # noqa: E402

TOL = 1e-10
OUT = Path(__file__).resolve().parent / "out"
# (label, member, n, d, radius of x*, regularizer strength as a fraction of median beta(x*))
SUITE = [
    ("softmax-100k-16", "softmax", 100_000, 16, 2.0, 0.3),
    ("rescaled_exp-100k-16", "rescaled_exp", 100_000, 16, 0.5, 0.3),
    ("softmax-400k-32", "softmax", 400_000, 32, 1.5, 0.3),
    ("softmax_xent-200k-32", "softmax_xent", 200_000, 32, 3.0, 0.0),
    ("softmax-2M-64", "softmax", 2_000_000, 64, 2.0, 0.3),
]
QUICK = [("softmax-20k-8", "softmax", 20_000, 8, 2.0, 0.3), ("rescaled_exp-20k-8", "rescaled_exp", 20_000, 8, 0.5, 0.3)]
#: the library's default configuration (only the seed is given) and the papers' algorithm
APPROX = {"seed": 0}
PAPER = {"seed": 0, "mode": "paper"}
SCIPY = ("trust-exact", "trust-ncg", "Newton-CG", "L-BFGS-B")
TALL = 100_000_000  # n * d from which an instance counts as tall data (targets a and b)
#: targets: (a) approx s/it / Newton s/it on tall data, (b) iterations / Newton's, (c) time / best scipy
TARGET_A, TARGET_B, TARGET_C = 1 / 3, 1.5, 1.0

def instance(member: str, n: int, d: int, radius: float, wfrac: float, seed: int = 1) -> softsym.NormalizedObjective:
    """A planted instance with uniform regularizer ``w^2 = wfrac * median |beta(x_planted)|``."""
    inst = datasets.synthetic(member, n, d, seed=seed, radius=radius)
    w = np.zeros(n)
    if wfrac > 0:
        beta = inst.objective().pieces(inst.x_star).beta
        w[:] = np.sqrt(wfrac * float(np.median(np.abs(beta))))
    return softsym.objective(member, inst.A, inst.b, w)


def time_to_tol(history: dict, tol: float = TOL) -> float:
    """Elapsed time at the first recorded iterate with relative gradient norm <= tol (inf if none)."""
    g = np.asarray(history["grad_norm"])
    hit = np.nonzero(g <= tol * g[0])[0]
    return float(history["time"][hit[0]]) if hit.size else np.inf


def run_softsym(obj, method: str, tol: float, budget: float, **options) -> tuple[dict, list[np.ndarray]]:
    """Run softsym.minimize, keeping the iterates; stops after ``budget`` seconds."""
    xs: list[np.ndarray] = [np.zeros(obj.d)]
    t0 = time.perf_counter()

    def cb(res):
        xs.append(res.x)
        if time.perf_counter() - t0 > budget:
            raise StopIteration

    maxiter = 100_000 if method == "gd" else 200
    res = softsym.minimize(obj, method=method, tol=tol, maxiter=maxiter, callback=cb, **options)
    return res, xs


def run_scipy(obj, method: str, budget: float) -> tuple[float, int, str]:
    """Time for scipy.optimize.minimize(method) to reach relative gradient norm TOL (inf if never)."""
    x0 = np.zeros(obj.d)
    g0 = float(np.linalg.norm(obj.jac(x0)))
    state = {"hit": np.inf}
    t0 = time.perf_counter()

    def jac(x):
        g = obj.jac(x)
        if state["hit"] == np.inf and np.linalg.norm(g) <= TOL * g0:
            state["hit"] = time.perf_counter() - t0
        return g

    def cb(intermediate_result):
        if state["hit"] < np.inf or time.perf_counter() - t0 > budget:
            raise StopIteration

    kw: dict = {"jac": jac, "callback": cb}
    if method == "trust-exact":
        kw.update(hess=obj.hess, options={"gtol": TOL * g0, "maxiter": 1000})
    elif method == "trust-ncg":
        kw.update(hessp=obj.hessp, options={"gtol": TOL * g0, "maxiter": 1000})
    elif method == "Newton-CG":
        kw.update(hessp=obj.hessp, options={"xtol": 1e-16, "maxiter": 1000})
    else:
        kw.update(options={"gtol": TOL * g0 / np.sqrt(obj.d), "ftol": 0.0, "maxiter": 100_000, "maxcor": 20})
    try:
        res = scipy.optimize.minimize(obj.fun, x0, method=method, **kw)
        nit, msg = int(res.get("nit", -1)), str(res.message)
    except Exception as exc:  # a peer failing is a result, not a crash
        nit, msg = -1, f"{type(exc).__name__}: {exc}"
    return state["hit"], nit, msg


def plot(label: str, runs: dict, xstar: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, (res, xs) in runs.items():
        err = [max(float(np.linalg.norm(x - xstar)), 1e-16) for x in xs]
        t = res.history["time"][:len(err)]
        ax1.semilogy(range(len(err)), err, marker=".", label=name)
        ax2.semilogy(t, err, marker=".", label=name)
    ax1.set_xlabel("iteration")
    ax2.set_xlabel("time [s]")
    for ax in (ax1, ax2):
        ax.set_ylabel(r"$\|x_t - x^*\|$")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fast = [(res, xs) for name, (res, xs) in runs.items() if name != "gd"]
    ax1.set_xlim(0, max(len(xs) for _, xs in fast) + 3)
    ax2.set_xlim(0, 1.3 * max(res.history["time"][len(xs) - 1] for res, xs in fast))
    fig.suptitle(f"{label}: exact Newton vs approximate Newton vs gradient descent")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def per_iter(res) -> float:
    """Mean seconds per iteration up to the first iterate at relative gradient norm 1e-10."""
    g = np.asarray(res.history["grad_norm"])
    hit = np.nonzero(g <= TOL * g[0])[0]
    k = int(hit[0]) if hit.size else res.nit
    return float(res.history["time"][k] - res.history["time"][0]) / k if k else np.nan


def iters_to_tol(res) -> int:
    """Iterations to relative gradient norm 1e-10 (-1 if never)."""
    g = np.asarray(res.history["grad_norm"])
    hit = np.nonzero(g <= TOL * g[0])[0]
    return int(hit[0]) if hit.size else -1


def timed(member: str, obj, method: str, repeat: int, budget: float, **options):
    """Median over ``repeat`` fresh-objective runs: (result of the median run, its iterates)."""
    runs = [run_softsym(softsym.objective(member, obj.A, obj.b, obj.w), method, TOL, budget, **options)
            for _ in range(repeat)]
    runs.sort(key=lambda r: time_to_tol(r[0].history))
    return runs[len(runs) // 2]


def bench_instance(spec, budget: float, peers: bool, repeat: int) -> dict:
    label, member, n, d, radius, wfrac = spec
    t = time.perf_counter()
    obj = instance(member, n, d, radius, wfrac)
    reps = repeat if n * d < TALL else 1
    print(f"\n[{label}] built in {time.perf_counter() - t:.1f} s; median of {reps} run(s) per method", flush=True)
    x = np.zeros(d)
    # the faster of BLAS gemv and the one-pass row kernel the objective uses
    floors = {"gemv": min(median_time(lambda: obj.A @ x, repeat=3),
                          median_time(lambda: _rows.matvec(obj.A, x), repeat=3)),
              "syrk": median_time(lambda: obj.A.T @ obj.A, repeat=1, warmup=0)}
    xstar = run_softsym(obj, "newton", 1e-13, np.inf)[0].x  # the reference x*: never cut short
    runs = {"newton": timed(member, obj, "newton", reps, np.inf),
            "approx-newton": timed(member, obj, "approx-newton", reps, budget, **APPROX),
            "paper": timed(member, obj, "approx-newton", reps, budget, **PAPER),
            "gd": run_softsym(softsym.objective(member, obj.A, obj.b, obj.w), "gd", TOL, min(budget, 60.0))}
    OUT.mkdir(exist_ok=True)
    plot(label, {k: v for k, v in runs.items() if k != "paper"}, xstar, OUT / f"approx_newton_{label}.png")
    row = {"label": label, "n": n, "d": d, "tall": n * d >= TALL, "floors": floors,
           "xstar_norm": float(np.linalg.norm(xstar))}
    for key, (res, _) in runs.items():
        row[key] = {"nit": iters_to_tol(res), "per_iter": per_iter(res), "t_tol": time_to_tol(res.history),
                    "status": res.status, "rows": int(np.median(res.get("sample_rows") or [0])),
                    "refreshes": res.get("leverage_refreshes"), "signed": res.get("signed_steps"),
                    "exact": res.get("exact_steps"), "reused": res.get("reused_hessian_steps"),
                    "hvps": res.get("hessian_vector_products")}
        if key != "gd":
            print(f"  {key}: {row[key]} ({res.message})", flush=True)
    row["scipy"] = {}
    if peers:
        for method in SCIPY:
            got = sorted((run_scipy(softsym.objective(member, obj.A, obj.b, obj.w), method, budget)
                          for _ in range(reps)), key=lambda r: r[0])
            row["scipy"][method] = got[len(got) // 2]
            hit, nit, msg = row["scipy"][method]
            print(f"  scipy {method}: {hit:.3g} s ({nit} it; {msg})", flush=True)
    return row


def fmt(v: float) -> str:
    return "—" if not np.isfinite(v) else f"{v:.3g}"


def verdict(value: float, target: float, strict: bool = False) -> str:
    ok = value < target if strict else value <= target
    return f"{fmt(value)} {'✓' if np.isfinite(value) and ok else '✗'}"


def report(rows: list[dict]) -> str:
    t1 = []
    for r in rows:
        nw, ap = r["newton"], r["approx-newton"]
        s_ratio = ap["per_iter"] / nw["per_iter"]
        it_ratio = ap["nit"] / nw["nit"] if ap["nit"] > 0 else np.inf
        t1.append((r["label"], nw["nit"], ap["nit"], verdict(it_ratio, TARGET_B), fmt(nw["per_iter"]),
                   fmt(ap["per_iter"]), verdict(s_ratio, TARGET_A) if r["tall"] else f"{fmt(s_ratio)} (not tall)",
                   f"{ap['exact']} (+{ap['reused']} reused)", ap["hvps"], ap["rows"], ap["refreshes"], ap["signed"],
                   r["paper"]["nit"] if r["paper"]["nit"] >= 0 else "stopped (beta ≤ 0)",
                   fmt(r["floors"]["gemv"]), fmt(r["floors"]["syrk"])))
    out = [table(t1, ("instance", "Newton it", "approx it", "(b) it ratio ≤ 1.5", "Newton s/it", "approx s/it",
                      "(a) s/it ratio ≤ 1/3", "exact-Hessian steps", "Hv products", "median rows m",
                      "lev. refreshes", "signed steps", "paper it", "floor Ax s", "floor AᵀA s"))]
    t2 = []
    for r in rows:
        peers = {k: v[0] for k, v in r["scipy"].items()}
        best = min(peers.values()) if peers else np.nan
        ap = r["approx-newton"]["t_tol"]
        t2.append((r["label"], fmt(r["newton"]["t_tol"]), fmt(ap), fmt(r["paper"]["t_tol"]), fmt(r["gd"]["t_tol"]),
                   *(fmt(peers.get(m, np.nan)) for m in SCIPY), verdict(ap / best, TARGET_C, strict=True)))
    out.append(table(t2, ("instance", "Newton", "approx (default)", "approx paper", "GD", *SCIPY,
                          "(c) approx ÷ best scipy < 1")))
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small instances only (smoke test)")
    ap.add_argument("--only", default=None, help="run the instances whose label contains this")
    ap.add_argument("--budget", type=float, default=240.0, help="time cap per method and instance [s]")
    ap.add_argument("--no-peers", action="store_true", help="skip the scipy peers")
    ap.add_argument("--repeat", type=int, default=5, help="runs per method (median time) below tall sizes")
    args = ap.parse_args([] if argv is None else argv)
    suite = QUICK if args.quick else SUITE
    if args.only:
        suite = [s for s in suite if args.only in s[0]]
    for member in sorted({s[1] for s in suite}):  # compile/load every kernel before any timing
        warm = instance(member, 2000, 4, 0.5, 0.3)
        for method, opts in (("newton", {}), ("approx-newton", APPROX), ("approx-newton", {"exact_above": 1.0}),
                             ("approx-newton", {"refine": 1, "exact_above": 1.0}), ("gd", {})):
            softsym.minimize(warm, method=method, maxiter=3, **opts)
        for method in SCIPY:
            run_scipy(warm, method, 1.0)
    rows = [bench_instance(s, args.budget, not args.no_peers, args.repeat) for s in suite]
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"\nOPENBLAS_NUM_THREADS={threads}.  Iterations and times to relative gradient norm 1e-10 "
          "(times in seconds, '—' = not reached within the budget; paper mode stops when beta is not positive).")
    print(f"approx (default): softsym.minimize(obj, method='approx-newton', **{APPROX}); paper: {PAPER}\n")
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
