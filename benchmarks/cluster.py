"""Cluster benchmark: one DS-only ``twistd msnp6`` and two NS/SB nodes (``a``, ``b``) over a private
redis-server and a fresh PostgreSQL database, against one process with the memory bus on the same
PostgreSQL. Prints one JSON line per scenario and run, then one ``summary`` line per scenario with
the medians over the runs.

    python benchmarks/cluster.py --runs 3 --out cluster.jsonl
    python benchmarks/cluster.py --quick              # smoke run, about a minute

Scenarios (each on a fresh set of servers; ``mode`` is ``cluster`` or ``single``):

- ``login``: full logins through the DS (which spreads them over the nodes), with the CPU each
  process spent per login (DS, a, b and redis-server; the single process alone).
- ``fanout``: one subject on node a, W watchers spread evenly over a and b; time until every
  watcher has the NLN. Single: all W on the one process.
- ``chat-same`` / ``chat-cross``: pairs whose two users are on the same node / on different
  nodes, set up one at a time through XFR SB, CAL, RNG, ANS; the CAL -> RNG ring latency split by
  whether the RNG crossed nodes, then the steady MSG relay latency. Single: ``chat``.

Pinning (2 cores): every msnp6 process on core 0 (the cluster gets the same core the single
process has), redis-server and the generator on core 1; PostgreSQL is not pinned. Needs
``createdb``/``dropdb`` for PostgreSQL on 127.0.0.1:5432 as user postgres, and ``redis-server``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import msnpaio  # noqa: E402
import run  # noqa: E402
from loadgen import DEFAULT_PASSWORD, handle  # noqa: E402
from seed import Sizes, seed  # noqa: E402

from msnp6.testing import RedisServerProcess  # noqa: E402
from msnp6.testing_cluster import ClusterServer  # noqa: E402

SCENARIOS = ("login", "fanout", "chat-same", "chat-cross")
QUICK = dict(logins=100, clients=10, fanout_sizes="40", rounds=5, pairs=6, duration=1.0, in_flight=1)
FULL = dict(logins=3000, clients=50, fanout_sizes="1000", rounds=100, pairs=60, duration=4.0, in_flight=1)
#: What the single-process run does for each scenario; ``chat-cross`` has no single-process twin.
SINGLE = {"login": "login", "fanout": "fanout", "chat-same": "chat"}
PG = dict(host="127.0.0.1", port="5432", user="postgres")
#: Lift limits that 127.0.0.1-only load would hit (all clients share one address), as run.py does.
SERVER_ARGS = ("--challenge-timeout", "600", "--limit", "connections-address=1000000")


def missing_tools() -> list[str]:
    return [tool for tool in ("redis-server", "createdb", "dropdb") if shutil.which(tool) is None]


def postgres_answers() -> bool:
    try:
        with socket.create_connection((PG["host"], int(PG["port"])), timeout=2):
            return True
    except OSError:
        return False


def pg_tool(tool: str, *args: str) -> None:
    subprocess.run([tool, "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], *args], check=True,
                   capture_output=True, timeout=60)


def pin(core: int | None, pid: int) -> None:
    """Every thread of a running process (and the threads it starts later) onto ``core``."""
    if core is not None and shutil.which("taskset"):
        subprocess.run(["taskset", "-a", "-p", "-c", str(core), str(pid)], check=True, capture_output=True)


def redis_command(port: int, *words: str) -> bytes:
    """One command to the private redis-server, in RESP, and the first bytes of its answer."""
    data = f"*{len(words)}\r\n".encode() + b"".join(f"${len(w)}\r\n{w}\r\n".encode() for w in words)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        return s.recv(256)


def wait_both_nodes_known(cluster: ClusterServer, timeout: float = 20.0) -> None:
    """Until the DS sends clients to both nodes: readiness needs only one live NS."""
    want = {n.ports["ns"] for n in cluster.nodes.values()}

    async def probe() -> None:
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while seen != want:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the DS only redirected to {seen}, not {want}")
            try:
                seen.add(await msnpaio.ds_redirect(cluster.ports["ds"], handle("probe", 0), 5.0))
            except msnpaio.ProtocolFailure:
                pass  # no node known yet: the DS answers an error until the first beat arrives
            await asyncio.sleep(0.05)

    asyncio.run(probe())


class Cluster:
    """A ClusterServer on the benchmark's database and Redis, pinned, with fresh Redis state."""

    def __init__(self, args: argparse.Namespace, db: str, key_file: Path, workdir: Path, redis: RedisServerProcess) -> None:
        self.redis = redis
        self.args = args
        self.server = ClusterServer(db, key_file, workdir, redis.url, extra_args=SERVER_ARGS,
                                    node_ttl=args.node_ttl)

    def __enter__(self) -> Cluster:
        redis_command(self.redis.port, "FLUSHALL")  # nothing left by the previous cluster
        try:
            # The three start side by side: each start waits for its process to listen.
            with ThreadPoolExecutor(3) as pool:
                list(pool.map(lambda proc: proc.start(30.0), self.server.processes()))
            for proc in self.server.processes():
                assert proc.proc is not None
                pin(self.args.server_core, proc.proc.pid)
            self.server.wait_ready(30.0)
            wait_both_nodes_known(self.server)
        except BaseException:
            self.server.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def pids(self) -> dict[str, int]:
        out = {}
        for name, proc in (("ds", self.server.ds), *self.server.nodes.items()):
            assert proc.proc is not None
            out[name] = proc.proc.pid
        assert self.redis.proc is not None
        return {**out, "redis": self.redis.proc.pid}

    def generator_extra(self) -> list[str]:
        nodes = [f"--node={name}:{p.ports['ns']}:{p.ports['sb']}" for name, p in self.server.nodes.items()]
        return [*nodes, *(f"--process={name}={pid}" for name, pid in self.pids().items())]

    def log_lines(self) -> Iterator[str]:
        for name, proc in (("ds", self.server.ds), *self.server.nodes.items()):
            for line in (proc.log() + proc.output()).splitlines():
                yield f"{name}: {line}"


def generator_extra(scenario: str) -> list[str]:
    if scenario.startswith("chat"):
        # One pair at a time: ring latencies without other pairs' set-up queued in front.
        return ["--setup-concurrency=1", f"--chat-placement={scenario.split('-')[1]}"]
    return []


def noteworthy(lines: Iterator[str]) -> list[str]:
    """Warnings and errors from the server logs (the runner reports them, it does not judge)."""
    marks = ("error", "warn", "traceback", "unhandled", "critical")
    return [line[:300] for line in lines if any(m in line.lower() for m in marks)]


def run_cluster_scenario(args: argparse.Namespace, scenario: str, db: str, key_file: Path, workdir: Path,
                         redis: RedisServerProcess) -> list[dict[str, Any]]:
    cluster = Cluster(args, db, key_file, workdir / f"cluster-{scenario}-{time.time_ns()}", redis)
    try:
        cluster.__enter__()
    except (RuntimeError, TimeoutError) as e:
        return [{"scenario": scenario, "status": "error", "reason": f"cluster did not start: {e}"[:2000]}]
    profilers: dict[str, run.Profiler] = {}
    try:
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            profilers = {name: run.Profiler(pid, args.profile / f"{scenario}-{name}.txt", args.profile_rate)
                         for name, pid in cluster.pids().items() if name != "redis"}
            time.sleep(1.0)  # py-spy attaches before the load starts
        loadgen_scenario = "chat" if scenario.startswith("chat") else scenario
        command = run.generator_command(args, loadgen_scenario, cluster.server.ports, 0,
                                        [*generator_extra(scenario), *cluster.generator_extra()])
        results = run.run_generator(command, scenario, args.max_seconds * 2 + 120)
    finally:
        for profiler in profilers.values():
            profiler.stop()
        cluster.__exit__()
    for name, profiler in profilers.items():
        if profiler.output.exists():
            summary = run.profile_summary.summarize(profiler.output.read_text(), top=args.profile_top)
            (args.profile / f"{scenario}-{name}-top.txt").write_text(summary)
    notes = noteworthy(cluster.log_lines())
    return [{**r, "scenario": scenario, "log_warnings": notes[:20], "log_warning_count": len(notes)} for r in results]


def run_single_scenario(args: argparse.Namespace, scenario: str, db: str, key_file: Path, workdir: Path) -> list[dict[str, Any]]:
    name = SINGLE[scenario]
    results = run.run_scenario(args, name, db, key_file, workdir, generator_extra(scenario))
    return [{**r, "scenario": scenario} for r in results]


# -- summary ------------------------------------------------------------------------------------------


def flat(value: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """The numbers of a result as dotted keys (a fan-out result list by its watcher count)."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in ("started", "loadavg_1m"):
                yield from flat(item, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            tag = f"w{item['watchers']}" if isinstance(item, dict) and "watchers" in item else str(i)
            yield from flat(item, f"{prefix}.{tag}" if prefix else tag)


def summarize(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (mode, scenario): the median of every number over the runs that succeeded."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        if r.get("status") == "ok":
            groups.setdefault((r["mode"], r["scenario"]), []).append(r)
    out = []
    for (mode, scenario), rows in groups.items():
        values: dict[str, list[float]] = {}
        for row in rows:
            for key, number in flat({k: v for k, v in row.items() if k != "run"}):
                values.setdefault(key, []).append(number)
        medians = {key: round(statistics.median(v), 4) for key, v in values.items() if len(v) == len(rows)}
        out.append({"scenario": "summary", "mode": mode, "of": scenario, "runs": len(rows), "median": medians})
    return out


# -- main ------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset of " + ",".join(SCENARIOS))
    p.add_argument("--modes", default="cluster,single", help="cluster, single or both")
    p.add_argument("--runs", type=int, default=1, help="repeat everything; the summary has the medians")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--node-ttl", type=float, default=3.0)
    p.add_argument("--keep-db", action="store_true", help="do not drop the PostgreSQL database at the end")
    # The options run.py's server and generator pieces read (same names and meaning).
    runner = run.parse_args([])
    for key in ("logins", "clients", "fanout_sizes", "rounds", "pairs", "duration"):
        p.add_argument("--" + key.replace("_", "-"), type=type(getattr(runner, key)), default=None)
    p.add_argument("--in-flight", type=int, default=None)
    p.add_argument("--max-seconds", type=float, default=180.0)
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--client-core", type=int, default=1)
    p.add_argument("--redis-core", type=int, default=1)
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--no-uvloop", action="store_true")
    p.add_argument("--out", type=Path, help="append the JSON lines to this file")
    p.add_argument("--workdir", type=Path, help="keep the logs here (default: a temp dir)")
    p.add_argument("--profile", type=Path, help="py-spy the DS and both nodes into this folder (cluster mode)")
    p.add_argument("--profile-rate", type=int, default=200)
    p.add_argument("--profile-top", type=int, default=25)
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.no_pin:
        args.server_core = args.client_core = args.redis_core = None
    # What run.py's run_scenario and generator_command expect besides.
    args.idle_sizes, args.settle = "1", 0.0
    args.server_arg, args.generator_arg = [], []
    # run.py profiles the single process too, into the same folder (``login.txt``, ...).
    args.profile_scenarios = list(SINGLE.values()) if args.profile else []
    return args


def emit(result: dict[str, Any], out: Path | None) -> None:
    line = json.dumps(result)
    print(line, flush=True)
    if out:
        with out.open("a") as f:
            f.write(line + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    if set(scenarios) - set(SCENARIOS) or set(modes) - {"cluster", "single"}:
        raise SystemExit(f"scenarios are {SCENARIOS}, modes cluster and single")
    missing = missing_tools()
    if missing or not postgres_answers():
        raise SystemExit(f"needs redis-server, createdb, dropdb and PostgreSQL on 127.0.0.1:5432 (missing: {missing})")
    run.raise_fd_limit()
    name = f"msnp6_bench_{os.getpid()}_{time.time_ns() % 10**6}"
    db = f"postgresql+psycopg://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="msnp6-cluster-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        key_file = workdir / f"{name}.key"
        redis = RedisServerProcess(workdir / "redis")
        pg_tool("createdb", name)
        try:
            subprocess.run([run.venv_bin("msnp6-admin"), "--db", db, "migrate"], check=True, capture_output=True,
                           timeout=120)
            sizes = Sizes(logins=args.logins if "login" in scenarios else 0,
                          fanout=tuple(int(w) for w in args.fanout_sizes.split(",")) if "fanout" in scenarios else (),
                          pairs=args.pairs if any(s.startswith("chat") for s in scenarios) else 0)
            t0 = time.monotonic()
            made, entries = seed(db, key_file, sizes, DEFAULT_PASSWORD)
            print(f"seeded {made} accounts, {entries} list entries in {time.monotonic() - t0:.1f}s", file=sys.stderr)
            redis.start()
            assert redis.proc is not None
            pin(args.redis_core, redis.proc.pid)
            for n in range(args.runs):
                for scenario in scenarios:
                    for mode in modes:
                        if mode == "single" and scenario not in SINGLE:
                            continue
                        lines = (run_cluster_scenario(args, scenario, db, key_file, workdir, redis) if mode == "cluster"
                                 else run_single_scenario(args, scenario, db, key_file, workdir))
                        for result in lines:
                            result = {**result, "mode": mode, "run": n + 1}
                            results.append(result)
                            emit(result, args.out)
        finally:
            redis.stop()
            if not args.keep_db:
                pg_tool("dropdb", "--if-exists", "--force", name)
    for summary in summarize(results):
        emit(summary, args.out)
    return 1 if any(r.get("status") != "ok" for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
