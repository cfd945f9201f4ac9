"""Switchboard timing and limits with StringTransport and a Clock."""
from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from msnp6.core.limits import Limit, Limits
from msnp6.core.tickets import TicketBook
from msnp6.notification import NotificationProtocol
from msnp6.switchboard import SwitchboardProtocol
from msnp6.testing import connect, md5_hex, take_lines, unit_realm


@pytest.fixture
def realm(tmp_path):
    people = {f"{n}@example.com": n.upper() for n in ("a", "b", "c", "d")}
    return unit_realm(tmp_path, people, limits=Limits().replace(sb_participants=Limit(3)),
                      sb_idle_timeout=600)


take = take_lines


def online(realm, handle):
    ns = NotificationProtocol(realm)
    t = connect(ns)
    ns.dataReceived(f"VER 1 MSNP6 CVR0\r\nUSR 2 MD5 I {handle}\r\n".encode())
    salt = take(t)[1].split()[4]
    ns.dataReceived(f"USR 3 MD5 S {md5_hex(salt + 'pw')}\r\nCHG 4 NLN\r\n".encode())
    take(t)
    return ns, t


def open_room(realm, handle="a@example.com"):
    """``handle`` comes online, asks XFR SB and opens a room with the cookie."""
    ns, nt = online(realm, handle)
    ns.dataReceived(b"XFR 5 SB\r\n")
    cookie = take(nt)[0].split()[5]
    sb = SwitchboardProtocol(realm)
    st = connect(sb)
    sb.dataReceived(f"USR 1 {handle} {cookie}\r\n".encode())
    return sb, st


def join_room(realm):
    """a opens a room and rings b and c; both answer."""
    members = {}
    a, at = open_room(realm)
    members["a"] = (a, at)
    for i, name in enumerate(("b", "c"), start=2):
        ns, nt = online(realm, f"{name}@example.com")
        a.dataReceived(f"CAL {i} {name}@example.com\r\n".encode())
        rng = take(nt)[0].split()
        sb = SwitchboardProtocol(realm)
        st = connect(sb)
        sb.dataReceived(f"ANS 1 {name}@example.com {rng[4]} {rng[1]}\r\n".encode())
        members[name] = (sb, st)
    for _, t in members.values():
        take(t)
    return members


def test_idle_session_ends_with_bye_1(realm):
    members = join_room(realm)
    realm.clock.advance(599)
    members["a"][0].dataReceived(b"MSG 9 U 2\r\nhi")  # activity restarts the timer
    take(members["b"][1])
    realm.clock.advance(599)
    assert not members["b"][1].disconnecting
    realm.clock.advance(2)
    assert take(members["b"][1])[-2:] == ["BYE a@example.com 1", "BYE c@example.com 1"]
    assert all(t.disconnecting for _, t in members.values())
    assert len(realm.chats) == 0


def test_participant_limit(realm):
    members = join_room(realm)  # three people: the limit in this realm
    online(realm, "d@example.com")
    members["a"][0].dataReceived(b"CAL 7 d@example.com\r\n")
    assert take(members["a"][1]) == ["280 7"]


def test_unanswered_rings_stop_counting_toward_the_participant_limit(realm):
    """a rings b and c, who never answer; once their cookies expire the room holds only a, so a
    can ring d (an expired invitation no longer keeps a place)."""
    a, at = open_room(realm)
    for name in ("b", "c", "d"):
        online(realm, f"{name}@example.com")
    take(at)
    a.dataReceived(b"CAL 2 b@example.com\r\nCAL 3 c@example.com\r\n")
    assert [line.split()[:3] for line in take(at)] == [["CAL", "2", "RINGING"], ["CAL", "3", "RINGING"]]
    a.dataReceived(b"CAL 4 d@example.com\r\n")
    assert take(at) == ["280 4"]  # a, b and c: the limit in this realm
    realm.clock.advance(121)  # RNG cookies live 120 s
    a.dataReceived(b"CAL 5 d@example.com\r\n")
    assert take(at)[0].split()[:3] == ["CAL", "5", "RINGING"]


def test_cookies_expire_and_are_single_use():
    clock = Clock()
    book = TicketBook(clock, lifetime=120)
    t1 = book.issue("a@example.com", "MSNP6")
    assert book.redeem(t1.cookie, "a@example.com") is not None
    assert book.redeem(t1.cookie, "a@example.com") is None
    t2 = book.issue("a@example.com", "MSNP6", session_id=5)
    clock.advance(121)
    assert book.redeem(t2.cookie, "a@example.com", 5) is None
    t3 = book.issue("a@example.com", "MSNP6")
    assert book.redeem(t3.cookie, "b@example.com") is None  # bound to its account
    assert len({book.issue("a@example.com", "MSNP6").cookie for _ in range(200)}) == 200
