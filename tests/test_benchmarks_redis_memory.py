"""benchmarks/redis_directory_memory.py, tiny: one well-formed JSON line per allow-list size, and a
stored session costs Redis at least the bytes of its record. No timing or size targets here."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "redis_directory_memory.py"


def test_redis_directory_memory_smoke():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    done = subprocess.run([sys.executable, str(SCRIPT), "--sessions", "300", "--allow", "0,5"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["allow_entries"] for r in results] == [0, 5]
    assert all(r["sessions"] == 300 and r["bytes_per_session"] >= r["record_bytes"] for r in results)
    assert results[1]["record_bytes"] > results[0]["record_bytes"]  # the allow list travels in the record
