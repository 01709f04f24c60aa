"""Dask-backed objectives: overhead of the distributed gradient, and an out-of-core Newton solve.

1. Gradient throughput on the same data: in-memory ``NormalizedObjective.jac`` vs ``DaskObjective.jac``
   with ``A`` persisted in the workers' memory and with ``A`` read from chunk files on disk
   (2-worker ``LocalCluster``, one thread each), against the floor ``A x`` plus ``A^T g``
   (two bare GEMVs).  Each call is at a fresh ``x`` (no memo): u pass, global sums, A^T g.
2. Out-of-core: ``A`` written as ``.npy`` chunks larger than the workers' memory limits
   together, solved by Newton to the same tolerance as in memory; no worker restarts.

Usage: ``python benchmarks/bench_dask.py [--n N] [--d D] [--chunk-rows R] [--ooc-gb G]
[--memory-limit BYTES] [--skip-ooc] [--skip-gradient]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_time, table  # noqa: E402


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def gradient_overhead(n: int, d: int, chunk_rows: int, repeat: int = 5) -> list[tuple]:
    import dask.array as da
    from distributed import Client, LocalCluster

    import softsym
    from softsym.backends.dask import open_npy_chunks, save_npy_chunks
    from softsym.problems.normalized import synthetic

    inst = synthetic("softmax", n, d, seed=0)
    mem = inst.objective()
    rng = np.random.default_rng(1)
    xs = iter(0.1 * rng.standard_normal((10_000, d)))

    def floor():
        return inst.A.T @ (inst.A @ next(xs))

    t_floor = median_time(floor, repeat=repeat)
    t_mem = median_time(lambda: mem.jac(next(xs)), repeat=repeat)
    rows = [("floor: A x and A^T g (numpy GEMVs)", f"{t_floor * 1e3:.1f}", "1.00", "-")]
    rows.append(("in-memory NormalizedObjective.jac", f"{t_mem * 1e3:.1f}", f"{t_mem / t_floor:.2f}", "1.00"))
    tmp = Path(tempfile.mkdtemp(prefix="softsym-bench-dask-"))
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                          silence_logs=logging.ERROR) as cluster, Client(cluster):
            A_mem = da.from_array(inst.A, chunks=(chunk_rows, d)).persist()
            save_npy_chunks(tmp / "A", A_mem)
            for label, A in (("DaskObjective.jac, A in worker memory", A_mem),
                             ("DaskObjective.jac, A from .npy chunks", open_npy_chunks(tmp / "A"))):
                obj = softsym.objective("softmax", A, inst.b)
                x = 0.1 * rng.standard_normal(d)
                err = np.max(np.abs(obj.jac(x) - mem.jac(x))) / np.max(np.abs(mem.jac(x)))
                t = median_time(lambda o=obj: o.jac(next(xs)), repeat=repeat)
                rows.append((label, f"{t * 1e3:.1f}", f"{t / t_floor:.2f}", f"{t / t_mem:.2f}"))
                print(f"  {label}: max rel. difference to in-memory gradient {err:.1e}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def out_of_core(gb: float, d: int, chunk_rows: int, memory_limit: float, tol: float = 1e-8) -> dict:
    from distributed import Client, LocalCluster

    import softsym
    from softsym.backends.dask import synthetic_on_disk

    n = int(gb * 1e9 / (8 * d))
    tmp = Path(tempfile.mkdtemp(prefix="softsym-ooc-"))
    out: dict = {"n": n, "d": d, "memory_limit_MB": memory_limit / 1e6}
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                          dashboard_address=":0", silence_logs=logging.ERROR) as cluster, Client(cluster) as c:
            pids = c.run(os.getpid)
            t0 = time.perf_counter()
            inst = synthetic_on_disk(tmp / "A", "softmax", n=n, d=d, chunk_rows=chunk_rows, seed=0)
            out["write_s"] = time.perf_counter() - t0
            out["A_GB"] = inst.A.nbytes / 1e9
            t0 = time.perf_counter()
            res = softsym.minimize(inst.objective(), method="newton", tol=tol)
            out["dask_s"] = time.perf_counter() - t0
            out.update(dask_nit=res.nit, dask_success=res.success, dask_rel_grad=res.rel_grad_norm,
                       dask_err=np.linalg.norm(res.x - inst.x_star) / np.linalg.norm(inst.x_star))
            out["worker_rss_MB"] = [round(r / 1e6) for r in c.run(_rss).values()]
            out["restarts"] = int(c.run(os.getpid) != pids)
        A = inst.A.compute(scheduler="threads")  # into this process, for the in-memory reference
        t0 = time.perf_counter()
        ref = softsym.minimize(softsym.objective("softmax", A, inst.b), method="newton", tol=tol)
        out["mem_s"] = time.perf_counter() - t0
        out.update(mem_nit=ref.nit, mem_success=ref.success, x_diff=np.linalg.norm(res.x - ref.x) / np.linalg.norm(ref.x))
        del A
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--d", type=int, default=32)
    p.add_argument("--chunk-rows", type=int, default=125_000)
    p.add_argument("--ooc-gb", type=float, default=1.2)
    p.add_argument("--memory-limit", type=float, default=500e6)
    p.add_argument("--skip-ooc", action="store_true")
    p.add_argument("--skip-gradient", action="store_true")
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore", message="Sending large graph")
    if not a.skip_gradient:
        print(f"gradient at a fresh x, softmax, n={a.n}, d={a.d}, chunks of {a.chunk_rows} rows, 2 workers x 1 thread")
        rows = gradient_overhead(a.n, a.d, a.chunk_rows)
        print(table(rows, ("method", "median ms", "vs floor", "vs in-memory")))
    if not a.skip_ooc:
        print(f"\nout of core: {a.ooc_gb} GB of A in .npy chunks, 2 workers with memory_limit {a.memory_limit / 1e6:.0f} MB")
        r = out_of_core(a.ooc_gb, a.d, a.chunk_rows, a.memory_limit)
        print(table([
            ("A on disk (GB)", f"{r['A_GB']:.2f}"), ("n x d", f"{r['n']} x {r['d']}"),
            ("worker memory limits (MB)", f"2 x {r['memory_limit_MB']:.0f}"),
            ("write + plant (s)", f"{r['write_s']:.1f}"),
            ("Newton, Dask out of core: iterations / time (s)", f"{r['dask_nit']} / {r['dask_s']:.1f}"),
            ("Newton, in memory: iterations / time (s)", f"{r['mem_nit']} / {r['mem_s']:.1f}"),
            ("both converged", str(r["dask_success"] and r["mem_success"])),
            ("relative gradient norm (Dask)", f"{r['dask_rel_grad']:.1e}"),
            ("||x_dask - x_mem|| / ||x_mem||", f"{r['x_diff']:.1e}"),
            ("||x_dask - x*|| / ||x*||", f"{r['dask_err']:.1e}"),
            ("worker RSS after solve (MB)", str(r["worker_rss_MB"])),
            ("worker restarts", str(r["restarts"])),
        ], ("quantity", "value")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
