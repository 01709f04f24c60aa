"""Run every benchmark script (``benchmarks/bench_*.py``): ``make bench``.

Each script has a ``main(argv=None)`` that prints medians and ratios against a floor (a bare
GEMM/GEMV of the same size) and against peers measured in the same run.  The output of the whole
run, headed by the date, the machine and the thread settings, replaces the section between the
markers ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` of ``docs/benchmarks.md`` (``--no-docs``:
print only).

Usage: ``python benchmarks/run.py [--no-docs] [NAME ...]`` where NAME filters scripts by substring.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import io
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


class _Tee(io.TextIOBase):
    """Write to the terminal and keep a copy."""

    def __init__(self, stream):
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.stream.flush()
        return self.copy.write(text)


def machine() -> str:
    """One line: date, CPU model, cores, Python/NumPy versions and the thread settings in force."""
    import numpy as np

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env = ", ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                     "SOFTSYM_BLAS_THREADS") if k in os.environ) or "none set"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {cpu}, {cores} cores; "
            f"Python {platform.python_version()}, NumPy {np.__version__}; thread variables: {env}; "
            f"load average at start: {load}")


def write_docs(text: str, path: Path = DOCS) -> None:
    """Replace the marked section of ``path`` with ``text`` (in a fenced block)."""
    page = path.read_text("utf-8")
    if BEGIN not in page or END not in page:
        raise SystemExit(f"{path} lacks the markers {BEGIN} ... {END}")
    head, rest = page.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(f"{head}{BEGIN}\n```text\n{text.rstrip()}\n```\n{END}{tail}", "utf-8")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    docs = "--no-docs" not in argv
    names = [a for a in argv if a != "--no-docs"]
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if any(a in s.stem for a in names)]
    sys.path.insert(0, str(HERE))
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        print(machine())
        for script in scripts:
            print(f"\n=== {script.stem} ===", flush=True)
            spec = importlib.util.spec_from_file_location(script.stem, script)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            mod.main([])
    if docs:
        write_docs(tee.copy.getvalue())
        print(f"tables written to {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
