"""The container stack: docker-compose.yml and the Dockerfile are wired right, and the exact
commands the stack runs (migrate, then the server) work with the stack's environment.

There is no Docker engine in CI, so the files are parsed and their commands run directly.
"""
from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from msnp6.testing import MsnpClient, ServerProcess, _bin, free_port

ROOT = Path(__file__).resolve().parents[1]
LISTENERS = {"MSNP6_DS": "ds", "MSNP6_NS": "ns", "MSNP6_SB": "sb", "MSNP6_ADMIN": "admin"}


# -- reading the files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${NAME}`` / ``${NAME:-default}`` / ``${NAME:?message}``, from ``env``."""
    env = env or {}

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg
        raise AssertionError(f"${{{name}}} must be set: {arg}")

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def service_env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    assert isinstance(raw, dict), "write environment as a mapping"
    return {k: interpolate(str(v)) for k, v in raw.items()}


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def docker_instructions(name: str) -> list[str]:
    return [args for word, args in dockerfile() if word == name]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in docker_instructions("ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def port_of(endpoint: str) -> int:
    kind, port, *_ = endpoint.split(":")
    assert kind == "tcp", endpoint
    return int(port)


def published(service: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """container port -> (host address or '', host port)."""
    out = {}
    for spec in service["ports"]:
        parts = str(spec).split(":")
        address = parts[0] if len(parts) == 3 else ""
        out[int(parts[-1])] = (address, int(parts[-2]))
    return out


# -- wiring --------------------------------------------------------------------------------------


def test_services_and_their_order(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "msnp6"}  # no redis until a cluster mode exists
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["msnp6"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert services["migrate"]["restart"] == "no"  # a one-shot job
    assert services["migrate"]["command"] == ["msnp6-admin", "migrate"]
    # Both run the image this repository builds.
    for name in ("migrate", "msnp6"):
        assert services[name]["build"] == "." and services[name]["image"] == "msnp6:local"


def test_both_use_the_compose_database(compose):
    services = compose["services"]
    pg = services["postgres"]["environment"]
    url = f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}"
    assert services["migrate"]["environment"]["MSNP6_DB"] == url
    assert services["msnp6"]["environment"]["MSNP6_DB"] == url
    assert services["postgres"].get("ports") is None  # the database stays inside the stack


def test_server_command_is_the_image_default(compose):
    cmd = compose["services"]["msnp6"]["command"]
    assert docker_instructions("CMD") == [json.dumps(cmd)]
    # Foreground, no pid file (a stale one in the volume would block the next start).
    assert cmd[:3] == ["twistd", "-n", "--pidfile="] and cmd[3] == "msnp6"


def test_ports_match_the_listeners(compose):
    service = compose["services"]["msnp6"]
    env = service_env(service)
    ports = published(service)
    exposed = {int(p) for args in docker_instructions("EXPOSE") for p in args.split()}
    for variable in ("MSNP6_DS", "MSNP6_NS", "MSNP6_SB"):
        port = port_of(env[variable])
        # XFR/RNG carry the listener's own port, so the host must publish the same number.
        assert ports[port] == ("", port), variable
        assert port in exposed
    admin = port_of(env["MSNP6_ADMIN"])
    assert ports[admin] == ("127.0.0.1", admin)  # no authentication: loopback only
    assert admin in exposed
    assert [port_of(env[v]) for v in ("MSNP6_DS", "MSNP6_NS", "MSNP6_SB")] == [1863, 1864, 1865]


def test_healthcheck_asks_the_admin_port(compose):
    service = compose["services"]["msnp6"]
    test = " ".join(service["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port_of(service_env(service)['MSNP6_ADMIN'])}/healthz" in test


def test_key_lives_on_a_named_volume(compose):
    service = compose["services"]["msnp6"]
    env = service_env(service)
    volume, _, mount = service["volumes"][0].partition(":")
    assert volume in compose["volumes"]
    key_dir = str(Path(env["MSNP6_KEY_FILE"]).parent)
    assert mount == key_dir
    assert image_env()["MSNP6_KEY_FILE"] == env["MSNP6_KEY_FILE"]
    assert docker_instructions("VOLUME") == [key_dir]
    assert "postgres-data" in compose["volumes"]


def test_environment_names_real_options(compose):
    env = service_env(compose["services"]["msnp6"])
    assert env["MSNP6_LOG_FORMAT"] == "json"
    assert interpolate(compose["services"]["msnp6"]["environment"]["MSNP6_PUBLIC_HOST"],
                       {"MSNP6_PUBLIC_HOST": "msn.example.org"}) == "msn.example.org"
    from msnp6.tap import ENV_DEFAULTS

    known = {variable for variable, _ in ENV_DEFAULTS.values()} | {"MSNP6_DB", "MSNP6_KEY_FILE"}
    assert set(env) <= known


def test_image_is_slim_and_not_root():
    assert docker_instructions("FROM") == ["python:3.11-slim"]
    users = docker_instructions("USER")
    assert users and users[-1] not in ("root", "0")
    assert any("pip install ." in args for args in docker_instructions("RUN"))


def test_image_copies_everything_the_package_needs():
    """Every package directory setup.cfg installs, and the files it reads, are copied in."""
    copied = {word for args in docker_instructions("COPY") for word in args.split()[:-1]}
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    package_dir = dict(
        line.split(" = ") for line in cfg["options"]["package_dir"].strip().splitlines()
    )
    for package in cfg["options"]["packages"].split():
        top = package_dir.get(package, package).replace(".", "/").split("/")[0]
        assert top in copied, package
    assert {"pyproject.toml", "setup.cfg", "README.md"} <= copied


# -- running what the stack runs -----------------------------------------------------------------


class ComposeServer(ServerProcess):
    """The msnp6 service's exact command and environment; only the paths, the listeners' ports
    and the database differ (they point at this machine)."""

    def __init__(self, compose: dict[str, Any], env: dict[str, str], workdir: Path) -> None:
        super().__init__(None, None, workdir, env=env)
        self.argv = list(compose["services"]["msnp6"]["command"])
        for variable, name in LISTENERS.items():
            self.ports[name] = free_port()
            self.env[variable] = f"tcp:{self.ports[name]}:interface=127.0.0.1"

    def command(self) -> list[str]:
        return [_bin(self.argv[0]), *self.argv[1:]]


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MSNP6_")}


def test_the_stack_commands_migrate_and_serve_a_login(compose, pg_schema_url, tmp_path, monkeypatch):
    for k in [k for k in os.environ if k.startswith("MSNP6_")]:
        monkeypatch.delenv(k)
    db = pg_schema_url()  # empty: nothing migrated
    # The image's environment, then the service's, then what must point at this machine.
    here = {"MSNP6_DB": db, "MSNP6_HOME": str(tmp_path / "data"),
            "MSNP6_KEY_FILE": str(tmp_path / "data" / "credential.key")}

    migrate = compose["services"]["migrate"]
    env = {**clean_environ(), **image_env(), **service_env(migrate), **here}
    argv = migrate["command"]
    done = subprocess.run([_bin(argv[0]), *argv[1:]], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    again = subprocess.run([_bin(argv[0]), *argv[1:]], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr  # the stack may run it on every `up`

    service = compose["services"]["msnp6"]
    env = {**image_env(), **service_env(service), **here}
    added = subprocess.run([_bin("msnp6-admin"), "user", "add", "erin@example.com"], input="pw\n",
                           env={**clean_environ(), **env}, capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr

    server = ComposeServer(compose, env, tmp_path / "run")
    server.start()
    try:
        with MsnpClient("127.0.0.1", server.ports["ds"]) as ds:
            ds.negotiate()
            ds.send("USR 3 MD5 I erin@example.com")
            # MSNP6_PUBLIC_HOST's default, with the notification server's own port.
            ds.expect(f"XFR 3 NS 127.0.0.1:{server.ports['ns']} 0")
        with server.client("ns") as ns:
            ns.login("erin@example.com", "pw")
        with urllib.request.urlopen(f"http://127.0.0.1:{server.ports['admin']}/readyz", timeout=30) as ready:
            assert ready.status == 200
        # The admin token was made on the volume next to the key, and msnp6-admin run with the
        # stack's environment (docker compose exec msnp6 msnp6-admin ...) finds it there.
        token_file = Path(here["MSNP6_KEY_FILE"]).parent / "admin-token"
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        unverify = subprocess.run([_bin("msnp6-admin"), "user", "unverify", "erin@example.com", "--admin-url",
                                   f"http://127.0.0.1:{server.ports['admin']}"],
                                  env={**clean_environ(), **env}, capture_output=True, text=True, timeout=60)
        assert (unverify.returncode, unverify.stderr) == (0, ""), unverify.stderr
    finally:
        code = server.stop()
    assert code == 0
    # MSNP6_LOG_FORMAT=json: every line on stdout is one JSON object.
    lines = server.output().splitlines()
    records = [json.loads(line) for line in lines]
    assert any(r["message"].startswith("msnp6 ns listening") and r["name"] == "ns" for r in records)
    assert all({"time", "level", "namespace", "message"} <= set(r) for r in records)
