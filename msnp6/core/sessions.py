"""Who is logged in on this node: one notification connection per account."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

C = TypeVar("C")


class SessionRegistry(Generic[C]):
    def __init__(self) -> None:
        self._by_handle: dict[str, C] = {}

    def get(self, handle: str) -> C | None:
        return self._by_handle.get(handle)

    def add(self, handle: str, connection: C) -> C | None:
        """Register ``connection``; return the connection it replaces, if any."""
        previous = self._by_handle.get(handle)
        self._by_handle[handle] = connection
        return previous

    def remove(self, handle: str, connection: C) -> None:
        """Forget ``connection`` unless a newer login already replaced it."""
        if self._by_handle.get(handle) is connection:
            del self._by_handle[handle]

    def __len__(self) -> int:
        return len(self._by_handle)

    def __iter__(self) -> Iterator[C]:
        return iter(list(self._by_handle.values()))
