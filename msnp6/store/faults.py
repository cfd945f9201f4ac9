"""Expected database faults (the database down, unreachable or too slow) told apart from bugs.

An outage makes every command fail the same way; a traceback for each says nothing new and
buries the log (5 KB a command). Those get one line with the reason; tracebacks stay for bugs.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from twisted.logger import Logger
from twisted.python.failure import Failure

from .store import StoreTimeout

_OUTAGES = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, ConnectionError, TimeoutError)

#: How much of the driver's message one line keeps.
_MAX_REASON = 200


def outage_reason(error: BaseException) -> str | None:
    """One line on why the database failed, or None when ``error`` is not a database outage.

    SQLAlchemy's own text appends the statement and its parameters (handles, names): only the
    driver's first line is kept.
    """
    if isinstance(error, StoreTimeout):
        return str(error)
    if not isinstance(error, _OUTAGES):
        return None
    cause = getattr(error, "orig", None) or error
    first = (str(cause).strip().splitlines() or [""])[0][:_MAX_REASON]
    return f"database unavailable: {type(cause).__name__}: {first}".rstrip(": ")


def log_store_failure(log: Logger, failure: Failure, what: str, **fields: Any) -> None:
    """``what`` (a log format) failed in the store: one line for an outage, the traceback for
    anything else. A StoreTimeout was logged by the store already."""
    reason = outage_reason(failure.value) if failure.value is not None else None
    if reason is None:
        log.failure(what, failure, **fields)
    elif not failure.check(StoreTimeout):
        log.warn(what + ": {reason}", reason=reason, **fields)
