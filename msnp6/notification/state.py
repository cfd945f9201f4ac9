"""What an online session keeps in memory for fan-out; SQL stays the source of truth."""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from ..core.visibility import allows
from ..store.records import LISTS, ContactInfo, SyncSnapshot
from ..wire.groups import DEFAULT_GROUP, DEFAULT_GROUP_NAME, IN_DEFAULT

#: The groups of the many sessions that have none: one shared, read-only empty mapping (two
#: empty dicts per session would add about 3 % to an idle session); a change makes a dict.
_NONE: Mapping[Any, Any] = MappingProxyType({})


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
    groups: Mapping[int, str] = _NONE
    #: FL contacts in groups other than just group 0: handle -> sorted ids. Most entries are in
    #: group 0 alone and take no room here.
    fl_groups: Mapping[str, tuple[int, ...]] = _NONE

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
            groups=dict(snapshot.groups) if snapshot.groups else _NONE,
            fl_groups={e.contact: e.groups for e in snapshot.lists["FL"] if e.groups != IN_DEFAULT} or _NONE,
        )

    def all_groups(self) -> dict[int, str]:
        """Every group by id, group 0 first (with its default name unless renamed)."""
        return {DEFAULT_GROUP: DEFAULT_GROUP_NAME, **dict(sorted(self.groups.items()))}

    def set_group(self, group: int, name: str) -> None:
        """A group was made or renamed."""
        self.groups = groups = self.groups if isinstance(self.groups, dict) else {}
        groups[group] = name

    def drop_group(self, group: int) -> None:
        """A group was removed: from the groups, and from every FL entry that was in it."""
        if group in self.groups:
            self.groups = {g: name for g, name in self.groups.items() if g != group}
        for contact, groups in list(self.fl_groups.items()):
            if group in groups:
                self.set_fl_groups(contact, tuple(g for g in groups if g != group))

    def set_fl_groups(self, contact: str, groups: tuple[int, ...]) -> None:
        """An FL entry's groups changed (an empty tuple: it left the FL)."""
        if (not groups or groups == IN_DEFAULT) and contact not in self.fl_groups:
            return
        self.fl_groups = entries = self.fl_groups if isinstance(self.fl_groups, dict) else {}
        if not groups or groups == IN_DEFAULT:
            del entries[contact]
        else:
            entries[contact] = groups

    def set_property(self, key: str, value: str | None) -> None:
        """A ``PRP`` property changed (by this session, or on the web side)."""
        if key == "MOB":
            self.mobile_allowed = value == "Y"
        else:
            self.phones[key] = value

    def allows(self, viewer: str) -> bool:
        """Whether this user's privacy lets ``viewer`` see and reach them."""
        return allows(viewer, self.blp, self.lists["AL"], self.lists["BL"])
