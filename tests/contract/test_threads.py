"""Objectives shared by threads: the values and the counts a single thread would get (issue 19, state)."""

from __future__ import annotations

import copy
import sys
import threading

import numpy as np
import pytest

from softsym.problems.attention import AttentionRegression, planted
from softsym.problems.normalized import synthetic
from softsym.problems.two_layer import TwoLayerNetwork, TwoLayerRegression, regression_task

from .conftest import drawn


class CountingKernels:
    """A kernel module proxy counting the calls of each kernel (with a lock of its own)."""

    def __init__(self, k):
        self._k, self._lock, self.calls = k, threading.Lock(), {}

    def __getattr__(self, name):
        fn = getattr(self._k, name)

        def counted(*args, **kwargs):
            with self._lock:
                self.calls[name] = self.calls.get(name, 0) + 1
            return fn(*args, **kwargs)

        return counted


@pytest.fixture
def switchy():
    """Switch threads every microsecond, so that unprotected read-modify-writes do race."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def hammer(work, threads: int = 2, rounds: int = 150) -> list[BaseException]:
    """Run ``work(thread_index, round)`` from ``threads`` threads started together; the exceptions raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def loop(t: int) -> None:
        start.wait()
        try:
            for r in range(rounds):
                work(t, r)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    pool = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return errors


def test_normalized_objective_shared_by_two_threads(switchy):
    drawn("state: threads")
    inst = synthetic("rescaled_exp", 200, 4, seed=0)
    ref, obj = inst.objective(), inst.objective()
    obj._k = kern = CountingKernels(obj._k)
    xs = [np.random.default_rng(i).standard_normal(4) * 0.3 for i in range(5)]
    want = [(ref.fun(x), ref.jac(x), ref.hess(x), ref.pieces(x).beta.copy()) for x in xs]

    def work(t: int, r: int) -> None:
        i = (r * (t + 2)) % len(xs)
        x = xs[i].copy()
        f, g = obj.fun_and_jac(x)
        assert f == want[i][0] and np.array_equal(g, want[i][1])
        assert np.array_equal(obj.hess(x), want[i][2])
        assert np.array_equal(obj.pieces(x).beta, want[i][3])
        assert obj.fun(x) == want[i][0]

    assert hammer(work) == []
    # every kernel call was counted exactly once (no lost increments)
    assert obj.nfev == kern.calls.get("loss_u", 0)
    assert obj.njev == kern.calls.get("grad_u", 0)
    assert obj.nhev == kern.calls.get("pieces_u", 0)
    assert obj.nfev + obj.njev + obj.nhev > 0


def test_two_layer_objective_shared_by_two_threads(switchy):
    drawn("state: threads")
    X, y = regression_task(n=6, d=3, seed=0)
    net = TwoLayerNetwork(3, 16, seed=0)
    ref, obj = TwoLayerRegression(net, X, y), TwoLayerRegression(net, X, y)
    ws = [np.random.default_rng(i).standard_normal(obj.d) for i in range(4)]
    want = [ref.fun_and_jac(w) for w in ws]

    def work(t: int, r: int) -> None:
        i = (r + t) % len(ws)
        f, g = obj.fun_and_jac(ws[i])
        assert f == want[i][0] and np.array_equal(g, want[i][1])

    assert hammer(work) == []
    assert obj.njev <= 2 * 150 and obj.njev >= 1


def test_attention_problem_shared_by_two_threads(switchy):
    drawn("state: threads")
    p = planted(12, 2, seed=0)
    ref = AttentionRegression(p.A1, p.A2, p.A3, p.B).objective()
    obj = AttentionRegression(p.A1, p.A2, p.A3, p.B).objective()
    zs = [np.random.default_rng(i).standard_normal(obj.d) * 0.5 for i in range(3)]
    want = [ref.fun_and_jac(z) for z in zs]

    def work(t: int, r: int) -> None:
        i = (r + t) % len(zs)
        f, g = obj.fun_and_jac(zs[i])
        assert f == want[i][0] and np.array_equal(g, want[i][1])

    assert hammer(work, rounds=60) == []


def test_a_copy_gets_its_own_lock():
    drawn("state: threads")
    obj = synthetic("softmax", 20, 3, seed=0).objective()
    x = np.full(3, 0.1)
    other = copy.copy(obj)
    assert other.lock is not obj.lock
    assert other.fun(x) == obj.fun(x)
