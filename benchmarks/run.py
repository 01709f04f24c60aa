"""Run every benchmark script (``benchmarks/bench_*.py``): ``make bench``.

Each script has a ``main(argv=None)`` that prints medians and ratios against a floor
(a bare GEMM/GEMV of the same size) and against peers measured in the same run.
Usage: ``python benchmarks/run.py [NAME ...]`` where NAME filters scripts by substring.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    here = Path(__file__).resolve().parent
    scripts = sorted(here.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(a in s.stem for a in argv)]
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        spec = importlib.util.spec_from_file_location(script.stem, script)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
