"""The objective protocol and the shared memo base: what every objective implements once."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import softsym
from softsym.errors import OverflowDetected, ValidationError
from softsym.problems.attention import AttentionRegression, JointObjective, planted
from softsym.problems.base import HessianObjective, MemoObjective, NormalizedFamilyObjective, Objective, is_finite
from softsym.problems.normalized import NormalizedObjective, synthetic
from softsym.problems.two_layer import TwoLayerNetwork, TwoLayerRegression, regression_task


def _objectives():
    norm = synthetic("softmax", 40, 3, seed=0).objective()
    inst = planted(8, 2, seed=0)
    joint = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B).objective()
    X, y = regression_task(n=5, d=3, seed=0)
    net = TwoLayerRegression(TwoLayerNetwork(3, 8, seed=0), X, y)
    return norm, joint, net


def test_every_objective_satisfies_the_protocol_and_uses_the_base():
    norm, joint, net = _objectives()
    for obj in (norm, joint, net):
        assert isinstance(obj, Objective) and isinstance(obj, MemoObjective)
    assert isinstance(norm, NormalizedFamilyObjective) and isinstance(norm, HessianObjective)
    assert not isinstance(joint, NormalizedFamilyObjective) and not isinstance(net, HessianObjective)
    assert isinstance(joint, JointObjective) and softsym.Objective is Objective
    assert not isinstance(object(), Objective)


def test_memo_counts_one_evaluation_per_point_and_hands_out_copies():
    for obj in _objectives():
        x = np.full(obj.d, 0.1)
        f, g = obj.fun_and_jac(x)
        counts = (obj.nfev, obj.njev, obj.nhev)
        assert obj.fun(x.copy()) == f and np.array_equal(obj.jac(x), g)
        assert (obj.nfev, obj.njev, obj.nhev) == counts  # memoized
        g[:] = 7.0  # the caller owns the array
        assert not np.array_equal(obj.jac(x), g)
        x[0] = 5.0  # changing the caller's x does not change the memo's key
        assert obj.fun(np.full(obj.d, 0.1)) == f and (obj.nfev, obj.njev) == counts[:2]


def test_x_is_validated_by_name():
    for obj in _objectives():
        with pytest.raises(ValidationError, match="x"):
            obj.fun(np.zeros(obj.d + 1))
        with pytest.raises(ValidationError, match="x"):
            obj.jac(np.full(obj.d, np.nan))


def test_pieces_are_read_only_views_not_the_memo():
    obj = synthetic("softmax", 40, 3, seed=0).objective()
    x = np.full(3, 0.1)
    pc = obj.pieces(x)
    for name in ("u", "g", "beta", "p", "q"):
        arr = getattr(pc, name)
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[0] = 1.0
    H = obj.hess(x)
    np.testing.assert_array_equal(obj.hess(x), H)
    u = obj.u(x)
    u[:] = 0.0  # a copy
    assert not np.array_equal(obj.u(x), u)


def test_output_check_raises_overflow_detected():
    A = np.ones((3, 1)) * 100.0
    obj = NormalizedObjective("exp", A, np.ones(3))
    with pytest.raises(OverflowDetected, match="max \\|Ax\\|"):
        obj.fun(np.array([8.0]))
    assert is_finite(np.ones((2, 2))) and not is_finite(np.array([[1.0, np.inf]])) and not is_finite(np.nan)
    assert is_finite(np.arange(3))


def test_concurrent_callers_never_mix_points():
    """The memo is one (x, values) pair: two threads alternating between two points always get
    each point's own values."""
    inst = synthetic("softmax", 2000, 8, seed=3)
    obj = inst.objective()
    xs = [np.full(8, 0.05), np.full(8, -0.05)]
    ref = [NormalizedObjective("softmax", inst.A, inst.b).fun_and_jac(x) for x in xs]
    bad = []

    def work(k):
        for i in range(200):
            j = (i + k) % 2
            f, g = obj.fun_and_jac(xs[j])
            if f != ref[j][0] or not np.array_equal(g, ref[j][1]):
                bad.append((k, i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []
