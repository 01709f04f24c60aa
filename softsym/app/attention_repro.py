"""Reproduction of paper 003's guarantee and of planted recovery (the attention page's tables and figures).

``python -m softsym.app.attention_repro --out docs/figures`` runs

* ``regime``: the paper's regime on ``planted(50, 3, seed=7)`` with ``A_i / sqrt(n)``,
  ``reg_y = 1e-2``: at ``reg_x`` = factor x the derived threshold
  (:func:`softsym.theory.attention.certified_reg_x`), ``newton`` (tol 1e-10, at most 500
  iterations) from ``X0 = 0`` and 20 random starts (entries ``N(0, 1) * 3 / d``): runs reported
  as success, distinct minimizers, loss range, median iterations, the guarantee of each run;
* ``iterations``: iterations against the relative gradient tolerance ``eps = 1e-2 ... 1e-12``
  from ``X0 = 0`` at the threshold and at ``1e-4`` x threshold;
* ``recovery``: planted instances (``||X*||_F = 1``) per size and seed: fitted (relative loss
  ``L / ||B||_F^2 < 1e-10``) by ``softsym.minimize`` from ``X0 = 0`` and by
  ``softsym.minimize_multistart`` with its defaults, with candidates, finished runs and times,

and writes markdown tables (``attention_repro.md``), the numbers (``attention_repro.json``) and
the figures ``attention_multistart.png`` and ``attention_iterations_eps.png``.  Parts not run are
read back from an earlier ``attention_repro.json`` in the output directory.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ..api import minimize, minimize_multistart
from ..problems.attention import MEMBER, AttentionRegression, planted
from ..registry import kernels
from ..theory.attention import certified_reg_x
from .plots import save

PARTS = ("regime", "iterations", "recovery")
FACTORS = (1.0, 1e-2, 1e-4, 1e-6, 0.0)
EPS = tuple(10.0 ** -k for k in range(2, 13))
CELLS = ((100, 3), (200, 3), (300, 3), (400, 3), (100, 5), (200, 5), (300, 5), (400, 5),
         (100, 6), (200, 6), (300, 6), (400, 6), (100, 8), (200, 8), (300, 8), (400, 8))
#: relative loss below which a planted instance counts as fitted
FIT = 1e-10


def regime_data(n: int = 50, d: int = 3, seed: int = 7, reg_y: float = 1e-2) -> tuple[tuple, float]:
    """``(A1, A2, A3, B)`` of the regime experiment and the derived threshold: a planted instance whose
    ``A_i`` are scaled by ``1/sqrt(n)`` (``||A_i||_2`` about 1) and ``B`` is planted again from them."""
    inst = planted(n, d, seed=seed)
    A = tuple(M / np.sqrt(n) for M in (inst.A1, inst.A2, inst.A3))
    B = kernels(MEMBER).forward(*A, inst.X_star, inst.Y_star)[2]
    return (*A, B), certified_reg_x(*A, B, reg_y=reg_y)


def distinct(points: list[np.ndarray], rtol: float = 1e-6) -> list[np.ndarray]:
    """Representatives of ``points`` up to relative distance ``rtol``."""
    reps: list[np.ndarray] = []
    for x in points:
        if not any(np.linalg.norm(x - r) <= rtol * max(1.0, np.linalg.norm(r)) for r in reps):
            reps.append(x)
    return reps


def regime(factors=FACTORS, starts: int = 20, reg_y: float = 1e-2, seed: int = 0, maxiter: int = 500) -> dict:
    """The multi-start table at ``reg_x = factor x threshold`` (see the module docstring)."""
    data, thr = regime_data(reg_y=reg_y)
    d = data[0].shape[1]
    rng = np.random.default_rng(seed)
    X0s = [None] + [rng.standard_normal((d, d)) * 3 / d for _ in range(starts)]
    rows = []
    for fac in factors:
        prob = AttentionRegression(*data, reg_x=fac * thr, reg_y=reg_y)
        res = [minimize(prob, None if X0 is None else (X0, None), method="newton", tol=1e-10, maxiter=maxiter)
               for X0 in X0s]
        ok = [r for r in res if r.success]
        reps = distinct([r.X for r in ok])
        far = max((float(np.linalg.norm(r.X - ok[0].X)) for r in ok), default=float("nan"))
        guar: dict[str, int] = {}
        for r in res:
            guar[r.guarantee] = guar.get(r.guarantee, 0) + 1
        rows.append({"factor": fac, "reg_x": fac * thr, "runs": len(res), "success": len(ok),
                     "minimizers": len(reps), "max_dist": far,
                     "loss": [float(min(r.fun for r in ok)), float(max(r.fun for r in ok))] if ok else None,
                     "median_iterations": float(np.median([r.nit for r in res])), "guarantee": guar})
    return {"threshold": thr, "reg_y": reg_y, "b2": float(np.sum(data[3] ** 2)), "rows": rows}


def iterations(factors=(1.0, 1e-4), eps=EPS, reg_y: float = 1e-2) -> dict:
    """Newton iterations from ``X0 = 0`` to relative gradient tolerance ``eps`` per factor."""
    data, thr = regime_data(reg_y=reg_y)
    out = {}
    for fac in factors:
        prob = AttentionRegression(*data, reg_x=fac * thr, reg_y=reg_y)
        out[f"{fac:g}"] = [int(minimize(prob, method="newton", tol=e).nit) for e in eps]
    return {"eps": list(eps), "threshold": thr, "iterations": out}


def recovery(cells=CELLS, seeds=(700, 701, 702, 703), extra_seeds=(704, 705, 706, 707),
             extra_cells=((300, 6), (400, 6), (300, 8), (400, 8)), progress=print) -> list[dict]:
    """Planted recovery per instance: from ``X0 = 0`` and with ``minimize_multistart`` (defaults)."""
    rows = []
    for n, d in cells:
        for seed in tuple(seeds) + (tuple(extra_seeds) if (n, d) in extra_cells else ()):
            inst = planted(n, d, seed=seed)
            prob = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B)
            b2 = float(np.sum(inst.B ** 2))
            t0 = time.perf_counter()
            one = minimize(prob)
            t1 = time.perf_counter()
            ms = minimize_multistart(prob)
            t2 = time.perf_counter()
            row = {"n": n, "d": d, "seed": seed, "fit_x0": bool(one.fun / b2 < FIT), "rel_loss_x0": float(one.fun / b2),
                   "nit_x0": int(one.nit), "time_x0": t1 - t0, "fit": bool(ms.success and ms.fun / b2 < FIT),
                   "rel_loss": float(ms.fun / b2), "dist": float(np.linalg.norm(ms.X - inst.X_star)),
                   "guarantee": ms.guarantee, "candidates": int(ms.starts_used), "hops": int(ms.hops_used),
                   "finished": int(ms.finished), "iterations": int(ms.iterations_total), "time": t2 - t1}
            rows.append(row)
            progress(f"{n}x{d} seed {seed}: fit {row['fit']} (from X0 = 0: {row['fit_x0']}), "
                     f"{row['candidates']} candidates, {row['time']:.1f} s")
    return rows


def _rng(values, fmt: str = "{:.3g}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"


def tables(data: dict) -> str:
    """Markdown tables of the parts present in ``data``."""
    lines: list[str] = []
    if "regime" in data:
        rg = data["regime"]
        lines += [f"Derived threshold reg_x* = {rg['threshold']:.4g} (reg_y = {rg['reg_y']:g}, "
                  f"||B||_F^2 = {rg['b2']:.3g}).", "",
                  "| reg_x / reg_x* | runs with success | distinct minimizers | max ||X_i - X_0||_F | loss range "
                  "| median iterations | guarantee |", "|---|---|---|---|---|---|---|"]
        for r in rg["rows"]:
            loss = "-" if r["loss"] is None else _rng(r["loss"], "{:.5g}")
            guar = ", ".join(f"{k} ({v})" for k, v in sorted(r["guarantee"].items()))
            lines.append(f"| {r['factor']:g} | {r['success']}/{r['runs']} | {r['minimizers']} | {r['max_dist']:.2g} "
                         f"| {loss} | {r['median_iterations']:g} | {guar} |")
        lines.append("")
    if "iterations" in data:
        it = data["iterations"]
        lines += ["| eps | " + " | ".join(f"{e:.0e}" for e in it["eps"]) + " |",
                  "|---|" + "---|" * len(it["eps"])]
        lines += [f"| reg_x = {k} x reg_x* | " + " | ".join(str(v) for v in vals) + " |"
                  for k, vals in it["iterations"].items()]
        lines.append("")
    if "recovery" in data:
        rows = data["recovery"]
        lines += ["| n x d | instances | fit from X0 = 0 | fit with multi-start | failures (relative loss) "
                  "| candidates screened (kicks) | runs finished | time multi-start / one solve |",
                  "|---|---|---|---|---|---|---|---|"]
        for n, d in dict.fromkeys((r["n"], r["d"]) for r in rows):
            rs = [r for r in rows if (r["n"], r["d"]) == (n, d)]
            fails = [f"{r['rel_loss']:.2g}" for r in rs if not r["fit"]]
            lines.append(f"| {n} x {d} | {len(rs)} | {sum(r['fit_x0'] for r in rs)} | **{sum(r['fit'] for r in rs)}** "
                         f"| {', '.join(fails) or '-'} | {_rng([r['candidates'] for r in rs], '{}')} "
                         f"({_rng([r['hops'] for r in rs], '{}')}) | {_rng([r['finished'] for r in rs], '{}')} "
                         f"| {_rng([r['time'] / r['time_x0'] for r in rs], '{:.2g}')}x |")
        fit = sum(r["fit"] for r in rows)
        ratio = np.median([r["time"] / r["time_x0"] for r in rows])
        lines += [f"| all | {len(rows)} | {sum(r['fit_x0'] for r in rows)} | **{fit} ({fit / len(rows):.0%})** | | | "
                  f"| median {ratio:.2g}x |", ""]
    return "\n".join(lines)


def plots(out: Path, data: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    if "regime" in data:
        rows = data["regime"]["rows"]
        fig, ax = plt.subplots(figsize=(5, 3))
        x = np.arange(len(rows))
        ax.bar(x, [r["minimizers"] for r in rows], label=f"distinct minimizers (of {rows[0]['runs']} starts)")
        ax.plot(x, [r["runs"] - r["success"] for r in rows], "rs", label="runs not reported as success")
        ax.set_xticks(x, [f"{r['factor']:g}" for r in rows])
        ax.set(xlabel="reg_x / derived threshold", title=f"attention n=50, d=3: X0 = 0 and {rows[0]['runs'] - 1} "
               "random starts")
        ax.title.set_fontsize(8)
        ax.grid(alpha=0.4)
        ax.legend(fontsize=7)
        names.append(save(fig, out, "attention_multistart.png"))
    if "iterations" in data:
        it = data["iterations"]
        fig, ax = plt.subplots(figsize=(5, 3))
        for k, vals in it["iterations"].items():
            ax.semilogx(it["eps"], vals, "o-", label="reg_x = threshold" if k == "1" else f"reg_x = {k} threshold")
        ax.invert_xaxis()
        ax.set(xlabel="eps (relative gradient tolerance)", ylabel="iterations from X0 = 0",
               title="attention, n=50, d=3: iterations vs eps")
        ax.grid(alpha=0.4)
        ax.legend(fontsize=7)
        names.append(save(fig, out, "attention_iterations_eps.png"))
    return names


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/figures"))
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                   help="the experiments to run; the others are taken from OUT/attention_repro.json")
    p.add_argument("--seeds", type=int, nargs="+", default=[700, 701, 702, 703], help="recovery seeds in every cell")
    p.add_argument("--extra-seeds", type=int, nargs="*", default=[704, 705, 706, 707],
                   help="more recovery seeds in the four largest cells (300-400 x 6-8)")
    p.add_argument("--tables-only", action="store_true", help="re-render from OUT/attention_repro.json")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "attention_repro.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    t0 = time.perf_counter()
    parts = [] if args.tables_only else args.parts
    if "regime" in parts:
        data["regime"] = regime()
    if "iterations" in parts:
        data["iterations"] = iterations()
    if "recovery" in parts:
        data["recovery"] = recovery(seeds=tuple(args.seeds), extra_seeds=tuple(args.extra_seeds))
    if parts:
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    text = tables(data)
    (args.out / "attention_repro.md").write_text(text, encoding="utf-8")
    plots(args.out, data)
    print(text)
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
