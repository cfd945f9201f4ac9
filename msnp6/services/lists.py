"""List, privacy, name and phone changes: one store transaction each (it bumps the list version),
then an event to every other account whose lists the change moved."""
from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred

from ..bus.interface import Bus
from ..events import ContactPhoneChanged, NameChanged, OwnPropertyChanged, ReverseListChanged
from ..store.interface import StoreAPI
from ..store.store import GroupRemoval, ListChange
from .actor import Actor

if TYPE_CHECKING:
    from ..core.realm import Config

#: The properties ``PRP`` (and the web side's settings page) may set, and a phone number's longest
#: wire form (notification.md 4.14: 95 encoded bytes).
SETTABLE_PROPERTIES = frozenset({"PHH", "PHW", "PHM", "MOB"})
MAX_PHONE_BYTES = 95


def valid_property(key: str, value: str | None) -> bool:
    """``value`` (wire form, None to clear) may be stored under ``key``: MOB is Y or N, a phone
    number at most ``MAX_PHONE_BYTES`` encoded bytes."""
    if key == "MOB":
        return value in ("Y", "N")
    return key in SETTABLE_PROPERTIES and (value is None or len(value.encode()) <= MAX_PHONE_BYTES)


class ListService:
    def __init__(self, store: StoreAPI, bus: Bus, config: "Config") -> None:
        self.store = store
        self.bus = bus
        self.config = config  # list limits are read per change: an operator may tune them

    def add(self, actor: Actor, list_name: str, contact: str, name: str,
            group: int | None = None) -> "Deferred[ListChange]":
        """Put ``contact`` on FL, AL or BL (refused with ListRefused and the protocol's code). ADD FL
        also puts the actor on the contact's RL, and the contact hears of it. ``group``: the
        MSNP7 group for FL (None: a dialect without groups, so group 0)."""

        def added(change: ListChange) -> ListChange:
            if change.contact_version is not None:
                self.bus.publish([contact], ReverseListChanged(actor.handle, actor.name, True, change.contact_version))
            return change

        limit = self.config.limits[list_name.lower()].count
        return self.store.add_entry(actor.account_id, actor.name, list_name, contact, name, limit,
                                    group).addCallback(added)

    def remove(self, actor: Actor, list_name: str, contact: str, group: int | None = None) -> "Deferred[ListChange]":
        """``group`` (MSNP7 FL): out of that group only; the contact leaves the FL with its last one."""
        def removed(change: ListChange) -> ListChange:
            if change.contact_version is not None:
                self.bus.publish([contact], ReverseListChanged(actor.handle, "", False, change.contact_version))
            return change

        return self.store.remove_entry(actor.account_id, list_name, contact, group).addCallback(removed)

    # -- MSNP7 contact groups -------------------------------------------------------------------

    def add_group(self, actor: Actor, name: str) -> "Deferred[tuple[int, int]]":
        """A new group: (version, group id)."""
        return self.store.add_group(actor.account_id, name)

    def rename_group(self, actor: Actor, group: int, name: str) -> "Deferred[int]":
        return self.store.rename_group(actor.account_id, group, name)

    def remove_group(self, actor: Actor, group: int) -> "Deferred[GroupRemoval]":
        """The contacts only in that group leave the FL: each hears it as ``REM 0 RL``."""
        def removed(removal: GroupRemoval) -> GroupRemoval:
            for contact, version in removal.contact_versions.items():
                self.bus.publish([contact], ReverseListChanged(actor.handle, "", False, version))
            return removal

        return self.store.remove_group(actor.account_id, group).addCallback(removed)

    def set_setting(self, actor: Actor, field: str, value: str) -> "Deferred[int]":
        """BLP or GTC; the current value again is refused (218)."""
        return self.store.set_setting(actor.account_id, field, value)

    def rename_self(self, actor: Actor, name: str) -> "Deferred[int]":
        def renamed(version: int) -> int:
            self.bus.publish([actor.handle], NameChanged(name))  # the actor's own chats
            return version

        return self.store.rename_self(actor.account_id, name).addCallback(renamed)

    def rename_contact(self, actor: Actor, contact: str, name: str) -> "Deferred[int]":
        return self.store.rename_contact(actor.account_id, contact, name)

    def set_property(self, actor: Actor, key: str, value: str | None, watchers: list[str],
                     elsewhere: bool = False) -> "Deferred[int]":
        """A phone number or the MOB flag. ``watchers``: who is shown it (their BPR lines move,
        and so do their list versions). ``elsewhere``: made outside the actor's Messenger session
        (the web side), so an online session of theirs is told too."""

        def changed(result: tuple[int, dict[str, int]]) -> int:
            version, bumped = result
            if elsewhere:
                self.bus.publish([actor.handle], OwnPropertyChanged(key, value, version))
            for watcher, watcher_version in bumped.items():
                self.bus.publish([watcher], ContactPhoneChanged(actor.handle, key, value, watcher_version))
            return version

        return self.store.set_property(actor.account_id, key, value, watchers).addCallback(changed)
