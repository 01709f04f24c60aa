"""Shared timing helpers for the benchmark scripts: medians of repeated runs, ratio tables."""

from __future__ import annotations

import time
from collections.abc import Callable

from softsym.app.report import table  # noqa: F401  (re-exported for the scripts)


def median_time(fn: Callable[[], object], repeat: int = 7, warmup: int = 1, min_time: float = 0.0) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs after ``warmup`` untimed calls.

    With ``min_time`` each sample loops ``fn`` until that long has passed (for fast calls).
    """
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        k, t0 = 0, time.perf_counter()
        while True:
            fn()
            k += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        samples.append(dt / k)
    samples.sort()
    return samples[len(samples) // 2]
