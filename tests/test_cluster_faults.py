"""Faults of a cluster of separate processes (a DS-only twistd, two NS/SB twistd nodes, PostgreSQL
and a private redis-server): a node killed with SIGKILL, and Redis restarted under running nodes."""
from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from test_lists_e2e import Person

from msnp6.testing import MsnpClient, RedisServerProcess, ServerProcess
from msnp6.testing_cluster import ClusterServer, ready

NODE_TTL = 3.0


@pytest.fixture
def private_redis(tmp_path) -> Iterator[RedisServerProcess]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server and redis-cli are not installed")
    proc = RedisServerProcess(tmp_path / "redis")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def cluster(database, key_file, tmp_path, private_redis) -> Iterator[ClusterServer]:
    if database.backend != "postgresql":
        pytest.skip("the cluster runs on PostgreSQL (its processes share the database)")
    proc = ClusterServer(database.url, key_file, tmp_path / "cluster", private_redis.url,
                         node_ttl=NODE_TTL)
    proc.start()
    yield proc
    proc.stop()


def on_node(cluster: ClusterServer, node: str, accounts, name: str, status: str = "NLN") -> Person:
    """A user logged in on ``node`` ("a" or "b")."""
    cluster._turn = 0 if node == "a" else 1
    return Person(cluster, accounts, name, status)


def mutual(*people: Person) -> None:
    """Everyone has everyone else on FL (so each watches the others); pending lines read."""
    for p in people:
        for q in people:
            if p is not q:
                p.do(f"ADD {{t}} FL {q.handle} {q.name}")
    for p in people:
        p.quiet()


def redis_cli(redis: RedisServerProcess, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(redis.port), *args], capture_output=True, text=True,
                          timeout=10, check=True).stdout


def within(seconds: float, check: Callable[[], bool], what: str) -> float:
    """How long ``check`` took to hold (polled); fails past ``seconds``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"{what}: not within {seconds:g} s")
        time.sleep(0.05)
    return time.monotonic() - start


def xfr_target(cluster: ClusterServer) -> int:
    """The NS port the DS sends a login to now."""
    with cluster.client("ds") as ds:
        ds.negotiate()
        ds.send(f"USR {ds.next_trid()} MD5 I someone@example.com")
        reply = ds.recv().words
    assert reply[0] == "XFR" and reply[2] == "NS", reply
    return int(reply[3].rsplit(":", 1)[1])


def test_a_killed_node_s_users_go_fln_within_the_ttl(cluster, accounts, private_redis):
    alice = on_node(cluster, "a", accounts, "Alice")
    bob = on_node(cluster, "b", accounts, "Bob")
    hidden = on_node(cluster, "b", accounts, "Hidden", status="HDN")
    mutual(alice, bob, hidden)
    assert "b" in redis_cli(private_redis, "-n", "0", "SMEMBERS", "msnp6:nodes").split()

    killed_at = time.monotonic()
    cluster.kill("b")
    # Bob's watcher on node a sees him go; the hidden user was never shown, so nothing for them.
    line = alice.c.recv(timeout=NODE_TTL + 2 + 1).line
    took = time.monotonic() - killed_at
    assert line == f"FLN {bob.handle}"
    assert took <= NODE_TTL + 2, f"FLN after {took:.2f} s"
    alice.c.expect_silence(0.5)
    # Node b is off the registry and the directory, and the DS sends every login to node a.
    assert "b" not in redis_cli(private_redis, "SMEMBERS", "msnp6:nodes").split()
    assert redis_cli(private_redis, "HKEYS", "msnp6:presence").split() == [alice.handle]
    assert {xfr_target(cluster) for _ in range(5)} == {cluster.ports["ns"]}
    # Bob logs in again at once, on the other node, and is seen online again.
    with MsnpClient("127.0.0.1", cluster.ports["ns"]) as c:
        c.auto_challenge = True
        c.login(bob.handle, "hunter2")
        c.sync(0)
        c.settle = alice.c.settle
        c.command("CHG {t} BSY")
        assert alice.quiet() == [f"NLN BSY {bob.handle} Bob"]


def test_the_ds_stops_sending_logins_to_a_killed_node_before_its_entry_expires(cluster, accounts):
    targets = {xfr_target(cluster) for _ in range(6)}
    assert targets == {cluster.ports["ns"], cluster.second["ns"]}  # least-loaded: both get some
    cluster.kill("b")
    # A node with no heartbeat for three beats is avoided while a fresher one serves.
    took = within(NODE_TTL + 2, lambda: {xfr_target(cluster) for _ in range(4)} == {cluster.ports["ns"]},
                  "the DS still names node b")
    assert took < NODE_TTL


def test_a_redis_restart_leaves_no_wrong_view(cluster, accounts, private_redis):
    alice = on_node(cluster, "a", accounts, "Alice")
    bob = on_node(cluster, "b", accounts, "Bob")
    carol = on_node(cluster, "b", accounts, "Carol")
    frank = on_node(cluster, "a", accounts, "Frank")
    mutual(alice, bob, carol, frank)
    erin = on_node(cluster, "b", accounts, "Erin")

    private_redis.stop()
    # Readiness says why (a load balancer takes the node out meanwhile).
    reason = f"bus: not connected to Redis at 127.0.0.1:{private_redis.port}/0\n"
    within(5, lambda: ready(cluster.nodes["a"].ports["admin"]) == (503, reason), "node a's /readyz reporting the bus")
    # While Redis is away, cross-node events are lost: Bob leaves, Carol goes away, Erin adds
    # Alice (an ADD 0 RL that never reaches her), Frank logs in again on node b.
    bob.c.send("OUT")
    bob.c.expect("OUT")
    bob.c.expect_closed()
    assert carol.quiet() == [f"FLN {bob.handle}"]  # the same node: no Redis needed
    carol.chg("AWY")
    erin.do(f"ADD {{t}} FL {alice.handle} Alice")
    frank_again = MsnpClient("127.0.0.1", cluster.second["ns"])
    frank_again.auto_challenge = True
    frank_again.settle = alice.c.settle
    try:
        frank_again.login(frank.handle, "hunter2")
        frank_again.sync(0)
        frank_again.command("CHG {t} BSY")
        time.sleep(0.5)
        private_redis.start()
        cluster.wait_ready(timeout=15)

        # Within the bound (reconnect <= 2 s, then two 1 s steps): Alice's view is right again.
        seen: list[str] = []
        within(10, lambda: (seen.extend(alice.quiet()) or True) and f"FLN {bob.handle}" in seen
               and f"NLN AWY {carol.handle} Carol" in seen and f"NLN BSY {frank.handle} Frank" in seen,
               f"Alice's view repaired (so far {seen})")
        # Frank's older session (node a) ended as OUT OTH would have; the newer one stays.
        # (It may first be told of Carol: it watches her too, and was online all along.)
        frank.c.recv_until(lambda r: r.line == "OUT OTH", timeout=5)
        # Erin added Alice while the ADD's presence lookup could not be read: she is shown her now.
        erin_saw: list[str] = []
        within(10, lambda: (erin_saw.extend(erin.quiet()) or True) and f"NLN NLN {alice.handle} Alice" in erin_saw,
               f"Erin's view repaired (so far {erin_saw})")
        # Alice's lists catch up with Erin's ADD (a reload from SQL): her status changes reach Erin.
        statuses = iter(["BSY", "AWY"] * 50)

        def reaches_erin() -> bool:
            status = next(statuses)
            alice.chg(status)
            return f"NLN {status} {alice.handle} Alice" in erin.quiet()

        within(10, reaches_erin, "Alice's status reaching Erin")
        # Nothing wrong is shown afterwards: no repeated or stale presence lines.
        assert alice.quiet() == []
        assert redis_cli(private_redis, "HEXISTS", "msnp6:presence", bob.handle).strip() == "0"
    finally:
        frank_again.close()


def test_a_node_started_again_under_its_name_drops_what_its_earlier_run_left(cluster, accounts, private_redis):
    alice = on_node(cluster, "a", accounts, "Alice")
    bob = on_node(cluster, "b", accounts, "Bob")
    mutual(alice, bob)
    cluster.kill("b")
    cluster.nodes["b"].start()  # at once: its entry has not expired, nobody found it dead
    cluster.wait_ready(names=["b"])
    assert alice.c.recv(timeout=5).line == f"FLN {bob.handle}"
    assert redis_cli(private_redis, "HKEYS", "msnp6:presence").split() == [alice.handle]
    time.sleep(NODE_TTL + 1)  # and no second FLN when the old entry would have expired
    assert alice.quiet() == []


def test_a_dispatch_server_without_notification_nodes_is_not_ready_and_says_unavailable(
        database, key_file, tmp_path, private_redis):
    if database.backend != "postgresql":
        pytest.skip("the cluster runs on PostgreSQL")
    ds = ServerProcess(database.url, key_file, tmp_path / "ds", ["--bus", private_redis.url, "--roles", "ds"],
                       admin=True, services=("ds",))
    ds.start()
    try:
        time.sleep(1.5)  # a heartbeat or two: the DS's own entry serves no notification
        assert ready(ds.ports["admin"]) == (503, "no live notification node\n")
        with ds.client("ds") as c:
            c.negotiate()
            c.send("USR 7 MD5 I someone@example.com")
            assert c.recv().line == "915 7"
            c.expect_closed()
    finally:
        ds.stop()
