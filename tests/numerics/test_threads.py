"""The BLAS thread policy: the choice logic, and that the chosen count is what BLAS runs with."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from softsym.errors import ValidationError
from softsym.numerics import threads
from softsym.numerics.threads import PROBE_CAP, PROBE_FIRST, _Record


def _blas_threads() -> int:
    return max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")


def test_record_tries_each_setting_then_keeps_the_faster():
    rec = _Record(warm=True)
    assert rec.choose((1, 2)) == 1
    rec.record(1, 0.010)
    assert rec.choose((1, 2)) == 2
    rec.record(2, 0.004)
    picks = []
    for _ in range(200):
        s = rec.choose((1, 2))
        picks.append(s)
        rec.record(s, 0.004 if s == 2 else 0.010)
    # mostly the faster setting, the slower one only at the doubling probe points
    probes = [i for i, s in enumerate(picks) if s == 1]
    assert 3 <= len(probes) <= 6
    gaps = np.diff(probes)
    assert list(gaps) == sorted(gaps) and gaps[-1] <= PROBE_CAP + 1


def test_the_first_call_is_not_recorded():
    rec = _Record()
    rec.record(rec.choose((1, 2)), 5.0)     # e.g. compilation
    assert rec.seconds == {} and rec.choose((1, 2)) == 1


def test_record_switches_when_the_chosen_setting_collapses():
    rec = _Record(warm=True)
    for s, t in ((1, 0.010), (2, 0.004)):
        rec.choose((1, 2))
        rec.record(s, t)
    assert rec.choose((1, 2)) == 2
    rec.record(2, 1.0)            # the multi-threaded product collapses (a busy machine)
    assert rec.choose((1, 2)) == 1   # probed at once
    rec.record(1, 0.012)
    for _ in range(PROBE_FIRST - 1):
        assert rec.choose((1, 2)) == 1   # one thread is now faster than the smoothed 0.5 s
        rec.record(1, 0.012)


@pytest.mark.parametrize("bad", ["sometimes", 0, -2, 1.5, True])
def test_bad_policy_is_refused(bad):
    with pytest.raises(ValidationError, match="BLAS thread policy"):
        threads.set_policy(bad)


def test_fixed_policy_sets_the_blas_thread_count():
    A = np.ones((300, 300))
    try:
        threads.set_policy(1)
        with threads.blas_threads("test fixed"):
            assert _blas_threads() == 1
            A @ A
    finally:
        threads.set_policy("auto")


def test_auto_policy_records_and_restores(monkeypatch):
    monkeypatch.setattr(threads, "oversubscribed", lambda: False)
    before = _blas_threads()
    A = np.random.default_rng(0).standard_normal((200, 200))
    seen = set()
    for _ in range(5):
        with threads.blas_threads("test auto 200"):
            seen.add(_blas_threads())
            A @ A
    assert _blas_threads() == before
    if before > 1:
        assert seen == {1, before}
        assert set(threads.stats()["test auto 200"]["seconds"]) == {1, before}


def test_an_oversubscribed_machine_gets_one_thread(monkeypatch):
    monkeypatch.setattr(threads, "oversubscribed", lambda: True)
    for _ in range(3):
        with threads.blas_threads("test busy"):
            assert _blas_threads() == 1
