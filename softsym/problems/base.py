"""The objective protocol every solver drives, and the one base class that implements its bookkeeping.

What a solver may call on an objective (:class:`Objective`, checked at run time by
``isinstance``):

* ``family`` (str) and ``d`` (number of variables);
* ``fun(x)``, ``jac(x)``, ``fun_and_jac(x)``: the loss, its gradient (a new array the caller
  owns) and both at once, ``x`` a float64 vector of length ``d``;
* counters ``nfev, njev, nhev``: kernel evaluations of the loss, the gradient and the Hessian
  (or its structured pieces); the driver reports their increase over a run.

Optional, looked up with ``getattr`` by the solvers that need them:

* ``hess(x)`` (a new (d, d) array) and ``hessp(x, p)`` (:class:`HessianObjective`);
* ``grad_unit`` (float): the gradient's rounding scale per unit of loss, in units of ``x``
  (``max_i ||A_i||`` for the normalized family); the driver's absolute gradient
  floor scales with it (default 1);
* normalized family (:class:`NormalizedFamilyObjective`): ``name``, ``n``, ``u(x)`` (``A x``),
  ``pieces(x)`` (structured derivatives in u-space; read-only arrays) and ``row_access()`` or
  ``A`` (row access for sketching solvers, :func:`softsym.numerics.sketch.row_access`).

:class:`MemoObjective` is the shared implementation: memoization of everything computed at
the last ``x`` (as scipy's ``ScalarFunction`` does), the counters, validation of ``x`` and the
one output check that turns a non-finite value into :class:`~softsym.errors.OverflowDetected`.
Thread safety: every instance owns a re-entrant lock (``self.lock``, created in ``__new__`` so
no subclass can forget it) and every public evaluation method of the subclasses holds it for
its whole duration (:func:`softsym.numerics.serial.serialized`): memo fill, output check and
counters happen one call at a time, so threads sharing one objective get the values and the
counts a single thread would.  The memo is moreover one ``(x, values)`` pair replaced in a
single assignment.  Threads that want parallel evaluation should each build their own
objective (conforming arrays are not copied).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from .._validate import as_array
from ..errors import OverflowDetected
from ..numerics import rows
from ..numerics.serial import new_lock, serialized


@runtime_checkable
class Objective(Protocol):
    """What every solver may call (see the module docstring)."""

    family: str
    d: int
    nfev: int
    njev: int
    nhev: int

    def fun(self, x) -> float: ...

    def jac(self, x) -> np.ndarray: ...

    def fun_and_jac(self, x) -> tuple[float, np.ndarray]: ...


@runtime_checkable
class HessianObjective(Objective, Protocol):
    """An objective with second derivatives (Newton-type solvers)."""

    def hess(self, x) -> np.ndarray: ...

    def hessp(self, x, p) -> np.ndarray: ...


@runtime_checkable
class NormalizedFamilyObjective(HessianObjective, Protocol):
    """A normalized-family objective ``L(x) = sum_i ell(alpha^-1 phi(u_i), b_i) + reg``, ``u = A x``."""

    name: str
    n: int

    def u(self, x) -> np.ndarray: ...

    def pieces(self, x) -> Any: ...


def is_finite(value) -> bool:
    """Whether a float or an array (any shape) holds only finite numbers; one pass, no temporary."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            value = value.astype(np.float64)
        return bool(rows.all_finite(np.ascontiguousarray(value).ravel()))
    return math.isfinite(float(value))


def read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a`` (the memo's arrays are handed out this way, never themselves)."""
    v = a.view()
    v.flags.writeable = False
    return v


class MemoObjective:
    """Base class: memo at the last ``x``, counters, ``x`` validation and the output check.

    Subclasses set ``family`` and ``d``, may override :meth:`_new_point` (values every
    evaluation at a new ``x`` starts from, e.g. ``u = A x``) and :meth:`_overflow_hint`, and
    keep their results in the dict returned by :meth:`_at`.
    """

    family: ClassVar[str]
    d: int
    #: counters (instance attributes once incremented; subclasses may define properties instead)
    nfev = 0
    njev = 0
    nhev = 0
    #: see the module docstring
    grad_unit = 1.0

    _memo: tuple[np.ndarray, dict[str, Any]] | None = None
    lock: Any

    def __new__(cls, *args: Any, **kwargs: Any):
        self = super().__new__(cls)
        self.lock = new_lock()
        return self

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = new_lock()

    @serialized
    def add_evaluations(self, counter: str, k: int) -> None:
        """Add ``k`` to the counter ``counter`` (``"nfev"``, ``"njev"`` or ``"nhev"``) under the lock,
        for work done on the objective's data outside its methods (the zeroth-order estimator)."""
        if counter not in ("nfev", "njev", "nhev"):
            raise ValueError(f"unknown counter {counter!r}")
        setattr(self, counter, getattr(self, counter) + int(k))

    def _new_point(self, x: np.ndarray) -> dict[str, Any]:
        """The values a new point starts with (``x`` is the memo's own copy: do not modify it)."""
        return {}

    def _at(self, x) -> dict[str, Any]:
        """The memo dict of ``x`` (validated: a float64 vector of length ``d``, all finite)."""
        memo = self._memo
        if memo is not None and memo[0] is x:
            return memo[1]
        x = as_array("x", x, 1, (self.d,))
        if memo is None or not np.array_equal(x, memo[0]):
            x = x.copy()
            memo = (read_only(x), self._new_point(x))
            self._memo = memo  # one assignment: a point and its values travel together
        return memo[1]

    def _overflow_hint(self, what: str) -> str:
        """Message of the ``OverflowDetected`` raised for a non-finite ``what``."""
        return f"{type(self).__name__}: non-finite {what} at this x"

    def _check(self, what: str, *values) -> None:
        """Raise ``OverflowDetected`` unless every value (float or array) is finite."""
        for v in values:
            if not is_finite(v):
                raise OverflowDetected(self._overflow_hint(what))

    @serialized
    def fun_and_jac(self, x) -> tuple[float, np.ndarray]:
        """(L(x), grad L(x)); subclasses whose gradient pass yields the loss need not override."""
        g = self.jac(x)
        return self.fun(x), g

    def __call__(self, x) -> float:
        return self.fun(x)

    def fun(self, x) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def jac(self, x) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError
