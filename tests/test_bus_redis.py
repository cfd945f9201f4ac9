"""The Redis bus against a private ``redis-server``: the bus contract, run against the in-memory bus
too, and Redis going away and coming back.

The Redis side runs on the global reactor, which the test pumps (``reactor.iterate``, without
``run``: no other test runs it in this process) until what it waits for has happened: one thread,
the real network code. Not a private reactor: txredisapi schedules on the global one. Nothing waits for a fixed time: "nothing more
arrives" is shown by a fence, an event published after the others by a bus of its own that each
node must receive last (Redis delivers the messages of one connection in order).
"""
from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from twisted.internet import reactor as global_reactor

from msnp6.bus import Bus, MemoryBus
from msnp6.bus.redis import RedisBus
from msnp6.events import Event, NameChanged, PresenceChanged
from msnp6.testing import ReactorPump, RedisServerProcess

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
NLN = PresenceChanged(handle=ALICE, status="NLN", name="Alice")


class Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[str, Event]] = []

    def deliver(self, handle: str, event: Event) -> None:
        self.got.append((handle, event))


class Failing:
    def deliver(self, handle: str, event: Event) -> None:
        raise RuntimeError("this node is broken")


#: The global reactor, pumped on the test's thread (the bus connects to addresses: no thread pool).
pump = ReactorPump()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServerProcess]:
    """A Redis of this module's own: its tests restart it."""
    server = RedisServerProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


class Nodes(Protocol):
    def node(self) -> Bus:
        """The bus as one more node sees it."""

    def settle(self) -> None:
        """Every subscription taken and every event published so far delivered."""

    def failed(self) -> int:
        """Deliveries that failed, over all nodes."""


class MemoryNodes:
    """One process: every node shares the one in-memory bus (serialising, as between processes)."""

    def __init__(self) -> None:
        self.bus = MemoryBus(serialise=True)

    def node(self) -> Bus:
        return self.bus

    def settle(self) -> None:
        pass

    def failed(self) -> int:
        return self.bus.failed


class RedisNodes:
    """One RedisBus per node on one private Redis, each with a fence account of its own."""

    def __init__(self, server: RedisServerProcess, db: int = 0) -> None:
        self.server, self.db = server, db
        self.reactor: Any = global_reactor
        self.buses: list[RedisBus] = []
        self.fences: list[Recorder] = []
        self.reconnects: list[int] = []
        self.counter = itertools.count()
        self.fencer = self.start_bus()

    def start_bus(self) -> RedisBus:
        index = len(self.reconnects)
        self.reconnects.append(0)

        def reconnected() -> None:
            self.reconnects[index] += 1

        bus = RedisBus("127.0.0.1", self.server.port, self.db, reactor=self.reactor,
                       on_reconnect=reconnected, max_delay=0.5)
        bus.start()
        pump.until(lambda: bus.connected, "the bus to connect")
        return bus

    def node(self) -> RedisBus:
        bus = self.start_bus()
        fence = Recorder()
        bus.subscribe(f"fence{len(self.buses)}@test", fence)
        self.buses.append(bus)
        self.fences.append(fence)
        self.settle()
        return bus

    def settle(self) -> None:
        everyone = [*self.buses, self.fencer]
        pump.until(lambda: all(b.in_flight == 0 and b.subscriptions_settled for b in everyone),
                   "Redis to take every PUBLISH and SUBSCRIBE")
        # Redis has queued every message for the subscribers; one more from the fencer comes after.
        marker = NameChanged(name=f"fence {next(self.counter)}")
        self.fencer.publish([f"fence{i}@test" for i in range(len(self.buses))], marker)
        pump.until(lambda: all(f.got and f.got[-1][1] == marker for f in self.fences),
                   "the fence to reach every node")

    def failed(self) -> int:
        return sum(b.failed for b in self.buses)

    def close(self) -> None:
        stopped = [bus.stop() for bus in [*self.buses, self.fencer]]
        pump.until(lambda: all(d.called for d in stopped), "the buses to stop")


@pytest.fixture(params=["memory", "redis"])
def nodes(request: pytest.FixtureRequest) -> Iterator[Nodes]:
    if request.param == "memory":
        yield MemoryNodes()
        return
    cluster = RedisNodes(request.getfixturevalue("redis_server"))
    yield cluster
    cluster.close()


# -- the contract, for both buses --------------------------------------------------------------


def test_an_event_reaches_its_holder_once(nodes: Nodes) -> None:
    """On the same node too: Redis echoes what a node publishes, and the echo is not a second copy."""
    bus = nodes.node()
    alice = Recorder()
    bus.subscribe(ALICE, alice)
    bus.subscribe(ALICE, alice)  # idempotent
    nodes.settle()
    bus.publish([ALICE], NLN)
    nodes.settle()
    assert alice.got == [(ALICE, NLN)]


def test_an_event_reaches_the_holder_on_another_node_and_nobody_else(nodes: Nodes) -> None:
    a, b = nodes.node(), nodes.node()
    alice, bob, carol = Recorder(), Recorder(), Recorder()
    a.subscribe(ALICE, alice)
    b.subscribe(BOB, bob)
    b.subscribe(CAROL, carol)
    nodes.settle()
    a.publish([BOB], NLN)
    b.publish([ALICE, CAROL], NameChanged(name="x"))
    nodes.settle()
    assert bob.got == [(BOB, NLN)]
    assert alice.got == [(ALICE, NameChanged(name="x"))]
    assert carol.got == [(CAROL, NameChanged(name="x"))]


def test_unsubscribe_stops_delivery_and_leaves_the_other_holders(nodes: Nodes) -> None:
    a, b = nodes.node(), nodes.node()
    first, second, elsewhere = Recorder(), Recorder(), Recorder()
    b.subscribe(BOB, first)
    b.subscribe(BOB, second)
    b.subscribe(CAROL, elsewhere)
    nodes.settle()
    b.unsubscribe(BOB, first)
    b.unsubscribe(CAROL, elsewhere)
    b.unsubscribe(CAROL, elsewhere)  # not held any more: nothing happens
    nodes.settle()
    a.publish([BOB, CAROL], NLN)
    nodes.settle()
    assert first.got == [] and elsewhere.got == []
    assert second.got == [(BOB, NLN)]
    b.unsubscribe(BOB, second)
    nodes.settle()
    a.publish([BOB], NLN)
    nodes.settle()
    assert second.got == [(BOB, NLN)]


def test_publish_all_reaches_every_held_account_once(nodes: Nodes) -> None:
    a, b = nodes.node(), nodes.node()
    alice, bob, carol = Recorder(), Recorder(), Recorder()
    a.subscribe(ALICE, alice)
    b.subscribe(BOB, bob)
    b.subscribe(CAROL, carol)
    nodes.settle()
    event = NameChanged(name="maintenance")
    a.publish_all(event)
    nodes.settle()
    assert alice.got == [(ALICE, event)]
    assert bob.got == [(BOB, event)]
    assert carol.got == [(CAROL, event)]


def test_a_failing_subscriber_does_not_stop_the_others(nodes: Nodes) -> None:
    a, b = nodes.node(), nodes.node()
    here, there = Recorder(), Recorder()
    a.subscribe(BOB, Failing())
    a.subscribe(BOB, here)
    b.subscribe(BOB, Failing())
    b.subscribe(BOB, there)
    nodes.settle()
    a.publish([BOB], NLN)  # does not raise
    nodes.settle()
    assert here.got == [(BOB, NLN)] and there.got == [(BOB, NLN)]
    # One failure for the one shared bus, or one per Redis node.
    assert nodes.failed() in (1, 2)


# -- Redis only ----------------------------------------------------------------------------------


@pytest.fixture
def redis_nodes(tmp_path: Path) -> Iterator[RedisNodes]:
    """A Redis of this test's own, to stop and start."""
    server = RedisServerProcess(tmp_path / "redis")
    server.start()
    cluster = RedisNodes(server)
    yield cluster
    cluster.close()
    server.stop()


def test_redis_restarted_the_buses_reconnect_resubscribe_and_say_so(redis_nodes: RedisNodes) -> None:
    cluster = redis_nodes
    a, b = cluster.node(), cluster.node()
    alice, bob = Recorder(), Recorder()
    a.subscribe(ALICE, alice)
    b.subscribe(BOB, bob)
    cluster.settle()
    assert cluster.reconnects == [1, 1, 1]  # the first connection counts too

    cluster.server.stop()
    pump.until(lambda: not a.connected and not b.connected, "the buses to see Redis gone")
    a.publish([ALICE, BOB], NLN)  # does not raise; Alice is on this node and still gets it
    assert alice.got == [(ALICE, NLN)]
    assert a.dropped == 2 and bob.got == []
    carol = Recorder()
    b.subscribe(CAROL, carol)  # taken while Redis is away

    cluster.server.start()
    buses = [*cluster.buses, cluster.fencer]
    pump.until(lambda: all(bus.connected for bus in buses), "the buses to reconnect")
    assert cluster.reconnects == [2, 2, 2]
    cluster.settle()  # the fence accounts are subscribed again too
    a.publish([BOB, CAROL], NameChanged(name="back"))
    b.publish([ALICE], NameChanged(name="back"))
    cluster.settle()
    assert bob.got == [(BOB, NameChanged(name="back"))]
    assert carol.got == [(CAROL, NameChanged(name="back"))]
    assert alice.got == [(ALICE, NLN), (ALICE, NameChanged(name="back"))]


def test_a_bus_started_before_redis_connects_when_it_comes(tmp_path: Path) -> None:
    server = RedisServerProcess(tmp_path / "redis")
    reactor: Any = global_reactor
    bus = RedisBus("127.0.0.1", server.port, reactor=reactor, max_delay=0.5)
    bus.start()
    alice = Recorder()
    bus.subscribe(ALICE, alice)
    bus.publish([ALICE], NLN)  # local delivery works without Redis
    assert alice.got == [(ALICE, NLN)] and bus.dropped == 1 and not bus.connected
    server.start()
    try:
        pump.until(lambda: bus.connected and bus.subscriptions_settled, "the bus to connect")
        out = subprocess.run(["redis-cli", "-p", str(server.port), "PUBSUB", "CHANNELS"],
                             capture_output=True, text=True, check=True).stdout.split()
        assert sorted(out) == ["msnp6:0:a:alice@example.com", "msnp6:0:all", "msnp6:0:many"]
    finally:
        d = bus.stop()
        pump.until(lambda: d.called, "the bus to stop")
        server.stop()


def test_a_message_that_is_not_an_event_is_dropped_and_the_next_one_arrives(redis_server: RedisServerProcess) -> None:
    cluster = RedisNodes(redis_server)
    try:
        bus = cluster.node()
        bob = Recorder()
        bus.subscribe(BOB, bob)
        cluster.settle()
        subprocess.run(["redis-cli", "-p", str(redis_server.port), "PUBLISH", "msnp6:0:a:" + BOB,
                        "someone {not json"], check=True, capture_output=True)
        cluster.fencer.publish([BOB], NLN)
        cluster.settle()
        assert bob.got == [(BOB, NLN)] and bus.bad == 1
    finally:
        cluster.close()


def test_databases_of_one_redis_are_separate_buses(redis_server: RedisServerProcess) -> None:
    """Pub/sub ignores database numbers; the channel names carry them."""
    zero, one = RedisNodes(redis_server, db=0), RedisNodes(redis_server, db=1)
    try:
        bus0, bus1 = zero.node(), one.node()
        bob0, bob1 = Recorder(), Recorder()
        bus0.subscribe(BOB, bob0)
        bus1.subscribe(BOB, bob1)
        zero.settle()
        one.settle()
        zero.fencer.publish([BOB], NLN)
        zero.settle()
        one.settle()
        assert bob0.got == [(BOB, NLN)] and bob1.got == []
    finally:
        zero.close()
        one.close()


def test_an_event_for_many_accounts_is_one_publish_and_reaches_each_holder_once(nodes: Nodes) -> None:
    a, b = nodes.node(), nodes.node()
    on_a, on_b = Recorder(), Recorder()
    many = [f"watcher{i}@example.com" for i in range(30)]
    for i, handle in enumerate(many[:20]):
        (a if i % 2 else b).subscribe(handle, on_a if i % 2 else on_b)
    nodes.settle()
    sent = getattr(a, "sent", 0)
    a.publish(many, NLN)  # 10 held on a, 10 on b, 10 by nobody
    nodes.settle()
    assert sorted(h for h, _ in on_a.got) == sorted(many[1:20:2])
    assert sorted(h for h, _ in on_b.got) == sorted(many[0:20:2])
    assert all(e == NLN for _, e in on_a.got + on_b.got)
    if isinstance(a, RedisBus):
        assert a.sent - sent == 1
        assert a.bad == 0 and b.bad == 0
