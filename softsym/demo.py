"""``softsym demo``: one section per seed paper — build the embedded deterministic instance,
verify, solve with the paper's algorithm, print a table, and write PNG plots plus a Markdown
report (formulas, bounds, convergence) into ``./softsym-report/``.

Sections are functions ``section(out_dir) -> markdown``; the seed capabilities provide
theirs as ``demo_section`` in their own modules, listed in :data:`SECTIONS`.
"""

from __future__ import annotations

import importlib
import re
import time
from importlib import resources
from pathlib import Path

import numpy as np

from . import datasets
from ._progress import progress
from ._report import table
from .objective import catalogue, member
from .solvers import minimize

FD_STEP = 1e-5
FD_TOL = 1e-6


def fd_check(obj, x: np.ndarray, h: float = FD_STEP) -> float:
    """Largest scaled error of the gradient and Hessian against central differences at ``x``."""
    eye = np.eye(x.size)
    g_fd = np.array([(obj.fun(x + h * e) - obj.fun(x - h * e)) / (2 * h) for e in eye])
    H_fd = np.array([(obj.jac(x + h * e) - obj.jac(x - h * e)) / (2 * h) for e in eye])
    g, H = obj.jac(x), obj.hess(x)
    scale = 1.0 + abs(obj.fun(x)) + np.abs(g).max() + np.abs(H).max()
    return float(max(np.abs(g - g_fd).max(), np.abs(H - H_fd).max()) / scale)


def verify_and_solve(name: str, n: int = 2000, d: int = 8, seed: int = 0) -> dict:
    """One catalogue row: proof status, finite-difference check and a Newton solve."""
    info = member(name)
    inst = datasets.synthetic(name, n, d, seed=seed)
    obj = inst.objective()
    x0 = np.random.default_rng(seed + 1).standard_normal(d) * 0.1
    fd_err = fd_check(obj, x0)
    minimize(obj, x0, method="newton", maxiter=1)          # load compiled kernels before timing
    res = minimize(obj, x0, method="newton", tol=1e-10)
    return {"member": name, "n": n, "d": d, "iterations": res.nit, "rel_grad_norm": res.rel_grad_norm,
            "time_s": res.history["time"][-1], "fd_error": fd_err, "proven": len(info.proof),
            "verified": bool(info.proof) and fd_err < FD_TOL, "success": res.success, "message": res.message,
            "history": res.history}


def _structured_formulas(name: str) -> str:
    page = resources.files("softsym.kernels").joinpath(f"{name}.md").read_text("utf-8")
    block = page[page.index("## Structured gradient and Hessian"):page.index("## Proven exactly")]
    return block.replace("## Structured gradient and Hessian", f"**Derived formulas (`{name}`)**").strip()


def catalogue_section(out_dir: Path, seed_filter: tuple[str, ...], title_member: str, n: int = 2000,
                      d: int = 8) -> tuple[str, bool]:
    """Verify + Newton table for the normalized members of ``seed_filter``, plus a convergence plot."""
    from .plots import convergence_plot

    names = [m.name for m in catalogue("normalized") if m.seed in seed_filter]
    results = [verify_and_solve(name, n, d) for name in names]
    rows = [(r["member"], r["n"], r["d"], r["iterations"], f"{r['rel_grad_norm']:.1e}",
             f"{r['time_s'] * 1e3:.1f} ms", f"{r['proven']} claims, fd {r['fd_error']:.0e}",
             "yes" if r["verified"] else "NO", "ok" if r["success"] else r["message"]) for r in results]
    png = f"newton_seed{seed_filter[0]}.png"
    convergence_plot({r["member"]: r["history"] for r in results}, out_dir / png,
                     title=f"Newton on planted instances (n={n}, d={d})")
    md = "\n\n".join([
        table(rows, ("member", "n", "d", "iterations", "final rel. grad", "time", "proof / fd check", "verified",
                     "solve")),
        _structured_formulas(title_member),
        f"![Newton convergence]({png})",
    ])
    return md, all(r["verified"] and r["success"] for r in results)


def _section_000(out_dir: Path) -> tuple[str, bool]:
    return catalogue_section(out_dir, ("000", "-"), "softmax")


def _section_001(out_dir: Path) -> tuple[str, bool]:
    return catalogue_section(out_dir, ("001",), "rescaled_cosh")


# (seed, title, built-in section or "module:function" of a capability's demo_section)
SECTIONS: list[tuple[str, str, object]] = [
    ("000", "Softmax regression (and the classical members)", _section_000),
    ("000", "Approximate Newton with a leverage-score sparsified Hessian", "softsym.solvers.approx_newton:demo_section"),
    ("001", "Rescaled exp / cosh / sinh regression", _section_001),
    ("001", "Derived bounds and their certified tightness", "softsym.guarantees:demo_section"),
    ("002", "Zeroth-order softmax optimization", "softsym.zo:demo_section"),
    ("003", "Single-layer attention regression", "softsym.attention:demo_section"),
    ("004", "Two-layer softmax networks: NTK, GD training, diffusion scores", "softsym.ntk:demo_section"),
    ("000", "Data beyond one machine: the same Newton on Dask row chunks", "softsym.dask:demo_section"),
]


def _resolve(section):
    if callable(section):
        return section
    module, func = section.split(":")
    return getattr(importlib.import_module(module), func)


def run_demo(out_dir: str | Path = "softsym-report") -> int:
    """Run every section, print it, write ``out_dir/report.md`` and the plots; exit code 1 on failure."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = ["# softsym demo report", "",
             "Every number below was computed by `softsym demo` on deterministic embedded instances."]
    ok = True
    t_all = time.perf_counter()
    for seed, title, section in progress(SECTIONS, "demo", describe=lambda s: f"seed {s[0]}"):
        t0 = time.perf_counter()
        result = _resolve(section)(out_dir)
        md, passed = result if isinstance(result, tuple) else (result, True)
        ok &= passed
        heading = f"## Seed {seed}: {title}"
        parts += ["", heading, "", md.strip(), "", f"_section time {time.perf_counter() - t0:.1f} s_"]
        print(f"\n{heading}\n\n{_terminal(md)}\n", flush=True)
    report = out_dir / "report.md"
    report.write_text("\n".join(parts) + "\n", encoding="utf-8")
    print(f"report: {report}  (plots in {out_dir}/, {time.perf_counter() - t_all:.1f} s)")
    return 0 if ok else 1


def _terminal(md: str) -> str:
    """Markdown section as shown in the terminal: tables and text, without images and display math."""
    keep = [line for line in md.splitlines() if not line.startswith("![") and not line.startswith("$$")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(keep)).strip()
