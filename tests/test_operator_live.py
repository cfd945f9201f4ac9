"""Operator commands against a running server (one node, and two nodes with the admin port on
node a): online users see each change at once, and afterwards every online session's SYN 0 dump
equals what SQL holds. Without a reachable server, msnp6-admin writes SQL itself."""
from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from conftest import TOPOLOGIES
from test_lists_e2e import Person

from msnp6.store.records import LISTS
from msnp6.store.store import StoreCore
from msnp6.testing import ServerProcess, TwoNodeServer, run_admin
from msnp6.testing_cluster import ClusterServer
from msnp6.wire import sync
from msnp6.wire.dialects import SUPPORTED


@pytest.fixture(scope="module", params=TOPOLOGIES)
def live(request, database, key_file, tmp_path_factory) -> Iterator[ServerProcess | ClusterServer]:
    if request.param == "cluster":  # the admin port is the DS process's: events reach the nodes over Redis
        yield request.getfixturevalue("cluster")
        return
    cls = ServerProcess if request.param == "one-node" else TwoNodeServer
    proc = cls(database.url, key_file, tmp_path_factory.mktemp("live"), admin=True,
               extra_args=["--challenge-timeout", "3"])
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def people(live, accounts):
    if isinstance(live, TwoNodeServer | ClusterServer):
        live.first_client_on_a()
    made: list[Person] = []

    def make(name: str) -> Person:
        made.append(Person(live, accounts, name))
        return made[-1]

    yield make
    for p in made:
        p.c.close()
    if isinstance(live, TwoNodeServer | ClusterServer):
        live.first_client_on_a()


def admin(live, database, key_file, *args: str, url: str | None = "live"):
    extra = ["--admin-url", f"http://127.0.0.1:{live.ports['admin']}" if url == "live" else url] if url else []
    return run_admin(["user", *args, *extra, "--admin-token-file", str(live.admin_token_file)], database.url, key_file)


def notify(live, database, key_file, handle: str):
    return run_admin(["mail", "notify", handle, "--from-addr", "x@example.com", "--admin-url",
                      f"http://127.0.0.1:{live.ports['admin']}", "--admin-token-file", str(live.admin_token_file)],
                     database.url, key_file)


def sql_dump(store: StoreCore, handle: str, trid: int) -> list[str]:
    """The SYN 0 answer an MSNP6 client should get, built from what SQL holds now."""
    account = store.get_account(handle)
    snapshot = store.get_snapshot(account.id)
    a = snapshot.account
    listing = sync.Listing(
        version=a.list_version, gtc=a.gtc, blp=a.blp,
        phones={"PHH": a.phone_home, "PHW": a.phone_work, "PHM": a.phone_mobile},
        mobile_allowed=a.mobile_allowed, mobile_enabled=a.mobile_enabled,
        lists={name: {e.contact: e.name for e in snapshot.lists[name]} for name in LISTS},
        contacts=snapshot.contacts)
    return [line.decode() for line in b"".join(sync.dump(trid, listing, SUPPORTED["MSNP6"])).split(b"\r\n")[:-1]]


def assert_in_step_with_sql(store: StoreCore, *online: Person) -> None:
    for person in online:
        got = [r.line for r in person.c.sync(0)]
        # The SYN's own trid: a CHL answered meanwhile (1 s after CHG) moves the client's counter on.
        assert got == sql_dump(store, person.handle, int(got[0].split()[1])), person.name


def test_delete_signs_the_user_out_and_takes_them_off_every_online_list(live, people, accounts, database, key_file):
    alice, bob, carol = people("Alice"), people("Bob"), people("Carol")
    alice.do(f"ADD {{t}} FL {bob.handle} Bob")
    bob.do(f"ADD {{t}} FL {alice.handle} Alice")
    carol.do(f"ADD {{t}} AL {bob.handle} Bob")
    carol.do(f"ADD {{t}} FL {alice.handle} Alice")
    for p in (alice, bob, carol):
        p.quiet()
    r = admin(live, database, key_file, "delete", bob.handle)
    assert r.returncode == 0 and r.stdout.strip() == f"deleted {bob.handle}", r.stderr
    bob.c.expect("OUT")
    bob.c.expect_closed()
    seen = alice.quiet()
    assert seen[0] == f"FLN {bob.handle}"  # gone from watchers first
    assert sorted(seen[1:]) == [f"REM 0 FL 4 {bob.handle}", f"REM 0 RL 4 {bob.handle}"]
    assert carol.quiet() == [f"REM 0 AL 3 {bob.handle}"]
    assert accounts.store.get_account(bob.handle) is None
    assert_in_step_with_sql(accounts.store, alice, carol)
    t, lines = alice.do(f"ADD {{t}} FL {bob.handle} Bob")  # the lists stay usable
    assert lines == [f"205 {t}"]


def test_verify_mail_and_mobile_take_effect_at_once(live, people, accounts, database, key_file):
    alice, bob = people("Alice"), people("Bob")
    bob.do(f"ADD {{t}} FL {alice.handle} Alice")
    alice.quiet()
    assert admin(live, database, key_file, "unverify", alice.handle).stdout.strip() == f"{alice.handle} unverified"
    t, lines = alice.do(f"REA {{t}} {alice.handle} Renamed")
    assert lines == [f"209 {t}"]  # an unverified account may not rename
    admin(live, database, key_file, "verify", alice.handle)
    t, lines = alice.do(f"REA {{t}} {alice.handle} Renamed")
    assert lines[0].startswith(f"REA {t} ") and bob.quiet() == [f"NLN NLN {alice.handle} Renamed"]

    admin(live, database, key_file, "mail", alice.handle, "on")
    r = notify(live, database, key_file, alice.handle)
    assert r.stdout.strip() == f"{alice.handle}: accepted", r.stderr
    assert alice.c.recv().line.startswith("MSG Hotmail Hotmail ")
    admin(live, database, key_file, "mail", alice.handle, "off")
    r = notify(live, database, key_file, alice.handle)
    assert r.stdout.strip() == f"{alice.handle}: accepted" and alice.quiet() == []

    admin(live, database, key_file, "mobile", alice.handle, "on")
    dump = [r.line for r in alice.c.sync(0)]
    assert f"PRP {alice.c.trid} {dump[0].split()[2]} MBE Y" in dump
    assert_in_step_with_sql(accounts.store, alice, bob)


def test_unknown_account_and_bad_requests(live, database, key_file):
    r = admin(live, database, key_file, "verify", "ghost@example.com")
    assert r.returncode == 1 and "no account ghost@example.com" in r.stderr


def test_without_a_server_the_database_is_written_and_seen_at_the_next_login(live, people, accounts, database,
                                                                           key_file):
    alice, bob = people("Alice"), people("Bob")
    alice.do(f"ADD {{t}} FL {bob.handle} Bob")
    alice.quiet()
    r = admin(live, database, key_file, "delete", bob.handle, url="http://127.0.0.1:1")
    assert r.returncode == 0 and "does not answer" in r.stderr and r.stdout.strip() == f"deleted {bob.handle}"
    assert accounts.store.get_account(bob.handle) is None
    assert alice.quiet() == []  # the running server was not told
    alice.c.close()
    with live.client() as c:  # the next login loads the lists from SQL
        c.login(alice.handle, "hunter2")
        assert [r.line for r in c.sync(0)] == sql_dump(accounts.store, alice.handle, c.trid)


# -- moderation: disable, kick, who (the user may be on the other node) -------------------------


def refused(live, handle: str, password: str) -> str:
    """The answer to a login with ``password``; the connection must close after it."""
    with live.client() as c:
        t, reply = c.attempt(handle, password)
        c.expect_closed()
        return reply.line.replace(str(t), "{t}")


def test_disable_ends_the_session_at_once_and_refuses_logins_until_enabled(live, people, accounts, database,
                                                                          key_file):
    alice, bob = people("Alice"), people("Bob")  # on two nodes where there are two
    alice.do(f"ADD {{t}} FL {bob.handle} Bob")
    alice.quiet(), bob.quiet()
    r = admin(live, database, key_file, "disable", bob.handle, "--reason", "spam")
    assert r.returncode == 0 and r.stdout.strip() == f"{bob.handle} disabled", r.stderr
    bob.c.expect("OUT")  # plain: not OTH (signed in elsewhere), not SSD (which makes clients reconnect)
    bob.c.expect_closed()
    assert alice.quiet() == [f"FLN {bob.handle}"]
    # The same answer with or without the right password: nothing tells a stranger it is banned.
    assert refused(live, bob.handle, "hunter2") == "911 {t}"
    assert refused(live, bob.handle, "wrong") == "911 {t}"
    r = admin(live, database, key_file, "enable", bob.handle)
    assert r.returncode == 0 and r.stdout.strip() == f"{bob.handle} enabled", r.stderr
    with live.client() as c:
        c.login(bob.handle, "hunter2")


def test_kick_ends_the_session_on_its_node(live, people, database, key_file):
    alice, bob = people("Alice"), people("Bob")
    alice.do(f"ADD {{t}} FL {bob.handle} Bob")
    alice.quiet(), bob.quiet()
    r = kick(live, database, key_file, bob.handle)
    assert r.returncode == 0 and r.stdout.startswith(f"{bob.handle}: signed out on node "), r.stderr
    bob.c.expect("OUT")
    bob.c.expect_closed()
    assert alice.quiet() == [f"FLN {bob.handle}"]
    r = kick(live, database, key_file, bob.handle)
    assert r.returncode == 1 and r.stderr.strip() == f"msnp6-admin: {bob.handle}: not online"
    with live.client() as c:  # a kick is no ban
        c.login(bob.handle, "hunter2")


def kick(live, database, key_file, handle: str):
    return run_admin(["session", "kick", handle, "--admin-url", f"http://127.0.0.1:{live.ports['admin']}",
                      "--admin-token-file", str(live.admin_token_file)], database.url, key_file)


def who(live, database, key_file) -> dict[str, list[str]]:
    r = run_admin(["who", "--admin-url", f"http://127.0.0.1:{live.ports['admin']}",
                   "--admin-token-file", str(live.admin_token_file)], database.url, key_file)
    assert r.returncode == 0, r.stderr
    return {line.split("\t")[0]: line.split("\t")[1:] for line in r.stdout.splitlines()}


def test_who_shows_every_nodes_sessions(live, people, database, key_file):
    alice, bob = people("Alice"), people("Bob")
    t, lines = bob.do(f"CVR {{t}} 0x0409 winnt 5.1 i386 MSNMSGR 4.7.2009 MSMSGS {bob.handle}")
    assert lines[0].startswith(f"CVR {t} 4.7.2009 ")
    bob.chg("AWY")
    sessions = who(live, database, key_file)
    rows = {p.handle: sessions[p.handle] for p in (alice, bob)}
    for p in (alice, bob):
        host, port = p.c.sock.getsockname()
        node, dialect, version, address, since, status = rows[p.handle]
        assert (dialect, address) == ("MSNP6", f"{host}:{port}")
        assert since.endswith("+00:00")
    assert rows[alice.handle][2] == "-" and rows[bob.handle][2] == "4.7.2009"
    assert rows[alice.handle][5] == "NLN" and rows[bob.handle][5] == "AWY"
    nodes = {rows[alice.handle][0], rows[bob.handle][0]}
    assert nodes == ({"a", "b"} if isinstance(live, TwoNodeServer | ClusterServer) else {"n1"})
    bob.c.close()
    deadline = time.monotonic() + 10
    while bob.handle in (now := who(live, database, key_file)) and time.monotonic() < deadline:
        pass  # the server has yet to see the close
    assert alice.handle in now and bob.handle not in now
