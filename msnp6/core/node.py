"""This node's side of the bus: which local connections hold which account, and delivery to them.

Every connection that acts for an account (its notification session, its switchboard
connections) attaches here; the node subscribes to the bus for that account while at least one
is attached. Delivery is isolated per connection: one that fails is logged and dropped, the
others still get the event.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Protocol

from twisted.logger import Logger

from ..bus.interface import Bus
from ..events import Event

log = Logger()


class EventSink(Protocol):
    conn_id: int
    service: str

    def on_event(self, event: Event) -> None: ...

    def drop(self) -> None:
        """Close at once, without a goodbye (delivery to it failed)."""


class LocalNode:
    def __init__(self, name: str, bus: Bus) -> None:
        self.name = name
        self.bus = bus
        # Tuples, not lists: one per online account, and nearly always of one connection.
        self._held: dict[str, tuple[EventSink, ...]] = {}
        self._sessions = itertools.count(1)

    def new_session_id(self) -> str:
        """Unique across nodes: the node's name and a counter."""
        return f"{self.name}.{next(self._sessions)}"

    def attach(self, handle: str, sink: EventSink) -> None:
        sinks = self._held.get(handle)
        if sinks is None:
            self._held[handle] = (sink,)
            self.bus.subscribe(handle, self)
        elif sink not in sinks:
            self._held[handle] = (*sinks, sink)

    def detach(self, handle: str, sink: EventSink) -> None:
        sinks = self._held.get(handle)
        if sinks is None or sink not in sinks:
            return
        rest = tuple(s for s in sinks if s is not sink)
        if rest:
            self._held[handle] = rest
        else:
            del self._held[handle]
            self.bus.unsubscribe(handle, self)

    def holds(self, handle: str) -> bool:
        return handle in self._held

    def notification_session(self, handle: str) -> EventSink | None:
        """This node's notification connection for ``handle`` (for tests and operators; never
        read for another user's state, which the directory holds)."""
        return next((s for s in self._held.get(handle, ()) if s.service == "ns"), None)

    def handles(self) -> Iterator[str]:
        return iter(list(self._held))

    def deliver(self, handle: str, event: Event) -> None:
        for sink in self._held.get(handle, ()):
            try:
                sink.on_event(event)
            except Exception:
                log.failure("conn {conn}: handling {kind} for {handle} failed; dropping it",
                            conn=sink.conn_id, kind=event.kind, handle=handle)
                self.detach(handle, sink)
                try:
                    sink.drop()
                except Exception:
                    log.failure("conn {conn}: dropping failed", conn=sink.conn_id)
