"""Boundary validation: every public entry point turns user data into float64 C arrays here."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import ValidationError
from .numerics.rows import all_finite


def as_array(name: str, value: Any, ndim: int, shape: tuple[int | None, ...] | None = None,
             allow_empty: bool = False) -> np.ndarray:
    """``value`` as a finite float64 C-contiguous array of ``ndim`` dimensions.

    Integer and float inputs are accepted (converted to float64); bool, complex, object and
    string data are rejected, as are wrong shapes, empty arrays and NaN/inf entries.
    ``shape`` may contain ``None`` for free dimensions.  Already-conforming arrays are not
    copied.
    """
    if value is None:
        raise ValidationError(f"{name} is required, got None")
    arr = np.asarray(value)
    kind = arr.dtype.kind
    if kind not in "iuf":
        what = {"b": "bool", "c": "complex", "O": "object", "U": "string", "S": "bytes"}.get(kind, str(arr.dtype))
        raise ValidationError(f"{name} must hold real numbers (float or int), got dtype {arr.dtype} ({what})")
    if arr.ndim != ndim:
        raise ValidationError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if shape is not None:
        for axis, (got, want) in enumerate(zip(arr.shape, shape)):
            if want is not None and got != want:
                raise ValidationError(f"{name} must have shape {_fmt(shape)}, got {arr.shape} (axis {axis})")
    if arr.size == 0 and not allow_empty:
        raise ValidationError(f"{name} is empty (shape {arr.shape})")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not all_finite(arr.ravel()):  # one pass, no boolean temporary (128 MB at 2e6 x 64)
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValidationError(f"{name} has {bad} non-finite entries (NaN or inf)")
    return arr


def _fmt(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("any" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A finite positive float (or non-negative with ``allow_zero``); strings are refused, not parsed."""
    if isinstance(value, (str, bytes, bool)):
        raise ValidationError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValidationError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}")
    return v


def count(name: str, value: Any, minimum: int = 0) -> int:
    """An integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValidationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


#: seeds are integers in [0, SEED_LIMIT): what numpy's SeedSequence and PCG64 streams take without wrapping
SEED_LIMIT = 2**63


def seed(name: str, value: Any, *, allow_none: bool = False, allow_generator: bool = True):
    """A random seed: an integer in ``[0, 2**63)``, a ``numpy.random.Generator`` (with
    ``allow_generator``) or None (with ``allow_none``); ``ValidationError`` naming ``name`` otherwise.

    Returns the int (as a Python ``int``), the Generator or None unchanged.  The one seed check
    of every public entry point, so negative, fractional, boolean and string seeds never reach
    numpy's own (bare) errors.
    """
    if value is None and allow_none:
        return None
    if allow_generator and isinstance(value, np.random.Generator):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < SEED_LIMIT:
        kinds = ["an integer in [0, 2**63)"] + (["a numpy.random.Generator"] if allow_generator else []) + (
            ["None"] if allow_none else [])
        kinds = ", ".join(kinds[:-1]) + " or " + kinds[-1] if len(kinds) > 1 else kinds[0]
        raise ValidationError(f"{name} must be {kinds}, got {value!r}")
    return int(value)


def flag(name: str, value: Any) -> bool:
    """A boolean option: ``True``/``False`` (or numpy bools) only; strings such as "false" are rejected."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValidationError(f"{name} must be True or False, got {value!r}")


def callback(name: str, value: Any):
    """None or a callable; ``ValidationError`` before any work otherwise."""
    if value is not None and not callable(value):
        raise ValidationError(f"{name} must be callable or None, got {type(value).__name__} {value!r}")
    return value


def optional_count(name: str, value: Any, minimum: int = 0) -> int | None:
    """None or an integer >= ``minimum``."""
    return None if value is None else count(name, value, minimum)


#: a single request may use at most this fraction of the machine's physical memory
MEMORY_FRACTION = 0.5


def memory_limit() -> int:
    """``MEMORY_FRACTION`` of physical memory in bytes (of 16 GiB when it cannot be read)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 * 2**30
    return int(MEMORY_FRACTION * total)


def fits(names: str, nbytes: int, what: str) -> None:
    """``ValidationError`` naming ``names`` when ``what`` would need more than :func:`memory_limit`
    bytes (``nbytes``, an estimate of its float64 arrays): refused before allocating, never a
    ``MemoryError`` after minutes of swapping."""
    limit = memory_limit()
    if nbytes > limit:
        raise ValidationError(f"{names}: {what} needs about {nbytes / 2**30:.3g} GiB; the limit is "
                              f"{limit / 2**30:.3g} GiB ({MEMORY_FRACTION:.0%} of this machine's memory)")
