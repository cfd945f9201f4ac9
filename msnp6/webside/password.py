"""``/password`` (PASSWORD): change the password, the old one given again. A wrong old password
is a failed sign-in (login limits, audit); the new one follows msnp6-admin's rules and is sealed
with the newest server key through AccountService.set_password."""
from __future__ import annotations

import hmac
from html import escape
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.logger import Logger
from twisted.web.server import Request

from .. import audit
from ..core.windows import LoginCheck
from ..services.accounts import MAX_PASSWORD, password_problem
from ..store.records import AccountRecord
from . import failures, pages
from .account import AccountPage, Refused
from .http import field, host, peer
from .sessions import WebSession

log = Logger()


def password_page(handle: str, csrf: str, saved: bool) -> bytes:
    note = "<p><strong>Your password was changed.</strong> Use it the next time you sign in.</p>\n" if saved else ""
    rows = "\n".join(
        f"<p><label for=\"{name}\">{escape(label)}</label><br>"
        f"<input type=\"password\" id=\"{name}\" name=\"{name}\" maxlength=\"{MAX_PASSWORD}\" "
        f"autocomplete=\"{complete}\" required></p>"
        for name, label, complete in (("old", "Current password", "current-password"),
                                      ("new", "New password", "new-password"),
                                      ("again", "New password again", "new-password")))
    return pages.page("Change your password", (
        f"<p>Signed in as {escape(handle)}. Messenger stays signed in; the new password counts from "
        "the next sign-in.</p>\n"
        + note + pages.form("/password", csrf, f"{rows}\n", "Change password")))


class ChangePassword(AccountPage):
    what = "password"

    def show(self, request: Request, session: WebSession) -> "Deferred[bytes]":
        return succeed(password_page(session.handle, session.csrf, field(request, "saved") == "1"))

    def check(self, request: Request) -> str | None:
        new = field(request, "new")
        problem = password_problem(new)
        if problem is not None:
            return f"Not changed: {problem}."
        if not hmac.compare_digest(new.encode(), field(request, "again").encode()):
            return "Not changed: the two new passwords differ."
        return None

    def save(self, request: Request, session: WebSession) -> "Deferred[str]":
        realm = self.side.realm
        handle, address = session.handle, host(request)
        old, new = field(request, "old"), field(request, "new")
        check = realm.windows.login_check(handle, address)
        looked_up: Deferred[list[Any]] = gatherResults(
            [realm.store.get_account(handle), check if isinstance(check, Deferred) else succeed(check)],
            consumeErrors=True)

        def decide(found: list[Any]) -> "Deferred[None]":
            account: AccountRecord | None = found[0]
            limits: LoginCheck = found[1]
            # As for a sign-in: limits read, password compared and a failure counted in one turn.
            over = limits.blocked(handle, address)
            if over is not None:
                failures.over_limit(realm, request, handle, over)
                raise Refused(403, pages.error("Not changed", "Too many wrong passwords: try again later."))
            stored = self.side.password_of(account)
            if account is None or stored is None or not hmac.compare_digest(old.encode(), stored.encode()):
                failures.failed(realm, request, handle, "web_wrong_password")
                raise Refused(403, pages.error("Not changed", "The current password is wrong."))
            return self.side.accounts.set_password(handle, new)

        def changed(_: object) -> str:
            audit.password_changed(handle, peer(request))
            return "/password?saved=1"

        return looked_up.addCallback(decide).addCallback(changed)
