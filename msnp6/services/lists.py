"""List, privacy, name and phone changes: one store transaction each (it bumps the list version),
then an event to every other account whose lists the change moved."""
from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred

from ..bus.interface import Bus
from ..events import ContactPhoneChanged, NameChanged, ReverseListChanged
from ..store.interface import StoreAPI
from ..store.store import ListChange
from .actor import Actor

if TYPE_CHECKING:
    from ..core.realm import Config


class ListService:
    def __init__(self, store: StoreAPI, bus: Bus, config: "Config") -> None:
        self.store = store
        self.bus = bus
        self.config = config  # list limits are read per change: an operator may tune them

    def add(self, actor: Actor, list_name: str, contact: str, name: str) -> "Deferred[ListChange]":
        """Put ``contact`` on FL, AL or BL (refused with ListRefused and the protocol's code). ADD FL
        also puts the actor on the contact's RL, and the contact hears of it."""

        def added(change: ListChange) -> ListChange:
            if change.contact_version is not None:
                self.bus.publish([contact], ReverseListChanged(actor.handle, actor.name, True, change.contact_version))
            return change

        limit = self.config.limits[list_name.lower()].count
        return self.store.add_entry(actor.account_id, actor.name, list_name, contact, name, limit).addCallback(added)

    def remove(self, actor: Actor, list_name: str, contact: str) -> "Deferred[ListChange]":
        def removed(change: ListChange) -> ListChange:
            if change.contact_version is not None:
                self.bus.publish([contact], ReverseListChanged(actor.handle, "", False, change.contact_version))
            return change

        return self.store.remove_entry(actor.account_id, list_name, contact).addCallback(removed)

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

    def set_property(self, actor: Actor, key: str, value: str | None, watchers: list[str]) -> "Deferred[int]":
        """A phone number or the MOB flag. ``watchers``: who is shown it (their BPR lines move,
        and so do their list versions)."""

        def changed(result: tuple[int, dict[str, int]]) -> int:
            version, bumped = result
            for watcher, watcher_version in bumped.items():
                self.bus.publish([watcher], ContactPhoneChanged(actor.handle, key, value, watcher_version))
            return version

        return self.store.set_property(actor.account_id, key, value, watchers).addCallback(changed)
