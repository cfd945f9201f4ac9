"""The session's lists as a cache of SQL, kept in step by list version (a stream position).

The rule (design.md section 8): the cache holds every change up to ``state.version``. A change
(the session's own, or an event from someone else) comes with the version it gave this account:

- ``v <= state.version``: already in the cache (the login load or a reload read it): skipped;
- ``v == state.version + 1``: applied; held changes that now follow are applied too;
- ``v > state.version + 1``: a gap. The change is held; if the missing versions have not come
  within ``gap_timeout`` (a change can arrive out of order, or be lost on the way), the cache is
  reloaded from SQL and the held changes above the reloaded version are applied in order.

The session's own changes are the exception that proves the rule: its commands run one at a time
and touch only its FL/AL/BL and settings, never what others change (its RL, its contacts' phone
data), so they take effect in memory at once (privacy decisions need them) and are also kept
until their version is reached, to be applied again after a reload that read SQL too early.
Nothing else is ever guessed into place out of order. SYN waits until no gap is held (reloading at
once if one is), so a dump always agrees with SQL at its version. The client's own lines do not
wait for any of this: each goes out when its change happens.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..store.faults import log_store_failure
from ..store.records import SyncSnapshot
from .state import SessionState

if TYPE_CHECKING:
    from .protocol import NotificationProtocol

log = Logger()

Mutation = Callable[[SessionState], None]


class ChangeStream:
    __slots__ = ("_conn", "_held", "_reload", "_timer", "reloads")

    def __init__(self, conn: "NotificationProtocol") -> None:
        self._conn = conn
        #: Changes waiting for the versions before them; None while there are none (most
        #: sessions, all their life: one dict less per online user).
        self._held: dict[int, tuple[Mutation, bool]] | None = None
        self._timer: Any = None
        self._reload: Deferred[None] | None = None
        #: Reloads done (for tests and metrics).
        self.reloads = 0

    def apply(self, version: int, mutate: Mutation, own: bool = False) -> None:
        """Bring the change at ``version`` into the cache. ``own``: the session's own change."""
        state = self._conn.state
        assert state is not None
        if version <= state.version:
            return
        if own:
            mutate(state)
        if version == state.version + 1 and self._reload is None:
            if not own:
                mutate(state)
            state.version = version
            self._drain(state)
            return
        if self._held is None:
            self._held = {}
        self._held[version] = (mutate, own)
        if self._timer is None and self._reload is None:
            self._timer = self._conn.realm.clock.callLater(self._conn.realm.config.gap_timeout, self._gap_expired)

    def settled(self) -> "Deferred[None]":
        """Fires once the cache agrees with SQL at ``state.version`` (no gap held)."""
        if self._reload is not None:
            return self._waiter()
        if self._held:
            self._start_reload()
        return succeed(None) if self._reload is None else self._waiter()

    def catch_up(self) -> "Deferred[None]":
        """SQL holds a later version than the cache (changes whose events were lost): reload;
        fires once the cache agrees with SQL."""
        if self._reload is None:
            self._start_reload()
        return succeed(None) if self._reload is None else self._waiter()

    def stop(self) -> None:
        self._cancel_timer()
        self._held = None

    def _drain(self, state: SessionState) -> None:
        if self._held is None:
            return
        while (held := self._held.pop(state.version + 1, None)) is not None:
            held[0](state)
            state.version += 1
        for stale in [v for v in self._held if v <= state.version]:
            del self._held[stale]
        if not self._held:
            self._held = None
            self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _gap_expired(self) -> None:
        self._timer = None
        if self._held and not self._conn.closing:
            state = self._conn.state
            log.info("conn {conn}: list version {v} never arrived; reloading from SQL",
                     conn=self._conn.conn_id, v=state.version + 1 if state else "?")
            self._start_reload()

    def _start_reload(self) -> None:
        self._cancel_timer()
        conn = self._conn
        self.reloads += 1
        self._reload = d = conn.realm.store.get_snapshot(conn.account_id, conn.dialect is not None and conn.dialect.groups)
        d.addCallbacks(self._reloaded, self._reload_failed)  # may run at once (and clear _reload)

    def _waiter(self) -> "Deferred[None]":
        waiter: Deferred[None] = Deferred()
        assert self._reload is not None

        def fire(result: Any) -> Any:
            waiter.callback(None)
            return result

        self._reload.addBoth(fire)
        return waiter

    def _reloaded(self, snapshot: SyncSnapshot | None) -> None:
        self._reload = None
        conn = self._conn
        state = conn.state
        if snapshot is None or state is None or conn.closing:
            return  # deleted meanwhile: the AccountDeleted event ends the session
        fresh = SessionState.from_snapshot(snapshot)
        for field in attrs.fields(SessionState):
            setattr(state, field.name, getattr(fresh, field.name))
        for version, (mutate, own) in sorted((self._held or {}).items()):
            if own and version > state.version:
                mutate(state)  # committed, maybe after the snapshot was read
        self._drain(state)
        if self._held and self._timer is None:
            self._timer = conn.realm.clock.callLater(conn.realm.config.gap_timeout, self._gap_expired)
        conn.publish_record()  # privacy or phones may have been among what was missed

    def _reload_failed(self, failure: Failure) -> None:
        self._reload = None
        log_store_failure(log, failure, "conn {conn}: reloading the lists failed; trying again later",
                          conn=self._conn.conn_id)
        if not self._conn.closing and self._timer is None:
            self._timer = self._conn.realm.clock.callLater(self._conn.realm.config.gap_timeout, self._gap_expired)
