"""Plain values the store hands out (no SQLAlchemy objects escape the store's threads)."""
from __future__ import annotations

from datetime import datetime

import attrs

LISTS = ("FL", "AL", "BL", "RL")


@attrs.frozen(slots=True)
class ListEntryRecord:
    list: str
    contact: str
    name: str
    #: FL: the MSNP7 group ids, sorted (never empty); () on the other lists.
    groups: tuple[int, ...] = ()


@attrs.frozen(slots=True)
class NewAccount:
    """One account to create in a batch (``msnp6-admin user import``): the credential sealed."""
    handle: str
    friendly_name: str
    credential: bytes
    verified: bool


@attrs.frozen(slots=True)
class AccountRecord:
    id: int
    handle: str
    friendly_name: str
    verified: bool
    list_version: int
    blp: str
    gtc: str
    phone_home: str | None
    phone_work: str | None
    phone_mobile: str | None
    mobile_allowed: bool
    mobile_enabled: bool
    email_enabled: bool
    inbox_unread: int
    folders_unread: int
    credential: bytes = attrs.field(repr=False)
    #: An operator disabled (banned) the account: its logins are refused.
    disabled: bool = False


@attrs.frozen(slots=True)
class AccountDetails:
    """What ``msnp6-admin user show`` prints: the account, its moderation state and list sizes."""

    account: AccountRecord
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None
    last_login_at: datetime | None
    #: FL/AL/BL/RL -> number of entries.
    list_sizes: dict[str, int]


@attrs.frozen(slots=True)
class ContactInfo:
    """What a viewer may learn of one FL contact for BPR lines."""

    handle: str
    phone_home: str | None
    phone_work: str | None
    phone_mobile: str | None
    mobile_allowed: bool
    #: The contact's privacy lets the viewer see them (and so their phone numbers).
    allows_viewer: bool


@attrs.frozen(slots=True)
class SyncSnapshot:
    account: AccountRecord
    lists: dict[str, list[ListEntryRecord]]
    contacts: dict[str, ContactInfo]
    #: The MSNP7 groups with a stored row: id -> name (group 0 only once renamed).
    groups: dict[int, str] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class InvitationRecord:
    sender: str
    recipient: str
    lcid: str
    sender_name: str
    body: str
    created_at: datetime


@attrs.frozen(slots=True)
class InviteRecord:
    """A sign-up invite as ``msnp6-admin invite list`` shows it: never the code (not stored)."""

    code_hash: str
    note: str
    created_at: datetime
    expires_at: datetime | None
    used_at: datetime | None
    used_by: str | None
