"""The directory of one process (or of nodes sharing a process, as in the two-node tests)."""
from __future__ import annotations

from collections.abc import Iterable

from twisted.internet.defer import Deferred, succeed

from .record import PresenceRecord


class MemoryDirectory:
    def __init__(self) -> None:
        self._records: dict[str, PresenceRecord] = {}

    def get(self, handle: str) -> "Deferred[PresenceRecord | None]":
        return succeed(self._records.get(handle))

    def get_many(self, handles: Iterable[str]) -> "Deferred[dict[str, PresenceRecord]]":
        records = self._records
        return succeed({h: r for h in handles if (r := records.get(h)) is not None})

    def list_all(self) -> "Deferred[list[PresenceRecord]]":
        return succeed(sorted(self._records.values(), key=lambda r: r.handle))

    def put(self, record: PresenceRecord) -> "Deferred[None]":
        self._records[record.handle] = record
        return succeed(None)

    def remove(self, handle: str, session: str) -> None:
        record = self._records.get(handle)
        if record is not None and record.session == session:
            del self._records[handle]

    def count(self) -> int:
        return len(self._records)
