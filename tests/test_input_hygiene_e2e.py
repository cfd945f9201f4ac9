"""Hostile input over real TCP: odd numbers, non-ASCII answers, server-only commands, presence
before the first CHG, pages to hidden users, and what the server's log shows of all that."""
from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time

import pytest

from msnp6.auth import CredentialKey
from msnp6.store.engine import make_engine
from msnp6.store.schema import open_database, upgrade
from msnp6.store.store import StoreCore
from msnp6.testing import CHALLENGE_ID, MsnpClient, ServerProcess

ALICE, BOB = "alice@example.com", "bob@example.com"
PAGE = b'<TEXT xml:space="preserve">call me</TEXT>'

#: Numbers Python's int() takes (or isdigit() claims) that are no MSNP number.
ODD_NUMBERS = ["\u00b2", "\u0661\u0662", "\uff11", "1_0", "+3", "-0", "99999999999"]


def online(server, accounts, name="User", status="NLN") -> tuple[MsnpClient, str]:
    handle = accounts.create(name=name)
    c = server.client()
    c.auto_challenge = True
    c.login(handle, "hunter2")
    c.sync(0)
    c.command(f"CHG {{t}} {status}")
    return c, handle


class LogDelta:
    """What the server logs from now on (the server is shared by the session's tests)."""

    def __init__(self, server: ServerProcess, start: int | None = None) -> None:
        self.server = server
        self.start = len(server.log()) if start is None else start

    def text(self, settle: str | None = None) -> str:
        """The new log text; with ``settle``, first wait (bounded) until it shows up."""
        deadline = time.monotonic() + 5
        while True:
            text = self.server.log()[self.start:]
            if settle is None or settle in text or time.monotonic() > deadline:
                return text
            time.sleep(0.05)


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text and "Unhandled" not in text, text


# -- numbers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ODD_NUMBERS)
def test_odd_number_in_syn_disconnects_without_a_traceback(server, accounts, number):
    log = LogDelta(server)
    with server.client() as c:
        c.login(accounts.create(), "hunter2")
        c.send(f"SYN 5 {number}")
        c.expect_closed()
    assert_no_traceback(log.text(settle="malformed SYN"))


@pytest.mark.parametrize("number", ODD_NUMBERS)
def test_odd_session_id_in_ans_disconnects_without_a_traceback(server, number):
    log = LogDelta(server)
    with server.client("sb") as c:
        c.send(f"ANS 1 someone@example.com 123.456.789 {number}")
        c.expect_closed()
    assert_no_traceback(log.text(settle="malformed ANS"))


@pytest.mark.parametrize("target", ["\u00b2", "\u0661"])
def test_odd_sdc_index_is_an_invalid_parameter(server, accounts, target):
    log = LogDelta(server)
    c, _ = online(server, accounts)
    t, lines = c.command(f"SDC {{t}} {target} 0x0409 MSMSGS MSMSGS X X me 0")
    assert lines == [f"201 {t}"]
    assert_no_traceback(log.text())


# -- non-ASCII answers -----------------------------------------------------------------------------


def test_non_ascii_login_answer_gets_911_and_close(server, accounts):
    handle = accounts.create()
    log = LogDelta(server)
    with server.client() as c:
        c.negotiate()
        c.request_salt(handle)
        c.send("USR 4 MD5 S \u00e9" + "0" * 31)
        c.expect("911 4")
        c.expect_closed()
    with server.client() as c:
        c.login(handle, "hunter2")  # the account still works
    assert_no_traceback(log.text(settle="login failed"))


def test_non_ascii_challenge_answer_gets_540_and_close(server, accounts):
    log = LogDelta(server)
    with server.client() as c:
        c.login(accounts.create(), "hunter2")
        c.send("CHG 5 NLN")
        c.expect("CHG 5 NLN")
        assert c.recv().name == "CHL"
        answer = ("\u00e9" + "0" * 30).encode()
        c.send(f"QRY 6 {CHALLENGE_ID} {len(answer)}", answer)
        c.expect("540 6")
        c.expect_closed()
    assert_no_traceback(log.text())


def test_a_flood_of_bad_input_is_logged_once(server, accounts):
    log = LogDelta(server)
    with server.client() as c:
        c.login(accounts.create(), "hunter2")
        n = 2000
        c.send_raw("Z\u00b2Z 1 \u202e\u00e9\r\n".encode() * n + b"PNG\r\n")
        replies = c.recv_until(lambda r: r.line == "QNG")
        assert [r.line for r in replies] == ["200 1"] * n + ["QNG"]
    text = log.text(settle="further bad input is not logged")
    assert text.count("further bad input is not logged") == 1, text
    assert len(text) < 2000, len(text)  # one line, not one per bad line (2000 lines were ~170 KB)
    assert "\u202e" not in text and "\u00b2" not in text


# -- protocol deviations ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["MSG 5 N {n}", "RNG 5 {n}"])
def test_server_only_command_disconnects_before_its_body(server, accounts, command):
    handle = accounts.create(name="Me")
    contact = accounts.create()
    body = f"REA 6 {handle} Hacked\r\nADD 7 FL {contact} x\r\n".encode()
    with server.client() as c:
        c.login(handle, "hunter2")
        c.send_raw(command.format(n=len(body)).encode() + b"\r\n" + body)
        c.expect_closed()
    with server.client() as c:
        profile_ok = c.login(handle, "hunter2")
        assert profile_ok.payload is not None
        lines = [r.line for r in c.sync(0)]
    assert not [line for line in lines if contact in line or "Hacked" in line], lines


def test_no_presence_reaches_a_session_before_its_first_chg(server, accounts):
    alice_h = accounts.create(name="Alice")
    bob_h = accounts.create(name="Bob")
    bob = server.client()
    bob.auto_challenge = True
    bob.login(bob_h, "hunter2")
    bob.sync(0)
    bob.command(f"ADD {{t}} FL {alice_h} Alice")
    alice = server.client()
    alice.auto_challenge = True
    alice.login(alice_h, "hunter2")
    alice.sync(0)
    alice.command("CHG {t} NLN")
    alice.command("CHG {t} AWY")
    assert bob.fence() == []  # bob still counts as offline: no NLN
    t, lines = bob.command("CHG {t} NLN")
    assert lines == [f"CHG {t} NLN", f"ILN {t} AWY {alice_h} Alice"]
    alice.command("CHG {t} BSY")
    assert bob.fence() == [f"NLN BSY {alice_h} Alice"]
    alice.close()
    bob.close()


def test_page_to_a_hidden_user_is_answered_like_one_to_an_offline_user(server, accounts):
    alice, _ = online(server, accounts, "Alice")
    hidden, hidden_h = online(server, accounts, "Hidden")
    hidden.command("PRP {t} MOB Y")
    hidden.command("CHG {t} HDN")
    not_yet, not_yet_h = server.client(), accounts.create()
    not_yet.login(not_yet_h, "hunter2")  # no CHG yet: offline too
    not_yet.sync(0)
    not_yet.command("PRP {t} MOB Y")
    offline_h = accounts.create()
    for i, target in enumerate([hidden_h, not_yet_h, offline_h], start=20):
        alice.send(f"PAG {i} {target} {len(PAGE)}", PAGE)
        alice.expect(f"217 {i}")
    assert hidden.fence() == [] and not_yet.fence() == []


def test_cal_to_a_hidden_user_is_answered_like_one_to_an_offline_user(server, accounts):
    alice, alice_h = online(server, accounts, "Alice")
    _, hidden_h = online(server, accounts, "Hidden", status="HDN")
    t, lines = alice.command("XFR {t} SB")
    words = lines[0].split()
    host, port = words[3].split(":")
    with MsnpClient(host, int(port)) as sb:
        sb.send(f"USR 1 {alice_h} {words[5]}")
        sb.expect(f"USR 1 OK {alice_h} Alice")
        sb.send(f"CAL 2 {hidden_h}")
        sb.expect("217 2")
        sb.send(f"CAL 3 {accounts.create()}")
        sb.expect("217 3")


# -- what the log shows ----------------------------------------------------------------------------


def test_client_text_in_log_lines_is_escaped(server):
    log = LogDelta(server)
    with server.client("sb") as c:
        c.send_raw(b"USR 1 evil\\\xc3\xa9\xff@example.com 1.2.3\r\n")
        c.expect("911 1")
        c.expect_closed()
    text = log.text(settle="bad or expired cookie")
    assert "evil\\\\\\xe9\\ufffd@example.com" in text, text
    assert "\u00e9" not in text and "\ufffd" not in text


# -- text that no client sends and the database cannot hold -------------------------------------


@pytest.mark.parametrize("service", ["ds", "ns", "sb"])
def test_a_raw_control_byte_in_a_line_closes_the_connection(server, service):
    log = LogDelta(server)
    with server.client(service) as c:
        c.send_raw(b"VER 1 MSNP6\x1b[2J\x07 CVR0\r\n")
        c.expect_closed()
    text = log.text(settle="a control byte in a command line")
    assert "a control byte in a command line" in text and "\x1b" not in text and "\x07" not in text


def test_a_raw_nul_in_a_name_closes_the_connection_and_changes_nothing(server, accounts):
    log = LogDelta(server)
    c, handle = online(server, accounts, name="Before")
    c.send_raw(f"REA 7 {handle} x\x00y\r\n".encode())
    c.expect_closed()
    assert_no_traceback(log.text(settle="a control byte in a command line"))
    with server.client() as again:
        t, ok = again.attempt(handle, "hunter2")
        assert ok.words[:5] == ["USR", str(t), "OK", handle, "Before"], ok.line


def test_a_percent_encoded_nul_is_refused_where_text_would_be_stored(server, accounts):
    """PostgreSQL cannot store a NUL (SQLite can, and a later move to PostgreSQL would fail):
    every place client text is stored or searched refuses one with the command's answer."""
    log = LogDelta(server)
    c, handle = online(server, accounts, name="Before")
    friend = accounts.create(name="Friend")
    t, lines = c.command(f"REA {{t}} {handle} x%00y")
    assert lines == [f"209 {t}"]
    t, lines = c.command(f"ADD {{t}} FL {friend} x%00y")
    assert lines == [f"209 {t}"]
    t, lines = c.command("FND {t} fname=a%00b lname=* city=* state=* country=*")
    assert lines == [f"201 {t}"]
    note = b"hello\x00there"
    t, lines = c.command(f"SDC {{t}} someone@elsewhere.example 0x0409 MSMSGS MSMSGS X X me {len(note)}", note)
    assert lines == [f"201 {t}"]
    t, lines = c.command(f"REA {{t}} {handle} After")  # the connection goes on
    assert lines[0].startswith(f"REA {t} ") and lines[0].endswith(f" {handle} After"), lines
    assert_no_traceback(log.text())


@pytest.fixture
def traced(tmp_path, key_file, database):
    proc = ServerProcess(database.url, key_file, tmp_path, extra_args=["--trace", "--challenge-timeout", "30"])
    proc.start()
    yield proc
    proc.stop()


def test_trace_shows_every_line_and_no_secret(traced, accounts):
    alice_h, bob_h = accounts.create(name="Alice"), accounts.create(name="Bob")
    bob = traced.client()
    bob.auto_challenge = True
    bob.login(bob_h, "hunter2")
    bob.sync(0)
    bob.command("CHG {t} NLN")
    with traced.client() as alice:
        alice.auto_challenge = True
        profile = alice.login(alice_h, "hunter2")
        mspauth = profile.payload.split(b"MSPAuth: ")[1].split(b"\r\n")[0].decode()
        alice.command(f"ADD {{t}} FL {bob_h} Bob")
        dump = [r.line for r in alice.sync(0)]
        alice.command("CHG {t} NLN")
        _, lines = alice.command("XFR {t} SB")
        words = lines[0].split()
        xfr_cookie = words[5]
        host, port = words[3].split(":")
        with MsnpClient(host, int(port)) as sb:
            sb.send(f"USR 1 {alice_h} {xfr_cookie}")
            sb.expect(f"USR 1 OK {alice_h} Alice")
            sb.send(f"CAL 2 {bob_h}")
            assert sb.recv().words[:3] == ["CAL", "2", "RINGING"]
            rng = bob.recv_until(lambda r: r.name == "RNG")[-1].words
            rng_cookie = rng[4]
            with MsnpClient(host, int(port)) as bob_sb:
                bob_sb.send(f"ANS 3 {bob_h} {rng_cookie} {rng[1]}")
                bob_sb.recv_until(lambda r: r.line == "ANS 3 OK")
        alice.send("ZZZ 99 \u202eowned\u00e9")  # a right-to-left override: no raw C0 byte gets this far
        alice.expect("200 99")
    bob.close()
    text = LogDelta(traced, 0).text(settle="-> 200 99")
    for line in dump:  # the whole SYN dump, not its first line only
        assert f"-> {line}\n" in text, line
    for secret in (xfr_cookie, rng_cookie, mspauth):
        assert secret not in text, secret
    assert "CKI <hidden>" in text and f"<- USR 1 {alice_h} <hidden>" in text
    assert f"<- ANS 3 {bob_h} <hidden> {rng[1]}" in text
    assert "<- ZZZ 99 \\u202eowned\\xe9" in text and "\u202e" not in text and "\u00e9" not in text


def test_trace_hides_an_md5_answer_sent_to_the_dispatch_server(traced):
    answer = secrets.token_hex(16)
    with traced.client("ds") as c:
        c.send("VER 1 MSNP6 CVR0")
        c.expect("VER 1 MSNP6 CVR0")
        c.send(f"USR 2 MD5 S {answer}")
        c.expect("715 2")
        c.expect_closed()
    text = LogDelta(traced, 0).text(settle="-> 715 2")
    assert "<- USR 2 MD5 S <hidden>" in text and answer not in text


# -- a database outage -----------------------------------------------------------------------------


class CuttableProxy:
    """A TCP relay to PostgreSQL on loopback that the test can cut: the database "goes down"."""

    def __init__(self, target_port: int = 5432) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_a_database_outage_logs_one_line_per_failure_and_no_traceback(pg_schema_url, key_file, tmp_path):
    proxy = CuttableProxy()
    url = pg_schema_url().replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")
    assert str(proxy.port) in url
    upgrade(make_engine(url))
    core, key = StoreCore(open_database(url)), CredentialKey.load(key_file)
    for handle in (ALICE, BOB):
        core.create_account(handle, handle, key.seal(handle, "pw"))
    core.engine.dispose()
    proc = ServerProcess(url, key_file, tmp_path)
    proc.start()
    try:
        with proc.client() as c:
            c.login(ALICE, "pw")
            c.sync(0)
            proxy.cut()
            for trid in (10, 11, 12):
                c.send(f"ADD {trid} FL {BOB} Bob")
                c.expect(f"500 {trid}")
            with proc.client() as other:
                t, reply = other.attempt(BOB, "pw")
                assert reply.line == f"915 {t}"
    finally:
        proc.stop()
        proxy.close()
    log = proc.log()
    assert_no_traceback(log)
    failed = [line for line in log.splitlines() if "failed" in line and "[msnp6.audit#" not in line]
    # The three ADDs and the login; and the last login, written in the outage (or before it).
    last_login = [line for line in failed if "recording the last login" in line]
    assert len(failed) - len(last_login) == 4 and len(last_login) <= 1, failed
    assert all("database unavailable" in line for line in failed), failed
    assert "915 store_unavailable" in log  # the login's audit line
    assert not [line for line in failed if "SELECT" in line or "INSERT" in line], failed
