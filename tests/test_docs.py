"""The docs hold up: every environment variable the code reads is in README's table, every file
or link they name exists, and the backup and restore commands of docs/hosting.md work as written
(against the local PostgreSQL)."""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from msnp6.testing import ServerProcess, run_admin

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Read by the test harness only (msnp6/testing*.py), not by the server or msnp6-admin.
HARNESS_ONLY = {"MSNP6_NODE_A_ARGS", "MSNP6_NODE_B_LISTENERS", "MSNP6_TEST_PG_HOST"}


# -- environment variables -----------------------------------------------------------------------


def variables_in_code() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "msnp6").rglob("*.py"):
        if not path.name.startswith("testing"):
            found |= set(re.findall(r"\bMSNP6_[A-Z0-9_]+\b", path.read_text()))
    return found - HARNESS_ONLY


def readme_variable_table() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("| variable | read by |")
    rows = []
    for line in text[start:].splitlines():
        if not line.startswith("|"):
            break
        rows.append(line)
    return "\n".join(rows)


def test_every_variable_the_code_reads_is_in_the_readme_table():
    from msnp6.tap import ENV_DEFAULTS, LIMITS_VARIABLE

    code = variables_in_code()
    # The grep finds the option table's variables too (and would find a new one anywhere).
    assert {v for v, _ in ENV_DEFAULTS.values()} | {LIMITS_VARIABLE, "MSNP6_ADMIN_URL", "MSNP6_HOME"} <= code
    table = readme_variable_table()
    listed = set(re.findall(r"`(MSNP6_[A-Z0-9_]+)`", table))
    assert sorted(code - listed) == [], "README's environment table lacks these"
    assert sorted(listed - code) == [], "README's environment table lists variables nothing reads"
    assert "`PGPASSWORD`" in table


# -- files and links the docs name ---------------------------------------------------------------

#: Names the docs mention that are not this repository's files: SQLAlchemy's modules in a
#: profile, a systemd unit of the PostgreSQL package, the fuzzer's output files.
OUTSIDE = {"sql/cache_key.py", "sql/coercions.py", "postgresql.service", "finding-N.txt"}
MENTIONED = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)*[\w-]+\.(?:md|py|yml|yaml|json|toml|cfg|txt|sh|service))\b|\.env\.example")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def repo_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in listed.splitlines()]


def exists(name: str, near: Path, files: list[Path]) -> bool:
    """``name`` relative to the repository, the document's folder or the package; a bare file
    name anywhere in the repository."""
    if "/" in name:
        return any((base / name).exists() for base in (ROOT, near, ROOT / "msnp6", ROOT / "msnp6" / "notification"))
    return any(f.name == name for f in files)


def named_files(doc: Path) -> list[tuple[int, str]]:
    """(line number, name) of each relative link and each file name mentioned, once per line."""
    found: dict[tuple[int, str], None] = {}
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        for m in LINK.finditer(line):
            target = m.group(1).split("#")[0]
            if target and not re.match(r"[a-z]+:", target):
                found[number, target] = None
        for m in MENTIONED.finditer(line):
            found[number, m.group(1) or m.group(0)] = None
    return list(found)


def test_every_file_the_docs_name_exists():
    files = repo_files()
    texts = [*DOCS, ROOT / "docker-compose.yml", ROOT / "docker-compose.cluster.yml", ROOT / ".env.example",
             ROOT / "Dockerfile", *sorted(p for p in (ROOT / "contrib").rglob("*") if p.is_file())]
    missing = [f"{doc.relative_to(ROOT)}:{number}: {name}"
               for doc in texts for number, name in named_files(doc)
               if not name.startswith("/") and name not in OUTSIDE and not exists(name, doc.parent, files)]
    assert missing == []


def test_the_check_catches_a_missing_file(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("See [the list](errors.md), `design.md` section 8 and `msnp6/tap.py`.\n")
    found = [name for _, name in named_files(doc) if not exists(name, doc.parent, repo_files())]
    assert found == ["errors.md", "design.md"]


# -- backup and restore, as docs/hosting.md writes them --------------------------------------------


def backup_blocks() -> list[str]:
    """The ```sh blocks of section 6, each dedented."""
    text = (ROOT / "docs" / "hosting.md").read_text()
    section = text[text.index("## 6. Backups"):text.index("## 7.")]
    return [textwrap.dedent(m.group(1)).strip()
            for m in re.finditer(r"^[ \t]*```sh\n(.*?)^[ \t]*```", section, re.S | re.M)]


def one_block(blocks: list[str], having: str) -> list[str]:
    found = [b for b in blocks if having in b]
    assert len(found) == 1, (having, blocks)
    return found[0].splitlines()


def psql(sql: str, database: str = "test") -> None:
    done = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1",
                           "-qc", sql], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def doc_database(pg_schema_url) -> Iterator[tuple[str, str]]:
    """A role and a database of that name (what the doc calls msnp6), and the name of the
    restored database (msnp6_restored); both dropped after, with the role."""
    name = f"msnp6_doc_{os.getpid()}_{secrets.token_hex(3)}"
    restored = f"{name}_restored"
    psql(f'CREATE ROLE "{name}" LOGIN')
    psql(f'CREATE DATABASE "{name}" OWNER "{name}"')
    try:
        yield name, restored
    finally:
        for database in (name, restored):
            psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        psql(f'DROP ROLE IF EXISTS "{name}"')


def as_written(command: str, name: str, restored: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A documented command with the database names substituted, run by a shell as the operator
    (a superuser, like `sudo -u postgres`) on the local PostgreSQL."""
    command = re.sub(r"\bmsnp6\b(?!\.dump)", name, command.replace("msnp6_restored", restored))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGHOST="127.0.0.1", PGPORT="5432", PGUSER="postgres")
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def logs_in(url: str, key_file: Path, workdir: Path, handle: str) -> None:
    server = ServerProcess(url, key_file, workdir)
    server.start()
    try:
        with server.client() as c:
            c.login(handle, "pw")
    finally:
        server.stop()


def handles(url: str, key_file: Path) -> str:
    listed = run_admin(["user", "list"], url, key_file)
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


def test_backup_and_restore_as_documented(doc_database, key_file, tmp_path):
    name, restored = doc_database
    url = f"postgresql://{name}@127.0.0.1:5432/{name}"
    restored_url = f"postgresql://{name}@127.0.0.1:5432/{restored}"
    assert run_admin(["migrate"], url, key_file).returncode == 0
    added = run_admin(["user", "add", "alice@example.com"], url, key_file, stdin="pw\n")
    assert added.returncode == 0, added.stderr
    blocks = backup_blocks()

    for command in one_block(blocks, "pg_dump"):
        done = as_written(command, name, restored, tmp_path)
        assert done.returncode == 0, (command, done.stderr)
    assert (tmp_path / "msnp6.dump").stat().st_size > 0
    later = run_admin(["user", "add", "bob@example.com"], url, key_file, stdin="pw\n")  # after the dump
    assert later.returncode == 0, later.stderr

    # What the doc warns about: a plain restore into the database in use fails.
    plain = as_written("pg_restore --dbname=msnp6 msnp6.dump", name, restored, tmp_path)
    assert plain.returncode != 0 and 'relation "accounts" already exists' in plain.stderr

    # Into a new database: the dump's data, and a login works on it.
    for command in one_block(blocks, "createdb"):
        done = as_written(command, name, restored, tmp_path)
        assert (done.returncode, done.stderr) == (0, ""), command
    listed = handles(restored_url, key_file)
    assert "alice@example.com" in listed and "bob@example.com" not in listed
    logs_in(restored_url, key_file, tmp_path / "restored", "alice@example.com")

    # In place, over the database in use: back to the dump (bob, added later, is gone).
    for command in one_block(blocks, "--clean --if-exists"):
        done = as_written(command, name, restored, tmp_path)
        assert (done.returncode, done.stderr) == (0, ""), command
    listed = handles(url, key_file)
    assert "alice@example.com" in listed and "bob@example.com" not in listed
    logs_in(url, key_file, tmp_path / "in-place", "alice@example.com")
    assert run_admin(["migrate"], url, key_file).returncode == 0  # what the unit runs next
