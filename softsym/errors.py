"""Exceptions softsym raises.  All input problems are ``ValueError`` subclasses."""

from __future__ import annotations


class ValidationError(ValueError):
    """An argument has the wrong shape, dtype, range, or holds non-finite values."""


class UnknownObjectiveError(ValidationError):
    """No catalogue member has the requested name."""


class OverflowDetected(ValueError, ArithmeticError):
    """A kernel produced inf/NaN (typically exp overflow for large |Ax|).

    Raised instead of returning a non-finite value; solvers turn it into
    ``success=False`` with ``status=3``.
    """
