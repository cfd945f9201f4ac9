"""The mails with links: address verification and password reset, each link a signed token
(tokens.py) under this site's base URL. ``MailLinks.send_verification`` is also what sign-up
calls after making an unverified account."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from twisted.internet.defer import Deferred, succeed
from twisted.web.server import Request

from .. import audit
from ..mail.mailer import Mailer
from ..store.records import AccountRecord
from . import pages
from .http import field, respond
from .tokens import RESET, VERIFY, Claim, LinkTokens, credential_binding

VERIFY_SUBJECT = "Confirm your e-mail address for Messenger"
VERIFY_TEXT = """Someone (we hope you) asked to confirm that {handle} is your address on this
Messenger network.

Open this link within 48 hours and press the button on the page:

{link}

If you did not ask for this, ignore this mail: nothing changes.
"""

RESET_SUBJECT = "Reset your Messenger password"
RESET_TEXT = """Someone (we hope you) asked to reset the password of the Messenger account
{handle}.

Open this link within an hour to choose a new password; it works once:

{link}

If you did not ask for this, ignore this mail: your password stays as it is.
"""


class MailLinks:
    """Sends the link mails through ``mailer`` (None: e-mail is off, nothing is sent)."""

    def __init__(self, realm: Any, mailer: Mailer | None) -> None:
        self.realm = realm
        self.mailer = mailer
        self.tokens = LinkTokens(realm.key, realm.clock)

    @property
    def enabled(self) -> bool:
        return self.mailer is not None

    def allowed(self, handle: str) -> "Deferred[bool]":
        """May one more mail go to ``handle`` (the ``mail-account`` limit)? Counts it if so."""
        def counted(ok: bool) -> bool:
            if not ok:
                self.realm.limited("mail-account", handle)
            return ok

        return self.realm.windows.allow("mail-account", handle).addCallback(counted)

    def link(self, path: str, token: str) -> str:
        return self.realm.config.web_url(f"{path}?token={quote(token, safe='')}")

    def send_verification(self, handle: str, address: str = "-") -> "Deferred[bool]":
        """Mail ``handle`` a link that marks its address verified (48 hours). True once the relay
        has taken the mail; False when e-mail is off, ``handle`` is over ``mail-account``, or the
        relay failed (logged). Never fails. ``address``: who asked, for the audit line."""
        mailer = self.mailer
        if mailer is None:
            return succeed(False)

        def send(ok: bool) -> "Deferred[bool] | bool":
            if not ok:
                audit.verification_sent(handle, address, "rate_limited")
                return False
            link = self.link("/verify", self.tokens.make(VERIFY, handle))
            return mailer.send(handle, VERIFY_SUBJECT, VERIFY_TEXT.format(handle=handle, link=link),
                               "verification").addCallback(sent)

        def sent(ok: bool) -> bool:
            audit.verification_sent(handle, address, "sent" if ok else "not_sent")
            return ok

        return self.allowed(handle).addCallback(send)

    def send_reset(self, account: AccountRecord) -> "Deferred[bool]":
        """Mail ``account`` a password reset link (an hour; dead once the password changes).
        The caller has checked ``allowed``. True once the relay took it; never fails."""
        if self.mailer is None:
            return succeed(False)
        token = self.tokens.make(RESET, account.handle, credential_binding(account.credential))
        text = RESET_TEXT.format(handle=account.handle, link=self.link("/reset/confirm", token))
        return self.mailer.send(account.handle, RESET_SUBJECT, text, "password reset")


def claim_in(request: Request, links: MailLinks, name: str, purpose: str, title: str,
             refused: Callable[[], bytes], binding: bytes | None = None) -> Claim | bytes:
    """What the link token in field ``name`` claims for ``purpose``, or the answer to send
    instead: the mail-off page (200 to a GET, 503 to a POST) or ``refused()`` (403).
    ``binding``: also check the token's tag now, bound to it (None: the caller checks it once
    it has read what the token is bound to)."""
    if not links.enabled:
        return respond(request, 200 if request.method == b"GET" else 503, pages.mail_off(title))
    claim = links.tokens.claim(field(request, name), purpose)
    if claim is None or (binding is not None and not links.tokens.genuine(claim, binding)):
        return respond(request, 403, refused())
    return claim
