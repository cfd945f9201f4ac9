"""tools/fuzz.py: a bounded run against a real server is clean, and its checks catch problems."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from msnp6.auth import CredentialKey
from msnp6.store.schema import open_database
from msnp6.store.store import StoreCore
from msnp6.testing import ServerProcess

FUZZER = Path(__file__).resolve().parent.parent / "tools" / "fuzz.py"


def load_fuzzer():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("msnp6_fuzz", FUZZER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["msnp6_fuzz"] = module  # attrs classes look their module up
    spec.loader.exec_module(module)
    return module


fuzz = load_fuzzer()


def run_fuzzer(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(FUZZER), *args], capture_output=True, text=True, timeout=timeout)


def test_bounded_run_against_a_real_server_is_clean(tmp_path: Path) -> None:
    done = run_fuzzer("--sessions", "300", "--max-seconds", "50", "--seed", "1", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sessions: 300 " in done.stdout, done.stdout
    assert "findings: 0" in done.stdout
    assert "canary lists at the end: intact" in done.stdout, done.stdout
    assert (tmp_path / "summary.json").exists()


def test_a_traceback_in_the_log_and_a_changed_canary_are_findings(tmp_path: Path) -> None:
    """Against a running server (--target): a traceback appears in the scanned log (a file of its
    own: twistd writes its log at its own offset, over what others append) and the canary's BL
    loses an entry behind the server's back while the fuzzer runs; both are reported, exit 1."""
    db = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    key_file = tmp_path / "key"
    CredentialKey.load(key_file, create=True)
    server = ServerProcess(db, key_file, tmp_path / "server")
    server.start()
    scanned = tmp_path / "scanned.log"
    scanned.write_text("")
    try:
        proc = subprocess.Popen(
            [sys.executable, str(FUZZER), "--target", "127.0.0.1", "--ds", str(server.ports["ds"]),
             "--ns", str(server.ports["ns"]), "--sb", str(server.ports["sb"]), "--server-log", str(scanned),
             "--db", db, "--key-file", str(key_file), "--sessions", "1000000", "--max-seconds", "8",
             "--check-interval", "1", "--triage-seconds", "5", "--out", str(tmp_path / "out")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        output = []
        for line in proc.stdout:
            output.append(line)
            if line.startswith("fuzzing started"):
                break
        with open(scanned, "a") as log:
            log.write("2030-01-01T00:00:00+0000 [stub#critical] conn 1 ns: XYZ failed\n"
                      "\tTraceback (most recent call last):\n\t  File \"stub.py\", line 1, in planted\n"
                      "\tbuiltins.RuntimeError: planted\n"
                      "2030-01-01T00:00:01+0000 [stub#info] conn 2 ns: closing after VER\x1b[2J\n")
        store = StoreCore(open_database(db))
        canary = store.get_account(fuzz.CANARY)
        assert canary is not None
        store.remove_entry(canary.id, "BL", fuzz.fuzz_handle(1))
        rest, _ = proc.communicate(timeout=120)
        text = "".join(output) + rest
        assert proc.returncode == 1, text
        assert "[traceback]" in text and "RuntimeError: planted" in text, text
        assert "[raw log bytes]" in text, text
        details = "".join(f.read_text() for f in (tmp_path / "out").glob("finding-*.txt"))
        assert "[canary]" in text and "missing [('BL', 'fuzz1@fuzz.example')]" in details, text + details
    finally:
        server.stop()


@pytest.mark.parametrize("host", ["192.0.2.1", "8.8.8.8", "example.com"])
def test_refuses_targets_off_loopback(host: str, tmp_path: Path) -> None:
    done = run_fuzzer("--target", host, "--db", "sqlite://", "--key-file", str(tmp_path / "k"), timeout=30)
    assert done.returncode == 2 and "not a loopback address" in done.stderr, done.stderr


def test_log_alarm_signature_ignores_ids_lines_and_values() -> None:
    def entry(conn: int, line: int, value: str) -> str:
        return (f"2030-01-01T00:00:0{conn}+0000 [x#critical] conn {conn} ns: SYN failed\n"
                f"\tTraceback (most recent call last):\n\t  File \"/a/lists.py\", line {line}, in handle_syn\n"
                f"\t    cached = int(x)\n\tbuiltins.ValueError: invalid literal for int() with base 10: '{value}'\n")

    found = fuzz.alarms(entry(1, 85, "٣") + "2030-01-01T00:00:02+0000 [x#info] fine\n" + entry(7, 90, "²"))
    assert [a.conn for a in found] == ["1", "7"]
    assert found[0].signature == found[1].signature
    assert "handle_syn" in found[0].signature
    assert fuzz.alarms("2030-01-01T00:00:00+0000 [x#info] conn 1 ns: closing after SYN: bad\n") == []


def test_sessions_are_reproducible_from_the_seed() -> None:
    corpus = [fuzz.fuzz_handle(i) for i in range(5)]

    def plan(seed: int, index: int) -> list[tuple[str, list[str]]]:
        rng = fuzz.session_rng(seed, index)
        steps, wide = fuzz.plan_session(rng, "ns", corpus, list(fuzz.MUTATIONS))
        return [(s.conn, s.mutations) for s in steps] + [("*", sorted(wide))]

    assert plan(3, 17) == plan(3, 17)
    assert any(plan(3, 17) != plan(3, i) for i in range(18, 30))


def test_log_watch_follows_a_rotation(tmp_path: Path) -> None:
    """twistd rotates its log at 1 MB: the end of the old file (now .1) and the new one are read."""
    log = tmp_path / "msnp6.log"
    log.write_text("2030-01-01T00:00:00+0000 [x#info] conn 1 ns 127.1.2.3:5: hello\n")
    watch = fuzz.LogWatch(log, from_start=True)
    assert watch.scan() == [] and watch.peers == {"1": "127.1.2.3"}
    planted = "2030-01-01T00:00:01+0000 [x#critical] conn {n} ns: X failed\n\tTraceback (most recent call last):\n"
    with open(log, "a") as f:
        f.write(planted.format(n=2))
    log.rename(tmp_path / "msnp6.log.1")
    log.write_text(planted.format(n=3))
    assert [a.conn for a in watch.scan()] == ["2", "3"]
    assert watch.scan() == []
