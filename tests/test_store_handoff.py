"""The store's handoff to its pool threads (msnp6.store.handoff): every call answered once, in a
burst with fewer wake-ups than calls, failures as failures, skipped calls never answered, and no
more threads busy than the pool has."""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.python.threadpool import ThreadPool

from msnp6.store.handoff import NO_RESULT, Handoff


class ThreadReactor:
    """``callFromThread`` as the reactor does it: queued for the test's (the "reactor") thread."""

    def __init__(self) -> None:
        self.calls: queue.Queue[Callable[[], None]] = queue.Queue()
        self.wakeups = 0

    def callFromThread(self, f: Callable[[], None]) -> None:
        self.wakeups += 1
        self.calls.put(f)

    def run_until(self, done: Callable[[], bool], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            self.calls.get(timeout=max(0.01, deadline - time.monotonic()))()


@pytest.fixture
def pool() -> Iterator[Callable[[int], tuple[Handoff, ThreadReactor]]]:
    pools: list[ThreadPool] = []

    def make(threads: int) -> tuple[Handoff, ThreadReactor]:
        p = ThreadPool(minthreads=threads, maxthreads=threads)
        p.start()
        pools.append(p)
        reactor = ThreadReactor()
        return Handoff(p, reactor, threads), reactor

    yield make
    for p in pools:
        p.stop()


def test_every_call_is_answered_once_and_a_burst_shares_wake_ups(pool) -> None:
    handoff, reactor = pool(1)
    gate = threading.Event()
    results: list[Any] = []
    first: Deferred[Any] = Deferred()
    handoff.submit(first, gate.wait)  # holds the thread while the burst queues up
    burst = [Deferred() for _ in range(200)]
    for i, d in enumerate(burst):
        handoff.submit(d, lambda i=i: i * 2)
        d.addCallback(results.append)
    gate.set()
    reactor.run_until(lambda: len(results) == 200)
    assert results == [i * 2 for i in range(200)]  # one thread: in order
    assert reactor.wakeups < 100


def test_a_failure_arrives_as_a_failure_and_the_next_call_still_runs(pool) -> None:
    handoff, reactor = pool(1)
    failed: list[Any] = []
    ok: list[Any] = []

    def broken() -> None:
        raise ValueError("no")

    bad: Deferred[Any] = Deferred()
    bad.addErrback(lambda f: failed.append(f.value))
    good: Deferred[Any] = Deferred()
    good.addCallback(ok.append)
    handoff.submit(bad, broken)
    handoff.submit(good, lambda: "fine")
    reactor.run_until(lambda: bool(ok) and bool(failed))
    assert isinstance(failed[0], ValueError) and ok == ["fine"]


def test_a_call_that_chose_not_to_run_is_not_answered(pool) -> None:
    handoff, reactor = pool(1)
    skipped: Deferred[Any] = Deferred()
    after: Deferred[Any] = Deferred()
    seen: list[Any] = []
    after.addCallback(seen.append)
    handoff.submit(skipped, lambda: NO_RESULT)
    handoff.submit(after, lambda: 1)
    reactor.run_until(lambda: bool(seen))
    assert not skipped.called


def test_no_more_threads_work_at_once_than_the_pool_has(pool) -> None:
    handoff, reactor = pool(3)
    lock = threading.Lock()
    running = [0, 0]  # now, most at once

    def work() -> None:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1

    answered: list[Any] = []
    for _ in range(30):
        d: Deferred[Any] = Deferred()
        d.addCallback(answered.append)
        handoff.submit(d, work)
    reactor.run_until(lambda: len(answered) == 30)
    assert running[1] == 3


def test_calls_submitted_as_a_thread_goes_idle_are_not_left_behind(pool) -> None:
    handoff, reactor = pool(1)
    answered: list[Any] = []
    for round_ in range(300):  # each submit races the thread's "nothing left" check
        d: Deferred[Any] = Deferred()
        d.addCallback(answered.append)
        handoff.submit(d, lambda r=round_: r)
        if round_ % 3 == 0:
            time.sleep(0.0005)
    reactor.run_until(lambda: len(answered) == 300)
    assert sorted(answered) == list(range(300))
