"""The rate limits counted in Redis (RedisWindows) against a private redis-server: two instances
(two nodes) share the windows exactly, windows expire, keys, prefixes and databases stay apart,
login failures lock out across nodes with the one-node exactness of pipelined guesses kept, and
Redis going away means per-node counting (said once) until it answers again.

The Redis side runs on the global reactor, pumped by the test (``reactor_pump``). A ``PING`` on a
windows instance's connection is a fence: Redis answers one connection in order, so once it
is answered every script sent before it has been answered too."""
from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from msnp6.cluster.connection import connect
from msnp6.cluster.windows import RedisWindows
from msnp6.core.limits import Limits
from msnp6.testing import ClockStore, ReactorPump, RedisServerProcess, send_login, take_lines, unit_realm

ME = "me@example.com"


def prefix() -> str:
    return f"t{secrets.token_hex(4)}:"


@pytest.fixture
def connections(reactor_pump: ReactorPump) -> Iterator[Callable[[str], Any]]:
    """``open(url)``: a txredisapi connection, disconnected after the test."""
    opened: list[Any] = []

    def open_(url: str) -> Any:
        conn = reactor_pump.call(connect, url)
        opened.append(conn)
        return conn

    yield open_
    for conn in opened:
        reactor_pump.call(conn.disconnect)


def allow_all(pump: ReactorPump, calls: list[tuple[RedisWindows, str, str]]) -> list[bool]:
    """Send every ``allow`` before any answer comes back, then wait for all of them."""
    answers: list[Any] = [None] * len(calls)
    for i, (windows, name, key) in enumerate(calls):
        windows.allow(name, key).addCallback(lambda ok, i=i: answers.__setitem__(i, ok))
    pump.until(lambda: None not in answers, "every allow answered")
    return answers


def test_two_nodes_together_allow_exactly_count(reactor_pump, redis_server, connections):
    limits = Limits().overridden(["cal=7/60", "rename=2/60"])
    shared = prefix()
    a = RedisWindows(connections(redis_server.url), reactor_pump.reactor, limits, prefix=shared)
    b = RedisWindows(connections(redis_server.url), reactor_pump.reactor, limits, prefix=shared)
    answers = allow_all(reactor_pump, [(node, "cal", ME) for _ in range(10) for node in (a, b)])
    assert answers.count(True) == 7
    assert reactor_pump.call(a.redis.zcard, a.key("cal", ME)) == 7
    # Another limit of the same account counts on its own.
    assert allow_all(reactor_pump, [(b, "rename", ME), (a, "rename", ME), (b, "rename", ME)]) == [True, True, False]
    # Each node's own counters hold what it was allowed (its fallback), not the other's.
    assert a.local.count("cal", ME) + b.local.count("cal", ME) == 7


def test_windows_expire(reactor_pump, redis_server, connections):
    limits = Limits().overridden(["page=2/0.4"])
    windows = RedisWindows(connections(redis_server.url), reactor_pump.reactor, limits, prefix=prefix())
    assert allow_all(reactor_pump, [(windows, "page", ME)] * 3) == [True, True, False]
    pttl = reactor_pump.call(windows.redis.execute_command, "PTTL", windows.key("page", ME))
    assert 0 < int(pttl) <= 400  # an idle key leaves
    reactor_pump.sleep(0.45)
    assert allow_all(reactor_pump, [(windows, "page", ME)] * 3) == [True, True, False]
    reactor_pump.sleep(0.45)
    assert not int(reactor_pump.call(windows.redis.exists, windows.key("page", ME)))


def test_keys_prefixes_and_databases_are_kept_apart(reactor_pump, redis_server, connections):
    limits = Limits().overridden(["xfr-sb=1/60"])
    p = prefix()
    db1_url = redis_server.url.rsplit("/", 1)[0] + "/1"
    here = RedisWindows(connections(redis_server.url), reactor_pump.reactor, limits, prefix=p)
    other_prefix = RedisWindows(connections(redis_server.url), reactor_pump.reactor, limits, prefix=prefix())
    other_db = RedisWindows(connections(db1_url), reactor_pump.reactor, limits, prefix=p)
    calls = [(here, "xfr-sb", ME), (here, "xfr-sb", "you@example.com"), (other_prefix, "xfr-sb", ME),
             (other_db, "xfr-sb", ME), (here, "xfr-sb", ME), (other_db, "xfr-sb", ME)]
    assert allow_all(reactor_pump, calls) == [True, True, True, True, False, False]


def test_login_failures_lock_out_across_nodes(reactor_pump, redis_server, connections):
    limits = Limits().overridden(["login-account=2/60", "login-address=3/60"])
    shared = prefix()
    a = RedisWindows(connections(redis_server.url), reactor_pump.reactor, limits, prefix=shared)
    b = RedisWindows(connections(redis_server.url), reactor_pump.reactor, limits, prefix=shared)

    def blocked(windows: RedisWindows, handle: str, address: str) -> str | None:
        check = reactor_pump.call(windows.login_check, handle, address)
        return check.blocked(handle, address)  # type: ignore[no-any-return]

    def failed(windows: RedisWindows, handle: str, address: str) -> None:
        windows.login_failed(handle, address)
        reactor_pump.call(windows.redis.ping)  # written (another node's read would race it)

    failed(a, ME, "10.0.0.1")
    assert blocked(b, ME, "10.0.0.1") is None
    failed(a, ME, "10.0.0.1")
    assert blocked(b, ME, "10.0.0.2") == "login-account"
    failed(b, "you@example.com", "10.0.0.1")
    assert blocked(a, "someone@example.com", "10.0.0.1") == "login-address"
    assert blocked(a, "someone@example.com", "10.0.0.2") is None


# -- the pipelined brute force of test_limits_unit, with the counts in Redis ----------------------


def _answer_pending(realm: Any, handle: str, password: str) -> Any:
    return send_login(realm, handle, password)[1]


def _settle(realm: Any) -> None:
    for _ in range(4):
        realm.clock.advance(0)


@pytest.mark.parametrize("counts_first", [True, False], ids=["counts-then-lookups", "lookups-then-counts"])
def test_pipelined_failures_are_each_counted_before_the_next_answer_is_checked(
        tmp_path, reactor_pump, redis_server, connections, counts_first):
    handle, limits, shared = "victim@example.com", Limits().overridden(["login-account=3/300"]), prefix()
    windows = RedisWindows(connections(redis_server.url), reactor_pump.reactor, limits, prefix=shared)
    realm = unit_realm(tmp_path / "a", {handle: "Victim"}, store_factory=ClockStore, limits=limits, windows=windows)
    guesses = [_answer_pending(realm, handle, f"guess{i}") for i in range(5)]
    right = _answer_pending(realm, handle, "pw")  # after the limit: never checked
    fence = lambda: reactor_pump.call(windows.redis.ping)  # noqa: E731 - every check answered
    for step in ((fence, lambda: _settle(realm)) if counts_first else (lambda: _settle(realm), fence)):
        step()
    assert [take_lines(t) for t in (*guesses, right)] == [["911 4"]] * 6
    assert realm.refusals.counts["login-account"] == 3
    reactor_pump.call(windows.redis.ping)  # the failures' writes are in
    assert reactor_pump.call(windows.redis.zcard, windows.key("login-account", handle)) == 3

    # Another node sharing the Redis refuses the right answer at once: the lockout is the cluster's.
    other = RedisWindows(connections(redis_server.url), reactor_pump.reactor, limits, prefix=shared)
    realm_b = unit_realm(tmp_path / "b", {handle: "Victim"}, store_factory=ClockStore, limits=limits, windows=other)
    late = _answer_pending(realm_b, handle, "pw")
    _settle(realm_b)
    reactor_pump.call(other.redis.ping)
    assert take_lines(late) == ["911 4"] and realm_b.refusals.counts["login-account"] == 1


def test_logins_in_flight_from_one_address_do_not_count_against_it(tmp_path, reactor_pump, redis_server, connections):
    handles = [f"user{i}@example.com" for i in range(6)]
    limits = Limits().overridden(["login-address=3/300"])
    windows = RedisWindows(connections(redis_server.url), reactor_pump.reactor, limits, prefix=prefix())
    realm = unit_realm(tmp_path, {h: h for h in handles}, store_factory=ClockStore, limits=limits, windows=windows)
    transports = [_answer_pending(realm, h, "pw") for h in handles]
    reactor_pump.call(windows.redis.ping)
    _settle(realm)
    for handle, t in zip(handles, transports, strict=True):
        assert take_lines(t)[0].startswith(f"USR 4 OK {handle} ")
    assert realm.refusals.counts["login-address"] == 0


# -- Redis down and back ------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServerProcess]:
    """A Redis of this test's own: it is stopped and started again."""
    server = RedisServerProcess(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def test_redis_down_falls_back_to_local_counting_and_says_so_once(reactor_pump, own_redis, connections):
    limits = Limits().overridden(["cal=2/60", "login-account=2/60"])
    lines: list[str] = []

    def observe(event: LogEvent) -> None:
        if event.get("log_namespace") == "msnp6.cluster.windows":
            lines.append(formatEvent(event))

    windows = RedisWindows(connections(own_redis.url), reactor_pump.reactor, limits, prefix=prefix(),
                           timeout=0.5, retry=0.2)
    globalLogPublisher.addObserver(observe)
    try:
        assert allow_all(reactor_pump, [(windows, "cal", ME)]) == [True]  # in Redis, and locally
        own_redis.stop()
        # The first call waits out the deadline, then this node counts alone: one more, then no.
        assert allow_all(reactor_pump, [(windows, "cal", ME)]) == [True]
        assert not windows.available
        assert allow_all(reactor_pump, [(windows, "cal", ME)] * 3) == [False] * 3
        windows.login_failed(ME, "10.0.0.1")
        windows.login_failed(ME, "10.0.0.1")
        check = reactor_pump.call(windows.login_check, ME, "10.0.0.1")
        assert check.blocked(ME, "10.0.0.1") == "login-account"
        reactor_pump.sleep(0.5)
        assert len(lines) == 1 and "counting on this node only" in lines[0], lines

        own_redis.start()  # empty: it was not saved
        reactor_pump.until(lambda: allow_all(reactor_pump, [(windows, "rename", ME)]) and windows.available,
                           "Redis answering again", timeout=20)
        assert len(lines) == 2 and "answers again" in lines[1], lines
        # Counted in Redis again: the one after recovery is there.
        assert allow_all(reactor_pump, [(windows, "page", ME)]) == [True]
        assert reactor_pump.call(windows.redis.zcard, windows.key("page", ME)) == 1
    finally:
        globalLogPublisher.removeObserver(observe)


def test_redis_slower_than_the_deadline_falls_back_and_recovers(reactor_pump, own_redis, connections):
    limits = Limits().overridden(["xfr-sb=1/60"])
    windows = RedisWindows(connections(own_redis.url), reactor_pump.reactor, limits, prefix=prefix(),
                           timeout=0.3, retry=0.1)
    admin = connections(own_redis.url)
    assert allow_all(reactor_pump, [(windows, "xfr-sb", ME)]) == [True]
    reactor_pump.call(admin.execute_command, "CLIENT", "PAUSE", "1500", "ALL")  # answers held back
    started = reactor_pump.reactor.seconds()
    # Redis says "at the limit" only after the pause: the deadline decides first, on local counts.
    assert allow_all(reactor_pump, [(windows, "xfr-sb", "you@example.com")]) == [True]
    assert reactor_pump.reactor.seconds() - started < 1.0 and not windows.available
    reactor_pump.until(lambda: allow_all(reactor_pump, [(windows, "rename", ME)]) is not None and windows.available,
                       "Redis answering after the pause", timeout=10)
    # Counted in Redis again; the late answer of the held-back call is dropped, its script ran.
    assert allow_all(reactor_pump, [(windows, "xfr-sb", "third@example.com")]) == [True]
    assert reactor_pump.call(admin.zcard, windows.key("xfr-sb", "third@example.com")) == 1
    assert reactor_pump.call(admin.zcard, windows.key("xfr-sb", "you@example.com")) == 1
