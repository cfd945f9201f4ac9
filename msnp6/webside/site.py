"""The web listener's resource tree: ``/ppsecure/md5auth.srf`` (sign-in), the account pages
(``PAGES``: each in its own module) and an honest page for every other path a ``URL`` reply names."""
from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from twisted.internet.defer import Deferred, FirstError, gatherResults, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from .. import audit
from ..auth import SealedWithOtherKey
from ..core.windows import LoginCheck
from ..directory.record import PresenceRecord
from ..http_body import BoundedSite
from ..mail.mailer import Mailer
from ..services.accounts import AccountService
from ..store.faults import log_store_failure
from ..store.records import AccountRecord
from ..wire.names import is_valid_handle
from . import failures, pages
from .http import field as _field
from .http import host as _host
from .http import peer as _peer
from .http import respond as _respond
from .links import MailLinks
from .mailbox import Compose, Mailbox, ReadMessage
from .md5auth import SL_SKEW, Post, local_target, posted_handle, why_refused
from .mobile import MobileSettings
from .password import ChangePassword
from .profile import Profile
from .reset import ConfirmReset, RequestReset
from .sessions import ReplayGuard, WebSession, WebSessions
from .signup import SignUp
from .verify import SendVerification, Verify

log = Logger()

COOKIE = b"msnp6_web"

class WebSide:
    """What every page shares: the realm, the sessions, the replay guard, the write path."""

    def __init__(self, realm: Any) -> None:
        self.realm = realm
        self.sessions = WebSessions(realm.clock)
        # A used post stays refused for as long as its sl could still pass the skew check.
        self.replays = ReplayGuard(realm.clock, 2 * SL_SKEW)
        self.accounts = AccountService(realm.store, realm.bus, realm.key)
        self.lists = realm.services.lists  # the one write path PRP uses too
        mail = realm.config.mail
        #: The verification and reset mails (``enabled`` only with ``--smtp-relay``).
        self.mail = MailLinks(realm, Mailer(mail, realm.clock) if mail is not None else None)

    def session(self, request: Request) -> WebSession | None:
        cookie = request.getCookie(COOKIE)
        return self.sessions.get(cookie.decode("ascii", "replace") if cookie else None)

    def live(self, session: WebSession) -> "Deferred[bool]":
        """Is the Messenger session that signed this web session in still online?"""
        return self.realm.directory.get(session.handle).addCallback(
            lambda record: record is not None and hmac.compare_digest(record.mspauth.encode(), session.mspauth.encode()))

    def password_of(self, account: AccountRecord | None) -> str | None:
        """The account's password, unsealed; None without an account or a key that opens it."""
        if account is None:
            return None
        try:
            return str(self.realm.key.unseal(account.handle, account.credential))
        except (SealedWithOtherKey, InvalidTag):
            log.error("credential of {handle} was sealed with another server key", handle=account.handle)
            return None

    def start_session(self, request: Request, handle: str, mspauth: str) -> None:
        session_id, _ = self.sessions.create(handle, mspauth)
        secure = self.realm.config.web_base().startswith("https:")
        request.addCookie(COOKIE, session_id.encode("ascii"), path=b"/", httpOnly=True, secure=secure,
                          sameSite="lax")


class Index(Resource):
    def __init__(self, side: WebSide) -> None:
        super().__init__()
        self.side = side

    def render_GET(self, request: Request) -> bytes:
        session = self.side.session(request)
        return _respond(request, 200, pages.index(session.handle if session else None,
                                                  signup=self.side.realm.config.signup != "off"))


class NotOffered(Resource):
    """A service this network does not offer: an honest page, signed in or not."""

    def __init__(self, side: WebSide, service: str) -> None:
        super().__init__()
        self.side = side
        self.service = service

    def render_GET(self, request: Request) -> bytes:
        session = self.side.session(request)
        return _respond(request, 200, pages.not_offered(self.service, session.handle if session else None))

    render_POST = render_GET


class Md5Auth(Resource):
    """``POST /ppsecure/md5auth.srf``: the client's auto-login form (notification.md 4.16)."""

    isLeaf = True

    def __init__(self, side: WebSide) -> None:
        super().__init__()
        self.side = side

    def render_GET(self, request: Request) -> bytes:
        return _respond(request, 405, pages.error("Sign-in", "Messenger signs in here with a form post."))

    def render_POST(self, request: Request) -> Any:
        realm = self.side.realm
        handle = posted_handle(_field(request, "login"), _field(request, "username"))
        post = Post(handle, _field(request, "auth"), _field(request, "sl"), _field(request, "creds"),
                    _field(request, "rru") or _field(request, "ru"))
        address = _host(request)
        if not is_valid_handle(handle):
            self._refuse(request, handle, "web_bad_form")
            return self._forbidden(request)
        check = realm.windows.login_check(handle, address)
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        looked_up: Deferred[list[Any]] = gatherResults(
            [realm.directory.get(handle), realm.store.get_account(handle),
             check if isinstance(check, Deferred) else succeed(check)], consumeErrors=True)

        def decide(found: list[Any]) -> None:
            record: PresenceRecord | None = found[0]
            account: AccountRecord | None = found[1]
            limits: LoginCheck = found[2]
            # As for USR: the limits are read, the post compared and a failure counted in one
            # reactor turn, so parallel posts cannot slip past the count.
            over = limits.blocked(handle, address)
            if over is not None:
                failures.over_limit(realm, request, handle, over)
                self._finish(request, gone, 403, self._forbidden_page())
                return
            reason = why_refused(post, record, account, self.side.password_of(account), realm.clock.seconds())
            if reason is None and self.side.replays.seen(post.handle, post.auth, post.sl, post.creds):
                reason = "web_replay"
            if reason is not None:
                self._refuse(request, handle, reason)
                self._finish(request, gone, 403, self._forbidden_page())
                return
            self.side.replays.use(post.handle, post.auth, post.sl, post.creds)
            if gone:
                return
            self.side.start_session(request, handle, post.auth)
            audit.web_login_ok(handle, _peer(request))
            target = local_target(post.target, realm.config.web_base())
            self._finish(request, gone, 302, pages.page("Signed in", "<p>Signed in.</p>"), target)

        def failed(failure: Failure) -> None:
            if failure.check(FirstError):
                failure = failure.value.subFailure  # type: ignore[union-attr]
            log_store_failure(log, failure, "web sign-in of {handle}: a lookup failed", handle=handle)
            self._finish(request, gone, 503, pages.error("Unavailable", "Please try again in a minute."))

        looked_up.addCallback(decide).addErrback(failed)
        return NOT_DONE_YET

    def _refuse(self, request: Request, handle: str, reason: str) -> None:
        failures.failed(self.side.realm, request, handle, reason)

    @staticmethod
    def _forbidden_page() -> bytes:
        return pages.error("Sign-in refused", "This sign-in link is not valid (wrong, used or too old). "
                           "Open the page again from Messenger.")

    def _forbidden(self, request: Request) -> bytes:
        return _respond(request, 403, self._forbidden_page())

    @staticmethod
    def _finish(request: Request, gone: list[bool], code: int, body: bytes, location: str | None = None) -> None:
        if gone:
            return
        request.write(_respond(request, code, body, location))
        request.finish()


class WebRoot(Resource):
    def __init__(self, side: WebSide) -> None:
        super().__init__()
        self.index = Index(side)

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self.index
        return super().getChild(path, request)


def _put(root: Resource, path: str, resource: Resource) -> None:
    """Mount ``resource`` at ``path`` (segments separated by ``/``), keeping existing children."""
    *parents, leaf = path.strip("/").split("/")
    node = root
    for segment in parents:
        child = node.children.get(segment.encode())
        if child is None:
            child = Resource()
            node.putChild(segment.encode(), child)
        node = child
    old = node.children.get(leaf.encode())
    if old is not None:
        for name, grandchild in old.children.items():
            resource.putChild(name, grandchild)
    node.putChild(leaf.encode(), resource)


#: The services with a page of their own; every other one gets its honest NotOffered page.
PAGES: dict[str, Callable[[WebSide], Resource]] = {
    "PROFILE": Profile, "MOBILE": MobileSettings, "CHGMOB": MobileSettings, "PASSWORD": ChangePassword,
    "INBOX": Mailbox, "FOLDERS": Mailbox, "COMPOSE": Compose, "MESSAGE": ReadMessage,
}


#: The e-mail pages (mounted in this order: a parent before its children).
MAIL_PAGES: dict[str, Callable[[WebSide], Resource]] = {
    "verify": Verify, "verify/send": SendVerification, "reset": RequestReset, "reset/confirm": ConfirmReset,
}


def web_site(realm: Any) -> Site:
    side = WebSide(realm)
    root = WebRoot(side)
    _put(root, "ppsecure/md5auth.srf", Md5Auth(side))
    _put(root, "signup", SignUp(side))
    for path, mail_page in MAIL_PAGES.items():
        _put(root, path, mail_page(side))
    for path, service in pages.service_paths().items():
        page = PAGES.get(service)
        _put(root, path, page(side) if page is not None else NotOffered(side, service))
    site = BoundedSite(root)
    site.displayTracebacks = False
    return site
