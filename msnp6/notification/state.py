"""What an online session keeps in memory for fan-out; SQL stays the source of truth."""
from __future__ import annotations

import attrs

from ..core.visibility import allows
from ..store.records import LISTS, ContactInfo, SyncSnapshot


@attrs.define
class SessionState:
    handle: str
    name: str
    verified: bool
    version: int
    blp: str
    gtc: str
    #: PHH/PHW/PHM (wire form, None when unset).
    phones: dict[str, str | None]
    mobile_allowed: bool
    mobile_enabled: bool
    email_enabled: bool
    inbox_unread: int
    folders_unread: int
    #: FL/AL/BL/RL: contact handle -> stored name, in the order they were added.
    lists: dict[str, dict[str, str]]
    #: FL contacts' phone data as of login, for the SYN dump's BPR lines.
    contacts: dict[str, ContactInfo]
    #: The version the lists were loaded at: a change at or below it is already in them.
    loaded_version: int = 0

    @classmethod
    def from_snapshot(cls, snapshot: SyncSnapshot) -> "SessionState":
        a = snapshot.account
        return cls(
            handle=a.handle, name=a.friendly_name, verified=a.verified, version=a.list_version,
            blp=a.blp, gtc=a.gtc,
            phones={"PHH": a.phone_home, "PHW": a.phone_work, "PHM": a.phone_mobile},
            mobile_allowed=a.mobile_allowed, mobile_enabled=a.mobile_enabled, email_enabled=a.email_enabled,
            inbox_unread=a.inbox_unread, folders_unread=a.folders_unread,
            lists={name: {e.contact: e.name for e in snapshot.lists[name]} for name in LISTS},
            contacts=dict(snapshot.contacts),
            loaded_version=a.list_version,
        )

    def set_property(self, key: str, value: str | None) -> None:
        """A ``PRP`` property changed (by this session, or on the web side)."""
        if key == "MOB":
            self.mobile_allowed = value == "Y"
        else:
            self.phones[key] = value

    def allows(self, viewer: str) -> bool:
        """Whether this user's privacy lets ``viewer`` see and reach them."""
        return allows(viewer, self.blp, self.lists["AL"], self.lists["BL"])
