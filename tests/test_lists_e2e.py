"""Contact lists, privacy and presence with several real clients over TCP (SQLite and PostgreSQL)."""
from __future__ import annotations

import threading

import pytest
from conftest import TOPOLOGIES, one_or_two_nodes

from msnp6.testing import ServerProcess


@pytest.fixture(params=TOPOLOGIES)
def server(request, server):
    """Every scenario runs on one node, then on two (the users of a test alternate between them)."""
    return one_or_two_nodes(request, server)


class Person:
    """One logged-in user: handle, display name and an open NS connection."""

    def __init__(self, server, accounts, name: str, status: str | None = "NLN", verified: bool = True) -> None:
        self.name = name
        self.handle = accounts.create(name=name, verified=verified, prefix=name.lower().split()[0])
        self.c = server.client()
        self.c.auto_challenge = True
        self.c.login(self.handle, "hunter2")
        self.dump = self.c.sync(0)
        self.iln: list[str] = []
        if status:
            self.iln = self.chg(status)

    def chg(self, status: str) -> list[str]:
        t, lines = self.c.command(f"CHG {{t}} {status}")
        assert lines[0] == f"CHG {t} {status}"
        return lines[1:]

    def do(self, line: str) -> tuple[int, list[str]]:
        return self.c.command(line)

    def quiet(self) -> list[str]:
        """Whatever was pushed to this user so far."""
        return self.c.fence()


@pytest.fixture
def people(server, accounts):
    made: list[Person] = []

    def make(name: str, status: str | None = "NLN", verified: bool = True) -> Person:
        p = Person(server, accounts, name, status, verified)
        made.append(p)
        return p

    yield make
    for p in made:
        p.c.close()


def enc(name: str) -> str:
    return name.replace(" ", "%20")


def test_add_fl_notifies_online_target_and_shows_presence(people):
    alice, bob = people("Alice A"), people("Bob B")
    t, lines = alice.do(f"ADD {{t}} FL {bob.handle} {enc(bob.name)}")
    assert lines == [
        f"ADD {t} FL 1 {bob.handle} Bob%20B",
        f"BPR 1 {bob.handle} PHH", f"BPR 1 {bob.handle} PHW", f"BPR 1 {bob.handle} PHM", f"BPR 1 {bob.handle} MOB N",
        f"ILN {t} NLN {bob.handle} Bob%20B",
    ]
    assert bob.quiet() == [f"ADD 0 RL 1 {alice.handle} Alice%20A"]
    # Bob is watched by Alice now: his status changes reach her.
    bob.chg("AWY")
    assert alice.quiet() == [f"NLN AWY {bob.handle} Bob%20B"]
    bob.chg("HDN")
    assert alice.quiet() == [f"FLN {bob.handle}"]
    bob.chg("BSY")
    assert alice.quiet() == [f"NLN BSY {bob.handle} Bob%20B"]
    bob.chg("BSY")  # the same status again: an echo, nobody told
    assert alice.quiet() == []


def test_offline_target_finds_rl_entry_and_bumped_version(server, accounts, people):
    alice = people("Alice")
    carol = accounts.create(name="Carol")  # offline
    t, lines = alice.do(f"ADD {{t}} FL {carol} Carol")
    assert lines[0] == f"ADD {t} FL 1 {carol} Carol"
    with server.client() as c:
        c.login(carol, "hunter2")
        dump = [r.line for r in c.sync(0)]
    assert dump[0].endswith(" 1") and any(l.endswith(f"RL 1 1 1 {alice.handle} Alice") for l in dump)


def test_full_dump_layout_byte_exact(server, accounts, people):
    alice, bob = people("Alice"), people("Bob")
    carol, dave = accounts.create(name="Carol"), accounts.create(name="Dave")
    bob.do("PRP {t} PHH 555%200100")
    bob.do("PRP {t} MOB Y")
    for line in (f"ADD {{t}} FL {bob.handle} Bobby", f"ADD {{t}} FL {carol} Carol", f"ADD {{t}} AL {bob.handle} Bob",
                 f"ADD {{t}} BL {dave} Dave", "PRP {t} PHW 1%20(555)%201234", "GTC {t} N"):
        alice.do(line)
    bob.do(f"ADD {{t}} FL {alice.handle} Alice")
    alice.quiet()
    with server.client() as c:
        c.login(alice.handle, "hunter2")  # Alice's second login (the first gets OUT OTH)
        dump = [r.line for r in c.sync(3)]
    t = dump[0].split()[1]
    v = "7"  # six changes of her own, and Bob putting her on his FL (her RL)
    assert dump == [
        f"SYN {t} {v}", f"GTC {t} {v} N", f"BLP {t} {v} AL",
        f"PRP {t} {v} PHH", f"PRP {t} {v} PHW 1%20(555)%201234", f"PRP {t} {v} PHM", f"PRP {t} {v} MOB N", f"PRP {t} {v} MBE N",
        f"LST {t} FL {v} 1 2 {bob.handle} Bobby",
        f"BPR {v} {bob.handle} PHH 555%200100", f"BPR {v} {bob.handle} PHW", f"BPR {v} {bob.handle} PHM", f"BPR {v} {bob.handle} MOB Y",
        f"LST {t} FL {v} 2 2 {carol} Carol",
        f"BPR {v} {carol} PHH", f"BPR {v} {carol} PHW", f"BPR {v} {carol} PHM", f"BPR {v} {carol} MOB N",
        f"LST {t} AL {v} 1 1 {bob.handle} Bob",
        f"LST {t} BL {v} 1 1 {dave} Dave",
        f"LST {t} RL {v} 1 1 {bob.handle} Bob",
    ]


def test_list_errors(people, accounts):
    alice = people("Alice")
    bob = accounts.create()
    t, lines = alice.do(f"ADD {{t}} AL {bob} {bob}")
    assert lines == [f"ADD {t} AL 1 {bob} {bob}"]
    t, lines = alice.do(f"ADD {{t}} AL {bob} {bob}")
    assert lines == [f"215 {t}"]
    t, lines = alice.do(f"ADD {{t}} BL {bob} {bob}")
    assert lines == [f"219 {t}"]
    t, lines = alice.do("ADD {t} FL a@b a@b")
    assert lines == [f"201 {t}"]
    t, lines = alice.do("ADD {t} FL nobody-at-all@example.com x")
    assert lines == [f"205 {t}"]
    t, lines = alice.do(f"REM {{t}} BL {bob}")
    assert lines == [f"216 {t}"]
    t, lines = alice.do("REM {t} FL never-added@example.com")
    assert lines == [f"216 {t}"]
    t, lines = alice.do("GTC {t} A")
    assert lines == [f"218 {t}"]
    t, lines = alice.do("BLP {t} AL")
    assert lines == [f"218 {t}"]
    t, lines = alice.do("BLP {t} XX")
    assert lines == [f"201 {t}"]
    t, lines = alice.do("REA {t} stranger@example.com Someone")
    assert lines == [f"216 {t}"]
    t, lines = alice.do("PRP {t} MBE Y")
    assert lines == [f"715 {t}"]
    t, lines = alice.do("PRP {t} MOB maybe")
    assert lines == [f"201 {t}"]
    # None of the refusals moved the version: the next change is 2.
    t, lines = alice.do(f"REM {{t}} AL {bob}")
    assert lines == [f"REM {t} AL 2 {bob}"]


@pytest.mark.parametrize("line", ["ADD {t} RL x@example.com x", "REM {t} RL x@example.com", "GTC {t} maybe",
                                  "ADD {t} FL x@example.com " + "n" * 400, "PRP {t} PHHH 1"])
def test_refused_edits_disconnect(people, line):
    alice = people("Alice")
    alice.c.send(line.format(t=99))
    alice.c.expect_closed()


def test_msnp7_style_group_id_on_add_is_ignored(people, accounts):
    alice, bob = people("Alice"), accounts.create()
    t, lines = alice.do(f"ADD {{t}} FL {bob} {bob} 0")
    assert lines[0] == f"ADD {t} FL 1 {bob} {bob}"


def test_rem_fl_tells_the_target(people):
    alice, bob = people("Alice"), people("Bob")
    alice.do(f"ADD {{t}} FL {bob.handle} Bob")
    bob.quiet()
    t, lines = alice.do(f"REM {{t}} FL {bob.handle}")
    assert lines == [f"REM {t} FL 2 {bob.handle}"]
    assert bob.quiet() == [f"REM 0 RL 2 {alice.handle}"]
    bob.chg("AWY")
    assert alice.quiet() == []  # no longer watching


def mutual(a: Person, b: Person) -> None:
    a.do(f"ADD {{t}} FL {b.handle} {enc(b.name)}")
    b.do(f"ADD {{t}} FL {a.handle} {enc(a.name)}")
    a.quiet(), b.quiet()


def test_first_chg_sends_iln_for_visible_contacts_only(server, accounts, people):
    alice, bob, carol = people("Alice", status=None), people("Bob"), people("Carol", status="HDN")
    mutual(alice, bob)
    mutual(alice, carol)
    t, lines = alice.c.command("CHG {t} NLN")
    assert lines == [f"CHG {t} NLN", f"ILN {t} NLN {bob.handle} Bob"]
    assert bob.quiet() == [f"NLN NLN {alice.handle} Alice"]
    assert carol.quiet() == [f"NLN NLN {alice.handle} Alice"]


def test_out_and_disconnect_send_fln(people, server, accounts):
    alice, bob, carol = people("Alice"), people("Bob"), people("Carol")
    mutual(alice, bob)
    mutual(alice, carol)
    bob.c.send("OUT")
    bob.c.expect("OUT")
    assert alice.quiet() == [f"FLN {bob.handle}"]
    carol.c.close()  # dropped without OUT: the server notices when the socket closes
    alice.c.expect(f"FLN {carol.handle}")


def test_out_oth_sends_fln_then_the_new_session_comes_online(people, server):
    alice, bob = people("Alice"), people("Bob")
    mutual(alice, bob)
    again = server.client()
    again.auto_challenge = True
    again.login(bob.handle, "hunter2")
    bob.c.expect("OUT OTH")
    assert alice.quiet() == [f"FLN {bob.handle}"]
    again.sync(0)
    again.command("CHG {t} NLN")
    assert alice.quiet() == [f"NLN NLN {bob.handle} Bob"]
    again.close()


def test_block_and_unblock_take_effect_at_once(people):
    alice, bob = people("Alice"), people("Bob")
    mutual(alice, bob)
    alice.do(f"ADD {{t}} BL {bob.handle} Bob")
    assert bob.quiet() == [f"FLN {alice.handle}"]
    alice.chg("AWY")
    assert bob.quiet() == []  # blocked: sees nothing
    t, lines = bob.do(f"ADD {{t}} FL {alice.handle} Alice")
    assert lines == [f"215 {t}"]
    alice.do(f"REM {{t}} BL {bob.handle}")
    assert bob.quiet() == [f"NLN AWY {alice.handle} Alice"]


def test_blp_bl_hides_from_everyone_not_on_al(people):
    alice, bob, carol = people("Alice"), people("Bob"), people("Carol")
    mutual(alice, bob)
    mutual(alice, carol)
    alice.do(f"ADD {{t}} AL {carol.handle} Carol")
    carol.quiet()
    t, lines = alice.do("BLP {t} BL")
    assert lines == [f"BLP {t} 6 BL"]  # FL, RL, FL, RL and AL changes came first
    assert bob.quiet() == [f"FLN {alice.handle}"]
    assert carol.quiet() == []
    alice.chg("BRB")
    assert bob.quiet() == [] and carol.quiet() == [f"NLN BRB {alice.handle} Alice"]
    alice.do(f"ADD {{t}} AL {bob.handle} Bob")
    assert bob.quiet() == [f"NLN BRB {alice.handle} Alice"]
    alice.do("BLP {t} AL")
    assert bob.quiet() == [] and carol.quiet() == []  # still allowed: nothing flips


def test_hidden_user_is_not_shown_when_added(people):
    alice, bob = people("Alice", status="HDN"), people("Bob")
    t, lines = bob.do(f"ADD {{t}} FL {alice.handle} Alice")
    assert not any(l.startswith("ILN") for l in lines)
    assert alice.quiet() == [f"ADD 0 RL 1 {bob.handle} Bob"]
    alice.chg("NLN")
    assert bob.quiet() == [f"NLN NLN {alice.handle} Alice"]


def test_rename_fans_out_and_persists(people, server):
    alice, bob = people("Alice"), people("Bob")
    mutual(alice, bob)
    t, lines = alice.do(f"REA {{t}} {alice.handle} Alice%20%E2%9C%93")
    assert lines == [f"REA {t} 3 {alice.handle} Alice%20%E2%9C%93"]  # after 2 changes by mutual()
    assert bob.quiet() == [f"NLN NLN {alice.handle} Alice%20%E2%9C%93"]
    t, lines = bob.do(f"REA {{t}} {alice.handle} My%20friend")
    assert lines == [f"REA {t} 3 {alice.handle} My%20friend"]
    with server.client() as c:
        assert c.attempt(alice.handle, "hunter2")[1].words[4] == "Alice%20%E2%9C%93"


def test_unverified_account_cannot_rename(people):
    eve = people("Eve", verified=False)
    t, lines = eve.do(f"REA {{t}} {eve.handle} Evil")
    assert lines == [f"209 {t}"]


def test_renaming_too_fast_gets_800(people):
    alice = people("Alice")
    codes = [alice.do(f"REA {{t}} {alice.handle} N{i}")[1][0].split()[0] for i in range(7)]
    assert codes == ["REA"] * 5 + ["800", "800"]


def test_phone_numbers_round_trip_and_reach_allowed_watchers(people, server):
    alice, bob, carol = people("Alice"), people("Bob"), people("Carol")
    mutual(alice, bob)
    mutual(alice, carol)
    alice.do(f"ADD {{t}} BL {carol.handle} Carol")
    carol.quiet()
    t, lines = alice.do("PRP {t} PHM 555%201234")
    assert lines == [f"PRP {t} 6 PHM 555%201234"]  # 4 changes by mutual() twice, then ADD BL
    assert bob.quiet() == [f"BPR 3 {alice.handle} PHM 555%201234"]
    assert carol.quiet() == []  # blocked watchers learn nothing
    t, lines = alice.do("PRP {t} PHM")
    assert lines == [f"PRP {t} 7 PHM"]
    assert bob.quiet() == [f"BPR 4 {alice.handle} PHM"]
    alice.do("PRP {t} PHH 555%209999")
    with server.client() as c:
        c.login(alice.handle, "hunter2")
        dump = [r.line for r in c.sync(0)]
    assert any(l.endswith(" PHH 555%209999") and l.startswith("PRP") for l in dump)


def test_lst_lists_one_list(people, accounts):
    alice, bob = people("Alice"), accounts.create(name="Bob")
    alice.do(f"ADD {{t}} AL {bob} Bob")
    t, lines = alice.do("LST {t} AL")
    assert lines == [f"LST {t} AL 1 1 1 {bob} Bob"]
    t, lines = alice.do("LST {t} RL")
    assert lines == [f"LST {t} RL 1 0 0"]


def test_versions_rise_by_one_and_survive_logout_and_restart(database, key_file, tmp_path, accounts):
    proc = ServerProcess(database.url, key_file, tmp_path)
    proc.start()
    try:
        alice, others = accounts.create(name="Alice"), [accounts.create() for _ in range(3)]
        with proc.client() as c:
            c.login(alice, "hunter2")
            c.sync(0)
            versions = [c.command(f"ADD {{t}} FL {o} x")[1][0].split()[3] for o in others]
            versions.append(c.command("GTC {t} N")[1][0].split()[2])
            versions.append(c.command(f"REM {{t}} FL {others[0]}")[1][0].split()[3])
            assert versions == ["1", "2", "3", "4", "5"]
        proc.restart()
        with proc.client() as c:
            c.login(alice, "hunter2")
            assert [r.line for r in c.sync(5)] == [f"SYN {c.trid} 5"]
            dump = [r.line for r in c.sync(4)]
            assert dump[0] == f"SYN {c.trid} 5" and dump[1] == f"GTC {c.trid} 5 N"
            assert sum(1 for l in dump if l.startswith(f"LST {c.trid} FL")) == 2
        with proc.client() as c:  # the people added have Alice on their RL, at version 1
            c.login(others[1], "hunter2")
            assert [r.line for r in c.sync(0)][-1] == f"LST {c.trid} RL 1 1 1 {alice} Alice"
    finally:
        proc.stop()


def test_concurrent_changes_never_lose_a_bump(server, accounts):
    """Two clients change lists at once, N times each, including adding each other and the same
    offline contact: every version ends at exactly the number of changes made to it."""
    n = 25
    a, b, target = accounts.create(), accounts.create(), accounts.create()
    clients = {}
    for h in (a, b):
        c = server.client()
        c.login(h, "hunter2")
        c.sync(0)
        clients[h] = c
    results: dict[str, list[str]] = {}

    def churn(me: str, other: str) -> None:
        c = clients[me]
        lines = []
        for _ in range(n):  # pipelined: all sent at once, answered in order
            lines += [f"ADD {c.next_trid()} FL {target} t", f"REM {c.next_trid()} FL {target}",
                      f"ADD {c.next_trid()} AL {other} o", f"REM {c.next_trid()} AL {other}"]
        c.send_raw(("\r\n".join(lines) + "\r\n").encode())
        replies: list[str] = []
        while len(replies) < len(lines):
            line = c.recv(timeout=30).line
            if not line.startswith("BPR "):  # ADD FL is followed by the contact's BPR lines
                replies.append(line)
        results[me] = replies

    threads = [threading.Thread(target=churn, args=(a, b)), threading.Thread(target=churn, args=(b, a))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for me in (a, b):
        versions = [int(line.split()[3]) for line in results[me]]
        assert versions == list(range(1, 4 * n + 1)), results[me][:6]
    assert accounts.store.get_account(target).list_version == 4 * n
    for c in clients.values():
        c.close()
