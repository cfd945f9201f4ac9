"""What an online session keeps in memory for fan-out; SQL stays the source of truth."""
from __future__ import annotations

import attrs

from ..core.visibility import allows
from ..store.records import LISTS, ContactInfo, SyncSnapshot
from ..wire.groups import DEFAULT_GROUP, DEFAULT_GROUP_NAME, IN_DEFAULT


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
    #: MSNP7 groups with a stored name: id -> name (group 0 only once renamed). Kept for every
    #: dialect, so the account's groups stay whole whichever client changes the lists.
    groups: dict[int, str] = attrs.field(factory=dict)
    #: FL contacts in groups other than just group 0: handle -> sorted ids. Most entries are in
    #: group 0 alone and take no room here.
    fl_groups: dict[str, tuple[int, ...]] = attrs.field(factory=dict)

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
            groups=dict(snapshot.groups),
            fl_groups={e.contact: e.groups for e in snapshot.lists["FL"] if e.groups != IN_DEFAULT},
        )

    def all_groups(self) -> dict[int, str]:
        """Every group by id, group 0 first (with its default name unless renamed)."""
        return {DEFAULT_GROUP: DEFAULT_GROUP_NAME, **dict(sorted(self.groups.items()))}

    def set_fl_groups(self, contact: str, groups: tuple[int, ...]) -> None:
        """An FL entry's groups changed (an empty tuple: it left the FL)."""
        if not groups or groups == IN_DEFAULT:
            self.fl_groups.pop(contact, None)
        else:
            self.fl_groups[contact] = groups

    def set_property(self, key: str, value: str | None) -> None:
        """A ``PRP`` property changed (by this session, or on the web side)."""
        if key == "MOB":
            self.mobile_allowed = value == "Y"
        else:
            self.phones[key] = value

    def allows(self, viewer: str) -> bool:
        """Whether this user's privacy lets ``viewer`` see and reach them."""
        return allows(viewer, self.blp, self.lists["AL"], self.lists["BL"])
