"""``softsym demo``: one section per paper — build the embedded deterministic instance,
verify, solve with the paper's algorithm, print a table, and write PNG plots plus a Markdown
report (formulas, bounds, convergence) into ``./softsym-report/``.

Sections are functions ``section(out_dir) -> markdown``, one module per paper, listed in
:data:`SECTIONS`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from ..progress import progress
from . import attention, dask, rescaled_regression, softmax_regression, two_layer, zeroth_order

# (paper, title, section(out_dir) -> markdown or (markdown, passed)), in paper order
SECTIONS: list[tuple[str, str, Callable]] = [
    ("000", "Softmax regression (and the classical members)", softmax_regression.newton_section),
    ("000", "Approximate Newton with a leverage-score sparsified Hessian", softmax_regression.approx_newton_section),
    ("000", "Data beyond one machine: the same Newton on Dask row chunks", dask.section),
    ("001", "Rescaled exp / cosh / sinh regression", rescaled_regression.newton_section),
    ("001", "Derived bounds and their certified tightness", rescaled_regression.bounds_section),
    ("001", "The theorems on certified instances", rescaled_regression.certified_section),
    ("002", "Zeroth-order softmax optimization", zeroth_order.section),
    ("003", "Single-layer attention regression", attention.section),
    ("004", "Two-layer softmax networks: NTK, GD training, diffusion scores", two_layer.section),
]


def run_demo(out_dir: str | Path = "softsym-report") -> int:
    """Run every section, print it, write ``out_dir/report.md`` and the plots; exit code 1 on failure."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = ["# softsym demo report", "",
             "Every number below was computed by `softsym demo` on deterministic embedded instances."]
    ok = True
    t_all = time.perf_counter()
    for paper, title, section in progress(SECTIONS, "demo", describe=lambda s: f"paper {s[0]}"):
        t0 = time.perf_counter()
        result = section(out_dir)
        md, passed = result if isinstance(result, tuple) else (result, True)
        ok &= passed
        heading = f"## Paper {paper}: {title}"
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
