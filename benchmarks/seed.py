"""Bulk-create the benchmark's accounts and list entries straight in the database.

Thousands of accounts through the store one by one would take minutes; two executemany INSERTs
(SQLAlchemy Core, the tables of msnp6/store/models.py) take about a second.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import attrs
from sqlalchemy import Engine, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import fanout_subject, handle

from msnp6.auth import CredentialKey
from msnp6.store.models import accounts, list_entries
from msnp6.store.schema import open_database

_BATCH = 2000


@attrs.frozen
class Sizes:
    logins: int = 0
    idle: int = 0
    fanout: tuple[int, ...] = ()
    pairs: int = 0


def planned_handles(sizes: Sizes) -> Iterator[str]:
    yield from (handle("login", i) for i in range(sizes.logins))
    yield from (handle("idle", i) for i in range(sizes.idle))
    yield from (handle("fanw", i) for i in range(max(sizes.fanout, default=0)))
    yield from (fanout_subject(w) for w in sizes.fanout)
    for i in range(sizes.pairs):
        yield handle("chata", i)
        yield handle("chatb", i)


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


def seed(db_url: str, key_file: Path, sizes: Sizes, password: str) -> tuple[int, int]:
    """Create the schema if needed, then the accounts and entries. Returns (accounts, entries)."""
    engine = open_database(db_url)
    try:
        key = CredentialKey.load(key_file, create=True)
        handles = list(dict.fromkeys(planned_handles(sizes)))
        ids = insert_accounts(engine, key, handles, password)
        return len(handles), insert_entries(engine, ids, planned_entries(sizes))
    finally:
        engine.dispose()
