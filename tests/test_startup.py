"""Starting the server: the embedded SQLite default, and a PostgreSQL schema not at head."""
from __future__ import annotations

import subprocess

import pytest

from msnp6.store.engine import make_engine
from msnp6.store.schema import head_revision, schema_state
from msnp6.testing import ServerProcess, _bin, md5_hex, run_admin


def test_embedded_default_is_created_and_upgraded(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("MSNP6_HOME", str(home))
    monkeypatch.delenv("MSNP6_DB", raising=False)
    monkeypatch.delenv("MSNP6_KEY_FILE", raising=False)
    # The admin command with no --db/--key-file uses the same defaults as the server.
    r = subprocess.run([_bin("msnp6-admin"), "user", "add", "dora@example.com", "--name", "Dora"],
                       input="pw\n", text=True, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (home / "msnp6.sqlite3").exists() and (home / "credential.key").exists()
    assert schema_state(make_engine(f"sqlite:///{home / 'msnp6.sqlite3'}")).at_head

    proc = ServerProcess(None, None, tmp_path / "run")
    proc.start()
    try:
        with proc.client() as c:
            c.login("dora@example.com", "pw")
    finally:
        proc.stop()


def test_postgresql_below_head_refuses_to_start(pg_schema_url, tmp_path, key_file):
    url = pg_schema_url()  # an empty schema: nothing migrated yet
    proc = ServerProcess(url, key_file, tmp_path)
    with pytest.raises(RuntimeError) as failed:
        proc.start()
    message = str(failed.value)
    assert "not at " + head_revision() in message and "msnp6-admin --db" in message and "migrate" in message
    assert run_admin(["migrate"], url, key_file).returncode == 0
    proc.start()
    proc.stop()


def test_twistd_lists_the_documented_options():
    out = subprocess.run([_bin("twistd"), "msnp6", "--help"], capture_output=True, text=True, timeout=60).stdout
    for option in ("--db", "--key-file", "--ds", "--ns", "--sb", "--public-host", "--trace"):
        assert option in out


def test_trace_logs_lines_but_never_secrets(tmp_path, key_file, database, accounts):
    handle = accounts.create(password="s3cret-pw")
    proc = ServerProcess(database.url, key_file, tmp_path, extra_args=["--trace", "--challenge-timeout", "30"])
    proc.start()
    try:
        with proc.client() as c:
            c.negotiate()
            salt = c.request_salt(handle)
            answer = md5_hex(salt + "s3cret-pw")
            c.send(f"USR 4 MD5 S {answer}")
            c.recv(), c.recv()
            c.send("CHG 5 NLN")
            c.recv()
            chl = c.recv()
            c.answer_challenge(chl)
            qry_answer = md5_hex(chl.words[2] + "Q1P7W2E4J9R8U3S5")
            c.send("OUT")
            c.expect("OUT")
    finally:
        proc.stop()
    log = proc.log()
    assert f"<- USR 3 MD5 I {handle}" in log and "-> CHG 5 NLN" in log
    assert answer not in log and qry_answer not in log and "s3cret-pw" not in log
