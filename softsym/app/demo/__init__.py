"""``softsym demo``: one section per paper, in paper order, then the Dask backend.

Each paper section states the paper's claim in our words, builds deterministic embedded
instances, verifies and solves them with the paper's algorithm, prints tables, writes PNG plots,
and ends with a verdict — reproduced, partly reproduced, or not reproduced here — with the
numbers behind it.  Every timing is taken after the kernels and solvers it times have run once
(compilation and first-call costs are kept out).  The Markdown report goes to
``./softsym-report/report.md``.

A section is a function ``section(out_dir) -> SectionResult``; :data:`SECTIONS` lists them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..progress import progress
from ..report import SectionResult
from . import attention, dask, rescaled_regression, softmax_regression, two_layer, zeroth_order


@dataclass(frozen=True)
class DemoSection:
    """One section of the report: a paper (``paper`` set, with its claim) or a backend."""

    heading: str
    claim: str | None
    run: Callable[[Path], SectionResult]
    paper: str | None = None


def _paper(module) -> DemoSection:
    return DemoSection(heading=f"Paper {module.PAPER}: {module.TITLE}", claim=module.CLAIM, run=module.section,
                       paper=module.PAPER)


#: the report's sections, in order: papers 000..004, then the backend
SECTIONS: tuple[DemoSection, ...] = (
    _paper(softmax_regression),
    _paper(rescaled_regression),
    _paper(zeroth_order),
    _paper(attention),
    _paper(two_layer),
    DemoSection(heading=f"Backend: {dask.TITLE}", claim=None, run=dask.section),
)


def render(section: DemoSection, result: SectionResult) -> str:
    """The Markdown of one section: heading, claim (papers), body, verdict (papers)."""
    parts = [f"## {section.heading}", ""]
    if section.claim:
        parts += [f"**Claim.** {section.claim}", ""]
    parts += [result.markdown.strip(), ""]
    if result.verdict is not None:
        parts += [result.verdict.line(), ""]
    return "\n".join(parts)


def run_demo(out_dir: str | Path = "softsym-report", sections: tuple[DemoSection, ...] = SECTIONS) -> int:
    """Run every section, print it, write ``out_dir/report.md`` and the plots; exit code 1 on failure.

    A paper section that returns no verdict is a programming error (``ValueError``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = ["# softsym demo report", "",
             "Every number below was computed by `softsym demo` on deterministic embedded instances; "
             "timings exclude compilation (each kernel and solver runs once before it is timed)."]
    ok = True
    t_all = time.perf_counter()
    for section in progress(sections, "demo", describe=lambda s: s.heading):
        result = section.run(out_dir)
        if section.paper is not None and result.verdict is None:
            raise ValueError(f"section {section.heading!r} returned no verdict")
        ok &= result.passed
        md = render(section, result)
        parts += ["", md.strip()]
        print(f"\n{_terminal(md)}\n", flush=True)
    report = out_dir / "report.md"
    report.write_text("\n".join(parts) + "\n", encoding="utf-8")
    print(f"report: {report}  (plots in {out_dir}/; demo wall time including compilation "
          f"{time.perf_counter() - t_all:.1f} s)")
    return 0 if ok else 1


def _terminal(md: str) -> str:
    """A section as shown in the terminal: without image links and display math, no runs of blank lines."""
    out: list[str] = []
    for line in md.splitlines():
        if line.startswith("![") or line.startswith("$$"):
            continue
        if not line.strip() and (not out or not out[-1].strip()):
            continue
        out.append(line)
    return "\n".join(out).strip()
