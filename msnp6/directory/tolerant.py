"""A directory whose lookups survive a Redis outage: what cannot be read counts as offline.

During an outage a handler that asks "is X online?" gets "no" (ILN leaves X out, CAL and PAG
answer 217, a switchboard join is refused) instead of an error that would end its command, and
the repair after the outage (msnp6.cluster.member) shows each client what it missed. The outage
is logged once when the first lookup fails and once when one succeeds again.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from .interface import Directory
from .record import PresenceRecord
from .redis import DirectoryUnavailable

log = Logger()


class TolerantDirectory:
    """``available()`` False (the node knows Redis is away: its bus is down) answers at once,
    rather than after the lookup's timeout: a command in an outage is not held for seconds."""

    def __init__(self, inner: Directory, available: Callable[[], bool] = lambda: True) -> None:
        self.inner = inner
        self.available = available
        #: Lookups answered "offline" because the directory could not be read.
        self.degraded = 0
        self._failing = False

    def get(self, handle: str) -> "Deferred[PresenceRecord | None]":
        if not self.available():
            return succeed(self._unreadable(Failure(DirectoryUnavailable("the bus is not connected")), None))
        return self.inner.get(handle).addCallbacks(self._read, self._unreadable, errbackArgs=(None,))

    def get_many(self, handles: Iterable[str]) -> "Deferred[dict[str, PresenceRecord]]":
        if not self.available():
            return succeed(self._unreadable(Failure(DirectoryUnavailable("the bus is not connected")), {}))
        return self.inner.get_many(handles).addCallbacks(self._read, self._unreadable, errbackArgs=({},))

    def list_all(self) -> "Deferred[list[PresenceRecord]]":
        # An operator asked: a Redis outage is an error to show, not an empty list.
        return self.inner.list_all()

    def put(self, record: PresenceRecord) -> "Deferred[None]":
        stored = self.inner.put(record)
        # In a known outage nobody elsewhere can read it anyway, and the node writes its records
        # again once Redis is back: the client is not held for the write's timeout.
        return stored if self.available() else succeed(None)

    def remove(self, handle: str, session: str) -> None:
        self.inner.remove(handle, session)

    def count(self) -> int:
        return self.inner.count()

    def _read(self, result: Any) -> Any:
        if self._failing:
            self._failing = False
            log.info("Presence directory: lookups succeed again")
        return result

    def _unreadable(self, failure: Failure, fallback: Any) -> Any:
        failure.trap(DirectoryUnavailable)
        self.degraded += 1
        if not self._failing:
            self._failing = True
            log.warn("Presence directory: lookups fail ({error}); everyone on other nodes counts as "
                     "offline until Redis answers again (logged once)", error=failure.getErrorMessage())
        return fallback
