"""Moderation on a StringTransport and a Clock: a disabled account's login, the last logins
written in one statement per few seconds (and at shutdown), the audit lines' fields."""
from __future__ import annotations

import pytest
from sqlalchemy import event

from msnp6.notification import NotificationProtocol
from msnp6.testing import connect, md5_hex, send_login, take_lines, unit_realm

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"


@pytest.fixture
def realm(tmp_path):
    return unit_realm(tmp_path, {ALICE: "Alice", BOB: "Bob", CAROL: "Carol"})


def audits(logged) -> list[dict]:
    return [e for e in logged if e.get("log_namespace") == "msnp6.audit"]


def updates(realm) -> list[str]:
    """The UPDATE statements the store runs from now on."""
    seen: list[str] = []
    event.listen(realm.store.core.engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: seen.append(statement)
                 if statement.startswith("UPDATE") else None)
    return seen


def last_login(realm, handle: str):
    return realm.store.core.account_details(handle).last_login_at


def test_a_disabled_account_gets_what_a_wrong_password_gets(realm, logged):
    realm.store.core.set_disabled(ALICE, True, "spam")
    for password in ("pw", "wrong"):
        ns, t = send_login(realm, ALICE, password)
        assert take_lines(t) == ["911 4"] and t.disconnecting and ns.handle is None
    assert [(e["audit"], e["account"], e["code"], e["reason"]) for e in audits(logged)] == [
        ("login_failed", ALICE, 911, "disabled")] * 2
    assert realm.events["login_failed"] == 2  # counted as failures, as a wrong password is
    realm.store.core.set_disabled(ALICE, False)
    ns, t = send_login(realm, ALICE)
    assert take_lines(t)[0].startswith(f"USR 4 OK {ALICE} ")


def test_last_logins_are_written_together_after_a_few_seconds(realm):
    statements = updates(realm)
    for handle in (ALICE, BOB, ALICE):
        send_login(realm, handle)
    assert statements == [] and last_login(realm, ALICE) is None  # nothing on the login path
    realm.clock.advance(realm.last_logins.interval)
    assert len(statements) == 1
    assert last_login(realm, ALICE) is not None and last_login(realm, BOB) is not None
    assert last_login(realm, CAROL) is None
    realm.clock.advance(60)
    assert len(statements) == 1  # idle: no timer, no writes


def test_last_logins_are_flushed_at_shutdown(realm):
    statements = updates(realm)
    send_login(realm, CAROL)
    realm.last_logins.startService()
    realm.last_logins.stopService()
    assert len(statements) == 1 and last_login(realm, CAROL) is not None
    realm.clock.advance(realm.last_logins.interval)
    assert len(statements) == 1  # the timer went with the flush


def test_logout_reasons(realm, logged):
    ns, t = send_login(realm, ALICE)
    ns.dataReceived(b"OUT\r\n")
    ns.connectionLost()
    ns, t = send_login(realm, BOB)
    ns.connectionLost()
    lines = [(e["audit"], e["account"], e.get("reason")) for e in audits(logged)]
    assert lines == [("login_ok", ALICE, None), ("logout", ALICE, "out"),
                     ("login_ok", BOB, None), ("logout", BOB, "hangup")]
    assert all(e["address"] == "192.168.1.1:54321" for e in audits(logged))


def test_a_connection_that_never_logged_in_leaves_no_logout(realm, logged):
    ns = NotificationProtocol(realm)
    connect(ns)
    ns.dataReceived(b"VER 1 MSNP6 CVR0\r\n")
    ns.connectionLost()
    assert audits(logged) == []


def test_a_disable_between_the_lookup_and_the_answer_still_refuses_the_login(realm, logged):
    ns = NotificationProtocol(realm)
    t = connect(ns)
    ns.dataReceived(f"VER 1 MSNP6 CVR0\r\nINF 2\r\nUSR 3 MD5 I {ALICE}\r\n".encode())
    salt = take_lines(t)[2].split()[4]
    # Disabled in SQL after USR I read the account, and no event for it reaches this node: the
    # snapshot the login loads after registering reads the account again.
    realm.store.core.set_disabled(ALICE, True)
    ns.dataReceived(f"USR 4 MD5 S {md5_hex(salt + 'pw')}\r\n".encode())
    assert take_lines(t) == ["911 4"] and t.disconnecting and ns.handle is None
    assert [(e["audit"], e["reason"]) for e in audits(logged)] == [("login_failed", "disabled")]
