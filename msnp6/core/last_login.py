"""The last login of each account, written in batches: one UPDATE for the logins of the last
few seconds instead of one more SQL write on every login (the hot path stays as it was)."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..store.faults import log_store_failure

log = Logger()

#: How long a login waits to be written with the others (``msnp6-admin user show`` is that late).
FLUSH_INTERVAL = 2.0


class LastLogins(service.Service):
    """Collects the accounts that logged in; writes them through the store (its pool and deadline)
    ``interval`` seconds after the first one, and once more when the service stops (shutdown: it
    stops after the clients and before the store). An idle server has no timer running."""

    def __init__(self, store: Any, clock: Any, interval: float = FLUSH_INTERVAL) -> None:
        self.store = store
        self.clock = clock
        self.interval = interval
        self._pending: set[int] = set()
        self._timer: IDelayedCall | None = None

    def note(self, account_id: int) -> None:
        self._pending.add(account_id)
        if self._timer is None:
            self._timer = self.clock.callLater(self.interval, self.flush)

    def flush(self) -> "Deferred[None]":
        """Write what is pending (never fails: a failed write is logged, and those logins stay
        unrecorded rather than piling up)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        ids, self._pending = sorted(self._pending), set()
        if not ids:
            return succeed(None)
        when = datetime.fromtimestamp(self.clock.seconds(), UTC)
        return self.store.note_logins(ids, when).addErrback(self._failed, len(ids))

    def stopService(self) -> "Deferred[None]":
        super().stopService()
        return self.flush()

    @staticmethod
    def _failed(failure: Failure, n: int) -> None:
        log_store_failure(log, failure, "recording the last login of {n} accounts failed", n=n)
