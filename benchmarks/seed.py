"""Bulk-create the benchmark's accounts and list entries straight in the database.

Thousands of accounts through the store one by one would take minutes; two executemany INSERTs
(SQLAlchemy Core, the tables of msnp6/store/models.py) take about a second. The storm's
accounts go in the way an operator moves a user base over, ``msnp6-admin user import -``; their
contact lists then through the same bulk INSERTs.
"""
from __future__ import annotations

import csv
import io
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import attrs
from sqlalchemy import Engine, bindparam, insert, select, update

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import fanout_subject, handle, storm_handle

from msnp6.auth import CredentialKey
from msnp6.store.engine import refresh_statistics
from msnp6.store.models import accounts, list_entries
from msnp6.store.schema import open_database

_BATCH = 2000


@attrs.frozen
class Sizes:
    logins: int = 0
    idle: int = 0
    fanout: tuple[int, ...] = ()
    pairs: int = 0
    list_owners: int = 0


def planned_handles(sizes: Sizes) -> Iterator[str]:
    yield from (handle("login", i) for i in range(sizes.logins))
    yield from (handle("idle", i) for i in range(sizes.idle))
    yield from (handle("fanw", i) for i in range(max(sizes.fanout, default=0)))
    yield from (fanout_subject(w) for w in sizes.fanout)
    for i in range(sizes.pairs):
        yield handle("chata", i)
        yield handle("chatb", i)
    yield from (handle("lists", i) for i in range(sizes.list_owners))


def planned_entries(sizes: Sizes) -> Iterator[tuple[str, str, str]]:
    """(owner, list, contact): each watcher has the subject on FL, the subject has it on RL."""
    for w in sizes.fanout:
        subject = fanout_subject(w)
        for i in range(w):
            watcher = handle("fanw", i)
            yield watcher, "FL", subject
            yield subject, "RL", watcher


def _batches(items: list[dict[str, object]]) -> Iterable[list[dict[str, object]]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


def insert_accounts(engine: Engine, key: CredentialKey, handles: list[str], password: str) -> dict[str, int]:
    """One row per handle with a sealed password; returns handle -> id."""
    now = datetime.now(UTC)
    rows: list[dict[str, object]] = [
        dict(handle=h, friendly_name=h, verified=True, list_version=1, blp="AL", gtc="A",
             mobile_allowed=False, mobile_enabled=False, email_enabled=False,
             credential=key.seal(h, password), created_at=now, updated_at=now)
        for h in handles
    ]
    with engine.begin() as conn:
        for batch in _batches(rows):
            conn.execute(insert(accounts), batch)
        return {r.handle: r.id for r in conn.execute(select(accounts.c.handle, accounts.c.id))}


def insert_entries(engine: Engine, ids: dict[str, int], entries: Iterable[tuple[str, str, str]]) -> int:
    rows: list[dict[str, object]] = [
        dict(owner_id=ids[owner], list=list_name, contact=contact, name=contact)
        for owner, list_name, contact in entries
    ]
    with engine.begin() as conn:
        for batch in _batches(rows):
            conn.execute(insert(list_entries), batch)
    return len(rows)


def account_ids(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {r.handle: r.id for r in conn.execute(select(accounts.c.handle, accounts.c.id))}


def set_list_versions(engine: Engine, ids: dict[str, int], entries: Iterable[tuple[str, str, str]]) -> None:
    """Each owner's list version = its number of entries, as if each had come by one ADD."""
    per_owner = Counter(owner for owner, _, _ in entries)
    rows: list[dict[str, object]] = [dict(owner=ids[o], version=n) for o, n in per_owner.items()]
    statement = update(accounts).where(accounts.c.id == bindparam("owner")).values(list_version=bindparam("version"))
    with engine.begin() as conn:
        for batch in _batches(rows):
            conn.execute(statement, batch)


@attrs.frozen
class Storm:
    """The storm's population: ``size`` accounts with about ``contacts`` mutual contacts each,
    drawn at random (fixed ``seed``) from the same accounts; ``block_share`` of the contacts
    are blocked (BL instead of AL)."""

    size: int
    contacts: int = 20
    block_share: float = 0.03
    seed: int = 16

    def handles(self) -> list[str]:
        return [storm_handle(self.size, i) for i in range(self.size)]

    def pairs(self, rng: random.Random) -> list[tuple[int, int]]:
        """Undirected contact pairs: each account's ``contacts`` stubs shuffled and paired off
        (a configuration model); self-pairs and repeats are dropped, so a few accounts end up
        with one or two contacts less."""
        degree = min(self.contacts, self.size - 1)
        stubs = [i for i in range(self.size) for _ in range(degree)]
        rng.shuffle(stubs)
        pairs = {(min(a, b), max(a, b)) for a, b in zip(stubs[::2], stubs[1::2], strict=False) if a != b}
        return sorted(pairs)

    def entries(self) -> Iterator[tuple[str, str, str]]:
        """(owner, list, contact). A mutual pair A, B: B on A's FL and A on B's FL, so each is
        on the other's RL; each side has the other on its AL (what a client adds with the FL
        entry; the default BLP AL would show them anyway), or on its BL instead: then the other
        gets no ILN or NLN of it."""
        rng = random.Random(self.seed)
        names = self.handles()
        for a, b in self.pairs(rng):
            for owner, contact in ((names[a], names[b]), (names[b], names[a])):
                yield owner, "FL", contact
                yield owner, "RL", contact
                yield owner, "BL" if rng.random() < self.block_share else "AL", contact


def import_accounts(admin: str, db_url: str, key_file: Path, handles: Sequence[str], password: str) -> None:
    """``msnp6-admin user import -`` with a CSV of ``handle,password,name`` on standard input."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows((h, password, h) for h in handles)
    done = subprocess.run([admin, "--db", db_url, "--key-file", str(key_file), "user", "import", "-"],
                          input=text.getvalue(), capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"msnp6-admin user import exited {done.returncode}: {(done.stdout + done.stderr)[-2000:]}")


def seed_storm(db_url: str, key_file: Path, admin: str, storm: Storm, password: str) -> tuple[int, int]:
    """The storm's accounts (through ``admin``, the msnp6-admin program) and list entries, into
    a database ``seed`` has made. Returns (accounts, entries)."""
    handles = storm.handles()
    import_accounts(admin, db_url, key_file, handles, password)
    engine = open_database(db_url)
    try:
        ids = account_ids(engine)
        entries = list(storm.entries())
        count = insert_entries(engine, ids, entries)
        set_list_versions(engine, ids, entries)
        refresh_statistics(engine)  # as after an operator's bulk load
        return len(handles), count
    finally:
        engine.dispose()


def seed(db_url: str, key_file: Path, sizes: Sizes, password: str) -> tuple[int, int]:
    """Create the schema if needed, then the accounts and entries. Returns (accounts, entries)."""
    engine = open_database(db_url)
    try:
        key = CredentialKey.load(key_file, create=True)
        handles = list(dict.fromkeys(planned_handles(sizes)))
        ids = insert_accounts(engine, key, handles, password)
        count = insert_entries(engine, ids, planned_entries(sizes))
        refresh_statistics(engine)  # as after an operator's bulk load
        return len(handles), count
    finally:
        engine.dispose()
