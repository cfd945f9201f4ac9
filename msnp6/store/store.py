"""The store: ``StoreCore`` does one transaction per method, synchronously; ``Store`` runs those
methods in a dedicated thread pool and returns Deferreds, so the reactor thread never blocks.

The admin command uses ``StoreCore`` directly.
"""
from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections import Counter
from collections.abc import Callable, Container, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
from sqlalchemy import Connection, Engine, Row, and_, bindparam, delete, func, insert, null, or_, select, update
from sqlalchemy.exc import IntegrityError
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from ..core.visibility import allows_marked
from ..wire.directory import Hit, Search
from ..wire.errors import ErrorCode
from ..wire.groups import DEFAULT_GROUP, IN_DEFAULT, MAX_GROUPS, format_ids, parse_ids
from .engine import bound_statements, is_sqlite
from .handoff import NO_RESULT, Handoff
from .models import accounts, contact_groups, directory_entries, invitations, invites, list_entries
from .raw import RawRead
from .records import (
    LISTS,
    AccountDetails,
    AccountRecord,
    ContactInfo,
    InvitationRecord,
    InviteRecord,
    ListEntryRecord,
    NewAccount,
    SyncSnapshot,
)

T = TypeVar("T")

log = Logger()


class DuplicateHandle(Exception):
    pass


class InviteRefused(Exception):
    """The invite code a sign-up gave is unknown, used or expired (one answer for all three)."""


class StoreTimeout(DeferredTimeout):
    """A store call passed its deadline. A TimeoutError (Twisted's, what ``addTimeout`` raises),
    so code that already treats timeouts as such keeps doing so; its text names the operation
    only, never the call's arguments (handles, names)."""

    def __init__(self, operation: str, timeout: float) -> None:
        super().__init__(f"{operation} did not answer within {timeout:g} s")
        self.operation = operation
        self.timeout = timeout


class ListRefused(Exception):
    """A list or settings change the protocol refuses; ``code`` is the MSNP error to answer."""

    def __init__(self, code: ErrorCode) -> None:
        super().__init__(int(code))
        self.code = code


@attrs.frozen(slots=True)
class ListChange:
    """The owner's new list version and, for FL changes, the contact's (their RL changed)."""

    version: int
    contact_version: int | None = None
    #: For ADD FL: what the owner may see of the new contact's phone data.
    contact_info: ContactInfo | None = None
    #: FL: the entry's group ids after the change (() once it left the FL).
    groups: tuple[int, ...] = ()
    #: The entry is new on the list (ADD) or left it (REM); False when only its groups moved.
    entry_moved: bool = True


@attrs.frozen(slots=True)
class GroupRemoval:
    """RMG: the owner's new version, and the FL contacts that were only in that group and so left
    the FL, each with their new version when it moved (the owner left their RL)."""

    version: int
    left: tuple[str, ...]
    contact_versions: dict[str, int]


def _now() -> datetime:
    return datetime.now(UTC)


#: The columns of an AccountRecord, in the order of its fields (``disabled`` last, computed).
_RECORD_COLUMNS = ("id", "handle", "friendly_name", "verified", "list_version", "blp", "gtc", "phone_home",
                   "phone_work", "phone_mobile", "mobile_allowed", "mobile_enabled", "email_enabled",
                   "inbox_unread", "folders_unread", "credential")


def _record(values: Sequence[Any]) -> AccountRecord:
    """An AccountRecord from the values of ``_RECORD_COLUMNS`` and whether it is disabled."""
    (id_, handle, name, verified, version, blp, gtc, phone_home, phone_work, phone_mobile, mobile_allowed,
     mobile_enabled, email_enabled, inbox_unread, folders_unread, credential, disabled) = values
    return AccountRecord(
        id=id_, handle=handle, friendly_name=name, verified=bool(verified), list_version=int(version),
        blp=blp, gtc=gtc, phone_home=phone_home, phone_work=phone_work, phone_mobile=phone_mobile,
        mobile_allowed=bool(mobile_allowed), mobile_enabled=bool(mobile_enabled),
        email_enabled=bool(email_enabled), inbox_unread=int(inbox_unread), folders_unread=int(folders_unread),
        credential=bytes(credential), disabled=bool(disabled),
    )


def _account(row: Row[Any]) -> AccountRecord:
    """An AccountRecord from a whole ``accounts`` row."""
    m = row._mapping
    return _record([*(m[name] for name in _RECORD_COLUMNS), m["disabled_at"] is not None])


class StoreCore:
    """Synchronous store operations; each public method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Single-statement reads need no transaction: on PostgreSQL that saves the BEGIN and
        # ROLLBACK round trips around every account lookup. SQLite's driver begins none for a
        # read anyway, and switching its isolation level on every checkout and back costs.
        self._reads = engine if is_sqlite(str(engine.url)) else engine.execution_options(isolation_level="AUTOCOMMIT")

    # -- accounts ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """``engine.begin()``, except that a call past its store deadline rolls back."""
        with self.engine.begin() as conn:
            yield conn
            _no_late_commit()

    def get_account(self, handle: str) -> AccountRecord | None:
        with self._reads.connect() as conn:
            rows = _RECORD_BY_HANDLE.rows(conn, {"handle": handle})
        return _record(rows[0]) if rows else None

    def create_account(
        self,
        handle: str,
        friendly_name: str,
        credential: bytes,
        verified: bool = True,
        email_enabled: bool = False,
        invite_hash: str | None = None,
    ) -> AccountRecord:
        """``invite_hash``: a sign-up's invite code (its hash), redeemed in the same transaction:
        InviteRefused if it is not usable now, and an account that cannot be made (a taken
        handle) leaves it unused."""
        now = _now()
        try:
            with self.transaction() as conn:
                if invite_hash is not None:
                    _redeem(conn, invite_hash, handle, now)
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

    def create_accounts(self, rows: list[NewAccount]) -> list[str]:
        """Insert ``rows`` in one transaction, leaving out handles that already exist; the
        handles left out. A handle created meanwhile by someone else fails the whole batch
        (DuplicateHandle): run it again and that handle is left out."""
        if not rows:
            return []
        now = _now()
        with self.transaction() as conn:
            taken = set(conn.execute(select(accounts.c.handle).where(
                accounts.c.handle.in_([r.handle for r in rows]))).scalars())
            fresh = [r for r in rows if r.handle not in taken]
            if fresh:
                try:
                    conn.execute(insert(accounts), [dict(
                        handle=r.handle, friendly_name=r.friendly_name, verified=r.verified, list_version=0,
                        blp="AL", gtc="A", mobile_allowed=False, mobile_enabled=False, email_enabled=False,
                        credential=r.credential, created_at=now, updated_at=now) for r in fresh])
                except IntegrityError as e:
                    raise DuplicateHandle(", ".join(sorted(r.handle for r in fresh))) from e
        return [r.handle for r in rows if r.handle in taken]

    def _update_account(self, handle: str, **values: Any) -> bool:
        with self.transaction() as conn:
            result = conn.execute(
                update(accounts).where(accounts.c.handle == handle).values(updated_at=_now(), **values)
            )
        return result.rowcount == 1

    def set_credential(self, handle: str, credential: bytes, replacing: bytes | None = None) -> bool:
        """``replacing``: only if the stored credential is still that one (a reset link's
        single use, even when two posts race)."""
        if replacing is None:
            return self._update_account(handle, credential=credential)
        with self.transaction() as conn:
            result = conn.execute(
                update(accounts).where(accounts.c.handle == handle, accounts.c.credential == replacing)
                .values(credential=credential, updated_at=_now())
            )
        return result.rowcount == 1

    def set_verified(self, handle: str, verified: bool) -> bool:
        return self._update_account(handle, verified=verified)

    def set_email_enabled(self, handle: str, enabled: bool) -> bool:
        return self._update_account(handle, email_enabled=enabled)

    def set_mobile_enabled(self, handle: str, enabled: bool) -> int | None:
        """The MBE flag is part of the SYN dump, so it moves the list version; the new version
        (None: no such account)."""
        with self.transaction() as conn:
            row = conn.execute(
                update(accounts).where(accounts.c.handle == handle)
                .values(mobile_enabled=enabled, list_version=accounts.c.list_version + 1, updated_at=_now())
                .returning(accounts.c.list_version)
            ).first()
        return int(row[0]) if row is not None else None

    def set_disabled(self, handle: str, disabled: bool, reason: str | None = None) -> bool:
        """Disable the account (when and why are kept) or enable it again; False: no such account."""
        return self._update_account(handle, disabled_at=_now() if disabled else None,
                                    disabled_reason=reason if disabled else None)

    def note_logins(self, account_ids: list[int], when: datetime) -> None:
        """Set the last login of many accounts at once (the logins of the last few seconds).
        Their rows are locked in id order first, as every change does (``_lock``): an UPDATE over
        many ids takes its row locks in the order it finds the rows, and against an ``ADD`` (which
        locks its two accounts in id order) that deadlocked on PostgreSQL."""
        ids = sorted(set(account_ids))
        for start in range(0, len(ids), _IDS_PER_STATEMENT):
            chunk = ids[start:start + _IDS_PER_STATEMENT]
            with self.transaction() as conn:
                _lock(conn, *chunk)
                conn.execute(_NOTE_LOGINS, {"ids": chunk, "when": when})

    def account_details(self, handle: str) -> AccountDetails | None:
        with self.engine.connect() as conn:
            row = conn.execute(_ACCOUNT_BY_HANDLE, {"handle": handle}).first()
            if row is None:
                return None
            sizes = dict.fromkeys(LISTS, 0)
            for name, n in conn.execute(
                    select(list_entries.c.list, func.count()).where(list_entries.c.owner_id == row.id)
                    .group_by(list_entries.c.list)):
                sizes[name] = int(n)
        m = row._mapping
        return AccountDetails(_account(row), m["created_at"], m["disabled_at"], m["disabled_reason"],
                              m["last_login_at"], sizes)

    def add_unread_mail(self, handle: str) -> int | None:
        """One more unread message in the inbox; the new count (None: no such account)."""
        with self.transaction() as conn:
            row = conn.execute(
                update(accounts).where(accounts.c.handle == handle)
                .values(inbox_unread=accounts.c.inbox_unread + 1, updated_at=_now())
                .returning(accounts.c.inbox_unread)
            ).first()
        return int(row[0]) if row is not None else None

    def clear_unread_mail(self, handle: str) -> bool:
        """Inbox and folders unread counts back to 0 (the web side's "mark all read"); False: no
        such account."""
        return self._update_account(handle, inbox_unread=0, folders_unread=0)

    # -- invitations and the member directory --------------------------------------------------

    def record_invitation(self, sender: str, recipient: str, lcid: str, sender_name: str, body: str) -> None:
        with self.transaction() as conn:
            conn.execute(insert(invitations).values(
                sender=sender, recipient=recipient, lcid=lcid[:16], sender_name=sender_name, body=body,
                created_at=_now()))

    def create_invites(self, code_hashes: list[str], note: str, expires_at: datetime | None) -> None:
        now = _now()
        with self.transaction() as conn:
            conn.execute(insert(invites), [
                {"code_hash": h, "note": note, "created_at": now, "expires_at": expires_at} for h in code_hashes])

    def list_invites(self) -> list[InviteRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(invites).order_by(invites.c.id)).all()
        return [InviteRecord(r.code_hash, r.note, r.created_at, r.expires_at, r.used_at, r.used_by) for r in rows]

    def list_invitations(self, limit: int = 1000) -> list[InvitationRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(invitations).order_by(invitations.c.id.desc()).limit(limit)).all()
        return [InvitationRecord(r.sender, r.recipient, r.lcid, r.sender_name, r.body, r.created_at) for r in rows]

    def set_directory(self, handle: str, first: str, last: str, city: str, state: str, country: str) -> bool:
        """List the account in the member directory (opt-in), or update its entry."""
        values = dict(first_name=first, last_name=last, city=city, state=state.upper(), country=country.upper())
        with self.transaction() as conn:
            account_id = conn.execute(select(accounts.c.id).where(accounts.c.handle == handle)).scalar()
            if account_id is None:
                return False
            conn.execute(delete(directory_entries).where(directory_entries.c.account_id == account_id))
            conn.execute(insert(directory_entries).values(account_id=account_id, **values))
        return True

    def directory_entry(self, handle: str) -> Hit | None:
        """The account's member-directory entry, or None if it is not listed."""
        d = directory_entries.c
        query = select(accounts.c.handle, d.first_name, d.last_name, d.city, d.state, d.country).join(
            accounts, accounts.c.id == d.account_id).where(accounts.c.handle == handle)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return Hit(*row) if row is not None else None

    def remove_directory(self, handle: str) -> bool:
        with self.transaction() as conn:
            account_id = conn.execute(select(accounts.c.id).where(accounts.c.handle == handle)).scalar()
            result = conn.execute(delete(directory_entries).where(directory_entries.c.account_id == account_id))
        return result.rowcount == 1

    def search_directory(self, search: Search, limit: int) -> list[Hit]:
        """Case-insensitive exact matches; at most ``limit`` + 1 rows, so callers see an overflow."""
        d = directory_entries.c
        query = select(accounts.c.handle, d.first_name, d.last_name, d.city, d.state, d.country).join(
            accounts, accounts.c.id == d.account_id)
        for column, value in ((d.first_name, search.fname), (d.last_name, search.lname), (d.city, search.city),
                              (d.state, search.state), (d.country, search.country)):
            if value is not None:
                query = query.where(func.lower(column) == value.lower())
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(d.last_name, d.first_name, accounts.c.id).limit(limit + 1)).all()
        return [Hit(*r) for r in rows]

    def list_accounts(self) -> list[AccountRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(accounts).order_by(accounts.c.handle)).all()
        return [_account(r) for r in rows]

    def delete_account(self, handle: str) -> dict[str, int] | None:
        """Delete the account, and take it off everyone else's lists, bumping their versions once
        each. Returns those owners' handles with their new versions (None: no such account)."""
        with self.transaction() as conn:
            row = conn.execute(select(accounts.c.id).where(accounts.c.handle == handle)).first()
            if row is None:
                return None
            owner_ids = sorted({
                r.owner_id
                for r in conn.execute(select(list_entries.c.owner_id).where(list_entries.c.contact == handle))
            })
            _lock(conn, row.id, *owner_ids)
            conn.execute(delete(list_entries).where(list_entries.c.contact == handle))
            conn.execute(delete(list_entries).where(list_entries.c.owner_id == row.id))
            conn.execute(delete(contact_groups).where(contact_groups.c.owner_id == row.id))
            conn.execute(delete(directory_entries).where(directory_entries.c.account_id == row.id))
            bumped = _bump_many(conn, owner_ids)
            conn.execute(delete(accounts).where(accounts.c.id == row.id))
        return bumped

    # -- lists -------------------------------------------------------------------------------

    def get_snapshot(self, owner_id: int, groups: bool = True) -> SyncSnapshot | None:
        """The account, its four lists (FL with group ids), its groups (unless ``groups`` is
        False: a dialect without them) and its FL contacts' phone data, read in one transaction."""
        with self.transaction() as conn:
            rows = _RECORD_BY_ID.rows(conn, {"id": owner_id})
            if not rows:
                return None
            account = _record(rows[0])
            lists, contacts = _lists_and_contacts(conn, owner_id, account.handle)
            named = {int(r.group_id): r.name for r in conn.execute(_GROUPS_OF, {"owner": owner_id})} if groups else {}
        return SyncSnapshot(account, lists, contacts, named)

    def list_versions(self, owner_ids: list[int]) -> dict[int, int]:
        """The list version of each of ``owner_ids`` that still exists (a node checking its
        sessions for changes it missed)."""
        found: dict[int, int] = {}
        with self.transaction() as conn:
            for start in range(0, len(owner_ids), 500):
                chunk = owner_ids[start:start + 500]
                query = select(accounts.c.id, accounts.c.list_version).where(accounts.c.id.in_(chunk))
                found.update((int(row.id), int(row.list_version)) for row in conn.execute(query))
        return found

    # -- list and settings changes: each bumps the list version in the same transaction ------

    def add_entry(self, owner_id: int, owner_name: str, list_name: str, contact: str, name: str, limit: int,
                  group: int | None = None) -> ListChange:
        """Put ``contact`` on FL, AL or BL. ``ADD FL`` also puts the owner on the contact's RL.

        ``group`` (MSNP7 FL): the group to put the contact in; a contact already on the FL joins
        that group too (215 only when already in it). None (MSNP2-6): group 0, and 215 for any
        contact already on the FL."""
        with self.transaction() as conn:
            contact_row = conn.execute(_ID_BY_HANDLE, {"handle": contact}).first()
            if contact_row is None:
                raise ListRefused(ErrorCode.INVALID_USER)
            _lock(conn, owner_id, contact_row.id if list_name == "FL" else None)
            if group is not None and not _group_exists(conn, owner_id, group):
                raise ListRefused(ErrorCode.INVALID_GROUP)
            mine = _entry_lists(conn, owner_id, contact)
            if list_name == "FL" and group is not None and "FL" in mine:
                return self._join_group(conn, owner_id, contact, group)
            if list_name in mine:
                raise ListRefused(ErrorCode.ALREADY_THERE)
            if {list_name, *mine} >= {"AL", "BL"}:
                raise ListRefused(ErrorCode.ALREADY_IN_OPPOSITE_LIST)
            if _count(conn, owner_id, list_name) >= limit:
                raise ListRefused(ErrorCode.LIST_FULL)
            groups = (DEFAULT_GROUP if group is None else group,) if list_name == "FL" else ()
            conn.execute(_ADD_ENTRY, {"owner_id": owner_id, "list": list_name, "contact": contact, "name": name,
                                      "group_ids": format_ids(groups) if groups else None})
            contact_version = None
            if list_name == "FL":
                owner_handle = _handle_of(conn, owner_id)
                if "RL" not in _entry_lists(conn, contact_row.id, owner_handle):
                    conn.execute(_ADD_ENTRY, {"owner_id": contact_row.id, "list": "RL", "contact": owner_handle,
                                              "name": owner_name, "group_ids": None})
                    contact_version = _bump(conn, contact_row.id)
                info = _contact_infos(conn, owner_handle, [contact])[contact]
                return ListChange(_bump(conn, owner_id), contact_version, info, groups)
            return ListChange(_bump(conn, owner_id))

    @staticmethod
    def _join_group(conn: Connection, owner_id: int, contact: str, group: int) -> ListChange:
        """An FL contact goes into one more group (MSNP7 ``ADD FL handle name group``)."""
        groups = _fl_groups(conn, owner_id, contact)
        if group in groups:
            raise ListRefused(ErrorCode.ALREADY_THERE)
        joined = tuple(sorted((*groups, group)))
        _set_fl_groups(conn, owner_id, contact, joined)
        return ListChange(_bump(conn, owner_id), groups=joined, entry_moved=False)

    def remove_entry(self, owner_id: int, list_name: str, contact: str, group: int | None = None) -> ListChange:
        """Take ``contact`` off FL, AL or BL. ``REM FL`` also takes the owner off their RL.

        ``group`` (MSNP7 FL): take the contact out of that group only (224 no such group, 225 not
        in it); the entry stays on the FL while it is in another group, and leaves it (RL and
        all) with its last one."""
        with self.transaction() as conn:
            contact_row = conn.execute(_ID_BY_HANDLE, {"handle": contact}).first()
            _lock(conn, owner_id, contact_row.id if contact_row is not None and list_name == "FL" else None)
            if group is not None:
                if not _group_exists(conn, owner_id, group):
                    raise ListRefused(ErrorCode.INVALID_GROUP)
                if "FL" not in _entry_lists(conn, owner_id, contact):
                    raise ListRefused(ErrorCode.NOT_ON_LIST)
                groups = _fl_groups(conn, owner_id, contact)
                if group not in groups:
                    raise ListRefused(ErrorCode.NOT_IN_GROUP)
                rest = tuple(g for g in groups if g != group)
                if rest:
                    _set_fl_groups(conn, owner_id, contact, rest)
                    return ListChange(_bump(conn, owner_id), groups=rest, entry_moved=False)
            removed = conn.execute(delete(list_entries).where(
                list_entries.c.owner_id == owner_id, list_entries.c.list == list_name,
                list_entries.c.contact == contact))
            if removed.rowcount == 0:
                raise ListRefused(ErrorCode.NOT_ON_LIST)
            contact_version = None
            if list_name == "FL" and contact_row is not None:
                owner_handle = _handle_of(conn, owner_id)
                contact_version = _leave_reverse_list(conn, contact_row.id, owner_handle)
            return ListChange(_bump(conn, owner_id), contact_version)

    # -- MSNP7 groups: each change bumps the list version too --------------------------------

    def add_group(self, owner_id: int, name: str) -> tuple[int, int]:
        """A new group under the lowest free id (223 when all 30 are taken): (version, id)."""
        with self.transaction() as conn:
            _lock(conn, owner_id)
            taken = {DEFAULT_GROUP, *conn.execute(select(contact_groups.c.group_id).where(
                contact_groups.c.owner_id == owner_id)).scalars()}
            free = next((g for g in range(MAX_GROUPS) if g not in taken), None)
            if free is None:
                raise ListRefused(ErrorCode.TOO_MANY_GROUPS)
            conn.execute(insert(contact_groups).values(owner_id=owner_id, group_id=free, name=name))
            return _bump(conn, owner_id), free

    def rename_group(self, owner_id: int, group: int, name: str) -> int:
        """224 for a group that does not exist; group 0 gets a row on its first rename."""
        with self.transaction() as conn:
            _lock(conn, owner_id)
            changed = conn.execute(update(contact_groups).where(
                contact_groups.c.owner_id == owner_id, contact_groups.c.group_id == group).values(name=name))
            if changed.rowcount == 0:
                if group != DEFAULT_GROUP:
                    raise ListRefused(ErrorCode.INVALID_GROUP)
                conn.execute(insert(contact_groups).values(owner_id=owner_id, group_id=group, name=name))
            return _bump(conn, owner_id)

    def remove_group(self, owner_id: int, group: int) -> GroupRemoval:
        """Remove a group (230 for group 0, 224 when it does not exist). FL contacts in other
        groups too just leave it; those only in it leave the FL, and the owner their RL."""
        if group == DEFAULT_GROUP:
            raise ListRefused(ErrorCode.CANNOT_REMOVE_GROUP_0)
        with self.transaction() as conn:
            members = [(r.contact, parse_ids(r.group_ids)) for r in conn.execute(
                select(list_entries.c.contact, list_entries.c.group_ids).where(
                    list_entries.c.owner_id == owner_id, list_entries.c.list == "FL",
                    list_entries.c.group_ids.is_not(None)))]
            members = [(contact, groups) for contact, groups in members if group in groups]
            leaving = tuple(contact for contact, groups in members if groups == (group,))
            contact_ids = [r.id for r in conn.execute(select(accounts.c.id).where(accounts.c.handle.in_(leaving)))]
            _lock(conn, owner_id, *contact_ids)
            removed = conn.execute(delete(contact_groups).where(
                contact_groups.c.owner_id == owner_id, contact_groups.c.group_id == group))
            if removed.rowcount == 0:
                raise ListRefused(ErrorCode.INVALID_GROUP)
            for contact, groups in members:
                if groups != (group,):
                    _set_fl_groups(conn, owner_id, contact, tuple(g for g in groups if g != group))
            contact_versions: dict[str, int] = {}
            if leaving:
                conn.execute(delete(list_entries).where(
                    list_entries.c.owner_id == owner_id, list_entries.c.list == "FL",
                    list_entries.c.contact.in_(leaving)))
                owner_handle = _handle_of(conn, owner_id)
                for contact_id in contact_ids:
                    handle = conn.execute(select(accounts.c.handle).where(accounts.c.id == contact_id)).scalar_one()
                    version = _leave_reverse_list(conn, contact_id, owner_handle)
                    if version is not None:
                        contact_versions[handle] = version
            return GroupRemoval(_bump(conn, owner_id), leaving, contact_versions)

    def set_setting(self, owner_id: int, field: str, value: str) -> int:
        """BLP or GTC (``field`` is ``blp``/``gtc``); the current value again is refused with 218."""
        assert field in ("blp", "gtc")
        column = accounts.c[field]
        with self.transaction() as conn:
            version = _bump(conn, owner_id)
            changed = conn.execute(update(accounts).where(accounts.c.id == owner_id, column != value).values({field: value}))
            if changed.rowcount == 0:
                raise ListRefused(ErrorCode.ALREADY_IN_MODE)  # rolls the bump back
            return version

    def rename_self(self, owner_id: int, name: str) -> int:
        with self.transaction() as conn:
            conn.execute(update(accounts).where(accounts.c.id == owner_id).values(friendly_name=name))
            return _bump(conn, owner_id)

    def rename_contact(self, owner_id: int, contact: str, name: str) -> int:
        """The stored name of every entry the owner has for ``contact``; 216 when there is none."""
        with self.transaction() as conn:
            version = _bump(conn, owner_id)
            changed = conn.execute(update(list_entries).where(
                list_entries.c.owner_id == owner_id, list_entries.c.contact == contact).values(name=name))
            if changed.rowcount == 0:
                raise ListRefused(ErrorCode.NOT_ON_LIST)
            return version

    def set_property(self, owner_id: int, key: str, value: str | None, watchers: list[str]) -> tuple[int, dict[str, int]]:
        """A phone number or the MOB flag. The watchers shown it get a version bump too (their
        SYN dump carries it in BPR lines); returns the owner's and those watchers' versions."""
        values: dict[str, Any] = {PROPERTY_COLUMNS[key]: (value == "Y") if key == "MOB" else value}
        with self.transaction() as conn:
            ids = [r.id for r in conn.execute(select(accounts.c.id).where(accounts.c.handle.in_(watchers)))]
            _lock(conn, owner_id, *ids)
            conn.execute(update(accounts).where(accounts.c.id == owner_id).values(**values))
            version = _bump(conn, owner_id)
            return version, _bump_many(conn, ids)


#: The Deferred of the call running on this pool thread, for ``_no_late_commit``.
_running = threading.local()


class _PastDeadline(Exception):
    """Raised at commit by a call whose caller has had its answer (dropped with the result)."""


def _no_late_commit() -> None:
    """Called just before a transaction commits: a call that is past its deadline rolls back
    instead, so a client answered 500 does not find the change made after all (only a commit
    already under way slips by). Not an engine event listener: any ConnectionEvents listener
    makes SQLAlchemy join event dispatchers on every connection checkout, which cost a third
    more store time per login."""
    d = getattr(_running, "deferred", None)
    if d is not None and d.called:
        raise _PastDeadline()


#: PRP keys a client may set, and where they are kept.
PROPERTY_COLUMNS = {"PHH": "phone_home", "PHW": "phone_work", "PHM": "phone_mobile", "MOB": "mobile_allowed"}


def _redeem(conn: Connection, code_hash: str, handle: str, now: datetime) -> None:
    """Mark an invite used by ``handle``, or InviteRefused. One conditional UPDATE: of two
    sign-ups racing for one code, the second waits for the first's row lock (PostgreSQL; SQLite
    has one writer), then finds it used and changes nothing."""
    result = conn.execute(
        update(invites)
        .where(invites.c.code_hash == code_hash, invites.c.used_at.is_(None),
               or_(invites.c.expires_at.is_(None), invites.c.expires_at > now))
        .values(used_at=now, used_by=handle))
    if result.rowcount != 1:
        raise InviteRefused()


def _lock(conn: Connection, *ids: int | None) -> None:
    """Lock the accounts a change touches, always in id order: two people adding each other at
    the same moment must not deadlock (PostgreSQL; SQLite has one writer anyway)."""
    wanted = sorted({i for i in ids if i is not None})
    conn.execute(_LOCK, {"ids": wanted})


def _handle_of(conn: Connection, account_id: int) -> str:
    return str(conn.execute(_HANDLE_OF, {"id": account_id}).scalar_one())


def _leave_reverse_list(conn: Connection, contact_id: int, owner_handle: str) -> int | None:
    """The owner left the contact's FL, so the contact's RL loses the owner: their new version
    (None when the owner was not on it)."""
    reverse = conn.execute(delete(list_entries).where(
        list_entries.c.owner_id == contact_id, list_entries.c.list == "RL", list_entries.c.contact == owner_handle))
    return _bump(conn, contact_id) if reverse.rowcount else None


def _group_exists(conn: Connection, owner_id: int, group: int) -> bool:
    if group == DEFAULT_GROUP:
        return True
    return conn.execute(_GROUP_EXISTS, {"owner": owner_id, "group": group}).first() is not None


def _fl_groups(conn: Connection, owner_id: int, contact: str) -> tuple[int, ...]:
    return parse_ids(conn.execute(_FL_GROUPS, {"owner": owner_id, "contact": contact}).scalar())


def _set_fl_groups(conn: Connection, owner_id: int, contact: str, groups: tuple[int, ...]) -> None:
    conn.execute(update(list_entries).where(
        list_entries.c.owner_id == owner_id, list_entries.c.list == "FL", list_entries.c.contact == contact,
    ).values(group_ids=format_ids(groups)))


def _entry_lists(conn: Connection, owner_id: int, contact: str) -> set[str]:
    return set(conn.execute(_ENTRY_LISTS, {"owner": owner_id, "contact": contact}).scalars())


def _count(conn: Connection, owner_id: int, list_name: str) -> int:
    return int(conn.execute(_COUNT, {"owner": owner_id, "list": list_name}).scalar_one())


# The list changes' statements, built once (as the login's below): ADD, REM and the rest run
# several each, and building a select and its cache key per call cost as much as running it.
_LOCK = (select(accounts.c.id).where(accounts.c.id.in_(bindparam("ids", expanding=True)))
         .order_by(accounts.c.id).with_for_update())
_ID_BY_HANDLE = select(accounts.c.id).where(accounts.c.handle == bindparam("handle"))
_HANDLE_OF = select(accounts.c.handle).where(accounts.c.id == bindparam("id"))
_GROUP_EXISTS = select(contact_groups.c.group_id).where(
    contact_groups.c.owner_id == bindparam("owner"), contact_groups.c.group_id == bindparam("group"))
_FL_GROUPS = select(list_entries.c.group_ids).where(
    list_entries.c.owner_id == bindparam("owner"), list_entries.c.list == "FL",
    list_entries.c.contact == bindparam("contact"))
_ENTRY_LISTS = select(list_entries.c.list).where(
    list_entries.c.owner_id == bindparam("owner"), list_entries.c.contact == bindparam("contact"))
_COUNT = select(func.count()).select_from(list_entries).where(
    list_entries.c.owner_id == bindparam("owner"), list_entries.c.list == bindparam("list"))
_ADD_ENTRY = insert(list_entries)
# (Not "id" or "updated_at": an UPDATE keeps its columns' names for its own parameters.)
_BUMP = (update(accounts).where(accounts.c.id == bindparam("account"))
         .values(list_version=accounts.c.list_version + 1, updated_at=bindparam("bumped_at"))
         .returning(accounts.c.list_version))

# The login path's statements, built once: constructing a select and its cache key on every call
# cost more than running it (benchmarks: 105 -> 39 us per query on SQLite).
_ACCOUNT_BY_HANDLE = select(accounts).where(accounts.c.handle == bindparam("handle"))
# A login's two account reads (by handle at USR I, by id in the snapshot): plain tuples (RawRead).
_RECORD = select(*(accounts.c[name] for name in _RECORD_COLUMNS), accounts.c.disabled_at.is_not(None))
_RECORD_BY_HANDLE = RawRead(_RECORD.where(accounts.c.handle == bindparam("handle")))
_RECORD_BY_ID = RawRead(_RECORD.where(accounts.c.id == bindparam("id")))
_GROUPS_OF = (
    select(contact_groups.c.group_id, contact_groups.c.name)
    .where(contact_groups.c.owner_id == bindparam("owner"))
    .order_by(contact_groups.c.group_id)
)
_NOTE_LOGINS = (update(accounts).where(accounts.c.id.in_(bindparam("ids", expanding=True)))
                .values(last_login_at=bindparam("when")))
#: Below every database's bound on parameters in one statement (SQLite's used to be 999).
_IDS_PER_STATEMENT = 500
_MARK = list_entries.alias("mark")


def _lists_read(with_marks: bool) -> RawRead:
    """Every list entry of an owner, in the order they were added; an FL entry with its contact's
    account id, phone data and privacy setting (only the columns a BPR needs), and
    (``with_marks``) where the owner, the viewer, stands on that account's AL or BL (``mark``,
    NULL: on neither; a row per mark)."""
    joined = list_entries.outerjoin(accounts, and_(list_entries.c.list == "FL",
                                                   accounts.c.handle == list_entries.c.contact))
    mark: Any = null()
    if with_marks:
        joined = joined.outerjoin(_MARK, and_(_MARK.c.owner_id == accounts.c.id, _MARK.c.contact == bindparam("viewer"),
                                              or_(_MARK.c.list == "AL", _MARK.c.list == "BL")))
        mark = _MARK.c.list
    return RawRead(
        select(list_entries.c.list, list_entries.c.contact, list_entries.c.name, list_entries.c.group_ids,
               accounts.c.id, accounts.c.phone_home, accounts.c.phone_work, accounts.c.phone_mobile,
               accounts.c.mobile_allowed, accounts.c.blp, mark.label("mark"))
        .select_from(joined).where(list_entries.c.owner_id == bindparam("owner")).order_by(list_entries.c.id))


# A login's snapshot. PostgreSQL: one statement, the marks joined (one round trip). SQLite: the
# lists, then whose AL or BL holds the viewer, one range of the (contact, list) index, where
# joining each FL contact's entry for the viewer was one index probe per contact (a fifth more
# of SQLite's time per login; a second statement costs SQLite no round trip).
_LISTS_WITH_MARKS = _lists_read(with_marks=True)
_LISTS = _lists_read(with_marks=False)
_MARKED_BY = RawRead(
    select(list_entries.c.owner_id, list_entries.c.list)
    .where(list_entries.c.contact == bindparam("viewer"), or_(list_entries.c.list == "AL", list_entries.c.list == "BL"))
)
_ACCOUNTS_BY_HANDLES = select(accounts).where(accounts.c.handle.in_(bindparam("handles", expanding=True)))
_VIEWER_MARKS = select(list_entries.c.owner_id, list_entries.c.list).where(
    list_entries.c.owner_id.in_(bindparam("owners", expanding=True)),
    list_entries.c.contact == bindparam("viewer"),
    list_entries.c.list.in_(("AL", "BL")),
)


def _lists_and_contacts(conn: Connection, owner_id: int,
                        viewer: str) -> tuple[dict[str, list[ListEntryRecord]], dict[str, ContactInfo]]:
    """The owner's four lists (in the order entries were added; FL with group ids), and what
    the owner (``viewer``) may learn of each FL contact. Plain tuples from the driver
    (``RawRead``): by name, reading the rows cost as much as SQLite."""
    lists: dict[str, list[ListEntryRecord]] = {name: [] for name in LISTS}
    fl = lists["FL"]
    #: FL contact -> its account's id and the columns ``_contact_info`` reads
    accounts_of: dict[str, tuple[int, list[Any]]] = {}
    #: account id -> which of its AL/BL hold the viewer
    marks: dict[int, set[str]] = {}
    joined = conn.dialect.name != "sqlite"
    rows = (_LISTS_WITH_MARKS.rows(conn, {"owner": owner_id, "viewer": viewer}) if joined
            else _LISTS.rows(conn, {"owner": owner_id}))
    for list_name, contact, name, group_ids, account_id, *account, mark in rows:
        if list_name != "FL":
            lists[list_name].append(ListEntryRecord(list_name, contact, name, ()))
            continue
        if account_id is None or contact not in accounts_of:  # a row per mark: on AL and BL, twice
            groups = IN_DEFAULT if group_ids in ("0", None) else parse_ids(group_ids)
            fl.append(ListEntryRecord("FL", contact, name, groups))
            if account_id is not None:
                accounts_of[contact] = (account_id, account)
        if mark is not None:
            marks.setdefault(account_id, set()).add(mark)
    if accounts_of and not joined:
        for owner, list_name in _MARKED_BY.rows(conn, {"viewer": viewer}):
            marks.setdefault(owner, set()).add(list_name)
    return lists, {contact: _contact_info(contact, account, marks.get(account_id, _NO_MARKS))
                   for contact, (account_id, account) in accounts_of.items()}


_NO_MARKS: frozenset[str] = frozenset()


def _contact_info(handle: str, account: Sequence[Any], marks: Container[str]) -> ContactInfo:
    """What the viewer may learn of ``handle``, whose ``account`` columns are phone_home,
    phone_work, phone_mobile, mobile_allowed, blp; ``marks``: which of its AL/BL hold the viewer."""
    phone_home, phone_work, phone_mobile, mobile_allowed, blp = account
    return ContactInfo(handle=handle, phone_home=phone_home, phone_work=phone_work, phone_mobile=phone_mobile,
                       mobile_allowed=bool(mobile_allowed),
                       allows_viewer=allows_marked(blp, "AL" in marks, "BL" in marks))


def _contact_infos(conn: Connection, viewer: str, handles: list[str]) -> dict[str, ContactInfo]:
    if not handles:
        return {}
    rows = conn.execute(_ACCOUNTS_BY_HANDLES, {"handles": handles}).all()
    ids = {r.id: r for r in rows}
    # Where the viewer stands on each contact's AL and BL.
    marks: dict[int, set[str]] = {}
    for r in conn.execute(_VIEWER_MARKS, {"owners": list(ids), "viewer": viewer}):
        marks.setdefault(r.owner_id, set()).add(r.list)
    return {r.handle: _contact_info(r.handle, (r.phone_home, r.phone_work, r.phone_mobile, r.mobile_allowed, r.blp),
                                    marks.get(account_id, set())) for account_id, r in ids.items()}


def _bump_many(conn: Connection, account_ids: list[int]) -> dict[str, int]:
    """``_bump`` for several accounts in one statement: their handles with their new versions."""
    if not account_ids:
        return {}
    return {
        r.handle: int(r.list_version)
        for r in conn.execute(
            update(accounts).where(accounts.c.id.in_(account_ids))
            .values(list_version=accounts.c.list_version + 1, updated_at=_now())
            .returning(accounts.c.handle, accounts.c.list_version))
    }


def _bump(conn: Connection, account_id: int) -> int:
    """Raise an account's list version by one, atomically, in the caller's transaction."""
    return int(conn.execute(_BUMP, {"account": account_id, "bumped_at": _now()}).scalar_one())


class Store:
    """Deferred-returning facade over StoreCore, backed by its own thread pool.

    SQLite gets a single thread (one writer, no lock contention); PostgreSQL a small pool.
    Every call has a deadline of ``timeout`` seconds from queueing (None or 0: none): past it the
    caller's Deferred fails with StoreTimeout, and the database is told to give up at the same
    bound (``bound_statements``), so a stuck call does not hold a pool thread for long either.
    """

    def __init__(self, engine: Engine, reactor: Any, threads: int | None = None, timeout: float | None = 5.0) -> None:
        self.core = StoreCore(engine)
        if threads is None:
            threads = 1 if is_sqlite(str(engine.url)) else 4
        self._pool = ThreadPool(minthreads=threads, maxthreads=threads, name="msnp6-store")
        # Daemon threads: a database call stuck past the shutdown bound must not keep the
        # process alive (stop() still waits for queued work; see msnp6/shutdown.py).
        self._pool.threadFactory = functools.partial(threading.Thread, daemon=True)  # type: ignore[assignment]
        self._handoff = Handoff(self._pool, reactor, threads)
        self._reactor = reactor
        self.timeout = timeout or None
        if self.timeout is not None:
            bound_statements(engine, self.timeout)
        #: Called on the reactor thread with (operation, seconds from queueing to result) after
        #: each call, e.g. by the metrics histogram; None: not timed. Timed-out calls are
        #: observed too, when their deadline passes (so with about ``timeout`` seconds).
        self.observe: Callable[[str, float], None] | None = None
        #: Calls that passed their deadline, by operation.
        self.timeouts: Counter[str] = Counter()
        #: Calls under the deadline, oldest first: their Deferred -> (deadline, operation).
        self._inflight: dict[Deferred[Any], tuple[float, Callable[..., Any]]] = {}
        self._sweep: IDelayedCall | None = None

    def start(self) -> None:
        self._pool.start()

    def stop(self) -> None:
        self._pool.stop()
        self.core.engine.dispose()

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> "Deferred[T]":
        """Run one StoreCore method in the pool, within the deadline."""
        observe = self.observe
        started = time.perf_counter() if observe is not None else 0.0
        d = self._submit(fn, *args, **kwargs)
        if self.timeout is not None:
            self._watch(d, fn, self.timeout)
        if observe is None:
            return d
        operation = getattr(fn, "__name__", "?")

        def timed(result: Any) -> Any:
            observe(operation, time.perf_counter() - started)
            return result

        return d.addBoth(timed)

    def _submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> "Deferred[T]":
        """Queue ``fn`` on the pool; its Deferred fires on the reactor thread (as deferToThreadPool,
        plus: a call whose caller has already had its answer is not started at all)."""
        d: Deferred[T] = Deferred()

        def work() -> Any:
            # Read from the pool thread: ``called`` only ever goes False -> True, so the worst
            # case is starting a call that timed out a moment ago (its result is dropped).
            if d.called:
                return NO_RESULT
            _running.deferred = d
            try:
                return fn(*args, **kwargs)
            finally:
                _running.deferred = None

        # A result after the deadline reaches an already-fired Deferred, which drops it
        # silently (a Deferred cancelled without a canceller ignores one late result).
        self._handoff.submit(d, work)
        return d

    def _watch(self, d: "Deferred[Any]", fn: Callable[..., Any], timeout: float) -> None:
        """Put the call under the deadline. One timer serves every call in flight, not one
        DelayedCall each (that cost a quarter of a login's server time): the deadline is the same
        for all, so calls expire in the order they were made."""
        self._inflight[d] = (self._reactor.seconds() + timeout, fn)
        d.addBoth(self._settled, d, fn, timeout)
        if self._sweep is None:
            self._sweep = self._reactor.callLater(timeout, self._expire)

    def _expire(self) -> None:
        self._sweep = None
        now = self._reactor.seconds()
        inflight = self._inflight
        while inflight:
            d, (deadline, _) = next(iter(inflight.items()))
            if deadline > now:
                self._sweep = self._reactor.callLater(deadline - now, self._expire)
                return
            del inflight[d]
            d.cancel()  # a result arriving later is dropped (no canceller: Deferred ignores it)

    def _settled(self, result: Any, d: "Deferred[Any]", fn: Callable[..., Any], timeout: float) -> Any:
        if self._inflight.pop(d, None) is not None:
            return result  # answered in time
        return self._timed_out(fn, result, timeout)

    def _timed_out(self, fn: Callable[..., Any], result: Any, timeout: float) -> Any:
        if not (isinstance(result, Failure) and result.check(CancelledError)):
            return result
        operation = getattr(fn, "__name__", "?")
        self.timeouts[operation] += 1
        # Once per call, with no arguments: they hold handles and names.
        log.warn("store call {operation} did not answer within {timeout:g} s", operation=operation, timeout=timeout)
        raise StoreTimeout(operation, timeout)

    def get_account(self, handle: str) -> "Deferred[AccountRecord | None]":
        return self.run(self.core.get_account, handle)

    def get_snapshot(self, owner_id: int, groups: bool = True) -> "Deferred[SyncSnapshot | None]":
        return self.run(self.core.get_snapshot, owner_id, groups)

    def list_versions(self, owner_ids: list[int]) -> "Deferred[dict[int, int]]":
        return self.run(self.core.list_versions, owner_ids)

    def add_entry(self, owner_id: int, owner_name: str, list_name: str, contact: str, name: str, limit: int,
                  group: int | None = None) -> "Deferred[ListChange]":
        return self.run(self.core.add_entry, owner_id, owner_name, list_name, contact, name, limit, group)

    def remove_entry(self, owner_id: int, list_name: str, contact: str,
                     group: int | None = None) -> "Deferred[ListChange]":
        return self.run(self.core.remove_entry, owner_id, list_name, contact, group)

    def add_group(self, owner_id: int, name: str) -> "Deferred[tuple[int, int]]":
        return self.run(self.core.add_group, owner_id, name)

    def rename_group(self, owner_id: int, group: int, name: str) -> "Deferred[int]":
        return self.run(self.core.rename_group, owner_id, group, name)

    def remove_group(self, owner_id: int, group: int) -> "Deferred[GroupRemoval]":
        return self.run(self.core.remove_group, owner_id, group)

    def set_setting(self, owner_id: int, field: str, value: str) -> "Deferred[int]":
        return self.run(self.core.set_setting, owner_id, field, value)

    def rename_self(self, owner_id: int, name: str) -> "Deferred[int]":
        return self.run(self.core.rename_self, owner_id, name)

    def rename_contact(self, owner_id: int, contact: str, name: str) -> "Deferred[int]":
        return self.run(self.core.rename_contact, owner_id, contact, name)

    def record_invitation(self, sender: str, recipient: str, lcid: str, sender_name: str, body: str) -> "Deferred[None]":
        return self.run(self.core.record_invitation, sender, recipient, lcid, sender_name, body)

    def search_directory(self, search: Search, limit: int) -> "Deferred[list[Hit]]":
        return self.run(self.core.search_directory, search, limit)

    def add_unread_mail(self, handle: str) -> "Deferred[int | None]":
        return self.run(self.core.add_unread_mail, handle)

    def clear_unread_mail(self, handle: str) -> "Deferred[bool]":
        return self.run(self.core.clear_unread_mail, handle)

    def note_logins(self, account_ids: list[int], when: datetime) -> "Deferred[None]":
        return self.run(self.core.note_logins, account_ids, when)

    def set_property(self, owner_id: int, key: str, value: str | None, watchers: list[str]) -> "Deferred[tuple[int, dict[str, int]]]":
        return self.run(self.core.set_property, owner_id, key, value, watchers)

    # -- operator changes (msnp6-admin, the admin port) ----------------------------------------

    def create_account(self, handle: str, friendly_name: str, credential: bytes, verified: bool = True,
                       email_enabled: bool = False, invite_hash: str | None = None) -> "Deferred[AccountRecord]":
        return self.run(self.core.create_account, handle, friendly_name, credential, verified, email_enabled,
                        invite_hash)

    def create_invites(self, code_hashes: list[str], note: str, expires_at: datetime | None) -> "Deferred[None]":
        return self.run(self.core.create_invites, code_hashes, note, expires_at)

    def list_invites(self) -> "Deferred[list[InviteRecord]]":
        return self.run(self.core.list_invites)

    def create_accounts(self, rows: list[NewAccount]) -> "Deferred[list[str]]":
        return self.run(self.core.create_accounts, rows)

    def set_credential(self, handle: str, credential: bytes, replacing: bytes | None = None) -> "Deferred[bool]":
        return self.run(self.core.set_credential, handle, credential, replacing)

    def set_verified(self, handle: str, verified: bool) -> "Deferred[bool]":
        return self.run(self.core.set_verified, handle, verified)

    def set_email_enabled(self, handle: str, enabled: bool) -> "Deferred[bool]":
        return self.run(self.core.set_email_enabled, handle, enabled)

    def set_mobile_enabled(self, handle: str, enabled: bool) -> "Deferred[int | None]":
        return self.run(self.core.set_mobile_enabled, handle, enabled)

    def set_disabled(self, handle: str, disabled: bool, reason: str | None = None) -> "Deferred[bool]":
        return self.run(self.core.set_disabled, handle, disabled, reason)

    def account_details(self, handle: str) -> "Deferred[AccountDetails | None]":
        return self.run(self.core.account_details, handle)

    def delete_account(self, handle: str) -> "Deferred[dict[str, int] | None]":
        return self.run(self.core.delete_account, handle)

    def set_directory(self, handle: str, first: str, last: str, city: str, state: str, country: str) -> "Deferred[bool]":
        return self.run(self.core.set_directory, handle, first, last, city, state, country)

    def remove_directory(self, handle: str) -> "Deferred[bool]":
        return self.run(self.core.remove_directory, handle)

    def directory_entry(self, handle: str) -> "Deferred[Hit | None]":
        return self.run(self.core.directory_entry, handle)

    def list_accounts(self) -> "Deferred[list[AccountRecord]]":
        return self.run(self.core.list_accounts)


class DirectStore(Store):
    """The same methods run on the calling thread, their Deferreds already fired: for
    ``msnp6-admin`` writing the database itself (no server running) and for unit tests."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, reactor=None, threads=1, timeout=None)  # nothing to wait for

    def start(self) -> None:
        pass

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> "Deferred[T]":
        return maybeDeferred(fn, *args, **kwargs)
