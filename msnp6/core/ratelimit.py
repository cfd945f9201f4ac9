"""Sliding-window counters: too many events per key within a window -> refuse (login attempts,
renames, switchboard calls); and the record of refusals (counted for metrics, logged once per
offender per window)."""
from __future__ import annotations

from collections import Counter, deque
from typing import Any

from twisted.logger import Logger

from .limits import Limit

log = Logger()

#: How long a refusal under a cap (a limit without a window) stays logged for its offender.
CAP_LOG_WINDOW = 60.0


class WindowCounter:
    """Events per key within the last ``window`` seconds.

    Every event goes into one queue in the order it came, and each key keeps only its count; each
    call first expires that queue from its front. The window is the same for every key, so that
    is all the expiry there is: O(1) amortized per call however many keys are live, and memory
    holds only the window's events.
    """

    def __init__(self, clock: Any, limit: int, window: float) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._counts: dict[str, int] = {}
        self._order: deque[tuple[float, str]] = deque()

    def _expire(self) -> None:
        oldest = self._clock.seconds() - self._window
        order, counts = self._order, self._counts
        while order and order[0][0] <= oldest:
            _, key = order.popleft()
            left = counts[key] - 1
            if left:
                counts[key] = left
            else:
                del counts[key]

    def count(self, key: str) -> int:
        self._expire()
        return self._counts.get(key, 0)

    def blocked(self, key: str) -> bool:
        return self.count(key) >= self._limit

    def record(self, key: str) -> None:
        self._expire()
        self._counts[key] = self._counts.get(key, 0) + 1
        self._order.append((self._clock.seconds(), key))

    def allow(self, key: str) -> bool:
        """Record an attempt unless the key is already at its limit (check and count in one step)."""
        if self.blocked(key):
            return False
        self.record(key)
        return True


class Refusals:
    """What each limit refused: counts by limit name (read by /metrics at scrape time) and one log
    line per limit and offender per window, so a flood does not become a log flood."""

    def __init__(self, clock: Any, limits: Any) -> None:
        self._clock = clock
        self.counts: Counter[str] = Counter()
        self._logged: dict[str, WindowCounter] = {}
        for name, limit in limits.values.items():
            window = limit.window if limit.window is not None else CAP_LOG_WINDOW
            self._logged[name] = WindowCounter(clock, 1, window)

    def refused(self, name: str, offender: str, limit: Limit) -> None:
        self.counts[name] += 1
        if self._logged[name].allow(offender):
            log.info("limit {limit} ({value}) reached by {offender}; refusing (logged once per window)",
                     limit=name, value=str(limit), offender=offender)
