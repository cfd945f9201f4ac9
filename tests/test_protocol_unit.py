"""Connection logic with StringTransport and a Clock: fast, deterministic, no sockets."""
from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred

from msnp6.core.limits import Limit
from msnp6.dispatch import DispatchProtocol
from msnp6.events import ReverseListChanged
from msnp6.notification import NotificationProtocol
from msnp6.testing import connect, md5_hex, take_lines, unit_realm


@pytest.fixture
def realm(tmp_path):
    return unit_realm(tmp_path, {"alice@example.com": "Alice"}, login_timeout=60, challenge_delay=1,
                      challenge_timeout=50)


def lines(transport) -> list[str]:
    """The lines written so far, with the empty string after the last CRLF (shows it was complete)."""
    return take_lines(transport) + [""]


def login(realm) -> tuple[NotificationProtocol, Any]:
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

    realm.store.core.add_entry = broken
    ns.dataReceived(b"ADD 5 FL bob@example.com bob@example.com\r\nPNG\r\n")
    assert lines(t) == ["500 5", "QNG", ""]
    assert not t.disconnecting


def test_second_login_replaces_the_first_in_the_registry(realm):
    first, t1 = login(realm)
    second, t2 = login(realm)
    assert lines(t1) == ["OUT OTH", ""] and t1.disconnecting
    assert realm.node.notification_session("alice@example.com") is second
    first.connectionLost(None)
    assert realm.node.notification_session("alice@example.com") is second


def test_full_list_gets_210(realm):
    realm.config.limits = realm.config.limits.replace(fl=Limit(2), al=Limit(1), bl=Limit(1))
    for handle in ("b@example.com", "c@example.com", "d@example.com"):
        realm.store.core.create_account(handle, handle, realm.key.seal(handle, "pw"))
    ns, t = login(realm)
    ns.dataReceived(b"ADD 5 FL b@example.com b\r\nADD 6 FL c@example.com c\r\nADD 7 FL d@example.com d\r\n"
                    b"ADD 8 AL b@example.com b\r\nADD 9 AL c@example.com c\r\n")
    assert [l for l in lines(t) if l[:3] != "BPR"] == [
        "ADD 5 FL 1 b@example.com b", "ADD 6 FL 2 c@example.com c", "210 7", "ADD 8 AL 3 b@example.com b", "210 9", ""]


def test_changes_made_while_the_lists_load_are_applied_on_top(realm):
    """A session is registered before its lists are loaded; what others change meanwhile is
    queued and applied only when newer than the load."""
    ns = NotificationProtocol(realm)
    t = connect(ns)
    ns.dataReceived(b"VER 1 MSNP6 CVR0\r\nINF 2\r\nUSR 3 MD5 I alice@example.com\r\n")
    salt = lines(t)[2].split()[4]
    snapshot = realm.store.core.get_snapshot(1)  # loaded at version 0 ...
    pending: Deferred = Deferred()
    realm.store.get_snapshot = lambda account_id, groups=True: pending  # ... but delivered only later
    ns.dataReceived(f"USR 4 MD5 S {md5_hex(salt + 'pw')}\r\n".encode())
    assert realm.node.notification_session("alice@example.com") is ns and ns.state is None
    realm.bus.publish(["alice@example.com"], ReverseListChanged("old@example.com", "old", True, 0))
    realm.bus.publish(["alice@example.com"], ReverseListChanged("new@example.com", "new", True, 1))
    assert lines(t) == [""]
    pending.callback(snapshot)
    out = lines(t)
    assert out[0] == "USR 4 OK alice@example.com Alice 1" and out[-2] == "ADD 0 RL 1 new@example.com new"
    assert "old@example.com" not in ns.state.lists["RL"] and ns.state.version == 1


@pytest.mark.parametrize("versions,code", [("MSNP6 CVR0", "915"), ("MSNP5 CVR0", "601")])
def test_store_failure_during_login_gets_server_unavailable(realm, versions, code):
    def broken(*args):
        raise RuntimeError("database went away")

    realm.store.core.get_account = broken
    ns = NotificationProtocol(realm)
    t = connect(ns)
    ns.dataReceived(f"VER 1 {versions}\r\nUSR 2 MD5 I alice@example.com\r\n".encode())
    assert lines(t)[1].startswith("USR 2 MD5 S ")  # the salt never waits for the database
    ns.dataReceived(b"USR 3 MD5 S 0123456789abcdef0123456789abcdef\r\n")
    assert lines(t) == [f"{code} 3", ""] and t.disconnecting


@pytest.mark.parametrize("versions,code", [("MSNP6 CVR0", "916"), ("MSNP4 CVR0", "604")])
def test_login_while_shutting_down_gets_server_going_down(realm, versions, code):
    ns = NotificationProtocol(realm)
    t = connect(ns)
    ns.dataReceived(f"VER 1 {versions}\r\n".encode())
    realm.draining = True
    ns.dataReceived(b"USR 2 MD5 I alice@example.com\r\n")
    assert lines(t)[1:] == [f"{code} 2", ""] and t.disconnecting


def test_changes_answered_out_of_commit_order_are_all_applied(realm):
    """With several store threads, a notice caused by someone else (version 1) can arrive after
    the user's own change (version 2): it is still applied, and the version never goes back."""
    ns, t = login(realm)
    ns.stream.apply(2, lambda s: s.lists["FL"].__setitem__("carol@example.com", "carol"), own=True)
    assert ns.state.version == 0 and "carol@example.com" in ns.state.lists["FL"]  # held, but in effect
    realm.bus.publish(["alice@example.com"], ReverseListChanged("bob@example.com", "bob", True, 1))
    assert "bob@example.com" in ns.state.lists["RL"] and ns.state.version == 2
    assert lines(t)[-2] == "ADD 0 RL 1 bob@example.com bob"
