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


# -- fail fast when a listener cannot bind; say what the server runs with ------------------------


def _readyz(port: int) -> int | None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def test_a_taken_port_stops_the_server_with_a_clear_message(tmp_path, key_file, database):
    import socket
    import time

    proc = ServerProcess(database.url, key_file, tmp_path, admin=True)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", proc.ports["ns"]))
        taken.listen()
        run = subprocess.Popen(proc.command(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        answers = []
        deadline = time.monotonic() + 30  # a bound for a broken server, not a timing claim
        while run.poll() is None and time.monotonic() < deadline:
            answers.append(_readyz(proc.ports["admin"]))
            time.sleep(0.05)
        if run.poll() is None:
            run.kill()
        output = run.communicate()[0].decode()
    assert run.returncode not in (0, None), f"exit status {run.returncode}; readyz answered {set(answers)}"
    assert 200 not in answers
    lines = [line for line in proc.log().splitlines() if "msnp6 cannot start" in line]
    assert len(lines) == 1, proc.log() + output
    assert lines[0].endswith(
        f"msnp6 cannot start: the ns listener cannot listen on tcp:{proc.ports['ns']}:interface=127.0.0.1: "
        "Address already in use")
    assert "Traceback" not in proc.log() and "msnp6 running" not in proc.log()


def test_the_startup_summary_names_what_runs_but_no_password(pg_schema_url, tmp_path, key_file):
    from msnp6.store.schema import upgrade

    url = pg_schema_url().replace("postgres@", "postgres:s3cret-db-pw@")  # the test server trusts any
    upgrade(make_engine(url))
    proc = ServerProcess(url, key_file, tmp_path, admin=True)
    proc.start()
    try:
        summary = [line for line in proc.log().splitlines() if "msnp6 running:" in line]
        assert proc.admin_token is not None and proc.admin_token not in proc.log()
    finally:
        proc.stop()
    assert len(summary) == 1 and "s3cret-db-pw" not in proc.log() + proc.output()
    line = summary[0]
    assert "database postgresql+psycopg://postgres:***@127.0.0.1:5432/test?" in line
    assert f"key file {key_file}," in line
    p = proc.ports
    assert (f"listeners admin 127.0.0.1:{p['admin']}, ds 127.0.0.1:{p['ds']}, ns 127.0.0.1:{p['ns']}, "
            f"sb 127.0.0.1:{p['sb']}, public host 127.0.0.1, admin token in {proc.admin_token_file}") in line
    assert "advertises the loopback host" not in proc.log()  # it listens on 127.0.0.1 only


def _on_all_interfaces(proc: ServerProcess) -> list[str]:
    """Client listeners on every interface (ports free on every interface, not just loopback)."""
    import socket

    for name in ("ds", "ns", "sb"):
        with socket.socket() as s:
            s.bind(("", 0))
            proc.ports[name] = s.getsockname()[1]
    return [f"--{name}=tcp:{proc.ports[name]}" for name in ("ds", "ns", "sb")]


def test_all_interfaces_with_a_loopback_public_host_warns(tmp_path, key_file, database):
    proc = ServerProcess(database.url, key_file, tmp_path)
    proc.extra_args = _on_all_interfaces(proc)  # the default endpoints, and the default public host
    proc.start()
    proc.stop()
    warnings = [line for line in proc.log().splitlines() if "advertises the loopback host" in line]
    assert len(warnings) == 1 and "#warn]" in warnings[0]
    assert "listens on all interfaces (ds, ns, sb) but advertises the loopback host 127.0.0.1" in warnings[0]
    assert "--public-host" in warnings[0]


def test_no_warning_with_a_real_public_host(tmp_path, key_file, database):
    proc = ServerProcess(database.url, key_file, tmp_path)
    proc.extra_args = [*_on_all_interfaces(proc), "--public-host", "192.0.2.10"]
    proc.start()
    with proc.client("ds") as ds:
        ds.negotiate()
        ds.send("USR 3 MD5 I someone@example.com")
        ds.expect(f"XFR 3 NS 192.0.2.10:{proc.ports['ns']} 0")
    proc.stop()
    assert "msnp6 running:" in proc.log() and "public host 192.0.2.10" in proc.log()
    assert "advertises the loopback host" not in proc.log()


def test_what_counts_as_loopback_and_a_masked_url():
    from msnp6.startup import is_loopback_host, without_password

    assert all(map(is_loopback_host, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "a.localhost"]))
    assert not any(map(is_loopback_host, ["192.0.2.10", "msn.example.org", "0.0.0.0", "2001:db8::1"]))
    assert without_password("postgresql://u:pw@db:5432/msnp6?password=x&sslmode=require") == (
        "postgresql://u:***@db:5432/msnp6?password=%2A%2A%2A&sslmode=require")
    assert without_password("sqlite:////var/lib/msnp6/msnp6.sqlite3") == "sqlite:////var/lib/msnp6/msnp6.sqlite3"
