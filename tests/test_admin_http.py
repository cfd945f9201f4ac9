"""The admin HTTP port over real sockets: /healthz, /readyz (also with the database down or
behind head), /metrics (the counters move), and the JSON log format."""
from __future__ import annotations

import json
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from conftest import PG_BASE
from prometheus_client.parser import text_string_to_metric_families

from msnp6.logs import event_as_json
from msnp6.store.engine import make_engine
from msnp6.store.schema import downgrade, upgrade
from msnp6.testing import MsnpClient, ServerProcess, _bin


def get(server: ServerProcess, path: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET on the admin port."""
    url = f"http://127.0.0.1:{server.ports['admin']}{path}"
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.headers["content-type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["content-type"], e.read().decode()


def samples(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, content_type, body = get(server, "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


@pytest.fixture
def admin_server(database, key_file, tmp_path) -> Iterator[ServerProcess]:
    proc = ServerProcess(database.url, key_file, tmp_path, admin=True)
    proc.start()
    yield proc
    proc.stop()


def test_healthz_and_readyz(admin_server):
    assert get(admin_server, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
    assert get(admin_server, "/readyz") == (200, "text/plain; charset=utf-8", "ready\n")
    assert get(admin_server, "/nothing-here")[0] == 404


def test_metrics_move_after_logins(admin_server, accounts):
    handle = accounts.create(password="pw")
    before = samples(admin_server)
    assert before[("msnp6_logins_total", (("result", "ok"),))] == 0
    assert before[("msnp6_logins_total", (("result", "failed"),))] == 0
    assert before[("msnp6_messages_relayed_total", ())] == 0

    with admin_server.client() as c:
        c.login(handle, "pw")
        with admin_server.client() as wrong:
            _, answer = wrong.attempt(handle, "not-the-password")
            assert answer.name == "911"
            wrong.expect_closed()
        during = samples(admin_server)
        assert during[("msnp6_connections", (("service", "ns"),))] >= 1
        assert during[("msnp6_sessions", ())] == 1
    after = samples(admin_server)
    assert after[("msnp6_logins_total", (("result", "ok"),))] == 1
    assert after[("msnp6_logins_total", (("result", "failed"),))] == 1
    assert after[("msnp6_errors_sent_total", (("code", "911"),))] == 1
    # Every login looked the account up in the store, timed by the histogram.
    assert after[("msnp6_store_seconds_count", (("operation", "get_account"),))] >= 2
    assert ("process_resident_memory_bytes", ()) in after


def test_messages_relayed_counter_moves(admin_server, accounts):
    alice, bob = accounts.create(), accounts.create()
    ns = {}
    for handle in (alice, bob):
        c = ns[handle] = admin_server.client()
        c.auto_challenge = True
        c.login(handle, "hunter2")
        c.sync(0)
        c.command("CHG {t} NLN")
    t, lines = ns[alice].command("XFR {t} SB")
    words = lines[0].split()
    assert words[:3] == ["XFR", str(t), "SB"] and len(words) == 6, lines
    cookie = words[5]
    with MsnpClient("127.0.0.1", admin_server.ports["sb"]) as caller, \
            MsnpClient("127.0.0.1", admin_server.ports["sb"]) as callee:
        caller.send(f"USR 1 {alice} {cookie}")
        caller.expect_prefix("USR 1 OK")
        caller.send(f"CAL 2 {bob}")
        session = caller.expect_prefix("CAL 2 RINGING").words[3]
        rng = ns[bob].recv_until(lambda r: r.name == "RNG")[-1].words
        callee.send(f"ANS 1 {bob} {rng[4]} {session}")
        callee.recv_until(lambda r: r.line == "ANS 1 OK")
        caller.expect_prefix(f"JOI {bob}")
        assert samples(admin_server)[("msnp6_messages_relayed_total", ())] == 0
        text = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhi"
        caller.send(f"MSG 3 A {len(text)}", text)
        caller.expect("ACK 3")
        assert callee.recv().payload == text
        after = samples(admin_server)
    assert after[("msnp6_messages_relayed_total", ())] == 1
    assert after[("msnp6_connections", (("service", "sb"),))] == 2
    for c in ns.values():
        c.close()


def test_no_admin_port_unless_asked(tmp_path, key_file, database):
    proc = ServerProcess(database.url, key_file, tmp_path)
    assert "admin" not in proc.ports and not any("--admin" in a for a in proc.command())


@pytest.fixture
def throwaway_database(pg_schema_url) -> Iterator[str]:
    """A database of its own, which the test may refuse connections to."""
    from sqlalchemy import text

    name = f"msnp6_t_{secrets.token_hex(4)}"
    admin = make_engine(PG_BASE, pool_size=1).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_BASE.rsplit("/", 1)[0] + "/" + name
    upgrade(make_engine(url))
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _allow_connections(name: str, allow: bool) -> None:
    from sqlalchemy import text

    admin = make_engine(PG_BASE, pool_size=1).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(allow).lower()}'))
        if not allow:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
    admin.dispose()


def test_readyz_follows_the_database(throwaway_database, key_file, tmp_path):
    url = PG_BASE.rsplit("/", 1)[0] + "/" + throwaway_database
    proc = ServerProcess(url, key_file, tmp_path, admin=True)
    proc.start()
    try:
        assert get(proc, "/readyz")[0] == 200

        _allow_connections(throwaway_database, False)  # the database is down for us
        status, _, body = get(proc, "/readyz")
        assert status == 503 and body.startswith("database unreachable: OperationalError"), body
        assert get(proc, "/healthz")[0] == 200  # the process itself is fine

        _allow_connections(throwaway_database, True)
        assert get(proc, "/readyz") == (200, "text/plain; charset=utf-8", "ready\n")

        downgrade(make_engine(url), "-1")  # someone rolled the schema back under us
        status, _, body = get(proc, "/readyz")
        assert status == 503 and "not at" in body and "migrate" in body, body
        upgrade(make_engine(url))
        assert get(proc, "/readyz")[0] == 200
    finally:
        assert proc.stop() == 0


def test_json_log_format(tmp_path, key_file, database):
    proc = ServerProcess(database.url, key_file, tmp_path, extra_args=["--log-format", "json"])
    proc.start()
    with proc.client("ds") as c:
        c.negotiate()
    assert proc.stop() == 0
    records = [json.loads(line) for line in proc.output().splitlines()]
    listening = [r for r in records if r["namespace"] == "msnp6.tap" and r["message"].startswith("msnp6 ")]
    assert {r["name"] for r in listening} == {"ds", "ns", "sb"}
    assert all(r["level"] == "info" and r["time"].endswith("+00:00") for r in listening)
    assert not proc.log()  # JSON goes to stdout, not to --logfile


def test_unknown_log_format_is_refused():
    r = subprocess.run([_bin("twistd"), "-n", "msnp6", "--log-format", "xml"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--log-format must be one of: text, json" in r.stdout + r.stderr


def test_json_records_keep_fields_and_failures():
    from twisted.logger import LogLevel
    from twisted.python.failure import Failure

    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        failure = Failure()
    line = event_as_json({
        "log_format": "conn {conn} {service}: failed", "log_level": LogLevel.error, "log_time": 0.0,
        "log_namespace": "msnp6.framing", "log_failure": failure, "conn": 7, "service": "ns", "peer": object(),
    })
    assert line.endswith("\n") and line.count("\n") == 1
    record = json.loads(line)
    assert record["message"] == "conn 7 ns: failed" and record["level"] == "error"
    assert record["conn"] == 7 and record["service"] == "ns" and record["peer"].startswith("<object")
    assert "ZeroDivisionError" in record["traceback"] and record["time"] == "1970-01-01T00:00:00.000+00:00"


# -- the readiness check on its own (no reactor: an immediate store and a fake clock) ------------


class _Realm:
    def __init__(self, store: object) -> None:
        self.store = store
        self.draining = False
        self.cluster = None  # what a cluster member says is wrong, if anything

    def cluster_problem(self) -> str | None:
        return self.cluster


def test_readiness_check_answers(tmp_path):
    from twisted.internet.task import Clock

    from msnp6.testing import ImmediateStore
    from msnp6.web import ReadinessCheck

    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    realm = _Realm(ImmediateStore(engine))
    check = ReadinessCheck(realm, Clock())
    answers: list[object] = []
    check.check().addCallback(answers.append)  # nothing migrated yet
    upgrade(engine)
    check.check().addCallback(answers.append)
    realm.cluster = "bus: not connected to Redis at 127.0.0.1:6379/0"
    check.check().addCallback(answers.append)
    realm.draining = True
    check.check().addCallback(answers.append)
    assert answers[0] == f"schema at nothing, not at {check.head}: run msnp6-admin migrate"
    assert answers[1:] == [None, "bus: not connected to Redis at 127.0.0.1:6379/0", "shutting down"]


def test_readiness_check_times_out_and_shares_one_query():
    from twisted.internet.defer import Deferred
    from twisted.internet.task import Clock

    from msnp6.web import ReadinessCheck

    class HangingStore:
        core = type("Core", (), {"engine": None})()
        calls = 0

        def run(self, fn: object, *args: object) -> Deferred[object]:
            self.calls += 1
            return Deferred()  # the database never answers

    store, clock = HangingStore(), Clock()
    check = ReadinessCheck(_Realm(store), clock, timeout=5)
    answers: list[object] = []
    check.check().addCallback(answers.append)
    check.check().addCallback(answers.append)
    assert store.calls == 1 and answers == []
    clock.advance(5)
    assert answers == ["database did not answer within 5 s"] * 2


def test_mail_notify_reaches_an_online_user_through_the_admin_port(admin_server, accounts, database, key_file):
    """``msnp6-admin mail notify`` -> POST /mail -> the new-mail MSG on the user's connection."""
    from msnp6.testing import run_admin

    handle = accounts.create()
    accounts.store.set_email_enabled(handle, True)
    url = f"http://127.0.0.1:{admin_server.ports['admin']}"
    token = ["--admin-token-file", str(admin_server.admin_token_file)]
    with admin_server.client() as c:
        c.login(handle, "hunter2")
        assert c.recv().payload.startswith(b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinitialemailnotification")
        r = run_admin(["mail", "notify", handle, "--from", "Bob Example", "--from-addr", "bob@example.com",
                       "--subject", "Lunch?", "--admin-url", url, *token], database.url, key_file)
        assert r.returncode == 0 and r.stdout.strip() == f"{handle}: accepted", r.stderr
        notice = c.recv()
        body = (b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsemailnotification; charset=UTF-8\r\n\r\n"
                b"From: Bob Example\r\nMessage-URL: /cgi-bin/getmsg?msg=1\r\nPost-URL: http://127.0.0.1/\r\n"
                b"Subject: Lunch?\r\nDest-Folder: ACTIVE\r\nFrom-Addr: bob@example.com\r\nid: 2\r\n\r\n")
        assert notice.line == f"MSG Hotmail Hotmail {len(body)}" and notice.payload == body
    assert accounts.store.get_account(handle).inbox_unread == 1
    offline = run_admin(["mail", "notify", handle, "--from-addr", "x@example.com", "--admin-url", url, *token],
                        database.url, key_file)
    assert offline.stdout.strip() == f"{handle}: accepted"
    assert accounts.store.get_account(handle).inbox_unread == 2
    down = run_admin(["mail", "notify", handle, "--from-addr", "x@example.com", "--admin-url", "http://127.0.0.1:1",
                      *token], database.url, key_file)
    assert down.returncode == 1 and "cannot reach" in down.stderr
