"""The benchmark load generator's login scenario, tiny, against a real server: it must produce one
well-formed JSON line in which every login succeeded. No timing assertions: speed lives in
benchmarks/, never in tests."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    for key in ("logins_per_s", "p50_ms", "p99_ms", "server_cpu_s"):
        assert isinstance(result[key], (int, float)) and result[key] >= 0, (key, result)
