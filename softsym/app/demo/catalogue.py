"""Shared by the normalized-family sections: verify and solve each member of a paper."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...api import minimize
from ...problems.normalized import synthetic
from ...registry import catalogue, member
from ..plots import convergence_plot
from ..report import table
from ..verify import FD_TOL, fd_check


def verify_and_solve(name: str, n: int = 2000, d: int = 8, seed: int = 0) -> dict:
    """One catalogue row: proof status, finite-difference check and a Newton solve."""
    info = member(name)
    inst = synthetic(name, n, d, seed=seed)
    obj = inst.objective()
    x0 = np.random.default_rng(seed + 1).standard_normal(d) * 0.1
    fd_err = fd_check(obj, x0)
    minimize(obj, x0, method="newton", maxiter=1)          # load compiled kernels before timing
    res = minimize(obj, x0, method="newton", tol=1e-10)
    return {"member": name, "n": n, "d": d, "iterations": res.nit, "rel_grad_norm": res.rel_grad_norm,
            "time_s": res.history["time"][-1], "fd_error": fd_err, "proven": len(info.proof),
            "verified": bool(info.proof) and fd_err < FD_TOL, "success": res.success, "message": res.message,
            "history": res.history}


def formulas_table(name: str) -> str:
    """The derived equations of ``name`` (from its manifest entry) as a Markdown table."""
    info = member(name)
    rows = [(f"${lhs}$", f"${rhs}$") for lhs, rhs in info.formulas]
    return f"**Derived formulas (`{name}`)**\n\n" + table(rows, ("quantity", "derived expression"))


def catalogue_section(out_dir: Path, papers: tuple[str, ...], title_member: str, n: int = 2000,
                      d: int = 8) -> tuple[str, bool, list[dict]]:
    """Verify + Newton table for the normalized members of ``papers``, plus a convergence plot.

    Returns (Markdown, whether every member verified and converged, the per-member results).
    """

    names = [m.name for m in catalogue("normalized") if m.paper in papers]
    results = [verify_and_solve(name, n, d) for name in names]
    rows = [(r["member"], r["n"], r["d"], r["iterations"], f"{r['rel_grad_norm']:.1e}",
             f"{r['time_s'] * 1e3:.1f} ms", f"{r['proven']} claims, fd {r['fd_error']:.0e}",
             "yes" if r["verified"] else "NO", "ok" if r["success"] else r["message"]) for r in results]
    png = f"newton_paper{papers[0]}.png"
    convergence_plot({r["member"]: r["history"] for r in results}, out_dir / png,
                     title=f"Newton on planted instances (n={n}, d={d})")
    md = "\n\n".join([
        table(rows, ("member", "n", "d", "iterations", "final rel. grad", "time", "proof / fd check", "verified",
                     "solve")),
        formulas_table(title_member),
        f"![Newton convergence]({png})",
    ])
    return md, all(r["verified"] and r["success"] for r in results), results
