"""One thread at a time through an objective: the lock around its memo.

Objectives memoize derivatives at the last point (``_x`` and a cache dict).  Two threads that
evaluate one objective at different points would interleave "is x the memoized point?" with
"replace the memo" and read each other's values.  Every public evaluation method of an
objective therefore holds the instance's re-entrant lock for its whole duration
(:func:`serialized`): calls from several threads are correct and run one after another.
Threads that want parallel evaluation should each build their own objective (building one
does not copy conforming arrays).
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
