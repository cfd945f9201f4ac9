"""Operator changes to accounts: create, password, flags, mail, directory, delete. Online sessions
hear of each at once through the bus."""
from __future__ import annotations

from twisted.internet.defer import Deferred

from ..auth import CredentialKeyring
from ..bus.interface import Bus
from ..events import AccountChanged, AccountDeleted, AccountDisabled, ContactDeleted, MailArrived
from ..store.interface import StoreAPI
from ..store.records import AccountRecord, NewAccount
from ..wire.names import MAX_ENCODED_NAME_BYTES, encode_name
from .invites import code_hash

#: The longest disable reason kept (``msnp6-admin user show`` prints it).
MAX_REASON = 200
#: The longest password msnp6-admin and the web side's password page accept.
MAX_PASSWORD = 128


class NoSuchAccount(LookupError):
    pass


def valid_reason(text: str) -> bool:
    """A disable reason: at most ``MAX_REASON`` printable characters (one line in the output)."""
    return len(text) <= MAX_REASON and text.isprintable()


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be set (msnp6-admin and the web side alike), or None."""
    if not password:
        return "the password is empty"
    if len(password) > MAX_PASSWORD or any(ord(c) < 0x20 for c in password):
        return f"the password must be at most {MAX_PASSWORD} printable characters"
    return None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a new account's friendly name (msnp6-admin and the sign-up page
    alike), or None: not blank, no control characters, at most the wire's bytes once encoded."""
    if not name.strip():
        return "the friendly name is empty"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name) or len(encode_name(name)) > MAX_ENCODED_NAME_BYTES:
        return f"the friendly name must be printable and at most {MAX_ENCODED_NAME_BYTES} bytes once encoded"
    return None


def _found(handle: str, found: object) -> None:
    if found is None or found is False:
        raise NoSuchAccount(handle)


class AccountService:
    def __init__(self, store: StoreAPI, bus: Bus, key: CredentialKeyring | None) -> None:
        self.store = store
        self.bus = bus
        #: Seals passwords (create, set_password) with its newest key; None where no password is ever set.
        self.key = key

    def _seal(self, handle: str, password: str) -> bytes:
        assert self.key is not None, "this AccountService has no credential key"
        return self.key.seal(handle, password)

    def create(self, handle: str, name: str, password: str, verified: bool = True,
               invite: str | None = None) -> "Deferred[AccountRecord]":
        """DuplicateHandle if it exists. ``invite``: a sign-up's invite code, redeemed in the same
        transaction (InviteRefused if unknown, used or expired; unused if the account is not
        made). Nobody can be online as a new account: no event."""
        return self.store.create_account(handle, name, self._seal(handle, password), verified,
                                         invite_hash=code_hash(invite) if invite is not None else None)

    def create_many(self, rows: list[tuple[str, str, str, bool]]) -> "Deferred[list[str]]":
        """(handle, name, password, verified) each, one transaction; the handles that existed
        already and were left alone."""
        return self.store.create_accounts([NewAccount(handle, name, self._seal(handle, password), verified)
                                           for handle, name, password, verified in rows])

    def set_password(self, handle: str, password: str, replacing: bytes | None = None) -> "Deferred[None]":
        """``replacing``: change it only while the stored credential is that sealed one
        (NoSuchAccount if it has changed meanwhile: a password reset link works once)."""
        # The next login checks the new one; a session already open stays (as on the real service).
        return self.store.set_credential(handle, self._seal(handle, password), replacing).addCallback(
            lambda found: _found(handle, found))

    def set_verified(self, handle: str, verified: bool) -> "Deferred[None]":
        return self._flag(self.store.set_verified(handle, verified), handle, AccountChanged("verified", verified))

    def set_email_enabled(self, handle: str, enabled: bool) -> "Deferred[None]":
        return self._flag(self.store.set_email_enabled(handle, enabled), handle,
                          AccountChanged("email_enabled", enabled))

    def set_mobile_enabled(self, handle: str, enabled: bool) -> "Deferred[None]":
        def changed(version: int | None) -> None:
            _found(handle, version)
            self.bus.publish([handle], AccountChanged("mobile_enabled", enabled, version))

        return self.store.set_mobile_enabled(handle, enabled).addCallback(changed)

    def _flag(self, d: "Deferred[bool]", handle: str, event: AccountChanged) -> "Deferred[None]":
        def changed(found: bool) -> None:
            _found(handle, found)
            self.bus.publish([handle], event)

        return d.addCallback(changed)

    def disable(self, handle: str, reason: str = "") -> "Deferred[None]":
        """Refuse the account's logins from now on (911, like a wrong password) and end its
        sessions on every node (a bare OUT; their watchers see FLN)."""

        def disabled(found: bool) -> None:
            _found(handle, found)
            self.bus.publish([handle], AccountDisabled())

        return self.store.set_disabled(handle, True, reason or None).addCallback(disabled)

    def enable(self, handle: str) -> "Deferred[None]":
        # Nobody can be online as a disabled account: no session to tell, no event.
        return self.store.set_disabled(handle, False).addCallback(lambda found: _found(handle, found))

    def delete(self, handle: str) -> "Deferred[None]":
        """The account's sessions end (their watchers see FLN), then it leaves every list it was
        on, in SQL and in the online owners' memory alike."""

        def deleted(owners: dict[str, int] | None) -> None:
            _found(handle, owners)
            assert owners is not None
            self.bus.publish([handle], AccountDeleted())
            for owner, version in owners.items():
                self.bus.publish([owner], ContactDeleted(handle, version))

        return self.store.delete_account(handle).addCallback(deleted)

    def add_unread_mail(self, handle: str, from_name: str, from_addr: str, subject: str) -> "Deferred[int]":
        """One new message: the unread count goes up and an online session is told (when its
        account has mail on). The new count; NoSuchAccount if there is no such account."""

        def counted(unread: int | None) -> int:
            _found(handle, unread)
            assert unread is not None
            self.bus.publish([handle], MailArrived(unread, from_name, from_addr, subject))
            return unread

        return self.store.add_unread_mail(handle).addCallback(counted)

    def clear_unread_mail(self, handle: str) -> "Deferred[None]":
        """Every unread message counted as read (the web side's mailbox page). No event: the
        protocol has no notice for a count that went down (notification.md 4.5: the
        active-mail notice is unconfirmed for MSNP6); the next login's initial notice shows it."""
        return self.store.clear_unread_mail(handle).addCallback(lambda found: _found(handle, found))

    def set_directory(self, handle: str, first: str, last: str, city: str, state: str,
                      country: str) -> "Deferred[None]":
        # FND reads the directory from SQL on every search: nothing in memory to tell.
        return self.store.set_directory(handle, first, last, city, state, country).addCallback(
            lambda found: _found(handle, found))

    def remove_directory(self, handle: str) -> "Deferred[bool]":
        return self.store.remove_directory(handle)
