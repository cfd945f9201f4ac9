"""The audit log and ``user show`` against a running server that logs JSON (one node, SQLite and
PostgreSQL): every login, failed login, logout, kick and operator command leaves one
``msnp6.audit`` line with its facts as keys, and no line holds a password, an MD5 answer or a
salt. The topologies (a user on another node) are in test_operator_live.py."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from msnp6.testing import MsnpClient, ServerProcess, md5_hex, run_admin

PASSWORD = "hunter2"


@pytest.fixture(scope="module")
def server(database, key_file, tmp_path_factory) -> Iterator[ServerProcess]:
    proc = ServerProcess(database.url, key_file, tmp_path_factory.mktemp(f"audit-{database.backend}"), admin=True,
                         extra_args=["--log-format", "json", "--challenge-timeout", "3"])
    proc.start()
    yield proc
    proc.stop()


def audit_lines(server: ServerProcess) -> list[dict[str, Any]]:
    return [e for e in server.json_records() if e["namespace"] == "msnp6.audit"]


def wait_for_audit(server: ServerProcess, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first audit line ``match`` accepts, once the server has written it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [e for e in audit_lines(server) if match(e)]
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"no such audit line; have {audit_lines(server)[-10:]}")


def admin(server: ServerProcess, database, key_file, *args: str):
    return run_admin([*args, "--admin-url", f"http://127.0.0.1:{server.ports['admin']}",
                      "--admin-token-file", str(server.admin_token_file)], database.url, key_file)


def address(c: MsnpClient) -> str:
    host, port = c.sock.getsockname()
    return f"{host}:{port}"


def logged_in(server: ServerProcess, handle: str) -> MsnpClient:
    c = server.client()
    c.login(handle, PASSWORD)
    return c


def test_logins_and_logouts(server, accounts):
    handle = accounts.create(password=PASSWORD)
    c = logged_in(server, handle)
    ok = wait_for_audit(server, lambda e: e["audit"] == "login_ok" and e["account"] == handle)
    assert (ok["address"], ok["node"], ok["dialect"]) == (address(c), "n1", "MSNP6")
    where = address(c)
    c.send("OUT")
    c.expect("OUT")
    c.expect_closed()
    out = wait_for_audit(server, lambda e: e["audit"] == "logout" and e["address"] == where)
    assert (out["account"], out["reason"], out["node"]) == (handle, "out", "n1")

    c = logged_in(server, handle)
    where = address(c)
    c.close()
    gone = wait_for_audit(server, lambda e: e["audit"] == "logout" and e["address"] == where)
    assert gone["reason"] == "hangup"

    first = logged_in(server, handle)
    where = address(first)
    second = logged_in(server, handle)
    first.expect("OUT OTH")
    other = wait_for_audit(server, lambda e: e["audit"] == "logout" and e["address"] == where)
    assert other["reason"] == "other_login"
    second.close()


def failed(server: ServerProcess, handle: str, password: str) -> tuple[str, dict[str, Any]]:
    with server.client() as c:
        t, reply = c.attempt(handle, password)
        where = address(c)
    line = wait_for_audit(server, lambda e: e["audit"] == "login_failed" and e["address"] == where)
    assert reply.line == f"911 {t}" and (line["account"], line["code"]) == (handle, 911)
    return line["reason"], line


def test_failed_logins_say_why_and_never_what_was_sent(server, accounts, database, key_file):
    handle = accounts.create(password=PASSWORD)
    assert failed(server, handle, "not-the-password")[0] == "bad_password"
    assert failed(server, "nobody-" + handle, PASSWORD)[0] == "unknown_account"
    assert admin(server, database, key_file, "user", "disable", handle).returncode == 0
    assert failed(server, handle, PASSWORD)[0] == "disabled"
    assert failed(server, handle, "not-the-password")[0] == "disabled"
    # A handle from the wire is logged escaped.
    with server.client() as c:
        c.negotiate()
        c.send("USR 3 MD5 I caf\u00e9\u202e")
        c.expect("911 3")
    bad = wait_for_audit(server, lambda e: e["audit"] == "login_failed" and e["reason"] == "invalid_handle")
    assert bad["account"] == "caf\\xe9\\u202e"

    with server.client() as c:  # what a login sends: the salt it was given, and the MD5 answer
        c.negotiate()
        salt = c.request_salt(handle)
        answer = md5_hex(salt + PASSWORD)
        c.send(f"USR 4 MD5 S {answer}")
        c.expect("911 4")
    wait_for_audit(server, lambda e: e["audit"] == "login_failed" and e["reason"] == "disabled"
                   and e["account"] == handle)
    everything = server.output() + server.log()
    for secret in (PASSWORD, "not-the-password", salt, answer, server.admin_token):
        assert secret not in everything


def test_disable_kick_and_operator_commands_leave_audit_lines(server, accounts, database, key_file):
    handle = accounts.create(password=PASSWORD)
    c = logged_in(server, handle)
    where = address(c)
    r = admin(server, database, key_file, "user", "disable", handle, "--reason", "spam\tbot")
    assert r.returncode == 1 and "printable" in r.stderr  # a tab is no one-line reason
    r = admin(server, database, key_file, "user", "disable", handle, "--reason", "spam bot")
    assert r.returncode == 0, r.stderr
    c.expect("OUT")
    c.expect_closed()
    logout = wait_for_audit(server, lambda e: e["audit"] == "logout" and e["address"] == where)
    assert (logout["account"], logout["reason"]) == (handle, "disabled")
    op = wait_for_audit(server, lambda e: e["audit"] == "operator" and e["action"] == "disable"
                        and e["account"] == handle)
    assert (op["outcome"], op["detail"]) == ("ok", "spam bot") and op["caller"].startswith("127.0.0.1:")
    assert admin(server, database, key_file, "user", "enable", handle).returncode == 0
    wait_for_audit(server, lambda e: e["audit"] == "operator" and e["action"] == "enable" and e["account"] == handle)

    c = logged_in(server, handle)
    where = address(c)
    assert admin(server, database, key_file, "session", "kick", handle).returncode == 0
    c.expect("OUT")
    kicked = wait_for_audit(server, lambda e: e["audit"] == "logout" and e["address"] == where)
    assert kicked["reason"] == "kicked"
    kick = wait_for_audit(server, lambda e: e["audit"] == "kick" and e["account"] == handle)
    assert kick["online"] is True
    assert admin(server, database, key_file, "session", "kick", handle).returncode == 1
    wait_for_audit(server, lambda e: e["audit"] == "kick" and e["account"] == handle and e["online"] is False)

    assert admin(server, database, key_file, "who").returncode == 0
    wait_for_audit(server, lambda e: e["audit"] == "operator" and e["action"] == "who")
    r = admin(server, database, key_file, "user", "verify", "ghost@example.com")
    assert r.returncode == 1
    ghost = wait_for_audit(server, lambda e: e["audit"] == "operator" and e["account"] == "ghost@example.com")
    assert (ghost["action"], ghost["outcome"]) == ("verify", "no such account")


def show(database, key_file, handle: str) -> dict[str, str]:
    r = run_admin(["user", "show", handle], database.url, key_file)
    assert r.returncode == 0, r.stderr
    return dict(line.split(":\t", 1) for line in r.stdout.splitlines())


def test_user_show(server, accounts, database, key_file):
    handle = accounts.create(name="Alice Liddell", password=PASSWORD)
    other = accounts.create(password=PASSWORD)
    shown = show(database, key_file, handle)
    assert shown["handle"] == handle and shown["name"] == "Alice%20Liddell"
    assert (shown["verified"], shown["disabled"], shown["mail"], shown["mobile"]) == ("yes", "no", "off", "off")
    assert shown["last login"] == "never" and shown["created"].endswith("+00:00")
    assert shown["lists"] == "FL 0 AL 0 BL 0 RL 0"

    c = logged_in(server, handle)
    c.sync(0)
    t, _ = c.command(f"ADD {{t}} FL {other} Other")
    c.command(f"ADD {{t}} BL {other} Other")
    c.close()
    deadline = time.monotonic() + 10  # last logins are written in batches, every few seconds
    while (shown := show(database, key_file, handle))["last login"] == "never" and time.monotonic() < deadline:
        pass
    assert shown["last login"].endswith("+00:00") and shown["last login"] >= shown["created"]
    assert shown["lists"] == "FL 1 AL 0 BL 1 RL 0" and shown["list version"] == "2"

    r = run_admin(["user", "disable", handle, "--reason", "spam"], database.url, key_file)  # no server: the DB
    assert r.returncode == 0 and r.stdout.strip() == f"{handle} disabled", r.stderr
    assert show(database, key_file, handle)["disabled"].endswith(": spam")
    assert show(database, key_file, handle)["disabled"].startswith("since ")
    with server.client() as c:
        t, reply = c.attempt(handle, PASSWORD)
        assert reply.line == f"911 {t}"
    run_admin(["user", "enable", handle], database.url, key_file)
    assert show(database, key_file, handle)["disabled"] == "no"
    r = run_admin(["user", "show", "ghost@example.com"], database.url, key_file)
    assert r.returncode == 1 and "no account ghost@example.com" in r.stderr


def test_shutdown_signs_out_and_writes_the_pending_last_logins(database, key_file, accounts, tmp_path):
    own = ServerProcess(database.url, key_file, tmp_path, extra_args=["--log-format", "json"])
    own.start()
    try:
        handle = accounts.create(password=PASSWORD)
        c = logged_in(own, handle)
        where = address(c)
        wait_for_audit(own, lambda e: e["audit"] == "login_ok" and e["account"] == handle)
    finally:
        assert own.stop() == 0
    c.expect("OUT SSD")
    assert [(e["account"], e["reason"]) for e in audit_lines(own)
            if e["audit"] == "logout" and e["address"] == where] == [(handle, "shutdown")]
    assert show(database, key_file, handle)["last login"] != "never"  # written on the way out


def http(server: ServerProcess, method: str, path: str, token: str | None, body: bytes | None = None) -> int:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if body is not None:
        headers["content-type"] = "application/json"
    request = urllib.request.Request(f"http://127.0.0.1:{server.ports['admin']}{path}", data=body,
                                     headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_the_sessions_endpoints_want_the_token(server, accounts):
    handle = accounts.create(password=PASSWORD)
    assert http(server, "GET", "/sessions", None) == 401  # it shows client addresses
    assert http(server, "GET", "/sessions", "wrong") == 401
    assert http(server, "POST", f"/sessions/{handle}/kick", None, b"{}") == 401
    assert http(server, "GET", "/sessions", server.admin_token) == 200
    assert http(server, "POST", f"/sessions/{handle}/ban", server.admin_token, b"{}") == 404
    assert http(server, "POST", "/sessions/not-a-handle/kick", server.admin_token, b"{}") == 400
    assert http(server, "POST", f"/accounts/{handle}/disable", server.admin_token,
                json.dumps({"reason": "x" * 201}).encode()) == 400
