"""Why a run stopped: the ``Status`` codes and the exception a step raises to stop with one."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """Why a run stopped; ``res.status`` holds the int (0 and 1 as in scipy)."""

    CONVERGED = 0
    MAXITER = 1
    LINE_SEARCH = 2
    OVERFLOW = 3
    INDEFINITE = 4
    #: the gradient test passed at a point that is not a minimum (negative curvature)
    SADDLE = 5
    CALLBACK = 99


class SolverFailure(Exception):
    """Raised by a step that cannot continue; becomes ``success=False`` with this status."""

    def __init__(self, status: Status, message: str):
        super().__init__(message)
        self.status = Status(status)


class RoundingStall(SolverFailure):
    """Raised by a Newton-type step that cannot move the iterate beyond rounding: the run stops
    converged (status 0) at rounding level, with a message saying so (see
    :func:`softsym.solvers.line_search.newton_stall`)."""

    def __init__(self, message: str):
        super().__init__(Status.CONVERGED, message)
