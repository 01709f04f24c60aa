"""BLAS threads per product, chosen by measurement.

OpenBLAS's worker threads spin while they wait for each other.  When the machine's cores are
oversubscribed (another process computing, a second solve, a test suite), a multi-threaded
product can take tens of times longer than the same product on one thread (docs/benchmarks.md
has the measurements); a single-threaded product degrades gently instead, about in proportion
to the load.

So the runtime does not trust either setting.  For each kind of product and size (``key``),
:func:`blas_threads` times the calls made with one BLAS thread and with the library default,
keeps a smoothed time per setting, and runs each call with the faster one.  The other setting is
probed again after 8, 16, 32, ... 256 calls (the first call of a key, which may include
compilation, is not recorded) (so a load that comes or goes is noticed), and at once
when the current setting becomes more than twice as slow as its record.  While the one-minute
load average exceeds the number of CPUs this process may use, the machine is oversubscribed and
every call runs on one thread (a probe of the collapsed setting there can cost a second).  Where
the default is one thread there is nothing to choose and the context does nothing.

Users override the policy with the environment variable ``SOFTSYM_BLAS_THREADS`` (read at
import) or :func:`set_policy`: ``"auto"`` (the default, as above), ``"default"`` (never touch the
BLAS thread count: the library's own setting, e.g. ``OPENBLAS_NUM_THREADS``), or a positive
integer (always that many threads for softsym's products).  :func:`stats` reports the choices.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..errors import ValidationError

#: probe the other setting again after this many calls, doubling up to the cap
PROBE_FIRST, PROBE_CAP = 8, 256
#: a setting whose latest call took this many times its smoothed record is re-probed at once
SLOWDOWN = 2.0
#: weight of the newest sample in the smoothed time
SMOOTHING = 0.5


@dataclass
class _Record:
    """Smoothed seconds per call for one thread setting of one key."""

    seconds: dict[int, float] = field(default_factory=dict)
    calls: int = 0
    interval: int = PROBE_FIRST
    next_probe: int = PROBE_FIRST
    avoid: int | None = None    # a setting that just slowed down: try another one next
    warm: bool = False          # the first call (which may include compilation) is not recorded

    def choose(self, settings: tuple[int, ...]) -> int:
        missing = [s for s in settings if s not in self.seconds]
        if missing:
            return missing[0]
        if self.avoid is not None:
            slow, self.avoid = self.avoid, None
            self.interval = PROBE_FIRST
            self.next_probe = self.calls + self.interval
            return next(s for s in settings if s != slow)
        best = min(settings, key=lambda s: self.seconds[s])
        if self.calls >= self.next_probe:
            self.interval = min(2 * self.interval, PROBE_CAP)
            self.next_probe = self.calls + self.interval
            return next(s for s in settings if s != best)
        return best

    def record(self, setting: int, seconds: float) -> None:
        if not self.warm:
            self.warm = True
            return
        self.calls += 1
        old = self.seconds.get(setting)
        if old is not None and seconds > SLOWDOWN * old:
            self.avoid = setting
        self.seconds[setting] = seconds if old is None else SMOOTHING * seconds + (1 - SMOOTHING) * old


class _Policy:
    def __init__(self, value: str | int):
        self.lock = threading.Lock()
        self.records: dict[str, _Record] = {}
        self.controller = None
        self.default_threads = 1
        self.set(value)

    def set(self, value: str | int) -> None:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not (value in ("auto", "default") or (isinstance(value, int) and value >= 1)):
            raise ValidationError(f"BLAS thread policy must be 'auto', 'default' or a positive integer, got {value!r}")
        with self.lock:
            self.value = value
            self.records.clear()

    def _blas(self):
        if self.controller is None:
            from threadpoolctl import ThreadpoolController

            self.controller = ThreadpoolController().select(user_api="blas")
            self.default_threads = max((lib["num_threads"] for lib in self.controller.info()), default=1)
        return self.controller


_POLICY = _Policy(os.environ.get("SOFTSYM_BLAS_THREADS", "auto"))


def set_policy(value: str | int) -> None:
    """``"auto"`` (choose per product by measurement), ``"default"`` (leave BLAS alone) or a thread count."""
    _POLICY.set(value)


def stats() -> dict[str, dict]:
    """Per key: smoothed seconds per call for each thread setting tried, and the number of calls."""
    with _POLICY.lock:
        return {k: {"seconds": dict(r.seconds), "calls": r.calls} for k, r in _POLICY.records.items()}


def oversubscribed() -> bool:
    """Whether the one-minute load average exceeds the CPUs this process may run on."""
    try:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return os.getloadavg()[0] > cpus
    except OSError:  # no load average on this platform
        return False


@contextmanager
def blas_threads(key: str) -> Iterator[None]:
    """Run the BLAS products inside the block with the thread count the policy picks for ``key``.

    ``key`` names a product kind and size (e.g. ``"gram 50000x64"``): calls under one key should
    cost about the same, since their times are compared.
    """
    policy = _POLICY
    if policy.value == "default":
        yield
        return
    blas = policy._blas()
    if isinstance(policy.value, int):
        with blas.limit(limits=policy.value):
            yield
        return
    if policy.default_threads <= 1:
        yield
        return
    settings = (1, policy.default_threads)
    with policy.lock:
        rec = policy.records.setdefault(key, _Record())
        setting = 1 if oversubscribed() else rec.choose(settings)
    with blas.limit(limits=setting):
        t0 = time.perf_counter()
        yield
        dt = time.perf_counter() - t0
    with policy.lock:
        rec.record(setting, dt)
