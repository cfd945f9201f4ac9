"""A server that cannot start says why in one line of its log format, with a non-zero exit status
and no traceback for the faults an operator meets (an unreachable database, refused credentials,
a schema not at head, the wrong key, a taken port, bad option values). With --log-format json
everything the process prints is JSON from the first line, the refusal included."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from msnp6.auth import CredentialKey
from msnp6.refusal import format_line
from msnp6.store.schema import head_revision
from msnp6.testing import _bin, free_port


@attrs.frozen
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in (self.stdout + self.stderr).splitlines() if line.strip()]

    def records(self) -> list[dict[str, Any]]:
        """Every line it printed, each parsed as one JSON object (fails on any other line)."""
        records = []
        for line in self.lines:
            try:
                record = json.loads(line)
            except ValueError:
                raise AssertionError(f"not a JSON line: {line!r}\n{self.stdout}{self.stderr}") from None
            assert isinstance(record, dict), line
            records.append(record)
        return records

    def the_error(self) -> str:
        """The one error record's message (there must be exactly one, and no traceback at all)."""
        errors = [r for r in self.records() if r["level"] in ("error", "critical")]
        assert len(errors) == 1, self.stdout + self.stderr
        assert "Traceback" not in self.stdout + self.stderr
        assert "traceback" not in errors[0]
        return str(errors[0]["message"])


def twistd(tmp_path: Path, *args: str, env: dict[str, str] | None = None, log_format: str = "json") -> Run:
    """``twistd -n msnp6 --log-format FORMAT ARGS`` as an operator runs it; its listeners on free
    ports of 127.0.0.1 (unless ``args`` names them)."""
    listeners = [f"--{n}=tcp:{free_port()}:interface=127.0.0.1" for n in ("ds", "ns", "sb")
                 if not any(a.startswith(f"--{n}") for a in args)]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MSNP6_")}
    done = subprocess.run([_bin("twistd"), "-n", "--pidfile=", "msnp6", "--log-format", log_format,
                           *listeners, *args], cwd=tmp_path, env={**environ, **(env or {})},
                          capture_output=True, text=True, timeout=60)
    return Run(done.returncode, done.stdout, done.stderr)


def test_an_unreachable_database_is_one_json_line_with_the_password_masked(tmp_path):
    run = twistd(tmp_path, "--db", "postgresql://msnp6:s3cret-db-pw@127.0.0.1:1/nowhere",
                 "--key-file", str(tmp_path / "credential.key"))
    assert run.code == 1
    assert run.the_error() == ("msnp6 cannot start: the database at postgresql://msnp6:***@127.0.0.1:1/nowhere "
                               "is unreachable: connection refused")
    assert len(run.lines) == 1 and run.stderr == ""
    record = run.records()[0]
    assert record["namespace"] == "msnp6.startup" and {"time", "level", "message"} <= set(record)
    assert "s3cret-db-pw" not in run.stdout + run.stderr


@pytest.mark.parametrize("command", [["migrate"], ["user", "list"]])
def test_msnp6_admin_says_the_same_in_one_line(tmp_path, command):
    """``msnp6-admin migrate`` runs before every start (the systemd unit's ExecStartPre, the
    compose stack's migrate job): its refusal is one line too."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MSNP6_")}
    done = subprocess.run([_bin("msnp6-admin"), "--db", "postgresql://msnp6:s3cret-db-pw@127.0.0.1:1/nowhere",
                           "--key-file", str(tmp_path / "credential.key"), *command],
                          env=environ, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert (done.stdout, done.stderr) == ("", "msnp6-admin: the database at postgresql://msnp6:***@127.0.0.1:1/nowhere "
                                              "is unreachable: connection refused\n")


def test_with_text_the_same_fault_is_one_plain_line_on_stderr(tmp_path):
    run = twistd(tmp_path, "--db", "postgresql://msnp6:s3cret-db-pw@127.0.0.1:1/nowhere",
                 "--key-file", str(tmp_path / "credential.key"), log_format="text")
    assert run.code == 1
    assert run.stdout == ""
    assert run.stderr == ("msnp6 cannot start: the database at postgresql://msnp6:***@127.0.0.1:1/nowhere "
                          "is unreachable: connection refused\n")


def test_refused_credentials(tmp_path, pg_schema_url):
    url = pg_schema_url().replace("postgres@", "no_such_role_msnp6:pw@")
    run = twistd(tmp_path, "--db", url, "--key-file", str(tmp_path / "credential.key"))
    assert run.code == 2
    message = run.the_error()
    assert message.startswith("msnp6 cannot start: the database at postgresql+psycopg://no_such_role_msnp6:***@")
    assert 'refused the login: role "no_such_role_msnp6" does not exist' in message


def test_an_sqlite_file_whose_folder_cannot_be_made(tmp_path):
    """A file where the data folder should be (what a read-only or misnamed folder looks like to
    root, who may write anywhere)."""
    (tmp_path / "data").write_text("not a folder")
    path = tmp_path / "data" / "missing" / "msnp6.sqlite3"
    run = twistd(tmp_path, "--db", f"sqlite:///{path}", "--key-file", str(tmp_path / "credential.key"))
    assert run.code == 2
    assert run.the_error() == (f"msnp6 cannot start: the database at sqlite:///{path} cannot be opened: "
                               f"{tmp_path / 'data' / 'missing'}: not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_sqlite_file_in_a_missing_folder_of_a_read_only_one(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    path = locked / "missing" / "msnp6.sqlite3"
    run = twistd(tmp_path, "--db", f"sqlite:///{path}", "--key-file", str(tmp_path / "credential.key"))
    assert run.code == 2
    assert run.the_error().endswith(f"cannot be opened: {locked / 'missing'}: permission denied")


def test_a_postgresql_schema_below_head(tmp_path, pg_schema_url):
    run = twistd(tmp_path, "--db", pg_schema_url(), "--key-file", str(tmp_path / "credential.key"))
    assert run.code == 2
    message = run.the_error()
    assert f"the database schema is at nothing, not at {head_revision()}; run: msnp6-admin --db" in message
    assert message.endswith(" migrate")


def test_the_wrong_key(tmp_path, database, accounts):
    accounts.create()  # a password sealed with the session's key
    other = tmp_path / "other.key"
    CredentialKey.load(other, create=True)
    run = twistd(tmp_path, "--db", database.url, "--key-file", str(other))
    assert run.code == 2
    assert "key id" in run.the_error() and str(other) in run.the_error()


@pytest.mark.parametrize(("args", "env", "reason"), [
    (["--store-timeout", "-1"], {}, "--store-timeout must be 0 or more"),
    (["--roles", "xx"], {}, "--roles is a comma list of ds, ns, sb, web, not 'xx'"),
    (["--ds", "tcp:abc"], {}, "--ds 'tcp:abc' is not a listening endpoint such as tcp:1863: "),
    (["--ns", "ssl:1864"], {}, "--ns 'ssl:1864' is not a listening endpoint such as tcp:1864: "),
    (["--web", "tcp:abc"], {}, "--web 'tcp:abc' is not a listening endpoint such as tcp:8080: "),
    (["--db", "not a url"], {}, "--db / $MSNP6_DB is not a database URL: "),
    (["--bogus"], {}, "option --bogus not recognized"),
    (["--smtp-relay", "127.0.0.1:25"], {}, "--smtp-relay needs --mail-from ADDRESS"),
    (["--smtp-relay", "127.0.0.1:x", "--mail-from", "m@example.org"], {}, "--smtp-relay is HOST:PORT"),
    (["--smtp-relay", "127.0.0.1:25", "--mail-from", "nobody"], {}, "--mail-from is an address"),
    ([], {"MSNP6_SMTP_RELAY": "127.0.0.1:25", "MSNP6_LOG_FORMAT": "json"}, "--smtp-relay needs --mail-from"),
    # The format from the environment, as the compose file and the systemd unit set it.
    (["--node-ttl", "0"], {"MSNP6_LOG_FORMAT": "json"}, "--node-ttl must be between 1 and 3600 seconds"),
])
def test_bad_option_values(tmp_path, args, env, reason):
    if env:
        # No --log-format on the command line: the environment names it.
        done = subprocess.run([_bin("twistd"), "-n", "--pidfile=", "msnp6", *args], cwd=tmp_path,
                              env={**{k: v for k, v in os.environ.items() if not k.startswith("MSNP6_")}, **env},
                              capture_output=True, text=True, timeout=60)
        run = Run(done.returncode, done.stdout, done.stderr)
    else:
        run = twistd(tmp_path, "--db", f"sqlite:///{tmp_path / 'x.sqlite3'}",
                     "--key-file", str(tmp_path / "credential.key"), *args)
    assert run.code == 2
    assert run.the_error().startswith(f"msnp6 cannot start: {reason}")
    assert len(run.lines) == 1  # not twistd's help text


def test_a_taken_port_in_json(tmp_path):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        run = twistd(tmp_path, "--db", f"sqlite:///{tmp_path / 'x.sqlite3'}",
                     "--key-file", str(tmp_path / "credential.key"), f"--ns=tcp:{port}:interface=127.0.0.1")
    assert run.code == 1
    assert run.the_error() == (f"msnp6 cannot start: the ns listener cannot listen on "
                               f"tcp:{port}:interface=127.0.0.1: Address already in use")
    first = run.records()[0]
    assert first["message"].startswith("twistd ") and "starting up" in first["message"]  # JSON from the first line


@pytest.mark.parametrize(("log_format", "stream"), [("json", "stdout"), ("text", "stderr")])
def test_an_unexpected_fault_while_starting(log_format, stream):
    """What makeService runs inside: an exception nobody expected ends the process with status 1;
    in JSON as one record carrying the traceback, in text as Python prints it."""
    script = ("import sys\nfrom msnp6.refusal import refusing\n"
              "with refusing(sys.argv[1]):\n    {}['planted']\n")
    done = subprocess.run([sys.executable, "-c", script, log_format], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    if log_format == "json":
        assert done.stderr == ""
        lines = done.stdout.splitlines()
        assert len(lines) == 1
        record = json.loads(lines[0])
        assert record["level"] == "error"
        assert record["message"] == "msnp6 cannot start: unexpected KeyError: 'planted'"
        assert record["traceback"].startswith("Traceback (most recent call last):")
        assert record["traceback"].rstrip().endswith("KeyError: 'planted'")
    else:
        assert done.stdout == "" and "Traceback" in done.stderr and "KeyError: 'planted'" in done.stderr


def test_an_unexpected_fault_keeps_its_traceback_in_one_record():
    line = format_line("msnp6 cannot start: unexpected KeyError: 'x'", "json",
                       'Traceback (most recent call last):\n  File "x", line 1\nKeyError: \'x\'\n')
    assert line.endswith("\n") and line.count("\n") == 1
    record = json.loads(line)
    assert record["level"] == "error" and record["message"] == "msnp6 cannot start: unexpected KeyError: 'x'"
    assert record["traceback"].startswith("Traceback (most recent call last):")
    assert json.loads(format_line("braces {stay} as written", "json"))["message"] == "braces {stay} as written"
