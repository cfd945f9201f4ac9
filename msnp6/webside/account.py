"""The shape every signed-in page shares: a GET that shows it while the Messenger session that
signed the browser in is online (SignedInPage); a settings page adds a POST that needs the
session's CSRF token too, then makes its change and redirects back (AccountPage)."""
from __future__ import annotations

import abc
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import Deferred, FirstError
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from ..store.faults import log_store_failure
from ..store.records import AccountRecord
from . import pages
from .http import field, host, respond
from .sessions import WebSession

if TYPE_CHECKING:
    from .site import WebSide

log = Logger()


@attrs.frozen
class Refused(Exception):
    """A post the page turns down after a look at the store: its status and page."""

    code: int
    body: bytes


class SignedInPage(Resource, abc.ABC):
    """A page shown only to a live web session; subclasses give ``show``. No POST (a 405)."""

    what = "page"

    def __init__(self, side: "WebSide") -> None:
        super().__init__()
        self.side = side

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self  # "/mobile/" is the same page as "/mobile"
        return super().getChild(path, request)

    @abc.abstractmethod
    def show(self, request: Request, session: WebSession) -> "Deferred[bytes]":
        """The page for a live session."""

    def with_account(self, session: WebSession, render: Callable[[AccountRecord], bytes]) -> "Deferred[bytes]":
        """The page ``render`` makes of the session's account, read now (signed out if it is gone)."""
        return self.side.realm.store.get_account(session.handle).addCallback(
            lambda account: pages.signed_out() if account is None else render(account))

    def render_GET(self, request: Request) -> Any:
        session = self.side.session(request)
        if session is None:
            return respond(request, 200, pages.signed_out())
        gone = self._watch(request)

        def read(live: bool) -> "Deferred[None] | None":
            if not live:
                self._finish(request, gone, 200, pages.signed_out())
                return None
            return self.show(request, session).addCallback(lambda body: self._finish(request, gone, 200, body))

        self.side.live(session).addCallback(read).addErrback(self._failed, request, gone, session.handle)
        return NOT_DONE_YET

    def render_POST(self, request: Request) -> Any:
        request.setHeader(b"allow", b"GET, HEAD")
        return respond(request, 405, pages.error("Nothing to send", "This page has no form to send."))

    @staticmethod
    def _watch(request: Request) -> list[bool]:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        return gone

    @staticmethod
    def _finish(request: Request, gone: list[bool], code: int, body: bytes, location: str | None = None) -> None:
        if not gone:
            request.write(respond(request, code, body, location))
            request.finish()

    def _failed(self, failure: Failure, request: Request, gone: list[bool], handle: str) -> None:
        if failure.check(FirstError):
            failure = failure.value.subFailure  # type: ignore[union-attr]
        log_store_failure(log, failure, "web {page} of {handle}: the store failed", page=self.what, handle=handle)
        self._finish(request, gone, 503, pages.error("Unavailable", "Please try again in a minute."))


class AccountPage(SignedInPage):
    """A settings page: ``show`` its form, ``check`` and ``save`` what is posted back to it."""

    def check(self, request: Request) -> str | None:
        """Why the posted fields cannot be saved (a 400), or None; no store work here."""
        return None

    @abc.abstractmethod
    def save(self, request: Request, session: WebSession) -> "Deferred[str]":
        """Make the change; the page to redirect to. May fail with ``Refused``."""

    def render_POST(self, request: Request) -> Any:
        session = self.side.session(request)
        token = field(request, "csrf")
        if session is None or not hmac.compare_digest(token.encode(), session.csrf.encode()):
            log.info("web: a {what} post without a valid session and CSRF token from {address} refused",
                     what=self.what, address=host(request))
            return respond(request, 403, pages.error("Not saved", "This form is out of date or was not sent "
                                                     "from this site. Open the page again from Messenger."))
        problem = self.check(request)
        if problem is not None:
            return respond(request, 400, pages.error("Not saved", problem))
        gone = self._watch(request)

        def write(live: bool) -> "Deferred[None] | None":
            if not live:
                log.info("web: a {what} post for {handle}, whose Messenger session has ended, refused",
                         what=self.what, handle=session.handle)
                self._finish(request, gone, 403, pages.signed_out())
                return None
            return self.save(request, session).addCallbacks(saved, refused)

        def saved(location: str) -> None:
            self._finish(request, gone, 303, pages.page("Saved", "<p>Saved.</p>"), location)

        def refused(failure: Failure) -> None:
            failure.trap(Refused)
            answer: Refused = failure.value  # type: ignore[assignment]
            self._finish(request, gone, answer.code, answer.body)

        self.side.live(session).addCallback(write).addErrback(self._failed, request, gone, session.handle)
        return NOT_DONE_YET
