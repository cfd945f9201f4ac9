"""msnp6-admin over the real command line, against SQLite and PostgreSQL."""
from __future__ import annotations

import secrets

from msnp6.testing import run_admin


def _handle() -> str:
    return f"admin-{secrets.token_hex(4)}@example.com"


def test_user_lifecycle(server, database, key_file):
    handle = _handle()
    run = lambda *a, stdin="": run_admin(a, database.url, key_file, stdin)  # noqa: E731

    r = run("user", "add", handle, "--name", "Carol C.", stdin="first-pass\n")
    assert r.returncode == 0, r.stderr
    with server.client() as c:
        assert c.attempt(handle, "first-pass")[1].line == f"USR 4 OK {handle} Carol%20C. 1"

    listed = run("user", "list").stdout
    assert f"{handle}\tCarol%20C.\tverified\tversion 0" in listed.splitlines()

    assert run("user", "passwd", handle, stdin="second-pass\n").returncode == 0
    assert run("user", "unverify", handle).returncode == 0
    with server.client() as c:
        assert c.attempt(handle, "second-pass")[1].line == f"USR 4 OK {handle} Carol%20C. 0"
    assert run("user", "verify", handle).returncode == 0
    assert f"{handle}\tCarol%20C.\tverified" in run("user", "list").stdout

    assert run("user", "delete", handle).returncode == 0
    assert handle not in run("user", "list").stdout
    with server.client() as c:
        assert c.attempt(handle, "second-pass")[1].line == "911 4"


def test_clear_errors(database, key_file):
    handle = _handle()
    run = lambda *a, stdin="pw\n": run_admin(a, database.url, key_file, stdin)  # noqa: E731
    assert run("user", "add", handle).returncode == 0
    dup = run("user", "add", handle.upper())
    assert dup.returncode == 1 and "already exists" in dup.stderr
    bad = run("user", "add", "not-an-address")
    assert bad.returncode == 1 and "not a valid handle" in bad.stderr
    short = run("user", "add", "a@b")
    assert short.returncode == 1 and "not a valid handle" in short.stderr
    empty = run("user", "add", _handle(), stdin="\n")
    assert empty.returncode == 1 and "empty" in empty.stderr
    missing = run("user", "passwd", _handle())
    assert missing.returncode == 1 and "no account" in missing.stderr
    assert run("user", "verify", _handle()).returncode == 1
    usage = run("user", "frobnicate")
    assert usage.returncode == 2


def test_migrate_is_idempotent(database, key_file):
    for _ in range(2):
        r = run_admin(["migrate"], database.url, key_file)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("schema at ")


def test_invite_create_refuses_what_it_cannot_make(database, key_file):
    run = lambda *a: run_admin(["invite", "create", *a], database.url, key_file)  # noqa: E731
    assert run("--count", "1001").returncode == 1
    assert "note" in run("--note", "two\nlines").stderr
    assert run("--count", "0").returncode == 2 and run("--expires-days", "-1").returncode == 2
    made = run("--count", "3")
    codes = made.stdout.split()
    assert made.returncode == 0 and len(set(codes)) == 3
    assert all(len(c) >= 16 and c.replace("-", "").replace("_", "").isalnum() for c in codes)
