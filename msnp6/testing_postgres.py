"""A private PostgreSQL server that checks passwords (scram-sha-256), for the tests of how the
deployment files pass credentials: the shared test server trusts every connection, so a wrong
or mangled password would pass there unnoticed."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .testing import free_port

#: Where Debian and Ubuntu keep the server binaries (initdb and pg_ctl are not on PATH there).
_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in _BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    return None


def available() -> bool:
    return all(_tool(n) for n in ("initdb", "pg_ctl", "psql"))


class PasswordPostgres:
    """``initdb`` with scram-sha-256 for every connection, on a free port of 127.0.0.1. Run as
    the ``postgres`` user when the tests run as root (the server refuses root)."""

    superuser_password = "private-superuser-pw"

    def __init__(self) -> None:
        # Not under pytest's tmp_path: its folders are private to root, and the server's user
        # must reach its data folder.
        self.root = Path(tempfile.mkdtemp(prefix="msnp6-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*self._as, *argv], capture_output=True, text=True, timeout=120,
                              env={**os.environ, **(env or {})}, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stdout}{done.stderr}")
        return done

    def start(self) -> None:
        if self._as:
            shutil.chown(self.root, "postgres")
        pwfile = self.root / "superuser-pw"
        pwfile.write_text(self.superuser_password + "\n")
        if self._as:
            shutil.chown(pwfile, "postgres")
        self._run(str(_tool("initdb")), "-D", str(self.data), "-U", "postgres", "-A", "scram-sha-256",
                  f"--pwfile={pwfile}", "--no-sync")
        self._run(str(_tool("pg_ctl")), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """``sql`` run as the superuser (over TCP, with its password)."""
        return self._run(str(_tool("psql")), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                         "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql,
                         env={"PGPASSWORD": self.superuser_password}).stdout

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(_tool("pg_ctl")), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
