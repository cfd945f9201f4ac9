"""The ``web`` role: which roles a process takes (``--roles`` and ``--web``), and a process that
serves only the web side (``--roles web``) in a cluster, over real processes: no DS/NS/SB
listener, ready without any notification node, not ready while Redis is away, and a user logged
in on a notification node signs in on it through the URL reply's form."""
from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator

import pytest
from test_web_side_e2e import online, sign_in_on
from twisted.python import usage

from msnp6.tap import Options
from msnp6.testing import RedisServerProcess, ServerProcess
from msnp6.testing_cluster import ready

REDIS = "redis://127.0.0.1:6379/3"


@pytest.fixture
def no_env(monkeypatch) -> None:
    for name in [k for k in os.environ if k.startswith("MSNP6_")]:
        monkeypatch.delenv(name)


def parsed(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


@pytest.mark.parametrize(("args", "roles"), [
    ((), ("ds", "ns", "sb")),  # as before: no web side unless asked for
    (("--web", "tcp:8080"), ("ds", "ns", "sb", "web")),  # --web alone adds the role
    (("--roles", "ds,ns,sb,web", "--web", "tcp:8080"), ("ds", "ns", "sb", "web")),
    (("--roles", "web", "--bus", REDIS, "--web", "tcp:8080"), ("web",)),
    (("--roles", "web,ds", "--bus", REDIS, "--web", "tcp:8080"), ("ds", "web")),
    (("--roles", "ns,sb", "--bus", REDIS), ("ns", "sb")),
])
def test_the_roles_a_process_takes(no_env, args, roles):
    assert parsed(*args)["roles"] == roles


def test_the_web_role_from_the_environment(no_env, monkeypatch):
    monkeypatch.setenv("MSNP6_ROLES", "web")
    monkeypatch.setenv("MSNP6_BUS", REDIS)
    monkeypatch.setenv("MSNP6_WEB", "tcp:8080")
    assert parsed()["roles"] == ("web",)


@pytest.mark.parametrize(("args", "message"), [
    (("--roles", "web", "--bus", REDIS), "--roles web needs --web ENDPOINT (or $MSNP6_WEB): where the web side listens"),
    (("--roles", "ns,sb", "--bus", REDIS, "--web", "tcp:8080"),
     "--web is given but --roles ns,sb leaves out web: add web to --roles, or drop --web"),
    # One process with the memory bus: the web side alone would see no session.
    (("--roles", "web", "--web", "tcp:8080"),
     "--roles other than ds,ns,sb (and web) needs --bus redis://...: the roles of one process must meet on a shared bus"),
    (("--roles", "www", "--bus", REDIS), "--roles is a comma list of ds, ns, sb, web, not 'www'"),
])
def test_contradictory_roles_are_refused(no_env, args, message):
    with pytest.raises(usage.UsageError) as refused:
        parsed(*args)
    assert str(refused.value) == message


def test_a_process_without_ns_or_sb_is_not_named_like_a_node(no_env):
    """Two processes under one name would take each other for an earlier run and drop its
    sessions: a web-only or DS-only process on the defaults must not get a node's default name."""
    node = parsed("--roles", "ns,sb", "--bus", REDIS)["node"]
    web = parsed("--roles", "web", "--bus", REDIS, "--web", "tcp:8080")["node"]
    ds = parsed("--roles", "ds", "--bus", REDIS)["node"]
    assert node == "127.0.0.1:1864:1865"  # unchanged
    assert web == "127.0.0.1:web8080" and ds == "127.0.0.1:ds1863"


# -- over real processes --------------------------------------------------------------------------


@pytest.fixture
def private_redis(tmp_path) -> Iterator[RedisServerProcess]:
    """A redis-server of this test's own: it is stopped mid-test."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    proc = RedisServerProcess(tmp_path / "redis")
    proc.start()
    yield proc
    proc.stop()


def eventually_ready(port: int, status: int, timeout: float = 20.0) -> str:
    """Wait until /readyz on admin ``port`` answers ``status``; its text."""
    deadline = time.monotonic() + timeout
    while True:
        got, text = ready(port)
        if got == status:
            return text.strip()
        assert time.monotonic() < deadline, f"/readyz still {got} {text!r}, not {status}"
        time.sleep(0.1)


def listening(proc: ServerProcess) -> set[str]:
    return set(re.findall(r"msnp6 (\w+) listening on", proc.log()))


def test_a_web_only_process_signs_in_a_node_s_user(database, key_file, tmp_path, private_redis, accounts):
    if database.backend != "postgresql":
        pytest.skip("the cluster runs on PostgreSQL (its processes share the database)")
    common = ["--bus", private_redis.url, "--node-ttl", "3"]
    web = ServerProcess(database.url, key_file, tmp_path / "web", [*common, "--roles", "web", "--node", "web"],
                        admin=True, services=(), web=True)
    base = f"http://127.0.0.1:{web.ports['web']}/"
    node = ServerProcess(database.url, key_file, tmp_path / "a",
                         [*common, "--roles", "ns,sb", "--node", "a", "--web-base-url", base], services=("ns", "sb"))
    web.start()
    try:
        # Ready with no notification node anywhere: the web side needs the bus and the database.
        assert eventually_ready(web.ports["admin"], 200) == "ready"
        assert listening(web) == {"web", "admin"}  # no DS, NS or SB listener
        node.start()
        try:
            user = online(node, accounts)
            sign_in_on(web, user, base)
            # Neither says URL replies go nowhere: the node has its base, the web process serves it.
            assert "URL replies point at" not in node.log() + web.log()

            # Redis away: the web side cannot see sessions, and says so; back, it is ready again.
            private_redis.stop()
            assert eventually_ready(web.ports["admin"], 503).startswith(
                f"bus: not connected to Redis at 127.0.0.1:{private_redis.port}")
            private_redis.start()
            assert eventually_ready(web.ports["admin"], 200) == "ready"
        finally:
            node.stop()
    finally:
        web.stop()


def test_a_node_without_a_web_base_says_where_url_replies_go(database, key_file, tmp_path, redis_server):
    """Whether another process serves the web role cannot be told at start-up (it may run
    elsewhere, start later, or sit behind a proxy at http://PUBLIC-HOST/): a node that answers
    URL without a base of its own says once where its replies point, and starts."""
    if database.backend != "postgresql":
        pytest.skip("the cluster runs on PostgreSQL (its processes share the database)")
    node = ServerProcess(database.url, key_file, tmp_path / "b",
                         ["--bus", f"redis://127.0.0.1:{redis_server.port}/8", "--roles", "ns,sb", "--node", "b",
                          "--signup", "open"],
                         services=("ns", "sb"), env={"MSNP6_SMTP_RELAY": "127.0.0.1:25", "MSNP6_MAIL_FROM": "m@x.org"})
    node.start()
    try:
        assert node.log().count("URL replies point at http://127.0.0.1/ (no --web-base-url, and this node "
                                "does not serve the web side): set --web-base-url / $MSNP6_WEB_BASE_URL "
                                "to the web role's public base") == 1
        # So are the web side's own options (a shared environment file may set them for every role).
        for name in ("signup", "smtp-relay"):
            assert node.log().count(f"--{name} has no effect in a process without the web role (--web)") == 1
    finally:
        assert node.stop() == 0
