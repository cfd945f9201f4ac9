"""The presence directory's interface: a Redis-backed one can stand in for the in-memory one."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from twisted.internet.defer import Deferred

from .record import PresenceRecord


class Directory(Protocol):
    def get(self, handle: str) -> "Deferred[PresenceRecord | None]":
        """The online session of ``handle``, or None."""

    def get_many(self, handles: Iterable[str]) -> "Deferred[dict[str, PresenceRecord]]":
        """The online ones among ``handles``."""

    def list_all(self) -> "Deferred[list[PresenceRecord]]":
        """Every online session, by handle (``msnp6-admin who``: an operator's look, not a
        protocol path)."""

    def put(self, record: PresenceRecord) -> "Deferred[None]":
        """Record (or replace) the session of ``record.handle``; fires once stored (or once the
        failed write is logged): what a client is told after it, any lookup on any node sees."""

    def remove(self, handle: str, session: str) -> None:
        """Forget ``handle`` if its record is still that of ``session`` (a newer login stays)."""

    def count(self) -> int:
        """How many sessions are online (for metrics)."""
