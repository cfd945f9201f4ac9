"""The benchmarks, tiny, against real servers: the load generator's login scenario must produce one
well-formed JSON line in which every login succeeded and every session stayed open with its
challenge answered; the runner's storm scenario its line for a small population with mutual
contacts; the cluster benchmark its lines for a DS with two nodes and for one process. No timing
assertions: speed lives in benchmarks/, never in tests."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

LOADGEN = Path(__file__).resolve().parents[1] / "benchmarks" / "loadgen.py"
LOGINS = 20


def test_login_scenario_smoke(server, accounts, tmp_path):
    handles = [accounts.create(password="hunter2", prefix="bench") for _ in range(LOGINS)]
    handles_file = tmp_path / "handles.txt"
    handles_file.write_text("\n".join(handles) + "\n")
    assert server.proc is not None
    done = subprocess.run(
        [sys.executable, str(LOADGEN), "--scenario", "login", "--logins", str(LOGINS), "--clients", "5",
         "--login-handles", str(handles_file), "--password", "hunter2",
         "--ds-port", str(server.ports["ds"]), "--ns-port", str(server.ports["ns"]),
         "--server-pid", str(server.proc.pid), "--timeout", "10", "--max-seconds", "60"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    result = json.loads(lines[0])
    assert result["scenario"] == "login" and result["status"] == "ok", result
    assert result["ok"] == LOGINS and result["failed"] == 0 and result["errors"] == {}, result
    # Held open to the end, each one's CHL answered (as a client does), none dropped by the server.
    assert result["held"] == LOGINS and result["dropped"] == 0, result
    assert result["challenges"] == result["challenges_answered"] == LOGINS, result
    assert result["all_challenges_answered"] is True, result
    for key in ("logins_per_s", "p50_ms", "p99_ms", "server_cpu_s"):
        assert isinstance(result[key], (int, float)) and result[key] >= 0, (key, result)


RUNNER = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
STORM = 30


def test_storm_scenario_smoke(tmp_path):
    """benchmarks/run.py's storm at a tiny size: accounts through ``msnp6-admin user import -``,
    mutual contacts with a few blocked, all logging in through the DS at once on a fresh server.
    Every presence line the lists call for arrives once: one ILN or one NLN per FL entry whose
    contact does not block its owner."""
    done = subprocess.run(
        [sys.executable, str(RUNNER), "--scenarios", "storm", "--storm-sizes", str(STORM),
         "--storm-contacts", "5", "--storm-block-share", "0.1", "--no-pin", "--max-seconds", "60",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 1, done.stdout
    storm = lines[0]
    assert storm["scenario"] == "storm" and storm["status"] == "ok", storm
    assert storm["accounts"] == storm["online"] == storm["held"] == STORM, storm
    assert storm["failed"] == 0 and storm["errors"] == {} and storm["dropped"] == 0, storm
    assert storm["challenges"] == storm["challenges_answered"] == STORM, storm
    lists = storm["list_entries"]
    assert lists["FL"] == lists["RL"] > 0 and lists["AL"] + lists["BL"] == lists["FL"], lists  # mutual
    assert lists["BL"] > 0, lists
    assert 0 < storm["contacts_per_account"] <= 5, storm
    assert storm["presence_lines_expected"] == lists["FL"] - lists["BL"], storm
    assert storm["iln_lines"] + storm["nln_lines"] == storm["presence_lines_expected"], storm
    assert storm["fln_lines"] == 0, storm
    for key in ("seconds_to_all_online", "logins_per_s", "server_cpu_ms_per_login", "server_rss_kib"):
        assert isinstance(storm[key], (int, float)) and storm[key] > 0, (key, storm)


def test_lists_scenario_smoke(tmp_path):
    """benchmarks/run.py's list changes at --quick sizes: every ADD, ADD again (215) and REM
    answered as the protocol says, on a fresh server."""
    done = subprocess.run(
        [sys.executable, str(RUNNER), "--quick", "--scenarios", "lists", "--no-pin", "--max-seconds", "60",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert result["scenario"] == "lists" and result["status"] == "ok", result
    assert result["owners"] == 20 and result["adds_per_owner"] == 5 and result["failed"] == 0, result
    for phase in ("add", "add_again", "rem"):
        assert result[phase]["commands"] == 100 and result[phase]["errors"] == {}, (phase, result)
        assert result[phase]["server_cpu_ms_per_command"] > 0, (phase, result)


CLUSTER = Path(__file__).resolve().parents[1] / "benchmarks" / "cluster.py"


def cluster_tools_missing() -> str | None:
    missing = [tool for tool in ("redis-server", "createdb", "dropdb") if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)}"
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        return "PostgreSQL is not reachable on 127.0.0.1:5432"
    return None


def test_cluster_benchmark_smoke(tmp_path):
    """benchmarks/cluster.py at its tiny size: a DS and two nodes over a private redis-server and a
    fresh PostgreSQL database, and one process for comparison. Checks the shape and sense of its
    JSON lines; no timing assertions."""
    reason = cluster_tools_missing()
    if reason:
        pytest.skip(reason)
    done = subprocess.run(
        [sys.executable, str(CLUSTER), "--quick", "--scenarios", "login,fanout,chat-cross",
         "--modes", "cluster,single", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    runs = {(r["mode"], r["scenario"]): r for r in lines if r["scenario"] != "summary"}
    assert set(runs) == {("cluster", "login"), ("cluster", "fanout"), ("cluster", "chat-cross"),
                         ("single", "login"), ("single", "fanout")}, runs.keys()
    assert all(r["status"] == "ok" for r in runs.values()), runs

    def number(value: object) -> bool:
        return isinstance(value, (int, float)) and value >= 0

    login = runs["cluster", "login"]
    assert login["ok"] == login["requested"] == 100 and login["failed"] == 0, login
    assert set(login["logins_by_node"]) == {"a", "b"}, login  # the DS used both nodes
    assert set(login["processes"]) == {"ds", "a", "b", "redis"}, login
    assert all(number(p["cpu_ms_per_login"]) for p in login["processes"].values()), login
    assert all(number(login[k]) for k in ("logins_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_login")), login
    single = runs["single", "login"]
    assert single["ok"] == 100 and single["logins_by_node"] == {"server": 100} and "processes" not in single, single

    fanout = runs["cluster", "fanout"]["results"][0]
    assert fanout["watchers"] == 40 and fanout["watchers_by_node"] == {"a": 20, "b": 20}, fanout
    assert fanout["rounds"] == 5 and fanout["timeouts"] == 0, fanout  # every watcher got every NLN
    assert number(fanout["p50_ms"]) and fanout["p99_ms"] >= fanout["p50_ms"], fanout
    assert runs["single", "fanout"]["results"][0]["watchers_by_node"] == {"server": 40}

    chat = runs["cluster", "chat-cross"]
    assert chat["placement"] == "cross" and chat["pairs"] == 6 and chat["naks"] == 0 and chat["drained"], chat
    assert all(key.split(" ")[0] in ("a>b", "b>a") for key in chat["pairs_by_nodes"]), chat
    assert chat["ring_local"]["n"] + chat["ring_remote"]["n"] == 6, chat
    assert number(chat["p50_ms"]) and chat["msgs_per_s"] > 0, chat

    summaries = {(r["mode"], r["of"]) for r in lines if r["scenario"] == "summary"}
    assert summaries == set(runs), summaries
