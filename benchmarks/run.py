"""Benchmark runner: seed a temporary database, start ``twistd msnp6`` pinned to core 0, run the
load generator pinned to core 1 (one fresh server per scenario), print and save JSON lines.

    /work/venv/bin/python benchmarks/run.py --quick            # smoke run, well under a minute
    /work/venv/bin/python benchmarks/run.py                    # the full sizes of issue 7
    /work/venv/bin/python benchmarks/run.py --profile prof/    # + py-spy of the server
    /work/venv/bin/python benchmarks/run.py --scenarios storm  # the login storm, 1,000 and 10,000

Traffic stays on 127.0.0.1; every server this starts is stopped before it returns.
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import profile_summary  # noqa: E402
from loadgen import DEFAULT_PASSWORD, SCENARIOS, raise_fd_limit  # noqa: E402
from seed import Sizes, Storm, seed, seed_storm  # noqa: E402

from msnp6.store.engine import make_engine  # noqa: E402
from msnp6.store.schema import upgrade  # noqa: E402
from msnp6.testing import free_port, wait_until_listening  # noqa: E402

QUICK = dict(logins=300, clients=20, idle_sizes="100,300,500", fanout_sizes="20,100", rounds=10,
             pairs=10, duration=2.0, settle=1.0, storm_sizes="200", list_owners=20, list_adds=5)
FULL = dict(logins=5000, clients=100, idle_sizes="1000,5000,10000", fanout_sizes="100,1000", rounds=40,
            pairs=100, duration=5.0, settle=3.0, storm_sizes="1000,10000", list_owners=200, list_adds=20)
#: What runs without --scenarios: the storm (its own seeding, 11,000 accounts and about 650,000
#: list entries at the full sizes) is asked for by name.
DEFAULT_SCENARIOS = ("login", "idle", "fanout", "chat")



def pinned(core: int | None, command: list[str]) -> list[str]:
    if core is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", str(core), *command]


def venv_bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


class Server:
    """One ``twistd -n msnp6`` on fresh loopback ports. taskset execs, so the pid is twistd's."""

    def __init__(self, db: str, key_file: Path, workdir: Path, core: int | None, extra: Sequence[str]) -> None:
        self.ports = {"ds": free_port(), "ns": free_port(), "sb": free_port()}
        self.log_file = workdir / f"server-{time.time_ns()}.log"
        self.command = pinned(core, [
            venv_bin("twistd"), "-n", "--pidfile=", f"--logfile={self.log_file}", "msnp6",
            "--db", db, "--key-file", str(key_file), "--public-host", "127.0.0.1",
            *(f"--{name}=tcp:{port}:interface=127.0.0.1" for name, port in self.ports.items()),
            # Every simulated client comes from 127.0.0.1: lift the per-address connection cap.
            "--challenge-timeout", "600", "--limit", "connections-address=1000000", *extra,
        ])
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        self.proc = subprocess.Popen(self.command, cwd=self.workdir, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        try:
            wait_until_listening(self.proc, self.ports.values(), timeout, self.log_tail)
        except TimeoutError:
            self.stop()
            raise

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Profiler:
    """``py-spy record`` of the server for the length of one scenario (collapsed stacks)."""

    def __init__(self, pid: int, output: Path, rate: int) -> None:
        self.output = output
        self.proc = subprocess.Popen(
            [venv_bin("py-spy"), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
             "--threads", "--nonblocking", "--output", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def stop(self) -> str:
        """SIGINT makes py-spy write its file; returns its stderr for the log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=5)
        return err.decode(errors="replace")


def generator_command(args: argparse.Namespace, scenario: str, ports: dict[str, int], server_pid: int,
                      extra: Sequence[str] = ()) -> list[str]:
    """``ports``: the DS, NS and SB the generator talks to; ``extra``: more loadgen options (a
    cluster's ``--node``/``--process``, ``--chat-placement``), after ``--generator-arg``."""
    return pinned(args.client_core, [
        sys.executable, str(HERE / "loadgen.py"), "--scenario", scenario,
        "--ds-port", str(ports["ds"]), "--ns-port", str(ports["ns"]),
        "--sb-port", str(ports["sb"]), "--server-pid", str(server_pid),
        "--password", DEFAULT_PASSWORD, "--max-seconds", str(args.max_seconds),
        "--logins", str(args.logins), "--clients", str(args.clients),
        "--idle-sizes", args.idle_sizes, "--settle", str(args.settle),
        "--fanout-sizes", args.fanout_sizes, "--rounds", str(args.rounds),
        "--pairs", str(args.pairs), "--in-flight", str(args.in_flight), "--duration", str(args.duration),
        # The lists scenario's sizes (cluster.py's options do not have them: loadgen's defaults).
        *(["--list-owners", str(args.list_owners), "--list-adds", str(args.list_adds)]
          if getattr(args, "list_owners", None) else []),
        *(["--no-uvloop"] if args.no_uvloop else []), *args.generator_arg, *extra,
    ])


def run_generator(command: list[str], scenario: str, limit: float) -> list[dict[str, Any]]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return [{"scenario": scenario, "status": "error", "reason": f"generator killed after {limit:.0f}s"}]
    if done.stderr.strip():
        print(done.stderr.strip(), file=sys.stderr)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return lines or [{"scenario": scenario, "status": "error", "reason": f"generator exited {done.returncode}"}]


def run_scenario(args: argparse.Namespace, scenario: str, db: str, key_file: Path, workdir: Path,
                 extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    server = Server(db, key_file, workdir, args.server_core, args.server_arg)
    try:
        server.start()
    except RuntimeError as e:
        return [{"scenario": scenario, "status": "error", "reason": f"server did not start: {e}"[:2000]}]
    profiler = None
    try:
        if args.profile and scenario in args.profile_scenarios:
            args.profile.mkdir(parents=True, exist_ok=True)
            profiler = Profiler(server.pid, args.profile / f"{scenario}.txt", args.profile_rate)
            time.sleep(1.0)  # py-spy attaches before the load starts
        command = generator_command(args, scenario, server.ports, server.pid, extra)
        results = run_generator(command, scenario, args.max_seconds * 2 + 120)
    finally:
        if profiler is not None:
            err = profiler.stop()
            if not profiler.output.exists():
                print(f"py-spy wrote nothing: {err.strip()[-500:]}", file=sys.stderr)
        server.stop()
    if profiler is not None and profiler.output.exists():
        summary = profile_summary.summarize(profiler.output.read_text(), top=args.profile_top)
        (args.profile / f"{scenario}-top.txt").write_text(summary)
        print(summary, file=sys.stderr)
    return results


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def storms_for(args: argparse.Namespace, scenarios: Sequence[str]) -> list[Storm]:
    if "storm" not in scenarios:
        return []
    return [Storm(size, args.storm_contacts, args.storm_block_share) for size in ints(args.storm_sizes)]


def storm_generator_args(args: argparse.Namespace, storm: Storm) -> list[str]:
    return ["--storm-size", str(storm.size), "--storm-concurrency", str(args.storm_concurrency)]


def sizes_for(args: argparse.Namespace, scenarios: Sequence[str]) -> Sizes:
    return Sizes(
        logins=args.logins if "login" in scenarios else 0,
        idle=max(ints(args.idle_sizes)) if "idle" in scenarios else 0,
        fanout=ints(args.fanout_sizes) if "fanout" in scenarios else (),
        pairs=args.pairs if "chat" in scenarios else 0,
        list_owners=args.list_owners if "lists" in scenarios else 0,
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                   help=f"comma-separated subset of {','.join(SCENARIOS)} [{','.join(DEFAULT_SCENARIOS)}]")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run in well under a minute")
    p.add_argument("--logins", type=int)
    p.add_argument("--clients", type=int)
    p.add_argument("--idle-sizes")
    p.add_argument("--settle", type=float)
    p.add_argument("--fanout-sizes")
    p.add_argument("--rounds", type=int)
    p.add_argument("--pairs", type=int)
    p.add_argument("--in-flight", type=int, default=8)
    p.add_argument("--duration", type=float)
    p.add_argument("--list-owners", type=int, help="lists: sessions adding and removing contacts [200; --quick 20]")
    p.add_argument("--list-adds", type=int, help="lists: contacts each adds, adds again (215) and removes [20; --quick 5]")
    p.add_argument("--storm-sizes", help="storm accounts, one fresh server per size [1000,10000; --quick 200]")
    p.add_argument("--storm-contacts", type=int, default=20, help="mutual contacts per storm account [20]")
    p.add_argument("--storm-block-share", type=float, default=0.03,
                   help="share of a storm account's contacts on its BL instead of its AL [0.03]")
    p.add_argument("--storm-concurrency", type=int, default=1000, help="storm logins in flight at once [1000]")
    p.add_argument("--max-seconds", type=float, default=180.0, help="per scenario, inside the generator")
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--client-core", type=int, default=1)
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--no-uvloop", action="store_true")
    p.add_argument("--server-arg", action="append", default=[], help="extra twistd msnp6 option (repeatable)")
    p.add_argument("--generator-arg", action="append", default=[], help="extra loadgen.py option (repeatable)")
    p.add_argument("--db", help="benchmark on this database instead of a temp SQLite file, e.g. an empty "
                   "PostgreSQL schema: postgresql://postgres@127.0.0.1/test?options=-csearch_path%%3Dbench "
                   "(migrated, then seeded)")
    p.add_argument("--out", type=Path, help="append the JSON lines to this file")
    p.add_argument("--workdir", type=Path, help="keep the database, key and logs here (default: a temp dir)")
    p.add_argument("--profile", type=Path, help="py-spy the server into this folder")
    p.add_argument("--profile-scenarios", default="login,fanout")
    p.add_argument("--profile-rate", type=int, default=200)
    p.add_argument("--profile-top", type=int, default=25)
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.no_pin:
        args.server_core = args.client_core = None
    args.profile_scenarios = args.profile_scenarios.split(",")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {sorted(unknown)}")
    if args.profile and not Path(venv_bin("py-spy")).exists() and shutil.which("py-spy") is None:
        raise SystemExit("--profile needs py-spy: pip install -r benchmarks/requirements.txt")
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="msnp6-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if (workdir / "bench.sqlite3").exists():
            raise SystemExit(f"{workdir} already holds a benchmark database: use a new --workdir")
        db, key_file = f"sqlite:///{workdir / 'bench.sqlite3'}", workdir / "credential.key"
        if args.db:
            db = args.db
            upgrade(make_engine(db))  # a server refuses a PostgreSQL schema below head
        t0 = time.monotonic()
        made, entries = seed(db, key_file, sizes_for(args, scenarios), DEFAULT_PASSWORD)
        print(f"seeded {made} accounts, {entries} list entries in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        storms = storms_for(args, scenarios)
        for storm in storms:
            t0 = time.monotonic()
            made, entries = seed_storm(db, key_file, venv_bin("msnp6-admin"), storm, DEFAULT_PASSWORD)
            print(f"storm {storm.size}: imported {made} accounts, {entries} list entries in "
                  f"{time.monotonic() - t0:.1f}s", file=sys.stderr)
        failures = 0
        for scenario in scenarios:
            # The storm: one fresh server per size; the others: one run each.
            runs = [storm_generator_args(args, s) for s in storms] if scenario == "storm" else [[]]
            for extra in runs:
                for result in run_scenario(args, scenario, db, key_file, workdir, extra):
                    failures += result.get("status") != "ok"
                    line = json.dumps(result)
                    print(line, flush=True)
                    if args.out:
                        with args.out.open("a") as f:
                            f.write(line + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
