"""Calls from the reactor thread to the store's pool threads and their results back, with one
wake-up for as many calls as are waiting.

Handing each call to ``ThreadPool.callInThreadWithCallback`` costs a pass through the pool's
coordinator and a ``callFromThread`` (a write to the reactor's wake-up pipe) per call: some 40 µs
of CPU, two of them per login. Here a pool thread keeps taking calls while any are queued, and a
result joins those already waiting for the reactor, so in a burst of logins a wake-up carries
many of them; alone, a call goes at once, as before.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

log = Logger()

#: What ``work`` returns when it chose not to run (its caller has had an answer already): no result.
NO_RESULT = object()


class Handoff:
    def __init__(self, pool: ThreadPool, reactor: Any, workers: int) -> None:
        self._pool = pool
        self._reactor = reactor
        self._workers = workers
        self._calls: deque[tuple[Deferred[Any], Callable[[], Any]]] = deque()
        self._results: list[tuple[Deferred[Any], bool, Any]] = []
        self._lock = threading.Lock()
        #: Pool threads taking calls now (at most ``workers``).
        self._draining = 0

    def submit(self, d: "Deferred[Any]", work: Callable[[], Any]) -> None:
        """Run ``work`` on a pool thread; its result (or its failure) fires ``d`` on the reactor thread."""
        self._calls.append((d, work))
        with self._lock:
            if self._draining >= self._workers:
                return  # a running thread takes it
            self._draining += 1
        self._pool.callInThread(self._drain)

    def _drain(self) -> None:
        calls = self._calls
        while True:
            try:
                d, work = calls.popleft()
            except IndexError:
                with self._lock:
                    if not calls:  # checked under the lock submit counts under: nothing is left behind
                        self._draining -= 1
                        return
                continue
            try:
                ok, result = True, work()
            except BaseException:
                ok, result = False, Failure()
            if result is NO_RESULT:
                continue
            with self._lock:
                self._results.append((d, ok, result))
                wake = len(self._results) == 1
            if wake:
                self._reactor.callFromThread(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            results, self._results = self._results, []
        for d, ok, result in results:
            try:
                d.callback(result) if ok else d.errback(result)
            except Exception:  # a second result for one call (a bug): the others still arrive
                log.failure("store result for an already answered call")
