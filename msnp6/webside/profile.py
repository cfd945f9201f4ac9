"""``/profile`` (PROFILE): the member-directory entry FND searches, through AccountService."""
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.server import Request

from . import pages
from .account import AccountPage
from .http import field
from .sessions import WebSession

log = Logger()


def invalid(values: dict[str, str]) -> str | None:
    """Why the directory fields cannot be saved, or None."""
    for name, label, size in pages.FIELDS:
        value = values[name]
        if len(value) > size or not value.isprintable():
            return f"{label}: at most {size} printable characters."
        if size == 8 and value and not (value.isascii() and value.isalpha()):
            return f"{label}: letters only."
    return None


def _values(request: Request) -> dict[str, str]:
    return {name: field(request, name).strip() for name, _, _ in pages.FIELDS}


class Profile(AccountPage):
    what = "profile"

    def show(self, request: Request, session: WebSession) -> "Deferred[bytes]":
        saved = field(request, "saved") == "1"
        return self.side.realm.store.directory_entry(session.handle).addCallback(
            lambda entry: pages.profile(session.handle, entry, session.csrf, saved))

    def check(self, request: Request) -> str | None:
        values = _values(request)
        problem = invalid(values)
        if field(request, "listed") == "1" and problem is None and not (values["first"] or values["last"]):
            problem = "A listing needs a first or a last name (the directory is searched by them)."
        return problem

    def save(self, request: Request, session: WebSession) -> "Deferred[str]":
        values = _values(request)
        listed = field(request, "listed") == "1"
        accounts = self.side.accounts
        d: Deferred[Any] = (accounts.set_directory(session.handle, values["first"], values["last"],
                                                   values["city"], values["state"], values["country"])
                            if listed else accounts.remove_directory(session.handle))

        def saved(_: object) -> str:
            log.info("web: {handle} {what} their directory entry", handle=session.handle,
                     what="updated" if listed else "removed")
            return "/profile?saved=1"

        return d.addCallback(saved)


