"""A cluster of separate processes for tests and benchmarks: one DS-only ``twistd msnp6`` and two
NS/SB nodes (``a`` and ``b``) on one Redis and one database, started the way an operator would."""
from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from .testing import MsnpClient, ServerProcess

NODES = ("a", "b")
#: What a client's ``fence`` waits for events from the other node (Redis takes well under 1 ms here).
SETTLE = 0.1


def ready(admin_port: int) -> tuple[int, str]:
    """The status and text of ``/readyz``; (0, reason) when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


class ClusterServer:
    """``ports``: the DS's ``ds`` and ``admin`` (operator commands go there), node a's ``ns`` and
    ``sb``; ``second``: node b's. ``client("ns")`` alternates between the nodes (the first on a),
    like ``TwoNodeServer``, so the users of a test land on different nodes."""

    def __init__(self, db: str, key_file: Path, workdir: Path, redis_url: str, extra_args: Sequence[str] = (),
                 node_ttl: float = 3.0, env: dict[str, str] | None = None) -> None:
        common = [*extra_args, "--bus", redis_url, "--node-ttl", f"{node_ttl:g}"]
        self.redis_url = redis_url
        self.node_ttl = node_ttl
        self.ds = ServerProcess(db, key_file, workdir / "ds", [*common, "--roles", "ds", "--node", "ds"],
                                admin=True, env=env, services=("ds",))
        self.nodes = {name: ServerProcess(db, key_file, workdir / name,
                                          [*common, "--roles", "ns,sb", "--node", name],
                                          admin=True, env=env, services=("ns", "sb"))
                      for name in NODES}
        self._turn = 0

    # -- the ServerProcess-like API the scenario tests use ----------------------------------------

    @property
    def ports(self) -> dict[str, int]:
        a = self.nodes["a"].ports
        return {"ds": self.ds.ports["ds"], "admin": self.ds.ports["admin"], "ns": a["ns"], "sb": a["sb"]}

    @property
    def second(self) -> dict[str, int]:
        return self.nodes["b"].ports

    @property
    def admin_token_file(self) -> Path:
        return self.ds.admin_token_file

    @property
    def sb_ports(self) -> set[int]:
        return {n.ports["sb"] for n in self.nodes.values()}

    def first_client_on_a(self) -> None:
        self._turn = 0

    def client(self, service: str = "ns") -> MsnpClient:
        if service == "ds":
            client = self.ds.client("ds")
        elif service != "ns":
            client = self.nodes["a"].client(service)
        else:
            self._turn += 1
            client = self.nodes[NODES[(self._turn - 1) % 2]].client("ns")
        client.settle = SETTLE
        return client

    def log(self) -> str:
        return "\n".join(p.log() for p in self.processes())

    # -- life ------------------------------------------------------------------------------------

    def processes(self) -> list[ServerProcess]:
        return [*self.nodes.values(), self.ds]

    def start(self, timeout: float = 30.0) -> None:
        for proc in self.processes():
            proc.start(timeout)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0, names: Sequence[str] | None = None) -> None:
        """Every process (or the ``names`` of nodes, "ds" for the DS) answers /readyz with 200."""
        chosen = [self.ds if n == "ds" else self.nodes[n] for n in names] if names else self.processes()
        deadline = time.monotonic() + timeout
        while True:
            answers = [ready(p.ports["admin"]) for p in chosen if p.proc is not None]
            if all(status == 200 for status, _ in answers):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster not ready: {answers}\n{self.log()[-4000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in reversed(self.processes()):
            proc.stop()

    def kill(self, name: str) -> None:
        """SIGKILL node ``name``: no goodbye, no leaving the registry."""
        proc = self.nodes[name].proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        self.nodes[name].proc = None
