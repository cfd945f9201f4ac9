"""Failed-login limiter: too many failures per account or per address in a window -> refuse."""
from __future__ import annotations

from collections import deque
from typing import Any


class FailureLimiter:
    def __init__(self, clock: Any, limit: int, window: float) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self._clock.seconds()
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def blocked(self, key: str) -> bool:
        return len(self._recent(key)) >= self._limit

    def record(self, key: str) -> None:
        self._recent(key)
        self._failures.setdefault(key, deque()).append(self._clock.seconds())
        if len(self._failures) > 10_000:  # keep memory bounded under a spray of handles
            for stale in list(self._failures):
                self._recent(stale)
