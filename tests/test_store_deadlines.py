"""Every store call has a deadline (``--store-timeout``): the store's own behaviour on a fake
clock, the database-side bounds, the protocol answers with a ClockStore, and real servers over
TCP whose database is held locked by the test (SQLite and PostgreSQL)."""
from __future__ import annotations

import contextlib
import gc
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.logger import LogEvent, formatEvent
from twisted.python.failure import Failure

from msnp6.notification import NotificationProtocol
from msnp6.store.engine import bound_statements, make_engine
from msnp6.store.schema import open_database
from msnp6.store.store import Store, StoreTimeout
from msnp6.testing import (
    ClockStore,
    ServerProcess,
    send_login,
    take_lines,
    threaded_clock,
    unit_realm,
)

ALICE, BOB = "alice@example.com", "bob@example.com"
DEADLINE = 2.0


def texts(events: list[LogEvent]) -> list[str]:
    out = []
    for e in events:
        line = formatEvent(e)
        if e.get("log_failure") is not None:
            line += "\n" + e["log_failure"].getTraceback()
        out.append(line)
    return out


# -- the Store itself: a real thread pool, results brought back by the test --------------------


@pytest.fixture
def pooled(tmp_path: Path) -> Iterator[tuple[Store, Any]]:
    clock = threaded_clock()
    store = Store(make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}"), clock, threads=1, timeout=1.0)
    store.start()
    yield store, clock
    store.stop()


@pytest.mark.parametrize("late", ["result", "failure"])
def test_a_late_result_is_dropped_silently(pooled, logged, late):
    store, clock = pooled
    release = threading.Event()
    seen: list[tuple[str, float]] = []
    store.observe = lambda operation, seconds: seen.append((operation, seconds))

    running = threading.Event()

    def slow_call() -> str:
        running.set()
        release.wait(30)
        if late == "failure":
            raise RuntimeError("the database came back with an error")
        return "late"

    outcome: list[Failure] = []
    store.run(slow_call).addErrback(outcome.append)
    assert running.wait(10)  # a call that has not started by the deadline is skipped: see below
    clock.advance(0.999)
    assert outcome == []
    clock.advance(0.001)
    assert len(outcome) == 1 and outcome[0].check(StoreTimeout, DeferredTimeout)
    assert str(outcome[0].value) == "slow_call did not answer within 1 s"
    assert [op for op, _ in seen] == ["slow_call"] and store.timeouts == {"slow_call": 1}
    release.set()
    clock.pump_one()  # the thread's answer reaches the reactor thread: nobody hears of it
    del outcome[:]
    gc.collect()
    logs = texts(logged)
    assert not [line for line in logs if "Unhandled" in line], logs
    assert [line for line in logs if "did not answer" in line] == ["store call slow_call did not answer within 1 s"]


def test_a_call_that_timed_out_in_the_queue_is_never_started(pooled):
    store, clock = pooled
    release = threading.Event()
    running = threading.Event()
    started: list[str] = []

    def hold() -> None:
        running.set()
        release.wait(30)

    store.run(hold).addErrback(lambda f: None)  # holds the one thread
    assert running.wait(10)
    queued = store.run(started.append, "written")
    queued.addErrback(lambda f: None)
    clock.advance(1)
    assert queued.called
    release.set()
    clock.pump_one()  # the first call's late result
    after: list[str] = []
    store.run(lambda: "next").addCallback(after.append)
    clock.pump_one()  # the pool has gone past the second call: skipped, not run late
    assert after == ["next"] and started == []


@pytest.mark.parametrize("in_time", [True, False])
def test_a_write_past_its_deadline_is_not_committed_late(pooled, in_time):
    store, clock = pooled
    engine = store.core.engine
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
    running, release = threading.Event(), threading.Event()

    def slow_write() -> None:
        with store.core.transaction() as conn:  # how every StoreCore write commits
            conn.exec_driver_sql("INSERT INTO probe VALUES (1)")
            running.set()
            release.wait(30)  # the database was slow; the commit comes after this

    outcome: list[object] = []
    store.run(slow_write).addBoth(outcome.append)
    assert running.wait(10)
    if not in_time:
        clock.advance(1)
        assert isinstance(outcome[0], Failure) and outcome[0].check(StoreTimeout)
    release.set()
    clock.pump_one()
    assert outcome == ([None] if in_time else [outcome[0]])
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM probe").scalar() == (1 if in_time else 0)


def test_no_deadline_with_timeout_zero(tmp_path):
    store = Store(make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}"), Clock(), timeout=0)
    assert store.timeout is None


def test_store_timeout_option_reaches_the_store(tmp_path):
    from twisted.python.usage import UsageError

    from msnp6.tap import Options, make_realm

    base = ["--db", f"sqlite:///{tmp_path / 'db.sqlite3'}", "--key-file", str(tmp_path / "key")]
    options = Options()
    options.parseOptions(base)
    assert options["store-timeout"] == 5.0
    options = Options()
    options.parseOptions([*base, "--store-timeout", "1.5"])
    realm, _ = make_realm(options, Clock())
    assert realm.config.store_timeout == 1.5 and realm.store.timeout == 1.5
    with pytest.raises(UsageError):
        Options().parseOptions([*base, "--store-timeout", "-1"])


# -- the database gives up at the same bound ----------------------------------------------------


def test_sqlite_busy_timeout_follows_the_deadline(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path / 'db.sqlite3'}")  # pools its schema-check connection
    Store(engine, Clock(), timeout=1.5)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1500
    assert make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}").connect().exec_driver_sql(
        "PRAGMA busy_timeout").scalar() == 30000  # msnp6-admin keeps its default


def test_postgresql_statement_timeout_keeps_the_urls_search_path(pg_schema_url):
    url = pg_schema_url()  # carries ?options=-csearch_path%3D<schema>
    schema = make_url(url).query["options"].split("=", 1)[1]
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (x int)"))  # unqualified: lands in the schema
    bound_statements(engine, 1.0)
    try:
        for e in (engine, engine.execution_options(isolation_level="AUTOCOMMIT")):  # StoreCore uses both
            with e.connect() as conn:
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "1s"
                assert conn.execute(text("SHOW search_path")).scalar() == schema
                assert conn.execute(text("SELECT count(*) FROM probe")).scalar() == 0
        with engine.connect() as conn:
            started = time.monotonic()
            with pytest.raises(OperationalError, match="statement timeout"):
                conn.execute(text("SELECT pg_sleep(5)"))
            assert time.monotonic() - started < 2.5
    finally:
        engine.dispose()


# -- protocol answers, on a Clock ------------------------------------------------------------------


@pytest.fixture
def realm(tmp_path):
    return unit_realm(tmp_path, {ALICE: "Alice", BOB: "Bob"}, store_factory=ClockStore, store_timeout=DEADLINE)


def start_login(realm, handle: str = ALICE, version: str = "MSNP6") -> tuple[NotificationProtocol, Any]:
    """VER, INF, USR I and USR S sent; the answer to USR S (trid 4) depends on the store."""
    return send_login(realm, handle, version=version)


def login(realm, handle: str = ALICE) -> tuple[NotificationProtocol, Any]:
    ns, t = start_login(realm, handle)
    realm.clock.advance(0)  # the lookup, then the lists
    assert take_lines(t)[0].startswith(f"USR 4 OK {handle} ")
    return ns, t


def test_a_stalled_command_gets_500_at_the_deadline_and_the_connection_goes_on(realm, logged):
    ns, t = login(realm)
    realm.store.stall("add_entry")
    ns.dataReceived(f"ADD 5 FL {BOB} Bob\r\nPNG\r\n".encode())
    realm.clock.advance(DEADLINE - 0.001)
    assert take_lines(t) == []  # PNG waits its turn behind ADD
    realm.clock.advance(0.001)
    assert take_lines(t) == ["500 5", "QNG"]
    ns.dataReceived(b"PNG\r\n")
    assert take_lines(t) == ["QNG"] and not t.disconnecting
    realm.store.resume()
    ns.dataReceived(f"ADD 6 FL {BOB} Bob\r\n".encode())
    realm.clock.advance(0)
    assert take_lines(t) == [f"ADD 6 FL 1 {BOB} Bob"]
    # The store logs it once (framing logs the 500's failure as well); no handle anywhere.
    store_logs = [formatEvent(e) for e in logged if e.get("log_namespace") == "msnp6.store.store"]
    assert store_logs == ["store call add_entry did not answer within 2 s"]
    logs = texts(logged)
    assert not [line for line in logs if BOB in line or "Unhandled" in line], logs


def test_a_result_just_inside_the_deadline_is_answered(realm):
    ns, t = login(realm)
    realm.store.delays["add_entry"] = DEADLINE - 0.01
    ns.dataReceived(f"ADD 5 FL {BOB} Bob\r\n".encode())
    realm.clock.advance(DEADLINE - 0.01)
    assert take_lines(t) == [f"ADD 5 FL 1 {BOB} Bob"]
    realm.clock.advance(1)
    assert take_lines(t) == [] and realm.store.timeouts == {}


@pytest.mark.parametrize("stalled", ["get_account", "get_snapshot"])
@pytest.mark.parametrize(("version", "code"), [("MSNP6", 915), ("MSNP5", 601)])
def test_a_stalled_login_gets_915_or_601_and_close(realm, stalled, version, code):
    realm.store.stall(stalled)
    ns, t = start_login(realm, version=version)
    realm.clock.advance(0)  # whatever is not stalled answers
    realm.clock.advance(DEADLINE - 0.001)
    assert take_lines(t) == [] and not t.disconnecting
    realm.clock.advance(0.001)
    assert take_lines(t) == [f"{code} 4"] and t.disconnecting
    ns.connectionLost(Failure(ConnectionDone()))
    assert realm.node.notification_session(ALICE) is None and realm.connections["ns"] == set()


def test_a_lookup_that_arrives_after_the_client_hung_up_registers_nothing(realm):
    realm.store.delays["get_account"] = 1
    ns, _ = start_login(realm)
    ns.connectionLost(Failure(ConnectionDone()))
    realm.clock.advance(1)
    assert realm.connections["ns"] == set()
    assert realm.node.notification_session(ALICE) is None


def test_lists_that_arrive_after_the_client_hung_up_register_nothing(realm):
    realm.store.delays["get_snapshot"] = 1
    ns, t = start_login(realm)
    realm.clock.advance(0)  # the lookup: the session is registered, its lists are loading
    assert realm.node.notification_session(ALICE) is ns
    ns.connectionLost(Failure(ConnectionDone()))
    realm.clock.advance(1)
    assert realm.node.notification_session(ALICE) is None and realm.connections["ns"] == set()
    assert take_lines(t) == []


def test_logins_answered_in_the_other_order_both_complete(realm):
    realm.store.delays["get_account"] = 2
    alice, ta = start_login(realm, ALICE)
    realm.store.delays["get_account"] = 0.5
    bob, tb = start_login(realm, BOB)
    realm.clock.advance(0.5)
    assert take_lines(tb)[0] == "USR 4 OK bob@example.com Bob 1" and take_lines(ta) == []
    realm.clock.advance(1.5)
    assert take_lines(ta)[0] == "USR 4 OK alice@example.com Alice 1"
    assert realm.node.notification_session(ALICE) is alice and realm.node.notification_session(BOB) is bob
    assert realm.store.asked == ["get_account", "get_account", "get_snapshot", "get_snapshot"]


# -- real servers over TCP, their database held locked by the test --------------------------------


@pytest.fixture(scope="module")
def deadline_server(database, key_file, tmp_path_factory) -> Iterator[ServerProcess]:
    proc = ServerProcess(database.url, key_file, tmp_path_factory.mktemp(f"deadline-{database.backend}"),
                         extra_args=["--store-timeout", "1"])
    proc.start()
    yield proc
    proc.stop()


@contextlib.contextmanager
def database_locked(database) -> Iterator[None]:
    """Hold the write lock (SQLite) or an exclusive lock on ``accounts`` (PostgreSQL) until the
    block ends, whatever happens in it."""
    if database.backend == "sqlite":
        conn = sqlite3.connect(make_url(database.url).database, timeout=5, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
        finally:
            conn.rollback()
            conn.close()
        return
    engine = make_engine(database.url)
    try:
        with engine.connect() as conn:
            try:
                conn.execute(text("SET lock_timeout = '5s'"))  # our own wait is bounded too
                conn.execute(text("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE"))
                yield
            finally:
                conn.rollback()
    finally:
        engine.dispose()


def assert_clean_log(server: ServerProcess, operation: str) -> None:
    """The missed deadline was logged, as one line. PostgreSQL's ``statement_timeout`` is set to
    the same second as the store's own deadline, so on a busy machine either may fire first: the
    store's warning, or the statement cancelled by the database (a store failure line)."""
    deadline = time.monotonic() + 5
    while (f"store call {operation} did not answer within 1 s" not in server.log()
           and "canceling statement due to statement timeout" not in server.log()):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    assert "Unhandled error" not in server.log() and "Traceback" not in server.log()


def timed_recv(client, timeout: float = 5.0) -> tuple[str, float]:
    started = time.monotonic()
    line = client.recv(timeout).line
    return line, time.monotonic() - started


def test_list_change_past_the_deadline_gets_500_and_the_connection_goes_on(deadline_server, accounts, database):
    alice, bob = accounts.create(prefix="alice"), accounts.create(prefix="bob")
    with deadline_server.client() as c:
        c.login(alice, "hunter2")
        c.sync()
        with database_locked(database):
            t = c.next_trid()
            c.send(f"ADD {t} FL {bob} Bob")
            line, waited = timed_recv(c)
            assert line == f"500 {t}"
            assert 0.9 < waited < 2.0, waited
            print(f"\n{database.backend}: ADD answered 500 after {waited:.3f} s (deadline 1 s)")
            c.send("PNG")
            c.expect("QNG", timeout=2)
        t = c.next_trid()
        c.send(f"ADD {t} FL {bob} Bob")
        c.expect(f"ADD {t} FL 1 {bob} Bob")  # the ADD answered 500 was not committed late
    assert_clean_log(deadline_server, "add_entry")


@pytest.mark.parametrize(("versions", "code"), [("MSNP6 MSNP5 CVR0", 915), ("MSNP5 CVR0", 601)])
def test_login_past_the_deadline_gets_915_and_close(deadline_server, accounts, database, versions, code):
    if database.backend == "sqlite":
        pytest.skip("SQLite readers are not blocked by a writer (WAL): logins go through")
    handle = accounts.create()
    with deadline_server.client() as c, database_locked(database):
        started = time.monotonic()
        t, reply = c.attempt(handle, "hunter2", versions)
        waited = time.monotonic() - started
        assert reply.line == f"{code} {t}"
        c.expect_closed(timeout=2)
        assert 0.9 < waited < 2.0, waited
        print(f"\n{database.backend}: login answered {code} {waited:.3f} s after USR I (deadline 1 s)")
    with deadline_server.client() as c:
        c.login(handle, "hunter2")  # and all is well once the lock is gone
    assert_clean_log(deadline_server, "get_account")


def test_sqlite_login_goes_through_while_a_writer_holds_the_lock(deadline_server, accounts, database):
    if database.backend != "sqlite":
        pytest.skip("SQLite only")
    handle = accounts.create()
    with deadline_server.client() as c, database_locked(database):
        c.login(handle, "hunter2")
        assert c.sync()[0].line.startswith("SYN ")
