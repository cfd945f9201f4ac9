"""Graceful shutdown: SIGTERM sends OUT SSD to logged-in clients, closes everything else, finishes
the store's queued work within the bound, and the process exits 0."""
from __future__ import annotations

import threading
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock

from msnp6.core.realm import Config, Realm
from msnp6.shutdown import ClientsService, SequentialService, Shutdown, stop_store
from msnp6.store.engine import make_engine
from msnp6.store.store import Store
from msnp6.testing import ServerProcess, threaded_clock


def test_sigterm_sends_out_ssd_and_exits_0(database, key_file, accounts, tmp_path):
    alice, bob = accounts.create(password="pw"), accounts.create(password="pw")
    proc = ServerProcess(database.url, key_file, tmp_path, admin=True, extra_args=["--shutdown-timeout", "5"])
    proc.start()
    a, b = proc.client(), proc.client()
    a.login(alice, "pw")
    b.login(bob, "pw")
    waiting = proc.client()  # connected, never logged in
    ds = proc.client("ds")
    sb = proc.client("sb")
    # Connections still in the kernel's accept queue are reset when the listeners close: wait
    # until the server holds all of them.
    wait_for_connections(proc, {"ds": 1, "ns": 3, "sb": 1})
    assert proc.proc is not None
    proc.proc.terminate()  # SIGTERM, as `docker stop` sends
    for client in (a, b):
        replies = client.recv_until(lambda r: r.name == "OUT", timeout=20)
        assert replies[-1].line == "OUT SSD"
        client.expect_closed(timeout=20)
    waiting.expect("OUT SSD", timeout=20)
    waiting.expect_closed(timeout=20)
    ds.expect_closed(timeout=20)
    sb.expect_closed(timeout=20)
    assert proc.proc.wait(timeout=30) == 0
    assert proc.stop() == 0
    assert "OUT SSD to 3 notification clients" in proc.log()


def wait_for_connections(proc: ServerProcess, wanted: dict[str, int]) -> None:
    url = f"http://127.0.0.1:{proc.ports['admin']}/metrics"
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = r.read().decode()
        have = {
            s.labels["service"]: int(s.value)
            for family in text_string_to_metric_families(body) if family.name == "msnp6_connections"
            for s in family.samples
        }
        if all(have.get(k) == n for k, n in wanted.items()):
            return
        assert time.monotonic() < deadline, f"connections {have}, expected {wanted}"
        time.sleep(0.05)


# -- the pieces, on a fake clock -----------------------------------------------------------------




def test_store_stop_waits_for_queued_work(tmp_path):
    clock = threaded_clock()
    store = Store(make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}"), clock, threads=1)
    store.start()
    release = threading.Event()
    finished: list[str] = []

    def slow_write() -> None:
        release.wait(30)
        finished.append("written")

    store._pool.callInThread(slow_write)
    done = stop_store(store, clock, timeout=5)
    assert not done.called
    release.set()
    clock.pump_one()  # stop() came back: the pool ran everything queued first
    assert finished == ["written"] and done.called


def test_store_stop_gives_up_at_the_bound(tmp_path):
    clock = threaded_clock()
    store = Store(make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}"), clock, threads=1)
    store.start()
    release = threading.Event()
    store._pool.callInThread(release.wait, 30)  # a database call that hangs
    done = stop_store(store, clock, timeout=5)
    clock.advance(5)
    assert done.called  # the process may exit; the pool's threads are daemons
    assert all(t.daemon for t in store._pool.threads)
    release.set()


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True


class FakeConnection:
    """A connection whose peer never reads: close() does not make it go away."""

    def __init__(self, realm: Realm, service: str) -> None:
        self.realm = realm
        self.service = service
        self.host = "127.0.0.1"
        self.transport = FakeTransport()
        self.said: list[str] = []
        realm.connection_opened(self)

    def sign_out(self, reason: str) -> None:
        self.said.append(f"OUT {reason}")

    def close(self) -> None:
        self.said.append("close")


def _realm(clock: Clock) -> Realm:
    return Realm(Config(), clock, store=None, key=None)  # type: ignore[arg-type]


def test_clients_that_do_not_go_are_cut_off_at_the_deadline():
    clock = Clock()
    realm = _realm(clock)
    ns, sb, ds = FakeConnection(realm, "ns"), FakeConnection(realm, "sb"), FakeConnection(realm, "ds")
    clients = ClientsService(realm, clock, Shutdown(clock, timeout=4))
    clients.startService()
    done = clients.stopService()
    assert realm.draining
    assert ns.said == ["OUT SSD"] and sb.said == ["close"] and ds.said == ["close"]
    finished: list[object] = []
    done.addCallback(finished.append)
    clock.advance(1.9)
    assert not finished and not ns.transport.aborted
    clock.advance(0.2)  # half of the bound has passed
    assert finished and all(c.transport.aborted for c in (ns, sb, ds))


def test_clients_done_as_soon_as_all_are_gone():
    clock = Clock()
    realm = _realm(clock)
    conn = FakeConnection(realm, "ns")
    clients = ClientsService(realm, clock, Shutdown(clock, timeout=4))
    clients.startService()
    finished: list[object] = []
    clients.stopService().addCallback(finished.append)
    assert not finished
    realm.connection_closed(conn)
    clock.advance(0.1)
    assert finished and not conn.transport.aborted


def test_children_stop_one_after_another():
    from twisted.application import service
    from twisted.internet.defer import Deferred

    order: list[str] = []
    gates: dict[str, Deferred[None]] = {}

    class Step(service.Service):
        def __init__(self, name: str) -> None:
            self.name = name

        def stopService(self) -> Deferred[None]:
            super().stopService()
            order.append(self.name)
            gates[self.name] = Deferred()
            return gates[self.name]

    top = SequentialService()
    for name in ("store", "admin", "clients"):
        Step(name).setServiceParent(top)
    top.startService()
    finished: list[object] = []
    top.stopService().addCallback(finished.append)
    assert order == ["clients"]  # the store waits until the clients are gone
    gates["clients"].callback(None)
    assert order == ["clients", "admin"]
    gates["admin"].callback(None)
    assert not finished
    gates["store"].callback(None)
    assert order == ["clients", "admin", "store"] and finished
