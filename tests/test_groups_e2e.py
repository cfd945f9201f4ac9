"""MSNP7 contact groups over real TCP against a running server (SQLite and PostgreSQL): each group
command and error, the SYN dump with groups, and one account on MSNP7, then MSNP6, then MSNP7."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from msnp6.testing import MsnpClient

MSNP7 = "MSNP7 MSNP6 MSNP5 MSNP4 CVR0"
MSNP6 = "MSNP6 MSNP5 MSNP4 CVR0"


class Session:
    """One logged-in NS connection (synced, not yet online: no ILN/CHL to read around)."""

    def __init__(self, server, handle: str, versions: str = MSNP7, cached: int = 0) -> None:
        self.handle = handle
        self.c: MsnpClient = server.client()
        self.c.login(handle, "hunter2", versions)
        self.dump = [r.line for r in self.c.sync(cached)]

    def do(self, line: str) -> tuple[int, list[str]]:
        return self.c.command(line)

    def reply(self, line: str) -> str:
        t, lines = self.c.command(line)
        assert len(lines) == 1, lines
        return lines[0].replace(f" {t} ", " t ", 1) if lines[0].split()[1] == str(t) else lines[0]


@pytest.fixture
def sessions(server) -> Iterator[list[Session]]:
    made: list[Session] = []
    yield made
    for s in made:
        s.c.close()


def login(server, sessions, handle: str, versions: str = MSNP7, cached: int = 0) -> Session:
    s = Session(server, handle, versions, cached)
    sessions.append(s)
    return s


def bpr(version: int, handle: str) -> list[str]:
    return [f"BPR {version} {handle} PHH", f"BPR {version} {handle} PHW", f"BPR {version} {handle} PHM",
            f"BPR {version} {handle} MOB N"]


def prp(t: str, v: int) -> list[str]:
    return [f"PRP {t} {v} PHH", f"PRP {t} {v} PHW", f"PRP {t} {v} PHM", f"PRP {t} {v} MOB N", f"PRP {t} {v} MBE N"]


def test_a_new_account_syncs_group_0_only(server, accounts, sessions):
    alice = login(server, sessions, accounts.create(name="Alice"))
    t = alice.dump[0].split()[1]
    assert alice.dump == [
        f"SYN {t} 0", f"GTC {t} 0 A", f"BLP {t} 0 AL", *prp(t, 0), f"LSG {t} 0 1 1 0 Other%20Contacts 0",
        f"LST {t} FL 0 0 0", f"LST {t} AL 0 0 0", f"LST {t} BL 0 0 0", f"LST {t} RL 0 0 0",
    ]


def test_group_commands_and_the_dump_they_leave(server, accounts, sessions):
    alice_h, bob, carol = accounts.create(name="Alice"), accounts.create(name="Bob"), accounts.create(name="Carol")
    alice = login(server, sessions, alice_h)
    assert alice.reply("ADG {t} Friends 0") == "ADG t 1 Friends 1 0"
    assert alice.reply("ADG {t} Co%20workers 0") == "ADG t 2 Co%20workers 2 0"
    assert alice.reply("REG {t} 2 Work 0") == "REG t 3 2 Work 0"
    assert alice.reply("REG {t} 0 Others 0") == "REG t 4 0 Others 0"  # group 0 may be renamed
    t, lines = alice.do(f"ADD {{t}} FL {bob} Bob 1")
    assert lines == [f"ADD {t} FL 5 {bob} Bob 1", *bpr(5, bob)]
    # Already on the FL: joining another group is no error, and shows no BPR again.
    assert alice.reply(f"ADD {{t}} FL {bob} Bob 2") == f"ADD t FL 6 {bob} Bob 2"
    t, lines = alice.do(f"ADD {{t}} FL {carol} Carol")  # no group given: group 0
    assert lines == [f"ADD {t} FL 7 {carol} Carol 0", *bpr(7, carol)]
    # Out of one group: the entry stays on the FL while it is in another.
    assert alice.reply(f"REM {{t}} FL {bob} 1") == f"REM t FL 8 {bob} 1"
    assert alice.reply(f"ADD {{t}} FL {bob} Bob 1") == f"ADD t FL 9 {bob} Bob 1"
    assert alice.reply("ADG {t} Spare 0") == "ADG t 10 Spare 3 0"
    t, lines = alice.do("LST {t} FL")  # LST FL carries the groups too
    assert lines == [f"LST {t} FL 10 1 2 {bob} Bob 1,2", f"LST {t} FL 10 2 2 {carol} Carol 0"]

    again = login(server, sessions, alice_h, cached=3)  # Alice's second login
    t = again.dump[0].split()[1]
    assert again.dump == [
        f"SYN {t} 10", f"GTC {t} 10 A", f"BLP {t} 10 AL", *prp(t, 10),
        f"LSG {t} 10 1 4 0 Others 0", f"LSG {t} 10 2 4 1 Friends 0", f"LSG {t} 10 3 4 2 Work 0",
        f"LSG {t} 10 4 4 3 Spare 0",
        f"LST {t} FL 10 1 2 {bob} Bob 1,2", *bpr(10, bob),
        f"LST {t} FL 10 2 2 {carol} Carol 0", *bpr(10, carol),
        f"LST {t} AL 10 0 0", f"LST {t} BL 10 0 0", f"LST {t} RL 10 0 0",
    ]
    # Nothing changed since: the same version gets no dump.
    assert [r.words[2] for r in again.c.sync(10)] == ["10"]


def test_removing_a_group_takes_its_only_members_off_the_fl(server, accounts, sessions):
    alice_h, bob_h, carol = accounts.create(name="Alice"), accounts.create(name="Bob"), accounts.create(name="Carol")
    alice, bob = login(server, sessions, alice_h), login(server, sessions, bob_h)
    alice.reply("ADG {t} Friends 0")                        # 1
    alice.do(f"ADD {{t}} FL {bob_h} Bob 1")                 # 2 (Bob's RL: his version 1)
    alice.do(f"ADD {{t}} FL {carol} Carol 1")               # 3
    alice.reply(f"ADD {{t}} FL {carol} Carol 0")            # 4
    assert bob.c.fence() == [f"ADD 0 RL 1 {alice_h} Alice"]
    t, lines = alice.do("RMG {t} 1")
    assert lines == [f"RMG {t} 5 1", f"REM 0 FL 5 {bob_h}"]  # Carol stays: she is in group 0 too
    assert bob.c.fence() == [f"REM 0 RL 2 {alice_h}"]
    t, lines = alice.do("LST {t} FL")
    assert lines == [f"LST {t} FL 5 1 1 {carol} Carol 0"]
    t, lines = alice.do("RMG {t} 1")  # gone already
    assert lines == [f"224 {t}"]


def test_group_errors(server, accounts, sessions):
    alice_h, bob, carol = accounts.create(name="Alice"), accounts.create(name="Bob"), accounts.create(name="Carol")
    alice = login(server, sessions, alice_h)
    alice.reply("ADG {t} Friends 0")
    alice.do(f"ADD {{t}} FL {bob} Bob 1")
    errors = {
        "RMG {t} 0": 230,                                   # group 0 stays
        "RMG {t} 5": 224,                                   # no such group
        "REG {t} 7 Name 0": 224,
        "ADG {t} " + "x" * 62 + " 0": 229,                  # over 61 bytes
        "REG {t} 1 " + "%20" * 21 + " 0": 229,              # 63 encoded bytes
        f"ADD {{t}} FL {carol} Carol 9": 224,              # no group 9
        f"ADD {{t}} FL {carol} Carol 99": 224,             # ids run 0..29
        "ADD {t} FL nobody-here@example.com Nobody 9": 205,  # 205 wins over 224
        "ADD {t} FL a@b Nobody 9": 201,
        f"ADD {{t}} FL {bob} Bob 1": 215,                  # already in that group
        f"REM {{t}} FL {bob} 0": 225,                      # not in that group
        f"REM {{t}} FL {carol} 1": 216,                    # not on the FL
        f"REM {{t}} FL {bob} 9": 224,
    }
    for line, code in errors.items():
        t, lines = alice.do(line)
        assert lines == [f"{code} {t}"], line
    # The list version did not move: two changes (ADG, ADD).
    assert alice.reply("ADG {t} Second 0") == "ADG t 3 Second 2 0"


def test_thirty_groups_at_most(server, accounts, sessions):
    alice = login(server, sessions, accounts.create(name="Alice"))
    for i in range(1, 30):
        assert alice.reply(f"ADG {{t}} G{i} 0") == f"ADG t {i} G{i} {i} 0"
    t, lines = alice.do("ADG {t} One%20more 0")
    assert lines == [f"223 {t}"]
    alice.reply("RMG {t} 7")
    assert alice.reply("ADG {t} Again 0") == "ADG t 31 Again 7 0"  # the lowest free id


@pytest.mark.parametrize("line", ["RMG {t} 30", "RMG {t} x", "REG {t} 31 Name 0", "ADD {t} FL {bob} Bob x",
                                  "ADG {t} " + "x" * 400 + " 0"])
def test_malformed_group_commands_disconnect(server, accounts, sessions, line):
    alice = login(server, sessions, accounts.create(name="Alice"))
    bob = accounts.create(name="Bob")
    alice.c.send(line.format(t=alice.c.next_trid(), bob=bob))
    alice.c.expect_closed()


def test_msnp7_then_msnp6_then_msnp7(server, accounts, sessions):
    """One account, one list version: the MSNP6 session sees a flat list, its changes keep the
    groups whole (ADD FL puts a contact in group 0, REM FL takes it out of every group)."""
    alice_h = accounts.create(name="Alice")
    bob, carol, dave = (accounts.create(name=n) for n in ("Bob", "Carol", "Dave"))
    first = login(server, sessions, alice_h, MSNP7)
    first.reply("ADG {t} Friends 0")                        # 1
    first.do(f"ADD {{t}} FL {bob} Bob 1")                   # 2
    first.do(f"ADD {{t}} FL {carol} Carol 1")               # 3
    first.reply(f"ADD {{t}} FL {carol} Carol 0")            # 4

    old = login(server, sessions, alice_h, MSNP6)  # the MSNP7 session gets OUT OTH
    first.c.expect("OUT OTH")
    t = old.dump[0].split()[1]
    assert old.dump == [
        f"SYN {t} 4", f"GTC {t} 4 A", f"BLP {t} 4 AL", *prp(t, 4),
        f"LST {t} FL 4 1 2 {bob} Bob", *bpr(4, bob), f"LST {t} FL 4 2 2 {carol} Carol", *bpr(4, carol),
        f"LST {t} AL 4 0 0", f"LST {t} BL 4 0 0", f"LST {t} RL 4 0 0",
    ]
    for line in ("ADG {t} Work 0", "RMG {t} 1", "REG {t} 1 Work 0"):  # no such commands in MSNP6
        t, lines = old.do(line)
        assert lines == [f"200 {t}"]
    t, lines = old.do(f"ADD {{t}} FL {dave} Dave")
    assert lines == [f"ADD {t} FL 5 {dave} Dave", *bpr(5, dave)]  # no group id for MSNP6
    t, lines = old.do(f"ADD {{t}} FL {bob} Bob")
    assert lines == [f"215 {t}"]  # on the FL already (in group 1): MSNP6 knows no groups to join
    assert old.reply(f"REM {{t}} FL {carol}") == f"REM t FL 6 {carol}"  # out of groups 0 and 1
    assert old.reply(f"REM {{t}} FL {dave} 0") == f"REM t FL 7 {dave}"  # a trailing id is ignored

    new = login(server, sessions, alice_h, MSNP7, cached=4)
    old.c.expect("OUT OTH")
    t = new.dump[0].split()[1]
    assert new.dump == [
        f"SYN {t} 7", f"GTC {t} 7 A", f"BLP {t} 7 AL", *prp(t, 7),
        f"LSG {t} 7 1 2 0 Other%20Contacts 0", f"LSG {t} 7 2 2 1 Friends 0",
        f"LST {t} FL 7 1 1 {bob} Bob 1", *bpr(7, bob),
        f"LST {t} AL 7 0 0", f"LST {t} BL 7 0 0", f"LST {t} RL 7 0 0",
    ]
    t, lines = new.do(f"ADD {{t}} FL {carol} Carol 1")
    assert lines == [f"ADD {t} FL 8 {carol} Carol 1", *bpr(8, carol)]
