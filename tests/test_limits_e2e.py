"""Limits over real sockets: pipelined login guesses on many connections, every limit set with
--limit or MSNP6_LIMITS far below its default (cal, rename, page, invitation, xfr-sb, cookies-user,
fl, al, bl, sb-participants, login-account, login-address), and the connection caps
(connections-address, prelogin-total), each counted in /metrics as msnp6_limited_total{limit}."""
from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Accounts, Database
from prometheus_client.parser import text_string_to_metric_families

from msnp6.auth import CredentialKey
from msnp6.store.schema import open_database
from msnp6.store.store import StoreCore
from msnp6.testing import ConnectionClosed, MsnpClient, ServerProcess, md5_hex

VERSIONS = "MSNP6 MSNP5 MSNP4 CVR0"


def metric(server: ServerProcess, name: str, label: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.ports['admin']}/metrics", timeout=30) as r:
        body = r.read().decode()
    return {
        s.labels[label]: s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == name
    }


def limited(server: ServerProcess) -> dict[str, float]:
    """msnp6_limited_total by limit name (empty when the server has no such metric)."""
    return metric(server, "msnp6_limited_total", "limit")


def wait_for_no_connections(server: ServerProcess, timeout: float = 20.0) -> None:
    """Until the server has seen the end of every connection (start() probes its ports)."""
    deadline = time.monotonic() + timeout
    while sum(metric(server, "msnp6_connections", "service").values()):
        assert time.monotonic() < deadline, "the start-up probes' connections never went"
        time.sleep(0.05)


def sqlite_server(tmp_path: Path, key_file: Path, extra_args: list[str], env: dict[str, str] | None = None
                  ) -> tuple[ServerProcess, Accounts]:
    url = f"sqlite:///{tmp_path / 'msnp6.sqlite3'}"
    accounts = Accounts(StoreCore(open_database(url)), CredentialKey.load(key_file))
    proc = ServerProcess(url, key_file, tmp_path / "server", extra_args=extra_args, admin=True, env=env)
    proc.start()
    return proc, accounts


# -- brute force ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def brute_server(database: Database, key_file: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[ServerProcess]:
    """Default limits (login-account 10 per 5 minutes), a server of its own: the guesses below
    must not count against the shared server's per-address budget."""
    proc = ServerProcess(database.url, key_file, tmp_path_factory.mktemp(f"brute-{database.backend}"), admin=True)
    proc.start()
    yield proc
    proc.stop()


def test_pipelined_guesses_on_many_connections_are_counted_before_they_are_checked(brute_server, accounts):
    server, limit, guessers = brute_server, 10, 30
    handle = accounts.create(password="right-one")
    # Every guesser is connected and served first (so the server reads its socket along with the
    # others), then pipelines USR I and a wrong answer in one write: the answer arrives while the
    # account lookup its USR I started is still running (before the fix, every such answer was
    # checked: the limit was looked at on arrival and a failure counted only after its lookup).
    clients = [server.client() for _ in range(guessers)]
    for c in clients:
        c.negotiate(VERSIONS)
    burst = f"USR 3 MD5 I {handle}\r\nUSR 4 MD5 S {'0' * 32}\r\n".encode()
    for c in clients:
        c.send_raw(burst)
    for c in clients:
        assert c.recv().words[:4] == ["USR", "3", "MD5", "S"]
        c.expect("911 4")
        c.expect_closed()
        c.close()
    # Exactly `limit` answers were checked; every other one was refused unchecked.
    checked = sum(1 for line in server.log().splitlines()
                  if f"audit: login failed {handle} from " in line and line.endswith(": 911 bad_password"))
    assert (checked, limited(server)["login-account"]) == (limit, guessers - limit)
    # The window is used up: now even the right password is not checked.
    with server.client() as right:
        t, reply = right.attempt(handle, "right-one")
        assert reply.line == f"911 {t}"


# -- limits set by --limit and MSNP6_LIMITS ----------------------------------------------------


@pytest.fixture(scope="module")
def tuned(key_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Accounts]]:
    proc, accounts = sqlite_server(
        tmp_path_factory.mktemp("tuned"), key_file,
        ["--limit", "cal=2/600", "--limit", "rename=2/600", "--limit", "fl=2", "--limit", "login-account=3/300",
         "--limit", "page=2/600", "--limit", "al=2", "--limit", "sb-participants=2"],
        # cal here loses to the --limit above: the command line wins per name.
        env={"MSNP6_LIMITS": "xfr-sb=3/600, cookies-user=2, cal=50/10, invitation=2/600, bl=2"},
    )
    yield proc, accounts
    proc.stop()


def online(server: ServerProcess, accounts: Accounts, name: str = "Someone") -> tuple[str, MsnpClient]:
    handle = accounts.create(name=name)
    ns = server.client()
    ns.auto_challenge = True
    ns.login(handle, "hunter2")
    ns.sync(0)
    ns.command("CHG {t} NLN")
    return handle, ns


def xfr(ns: MsnpClient) -> list[str]:
    return ns.command("XFR {t} SB")[1][0].split()


def test_xfr_sb_rate_and_cookie_cap_from_the_environment(tuned):
    server, accounts = tuned
    handle, ns = online(server, accounts)
    first, second = xfr(ns), xfr(ns)
    assert first[2] == second[2] == "SB"
    third = xfr(ns)
    assert third == ["800", third[1]]  # cookies-user=2: two unused cookies held
    assert limited(server)["cookies-user"] == 1
    # Using a cookie gives its place back; then the rate (xfr-sb=3/600) is what stops the next.
    with MsnpClient("127.0.0.1", server.ports["sb"]) as sb:
        sb.send(f"USR 1 {handle} {first[5]}")
        sb.expect(f"USR 1 OK {handle} Someone")
    assert xfr(ns)[2] == "SB"
    with MsnpClient("127.0.0.1", server.ports["sb"]) as sb:
        sb.send(f"USR 1 {handle} {second[5]}")
        sb.expect(f"USR 1 OK {handle} Someone")
    fifth = xfr(ns)
    assert fifth == ["800", fifth[1]]
    assert limited(server)["xfr-sb"] == 1
    ns.close()


def test_cal_limit_from_the_command_line_wins_over_the_environment(tuned):
    server, accounts = tuned
    handle, ns = online(server, accounts)
    away = [accounts.create() for _ in range(3)]
    words = xfr(ns)
    with MsnpClient("127.0.0.1", server.ports["sb"]) as sb:
        sb.send(f"USR 1 {handle} {words[5]}")
        sb.expect(f"USR 1 OK {handle} Someone")
        for trid, callee in enumerate(away[:2], 2):
            sb.send(f"CAL {trid} {callee}")
            sb.expect(f"217 {trid}")  # offline; the call still counts
        sb.send(f"CAL 4 {away[2]}")
        sb.expect("713 4")
    assert limited(server)["cal"] == 1
    ns.close()


def test_rename_limit(tuned):
    server, accounts = tuned
    handle, ns = online(server, accounts)
    for n in (1, 2):
        t, lines = ns.command(f"REA {{t}} {handle} Name{n}")
        assert lines[0].startswith(f"REA {t} "), lines
    t, lines = ns.command(f"REA {{t}} {handle} Name3")
    assert lines == [f"800 {t}"]
    assert limited(server)["rename"] == 1
    ns.close()


def test_forward_list_cap(tuned):
    server, accounts = tuned
    handle, ns = online(server, accounts)
    contacts = [accounts.create() for _ in range(3)]
    for contact in contacts[:2]:
        t, lines = ns.command(f"ADD {{t}} FL {contact} {contact}")
        assert lines[0].startswith(f"ADD {t} FL "), lines
    t, lines = ns.command(f"ADD {{t}} FL {contacts[2]} {contacts[2]}")
    assert lines == [f"210 {t}"]
    assert limited(server)["fl"] == 1
    ns.close()


@pytest.mark.parametrize("list_name", ["AL", "BL"])
def test_allow_and_block_list_caps(tuned, list_name):
    """al=2 from --limit, bl=2 from MSNP6_LIMITS (both default to 1000)."""
    server, accounts = tuned
    _, ns = online(server, accounts)
    contacts = [accounts.create() for _ in range(3)]
    for contact in contacts[:2]:
        t, lines = ns.command(f"ADD {{t}} {list_name} {contact} {contact}")
        assert lines[0].startswith(f"ADD {t} {list_name} "), lines
    t, lines = ns.command(f"ADD {{t}} {list_name} {contacts[2]} {contacts[2]}")
    assert lines == [f"210 {t}"]
    assert limited(server)[list_name.lower()] == 1
    ns.close()


PAGE = b'<TEXT xml:space="preserve">are you there?</TEXT>'


def test_page_limit(tuned):
    """page=2/600 (default 10/60): two pages reach the target as IPGs, the third gets 800."""
    server, accounts = tuned
    _, alice = online(server, accounts, "Alice")
    bob_h, bob = online(server, accounts, "Bob")
    bob.command("PRP {t} MOB Y")  # pages reach only a target that allows them
    for _ in range(2):
        t = alice.next_trid()
        alice.send(f"PAG {t} {bob_h} {len(PAGE)}", PAGE)
        assert alice.fence() == []  # delivered: no reply to the sender
        assert bob.recv().name == "IPG"
    t = alice.next_trid()
    alice.send(f"PAG {t} {bob_h} {len(PAGE)}", PAGE)
    alice.expect(f"800 {t}")
    assert bob.fence() == []  # the refused page was not delivered
    assert limited(server)["page"] == 1
    alice.close()
    bob.close()


def test_invitation_limit_counts_snd_and_sdc_together(tuned):
    """invitation=2/600 from MSNP6_LIMITS (default 20/3600)."""
    server, accounts = tuned
    _, ns = online(server, accounts, "Inviter")
    t, lines = ns.command("SND {t} first-friend@example.org 0x0409 MSMSGS MSMSGS")
    assert lines == [f"SND {t} OK"]
    body = b"Come and chat with me!"
    t = ns.next_trid()
    ns.send(f"SDC {t} second-friend@example.org 0x0409 MSMSGS MSMSGS X X Inviter {len(body)}", body)
    ns.expect(f"SDC {t} OK")
    t, lines = ns.command("SND {t} third-friend@example.org 0x0409 MSMSGS MSMSGS")
    assert lines == [f"800 {t}"]
    t = ns.next_trid()
    ns.send(f"SDC {t} fourth-friend@example.org 0x0409 MSMSGS MSMSGS X X Inviter {len(body)}", body)
    ns.expect(f"800 {t}")
    assert limited(server)["invitation"] == 2
    invited = {i.recipient for i in accounts.store.list_invitations()}
    assert {"first-friend@example.org", "second-friend@example.org"} <= invited
    assert not {"third-friend@example.org", "fourth-friend@example.org"} & invited
    ns.close()


def test_switchboard_participant_cap(tuned):
    """sb-participants=2 (default 20): the caller and one ringing callee fill the session, so a
    CAL to a second online contact gets 280 and does not ring them."""
    server, accounts = tuned
    handle, ns = online(server, accounts, "Host")
    first_h, first = online(server, accounts, "First")
    second_h, second = online(server, accounts, "Second")
    words = xfr(ns)
    with MsnpClient("127.0.0.1", server.ports["sb"]) as sb:
        sb.send(f"USR 1 {handle} {words[5]}")
        sb.expect(f"USR 1 OK {handle} Host")
        sb.send(f"CAL 2 {first_h}")
        assert sb.recv().words[:3] == ["CAL", "2", "RINGING"]
        assert first.recv().name == "RNG"
        sb.send(f"CAL 3 {second_h}")
        sb.expect("280 3")
        assert second.fence() == []  # not rung
    assert limited(server)["sb-participants"] == 1
    for c in (ns, first, second):
        c.close()


def test_successful_logins_do_not_count(tuned):
    server, accounts = tuned
    handle = accounts.create()
    for _ in range(5):  # more than login-account=3 successful logins: never locked out
        with server.client() as c:
            c.login(handle, "hunter2")
    for _ in range(3):
        with server.client() as c:
            t, reply = c.attempt(handle, "wrong")
            assert reply.line == f"911 {t}"
    with server.client() as c:
        t, reply = c.attempt(handle, "hunter2")
        assert reply.line == f"911 {t}"  # three failures: the right password is not checked now


# -- connection caps ---------------------------------------------------------------------------


@pytest.fixture
def capped(key_file: Path, tmp_path: Path) -> Iterator[tuple[ServerProcess, Accounts]]:
    proc, accounts = sqlite_server(tmp_path, key_file,
                                   ["--limit", "connections-address=3", "--limit", "prelogin-total=5"])
    wait_for_no_connections(proc)  # they count as pre-login until the server sees them go
    yield proc, accounts
    proc.stop()


def ns_from(server: ServerProcess, source: str) -> MsnpClient:
    return MsnpClient("127.0.0.1", server.ports["ns"], source=source)


def answers(client: MsnpClient) -> bool:
    """The connection is served: VER gets its answer."""
    t = client.next_trid()
    try:
        client.send(f"VER {t} {VERSIONS}")
        return client.recv().line == f"VER {t} {VERSIONS}"
    except (ConnectionClosed, OSError):  # closed at once: EOF, or a reset for the VER sent
        return False


def test_one_address_holding_idle_connections_locks_out_only_itself(capped):
    server, accounts = capped
    idle = [ns_from(server, "127.0.0.2") for _ in range(3)]
    extra = ns_from(server, "127.0.0.2")
    assert not answers(extra)  # over connections-address: closed at once, nothing sent
    assert all(answers(c) for c in idle)  # the ones it holds still work
    handle = accounts.create()
    with ns_from(server, "127.0.0.3") as other:  # another address logs in meanwhile
        other.login(handle, "hunter2")
    assert limited(server)["connections-address"] == 1
    # The address gets its place back when one of its connections goes (closed by the server
    # here, so it is gone before the client sees the end).
    idle[0].send("BOGUS 1")
    idle[0].expect_closed()
    with ns_from(server, "127.0.0.2") as again:
        assert answers(again)
    for c in [*idle, extra]:
        c.close()


def test_prelogin_total_frees_up_on_login_and_close(capped):
    server, accounts = capped
    # Five pre-login connections from five addresses fill the node's pre-login budget.
    waiting = [ns_from(server, f"127.0.0.{n}") for n in range(10, 15)]
    assert all(answers(c) for c in waiting)
    late = ns_from(server, "127.0.0.20")
    assert not answers(late)
    assert limited(server)["prelogin-total"] == 1
    # One of them logs in: it no longer counts, so a new connection is served.
    handle = accounts.create()
    waiting[0].auto_challenge = True
    salt = waiting[0].request_salt(handle)
    waiting[0].send(f"USR 9 MD5 S {md5_hex(salt + 'hunter2')}")
    assert waiting[0].recv().words[:3] == ["USR", "9", "OK"]
    newcomer = ns_from(server, "127.0.0.21")
    assert answers(newcomer)
    # Full again; one closes (the server closes it): room for the next.
    assert not answers(ns_from(server, "127.0.0.22"))
    waiting[1].send("BOGUS 1")
    waiting[1].expect_closed()
    assert answers(ns_from(server, "127.0.0.23"))
    for c in [*waiting, late, newcomer]:
        c.close()


@pytest.fixture(scope="module")
def address_limited(key_file: Path, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[tuple[ServerProcess, Accounts]]:
    """login-address=3/300 (default 100/300), a server of its own: the shared one logs everyone in
    from 127.0.0.1, and its login-account test leaves failures there."""
    proc, accounts = sqlite_server(tmp_path_factory.mktemp("address-limited"), key_file,
                                   ["--limit", "login-address=3/300"])
    yield proc, accounts
    proc.stop()


def test_login_address_limit_across_accounts(address_limited):
    server, accounts = address_limited
    handles = [accounts.create() for _ in range(5)]

    def attempt(handle: str, password: str, source: str = "127.0.0.6") -> tuple[int, str]:
        with ns_from(server, source) as c:
            t, reply = c.attempt(handle, password)
            return t, reply.line

    # Wrong answers for three different accounts (login-account, 10 by default, sees one each),
    # with a right one in between that is checked and, being a success, does not count.
    for handle, password in [(handles[0], "wrong"), (handles[1], "wrong"), (handles[2], "hunter2"),
                             (handles[3], "wrong")]:
        t, line = attempt(handle, password)
        if password == "wrong":
            assert line == f"911 {t}"
        else:
            assert line.startswith(f"USR {t} OK {handle} ")
    assert limited(server).get("login-address", 0) == 0  # all four were checked
    # Three failures from 127.0.0.6: the next answer is refused unchecked, right password or not.
    with ns_from(server, "127.0.0.6") as c:
        t, reply = c.attempt(handles[4], "hunter2")
        assert reply.line == f"911 {t}"
        c.expect_closed()
    assert limited(server)["login-address"] == 1
    assert limited(server).get("login-account", 0) == 0
    # Per address: the same account logs in from another one.
    t, line = attempt(handles[4], "hunter2", source="127.0.0.7")
    assert line.startswith(f"USR {t} OK {handles[4]} ")


def test_unknown_or_malformed_limit_is_a_usage_error(key_file: Path, tmp_path: Path):
    for args, env, named in [
        (["--limit", "nonsense=3"], {}, "nonsense"),
        (["--limit", "cal=many/10"], {}, "cal"),
        ([], {"MSNP6_LIMITS": "fl=3/10"}, "fl"),
    ]:
        proc = ServerProcess(f"sqlite:///{tmp_path / 'x.sqlite3'}", key_file, tmp_path / "bad", extra_args=args, env=env)
        with pytest.raises(RuntimeError):
            proc.start(timeout=15)
        assert named in proc.output() and "--limit" in proc.output()
        proc.stop()

