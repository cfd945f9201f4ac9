"""msnp6 load generator: runs in its own process, talks to 127.0.0.1 only, prints one JSON line
per scenario. Every loop is bounded in count and time, so it always stops by itself.

    python benchmarks/loadgen.py --scenario login --ds-port 1863 --ns-port 1864 --sb-port 1865

Accounts are expected to exist already with the names in ``handle()`` (benchmarks/run.py
creates them); ``--login-handles FILE`` replaces the login scenario's names.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import sys
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
import msnpaio as m

DEFAULT_PASSWORD = "benchpass"
SCENARIOS = ("login", "idle", "fanout", "chat", "storm", "lists")
#: Seconds between a session's first CHG and the server's CHL (msnp6's challenge_delay).
CHALLENGE_DELAY = 1.0
MESSAGE = (
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
    b"X-MMS-IM-Format: FN=Tahoma; EF=; CO=0; CS=0; PF=22\r\n\r\nbenchmark message, about a line long"
)


def handle(group: str, index: int) -> str:
    """The benchmark's account names; run.py seeds exactly these."""
    return f"{group}{index}@bench.example.com"


def fanout_subject(watchers: int) -> str:
    return handle(f"fan{watchers}s", 0)


def storm_handle(size: int, index: int) -> str:
    """The accounts of the storm of ``size``: a population of their own for each size."""
    return handle(f"storm{size}u", index)


# -- small helpers ---------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def latency_fields(samples: Iterable[float], prefix: str = "") -> dict[str, Any]:
    values = sorted(samples)
    return {
        f"{prefix}p50_ms": ms(percentile(values, 50)),
        f"{prefix}p99_ms": ms(percentile(values, 99)),
        f"{prefix}max_ms": ms(values[-1] if values else None),
    }


def describe(error: BaseException) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return "timeout"
    return f"{type(error).__name__}: {error}"[:200]


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (VmRSS, in KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds the server processes (when their pids are known) and this generator spent in a
    stretch. Several processes (a cluster: ``--process NAME=PID``): the ``server_*`` fields are
    their sum, and ``processes`` has each one's share."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid}
        self.server0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.client0 = time.process_time()
        self.wall0 = time.perf_counter()

    def fields(self, per: int = 0, unit: str = "op") -> dict[str, Any]:
        wall = time.perf_counter() - self.wall0
        out: dict[str, Any] = {"client_cpu_s": round(time.process_time() - self.client0, 3)}
        if not self.pids:
            return out
        each = {name: cpu_seconds(pid) - self.server0[name] for name, pid in self.pids.items()}
        used = sum(each.values())
        out["server_cpu_s"] = round(used, 3)
        # Below ~0.95 while the server is the bottleneck: something else took its core.
        out["server_core_share"] = round(used / wall, 3) if wall > 0 else None
        if per:
            out[f"server_cpu_ms_per_{unit}"] = round(1000 * used / per, 4)
        if len(each) > 1:
            out["processes"] = {
                name: {"cpu_s": round(cpu, 3), **({f"cpu_ms_per_{unit}": round(1000 * cpu / per, 4)} if per else {})}
                for name, cpu in each.items()
            }
        return out


def cpu_meter(args: argparse.Namespace) -> CpuMeter:
    return CpuMeter(args.processes or {"server": args.server_pid})


@attrs.frozen
class Node:
    """Where the generator may log users in directly: a notification server (and its node's
    switchboard port, to tell which node an ``XFR SB`` named). One for a single process."""

    name: str
    ns_port: int
    sb_port: int


def nodes_of(args: argparse.Namespace) -> list[Node]:
    return args.nodes or [Node("server", args.ns_port, args.sb_port)]


def node_by_port(args: argparse.Namespace, port: int, service: str) -> str:
    for node in nodes_of(args):
        if (node.ns_port if service == "ns" else node.sb_port) == port:
            return node.name
    return f"port {port}"


def raise_fd_limit() -> int:
    """Children inherit it: 10k sessions need more than 10k descriptors on both sides."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def run_pool(count: int, concurrency: int, job: Callable[[int], Awaitable[None]], deadline: float) -> None:
    """Run ``job(i)`` for i < count with at most ``concurrency`` at once, until the deadline."""
    indexes = iter(range(count))

    async def worker() -> None:
        for i in indexes:
            if time.monotonic() > deadline:
                return
            await job(i)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))


async def open_sessions(args: argparse.Namespace, handles: Sequence[str], deadline: float) -> tuple[list[m.MsnpConnection | None], Counter[str]]:
    """Log ``handles`` in straight on the NS (login, SYN, CHG NLN) and keep them open; handle i
    on node i mod N when there are N nodes. The result is in ``handles`` order, None where a
    login failed."""
    sessions: list[m.MsnpConnection | None] = [None] * len(handles)
    errors: Counter[str] = Counter()
    nodes = nodes_of(args)

    async def one(i: int) -> None:
        try:
            port = nodes[i % len(nodes)].ns_port
            sessions[i] = await m.online_session(port, handles[i], args.password, args.timeout)
        except Exception as e:  # counted and reported, never fatal
            errors[describe(e)] += 1

    await run_pool(len(handles), args.concurrency, one, deadline)
    return sessions, errors


def close_all(conns: Iterable[m.MsnpConnection | None]) -> None:
    for conn in conns:
        if conn is not None:
            conn.close()


def ignore(line: str, payload: bytes | None) -> None:
    """A held session's listener: what arrives is counted (``counts``) and dropped, not queued."""


class HeldSessions:
    """Sessions logged in and held open as clients hold them, answering their CHL, until the
    scenario ends; one line tally for all of them (``counts``, by command word)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.conns: list[m.MsnpConnection] = []

    def hold(self, conn: m.MsnpConnection) -> None:
        conn.listener = ignore
        self.conns.append(conn)

    def dropped(self) -> int:
        """Held sessions the server closed (a 540, a kick, a crash)."""
        return sum(1 for conn in self.conns if conn.closed)

    async def challenges_answered(self, timeout: float) -> bool:
        """Until every held session has had its CHL answered (the server's ``QRY t`` ack), or
        ``timeout`` seconds: the CHL comes about a second after each session's first CHG."""
        deadline = time.monotonic() + timeout
        while self.counts["QRY"] < len(self.conns) - self.dropped():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def close(self) -> None:
        close_all(self.conns)


# -- login -------------------------------------------------------------------------------------------


async def full_login(args: argparse.Namespace, who: str, counts: Counter[str],
                     lists: dict[str, int] | None = None) -> tuple[int, m.MsnpConnection]:
    """DS redirect, NS login, SYN 0, CHG NLN, as a client does it. Returns the NS port the DS
    chose and the session, left open (it answers the CHL that follows by itself)."""
    ns_port = await m.ds_redirect(args.ds_port, who, args.timeout)
    conn = await m.online_session(ns_port, who, args.password, args.timeout, counts, lists)
    return ns_port, conn


def login_handles(args: argparse.Namespace) -> list[str]:
    if args.login_handles:
        names = [line.strip() for line in Path(args.login_handles).read_text().splitlines() if line.strip()]
        return names[: args.logins]
    return [handle("login", i) for i in range(args.logins)]


def challenge_fields(held: HeldSessions, answered: bool, window: float) -> dict[str, Any]:
    return {
        "held": len(held.conns) - held.dropped(), "dropped": held.dropped(),
        "challenges": held.counts["CHL"], "challenges_answered": held.counts["QRY"],
        "all_challenges_answered": answered, "window_s": round(window, 3),
    }


async def scenario_login(args: argparse.Namespace) -> dict[str, Any]:
    """``--clients`` at a time do the full login through the DS; every session stays open, its
    CHL answered, until the last login is done and every challenge answered; then all close.
    ``seconds`` and ``logins_per_s``: to the last CHG echo. The CPU fields: to the last QRY ack
    (the last CHLs come about a second after the last CHG, idle time included)."""
    handles = login_handles(args)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    by_node: Counter[str] = Counter()
    held = HeldSessions()

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        try:
            port, conn = await asyncio.wait_for(full_login(args, handles[i], held.counts), args.timeout)
            held.hold(conn)
            latencies.append(time.perf_counter() - t0)
            by_node[node_by_port(args, port, "ns")] += 1
        except Exception as e:
            errors[describe(e)] += 1

    cpu = cpu_meter(args)
    start = time.perf_counter()
    try:
        await run_pool(len(handles), args.clients, one, time.monotonic() + args.max_seconds)
        elapsed = time.perf_counter() - start
        answered = await held.challenges_answered(CHALLENGE_DELAY + args.timeout)
        cpu_fields = cpu.fields(len(latencies), "login")
        window = time.perf_counter() - start
    finally:
        held.close()
    return {
        "clients": args.clients, "attempted": len(latencies) + sum(errors.values()), "requested": len(handles),
        "ok": len(latencies), "failed": sum(errors.values()), "seconds": round(elapsed, 3),
        "logins_per_s": round(len(latencies) / elapsed, 1) if elapsed else None,
        **latency_fields(latencies), **cpu_fields, **challenge_fields(held, answered, window),
        "logins_by_node": dict(by_node), "errors": dict(errors),
    }


# -- storm -------------------------------------------------------------------------------------------


async def scenario_storm(args: argparse.Namespace) -> dict[str, Any]:
    """Every account of the storm of ``--storm-size`` logs in through the DS at once (at most
    ``--storm-concurrency`` logins in flight), as clients do: SYN 0, CHG NLN, CHL answered,
    sessions held. Their lists hold mutual contacts (benchmarks/seed.py), so each CHG brings ILN
    lines (contacts already online) and NLN lines to the contacts' open sessions."""
    size = args.storm_size
    handles = [storm_handle(size, i) for i in range(size)]
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    held = HeldSessions()
    #: Sums over the sessions of each list's size, from their SYN dumps.
    list_sizes: Counter[str] = Counter()
    last_online = 0.0

    async def one(i: int) -> None:
        nonlocal last_online
        lists: dict[str, int] = {}
        t0 = time.perf_counter()
        try:
            _, conn = await asyncio.wait_for(full_login(args, handles[i], held.counts, lists), args.storm_timeout)
            held.hold(conn)
            last_online = time.perf_counter()
            latencies.append(last_online - t0)
            list_sizes.update(lists)
        except Exception as e:
            errors[describe(e)] += 1

    cpu = cpu_meter(args)
    start = time.perf_counter()
    try:
        await run_pool(size, args.storm_concurrency, one, time.monotonic() + args.max_seconds)
        answered = await held.challenges_answered(CHALLENGE_DELAY + args.timeout)
        cpu_fields = cpu.fields(len(latencies), "login")
        window = time.perf_counter() - start
        rss = rss_kib(args.server_pid) if args.server_pid else None
        counts = held.counts
    finally:
        held.close()
    online = len(latencies)
    elapsed = last_online - start if online else 0.0
    return {
        "accounts": size, "concurrency": args.storm_concurrency, "online": online,
        "failed": sum(errors.values()),
        "contacts_per_account": round(list_sizes["FL"] / online, 2) if online else None,
        "list_entries": dict(list_sizes),
        "seconds_to_all_online": round(elapsed, 3),
        "logins_per_s": round(online / elapsed, 1) if elapsed else None,
        **latency_fields(latencies), **cpu_fields,
        "iln_lines": counts["ILN"], "nln_lines": counts["NLN"], "fln_lines": counts["FLN"],
        # Each FL entry whose contact does not block its owner: one ILN or one NLN once both are
        # online. The blocked ones are the BL entries (the seeding blocks only mutual contacts).
        "presence_lines_expected": list_sizes["FL"] - list_sizes["BL"] if online == size else None,
        **challenge_fields(held, answered, window), "server_rss_kib": rss, "errors": dict(errors),
    }


# -- list changes -------------------------------------------------------------------------------------


async def list_phase(args: argparse.Namespace, sessions: list[m.MsnpConnection], contacts: Callable[[int], list[str]],
                     template: str, expect: str, deadline: float) -> dict[str, Any]:
    """Every session sends ``template`` (``{t}``, ``{c}``: the contact) for each of its contacts, one
    at a time as a client does, all sessions at once; server CPU per command."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()

    async def one(i: int) -> None:
        conn = sessions[i]
        for contact in contacts(i):
            t0 = time.perf_counter()
            try:
                # Others' ADD 0 RL, BPR, ILN and NLN lines come in between: skipped.
                await conn.call(template.replace("{c}", contact), expect, args.timeout, skip_others=True)
                latencies.append(time.perf_counter() - t0)
            except Exception as e:
                errors[describe(e)] += 1

    cpu = cpu_meter(args)
    start = time.perf_counter()
    await run_pool(len(sessions), len(sessions), one, deadline)
    elapsed = time.perf_counter() - start
    return {"commands": len(latencies), "failed": sum(errors.values()), "seconds": round(elapsed, 3),
            "per_s": round(len(latencies) / elapsed, 1) if elapsed else None,
            **latency_fields(latencies), **cpu.fields(len(latencies), "command"), "errors": dict(errors)}


async def scenario_lists(args: argparse.Namespace) -> dict[str, Any]:
    """``--list-owners`` sessions (logged in straight on the NS, online) each add ``--list-adds``
    of the others to their FL (``ADD t FL``: the contact's RL too, ``ADD 0 RL`` to its session),
    add them again (``215``), then remove them (``REM t FL``): server CPU per command of each kind."""
    handles = [handle("lists", i) for i in range(args.list_owners)]
    deadline = time.monotonic() + args.max_seconds
    opened, errors = await open_sessions(args, handles, deadline)
    sessions = [s for s in opened if s is not None]
    count = len(sessions)

    def contacts(i: int) -> list[str]:
        return [handles[(i + k) % count] for k in range(1, min(args.list_adds, count - 1) + 1)]

    try:
        add = await list_phase(args, sessions, contacts, "ADD {t} FL {c} {c}", "ADD {t} FL ", deadline)
        again = await list_phase(args, sessions, contacts, "ADD {t} FL {c} {c}", "215 {t}", deadline)
        rem = await list_phase(args, sessions, contacts, "REM {t} FL {c}", "REM {t} FL ", deadline)
    finally:
        close_all(sessions)
    return {"owners": count, "adds_per_owner": min(args.list_adds, count - 1), "login_errors": dict(errors),
            "failed": len(handles) - count + add["failed"] + again["failed"] + rem["failed"],
            "add": add, "add_again": again, "rem": rem}


# -- idle ---------------------------------------------------------------------------------------------


async def scenario_idle(args: argparse.Namespace) -> dict[str, Any]:
    if not args.server_pid:
        raise ValueError("the idle scenario needs --server-pid")
    sizes = sorted(args.idle_sizes)
    deadline = time.monotonic() + args.max_seconds
    sessions: list[m.MsnpConnection | None] = []
    errors: Counter[str] = Counter()
    points: list[dict[str, int]] = [{"sessions": 0, "rss_kib": rss_kib(args.server_pid)}]
    try:
        for size in sizes:
            new = [handle("idle", i) for i in range(len(sessions), size)]
            opened, failed = await open_sessions(args, new, deadline)
            sessions += opened
            errors.update(failed)
            await asyncio.sleep(args.settle)  # let the CHL/QRY exchange and allocations settle
            live = sum(1 for s in sessions if s is not None and not s.closed)
            points.append({"sessions": live, "rss_kib": rss_kib(args.server_pid)})
    finally:
        close_all(sessions)
    first, last = points[1] if len(points) > 1 else points[0], points[-1]
    added = last["sessions"] - first["sessions"]
    per = (last["rss_kib"] - first["rss_kib"]) / added if added > 0 else None
    return {
        "points": points, "kib_per_session": round(per, 2) if per is not None else None,
        "between": [first["sessions"], last["sessions"]], "failed": sum(errors.values()), "errors": dict(errors),
    }


# -- fan-out -----------------------------------------------------------------------------------------


class ArrivalCounter:
    """Counts the watchers that got one expected presence line; notes when the last one did."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.prefix = ""
        self.count = 0
        self.last = 0.0
        self.done: asyncio.Future[None] | None = None
        self.stray = 0

    def arm(self, prefix: str) -> asyncio.Future[None]:
        self.prefix, self.count = prefix, 0
        self.done = asyncio.get_running_loop().create_future()
        return self.done

    def listener(self, line: str, payload: bytes | None) -> None:
        if not line.startswith(self.prefix) or self.done is None:
            self.stray += 1
            return
        self.count += 1
        if self.count == self.expected:
            self.last = time.perf_counter()
            if not self.done.done():
                self.done.set_result(None)


async def fanout_rounds(args: argparse.Namespace, watchers: int, sessions: list[m.MsnpConnection]) -> dict[str, Any]:
    subject_handle = fanout_subject(watchers)
    counter = ArrivalCounter(watchers)
    for conn in sessions[:watchers]:
        conn.listener = counter.listener
    subject = await m.online_session(nodes_of(args)[0].ns_port, subject_handle, args.password, args.timeout)
    await asyncio.sleep(0.5)  # the initial NLN reaches everybody before timing starts
    samples: list[float] = []
    timeouts = 0
    cpu = cpu_meter(args)
    try:
        for status in itertools.islice(itertools.cycle(("AWY", "NLN")), args.rounds):
            done = counter.arm(f"NLN {status} {subject_handle} ")
            t = subject.next_trid()
            t0 = time.perf_counter()
            subject.send(f"CHG {t} {status}")
            try:
                await asyncio.wait_for(asyncio.shield(done), args.timeout)
                samples.append(counter.last - t0)
            except TimeoutError:
                timeouts += 1
            await subject.expect(f"CHG {t} {status}", args.timeout, skip_others=True)
            await asyncio.sleep(args.round_gap)
    finally:
        subject.close()
        for conn in sessions[:watchers]:
            conn.listener = None
    nodes = nodes_of(args)
    spread = Counter(nodes[i % len(nodes)].name for i in range(watchers))
    return {"watchers": watchers, "watchers_by_node": dict(spread), "subject_node": nodes[0].name,
            "rounds": len(samples), "timeouts": timeouts, **latency_fields(samples),
            **cpu.fields(len(samples), "round")}


async def scenario_fanout(args: argparse.Namespace) -> dict[str, Any]:
    sizes = sorted(args.fanout_sizes)
    deadline = time.monotonic() + args.max_seconds
    handles = [handle("fanw", i) for i in range(sizes[-1])]
    opened, errors = await open_sessions(args, handles, deadline)
    try:
        # In handle order: the first W watchers are on subject W's RL.
        sessions = [s for s in opened if s is not None]
        if len(sessions) < len(handles):
            return {"status": "error", "reason": "not every watcher logged in", "online": len(sessions),
                    "errors": dict(errors)}
        results = [await fanout_rounds(args, w, sessions) for w in sizes]
    finally:
        close_all(opened)
    return {"results": results, "failed": sum(errors.values()), "errors": dict(errors)}


# -- chat ---------------------------------------------------------------------------------------------


class Skipped(Exception):
    """The server does not support this scenario (yet)."""


class Pair:
    """A caller and a callee in one switchboard session; the caller sends, the callee receives."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.caller = handle("chata", index)
        self.callee = handle("chatb", index)
        self.conns: list[m.MsnpConnection] = []
        self.sb_caller: m.MsnpConnection | None = None
        self.sb_callee: m.MsnpConnection | None = None
        self.sent_at: deque[float] = deque()
        self.in_flight = 0
        #: Node names: the caller's and the callee's NS, and the switchboard XFR SB chose.
        self.caller_node = self.callee_node = self.sb_node = ""
        #: CAL sent -> RNG at the callee's NS (the hop between nodes when the SB is elsewhere).
        self.ring: float | None = None


def place(args: argparse.Namespace, pair: Pair) -> tuple[Node, Node]:
    """The caller's and the callee's NS: pair i's caller on node i mod N; its callee on the same
    node (``--chat-placement same``) or on the next one (``cross``)."""
    nodes = nodes_of(args)
    caller = nodes[pair.index % len(nodes)]
    step = 1 if args.chat_placement == "cross" else 0
    return caller, nodes[(pair.index + step) % len(nodes)]


async def open_switchboard(args: argparse.Namespace, pair: Pair) -> None:
    """XFR SB, USR, CAL on the caller's side; RNG, ANS on the callee's; JOI back to the caller."""
    timeout = args.timeout
    caller_node, callee_node = place(args, pair)
    pair.caller_node, pair.callee_node = caller_node.name, callee_node.name
    ns_a = await m.online_session(caller_node.ns_port, pair.caller, args.password, timeout)
    pair.conns.append(ns_a)
    ns_b = await m.online_session(callee_node.ns_port, pair.callee, args.password, timeout)
    pair.conns.append(ns_b)
    t, xfr = await ns_a.call("XFR {t} SB", "XFR {t} SB ", timeout)
    words = xfr.split(" ")  # XFR t SB host:port CKI cookie
    sb_port = m.split_address(words[3])[1]
    pair.sb_node = node_by_port(args, sb_port, "sb")
    sb_a = await m.connect(sb_port, timeout)
    pair.conns.append(sb_a)
    await sb_a.call(f"USR {{t}} {pair.caller} {words[5]}", f"USR {{t}} OK {pair.caller} ", timeout)

    async def ring() -> str:
        line = await ns_b.expect("RNG ", timeout, skip_others=True)
        pair.ring = time.perf_counter() - t0
        return line

    t0 = time.perf_counter()
    _, rng_line = await asyncio.gather(sb_a.call(f"CAL {{t}} {pair.callee}", "CAL {t} RINGING ", timeout), ring())
    rng = rng_line.split(" ")
    # RNG sessid host:port CKI cookie caller callername
    sb_b = await m.connect(m.split_address(rng[2])[1], timeout)
    pair.conns.append(sb_b)
    await sb_b.call(f"ANS {{t}} {pair.callee} {rng[4]} {rng[1]}", "ANS {t} OK", timeout, skip_others=True)
    await sb_a.expect(f"JOI {pair.callee} ", timeout)
    pair.sb_caller, pair.sb_callee = sb_a, sb_b


def unsupported_reason(error: BaseException) -> str | None:
    """An error code or a closed connection while setting up: the switchboard is not there yet."""
    if isinstance(error, m.ProtocolFailure):
        return str(error)
    return None


class ChatMeter:
    """Counts relayed messages and ACKs inside the measuring window; keeps senders 8 deep."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.sending = True
        self.window: tuple[float, float] | None = None
        self.received = 0
        self.acked = 0
        self.naks = 0
        self.latencies: list[float] = []
        self.drained: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.outstanding = 0

    def in_window(self, now: float) -> bool:
        return self.window is not None and self.window[0] <= now <= self.window[1]

    def send(self, pair: Pair) -> None:
        assert pair.sb_caller is not None
        sb = pair.sb_caller
        t = sb.next_trid()
        pair.sent_at.append(time.perf_counter())
        pair.in_flight += 1
        self.outstanding += 1
        sb.send(f"MSG {t} A {len(MESSAGE)}", MESSAGE)

    def fill(self, pair: Pair) -> None:
        while self.sending and pair.in_flight < self.depth:
            self.send(pair)

    def caller_listener(self, pair: Pair) -> m.Listener:
        def on_line(line: str, payload: bytes | None) -> None:
            if line.startswith(("ACK ", "NAK ")):
                now = time.perf_counter()
                pair.in_flight -= 1
                self.outstanding -= 1
                if line[0] == "N":
                    self.naks += 1
                elif self.in_window(now):
                    self.acked += 1
                self.fill(pair)
                if not self.sending and self.outstanding == 0 and not self.drained.done():
                    self.drained.set_result(None)
        return on_line

    def callee_listener(self, pair: Pair) -> m.Listener:
        def on_line(line: str, payload: bytes | None) -> None:
            if line.startswith("MSG ") and pair.sent_at:
                now = time.perf_counter()
                sent = pair.sent_at.popleft()  # the SB keeps each sender's order
                if self.in_window(now) and self.in_window(sent):
                    self.received += 1
                    self.latencies.append(now - sent)
        return on_line


async def setup_pairs(args: argparse.Namespace, pairs: list[Pair], deadline: float) -> Counter[str]:
    errors: Counter[str] = Counter()

    async def one(i: int) -> None:
        try:
            await asyncio.wait_for(open_switchboard(args, pairs[i]), args.timeout * 4)
        except Exception as e:
            errors[describe(e)] += 1

    await run_pool(len(pairs), args.setup_concurrency or args.concurrency, one, deadline)
    return errors


def placement_fields(args: argparse.Namespace, pairs: list[Pair]) -> dict[str, Any]:
    """Where the pairs ended up, and the CAL -> RNG ring latency split by whether the switchboard
    is on the callee's node (``ring_local``) or the RNG crossed to another node (``ring_remote``)."""
    local = [p.ring for p in pairs if p.ring is not None and p.sb_node == p.callee_node]
    remote = [p.ring for p in pairs if p.ring is not None and p.sb_node != p.callee_node]
    return {
        "placement": args.chat_placement,
        "pairs_by_nodes": dict(Counter(f"{p.caller_node}>{p.callee_node} sb {p.sb_node}" for p in pairs)),
        "ring_local": {"n": len(local), **latency_fields(local)},
        "ring_remote": {"n": len(remote), **latency_fields(remote)},
    }


async def scenario_chat(args: argparse.Namespace) -> dict[str, Any]:
    deadline = time.monotonic() + args.max_seconds
    pairs = [Pair(i) for i in range(args.pairs)]
    try:
        try:  # the first pair alone tells whether the switchboard works at all
            await asyncio.wait_for(open_switchboard(args, pairs[0]), args.timeout * 4)
        except Exception as e:
            return {"status": "skipped", "reason": f"switchboard set-up failed: {describe(e)}"}
        errors = await setup_pairs(args, pairs[1:], deadline)
        ready = [p for p in pairs if p.sb_callee is not None]
        if len(ready) < len(pairs):
            return {"status": "error", "reason": "not every pair joined", "ready": len(ready), "errors": dict(errors)}
        return {**await measure_chat(args, ready), **placement_fields(args, ready)}
    finally:
        for pair in pairs:
            close_all(pair.conns)


async def measure_chat(args: argparse.Namespace, pairs: list[Pair]) -> dict[str, Any]:
    meter = ChatMeter(args.in_flight)
    for pair in pairs:
        assert pair.sb_caller is not None and pair.sb_callee is not None
        pair.sb_caller.listener = meter.caller_listener(pair)
        pair.sb_callee.listener = meter.callee_listener(pair)
    start = time.perf_counter()
    meter.window = (start + args.warmup, start + args.warmup + args.duration)
    for pair in pairs:
        meter.fill(pair)
    await asyncio.sleep(args.warmup)
    cpu = cpu_meter(args)
    await asyncio.sleep(args.duration)
    cpu_fields = cpu.fields(meter.received, "msg")
    meter.sending = False
    drained = True
    if meter.outstanding:
        try:
            await asyncio.wait_for(asyncio.shield(meter.drained), args.timeout)
        except TimeoutError:
            drained = False
    return {
        "pairs": len(pairs), "in_flight_per_sender": args.in_flight, "ack_mode": "A",
        "window_s": args.duration, "msgs_per_s": round(meter.received / args.duration, 1),
        "acks_per_s": round(meter.acked / args.duration, 1), "naks": meter.naks, "drained": drained,
        **latency_fields(meter.latencies), **cpu_fields,
    }


# -- main -----------------------------------------------------------------------------------------------


RUNNERS: dict[str, Callable[[argparse.Namespace], Awaitable[dict[str, Any]]]] = {
    "login": scenario_login, "idle": scenario_idle, "fanout": scenario_fanout, "chat": scenario_chat,
    "storm": scenario_storm, "lists": scenario_lists,
}


async def run_scenario(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One scenario, bounded by ``--max-seconds`` plus a grace period; never raises."""
    started = time.time()
    try:
        # Logins started just before the deadline may take their whole (storm) timeout.
        limit = args.max_seconds + 3 * args.timeout + max(args.timeout, args.storm_timeout) + 30
        body = await asyncio.wait_for(RUNNERS[name](args), limit)
        body.setdefault("status", "ok")
    except TimeoutError:
        body = {"status": "error", "reason": "scenario exceeded its time limit"}
    except Exception as e:
        body = {"status": "error", "reason": describe(e)}
    return {"scenario": name, **body, "started": round(started, 3), "loop": args.loop_name,
            "loadavg_1m": round(os.getloadavg()[0], 2)}


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def node_arg(text: str) -> Node:
    """``NAME:NSPORT:SBPORT``"""
    name, ns, sb = text.split(":")
    return Node(name, int(ns), int(sb))


def process_arg(text: str) -> tuple[str, int]:
    """``NAME=PID``"""
    name, _, pid = text.partition("=")
    return name, int(pid)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable; default: all")
    p.add_argument("--ds-port", type=int, default=1863)
    p.add_argument("--ns-port", type=int, default=1864)
    p.add_argument("--sb-port", type=int, default=1865, help="unused: the SB address comes from XFR/RNG")
    p.add_argument("--server-pid", type=int, default=0, help="for the idle scenario's RSS readings")
    p.add_argument("--process", action="append", type=process_arg, default=[], metavar="NAME=PID",
                   help="meter the CPU of these server processes instead of --server-pid (repeatable: a cluster)")
    p.add_argument("--node", action="append", type=node_arg, default=[], dest="nodes", metavar="NAME:NS:SB",
                   help="log users in directly on these nodes, spread evenly (repeatable); default: --ns-port")
    p.add_argument("--password", default=DEFAULT_PASSWORD)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds for any single wait")
    p.add_argument("--max-seconds", type=float, default=120.0, help="per scenario")
    p.add_argument("--concurrency", type=int, default=200, help="parallel logins when opening sessions")
    p.add_argument("--no-uvloop", action="store_true")
    # login
    p.add_argument("--logins", type=int, default=5000)
    p.add_argument("--clients", type=int, default=100, help="concurrent login clients")
    p.add_argument("--login-handles", help="file with one handle per line (instead of login<i>@...)")
    # idle
    p.add_argument("--idle-sizes", type=int_list, default=[1000, 5000, 10000])
    p.add_argument("--settle", type=float, default=3.0, help="seconds before each RSS reading")
    # fan-out
    p.add_argument("--fanout-sizes", type=int_list, default=[100, 1000])
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--round-gap", type=float, default=0.05)
    # chat
    p.add_argument("--pairs", type=int, default=100)
    p.add_argument("--in-flight", type=int, default=8)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--setup-concurrency", type=int, default=0,
                   help="pairs set up at once (default --concurrency; 1 gives ring latencies without queueing)")
    p.add_argument("--chat-placement", choices=("same", "cross"), default="same",
                   help="a pair's two users on the same node or on two different nodes (with --node)")
    # list changes
    p.add_argument("--list-owners", type=int, default=200, help="sessions adding and removing contacts")
    p.add_argument("--list-adds", type=int, default=20, help="contacts each of them adds, adds again, removes")
    # storm
    p.add_argument("--storm-size", type=int, default=1000, help="accounts storm<size>u<i>@..., all logging in")
    p.add_argument("--storm-concurrency", type=int, default=1000, help="storm logins in flight at once")
    p.add_argument("--storm-timeout", type=float, default=60.0, help="seconds for one whole storm login")
    args = p.parse_args(argv)
    args.processes = dict(args.process)
    return args


def install_loop(args: argparse.Namespace) -> None:
    args.loop_name = "asyncio"
    if args.no_uvloop:
        return
    try:
        import uvloop  # optional: benchmarks/requirements.txt
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    args.loop_name = "uvloop"


async def amain(args: argparse.Namespace) -> None:
    for name in args.scenario or SCENARIOS:
        print(json.dumps(await run_scenario(name, args)), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    raise_fd_limit()
    install_loop(args)
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
