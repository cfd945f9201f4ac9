"""The realm on events, on StringTransport and a Clock: the wire form of every event, per-recipient
isolation, connection lifetime (a login that completes after hang-up), and the list-version rule
(a gap is held, then reloaded from SQL)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
from twisted.internet.defer import Deferred

from msnp6 import events as ev
from msnp6.bus.memory import MemoryBus
from msnp6.notification import NotificationProtocol
from msnp6.testing import connect, md5_hex, take_lines, unit_realm

ALICE, BOB, CAROL, DAVE = "alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"

SAMPLES = [
    ev.PresenceChanged(ALICE, "NLN", "Alice A."), ev.ReverseListChanged(BOB, "Bob", True, 3),
    ev.ContactPhoneChanged(BOB, "PHH", None, 4), ev.ContactDeleted(BOB, 5), ev.NameChanged("Ünïcode"),
    ev.Ring(12345678, "127.0.0.1:1865", "1.2.3", BOB, "Bob"), ev.SignedInElsewhere("a.7"),
    ev.AccountChanged("mobile_enabled", True, 9), ev.AccountDeleted(), ev.AccountDisabled(), ev.SessionKicked(),
    ev.MailArrived(2, "B", "b@x", "hi"),
    ev.PageArrived(BOB, 7, "call me"), ev.OwnPropertyChanged("PHM", "555%200100", 6),
]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.kind)
def test_every_event_survives_its_wire_form(event):
    assert ev.decode(ev.encode(event)) == event


def test_every_event_type_has_a_sample():
    assert {type(e) for e in SAMPLES} == set(ev.EVENT_TYPES.values())


def test_garbage_is_not_an_event():
    for data in (b"{", b'{"kind": "nope"}', b'{"kind": "presence", "handle": 1}', b"[]"):
        with pytest.raises(ev.BadEvent):
            ev.decode(data)


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.got: list[tuple[str, ev.Event]] = []

    def deliver(self, handle: str, event: ev.Event) -> None:
        if self.fail:
            raise RuntimeError("broken node")
        self.got.append((handle, event))


def test_bus_isolates_a_failing_recipient():
    bus = MemoryBus(serialise=True)
    good, bad = Recorder(), Recorder(fail=True)
    bus.subscribe(ALICE, bad)
    bus.subscribe(BOB, good)
    event = ev.PresenceChanged(CAROL, "NLN", "Carol")
    bus.publish([ALICE, BOB, DAVE], event)  # DAVE is held by nobody
    assert good.got == [(BOB, event)] and bus.failed == 1
    bus.unsubscribe(BOB, good)
    bus.publish([BOB], event)
    assert len(good.got) == 1


@pytest.fixture
def realm(tmp_path: Path):
    return unit_realm(tmp_path, {ALICE: "Alice", BOB: "Bob", CAROL: "Carol", DAVE: "Dave"},
                      challenge_delay=600, gap_timeout=2)


def login(realm: Any, handle: str, status: str | None = "NLN") -> tuple[NotificationProtocol, Any]:
    ns = NotificationProtocol(realm)
    t = connect(ns)
    ns.dataReceived(f"VER 1 MSNP6 CVR0\r\nUSR 2 MD5 I {handle}\r\n".encode())
    salt = take_lines(t)[1].split()[4]
    ns.dataReceived(f"USR 3 MD5 S {md5_hex(salt + 'pw')}\r\nSYN 4 0\r\n".encode())
    if status:
        ns.dataReceived(f"CHG 5 {status}\r\n".encode())
    take_lines(t)
    return ns, t


def login_while_lists_load(realm: Any) -> tuple[NotificationProtocol, Any, Deferred, Any]:
    """Alice's password is accepted; her lists (``snapshot``) arrive when ``pending`` fires."""
    ns = NotificationProtocol(realm)
    t = connect(ns)
    ns.dataReceived(f"VER 1 MSNP6 CVR0\r\nUSR 2 MD5 I {ALICE}\r\n".encode())
    salt = take_lines(t)[1].split()[4]
    pending: Deferred = Deferred()
    snapshot = realm.store.core.get_snapshot(1)
    realm.store.get_snapshot = lambda account_id, groups=True: pending
    ns.dataReceived(f"USR 3 MD5 S {md5_hex(salt + 'pw')}\r\n".encode())
    return ns, t, pending, snapshot


def test_a_failing_recipient_does_not_stop_the_fan_out_and_the_sender_gets_one_reply(realm):
    alice, at = login(realm, ALICE)
    watchers = {h: login(realm, h) for h in (BOB, CAROL, DAVE)}
    for ns, t in watchers.values():
        ns.dataReceived(f"ADD 6 FL {ALICE} Alice\r\n".encode())
        take_lines(t)
    take_lines(at)

    def broken(event: ev.Event) -> None:
        raise RuntimeError("this connection is broken")

    watchers[CAROL][0].on_event = broken  # type: ignore[method-assign]
    alice.dataReceived(b"CHG 7 BSY\r\n")
    assert take_lines(at) == ["CHG 7 BSY"]  # one reply, no 500
    assert take_lines(watchers[BOB][1]) == [f"NLN BSY {ALICE} Alice"]
    assert take_lines(watchers[DAVE][1]) == [f"NLN BSY {ALICE} Alice"]
    carol_transport = watchers[CAROL][1]
    assert carol_transport.disconnecting or getattr(carol_transport, "aborted", False)
    assert not realm.node.holds(CAROL)


def test_login_completing_after_hang_up_registers_nothing(realm):
    watcher, wt = login(realm, BOB)
    watcher.dataReceived(f"ADD 6 FL {ALICE} Alice\r\n".encode())
    take_lines(wt)
    ns, t, pending, snapshot = login_while_lists_load(realm)
    ns.connectionLost(None)  # the client hangs up while its lists load
    pending.callback(snapshot)
    assert realm.node.notification_session(ALICE) is None and not realm.node.holds(ALICE)
    assert realm.directory.count() == 1  # only Bob
    assert take_lines(t) == [] and take_lines(wt) == []  # nobody heard of a login


def test_account_lookup_completing_after_hang_up_registers_nothing(realm):
    ns = NotificationProtocol(realm)
    t = connect(ns)
    ns.dataReceived(f"VER 1 MSNP6 CVR0\r\nUSR 2 MD5 I {ALICE}\r\n".encode())
    salt = take_lines(t)[1].split()[4]
    account = realm.store.core.get_account(ALICE)
    pending: Deferred = Deferred()
    ns.account_lookup = pending  # the lookup started at USR I has not answered yet
    ns.dataReceived(f"USR 3 MD5 S {md5_hex(salt + 'pw')}\r\n".encode())
    ns.connectionLost(None)
    pending.callback(account)
    assert realm.node.notification_session(ALICE) is None and not realm.node.holds(ALICE) and realm.directory.count() == 0


def test_a_version_gap_is_held_then_reloaded_from_sql(realm):
    alice, at = login(realm, ALICE)
    # Bob adds Alice twice over (versions 1 and 2 of Alice's lists); the event for 1 is lost.
    realm.store.core.add_entry(2, "Bob", "FL", ALICE, "Alice", 600)
    realm.store.core.add_entry(3, "Carol", "FL", ALICE, "Alice", 600)
    realm.bus.publish([ALICE], ev.ReverseListChanged(CAROL, "Carol", True, 2))
    assert take_lines(at) == [f"ADD 0 RL 2 {CAROL} Carol"]  # the client hears at once
    assert alice.state.version == 0 and CAROL not in alice.state.lists["RL"]  # held, not guessed
    realm.clock.advance(1.9)
    assert alice.stream.reloads == 0
    realm.clock.advance(0.2)  # the gap timeout: reload from SQL
    assert alice.stream.reloads == 1 and alice.state.version == 2
    assert list(alice.state.lists["RL"]) == [BOB, CAROL]


def test_a_late_event_fills_the_gap_without_a_reload(realm):
    alice, at = login(realm, ALICE)
    realm.bus.publish([ALICE], ev.ReverseListChanged(CAROL, "Carol", True, 2))
    realm.bus.publish([ALICE], ev.ReverseListChanged(BOB, "Bob", True, 1))
    assert alice.state.version == 2 and list(alice.state.lists["RL"]) == [BOB, CAROL]
    realm.clock.advance(10)
    assert alice.stream.reloads == 0


def test_syn_during_a_gap_answers_from_sql(realm):
    alice, at = login(realm, ALICE)
    realm.store.core.add_entry(2, "Bob", "FL", ALICE, "Alice", 600)
    realm.store.core.add_entry(3, "Carol", "FL", ALICE, "Alice", 600)
    realm.bus.publish([ALICE], ev.ReverseListChanged(CAROL, "Carol", True, 2))
    take_lines(at)
    alice.dataReceived(b"SYN 9 0\r\n")
    out = take_lines(at)
    assert alice.stream.reloads == 1 and out[0] == "SYN 9 2"
    assert out[-2:] == [f"LST 9 RL 2 1 2 {BOB} Bob", f"LST 9 RL 2 2 2 {CAROL} Carol"]


def test_events_that_arrive_while_the_lists_load_are_queued(realm):
    ns, t, pending, snapshot = login_while_lists_load(realm)
    realm.bus.publish([ALICE], ev.Ring(1, "127.0.0.1:1865", "c", BOB, "Bob"))
    assert take_lines(t) == []
    pending.callback(snapshot)
    assert take_lines(t)[-1] == f"RNG 1 127.0.0.1:1865 CKI c {BOB} Bob"


def test_second_login_signs_the_first_out_through_the_bus(realm):
    first, ft = login(realm, ALICE)
    second, st = login(realm, ALICE)
    assert take_lines(ft) == ["OUT OTH"] and ft.disconnecting
    assert realm.node.notification_session(ALICE) is second
    record = realm.directory.get(ALICE).result
    assert record.session == second.session_id


def test_presence_record_is_plain_data(realm):
    alice, _ = login(realm, ALICE, "BSY")
    record = realm.directory.get(ALICE).result
    assert attrs.asdict(record)["status"] == "BSY" and record.node == realm.node.name
    assert record.seen_by(BOB) and record.allows("") is not None


def hold_directory_writes(realm: Any) -> Deferred:
    """From now on the directory's writes land, but report it only when the result fires."""
    stored: Deferred = Deferred()
    put = realm.directory.put
    realm.directory.put = lambda record: put(record) and stored
    return stored


def test_chg_is_answered_and_told_once_the_directory_holds_it(realm):
    """In a cluster the directory write is a Redis round trip: the echo and the watchers' NLN wait
    for it, so whoever hears of the new state and then CALs finds it stored."""
    alice, at = login(realm, ALICE)
    bob, bt = login(realm, BOB)
    bob.dataReceived(f"ADD 6 FL {ALICE} Alice\r\n".encode())
    take_lines(bt)
    take_lines(at)
    stored = hold_directory_writes(realm)
    alice.dataReceived(b"CHG 7 BSY\r\nPNG\r\n")
    assert take_lines(at) == [] and take_lines(bt) == []  # held: PNG waits behind CHG too
    stored.callback(None)
    assert take_lines(at) == ["CHG 7 BSY", "QNG"]
    assert take_lines(bt) == [f"NLN BSY {ALICE} Alice"]


def test_first_chg_echo_and_iln_wait_for_the_directory(realm):
    login(realm, BOB)
    alice, at = login(realm, ALICE, status=None)
    alice.dataReceived(f"ADD 5 FL {BOB} Bob\r\n".encode())
    take_lines(at)
    stored = hold_directory_writes(realm)
    alice.dataReceived(b"CHG 6 NLN\r\n")
    assert take_lines(at) == []
    stored.callback(None)
    assert take_lines(at) == ["CHG 6 NLN", f"ILN 6 NLN {BOB} Bob"]
