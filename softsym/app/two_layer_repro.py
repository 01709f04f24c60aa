"""Reproduction of paper 004's two-layer claims against the derived guarantees.

``python -m softsym.app.two_layer_repro --out docs/figures`` runs

* a width sweep (default m = 32 ... 4096) of full-batch gradient descent on the regression task
  of :func:`softsym.problems.two_layer.regression_task` for softmax, ReLU and exp networks
  under one output-scaling convention and, for softmax, also under the paper's;
* per run: steps to a relative loss ``eps``, the measured NTK drift ``max_t ||H_t - H_0||`` and
  ``min_t lambda_min(H_t)`` against the derived bound ``L_H D_t`` (``D_t`` the measured
  pre-activation displacement), and the over-parametrization condition of
  :func:`softsym.theory.two_layer.guarantee` (radius / drift margin, certified step);
* a score-estimation sweep (width and steps) on a Gaussian mixture under the OU process, at one
  noise level, and over noise levels (one time-conditioned network against one network per ``t``),

and writes markdown tables (``two_layer_repro.md``), the numbers (``two_layer_repro.json``)
and small PNGs into the output directory.

Output scaling.  ``F = kappa <a, sigma(W^T x)>``.  The softmax activations ``p_r`` sum to one,
so ``m p_r`` is the O(1) per-neuron feature comparable to ``relu(u_r)`` or ``exp(u_r)``.  The
like-for-like ("ntk") convention is ``F = m^{-1/2} sum_r a_r phi_r`` with O(1) features
``phi_r``: ``kappa = sqrt(m)`` for softmax (``phi_r = m p_r``) and ``kappa = 1/sqrt(m)`` for
ReLU and exp; every NTK is then O(1) in ``m``.  The paper's convention is ``kappa = m`` for
softmax (``phi_r = m p_r`` without the ``1/sqrt(m)``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from ..api import minimize
from ..problems.mixture_score import (
    GaussianMixture,
    ScoreModel,
    TimeScoreModel,
    score_error,
    score_matching,
    score_matching_over_time,
)
from ..problems.two_layer import TwoLayerNetwork, TwoLayerRegression, regression_task
from ..theory.two_layer import bounds, bounds_module, guarantee, width_requirement
from .plots import save

PARTS = ("sweep", "score", "score-time")

CONVENTIONS = {
    "ntk": {"softmax": lambda m: math.sqrt(m), "relu": lambda m: 1 / math.sqrt(m), "exp": lambda m: 1 / math.sqrt(m)},
    "paper": {"softmax": lambda m: float(m)},
}


def run_gd(net: TwoLayerNetwork, X: np.ndarray, y: np.ndarray, steps: int, eps: float, lr: float | None = None) -> dict:
    """Full-batch GD with ``lr = 1/lambda_max(H(W_0))`` (default); per-step NTK drift, lambda_min, displacement."""
    W0 = net.W.copy()
    H0 = net.ntk(X, W0)
    ev0 = np.linalg.eigvalsh(H0)
    lam0, lmax0 = float(ev0[0]), float(ev0[-1])
    lr = 1.0 / lmax0 if lr is None else lr
    U0 = X @ W0
    W = W0.copy()
    loss, dH, lmin, D, wd = [], [0.0], [lam0], [0.0], [0.0]
    for t in range(steps + 1):
        L, g = net.loss_grad(X, y, W)
        loss.append(L)
        if t > 0:
            H = net.ntk(X, W)
            dH.append(float(np.linalg.norm(H - H0, 2)))
            lmin.append(float(np.linalg.eigvalsh(H)[0]))
            D.append(float(np.max(np.abs(X @ W - U0))))
            wd.append(float(np.max(np.linalg.norm(W - W0, axis=0))))
        if L <= eps * loss[0] or t == steps:
            break
        W = W - lr * g
    loss = np.array(loss)
    hit = np.nonzero(loss <= eps * loss[0])[0]
    return {"lam0": lam0, "lmax0": lmax0, "lr": lr, "loss": loss, "dH": np.array(dH), "lam_min": np.array(lmin),
            "D": np.array(D), "w_drift": np.array(wd), "steps_to_eps": int(hit[0]) if hit.size else None,
            "B0": float(np.max(np.abs(U0)))}


def width_sweep(widths=(32, 64, 128, 256, 512, 1024, 2048, 4096), n: int = 16, d: int = 8, steps: int = 300,
                eps: float = 1e-3, seed: int = 0, init_scale: float = 1.0) -> list[dict]:
    """One row per (convention, activation, width); see the module docstring."""
    X, y = regression_task(n, d, seed)
    rows = []
    for conv, rules in CONVENTIONS.items():
        for act, rule in rules.items():
            for m in widths:
                kap = rule(m)
                net = TwoLayerNetwork(d, m, activation=act, kappa=kap, seed=seed, init_scale=init_scale)
                t0 = time.perf_counter()
                r = run_gd(net, X, y, steps, eps)
                row = {"convention": conv, "activation": act, "m": m, "kappa": kap, "n": n, "d": d,
                       "rho0": float(np.linalg.norm(y - net.forward(X))),
                       "steps_to_eps": r["steps_to_eps"], "final_rel_loss": float(r["loss"][-1] / r["loss"][0]),
                       "lam0": r["lam0"], "lmax0": r["lmax0"], "lr": r["lr"], "B0": r["B0"],
                       "rel_dH": float(r["dH"].max() / r["lam0"]),
                       "lam_min_ratio": float(r["lam_min"].min() / r["lam0"]),
                       "D_max": float(r["D"].max()), "w_drift_max": float(r["w_drift"].max())}
                B = r["B0"] + row["D_max"]
                c = bounds(act, B=B, m=m, n=n, kappa=kap, lam0=max(r["lam0"], 1e-300), rho0=float(np.linalg.norm(y)),
                           D=row["D_max"], s0=init_scale, N=int(np.sum(np.abs(X @ net.W) <= row["D_max"])))
                if c.deterministic:
                    row["dH_bound_rel"] = c["L_H"] * row["D_max"] / r["lam0"]
                    g = guarantee(net, X, y)
                    row.update(certified=g.holds, margin=g.margin, lr_certified=g.lr, drift_bound=g.drift,
                               radius=g.radius, lr_over_certified=r["lr"] / g.lr if g.lr > 0 else math.inf)
                else:
                    row["dH_bound_rel"] = c["dH_count"] / r["lam0"]
                    row.update(certified=False, margin=float("nan"), lr_certified=float("nan"),
                               drift_bound=float("nan"), radius=float("nan"), lr_over_certified=float("nan"))
                row["seconds"] = time.perf_counter() - t0
                row["trace"] = {k: r[k].tolist() for k in ("loss", "dH", "lam_min")}
                rows.append(row)
    return rows


def required_width(rows: list[dict]) -> dict:
    """Per (convention, activation): log-log fit ``margin ~ c m^alpha`` over the sweep and the width where
    it reaches 1; and the model-based requirement of :func:`softsym.theory.two_layer.width_requirement`
    with ``lam_bar`` measured at the largest width and the Gaussian-initialization bound on ``B(m)``."""
    out = {}
    for key in sorted({(r["convention"], r["activation"]) for r in rows}):
        pts = [(r["m"], r["margin"]) for r in rows if (r["convention"], r["activation"]) == key
               and np.isfinite(r["margin"]) and r["margin"] > 0]
        if len(pts) < 2:
            continue
        lm, lg = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
        alpha, c = np.polyfit(lm, lg, 1)
        m_req = math.exp(-c / alpha) if alpha > 0 else math.inf
        big = max((r for r in rows if (r["convention"], r["activation"]) == key), key=lambda r: r["m"])
        mod = bounds_module(key[1])
        G0 = float(mod.FUNCTIONS["G"](0.0, big["m"], big["kappa"], big["n"], 1.0, 1.0))
        lam_bar = big["lam0"] / G0**2
        rule = CONVENTIONS[key[0]][key[1]]
        wr = width_requirement(key[1], big["n"], big["rho0"], lam_bar, rule)
        out[f"{key[0]}/{key[1]}"] = {"alpha": float(alpha), "margin_at_max_m": float(pts[-1][1]), "m_required": m_req,
                                     "lam_bar": lam_bar, "m_required_model": wr.m, "B_at_required": wr.B}
    return out


def _gd_checkpoints(prob: TwoLayerRegression, checkpoints, evaluate) -> dict[int, object]:
    """Train ``prob`` by ``softsym.minimize`` (GD, ``lr = 1/lambda_max``) and ``evaluate(W)`` at each checkpoint step.

    A run that converges before a checkpoint stays at its final ``W`` from then on.
    """
    steps = max(checkpoints)
    out, it = {}, [0]
    if 0 in checkpoints:
        out[0] = evaluate(prob.weights(prob.start()))

    def callback(r):
        it[0] += 1
        if it[0] in checkpoints:
            out[it[0]] = evaluate(prob.weights(r.x))

    res = minimize(prob, method="gd", maxiter=steps, callback=callback)
    for c in checkpoints:
        if c not in out:
            out[c] = evaluate(res.W)
    return out


def score_sweep(widths=(32, 128, 512), checkpoints=(100, 300, 1000), t: float = 0.5, n: int = 800,
                seed: int = 0) -> list[dict]:
    """Denoising score matching on :meth:`GaussianMixture.ring` per (convention, activation, width);
    relative score error at each checkpoint of GD (``lr = 1/lambda_max``)."""
    gm = GaussianMixture.ring()
    rows = []
    for conv, rules in CONVENTIONS.items():
        for act, rule in rules.items():
            for m in widths:
                prob = score_matching(gm, t, m=m, activation=act, n=n, seed=seed, kappa=rule(m))

                def err(W, prob=prob):
                    return score_error(gm, ScoreModel(prob.net.with_weights(W), t, np.empty(0)), t)

                rows.append({"convention": conv, "activation": act, "m": m, "t": t,
                             "errors": _gd_checkpoints(prob, checkpoints, err)})
    return rows


def score_time_sweep(widths=(32, 128, 512), checkpoints=(100, 300, 1000), ts=(0.1, 0.25, 0.5, 1.0, 2.0),
                     n: int = 4000, seed: int = 0) -> list[dict]:
    """Score estimation over noise levels: one time-conditioned network against one network per ``t``.

    Per (convention, activation, width): a network on ``(x, t, 1)`` trained on ``n`` samples with
    ``t ~ U[min ts, max ts]`` (:func:`~softsym.problems.mixture_score.score_matching_over_time`), and
    one network per ``t`` in ``ts`` trained on ``n // len(ts)`` samples at that ``t`` (the same
    sample budget); the relative score error at every ``t`` in ``ts`` at each GD checkpoint.
    """
    gm = GaussianMixture.ring()
    t_min, t_max = min(ts), max(ts)
    rows = []
    for conv, rules in CONVENTIONS.items():
        for act, rule in rules.items():
            for m in widths:
                prob = score_matching_over_time(gm, t_min, t_max, m=m, activation=act, n=n, seed=seed,
                                                kappa=rule(m))

                def errs(W, prob=prob):
                    model = TimeScoreModel(prob.net.with_weights(W), t_min, t_max, np.empty(0))
                    return [score_error(gm, model.at(t), t) for t in ts]

                joint = _gd_checkpoints(prob, checkpoints, errs)
                per_t = {c: [] for c in checkpoints}
                for t in ts:
                    pt = score_matching(gm, t, m=m, activation=act, n=n // len(ts), seed=seed, kappa=rule(m))

                    def err(W, pt=pt, t=t):
                        return score_error(gm, ScoreModel(pt.net.with_weights(W), t, np.empty(0)), t)

                    for c, e in _gd_checkpoints(pt, checkpoints, err).items():
                        per_t[c].append(e)
                base = {"convention": conv, "activation": act, "m": m, "ts": list(ts)}
                rows.append({**base, "model": "time-conditioned", "errors": joint})
                rows.append({**base, "model": "per-t", "errors": per_t})
    return rows


def plots(out: Path, rows: list[dict], srows: list[dict], trows: list[dict] | None = None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = []
    keys = sorted({(r["convention"], r["activation"]) for r in rows})
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for i, key in enumerate(keys):
        rs = [r for r in rows if (r["convention"], r["activation"]) == key]
        ms = [r["m"] for r in rs]
        lab = f"{key[1]} ({key[0]})"
        axes[0].loglog(ms, [max(r["rel_dH"], 1e-16) for r in rs], "o-", color=f"C{i}", label=f"{lab} measured")
        axes[0].loglog(ms, [r["dH_bound_rel"] for r in rs], "x--", color=f"C{i}", label=f"{lab} bound")
        axes[1].semilogx(ms, [r["lam_min_ratio"] for r in rs], "o-", color=f"C{i}", label=lab)
        axes[2].semilogx(ms, [r["steps_to_eps"] if r["steps_to_eps"] is not None else np.nan for r in rs], "o-",
                         color=f"C{i}", label=lab)
    axes[0].set(xlabel="width m", ylabel="max_t ||H_t - H_0|| / lambda_0", title="NTK drift vs derived bound")
    axes[1].axhline(0.5, color="k", lw=0.8, ls=":")
    axes[1].set(xlabel="width m", ylabel="min_t lambda_min(H_t) / lambda_0", title="lambda_min (certified >= 0.5)")
    axes[2].set(xlabel="width m", ylabel="steps", title="GD steps to loss <= 1e-3 x initial")
    axes[0].legend(fontsize=6)
    axes[1].legend(fontsize=6)
    names.append(save(fig, out, "two_layer_sweep.png"))

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    skeys = sorted({(r["convention"], r["activation"]) for r in srows})
    for i, key in enumerate(skeys):
        rs = [r for r in srows if (r["convention"], r["activation"]) == key]
        last = max(rs[0]["errors"])
        axes[0].loglog([r["m"] for r in rs], [r["errors"][last] for r in rs], "o-", color=f"C{i}",
                       label=f"{key[1]} ({key[0]})")
        big = rs[-1]
        axes[1].loglog(list(big["errors"]), list(big["errors"].values()), "o-", color=f"C{i}",
                       label=f"{key[1]} ({key[0]}), m={big['m']}")
    sw = sorted({r["m"] for r in srows})
    axes[0].set_xticks(sw, [str(w) for w in sw])
    axes[0].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0].set(xlabel="width m", ylabel="relative score error", title=f"score error after {last} GD steps")
    axes[1].set(xlabel="GD steps", ylabel="relative score error", title="score error vs steps (largest m)")
    axes[0].legend(fontsize=6)
    axes[1].legend(fontsize=6)
    names.append(save(fig, out, "two_layer_score.png"))
    if trows:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        keys = sorted({(r["convention"], r["activation"]) for r in trows})
        last = max(trows[0]["errors"])
        for i, key in enumerate(keys):
            for model, style in (("time-conditioned", "o-"), ("per-t", "x--")):
                rs = [r for r in trows if (r["convention"], r["activation"]) == key and r["model"] == model]
                big = max(rs, key=lambda r: r["m"])
                lab = f"{key[1]} ({key[0]}) {model}"
                axes[0].semilogx(big["ts"], big["errors"][last], style, color=f"C{i}", label=f"{lab}, m={big['m']}")
                axes[1].loglog([r["m"] for r in rs], [float(np.mean(r["errors"][last])) for r in rs], style,
                               color=f"C{i}", label=lab)
        axes[0].set(xlabel="noise level t", ylabel="relative score error", yscale="log",
                    title=f"score error per t after {last} GD steps (largest m)")
        tw = sorted({r["m"] for r in trows})
        axes[1].set_xticks(tw, [str(w) for w in tw])
        axes[1].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axes[1].set(xlabel="width m", ylabel="mean over t of the relative error", title="against width")
        axes[0].legend(fontsize=5)
        names.append(save(fig, out, "two_layer_score_time.png"))
    return names


def _fmt(v, spec=".3g") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else "nan"
    return format(v, spec) if isinstance(v, float) else str(v)


def tables(rows: list[dict], req: dict, srows: list[dict], steps: int, trows: list[dict] | None = None) -> str:
    """Markdown tables of the sweep, the width requirement, the score sweep and the score-over-time sweep."""
    lines = ["| convention | activation | m | kappa | steps to 1e-3 | lambda_0 | max dH / lambda_0 | bound / lambda_0 "
             "| min lambda_min / lambda_0 | D max | certified | radius / drift | lr used / lr certified |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        st = r["steps_to_eps"] if r["steps_to_eps"] is not None else f"> {steps}"
        lines.append(f"| {r['convention']} | {r['activation']} | {r['m']} | {_fmt(r['kappa'])} | {st} "
                     f"| {_fmt(r['lam0'])} | {_fmt(r['rel_dH'])} | {_fmt(r['dH_bound_rel'])} "
                     f"| {_fmt(r['lam_min_ratio'])} | {_fmt(r['D_max'])} "
                     f"| {'yes' if r['certified'] else 'no'} | {_fmt(r['margin'])} | {_fmt(r['lr_over_certified'])} |")
    lines += ["", "| convention/activation | margin ~ m^alpha: alpha | margin at largest m | width for margin 1 "
              "(fit) | lam_bar | width for margin 1 (model) | B there |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {k} | {v['alpha']:.3f} | {v['margin_at_max_m']:.3g} | {_fmt(v['m_required'], '.3g')} | "
              f"{v['lam_bar']:.3g} | {_fmt(v['m_required_model'], '.3g')} | {v['B_at_required']:.3g} |"
              for k, v in req.items()]
    cps = sorted(srows[0]["errors"]) if srows else []
    lines += ["", "| convention | activation | m | " + " | ".join(f"error after {c} steps" for c in cps) + " |",
              "|---|---|---|" + "---|" * len(cps)]
    lines += [f"| {r['convention']} | {r['activation']} | {r['m']} | "
              + " | ".join(f"{r['errors'][c]:.3f}" for c in cps)
              + " |" for r in srows]
    if trows:
        ts, last = trows[0]["ts"], max(trows[0]["errors"])
        lines += ["", "| convention | activation | m | model | " + " | ".join(f"t = {t:g}" for t in ts)
                  + f" | mean (after {last} steps) |", "|---|---|---|---|" + "---|" * (len(ts) + 1)]
        lines += [f"| {r['convention']} | {r['activation']} | {r['m']} | {r['model']} | "
                  + " | ".join(f"{e:.3f}" for e in r["errors"][last]) + f" | {np.mean(r['errors'][last]):.3f} |"
                  for r in trows]
    return "\n".join(lines) + "\n"


def _load(out: Path) -> dict:
    """The numbers of an earlier run (``OUT/two_layer_repro.json``), with the JSON's string keys restored."""
    path = out / "two_layer_repro.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    for r in data.get("score", []) + data.get("score_time", []):
        r["errors"] = {int(k): v for k, v in r["errors"].items()}
    return data


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/figures"))
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256, 512, 1024, 2048, 4096])
    p.add_argument("--score-widths", type=int, nargs="+", default=[32, 128, 512])
    p.add_argument("--checkpoints", type=int, nargs="+", default=[100, 300, 1000])
    p.add_argument("--score-times", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0, 2.0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                   help="the experiments to run; the others are taken from OUT/two_layer_repro.json")
    p.add_argument("--tables-only", action="store_true",
                   help="re-render the tables and plots from OUT/two_layer_repro.json without re-running")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = _load(args.out)
    parts = [] if args.tables_only else args.parts
    if "sweep" in parts:
        rows = width_sweep(tuple(args.widths), n=args.n, steps=args.steps, seed=args.seed)
        data["sweep"] = [{k: v for k, v in r.items() if k != "trace"} for r in rows]
    if "score" in parts:
        data["score"] = score_sweep(tuple(args.score_widths), tuple(args.checkpoints), seed=args.seed)
    if "score-time" in parts:
        data["score_time"] = score_time_sweep(tuple(args.score_widths), tuple(args.checkpoints),
                                              tuple(args.score_times), seed=args.seed)
    missing = [k for k in ("sweep", "score") if k not in data]
    if missing:
        p.error(f"no earlier results for {missing} in {args.out / 'two_layer_repro.json'}: run those parts")
    for r in data["sweep"]:
        r.setdefault("rho0", float(np.linalg.norm(regression_task(r["n"], r.get("d", 8), args.seed)[1])))
    data["required_width"] = required_width(data["sweep"])
    text = tables(data["sweep"], data["required_width"], data["score"], args.steps, data.get("score_time"))
    (args.out / "two_layer_repro.md").write_text(text, encoding="utf-8")
    if parts:
        (args.out / "two_layer_repro.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    plots(args.out, data["sweep"], data["score"], data.get("score_time"))
    print(text)
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
