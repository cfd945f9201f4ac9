"""The container stack: docker-compose.yml (and its cluster override) and the Dockerfile are wired
right, and the exact commands the stack runs (migrate, then the server; or migrate, the DS and two
NS/SB nodes of the cluster profile) work with the stack's environment.

There is no Docker engine in CI, so the files are parsed and their commands run directly.
"""
from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from test_web_side_e2e import Online, client_form, request, url_reply

from msnp6.testing import MsnpClient, RedisServerProcess, ServerProcess, _bin
from msnp6.testing_cluster import ready

ROOT = Path(__file__).resolve().parents[1]
LISTENERS = {"MSNP6_DS": "ds", "MSNP6_NS": "ns", "MSNP6_SB": "sb", "MSNP6_WEB": "web", "MSNP6_ADMIN": "admin"}
SINGLE = {"postgres", "migrate", "msnp6"}
CLUSTER = {"postgres", "migrate", "redis", "ds", "node-a", "node-b", "web"}
#: The cluster's msnp6 processes, and the listeners each one must have (and only those).
CLUSTER_SERVERS = {"ds": {"ds", "admin"}, "node-a": {"ns", "sb", "admin"}, "node-b": {"ns", "sb", "admin"},
                   "web": {"web", "admin"}}
#: What the stack's MSNP6_WEB_BASE_URL is when .env does not set it.
DEFAULT_WEB_BASE = "http://localhost:8080/"


# -- reading the files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def cluster_compose(compose) -> dict[str, Any]:
    """docker-compose.yml with docker-compose.cluster.yml laid over it, as ``-f a -f b`` does
    (the override only sets keys that are not in the base, so a shallow merge per service is it)."""
    override = yaml.safe_load((ROOT / "docker-compose.cluster.yml").read_text())
    merged = {**compose, "services": {name: dict(service) for name, service in compose["services"].items()}}
    for name, fields in override["services"].items():
        assert not set(fields) & set(compose["services"][name]), f"{name}: the override replaces keys"
        merged["services"][name].update(fields)
    return merged


def started(compose: dict[str, Any], *profiles: str) -> set[str]:
    """The services ``docker compose --profile P... up`` starts: those without a profile and
    those in one of ``profiles``."""
    return {name for name, service in compose["services"].items()
            if not service.get("profiles") or set(service["profiles"]) & set(profiles)}


#: What an operator's .env sets for these tests: a password with every character a URL would
#: need escaped, which the stack must pass through untouched.
PASSWORD = "p@ss:w/rd#50%"
STACK_ENV = {"POSTGRES_PASSWORD": PASSWORD}
PASSWORD_MESSAGE = "set POSTGRES_PASSWORD in .env (see docs/hosting.md)"


class MissingVariable(Exception):
    """A ``${NAME:?message}`` whose variable is unset or empty: compose stops with ``message``."""


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${NAME}`` / ``${NAME:-default}`` / ``${NAME:?message}``, from ``env``."""
    env = env or {}

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg
        if op == ":?":
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        return ""  # a plain ${NAME} that is unset is empty

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def interpolate_all(node: Any, env: dict[str, str]) -> Any:
    """Every string of a parsed compose file interpolated, as compose does before anything else."""
    if isinstance(node, dict):
        return {k: interpolate_all(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_all(v, env) for v in node]
    return interpolate(node, env) if isinstance(node, str) else node


def service_env(service: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, str]:
    """The service's environment with ``env`` (default: STACK_ENV) as the operator's .env."""
    raw = service.get("environment") or {}
    assert isinstance(raw, dict), "write environment as a mapping"
    return {k: interpolate(str(v), STACK_ENV if env is None else env) for k, v in raw.items()}


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
    assert started(compose) == SINGLE  # `docker compose up -d` is still the single node
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


def test_both_use_the_compose_database(compose, cluster_compose):
    services = cluster_compose["services"]
    pg = service_env(services["postgres"])
    # No password in the URL (it would need URL-escaping): libpq reads it from PGPASSWORD.
    url = f"postgresql://{pg['POSTGRES_USER']}@postgres:5432/{pg['POSTGRES_DB']}"
    for name in ("migrate", "msnp6", *CLUSTER_SERVERS):
        env = service_env(services[name])
        assert env["MSNP6_DB"] == url, name
        assert env["PGPASSWORD"] == pg["POSTGRES_PASSWORD"] == PASSWORD, name
    assert services["postgres"].get("ports") is None  # the database stays inside the stack


@pytest.mark.parametrize("env", [{}, {"POSTGRES_PASSWORD": ""}, {"MSNP6_PUBLIC_HOST": "msn.example.org"}])
def test_no_stack_without_a_database_password(env):
    """No silent default: without POSTGRES_PASSWORD compose stops, saying what to do (the
    cluster override is laid over this file, so it stops the cluster too)."""
    text = (ROOT / "docker-compose.yml").read_text()
    with pytest.raises(MissingVariable) as refused:
        interpolate_all(yaml.safe_load(text), env)
    assert str(refused.value) == f"required variable POSTGRES_PASSWORD is missing a value: {PASSWORD_MESSAGE}"
    assert "POSTGRES_PASSWORD:-" not in text  # the old silent default
    assert (ROOT / "docs" / "hosting.md").exists()  # where the message sends the operator
    interpolate_all(yaml.safe_load(text), STACK_ENV)  # set: every string interpolates


def test_the_env_example_names_the_password_but_gives_none():
    """A copied .env.example must not start a stack with a password everybody can read."""
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line.strip() and not line.startswith("#"))
    assert example["POSTGRES_PASSWORD"] == ""
    with pytest.raises(MissingVariable):
        interpolate_all(yaml.safe_load((ROOT / "docker-compose.yml").read_text()), example)
    filled = {**example, "POSTGRES_PASSWORD": PASSWORD}
    interpolate_all(yaml.safe_load((ROOT / "docker-compose.yml").read_text()), filled)


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
    # The web side, published for browsers (or a reverse proxy on the host), at the base URL
    # replies name by default.
    web = port_of(env["MSNP6_WEB"])
    assert ports[web] == ("", web) and web in exposed
    assert env["MSNP6_WEB_BASE_URL"] == DEFAULT_WEB_BASE == f"http://localhost:{web}/"
    assert set(ports) == {port_of(env[v]) for v in LISTENERS}


def test_the_image_exposes_every_port_the_stack_uses(cluster_compose):
    exposed = {int(p) for args in docker_instructions("EXPOSE") for p in args.split()}
    used = {port for service in cluster_compose["services"].values()
            if service.get("image") == "msnp6:local" and service.get("ports") for port in published(service)}
    assert used == exposed


def test_the_web_base_url_comes_from_env(compose, cluster_compose):
    """One .env line points every URL reply (and CVR's download page) at the public web base
    (docs/hosting.md); the DS uses none, but gets the cluster's shared environment."""
    operator = {**STACK_ENV, "MSNP6_WEB_BASE_URL": "https://msn.example.org/"}
    for name in ("msnp6", *CLUSTER_SERVERS):
        service = cluster_compose["services"][name]
        assert service_env(service)["MSNP6_WEB_BASE_URL"] == DEFAULT_WEB_BASE, name
        assert service_env(service, operator)["MSNP6_WEB_BASE_URL"] == "https://msn.example.org/", name


def test_healthcheck_asks_the_admin_port(compose):
    service = compose["services"]["msnp6"]
    test = " ".join(service["healthcheck"]["test"])
    # Ready, not merely alive: the listeners are bound and the database answers at head.
    assert f"http://127.0.0.1:{port_of(service_env(service)['MSNP6_ADMIN'])}/readyz" in test


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

    known = {variable for variable, _ in ENV_DEFAULTS.values()} | {"MSNP6_DB", "MSNP6_KEY_FILE", "PGPASSWORD"}
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


# -- the cluster profile -------------------------------------------------------------------------


def test_the_cluster_profile_replaces_the_single_node(compose, cluster_compose):
    # Without the override, the profile adds the cluster next to the single node...
    assert started(compose, "cluster") == SINGLE | CLUSTER
    # ...with it (the documented command), the single node is left out and nothing else changes.
    assert started(cluster_compose, "cluster") == CLUSTER
    assert started(cluster_compose, "single") == SINGLE
    assert started(cluster_compose) == {"postgres", "migrate"}
    for name in CLUSTER - {"postgres", "migrate"}:
        assert compose["services"][name]["profiles"] == ["cluster"]
    assert {k: v for k, v in cluster_compose["services"]["msnp6"].items() if k != "profiles"} == \
        compose["services"]["msnp6"]
    text = (ROOT / "docker-compose.yml").read_text()
    assert "docker compose -f docker-compose.yml -f docker-compose.cluster.yml --profile cluster up -d" in text


def test_cluster_dependencies_exist_and_wait_for_health(cluster_compose):
    services = cluster_compose["services"]
    ready = {"postgres": {"condition": "service_healthy"},
             "migrate": {"condition": "service_completed_successfully"},
             "redis": {"condition": "service_healthy"}}
    assert services["ds"]["depends_on"] == ready
    assert services["web"]["depends_on"] == ready  # it needs no node: it is ready without one
    for node in ("node-a", "node-b"):
        # Started, not healthy: the DS is ready only once a notification node is live.
        assert services[node]["depends_on"] == {**ready, "ds": {"condition": "service_started"}}
    for deployment in (SINGLE, CLUSTER):
        for name in deployment:
            assert set(services[name].get("depends_on", {})) <= deployment, name
    redis = services["redis"]
    assert redis["image"].split(":")[0] == "redis"  # the official image
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert redis.get("ports") is None  # Redis stays inside the stack


def test_published_ports_do_not_collide(compose, cluster_compose):
    for services, deployment in ((compose["services"], SINGLE), (cluster_compose["services"], CLUSTER)):
        taken: dict[int, str] = {}
        for name in sorted(deployment):
            # One address or every one (''): either way a second service cannot have the port.
            for _, port in published(services[name]).values() if services[name].get("ports") else ():
                assert port not in taken, f"{name} and {taken[port]} both publish {port}"
                taken[port] = name


def test_each_cluster_server_is_a_node_of_its_own(compose, cluster_compose):
    services = cluster_compose["services"]
    names = [service_env(services[s])["MSNP6_NODE"] for s in CLUSTER_SERVERS]
    assert len(set(names)) == len(names)
    single = service_env(compose["services"]["msnp6"])
    for name, listeners in CLUSTER_SERVERS.items():
        service = services[name]
        env = service_env(service)
        assert service["command"] == compose["services"]["msnp6"]["command"]  # the image's CMD
        assert env["MSNP6_BUS"] == "redis://redis:6379/0"
        assert env["MSNP6_DB"] == single["MSNP6_DB"]  # PostgreSQL holds the truth for all of them
        assert env["MSNP6_PUBLIC_HOST"] == single["MSNP6_PUBLIC_HOST"]
        assert env["MSNP6_LOG_FORMAT"] == "json"
        assert set(env["MSNP6_ROLES"].split(",")) == listeners - {"admin"}
        assert {LISTENERS[v] for v in LISTENERS if v in env} == listeners
        ports = published(service)
        for variable in ("MSNP6_DS", "MSNP6_NS", "MSNP6_SB"):
            if variable in env:
                # XFR/RNG name this node's own port: the host publishes the same number.
                port = port_of(env[variable])
                assert ports[port] == ("", port), (name, variable)
        admin = port_of(env["MSNP6_ADMIN"])
        assert ports[admin] == ("127.0.0.1", admin), name  # no authentication for reads: loopback
        assert env["MSNP6_ADMIN_URL"] == f"http://127.0.0.1:{admin}"  # msnp6-admin inside finds it
        assert set(ports) == {port_of(env[v]) for v in LISTENERS if v in env}, name
        test = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{admin}/readyz" in test, name  # ready means the bus too
    assert port_of(service_env(services["ds"])["MSNP6_DS"]) == 1863  # what unmodified clients dial


def test_every_server_shares_one_key(compose, cluster_compose):
    """Every node unseals the stored passwords: one key file, on one volume, for all of them."""
    services = cluster_compose["services"]
    servers = ["msnp6", *CLUSTER_SERVERS]
    mounts = {tuple(services[name]["volumes"]) for name in servers}
    assert len(mounts) == 1
    volume, _, mount = next(iter(mounts))[0].partition(":")
    assert volume in compose["volumes"]
    for name in servers:
        assert Path(service_env(services[name])["MSNP6_KEY_FILE"]).parent == Path(mount), name


def test_cluster_environment_names_real_options(cluster_compose):
    from msnp6.tap import ENV_DEFAULTS

    known = {variable for variable, _ in ENV_DEFAULTS.values()} | {
        "MSNP6_DB", "MSNP6_KEY_FILE", "MSNP6_ADMIN_URL", "PGPASSWORD"}
    for name in CLUSTER_SERVERS:
        env = service_env(cluster_compose["services"][name])
        assert {"MSNP6_BUS", "MSNP6_NODE", "MSNP6_ROLES"} <= set(env) <= known, name


def compose_cli() -> list[str] | None:
    """``docker compose`` (v2) or ``docker-compose`` (v1.28+), whichever is installed."""
    for argv in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(argv[0]) and subprocess.run([*argv, "version"], capture_output=True).returncode == 0:
            return argv
    return None


@pytest.mark.parametrize("files", [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.cluster.yml"]])
def test_compose_itself_accepts_the_files(files):
    cli = compose_cli()
    if cli is None:
        pytest.skip("no docker compose here (the checks above read the files themselves)")
    args = [*cli, *(a for f in files for a in ("-f", f)), "--profile", "cluster", "config", "-q"]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**clean_environ(), "POSTGRES_PASSWORD": "x"})
    assert done.returncode == 0, done.stderr


# -- running what the stack runs -----------------------------------------------------------------


class ComposeServer(ServerProcess):
    """A compose service's exact command and environment; only the paths, the listeners' ports,
    the database and Redis differ (they point at this machine). Each listener the service sets
    gets a free port of 127.0.0.1, and it gets no other: a DS-only service keeps its DS and admin
    port, a node its NS, SB and admin ports."""

    def __init__(self, compose: dict[str, Any], env: dict[str, str], workdir: Path, service: str = "msnp6") -> None:
        super().__init__(None, None, workdir, env=env,
                         services=[name for variable, name in LISTENERS.items() if variable in env])
        self.argv = list(compose["services"][service]["command"])
        for variable, name in LISTENERS.items():
            if variable in env:
                self.env[variable] = f"tcp:{self.ports[name]}:interface=127.0.0.1"
        if "MSNP6_ADMIN_URL" in env:
            self.env["MSNP6_ADMIN_URL"] = f"http://127.0.0.1:{self.ports['admin']}"

    def command(self) -> list[str]:
        return [_bin(self.argv[0]), *self.argv[1:]]

    def ready(self) -> int:
        """The status /readyz answers (0: nothing answers)."""
        return ready(self.ports["admin"])[0]


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MSNP6_")}


def stack_env(service: dict[str, Any], here: dict[str, str]) -> dict[str, str]:
    """The image's environment, then the service's, then ``here`` (what must point at this machine)."""
    return {**image_env(), **service_env(service), **here}


def run_migrate(compose: dict[str, Any], here: dict[str, str]) -> None:
    """The migrate service's command, twice (the stack may run it on every ``up``)."""
    migrate = compose["services"]["migrate"]
    env = {**clean_environ(), **stack_env(migrate, here)}
    argv = migrate["command"]
    for _ in range(2):
        done = subprocess.run([_bin(argv[0]), *argv[1:]], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr


def admin_cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``msnp6-admin *args`` with a service's environment (``docker compose exec SERVICE msnp6-admin``)."""
    return subprocess.run([_bin("msnp6-admin"), *args], input=stdin, env={**clean_environ(), **env},
                          capture_output=True, text=True, timeout=60)


def add_user(env: dict[str, str], handle: str, *args: str) -> None:
    """``msnp6-admin user add handle *args`` (password ``pw``) with a service's environment."""
    added = admin_cli(env, "user", "add", handle, *args, stdin="pw\n")
    assert added.returncode == 0, added.stderr


def local_paths(tmp_path: Path, db: str) -> dict[str, str]:
    """The database and the data folder (the key volume) on this machine."""
    return {"MSNP6_DB": db, "MSNP6_HOME": str(tmp_path / "data"),
            "MSNP6_KEY_FILE": str(tmp_path / "data" / "credential.key")}


def test_the_stack_commands_migrate_and_serve_a_login(compose, pg_schema_url, tmp_path, monkeypatch):
    for k in [k for k in os.environ if k.startswith("MSNP6_")]:
        monkeypatch.delenv(k)
    here = local_paths(tmp_path, pg_schema_url())  # empty: nothing migrated
    run_migrate(compose, here)

    env = stack_env(compose["services"]["msnp6"], here)
    add_user(env, "erin@example.com")

    server = ComposeServer(compose, env, tmp_path / "run")
    assert env["MSNP6_WEB_BASE_URL"] == DEFAULT_WEB_BASE  # what replies name unless .env says
    server.env["MSNP6_WEB_BASE_URL"] = f"http://127.0.0.1:{server.ports['web']}/"  # this machine's
    server.start()
    try:
        with MsnpClient("127.0.0.1", server.ports["ds"]) as ds:
            ds.negotiate()
            ds.send("USR 3 MD5 I erin@example.com")
            # MSNP6_PUBLIC_HOST's default, with the notification server's own port.
            ds.expect(f"XFR 3 NS 127.0.0.1:{server.ports['ns']} 0")
        with server.client("ns") as ns:
            profile = ns.login("erin@example.com", "pw")
            # The web side the stack publishes: the client's profile menu item signs Erin in.
            cookie = web_sign_in(Online(ns, "erin@example.com", "pw", *login_headers(profile)), server.ports["web"])
            honest = request(server.ports["web"], "GET", "/n2p/account", cookie=cookie)
            assert honest.status == 200 and honest.body.startswith("<!DOCTYPE html>"), honest
        assert server.ready() == 200
        # The admin token was made on the volume next to the key, and msnp6-admin run with the
        # stack's environment (docker compose exec msnp6 msnp6-admin ...) finds it there.
        token_file = Path(here["MSNP6_KEY_FILE"]).parent / "admin-token"
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        unverify = admin_cli(env, "user", "unverify", "erin@example.com", "--admin-url",
                             f"http://127.0.0.1:{server.ports['admin']}")
        assert (unverify.returncode, unverify.stderr) == (0, ""), unverify.stderr
    finally:
        code = server.stop()
    assert code == 0
    # MSNP6_LOG_FORMAT=json: every line on stdout is one JSON object.
    lines = server.output().splitlines()
    records = [json.loads(line) for line in lines]
    assert any(r["message"].startswith("msnp6 ns listening") and r["name"] == "ns" for r in records)
    assert all({"time", "level", "namespace", "message"} <= set(r) for r in records)


@pytest.fixture
def password_postgres() -> Any:
    from msnp6 import testing_postgres

    if not testing_postgres.available():
        pytest.skip("initdb/pg_ctl are not installed")
    server = testing_postgres.PasswordPostgres()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_a_password_with_url_characters_reaches_postgresql(compose, password_postgres, tmp_path, monkeypatch):
    """The stack's MSNP6_DB (no password) and PGPASSWORD (POSTGRES_PASSWORD as written in .env)
    against a PostgreSQL that checks passwords: psycopg reads PGPASSWORD through SQLAlchemy, and
    ``@ : / # %`` need no escaping. A wrong one is refused with one line saying so."""
    for k in [k for k in os.environ if k.startswith(("MSNP6_", "PG"))]:
        monkeypatch.delenv(k)
    pg = password_postgres
    pg.psql("CREATE ROLE msnp6 LOGIN PASSWORD '{}'".format(PASSWORD.replace("'", "''")))
    pg.psql("CREATE DATABASE msnp6 OWNER msnp6")
    stack_url = service_env(compose["services"]["msnp6"])["MSNP6_DB"]
    here = local_paths(tmp_path, stack_url.replace("@postgres:5432/", f"@127.0.0.1:{pg.port}/"))
    run_migrate(compose, here)
    env = stack_env(compose["services"]["msnp6"], here)
    assert env["PGPASSWORD"] == PASSWORD and PASSWORD not in env["MSNP6_DB"]
    add_user(env, "erin@example.com")
    server = ComposeServer(compose, env, tmp_path / "run")
    server.start()
    try:
        with server.client("ns") as ns:
            ns.login("erin@example.com", "pw")
        assert server.ready() == 200
    finally:
        assert server.stop() == 0
    assert PASSWORD not in server.output()

    wrong = ComposeServer(compose, {**env, "PGPASSWORD": PASSWORD + "x"}, tmp_path / "wrong")
    done = subprocess.run(wrong.command(), env={**clean_environ(), **wrong.env}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    records = [json.loads(line) for line in (done.stdout + done.stderr).splitlines()]
    assert [r["message"] for r in records] == [
        f"msnp6 cannot start: the database at postgresql://msnp6@127.0.0.1:{pg.port}/msnp6 refused the login: "
        'password authentication failed for user "msnp6"']


def login_headers(profile: Any) -> tuple[str, int]:
    """The MSPAuth and LoginTime of the profile message a login gets."""
    headers = dict(re.findall(r"^([\w-]+): (.*?)\r$", profile.payload.decode("utf-8"), re.M))
    return headers["MSPAuth"], int(headers["LoginTime"])


def web_sign_in(user: Online, web_port: int) -> str:
    """The client's way onto the web side: ``URL PROFILE``, the form it posts to the login URL
    (which must be the web listener at ``web_port``), the redirect followed; the session cookie."""
    redirect, login_url, psid = url_reply(user)
    parts = urlsplit(login_url)
    assert (parts.hostname, parts.port, parts.path) == ("127.0.0.1", web_port, "/ppsecure/md5auth.srf"), login_url
    answer = request(web_port, "POST", f"{parts.path}?{parts.query}", client_form(user, redirect, psid))
    assert answer.status == 302, answer
    cookie = answer.cookie()
    assert cookie is not None
    page = request(web_port, "GET", answer.headers["location"], cookie=cookie)
    assert page.status == 200 and f"Signed in as {user.handle}" in page.body, page
    return cookie


def xfr_ns(ds_port: int, handle: str) -> int:
    """The notification port the DS sends ``handle`` to (0: it named none)."""
    with MsnpClient("127.0.0.1", ds_port) as ds:
        ds.negotiate()
        ds.send(f"USR 3 MD5 I {handle}")
        words = ds.recv().words
    if words[:3] != ["XFR", "3", "NS"]:
        return 0
    host, port = words[3].split(":")
    assert host == "127.0.0.1" and words[4] == "0", words  # MSNP6_PUBLIC_HOST's default
    return int(port)


def eventually(probe: Any, what: str, timeout: float = 20.0) -> Any:
    """``probe()`` until it gives something true; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (result := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


def logged_in(port: int, handle: str) -> tuple[MsnpClient, Online]:
    """A client logged in on the notification server at ``port``, and what the web side needs of it."""
    ns = MsnpClient("127.0.0.1", port)
    ns.auto_challenge = True
    profile = ns.login(handle, "pw")
    ns.sync(0)
    return ns, Online(ns, handle, "pw", *login_headers(profile))


def test_the_cluster_commands_serve_users_on_two_nodes(cluster_compose, pg_schema_url, tmp_path, monkeypatch):
    """migrate, ds, node-a, node-b and web of the cluster profile, each with its exact command
    and environment (the database, Redis, paths, ports and the web base pointed at this machine;
    one data folder for all, as the shared key volume): two users sent to different nodes by the
    DS see each other come online and chat through a switchboard, and one of them signs in on
    the web-only process from her node's URL reply."""
    for k in [k for k in os.environ if k.startswith("MSNP6_")]:
        monkeypatch.delenv(k)
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    redis = RedisServerProcess(tmp_path / "redis")  # a private one: database 0 is all theirs
    redis.start()
    here = {**local_paths(tmp_path, pg_schema_url()), "MSNP6_BUS": redis.url}
    run_migrate(cluster_compose, here)
    services = cluster_compose["services"]
    servers = {name: ComposeServer(cluster_compose, stack_env(services[name], here), tmp_path / name, name)
               for name in CLUSTER_SERVERS}
    alice, bob = "alice@example.com", "bob@example.com"
    add_user(servers["ds"].env, alice, "--name", "Alice")
    add_user(servers["ds"].env, bob, "--name", "Bob")
    nodes = {servers[name].ports["ns"]: name for name in ("node-a", "node-b")}
    sb_ports = {servers[name].ports["sb"] for name in ("node-a", "node-b")}
    assert set(servers["ds"].ports) == {"ds", "admin"}  # a DS-only process listens on nothing else
    assert set(servers["web"].ports) == {"web", "admin"}  # nor does the web side
    web_base = f"http://127.0.0.1:{servers['web'].ports['web']}/"
    for name in ("node-a", "node-b"):
        assert servers[name].env["MSNP6_WEB_BASE_URL"] == DEFAULT_WEB_BASE
        servers[name].env["MSNP6_WEB_BASE_URL"] = web_base  # the web service as this machine reaches it
    clients: list[MsnpClient] = []
    codes = {}
    try:
        for server in servers.values():  # in compose's order: the DS, then the nodes
            server.start()
        for name, server in servers.items():
            eventually(lambda server=server: server.ready() == 200, f"{name} to be ready")
        ds = servers["ds"].ports["ds"]
        first = eventually(lambda: xfr_ns(ds, alice), "the DS to name a node")
        assert first in nodes
        a, alice_online = logged_in(first, alice)
        clients.append(a)
        # The least-loaded live node: once Alice's node reports her, Bob is sent to the other one.
        second = eventually(lambda: (port := xfr_ns(ds, bob)) != first and port, "a second node")
        assert second in nodes
        b, _ = logged_in(second, bob)
        clients.append(b)

        # Presence across the nodes (through Redis): each adds the other; Bob comes online, then
        # Alice sees him at her first CHG and he sees her come online and each change of his reaches her.
        a.command(f"ADD {{t}} FL {bob} Bob")
        b.command(f"ADD {{t}} FL {alice} Alice")
        b.command("CHG {t} NLN")
        t, lines = a.command("CHG {t} NLN")
        assert f"ILN {t} NLN {bob} Bob" in lines
        b.recv_until(lambda r: r.line == f"NLN NLN {alice} Alice")
        b.command("CHG {t} AWY")
        a.recv_until(lambda r: r.line == f"NLN AWY {bob} Bob")

        # A chat: Alice's switchboard (on whichever node XFR SB names) rings Bob on his node.
        t, lines = a.command("XFR {t} SB")
        words = next(line for line in lines if line.startswith(f"XFR {t} SB ")).split()
        host, port = words[3].split(":")
        assert host == "127.0.0.1" and int(port) in sb_ports and words[4] == "CKI"
        sb_a = MsnpClient(host, int(port))
        clients.append(sb_a)
        sb_a.send(f"USR 1 {alice} {words[5]}")
        sb_a.expect(f"USR 1 OK {alice} Alice")
        sb_a.send(f"CAL 2 {bob}")
        ringing = sb_a.recv().words
        assert ringing[:3] == ["CAL", "2", "RINGING"], ringing
        rng = b.recv_until(lambda r: r.name == "RNG")[-1].words
        assert rng[1] == ringing[3] and rng[3] == "CKI" and rng[5:] == [alice, "Alice"], rng
        host, port = rng[2].split(":")
        assert host == "127.0.0.1" and int(port) in sb_ports
        sb_b = MsnpClient(host, int(port))
        clients.append(sb_b)
        sb_b.send(f"ANS 1 {bob} {rng[4]} {rng[1]}")
        sb_b.expect(f"IRO 1 1 1 {alice} Alice")
        sb_b.expect("ANS 1 OK")
        sb_a.expect(f"JOI {bob} Bob")
        for sender, receiver, name, who in ((sb_a, sb_b, "Alice", alice), (sb_b, sb_a, "Bob", bob)):
            text = f"hello from {name}".encode()
            sender.send(f"MSG 3 A {len(text)}", text)
            sender.expect("ACK 3")
            msg = receiver.recv()
            assert (msg.line, msg.payload) == (f"MSG {who} {name} {len(text)}", text)

        # An operator command run in Alice's node's container (its admin URL and the shared token
        # from the environment) reaches Bob's session on the other node: unverified, he may not rename.
        done = admin_cli(servers[nodes[first]].env, "user", "unverify", bob)
        assert (done.returncode, done.stdout.strip(), done.stderr) == (0, f"{bob} unverified", ""), done.stderr
        t, lines = b.command(f"REA {{t}} {bob} Renamed")
        assert lines[-1] == f"209 {t}", lines

        # Alice's menu item: her node's URL reply names the web service, which finds her session
        # (and its MSPAuth) in the presence directory and signs her in.
        cookie = web_sign_in(alice_online, servers["web"].ports["web"])
        assert request(servers["web"].ports["web"], "GET", "/n2p/account", cookie=cookie).status == 200

        for name, server in servers.items():
            assert server.ready() == 200, name
    finally:
        for client in clients:
            client.close()
        for name, server in servers.items():
            codes[name] = server.stop()
        redis.stop()
    assert codes == dict.fromkeys(CLUSTER_SERVERS, 0)
