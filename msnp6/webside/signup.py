"""``/signup`` (``--signup open|invite|off``): make an account from a browser, through
AccountService.create like ``msnp6-admin user add``, unverified (``USR OK ... 0``, the client's
"verify your e-mail" warning) until its owner opens the verification link sign-up mails (with
``--smtp-relay``) or the operator verifies it.

The page has no web session to carry a CSRF token, so it uses a double-submit token: a random
value in a cookie of its own (HttpOnly, SameSite=Strict, only for ``/signup``) and in a hidden
field; a post whose field does not match its cookie is refused. Another site can make a browser
post the form but can neither read nor set that cookie, so it cannot spend visitors' addresses on
sign-ups. It needs no state on the server, so a post may reach another web process than the form.

Posts that reach the database count toward ``signup-address``, created or refused, so the limit
also bounds how fast anyone can try handles or invite codes. A taken handle gets the same words
as any other refusal the database gives; without e-mail confirmation, that a valid form was
refused still tells that the handle exists (the operator's trade, noted in README).
"""
from __future__ import annotations

import hmac
import secrets
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from .. import audit
from ..services.accounts import MAX_PASSWORD, name_problem, password_problem
from ..services.invites import MAX_CODE
from ..store.faults import log_store_failure
from ..store.records import AccountRecord
from ..store.store import DuplicateHandle, InviteRefused
from ..wire.names import MAX_HANDLE_BYTES, is_valid_handle, normalize_handle
from . import pages
from .http import field, host, peer, respond

log = Logger()

PATH = "/signup"
COOKIE = b"msnp6_signup"
LIMIT = "signup-address"
#: secrets.token_urlsafe(32): 43 characters.
TOKEN_LENGTH = 43

#: Who verifies a new account's address: its owner through the mailed link, or the operator.
VERIFIED_BY = {True: "you open the link we mail to that address", False: "the operator verifies it"}

#: Sent for every refusal the database gives (a taken handle included): see the module's doc.
NOT_CREATED = "Could not create that account. Check the address, or choose another one."
BAD_INVITE = "That invite code is not valid: it is unknown, already used or expired. Ask the operator for a new one."


@attrs.frozen
class Form:
    """What a sign-up post holds, trimmed; the passwords and the code as typed."""

    handle: str
    name: str
    password: str
    again: str
    invite: str

    @classmethod
    def read(cls, request: Request) -> "Form":
        return cls(normalize_handle(field(request, "handle")), field(request, "name").strip(),
                   field(request, "password"), field(request, "again"), field(request, "invite").strip())

    @property
    def friendly_name(self) -> str:
        return self.name or self.handle

    def problem(self, mode: str) -> str | None:
        """Why it cannot be tried (a 400 with the form again), or None; no database work here."""
        if not is_valid_handle(self.handle):
            return (f"The e-mail address is not valid: it must look like name@example.com "
                    f"(at most {MAX_HANDLE_BYTES} bytes).")
        problem = password_problem(self.password)
        if problem is not None:
            return f"Not created: {problem}."
        if not hmac.compare_digest(self.password.encode(), self.again.encode()):
            return "Not created: the two passwords differ."
        problem = name_problem(self.friendly_name)
        if problem is not None:
            return f"Not created: {problem}."
        if mode == "invite" and not self.invite:
            return "An invite code is needed to sign up on this network: ask the operator for one."
        if len(self.invite) > MAX_CODE:
            return BAD_INVITE
        return None


def closed_page() -> bytes:
    return pages.page("Sign-up is closed", "<p>Sign-up is closed on this network: ask the operator "
                      "for an account.</p>")


def signup_page(mode: str, csrf: str, form: Form | None = None, problem: str | None = None,
                mailed: bool = False) -> bytes:
    """The form; after a refused post, ``problem`` and what was typed (never the passwords or the
    code). ``mailed``: sign-up mails a verification link (an SMTP relay is configured)."""
    handle, name = (form.handle, form.name) if form is not None else ("", "")
    note = f"<p><strong>{pages.e(problem)}</strong></p>\n" if problem else ""
    rows = [
        _row("handle", "E-mail address (your sign-in name)", "email", handle, MAX_HANDLE_BYTES, "email"),
        _row("password", "Password", "password", "", MAX_PASSWORD, "new-password"),
        _row("again", "Password again", "password", "", MAX_PASSWORD, "new-password"),
        _row("name", "Friendly name (what contacts see; empty: your e-mail address)", "text", name, 129, "nickname",
             required=False),
    ]
    if mode == "invite":
        rows.append(_row("invite", "Invite code (from the operator)", "text", "", MAX_CODE, "off"))
    invite = " You need an invite code from the operator." if mode == "invite" else ""
    return pages.page("Sign up", (
        f"<p>Make an account for MSN Messenger on this network.{invite} Your e-mail address stays "
        f"unverified until {VERIFIED_BY[mailed]}; Messenger reminds you of that when you sign in.</p>\n"
        + note + pages.form(PATH, csrf, "\n".join(rows) + "\n", "Sign up")))


def _row(name: str, label: str, kind: str, value: str, size: int, complete: str, required: bool = True) -> str:
    value_attr = f" value=\"{pages.e(value)}\"" if value else ""
    return (f"<p><label for=\"{name}\">{pages.e(label)}</label><br>"
            f"<input type=\"{kind}\" id=\"{name}\" name=\"{name}\" maxlength=\"{size}\" "
            f"autocomplete=\"{complete}\"{value_attr}{' required' if required else ''}></p>")


def created_page(handle: str, mailed: bool = False) -> bytes:
    return pages.page("Account created", (
        f"<p>The account {pages.e(handle)} is ready: sign in with Messenger using that address and your "
        f"password. Its e-mail address is not verified yet, so Messenger shows a reminder until "
        f"{VERIFIED_BY[mailed]}.</p>"))


class SignUp(Resource):
    def __init__(self, side: Any) -> None:
        super().__init__()
        self.side = side

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self  # "/signup/" is the same page
        return super().getChild(path, request)

    @property
    def mailed(self) -> bool:
        return bool(self.side.mail.enabled)

    @property
    def mode(self) -> str:
        return str(self.side.realm.config.signup)

    def render_GET(self, request: Request) -> bytes:
        if self.mode == "off":
            return respond(request, 200, closed_page())
        return respond(request, 200, signup_page(self.mode, self._token(request), mailed=self.mailed))

    def render_POST(self, request: Request) -> Any:
        mode = self.mode
        if mode == "off":
            return respond(request, 403, closed_page())
        cookie = request.getCookie(COOKIE)
        if not cookie or not hmac.compare_digest(cookie, field(request, "csrf").encode()):
            log.info("web: a sign-up post without its CSRF token from {address} refused", address=host(request))
            return respond(request, 403, signup_page(mode, self._token(request), mailed=self.mailed, problem=(
                "This form was out of date or not sent from this site: nothing was created. Fill it in again.")))
        csrf = cookie.decode("ascii", "replace")
        form = Form.read(request)
        problem = form.problem(mode)
        if problem is not None:
            return respond(request, 400, signup_page(mode, csrf, form, problem, self.mailed))
        realm, address = self.side.realm, host(request)
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def finish(code: int, body: bytes) -> None:
            if not gone:
                request.write(respond(request, code, body))
                request.finish()

        def counted(allowed: bool) -> "Deferred[AccountRecord] | None":
            if not allowed:
                realm.limited(LIMIT, address)
                finish(429, pages.error("Too many sign-ups", "Too many sign-up attempts from your address: "
                                        "try again later."))
                return None
            return self.side.accounts.create(form.handle, form.friendly_name, form.password, verified=False,
                                             invite=form.invite if mode == "invite" else None).addCallbacks(
                created, refused)

        def created(account: AccountRecord) -> None:
            audit.signup(account.handle, peer(request), mode)
            realm.count("signup")
            # The mail goes out on its own (it never fails; the relay's answer is logged): the
            # page need not wait for the relay.
            self.side.mail.send_verification(account.handle, peer(request))
            finish(200, created_page(account.handle, self.mailed))

        def refused(failure: Failure) -> None:
            if failure.check(InviteRefused):
                log.info("web: a sign-up from {address} with an unusable invite code refused", address=address)
                finish(403, signup_page(mode, csrf, form, BAD_INVITE, self.mailed))
            elif failure.check(DuplicateHandle):
                log.info("web: a sign-up from {address} for a taken handle refused", address=address)
                finish(400, signup_page(mode, csrf, form, NOT_CREATED, self.mailed))
            else:
                log_store_failure(log, failure, "web sign-up from {address}: the store failed", address=address)
                finish(503, pages.error("Unavailable", "Nothing was created. Please try again in a minute."))

        def failed(failure: Failure) -> None:
            log.failure("web sign-up from {address} failed", failure, address=address)
            finish(503, pages.error("Unavailable", "Nothing was created. Please try again in a minute."))

        realm.windows.allow(LIMIT, address).addCallback(counted).addErrback(failed)
        return NOT_DONE_YET

    def _token(self, request: Request) -> str:
        """The browser's sign-up token if it has one (a second tab keeps the first's form valid),
        else a new one set as its cookie."""
        cookie = request.getCookie(COOKIE)
        if cookie and len(cookie) == TOKEN_LENGTH and cookie.isascii() and \
                cookie.decode("ascii").replace("-", "").replace("_", "").isalnum():
            return cookie.decode("ascii")
        token = secrets.token_urlsafe(32)
        secure = self.side.realm.config.web_base().startswith("https:")
        request.addCookie(COOKIE, token.encode("ascii"), path=PATH.encode(), httpOnly=True, secure=secure,
                          sameSite="strict")
        return token
