"""Login lockouts are counted across the cluster's nodes: failures on node a and node b add up
(separate twistd processes over Redis and PostgreSQL, the session's cluster)."""
from __future__ import annotations

from msnp6.testing import MsnpClient


def attempt(port: int, handle: str, password: str) -> str:
    with MsnpClient("127.0.0.1", port) as c:
        code, reply = c.attempt(handle, password)
    return reply.line


def test_failed_logins_on_two_nodes_add_up_to_one_lockout(cluster, accounts):
    handle = accounts.create(name="Target")
    limit = 10  # login-account: 10 failures per account per window (README, "Limits")
    nodes = [cluster.ports["ns"], cluster.second["ns"]]
    for i in range(limit):
        assert attempt(nodes[i % 2], handle, "wrong").startswith("911 "), i
    # Five failures on each node: per-process counting would let the right password in on either.
    for port in nodes:
        assert attempt(port, handle, "hunter2").startswith("911 ")
