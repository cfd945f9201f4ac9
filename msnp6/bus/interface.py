"""What a bus does: carry events to the nodes that hold the accounts they are addressed to."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from ..events import Event


class Subscriber(Protocol):
    """A node: it turns an event for one of its accounts into lines for that account's connections."""

    def deliver(self, handle: str, event: Event) -> None: ...


class Bus(Protocol):
    def publish(self, handles: Iterable[str], event: Event) -> None:
        """Send ``event`` to each account in ``handles``. Never raises: a recipient that fails is
        logged and skipped, the others still get theirs. Accounts nobody holds are ignored."""

    def publish_all(self, event: Event) -> None:
        """Send ``event`` to every account held anywhere."""

    def subscribe(self, handle: str, subscriber: Subscriber) -> None:
        """``subscriber`` holds ``handle`` now (idempotent)."""

    def unsubscribe(self, handle: str, subscriber: Subscriber) -> None:
        """``subscriber`` no longer holds ``handle``."""
