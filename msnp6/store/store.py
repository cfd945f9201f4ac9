"""The store: ``StoreCore`` does one transaction per method, synchronously; ``Store`` runs those
methods in a dedicated thread pool and returns Deferreds, so the reactor thread never blocks.

The admin command uses ``StoreCore`` directly.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, TypeVar

from sqlalchemy import Connection, Engine, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from .engine import is_sqlite
from .models import accounts, list_entries
from ..core.visibility import allows
from .records import LISTS, AccountRecord, ContactInfo, ListEntryRecord, SyncSnapshot

T = TypeVar("T")


class DuplicateHandle(Exception):
    pass


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _account(row: Row[Any]) -> AccountRecord:
    m = row._mapping
    return AccountRecord(
        id=m["id"],
        handle=m["handle"],
        friendly_name=m["friendly_name"],
        verified=bool(m["verified"]),
        list_version=int(m["list_version"]),
        blp=m["blp"],
        gtc=m["gtc"],
        phone_home=m["phone_home"],
        phone_work=m["phone_work"],
        phone_mobile=m["phone_mobile"],
        mobile_allowed=bool(m["mobile_allowed"]),
        mobile_enabled=bool(m["mobile_enabled"]),
        email_enabled=bool(m["email_enabled"]),
        credential=bytes(m["credential"]),
    )


class StoreCore:
    """Synchronous store operations; each public method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- accounts ------------------------------------------------------------------------------

    def get_account(self, handle: str) -> AccountRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(accounts).where(accounts.c.handle == handle)).first()
        return _account(row) if row is not None else None

    def create_account(
        self,
        handle: str,
        friendly_name: str,
        credential: bytes,
        verified: bool = True,
        email_enabled: bool = False,
    ) -> AccountRecord:
        now = _now()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(accounts).values(
                        handle=handle,
                        friendly_name=friendly_name,
                        verified=verified,
                        list_version=0,
                        blp="AL",
                        gtc="A",
                        mobile_allowed=False,
                        mobile_enabled=False,
                        email_enabled=email_enabled,
                        credential=credential,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError as e:
            raise DuplicateHandle(handle) from e
        account = self.get_account(handle)
        assert account is not None
        return account

    def _update_account(self, handle: str, **values: Any) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(accounts).where(accounts.c.handle == handle).values(updated_at=_now(), **values)
            )
        return result.rowcount == 1

    def set_credential(self, handle: str, credential: bytes) -> bool:
        return self._update_account(handle, credential=credential)

    def set_verified(self, handle: str, verified: bool) -> bool:
        return self._update_account(handle, verified=verified)

    def set_email_enabled(self, handle: str, enabled: bool) -> bool:
        return self._update_account(handle, email_enabled=enabled)

    def list_accounts(self) -> list[AccountRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(accounts).order_by(accounts.c.handle)).all()
        return [_account(r) for r in rows]

    def delete_account(self, handle: str) -> bool:
        """Delete the account, and take it off everyone else's lists (bumping their versions)."""
        with self.engine.begin() as conn:
            row = conn.execute(select(accounts.c.id).where(accounts.c.handle == handle)).first()
            if row is None:
                return False
            owners = [
                r.owner_id
                for r in conn.execute(
                    select(list_entries.c.owner_id)
                    .where(list_entries.c.contact == handle)
                    .distinct()
                )
            ]
            conn.execute(delete(list_entries).where(list_entries.c.contact == handle))
            conn.execute(delete(list_entries).where(list_entries.c.owner_id == row.id))
            for owner in owners:
                _bump(conn, owner)
            conn.execute(delete(accounts).where(accounts.c.id == row.id))
        return True

    # -- lists -------------------------------------------------------------------------------

    def get_lists(self, owner_id: int) -> dict[str, list[ListEntryRecord]]:
        """All four lists, each in the order entries were added."""
        with self.engine.connect() as conn:
            return _lists(conn, owner_id)

    def get_snapshot(self, owner_id: int) -> SyncSnapshot | None:
        """The account, its four lists and its FL contacts' phone data, read in one transaction."""
        with self.engine.begin() as conn:
            row = conn.execute(select(accounts).where(accounts.c.id == owner_id)).first()
            if row is None:
                return None
            account = _account(row)
            lists = _lists(conn, owner_id)
            contacts = _contact_infos(conn, account.handle, [e.contact for e in lists["FL"]])
        return SyncSnapshot(account, lists, contacts)


def _lists(conn: Connection, owner_id: int) -> dict[str, list[ListEntryRecord]]:
    lists: dict[str, list[ListEntryRecord]] = {name: [] for name in LISTS}
    for r in conn.execute(
        select(list_entries.c.list, list_entries.c.contact, list_entries.c.name)
        .where(list_entries.c.owner_id == owner_id)
        .order_by(list_entries.c.id)
    ):
        lists[r.list].append(ListEntryRecord(r.list, r.contact, r.name))
    return lists


def _contact_infos(conn: Connection, viewer: str, handles: list[str]) -> dict[str, ContactInfo]:
    if not handles:
        return {}
    rows = conn.execute(select(accounts).where(accounts.c.handle.in_(handles))).all()
    ids = {r.id: r for r in rows}
    # Where the viewer stands on each contact's AL and BL.
    marks: dict[int, set[str]] = {}
    for r in conn.execute(
        select(list_entries.c.owner_id, list_entries.c.list).where(
            list_entries.c.owner_id.in_(list(ids)),
            list_entries.c.contact == viewer,
            list_entries.c.list.in_(("AL", "BL")),
        )
    ):
        marks.setdefault(r.owner_id, set()).add(r.list)
    infos = {}
    for account_id, r in ids.items():
        mine = marks.get(account_id, set())
        allow_list = {viewer} if "AL" in mine else set()
        block_list = {viewer} if "BL" in mine else set()
        infos[r.handle] = ContactInfo(
            handle=r.handle,
            phone_home=r.phone_home,
            phone_work=r.phone_work,
            phone_mobile=r.phone_mobile,
            mobile_allowed=bool(r.mobile_allowed),
            allows_viewer=allows(viewer, r.blp, allow_list, block_list),
        )
    return infos


def _bump(conn: Connection, account_id: int) -> int:
    """Raise an account's list version by one, atomically, in the caller's transaction."""
    return int(
        conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(list_version=accounts.c.list_version + 1, updated_at=_now())
            .returning(accounts.c.list_version)
        ).scalar_one()
    )


class Store:
    """Deferred-returning facade over StoreCore, backed by its own thread pool.

    SQLite gets a single thread (one writer, no lock contention); PostgreSQL a small pool.
    """

    def __init__(self, engine: Engine, reactor: Any, threads: int | None = None) -> None:
        self.core = StoreCore(engine)
        if threads is None:
            threads = 1 if is_sqlite(str(engine.url)) else 4
        self._pool = ThreadPool(minthreads=threads, maxthreads=threads, name="msnp6-store")
        self._reactor = reactor

    def start(self) -> None:
        self._pool.start()

    def stop(self) -> None:
        self._pool.stop()
        self.core.engine.dispose()

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> "Deferred[T]":
        """Run one StoreCore method in the pool."""
        return deferToThreadPool(self._reactor, self._pool, fn, *args, **kwargs)

    def get_account(self, handle: str) -> "Deferred[AccountRecord | None]":
        return self.run(self.core.get_account, handle)

    def get_lists(self, owner_id: int) -> "Deferred[dict[str, list[ListEntryRecord]]]":
        return self.run(self.core.get_lists, owner_id)

    def get_snapshot(self, owner_id: int) -> "Deferred[SyncSnapshot | None]":
        return self.run(self.core.get_snapshot, owner_id)
