"""Connection logic with StringTransport and a Clock: fast, deterministic, no sockets."""
from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from msnp6.auth import CredentialKey
from msnp6.core.realm import Config, Realm
from msnp6.dispatch import DispatchProtocol
from msnp6.notification import NotificationProtocol
from msnp6.store.schema import open_database
from msnp6.testing import ImmediateStore, md5_hex


@pytest.fixture
def realm(tmp_path):
    clock = Clock()
    clock.advance(1_700_000_000)
    key = CredentialKey.load(tmp_path / "key", create=True)
    store = ImmediateStore(open_database(f"sqlite:///{tmp_path / 'db.sqlite3'}"))
    store.core.create_account("alice@example.com", "Alice", key.seal("alice@example.com", "pw"))
    r = Realm(Config(login_timeout=60, challenge_delay=1, challenge_timeout=50), clock, store, key)
    r.ports.update(ds=1863, ns=1864, sb=1865)
    return r


def connect(proto):
    transport = StringTransport()
    proto.makeConnection(transport)
    return transport


def lines(transport) -> list[str]:
    out = transport.value().decode().split("\r\n")
    transport.clear()
    return out


def login(realm) -> tuple[NotificationProtocol, StringTransport]:
    ns = NotificationProtocol(realm)
    t = connect(ns)
    ns.dataReceived(b"VER 1 MSNP6 CVR0\r\nINF 2\r\nUSR 3 MD5 I alice@example.com\r\n")
    salt = lines(t)[2].split()[4]
    ns.dataReceived(f"USR 4 MD5 S {md5_hex(salt + 'pw')}\r\n".encode())
    assert lines(t)[0] == "USR 4 OK alice@example.com Alice 1"
    return ns, t


def test_dispatch_redirects_to_the_picked_notification_server(realm):
    realm.ns_picker = lambda handle: "192.0.2.20:1863"
    ds = DispatchProtocol(realm)
    t = connect(ds)
    ds.dataReceived(b"VER 1 MSNP6 MSNP5 MSNP4 CVR0\r\nINF 2\r\nUSR 3 MD5 I carol@example.org\r\n")
    assert lines(t) == ["VER 1 MSNP6 MSNP5 MSNP4 CVR0", "INF 2 MD5", "XFR 3 NS 192.0.2.20:1863 0", ""]
    assert t.disconnecting


def test_login_deadline_closes_idle_connections(realm):
    ns = NotificationProtocol(realm)
    t = connect(ns)
    realm.clock.advance(59)
    assert not t.disconnecting
    realm.clock.advance(2)
    assert t.disconnecting


def test_logged_in_connection_has_no_login_deadline(realm):
    ns, t = login(realm)
    realm.clock.advance(3600)
    assert not t.disconnecting


def test_challenge_follows_the_first_chg_and_expires(realm):
    ns, t = login(realm)
    ns.dataReceived(b"CHG 5 NLN\r\n")
    assert lines(t) == ["CHG 5 NLN", ""]
    realm.clock.advance(1)
    chl = lines(t)[0].split()
    assert chl[:2] == ["CHL", "0"]
    ns.dataReceived(b"CHG 6 AWY\r\n")  # a second CHG does not re-challenge
    realm.clock.advance(5)
    assert lines(t) == ["CHG 6 AWY", ""]
    realm.clock.advance(50)
    assert lines(t) == ["540 0", ""] and t.disconnecting


def test_answered_challenge_cancels_the_deadline(realm):
    ns, t = login(realm)
    ns.dataReceived(b"CHG 5 NLN\r\n")
    realm.clock.advance(1)
    challenge = lines(t)[1].split()[2]
    ns.dataReceived(b"QRY 9 msmsgs@msnmsgr.com 32\r\n" + md5_hex(challenge + "Q1P7W2E4J9R8U3S5").encode())
    assert lines(t) == ["QRY 9", ""]
    realm.clock.advance(100)
    assert not t.disconnecting


def test_invalid_status_gets_201(realm):
    ns, t = login(realm)
    ns.dataReceived(b"CHG 5 FLN\r\nCHG 6 nln\r\nCHG 7 XYZ\r\n")
    assert lines(t) == ["201 5", "201 6", "201 7", ""]
    assert not t.disconnecting


def test_store_failure_answers_500_and_keeps_the_connection(realm):
    ns, t = login(realm)

    def broken(*args):
        raise RuntimeError("database went away")

    realm.store.core.get_snapshot = broken
    ns.dataReceived(b"SYN 5 0\r\nPNG\r\n")
    assert lines(t) == ["500 5", "QNG", ""]
    assert not t.disconnecting


def test_second_login_replaces_the_first_in_the_registry(realm):
    first, t1 = login(realm)
    second, t2 = login(realm)
    assert lines(t1) == ["OUT OTH", ""] and t1.disconnecting
    assert realm.sessions.get("alice@example.com") is second
    first.connectionLost(None)
    assert realm.sessions.get("alice@example.com") is second
