"""One thread at a time through a stateful problem: the lock around its shared state.

The attention problem reuses row-block workspaces and memoizes its Hessian state at the last
``(X, Y)``; two threads evaluating one instance would overwrite each other's workspaces and
read a state filed under another point.  Every public evaluation method of such a problem
holds the instance's re-entrant lock for its whole duration (:func:`serialized`): calls from
several threads are correct and run one after another.  Memo objectives on
:class:`softsym.problems.base.MemoObjective` do the same with a lock each instance gets in
``__new__``.  Threads that want parallel evaluation should each build their own problem.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def new_lock() -> threading.RLock:
    """The lock an objective creates in ``__init__`` as ``self.lock`` (re-entrant: methods call each other)."""
    return threading.RLock()


def serialized(method: F) -> F:
    """Decorator for an objective method: run it holding ``self.lock`` (see the module docstring)."""

    @functools.wraps(method)
    def locked(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]
