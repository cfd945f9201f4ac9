"""The node registry on a private redis-server, on the real reactor (``reactor_pump``): heartbeats
that expire, the least-loaded pick, and a dead node reported once across the cluster."""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.logger import LogEvent, formatEvent

from msnp6.cluster.connection import connect
from msnp6.cluster.registry import HeartbeatService, NodeInfo, Registry
from msnp6.testing import ReactorPump, RedisServerProcess


@pytest.fixture
def redis(reactor_pump: ReactorPump, redis_server: RedisServerProcess) -> Iterator[Any]:
    conn = reactor_pump.call(connect, redis_server.url)
    yield conn
    reactor_pump.call(conn.disconnect)


def registry(redis: Any, ttl: float = 10, prefix: str | None = None) -> Registry:
    return Registry(redis, ttl, prefix=prefix or f"t{secrets.token_hex(4)}:")


def node(name: str, roles: str = "ns,sb", load: int = 0) -> NodeInfo:
    return NodeInfo(name, roles.split(","), {s: f"10.0.0.{len(name)}:{1863 + i}" for i, s in enumerate(("ns", "sb"))
                                             if s in roles}, load)


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    ReactorPump().until(condition, "the condition", timeout)


def test_node_info_json_round_trip() -> None:
    info = NodeInfo("ns-1", ["sb", "ns"], {"ns": "1.2.3.4:1863", "sb": "1.2.3.4:1864"}, 12, 1700000000.5)
    assert info.roles == ("ns", "sb")
    assert NodeInfo.from_json(info.to_json()) == info
    with pytest.raises(ValueError):
        NodeInfo.from_json('{"name": "x"}')


def test_heartbeat_lists_the_node_until_its_ttl(reactor_pump: ReactorPump, redis: Any) -> None:
    reg = registry(redis, ttl=1)
    call = reactor_pump.call
    a, b = node("a", load=3), node("b")
    call(reg.heartbeat, a)
    call(reg.heartbeat, b)
    assert call(reg.live_nodes) == [a, b]

    def a_beats_until_b_expired() -> bool:
        call(reg.heartbeat, a)  # a keeps beating, b stopped
        return bool(call(reg.live_nodes) == [a])

    wait_for(a_beats_until_b_expired, timeout=5)
    assert call(reg.members) == ["a", "b"]  # b expired but is still listed, until reaped
    assert call(reg.reap) == ["b"]
    assert call(reg.reap) == []
    assert call(reg.members) == ["a"]


def test_pick_the_least_loaded_live_node(reactor_pump: ReactorPump, redis: Any) -> None:
    reg = registry(redis)
    call = reactor_pump.call
    assert call(reg.pick, "ns") is None
    for info in (node("n1", "ns,sb", 5), node("n4", "ns", 2), node("n2", "ns", 2), node("n3", "sb", 2),
                 node("d1", "ds", 0), node("n5", "sb", 9)):
        call(reg.heartbeat, info)
    assert call(reg.pick, "ns").name == "n2"  # n2 and n4 tie: the first by name
    assert call(reg.pick, "sb").name == "n3"
    call(reg.heartbeat, node("n3", "sb", 10))
    assert call(reg.pick, "sb").name == "n1"
    with pytest.raises(ValueError):
        reg.pick("ds")


def test_a_dead_node_is_reported_once_across_the_cluster(reactor_pump: ReactorPump,
                                                         redis_server: RedisServerProcess) -> None:
    """Node "dead" beats once (then is killed); two live nodes watch with a 1 s ttl: exactly one
    of them calls on_node_dead("dead"), once, and the list forgets it."""
    call = reactor_pump.call
    shared = f"t{secrets.token_hex(4)}:"
    conns = [call(connect, redis_server.url) for _ in range(3)]
    deaths: list[tuple[str, str]] = []
    services = [HeartbeatService(registry(conns[i], ttl=1, prefix=shared), lambda n=name: node(n),
                                 reactor_pump.reactor, lambda dead, n=name: deaths.append((n, dead)))
                for i, name in ((0, "live-1"), (1, "live-2"))]
    try:
        call(registry(conns[2], ttl=1, prefix=shared).heartbeat, node("dead"))
        for s in services:
            call(s.startService)
        wait_for(lambda: len(deaths) > 0)
        reactor_pump.sleep(1.5)  # several more beats (every ttl/3 s) of both watchers: no second report
        assert [dead for _, dead in deaths] == ["dead"]
        assert sorted(n.name for n in call(registry(conns[2], prefix=shared).live_nodes)) == ["live-1", "live-2"]
        # A clean stop leaves the registry at once.
        call(services[0].stopService)
        assert call(registry(conns[2], prefix=shared).members) == ["live-2"]
    finally:
        for s in services:
            if s.running:
                call(s.stopService)
        for c in conns:
            call(c.disconnect)


def test_heartbeat_carries_the_current_load_and_time(reactor_pump: ReactorPump, redis: Any) -> None:
    reg = registry(redis, ttl=3)
    loads = iter([4, 7])
    service = HeartbeatService(reg, lambda: node("a", load=next(loads)), reactor_pump.reactor)
    before = time.time()
    call = reactor_pump.call
    call(service.beat)
    [info] = call(reg.live_nodes)
    assert info.load == 4 and info.heartbeat >= before
    call(service.beat)
    assert [n.load for n in call(reg.live_nodes)] == [7]


def test_heartbeats_survive_a_redis_restart(reactor_pump: ReactorPump, tmp_path: Path,
                                            logged: list[LogEvent]) -> None:
    """Redis down: one warning for the whole outage, not one per beat; Redis back (same port):
    the connection comes back by itself and the node is listed again."""
    server = RedisServerProcess(tmp_path / "redis")
    server.start()
    call = reactor_pump.call
    conn = call(connect, server.url)
    reg = registry(conn, ttl=1)
    service = HeartbeatService(reg, lambda: node("a"), reactor_pump.reactor)
    try:
        call(service.beat)
        assert not service.failing
        server.stop()
        call(service.beat)
        call(service.beat)
        assert service.failing
        assert len([e for e in list(logged) if "heartbeat failed" in formatEvent(e)]) == 1
        server.start()

        def listed() -> bool:
            call(service.beat)
            return [n.name for n in call(reg.live_nodes, timeout=5)] == ["a"]

        wait_for(listed, timeout=60)
        assert not service.failing
        assert any("succeed again" in formatEvent(e) for e in list(logged))
    finally:
        call(conn.disconnect)
        server.stop()
