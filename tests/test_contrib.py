"""contrib/: the systemd unit verifies and its exact commands (migrate, then the server) run with
its environment and the example env file; the logrotate snippet rotates a running server's log
without losing or corrupting what follows."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from msnp6.testing import ServerProcess, _bin
from msnp6.testing_cluster import ready

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "contrib" / "systemd" / "msnp6.service"
ENV_FILE = ROOT / "contrib" / "systemd" / "msnp6.env"
LOGROTATE = ROOT / "contrib" / "logrotate" / "msnp6"
INSTALLED_BIN = "/opt/msnp6/bin/"
LISTENERS = {"MSNP6_DS": "ds", "MSNP6_NS": "ns", "MSNP6_SB": "sb", "MSNP6_WEB": "web", "MSNP6_ADMIN": "admin"}


def unit_entries(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value given (systemd allows repeating a key)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"not a unit line: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def env_file(text: str) -> dict[str, str]:
    pairs = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, line
            pairs[key.strip()] = value.strip()
    return pairs


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return unit_entries(UNIT.read_text())


def one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit[section][key]
    assert len(values) == 1, (key, values)
    return values[0]


def local_argv(command: str) -> list[str]:
    """A unit command line, the installed virtualenv's scripts replaced by this one's."""
    argv = shlex.split(command)
    assert argv[0].startswith(INSTALLED_BIN), argv
    return [_bin(argv[0].removeprefix(INSTALLED_BIN)), *argv[1:]]


def test_systemd_verifies_the_unit(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    # The same unit, with the commands of this virtualenv (verify checks they are executable).
    local = tmp_path / "msnp6.service"
    local.write_text(UNIT.read_text().replace(INSTALLED_BIN, str(Path(_bin("twistd")).parent) + "/"))
    done = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), done.stderr


def test_the_unit_runs_as_its_own_user_in_its_own_folders(unit):
    unit_section, service = unit["Unit"], unit["Service"]
    assert {"network-online.target"} <= set(" ".join(unit_section["Wants"]).split())
    assert {"network-online.target", "postgresql.service"} <= set(" ".join(unit_section["After"]).split())
    assert one(unit, "Service", "User") == one(unit, "Service", "Group") == "msnp6"
    assert one(unit, "Service", "StateDirectory") == "msnp6"
    assert one(unit, "Service", "WorkingDirectory") == "/var/lib/msnp6"
    assert one(unit, "Service", "EnvironmentFile") == "/etc/msnp6/msnp6.env"
    assert one(unit, "Service", "Restart") == "on-failure"
    assert one(unit, "Service", "RestartPreventExitStatus") == "2"  # msnp6.refusal.REFUSED
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert one(unit, "Service", key) == "yes", key
    assert one(unit, "Service", "ProtectSystem") == "strict"
    writable = set(one(unit, "Service", "ReadWritePaths").split())
    assert writable == {"/var/lib/msnp6", "/var/log/msnp6"}
    environment = dict(v.split("=", 1) for v in service["Environment"])
    assert Path(environment["MSNP6_KEY_FILE"]).parent == Path(environment["MSNP6_HOME"]) == Path("/var/lib/msnp6")
    assert one(unit, "Install", "WantedBy") == "multi-user.target"

    from msnp6.refusal import REFUSED

    assert int(one(unit, "Service", "RestartPreventExitStatus")) == REFUSED


def test_the_env_file_names_real_settings():
    from msnp6.tap import ENV_DEFAULTS

    known = {variable for variable, _ in ENV_DEFAULTS.values()} | {
        "MSNP6_DB", "MSNP6_KEY_FILE", "MSNP6_HOME", "MSNP6_ADMIN_URL", "PGPASSWORD"}
    settings = env_file(ENV_FILE.read_text())
    assert set(settings) <= known
    assert "@" not in settings["MSNP6_DB"].partition("://")[2].partition("@")[0].partition(":")[2]  # no password
    assert settings["MSNP6_ADMIN_URL"] == f"http://127.0.0.1:{settings['MSNP6_ADMIN'].split(':')[1]}"
    # The web side on loopback behind the TLS proxy of docs/hosting.md: an https base, so its
    # cookie gets Secure.
    assert settings["MSNP6_WEB"].endswith(":interface=127.0.0.1")
    assert settings["MSNP6_WEB_BASE_URL"].startswith("https://")


class UnitServer(ServerProcess):
    """The unit's ExecStart with its environment (Environment=, then the env file), run in
    its WorkingDirectory; only the paths, the database and the listeners' ports point at this
    machine. Its output goes to ``out_file``, opened for appending as systemd's ``append:`` does."""

    def __init__(self, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        super().__init__(None, None, workdir, env=env,
                         services=[name for variable, name in LISTENERS.items() if variable in env])
        self.argv = argv
        for variable, name in LISTENERS.items():
            if variable in env:
                self.env[variable] = f"tcp:{self.ports[name]}:interface=127.0.0.1"
        self.env["MSNP6_ADMIN_URL"] = f"http://127.0.0.1:{self.ports['admin']}"

    def command(self) -> list[str]:
        return self.argv


def unit_environment(unit: dict[str, dict[str, list[str]]], tmp_path: Path, db: str) -> dict[str, str]:
    """What the unit's processes see: Environment=, the env file over it, then this machine."""
    env = dict(v.split("=", 1) for v in unit["Service"]["Environment"])
    env.update(env_file(ENV_FILE.read_text()))
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env.update(MSNP6_DB=db, MSNP6_HOME=str(state), MSNP6_KEY_FILE=str(state / "credential.key"))
    return env


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MSNP6_", "PG"))}


def start_unit(unit, tmp_path: Path, db: str, out: Path) -> UnitServer:
    env = unit_environment(unit, tmp_path, db)
    migrate = local_argv(one(unit, "Service", "ExecStartPre"))
    for _ in range(2):  # every start runs it
        done = subprocess.run(migrate, env={**clean_environ(), **env}, capture_output=True, text=True,
                              timeout=120, cwd=env["MSNP6_HOME"])
        assert done.returncode == 0, done.stderr
    added = subprocess.run([_bin("msnp6-admin"), "user", "add", "erin@example.com"], input="pw\n",
                           env={**clean_environ(), **env}, capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    server = UnitServer(local_argv(one(unit, "Service", "ExecStart")), env, Path(env["MSNP6_HOME"]))
    server.out_file = out
    server.start()
    return server


def json_records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_the_unit_commands_migrate_and_serve_a_login(unit, pg_schema_url, tmp_path, monkeypatch):
    for k in [k for k in os.environ if k.startswith(("MSNP6_", "PG"))]:
        monkeypatch.delenv(k)
    server = start_unit(unit, tmp_path, pg_schema_url(), tmp_path / "journal.out")
    try:
        with server.client("ns") as ns:
            ns.login("erin@example.com", "pw")
        assert ready(server.ports["admin"])[0] == 200
        # The web side listens too (Messenger posts its sign-in form here; a GET gets a page saying so).
        with urllib.request.urlopen(f"http://127.0.0.1:{server.ports['web']}/n2p/account", timeout=10) as page:
            assert page.status == 200 and page.read().startswith(b"<!DOCTYPE html>")
    finally:
        code = server.stop()
    assert code == 0
    records = json_records(server.output())  # every line JSON, from the first
    assert records[0]["message"].startswith("twistd ")
    assert any(r["message"].startswith("msnp6 running: ") for r in records)


def test_logrotate_copytruncate_keeps_the_log_whole(unit, tmp_path, monkeypatch):
    if shutil.which("logrotate") is None:
        pytest.skip("logrotate is not installed")
    for k in [k for k in os.environ if k.startswith(("MSNP6_", "PG"))]:
        monkeypatch.delenv(k)
    logs = tmp_path / "log"
    logs.mkdir(mode=0o750)
    log_file = logs / "msnp6.log"
    user, group = (subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip(),
                   subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip())
    snippet = LOGROTATE.read_text()
    assert "/var/log/msnp6/*.log {" in snippet and "su msnp6 msnp6" in snippet and "copytruncate" in snippet
    config = tmp_path / "logrotate.conf"
    config.write_text(snippet.replace("/var/log/msnp6/", f"{logs}/").replace("su msnp6 msnp6", f"su {user} {group}"))
    config.chmod(0o644)

    server = start_unit(unit, tmp_path, f"sqlite:///{tmp_path / 'msnp6.sqlite3'}", log_file)  # a database of its own
    try:
        done = subprocess.run(["logrotate", "-f", "-s", str(tmp_path / "logrotate.state"), str(config)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        with server.client("ns") as ns:  # something to log after the rotation
            ns.login("erin@example.com", "pw")
    finally:
        code = server.stop()
    assert code == 0
    before = (logs / "msnp6.log.1").read_text()  # delaycompress: the newest rotation stays plain
    after = log_file.read_bytes()
    assert b"\0" not in after  # O_APPEND: no hole where the old content was
    assert any(r["message"].startswith("msnp6 running: ") for r in json_records(before))
    records = json_records(after.decode())
    assert records and not any(r["message"].startswith("msnp6 running: ") for r in records)
    assert any("shutting down" in r["message"] for r in records)


def test_the_documented_install_puts_the_files_where_the_unit_looks(unit):
    """docs/hosting.md's steps install the env file where EnvironmentFile= reads it, the unit
    where systemd finds it, the logrotate snippet in logrotate.d, and make the unit's user."""
    doc = (ROOT / "docs" / "hosting.md").read_text()
    assert f"contrib/systemd/msnp6.env {one(unit, 'Service', 'EnvironmentFile')}" in doc
    assert "contrib/systemd/msnp6.service /etc/systemd/system/msnp6.service" in doc
    assert "/etc/logrotate.d/msnp6" in doc and "StandardOutput=append:/var/log/msnp6/msnp6.log" in doc
    assert f"useradd --system --home-dir {one(unit, 'Service', 'WorkingDirectory')}" in doc
    assert f"{one(unit, 'Service', 'User')}\n" in doc.split("useradd", 1)[1]
    assert "StandardOutput=append:/var/log/msnp6/msnp6.log" in LOGROTATE.read_text()
