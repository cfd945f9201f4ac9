"""Verifying the account's e-mail address: ``/verify/send`` (signed in) mails a link, and the
link's ``/verify?token=...`` page confirms it.

Opening the link only shows a button; the address is verified when it is pressed (a POST). Mail
scanners and link previews open every link in a mail, and verifying should take the person. The
button's form carries the link's token, which is also what makes a forged post useless (it has to
hold a token this server signed). Verifying goes through AccountService.set_verified, so an
online session of the account is told at once (its friendly name unlocks: REA works).
"""
from __future__ import annotations

from html import escape
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.web.resource import Resource
from twisted.web.server import Request

from .. import audit
from ..services.accounts import NoSuchAccount
from ..store.records import AccountRecord
from . import pages
from .account import AccountPage, Refused
from .http import field, host, peer, respond
from .later import answer_later
from .links import claim_in
from .sessions import WebSession
from .tokens import VERIFY, Claim

SEND_PATH = "/verify/send"
TITLE = "Verify your e-mail address"


def send_page(handle: str, account: AccountRecord, csrf: str, sent: bool) -> bytes:
    if account.verified:
        return pages.page(TITLE, f"<p>Signed in as {escape(handle)}. Your address is verified.</p>")
    note = (f"<p><strong>A mail is on its way to {escape(handle)}.</strong> Its link works for 48 "
            "hours.</p>\n" if sent else "")
    return pages.page(TITLE, (
        f"<p>Signed in as {escape(handle)}. Your address is not verified yet: until it is, you cannot "
        "change your own friendly name. We mail you a link; open it and press its button.</p>\n"
        + note + pages.form(SEND_PATH, csrf, "", "Send me a verification mail")))


def confirm_page(handle: str, token: str) -> bytes:
    """The link's page: a button (a POST: a mail scanner opening the link verifies nothing)."""
    return pages.page(TITLE, (f"<p>Press the button to confirm that {escape(handle)} is your address.</p>\n"
                              + pages.form("/verify", token, "", "Confirm my address")))


def link_refused() -> bytes:
    return pages.error("Link not valid", "This link is not valid: it is wrong, too old, or no longer "
                       "belongs to an account. Ask for a new one.")


class SendVerification(AccountPage):
    """``/verify/send``: the signed-in user asks for a verification mail."""

    what = "verification"
    path = SEND_PATH

    def show(self, request: Request, session: WebSession) -> "Deferred[bytes]":
        if not self.side.mail.enabled:
            return succeed(pages.mail_off(TITLE))
        sent = field(request, "sent") == "1"
        return self.with_account(session, lambda account: send_page(session.handle, account, session.csrf, sent))

    def save(self, request: Request, session: WebSession) -> "Deferred[str]":
        links, realm = self.side.mail, self.side.realm
        if not links.enabled:
            return fail(Refused(503, pages.mail_off(TITLE)))
        address = host(request)

        def over_address(ok: bool) -> "Deferred[bool]":
            if not ok:
                realm.limited("mail-address", address)
                audit.verification_sent(session.handle, peer(request), "rate_limited")
                raise Refused(429, pages.error("Not sent", "Too many mails were asked for from your "
                                               "address: try again later."))
            return links.send_verification(session.handle, peer(request))

        def sent(ok: bool) -> str:
            if not ok:
                raise Refused(503, pages.error("Not sent", "The mail could not be sent now (or enough "
                                               "were sent this hour): try again later."))
            return f"{SEND_PATH}?sent=1"

        return realm.windows.allow("mail-address", address).addCallback(over_address).addCallback(sent)


class Verify(Resource):
    """``/verify?token=...`` shows the button; its POST verifies the address."""

    def __init__(self, side: Any) -> None:
        super().__init__()
        self.side = side

    def render_GET(self, request: Request) -> bytes:
        claim = claim_in(request, self.side.mail, "token", VERIFY, TITLE, link_refused, binding=b"")
        if not isinstance(claim, Claim):
            return claim
        return respond(request, 200, confirm_page(claim.handle, field(request, "token")))

    def render_POST(self, request: Request) -> Any:
        claim = claim_in(request, self.side.mail, "csrf", VERIFY, TITLE, link_refused, binding=b"")
        if not isinstance(claim, Claim):
            return claim
        handle = claim.handle

        def verified(_: object) -> tuple[int, bytes]:
            audit.verified(handle, peer(request))
            return 200, pages.page(TITLE, f"<p>{escape(handle)} is verified. Thank you.</p>")

        def gone(failure: Any) -> tuple[int, bytes]:
            failure.trap(NoSuchAccount)
            return 403, link_refused()

        done: Deferred[tuple[int, bytes]] = self.side.accounts.set_verified(handle, True).addCallbacks(verified, gone)
        return answer_later(request, done, "verification")
