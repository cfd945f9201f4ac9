"""Sliding-window counters: too many events per key within a window -> refuse (login failures,
renames, switchboard calls)."""
from __future__ import annotations

from collections import deque
from typing import Any


class WindowCounter:
    def __init__(self, clock: Any, limit: int, window: float) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._events: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> int:
        times = self._events.get(key)
        if times is None:
            return 0
        oldest = self._clock.seconds() - self._window
        while times and times[0] <= oldest:
            times.popleft()
        if not times:
            del self._events[key]
        return len(times)

    def blocked(self, key: str) -> bool:
        return self._recent(key) >= self._limit

    def record(self, key: str) -> None:
        self._recent(key)
        self._events.setdefault(key, deque()).append(self._clock.seconds())
        if len(self._events) > 10_000:  # keep memory bounded under a spray of keys
            for stale in list(self._events):
                self._recent(stale)

    def allow(self, key: str) -> bool:
        """Record an attempt unless the key is already at its limit."""
        if self.blocked(key):
            return False
        self.record(key)
        return True
