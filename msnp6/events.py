"""The cross-user effects, as typed, serialisable events.

An event is plain data: it names accounts, never connections, and carries no closures, so it can
cross a process boundary (``encode``/``decode``: JSON with a ``kind`` tag). It is published to
one or more accounts (the bus's address); the node holding that account's connections turns it
into protocol lines for each of them.
"""
from __future__ import annotations

import json
from typing import Any, ClassVar

import attrs


@attrs.frozen(slots=True)
class PresenceChanged:
    """What the recipient may now see of ``handle``: a state (NLN, BSY, ...) or ``FLN``."""

    kind: ClassVar[str] = "presence"
    handle: str
    status: str
    name: str


@attrs.frozen(slots=True)
class ReverseListChanged:
    """``contact`` put the recipient on (``added``) or took them off their FL; the recipient's RL
    changed at list ``version``."""

    kind: ClassVar[str] = "reverse-list"
    contact: str
    name: str
    added: bool
    version: int


@attrs.frozen(slots=True)
class ContactPhoneChanged:
    """An FL contact's phone number or MOB flag (BPR), at the recipient's list ``version``."""

    kind: ClassVar[str] = "contact-phone"
    contact: str
    key: str
    value: str | None
    version: int


@attrs.frozen(slots=True)
class ContactDeleted:
    """An operator deleted ``contact``: it left every list of the recipient at ``version``."""

    kind: ClassVar[str] = "contact-deleted"
    contact: str
    version: int


@attrs.frozen(slots=True)
class NameChanged:
    """The recipient renamed themselves (their switchboard connections show the new name)."""

    kind: ClassVar[str] = "name"
    name: str


@attrs.frozen(slots=True)
class Ring:
    """An invitation to a switchboard session (RNG)."""

    kind: ClassVar[str] = "ring"
    session_id: int
    sb_address: str
    cookie: str
    caller: str
    caller_name: str


@attrs.frozen(slots=True)
class SignedInElsewhere:
    """The recipient logged in again as ``session``: every other session of theirs ends (OUT OTH)."""

    kind: ClassVar[str] = "signed-in-elsewhere"
    session: str


@attrs.frozen(slots=True)
class OwnPropertyChanged:
    """The recipient's own phone number or MOB flag, changed outside their Messenger session (the
    web side's settings page), at their list ``version``."""

    kind: ClassVar[str] = "own-property"
    key: str
    value: str | None
    version: int


@attrs.frozen(slots=True)
class AccountChanged:
    """An operator changed a flag of the recipient's account. ``field`` is ``verified``,
    ``mobile_enabled`` or ``email_enabled``; ``version`` is set when the change bumped the
    list version (MBE is part of the SYN dump)."""

    kind: ClassVar[str] = "account-changed"
    field: str
    value: bool
    version: int | None = None


@attrs.frozen(slots=True)
class AccountDeleted:
    """An operator deleted the recipient's account: their sessions end."""

    kind: ClassVar[str] = "account-deleted"


@attrs.frozen(slots=True)
class AccountDisabled:
    """An operator disabled the recipient's account: their sessions end (a bare OUT)."""

    kind: ClassVar[str] = "account-disabled"


@attrs.frozen(slots=True)
class SessionKicked:
    """An operator ended the recipient's session (a bare OUT); the account stays usable."""

    kind: ClassVar[str] = "session-kicked"


@attrs.frozen(slots=True)
class MailArrived:
    """One new message in the recipient's inbox (``unread`` is the new count)."""

    kind: ClassVar[str] = "mail"
    unread: int
    from_name: str
    from_addr: str
    subject: str


@attrs.frozen(slots=True)
class PageArrived:
    """A mobile page for the recipient (IPG)."""

    kind: ClassVar[str] = "page"
    sender: str
    sender_id: int
    text: str


Event = (
    PresenceChanged | ReverseListChanged | ContactPhoneChanged | ContactDeleted | NameChanged | Ring
    | SignedInElsewhere | AccountChanged | AccountDeleted | AccountDisabled | SessionKicked | MailArrived
    | PageArrived | OwnPropertyChanged
)

EVENT_TYPES: dict[str, type[Any]] = {
    cls.kind: cls
    for cls in (PresenceChanged, ReverseListChanged, ContactPhoneChanged, ContactDeleted, NameChanged, Ring,
                SignedInElsewhere, AccountChanged, AccountDeleted, AccountDisabled, SessionKicked, MailArrived,
                PageArrived, OwnPropertyChanged)
}


class BadEvent(ValueError):
    pass


def encode(event: Event) -> bytes:
    """The stable wire form: one JSON object, its ``kind`` plus the fields."""
    return json.dumps({"kind": event.kind, **attrs.asdict(event)}, separators=(",", ":")).encode("utf-8")


def decode(data: bytes) -> Event:
    try:
        fields = json.loads(data)
        cls = EVENT_TYPES[fields.pop("kind")]
        event: Event = cls(**fields)
    except (ValueError, KeyError, TypeError) as e:
        raise BadEvent(f"not an event: {data[:80]!r}") from e
    return event
