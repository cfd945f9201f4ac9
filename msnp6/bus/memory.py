"""The bus of one process: a dict from account to the nodes holding it, delivery by direct call."""
from __future__ import annotations

from collections.abc import Iterable

from twisted.logger import Logger

from ..events import Event, decode, encode
from .interface import Subscriber

log = Logger()


class MemoryBus:
    """``serialise``: pass every event through its wire encoding, as a bus between processes would
    (the two-node test harness uses it, so nothing that cannot cross a process boundary slips in)."""

    def __init__(self, serialise: bool = False) -> None:
        self.serialise = serialise
        self._holders: dict[str, tuple[Subscriber, ...]] = {}
        #: Events published and deliveries that failed, for metrics.
        self.published = 0
        self.failed = 0

    def subscribe(self, handle: str, subscriber: Subscriber) -> None:
        holders = self._holders.get(handle, ())
        if subscriber not in holders:
            self._holders[handle] = (*holders, subscriber)

    def unsubscribe(self, handle: str, subscriber: Subscriber) -> None:
        holders = self._holders.get(handle, ())
        if subscriber in holders:
            rest = tuple(h for h in holders if h is not subscriber)
            if rest:
                self._holders[handle] = rest
            else:
                del self._holders[handle]

    def publish(self, handles: Iterable[str], event: Event) -> None:
        self.published += 1
        if self.serialise:
            event = decode(encode(event))
        holders = self._holders
        for handle in handles:
            for subscriber in holders.get(handle, ()):
                # One recipient's failure must not stop the fan-out, nor reach the publisher.
                try:
                    subscriber.deliver(handle, event)
                except Exception:
                    self.failed += 1
                    log.failure("delivering {kind} to {handle} failed", kind=event.kind, handle=handle)

    def publish_all(self, event: Event) -> None:
        self.publish(list(self._holders), event)
