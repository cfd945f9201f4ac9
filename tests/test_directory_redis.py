"""The presence directory's contract, kept by the in-memory and the Redis directory alike; then
what only the Redis one does (a dead node's records, the shared count, Redis down).

The Redis directory runs on the real (global) reactor, pumped by the test (``reactor_pump``),
against a private redis-server; each test keeps to a key prefix of its own."""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from twisted.logger import LogEvent, formatEvent

from msnp6.cluster.connection import connect, parse_redis_url
from msnp6.directory import MemoryDirectory, PresenceRecord
from msnp6.directory.record import from_json, to_json
from msnp6.directory.redis import DirectoryUnavailable, RedisDirectory
from msnp6.testing import ReactorPump, RedisServerProcess


def record(handle: str, node: str = "a", session: str = "s1", **changes: Any) -> PresenceRecord:
    base = PresenceRecord(
        handle=handle, node=node, session=session, account_id=7, dialect="MSNP6", status="NLN",
        name="Zoë%20Ünïcode", blp="AL", allow=frozenset({"x@example.com", "y@example.com"}),
        block=frozenset(), phone_home="555%201234", phone_work=None, phone_mobile=None,
        mobile_allowed=False, email_enabled=True)
    return attrs.evolve(base, **changes)


@attrs.define
class Under:
    """A directory under test, called on the reactor thread (where its Deferreds fire)."""

    directory: Any
    call: Callable[..., Any]

    def get(self, handle: str) -> PresenceRecord | None:
        return self.call(self.directory.get, handle)  # type: ignore[no-any-return]

    def get_many(self, handles: list[str]) -> dict[str, PresenceRecord]:
        return self.call(self.directory.get_many, handles)  # type: ignore[no-any-return]

    def put(self, r: PresenceRecord) -> None:
        self.call(self.directory.put, r)

    def remove(self, handle: str, session: str) -> None:
        self.call(self.directory.remove, handle, session)

    def list_all(self) -> list[PresenceRecord]:
        return self.call(self.directory.list_all)  # type: ignore[no-any-return]

    def count(self) -> int:
        # Writes are fire-and-forget: a lookup answered after them has seen them (one connection,
        # in order), and the count they returned with them.
        self.get("nobody@example.com")
        return self.call(self.directory.count)  # type: ignore[no-any-return]


def prefix() -> str:
    return f"t{secrets.token_hex(4)}:"


@pytest.fixture
def redis_directory(reactor_pump: ReactorPump, redis_server: RedisServerProcess) -> Iterator[RedisDirectory]:
    conn = reactor_pump.call(connect, redis_server.url)
    yield RedisDirectory(conn, reactor_pump.reactor, prefix=prefix())
    reactor_pump.call(conn.disconnect)


@pytest.fixture(params=["memory", "redis"])
def under(request: pytest.FixtureRequest, reactor_pump: ReactorPump) -> Under:
    if request.param == "memory":
        return Under(MemoryDirectory(), reactor_pump.call)
    return Under(request.getfixturevalue("redis_directory"), reactor_pump.call)


# -- the contract


def test_get_and_get_many(under: Under) -> None:
    assert under.get("ann@example.com") is None
    ann, bob = record("ann@example.com"), record("bob@example.com", session="s2", status=None)
    under.put(ann)
    under.put(bob)
    assert under.get("ann@example.com") == ann
    assert under.get_many(["ann@example.com", "nobody@example.com", "bob@example.com", "ann@example.com"]) == {
        "ann@example.com": ann, "bob@example.com": bob}
    assert under.get_many([]) == {}


def test_remove_takes_only_the_session_it_names(under: Under) -> None:
    under.put(record("ann@example.com", session="s1"))
    under.remove("ann@example.com", "stale")
    assert under.get("ann@example.com") == record("ann@example.com", session="s1")
    under.remove("ann@example.com", "s1")
    assert under.get("ann@example.com") is None
    under.remove("ann@example.com", "s1")  # again: nothing to remove, no error
    assert under.get("ann@example.com") is None


def test_a_newer_login_replaces_and_survives_the_older_logout(under: Under) -> None:
    under.put(record("ann@example.com", node="a", session="s1"))
    newer = record("ann@example.com", node="b", session="s2", status="BSY")
    under.put(newer)
    assert under.get("ann@example.com") == newer
    under.remove("ann@example.com", "s1")
    assert under.get("ann@example.com") == newer


def test_count(under: Under) -> None:
    assert under.count() == 0
    under.put(record("ann@example.com"))
    under.put(record("bob@example.com"))
    under.put(record("ann@example.com", session="s9"))
    assert under.count() == 2
    under.remove("bob@example.com", "s1")
    assert under.count() == 1


def test_list_all(under: Under, monkeypatch: pytest.MonkeyPatch) -> None:
    assert under.list_all() == []
    # Past Redis's small-hash encoding (128 entries), where HSCAN takes several rounds.
    monkeypatch.setattr("msnp6.directory.redis.SCAN_BATCH", 20)
    records = [record(f"u{i:03d}@example.com", node="ab"[i % 2], session=f"s{i}", client_version="5.0.0540",
                      address=f"10.0.0.{i}:40000") for i in range(150)]
    for r in reversed(records):
        under.put(r)
    under.remove("u003@example.com", "s3")
    assert under.list_all() == [r for r in records if r.handle != "u003@example.com"]


# -- the Redis directory only


def test_record_json_round_trip() -> None:
    r = record("ann@example.com", phone_mobile="+1%20555", status=None)
    assert from_json(to_json(r)) == r
    seen = record("ann@example.com", client_version="5.0.0540", address="192.0.2.1:40000")
    assert from_json(to_json(seen)) == seen
    assert from_json(to_json(r)[:-1] + ',"from_a_newer_node":1}') == r
    with pytest.raises(ValueError):
        from_json('{"handle": "ann@example.com"}')


def test_remove_node_drops_only_that_nodes_current_records(redis_directory: RedisDirectory,
                                                            reactor_pump: ReactorPump) -> None:
    under = Under(redis_directory, reactor_pump.call)
    under.put(record("ann@example.com", node="a", session="a1"))
    under.put(record("bob@example.com", node="a", session="a2"))
    under.put(record("cat@example.com", node="b", session="b1"))
    under.put(record("bob@example.com", node="b", session="b2"))  # bob logged in again on b
    under.put(record("dan@example.com", node="a", session="a3"))
    under.remove("dan@example.com", "a3")
    redis, members = redis_directory.redis, redis_directory.node_key
    # The node sets follow the records: bob moved to b, dan left.
    assert reactor_pump.call(redis.smembers, members("a")) == {"ann@example.com"}
    assert reactor_pump.call(redis.smembers, members("b")) == {"bob@example.com", "cat@example.com"}
    # Even a stale membership (a set out of step) cannot drop a record that names another node.
    reactor_pump.call(redis.sadd, members("a"), "cat@example.com")

    assert reactor_pump.call(redis_directory.remove_node, "a") == [record("ann@example.com", node="a", session="a1")]
    assert under.get_many(["ann@example.com", "bob@example.com", "cat@example.com"]) == {
        "bob@example.com": record("bob@example.com", node="b", session="b2"),
        "cat@example.com": record("cat@example.com", node="b", session="b1")}
    assert under.count() == 2
    assert reactor_pump.call(redis_directory.remove_node, "a") == []
    assert [r.handle for r in reactor_pump.call(redis_directory.remove_node, "b")] == [
        "bob@example.com", "cat@example.com"]
    assert under.count() == 0


def test_count_follows_other_nodes(reactor_pump: ReactorPump, redis_server: RedisServerProcess) -> None:
    shared = prefix()
    conns = [reactor_pump.call(connect, redis_server.url) for _ in range(2)]
    a, b = (RedisDirectory(c, reactor_pump.reactor, prefix=shared, count_interval=0.1) for c in conns)
    try:
        reactor_pump.call(b.startService)
        on_a = Under(a, reactor_pump.call)
        on_a.put(record("ann@example.com"))
        assert on_a.get("ann@example.com") is not None  # the put has landed (b reads on its own connection)
        assert reactor_pump.call(b.refresh_count) == 1
        reactor_pump.call(a.remove, "ann@example.com", "s1")
        deadline = time.monotonic() + 10
        while reactor_pump.call(b.count) != 0 and time.monotonic() < deadline:
            reactor_pump.sleep(0.05)  # the LoopingCall re-reads it
        assert reactor_pump.call(b.count) == 0
    finally:
        reactor_pump.call(b.stopService)
        for c in conns:
            reactor_pump.call(c.disconnect)


def test_redis_down(reactor_pump: ReactorPump, tmp_path: Path, logged: list[LogEvent]) -> None:
    """Lookups fail with DirectoryUnavailable within the timeout; a write logs one line."""
    server = RedisServerProcess(tmp_path / "redis")
    server.start()
    conn = reactor_pump.call(connect, server.url)
    directory = RedisDirectory(conn, reactor_pump.reactor, prefix=prefix(), timeout=1.0)
    try:
        under = Under(directory, reactor_pump.call)
        under.put(record("ann@example.com"))
        assert under.get("ann@example.com") == record("ann@example.com")
        server.stop()
        with pytest.raises(DirectoryUnavailable):
            under.get("ann@example.com")
        with pytest.raises(DirectoryUnavailable):
            under.get_many(["ann@example.com"])
        with pytest.raises(DirectoryUnavailable):
            reactor_pump.call(directory.remove_node, "a")
        under.put(record("bob@example.com"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _failed_puts(logged):
            reactor_pump.sleep(0.05)
        assert len(_failed_puts(logged)) == 1
        assert "\n" not in _failed_puts(logged)[0]
    finally:
        reactor_pump.call(conn.disconnect)
        server.stop()


def _failed_puts(logged: list[LogEvent]) -> list[str]:
    return [text for e in list(logged) if "put of 'bob@example.com' failed" in (text := formatEvent(e))]


def test_parse_redis_url() -> None:
    assert parse_redis_url("redis://10.0.0.5:6380/3") == parse_redis_url("redis://10.0.0.5:6380/3/")
    address = parse_redis_url("redis://redis")
    assert (address.host, address.port, address.db) == ("redis", 6379, 0)
    for bad in ("memory:", "http://x:1/0", "redis://x:1/db", "redis:///0"):
        with pytest.raises(ValueError):
            parse_redis_url(bad)


def test_restore_keeps_the_later_of_two_sessions_and_says_which_it_replaced(
        redis_directory: RedisDirectory, reactor_pump: ReactorPump) -> None:
    under = Under(redis_directory, reactor_pump.call)
    under.put(record("ann@example.com", node="b", session="b1", since=200.0))  # a later login on b
    under.put(record("bob@example.com", node="b", session="b2", since=100.0))  # an earlier one on b
    restored = [record("ann@example.com", node="a", session="a1", since=150.0),
                record("bob@example.com", node="a", session="a2", since=150.0),
                record("cat@example.com", node="a", session="a3", since=150.0)]
    # ann: left alone (0: the restoring session must end); bob: replaced (2: b2 must end); cat: written (1).
    assert reactor_pump.call(redis_directory.restore, restored) == [0, 2, 1]
    assert under.get("ann@example.com").session == "b1"  # type: ignore[union-attr]
    assert under.get("bob@example.com").session == "a2"  # type: ignore[union-attr]
    redis, members = redis_directory.redis, redis_directory.node_key
    assert reactor_pump.call(redis.smembers, members("b")) == {"ann@example.com"}
    assert reactor_pump.call(redis.smembers, members("a")) == {"bob@example.com", "cat@example.com"}


def test_prune_drops_only_the_node_s_sessions_it_no_longer_holds(
        redis_directory: RedisDirectory, reactor_pump: ReactorPump) -> None:
    under = Under(redis_directory, reactor_pump.call)
    under.put(record("ann@example.com", node="a", session="a1"))
    under.put(record("bob@example.com", node="a", session="a2"))  # logged out; the remove was lost
    under.put(record("cat@example.com", node="b", session="b1"))
    dropped = reactor_pump.call(redis_directory.prune, "a", ["a1"])
    assert [r.handle for r in dropped] == ["bob@example.com"]
    assert set(under.get_many(["ann@example.com", "bob@example.com", "cat@example.com"])) == {
        "ann@example.com", "cat@example.com"}
    assert reactor_pump.call(redis_directory.prune, "a", ["a1"]) == []


def test_a_record_without_since_still_decodes() -> None:
    text = to_json(record("ann@example.com")).replace(',"since":0.0', "")
    assert '"since"' not in text
    assert from_json(text) == record("ann@example.com")
