"""Self-service password reset: ``/reset`` asks for the address and mails a link,
``/reset/confirm?token=...`` sets the new password.

``/reset`` answers every well-formed address with the same page, after the same work (the
``mail-account`` count and the account lookup, side by side), whether it has an account or not;
the mail itself is sent after the answer, never waited for. So neither the page nor its timing
says whether an address has an account; the audit line tells the operator what happened.

The link's token is bound to the account's sealed credential as it is now (tokens.py): the
password it sets is stored only if that credential is still the stored one (a compare-and-set,
so two posts of one link cannot both win), and from then on the link is dead. The token rides in
the form as its CSRF token: a forged post would need a token this server signed.
"""
from __future__ import annotations

import hmac
from html import escape
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request

from .. import audit
from ..services.accounts import MAX_PASSWORD, NoSuchAccount, password_problem
from ..store.records import AccountRecord
from ..wire.names import is_valid_handle, normalize_handle
from . import pages
from .http import field, host, peer, respond
from .later import answer_later
from .links import claim_in
from .tokens import RESET, Claim, credential_binding

log = Logger()

TITLE = "Reset your password"
CONFIRM_PATH = "/reset/confirm"


def request_page() -> bytes:
    return pages.page(TITLE, (
        "<p>Forgot your password? Give your Messenger address (the e-mail address you sign in with): "
        "we mail a link there that lets you choose a new one.</p>\n"
        "<form method=\"post\" action=\"/reset\">\n"
        "<p><label for=\"address\">Your address</label><br>"
        "<input type=\"email\" id=\"address\" name=\"address\" maxlength=\"129\" autocomplete=\"email\" required></p>\n"
        "<p><input type=\"submit\" value=\"Mail me a link\"></p>\n</form>"))


#: The one answer to every well-formed request, account or not.
ON_ITS_WAY = pages.page(TITLE, (
    "<p>If an account exists for that address, a mail with a link is on its way. The link works "
    "once, for an hour. Nothing there? Look in the spam folder, or ask again later.</p>"))


def confirm_page(handle: str, token: str) -> bytes:
    rows = "\n".join(
        f"<p><label for=\"{name}\">{escape(label)}</label><br>"
        f"<input type=\"password\" id=\"{name}\" name=\"{name}\" maxlength=\"{MAX_PASSWORD}\" "
        "autocomplete=\"new-password\" required></p>"
        for name, label in (("new", "New password"), ("again", "New password again")))
    return pages.page(TITLE, (
        f"<p>Choose a new password for {escape(handle)}. It counts from the next sign-in; a Messenger "
        "session already open stays.</p>\n" + pages.form(CONFIRM_PATH, token, f"{rows}\n", "Set password")))


def link_refused() -> bytes:
    return pages.error("Link not valid", "This link is not valid: it was used already, is too old or "
                       "is wrong. Ask for a new one at /reset.")


class RequestReset(Resource):
    """``/reset``: the address form, and the same answer to every address."""

    def __init__(self, side: Any) -> None:
        super().__init__()
        self.side = side

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self
        return super().getChild(path, request)

    def render_GET(self, request: Request) -> bytes:
        if not self.side.mail.enabled:
            return respond(request, 200, pages.mail_off(TITLE))
        return respond(request, 200, request_page())

    def render_POST(self, request: Request) -> Any:
        links, realm = self.side.mail, self.side.realm
        if not links.enabled:
            return respond(request, 503, pages.mail_off(TITLE))
        handle = normalize_handle(field(request, "address"))
        if not is_valid_handle(handle):
            return respond(request, 400, pages.error(TITLE, "That is not an e-mail address."))
        address, who = host(request), peer(request)

        def per_address(ok: bool) -> "Deferred[tuple[int, bytes]] | tuple[int, bytes]":
            if not ok:
                realm.limited("mail-address", address)
                audit.reset_requested(handle, who, "rate_limited")
                return 429, pages.error(TITLE, "Too many mails were asked for from your address: try again later.")
            both: Deferred[list[Any]] = gatherResults([links.allowed(handle), realm.store.get_account(handle)],
                                                      consumeErrors=True)
            return both.addCallback(decide)

        def decide(found: list[Any]) -> tuple[int, bytes]:
            allowed: bool = found[0]
            account: AccountRecord | None = found[1]
            outcome = ("no_account" if account is None else "disabled" if account.disabled
                       else "rate_limited" if not allowed else "mailed")
            audit.reset_requested(handle, who, outcome)
            if outcome == "mailed":
                assert account is not None
                # Sent after the answer, not waited for: the answer must not depend on it.
                realm.clock.callLater(0, links.send_reset, account)
            return 200, ON_ITS_WAY

        answer: Deferred[tuple[int, bytes]] = realm.windows.allow("mail-address", address).addCallback(per_address)
        return answer_later(request, answer, "password reset request")


class ConfirmReset(Resource):
    """``/reset/confirm?token=...``: the new password, twice."""

    isLeaf = True

    def __init__(self, side: Any) -> None:
        super().__init__()
        self.side = side

    def _account(self, claim: Claim) -> "Deferred[AccountRecord | None]":
        """The claim's account, if the claim is genuine for it as it is now (and it may sign in)."""
        tokens = self.side.mail.tokens

        def bound(account: AccountRecord | None) -> AccountRecord | None:
            if account is None or account.disabled or not tokens.genuine(claim, credential_binding(account.credential)):
                return None
            return account

        return self.side.realm.store.get_account(claim.handle).addCallback(bound)

    def render_GET(self, request: Request) -> Any:
        claim = claim_in(request, self.side.mail, "token", RESET, TITLE, link_refused)
        if not isinstance(claim, Claim):
            return claim
        token = field(request, "token")
        shown: Deferred[tuple[int, bytes]] = self._account(claim).addCallback(
            lambda account: (403, link_refused()) if account is None else (200, confirm_page(account.handle, token)))
        return answer_later(request, shown, "password reset page")

    def render_POST(self, request: Request) -> Any:
        claim = claim_in(request, self.side.mail, "csrf", RESET, TITLE, link_refused)
        if not isinstance(claim, Claim):
            return claim
        new = field(request, "new")
        problem = password_problem(new)
        if problem is None and not hmac.compare_digest(new.encode(), field(request, "again").encode()):
            problem = "the two passwords differ"
        if problem is not None:
            return respond(request, 400, pages.error(TITLE, f"Not changed: {problem}. Go back and try again."))

        def change(account: AccountRecord | None) -> "Deferred[tuple[int, bytes]] | tuple[int, bytes]":
            if account is None:
                return 403, link_refused()
            return self.side.accounts.set_password(account.handle, new, replacing=account.credential).addCallbacks(
                changed, lost)

        def changed(_: object) -> tuple[int, bytes]:
            audit.password_reset(claim.handle, peer(request))
            return 200, pages.page(TITLE, "<p>Your password was changed. Sign in with it in Messenger.</p>")

        def lost(failure: Any) -> tuple[int, bytes]:
            failure.trap(NoSuchAccount)  # changed meanwhile (this link used by another post), or deleted
            return 403, link_refused()

        done: Deferred[tuple[int, bytes]] = self._account(claim).addCallback(change)
        return answer_later(request, done, "password reset")
