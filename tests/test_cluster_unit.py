"""The cluster's pieces on their own: options, the node picture the pickers read, lookups that
survive an outage, XFR SB cookies shared through Redis (on a private redis-server), and what a
session remembers of its contacts' presence."""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python import usage

from msnp6.cluster.connection import connect
from msnp6.cluster.cookies import RedisSessionTickets
from msnp6.cluster.registry import NodeInfo
from msnp6.cluster.view import NodeView
from msnp6.directory.redis import DirectoryUnavailable
from msnp6.directory.tolerant import TolerantDirectory
from msnp6.tap import Options
from msnp6.testing import ReactorPump, RedisServerProcess

# -- options ---------------------------------------------------------------------------------------


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def test_one_process_with_the_memory_bus_is_the_default(monkeypatch) -> None:
    for name in ("MSNP6_BUS", "MSNP6_NODE", "MSNP6_ROLES", "MSNP6_NODE_TTL"):
        monkeypatch.delenv(name, raising=False)
    options = parse("--ns", "tcp:2864", "--sb", "tcp:2865", "--public-host", "chat.example.net")
    assert not options.clustered
    assert options["roles"] == ("ds", "ns", "sb")
    assert options["node-ttl"] == 10.0
    assert options["node"] == "chat.example.net:2864:2865"


def test_cluster_options_and_their_environment_twins(monkeypatch) -> None:
    monkeypatch.setenv("MSNP6_BUS", "redis://redis:6379/2")
    monkeypatch.setenv("MSNP6_NODE", "node-a")
    monkeypatch.setenv("MSNP6_ROLES", "sb, ns")
    monkeypatch.setenv("MSNP6_NODE_TTL", "4")
    options = parse()
    assert options.clustered and options["bus"] == "redis://redis:6379/2"
    assert (options["node"], options["roles"], options["node-ttl"]) == ("node-a", ("ns", "sb"), 4.0)
    flags = parse("--bus", "redis://127.0.0.1/0", "--node", "n9", "--roles", "ds", "--node-ttl", "2.5")
    assert (flags["bus"], flags["node"], flags["roles"], flags["node-ttl"]) == ("redis://127.0.0.1/0", "n9", ("ds",), 2.5)


@pytest.mark.parametrize("args,message", [
    (["--roles", "ns,xx"], "--roles is a comma list"),
    (["--roles", ""], "--roles is a comma list"),
    (["--roles", "ns,sb"], "needs --bus redis://"),
    (["--bus", "memcached://x"], "--bus is memory: or redis://"),
    (["--bus", "redis://h:1/zero"], "--bus is memory: or redis://"),
    (["--node-ttl", "0.5"], "--node-ttl must be between"),
    (["--node-ttl", "soon"], "--node-ttl must be a number"),
])
def test_bad_cluster_options_are_refused(monkeypatch, args: list[str], message: str) -> None:
    for name in ("MSNP6_BUS", "MSNP6_NODE", "MSNP6_ROLES", "MSNP6_NODE_TTL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(usage.UsageError, match=message):
        parse(*args)


# -- the node picture ------------------------------------------------------------------------------


def info(name: str, load: int, heartbeat: float, roles: str = "ns,sb") -> NodeInfo:
    return NodeInfo(name, roles.split(","), {r: f"{name}:{1864 + i}" for i, r in enumerate(roles.split(","))},
                    load, heartbeat)


def test_picks_spread_a_burst_by_load_until_the_next_refresh() -> None:
    clock = Clock()
    view = NodeView(clock.seconds, stale_after=3)
    view.update([info("a", load=10, heartbeat=0), info("b", load=7, heartbeat=0)])
    picks = [view.pick("ns") for _ in range(9)]
    # b gets 3 before the two are level, then they alternate (ties go to the first name).
    assert picks == ["b:1864"] * 3 + ["a:1864", "b:1864"] * 3
    view.update([info("a", load=0, heartbeat=0), info("b", load=50, heartbeat=0)])
    assert view.pick("ns") == "a:1864"


def test_a_node_silent_for_three_beats_is_only_picked_when_nothing_fresher_serves() -> None:
    clock = Clock()
    clock.advance(100)
    view = NodeView(clock.seconds, stale_after=3)
    view.update([info("a", load=50, heartbeat=99), info("b", load=0, heartbeat=96.5), info("c", 0, 99, "ns")])
    assert {view.pick("sb") for _ in range(5)} == {"a:1865"}  # b is stale; c serves no switchboard
    view.update([info("b", load=0, heartbeat=90)])
    assert view.pick("sb") == "b:1865"  # stale, but the only one
    view.forget("b")
    assert view.pick("sb") is None and view.pick("ns") is None


# -- lookups in an outage --------------------------------------------------------------------------


class Failing:
    def __init__(self) -> None:
        self.fail = True

    def get(self, handle: str) -> Any:
        return fail(DirectoryUnavailable("down")) if self.fail else succeed(None)

    def get_many(self, handles: Any) -> Any:
        return fail(DirectoryUnavailable("down")) if self.fail else succeed({})


def test_lookups_count_as_offline_while_the_directory_fails_and_say_so_once(logged) -> None:
    inner = Failing()
    up = [True]
    directory = TolerantDirectory(inner, available=lambda: up[0])  # type: ignore[arg-type]
    results: list[Any] = []
    for _ in range(3):
        directory.get("ann@example.com").addCallback(results.append)
        directory.get_many(["ann@example.com"]).addCallback(results.append)
    up[0] = False  # the bus knows Redis is away: no lookup is even tried
    directory.get("ann@example.com").addCallback(results.append)
    assert results == [None, {}, None, {}, None, {}, None]
    assert directory.degraded == 7
    warnings = [e for e in logged if "lookups fail" in e.get("log_format", "")]
    assert len(warnings) == 1
    up[0], inner.fail = True, False
    directory.get("ann@example.com")
    assert [e for e in logged if "lookups succeed again" in e.get("log_format", "")]


def test_a_write_is_waited_for_only_while_redis_is_reachable() -> None:
    """CHG waits for its record to be stored; in a known outage it is not held for the write's
    timeout (the node writes its records again once Redis is back)."""
    pending: list[Deferred[None]] = []

    class Slow:
        def put(self, record: Any) -> Deferred[None]:
            pending.append(Deferred())
            return pending[-1]

    up = [True]
    directory = TolerantDirectory(Slow(), available=lambda: up[0])  # type: ignore[arg-type]
    fired: list[Any] = []
    directory.put("r1").addCallback(fired.append)  # type: ignore[arg-type]
    assert fired == []
    pending[0].callback(None)
    assert fired == [None]
    up[0] = False
    directory.put("r2").addCallback(fired.append)  # type: ignore[arg-type]
    assert fired == [None, None] and len(pending) == 2  # tried, not waited for


# -- XFR SB cookies through Redis ------------------------------------------------------------------


@pytest.fixture
def two_nodes_tickets(reactor_pump: ReactorPump, redis_server: RedisServerProcess) -> Iterator[tuple[Any, Any]]:
    prefix = f"t{secrets.token_hex(4)}:"
    conns = [reactor_pump.call(connect, redis_server.url) for _ in range(2)]
    yield tuple(RedisSessionTickets(c, reactor_pump.reactor, cap=3, lifetime=60, prefix=prefix)  # type: ignore[misc]
                for c in conns)
    for c in conns:
        reactor_pump.call(c.disconnect)


def test_a_cookie_issued_on_one_node_is_redeemed_once_on_another(reactor_pump: ReactorPump,
                                                                   two_nodes_tickets: tuple[Any, Any]) -> None:
    ns_node, sb_node = two_nodes_tickets
    ticket = reactor_pump.call(ns_node.issue, "ann@example.com", "MSNP5", "Ann%20A")
    redeemed = reactor_pump.call(sb_node.redeem, ticket.cookie, "ann@example.com")
    assert (redeemed.handle, redeemed.dialect, redeemed.name, redeemed.session_id) == (
        "ann@example.com", "MSNP5", "Ann%20A", None)
    assert reactor_pump.call(sb_node.redeem, ticket.cookie, "ann@example.com") is None  # single use
    assert reactor_pump.call(ns_node.redeem, ticket.cookie, "ann@example.com") is None
    # Shown by someone else, a cookie is refused and burnt.
    other = reactor_pump.call(ns_node.issue, "ann@example.com", "MSNP6", "Ann")
    assert reactor_pump.call(sb_node.redeem, other.cookie, "bob@example.com") is None
    assert reactor_pump.call(sb_node.redeem, other.cookie, "ann@example.com") is None
    assert reactor_pump.call(sb_node.redeem, "1.2.3", "ann@example.com") is None


def test_the_unused_cookie_cap_holds_across_nodes(reactor_pump: ReactorPump,
                                                   two_nodes_tickets: tuple[Any, Any]) -> None:
    a, b = two_nodes_tickets
    held = [reactor_pump.call(node.issue, "ann@example.com", "MSNP6", "Ann") for node in (a, b, a)]
    assert all(t is not None for t in held)
    assert reactor_pump.call(b.issue, "ann@example.com", "MSNP6", "Ann") is None  # cap 3, whichever node
    assert reactor_pump.call(a.issue, "bob@example.com", "MSNP6", "Bob") is not None  # per account
    reactor_pump.call(b.redeem, held[0].cookie, "ann@example.com")  # used: no longer held
    assert reactor_pump.call(a.issue, "ann@example.com", "MSNP6", "Ann") is not None


def test_a_revoked_cookie_is_gone_and_frees_its_place(reactor_pump: ReactorPump,
                                                       two_nodes_tickets: tuple[Any, Any]) -> None:
    a, b = two_nodes_tickets
    held = [reactor_pump.call(a.issue, "cat@example.com", "MSNP6", "Cat") for _ in range(3)]
    reactor_pump.call(a.revoke, held[0].cookie, "cat@example.com")
    assert reactor_pump.call(b.issue, "cat@example.com", "MSNP6", "Cat") is not None
    assert reactor_pump.call(b.redeem, held[0].cookie, "cat@example.com") is None
