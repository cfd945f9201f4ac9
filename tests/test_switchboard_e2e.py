"""Switchboard chats over real TCP: XFR SB, USR, CAL, RNG, ANS, IRO/JOI, MSG/ACK/NAK, BYE."""
from __future__ import annotations

import pytest
from conftest import TOPOLOGIES, one_or_two_nodes

from msnp6.testing import MsnpClient


@pytest.fixture(params=TOPOLOGIES)
def server(request, server):
    """Every scenario runs on one node, then on two (the users of a test alternate between them)."""
    return one_or_two_nodes(request, server)

TEXT = (b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
        b"X-MMS-IM-Format: FN=Tahoma; EF=; CO=0; CS=0; PF=22\r\n\r\nare you there?")


class User:
    def __init__(self, server, accounts, name: str, status: str = "NLN") -> None:
        self.server = server
        self.name = name
        self.handle = accounts.create(name=name, prefix=name.lower())
        self.ns = server.client()
        self.ns.auto_challenge = True
        self.ns.login(self.handle, "hunter2")
        self.ns.sync(0)
        self.ns.command(f"CHG {{t}} {status}")
        self.sb: MsnpClient | None = None

    def open_chat(self) -> MsnpClient:
        """XFR SB on the NS, then USR on the switchboard."""
        t, lines = self.ns.command("XFR {t} SB")
        words = lines[0].split()
        assert words[:3] == ["XFR", str(t), "SB"] and words[4] == "CKI", lines
        host, port = words[3].split(":")  # this user's node's switchboard
        assert host == "127.0.0.1" and int(port) in self.server.sb_ports
        self.sb = MsnpClient(host, int(port))
        self.sb.send(f"USR 1 {self.handle} {words[5]}")
        self.sb.expect(f"USR 1 OK {self.handle} {self.name}")
        return self.sb

    def ring(self, callee: "User") -> int:
        assert self.sb is not None
        t = self.sb.next_trid() + 10
        self.sb.send(f"CAL {t} {callee.handle}")
        words = self.sb.recv().words
        assert words[:3] == ["CAL", str(t), "RINGING"], words
        return int(words[3])

    def answer(self) -> tuple[MsnpClient, list[str]]:
        """Read the RNG on the NS, connect and ANS; returns the IRO lines."""
        rng = self.ns.recv().words
        assert rng[0] == "RNG" and rng[3] == "CKI", rng
        session, address, cookie = rng[1], rng[2], rng[4]
        host, port = address.split(":")
        self.sb = MsnpClient(host, int(port))
        self.sb.send(f"ANS 7 {self.handle} {cookie} {session}")
        lines = [r.line for r in self.sb.recv_until(lambda r: r.line == "ANS 7 OK")]
        return self.sb, lines[:-1]


@pytest.fixture
def user(server, accounts):
    made: list[User] = []

    def make(name: str, status: str = "NLN") -> User:
        u = User(server, accounts, name, status)
        made.append(u)
        return u

    yield make
    for u in made:
        u.ns.close()
        if u.sb:
            u.sb.close()


def chat_of_two(user) -> tuple[User, User]:
    alice, bob = user("Alice"), user("Bob")
    alice.open_chat()
    session = alice.ring(bob)
    rng = bob.ns.recv().words
    assert rng[:2] == ["RNG", str(session)] and rng[5:] == [alice.handle, "Alice"]
    bob.sb = MsnpClient(*rng[2].split(":")[:1], int(rng[2].split(":")[1]))
    bob.sb.send(f"ANS 1 {bob.handle} {rng[4]} {session}")
    bob.sb.expect(f"IRO 1 1 1 {alice.handle} Alice")
    bob.sb.expect("ANS 1 OK")
    alice.sb.expect(f"JOI {bob.handle} Bob")
    return alice, bob


def test_two_party_chat_both_ways(user):
    alice, bob = chat_of_two(user)
    alice.sb.send(f"MSG 5 N {len(TEXT)}", TEXT)
    msg = bob.sb.recv()
    assert msg.line == f"MSG {alice.handle} Alice {len(TEXT)}" and msg.payload == TEXT
    reply = "héllo back 😀".encode()
    bob.sb.send(f"MSG 2 A {len(reply)}", reply)
    bob.sb.expect("ACK 2")
    msg = alice.sb.recv()
    assert msg.line == f"MSG {bob.handle} Bob {len(reply)}" and msg.payload == reply
    alice.sb.expect_silence(0.2)  # the sender never gets its own message back


def test_ack_modes(user):
    alice, bob = chat_of_two(user)
    for i, (ack, answer) in enumerate([("U", None), ("N", None), ("A", "ACK")], start=10):
        alice.sb.send(f"MSG {i} {ack} 2", b"hi")
        assert bob.sb.recv().payload == b"hi"
        if answer:
            alice.sb.expect(f"{answer} {i}")
    alice.sb.expect_silence(0.2)
    bob.sb.send("OUT")
    alice.sb.expect(f"BYE {bob.handle}")
    # Alone in the room: nothing is delivered, so N and A get NAK and U gets nothing.
    alice.sb.send("MSG 20 U 2", b"hi")
    alice.sb.send("MSG 21 N 2", b"hi")
    alice.sb.expect("NAK 21")
    alice.sb.send("MSG 22 A 2", b"hi")
    alice.sb.expect("NAK 22")


def test_bad_ack_letter_and_oversize_message_disconnect(user):
    alice, bob = chat_of_two(user)
    alice.sb.send("MSG 3 D 2", b"hi")  # D is MSNP9+
    alice.sb.expect_closed()
    bob.sb.expect(f"BYE {alice.handle}")
    carol = user("Carol")
    bob.sb.send(f"CAL 4 {carol.handle}")  # Carol has only just gone online (on any node)
    assert bob.sb.recv().line.startswith("CAL 4 RINGING")
    carol_sb, _ = carol.answer()
    big = b"x" * 1665
    carol_sb.send(f"MSG 5 N {len(big)}", big)
    carol_sb.expect_closed()
    bob.sb.expect(f"JOI {carol.handle} Carol")
    bob.sb.expect(f"BYE {carol.handle}")  # nothing of the oversize message was relayed
    exact = b"y" * 1664
    bob.sb.send(f"MSG 6 N {len(exact)}", exact)  # the cap itself is fine (alone now: NAK)
    bob.sb.expect("NAK 6")


def test_three_party_chat_with_joi_iro_bye(user):
    alice, bob = chat_of_two(user)
    carol = user("Carol")
    alice.sb.send(f"CAL 30 {carol.handle}")
    assert alice.sb.recv().line.startswith("CAL 30 RINGING")
    alice.sb.send(f"CAL 31 {bob.handle}")
    alice.sb.expect("215 31")
    carol_sb, iro = carol.answer()
    assert iro == [f"IRO 7 1 2 {alice.handle} Alice", f"IRO 7 2 2 {bob.handle} Bob"]
    alice.sb.expect(f"JOI {carol.handle} Carol")
    bob.sb.expect(f"JOI {carol.handle} Carol")
    alice.sb.send("MSG 32 A 5", b"hey y")
    alice.sb.expect("ACK 32")
    assert bob.sb.recv().payload == b"hey y" and carol_sb.recv().payload == b"hey y"
    bob.sb.send("OUT")
    bob.sb.expect_closed()
    alice.sb.expect(f"BYE {bob.handle}")
    carol_sb.expect(f"BYE {bob.handle}")
    carol_sb.send("MSG 2 N 3", b"bye")
    assert alice.sb.recv().line == f"MSG {carol.handle} Carol 3"


def test_abrupt_disconnect_leaves_the_others_chatting(user):
    alice, bob = chat_of_two(user)
    carol = user("Carol")
    alice.sb.send(f"CAL 40 {carol.handle}")
    alice.sb.recv()
    carol_sb, _ = carol.answer()
    alice.sb.recv(), bob.sb.recv()  # JOI carol
    bob.sb.close()  # no OUT
    alice.sb.expect(f"BYE {bob.handle}")
    carol_sb.expect(f"BYE {bob.handle}")
    alice.sb.send("MSG 41 A 4", b"ping")
    alice.sb.expect("ACK 41")
    assert carol_sb.recv().payload == b"ping"


def test_cal_errors(user, accounts):
    alice, bob = user("Alice"), user("Bob")
    hidden = user("Hidden", status="HDN")
    blocker = user("Blocker")
    blocker.ns.command(f"ADD {{t}} BL {alice.handle} {alice.handle}")
    strict = user("Strict")
    strict.ns.command("BLP {t} BL")  # only its (empty) AL may reach it
    offline = accounts.create()
    sb = alice.open_chat()
    cases = [("@@a", "208"), ("no-at-sign", "208"), (alice.handle, "215"), (offline, "217"),
             ("nobody-at-all@example.com", "217"), (hidden.handle, "217"), (blocker.handle, "217"),
             (strict.handle, "217")]
    for i, (handle, code) in enumerate(cases, start=50):
        sb.send(f"CAL {i} {handle}")
        sb.expect(f"{code} {i}")
    for u in (hidden, blocker, strict):
        assert u.ns.fence() == []  # none of them was rung
    sb.send(f"CAL 60 {bob.handle}")
    sb.expect_prefix("CAL 60 RINGING")
    sb.send(f"CAL 61 {bob.handle}")  # already invited, not joined yet
    sb.expect("215 61")


def test_calling_too_rapidly_gets_713(user):
    alice = user("Alice")
    sb = alice.open_chat()
    codes = []
    for i in range(25):
        sb.send(f"CAL {i + 100} nobody{i}@example.com")
        codes.append(sb.recv().words[0])
    assert codes[:20] == ["217"] * 20 and set(codes[20:]) == {"713"}


def test_xfr_sb_while_hidden_or_before_chg_gets_913(user, server, accounts):
    hidden = user("Hidden", status="HDN")
    t, lines = hidden.ns.command("XFR {t} SB")
    assert lines == [f"913 {t}"]
    with server.client() as c:
        c.login(accounts.create(), "hunter2")
        c.send("XFR 9 SB")
        c.expect("913 9")
        c.send("XFR 10 NS")
        c.expect("201 10")


def test_bad_and_reused_cookies_are_refused(user, server):
    alice = user("Alice")
    t, lines = alice.ns.command("XFR {t} SB")
    cookie = lines[0].split()[5]
    with MsnpClient("127.0.0.1", server.ports["sb"]) as sb:
        sb.send(f"USR 1 {alice.handle} 1234.5678.9")
        sb.expect("911 1")
        sb.expect_closed()
    with MsnpClient("127.0.0.1", server.ports["sb"]) as sb:  # someone else's handle with the cookie
        sb.send(f"USR 1 mallory@example.com {cookie}")
        sb.expect("911 1")
    t, lines = alice.ns.command("XFR {t} SB")
    cookie = lines[0].split()[5]
    with MsnpClient("127.0.0.1", server.ports["sb"]) as sb:
        sb.send(f"USR 1 {alice.handle} {cookie}")
        sb.expect_prefix("USR 1 OK")
    with MsnpClient("127.0.0.1", server.ports["sb"]) as sb:  # single use
        sb.send(f"USR 1 {alice.handle} {cookie}")
        sb.expect("911 1")
        sb.expect_closed()


def test_rng_cookie_is_bound_to_invitee_and_session(user, server):
    alice, bob, carol = user("Alice"), user("Bob"), user("Carol")
    alice.open_chat()
    session = alice.ring(bob)
    rng = bob.ns.recv().words
    cookie = rng[4]
    with MsnpClient("127.0.0.1", server.ports["sb"]) as sb:  # wrong session id
        sb.send(f"ANS 1 {bob.handle} {cookie} {session + 1}")
        sb.expect("911 1")
    session = alice.ring(carol)
    cookie = carol.ns.recv().words[4]
    with MsnpClient("127.0.0.1", server.ports["sb"]) as sb:  # Bob using Carol's cookie
        sb.send(f"ANS 1 {bob.handle} {cookie} {session}")
        sb.expect("911 1")
        sb.expect_closed()


def test_payloads_pass_byte_for_byte(user):
    alice, bob = chat_of_two(user)
    invite = (b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\n"
              b"Application-Name: File Transfer\r\nApplication-GUID: {5D3E02AB-6190-11d3-BBBB-00C04F795683}\r\n"
              b"Invitation-Command: INVITE\r\nInvitation-Cookie: 1234\r\nApplication-File: a.txt\r\n"
              b"Application-FileSize: 10\r\n\r\n")
    typing = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: x@example.com\r\n\r\n\r\n"
    binary = bytes(range(256)) + b"\r\nMSG fake 1 2\r\n" + bytes(range(255, -1, -1))
    for i, payload in enumerate([invite, typing, binary, b""], start=70):
        alice.sb.send(f"MSG {i} U {len(payload)}", payload)
        got = bob.sb.recv()
        assert got.payload == payload and got.line.endswith(f" {len(payload)}")


def test_rename_on_ns_shows_in_later_messages(user):
    alice, bob = chat_of_two(user)
    alice.ns.command(f"REA {{t}} {alice.handle} Alice%20Two")
    alice.sb.send("MSG 80 U 2", b"hi")
    assert bob.sb.recv().line == f"MSG {alice.handle} Alice%20Two 2"
