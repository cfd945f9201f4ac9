"""The admin HTTP port (``--admin``): ``/healthz``, ``/readyz``, Prometheus ``/metrics``,
``POST /mail`` for ``msnp6-admin mail notify`` and ``POST /accounts/<handle>/<action>`` for the
``msnp6-admin user`` commands.

Meant for a load balancer, an orchestrator and Prometheus on a private network, never for
clients: it has no authentication.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, TimeoutError, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from .metrics import Metrics
from .services import NoSuchAccount
from .store.schema import current_revision, head_revision
from .wire.names import is_valid_handle, normalize_handle

log = Logger()

#: How long /readyz waits for the database before it answers 503.
READY_TIMEOUT = 5.0


def _plain(request: Request, code: int, text: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return (text + "\n").encode("utf-8")


class ReadinessCheck:
    """Is the database reachable and its schema at the Alembic head?

    The query runs in the store's thread pool, never on the reactor thread. Probes that arrive
    while one query is out share its answer, so a slow database does not fill the pool with them.
    """

    def __init__(self, realm: Any, reactor: Any, timeout: float = READY_TIMEOUT) -> None:
        self.realm = realm
        self.reactor = reactor
        self.timeout = timeout
        self.head = head_revision()  # read from disk once, not on every probe
        self._waiting: list[Deferred[str | None]] | None = None

    def check(self) -> "Deferred[str | None]":
        """Fires with None when ready, else with the reason (it never fails)."""
        if getattr(self.realm, "draining", False):
            return succeed("shutting down")
        answer: Deferred[str | None] = Deferred()
        if self._waiting is not None:
            self._waiting.append(answer)
            return answer
        self._waiting = [answer]
        query = self.realm.store.run(current_revision, self.realm.store.core.engine)
        query.addTimeout(self.timeout, self.reactor)
        query.addCallbacks(self._judge, self._failed)
        query.addCallback(self._answer)
        return answer

    def _judge(self, current: str | None) -> str | None:
        if current == self.head:
            return None
        return f"schema at {current or 'nothing'}, not at {self.head}: run msnp6-admin migrate"

    def _failed(self, failure: Failure) -> str:
        if failure.check(TimeoutError):
            return f"database did not answer within {self.timeout:g} s"
        error = failure.value
        lines = str(error).strip().splitlines()
        detail = f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__
        log.info("readiness check failed: {detail}", detail=detail)
        return f"database unreachable: {detail}"

    def _answer(self, reason: str | None) -> None:
        waiting, self._waiting = self._waiting or [], None
        for d in waiting:
            d.callback(reason)


def _answer_later(request: Request, answer: "Deferred[tuple[int, str]]") -> Any:
    """Finish ``request`` with the (status, text) ``answer`` fires with, unless the client left."""
    gone: list[bool] = []
    request.notifyFinish().addErrback(lambda _: gone.append(True))

    def respond(result: tuple[int, str]) -> None:
        if not gone:
            request.write(_plain(request, *result))
            request.finish()

    answer.addCallback(respond)
    return NOT_DONE_YET


class Healthz(Resource):
    """The process is alive and its reactor answers."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return _plain(request, 200, "ok")


class Readyz(Resource):
    """200 when the database answers and is migrated; 503 with the reason otherwise."""

    isLeaf = True

    def __init__(self, check: ReadinessCheck) -> None:
        super().__init__()
        self.check = check

    def render_GET(self, request: Request) -> Any:
        return _answer_later(request, self.check.check().addCallback(
            lambda reason: (503, reason) if reason else (200, "ready")))


class MetricsPage(Resource):
    isLeaf = True

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request: Request) -> bytes:
        body, content_type = self.metrics.render()
        request.setHeader(b"content-type", content_type.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return body


def _form(request: Request, name: str, limit: int = 256) -> str:
    args = request.args or {}
    return (args.get(name.encode(), [b""])[0] or b"").decode("utf-8", "replace")[:limit]


def _service_failed(handle: str, what: str) -> Callable[[Failure], tuple[int, str]]:
    def failed(failure: Failure) -> tuple[int, str]:
        if failure.check(NoSuchAccount):
            return 404, f"no account {handle}"
        log.failure("{what} for {handle} failed", failure, what=what, handle=handle)
        return 500, "the store failed"

    return failed


class MailPush(Resource):
    """``POST /mail`` (form fields handle, from_name, from_addr, subject): one new message for an
    account. 200 ``delivered`` when its online session was told, 200 ``counted`` when only the
    unread count moved (offline, or mail off), 404 for no such account, 400 for bad fields."""

    isLeaf = True

    def __init__(self, realm: Any) -> None:
        super().__init__()
        self.realm = realm

    def render_POST(self, request: Request) -> Any:
        handle = normalize_handle(_form(request, "handle"))
        if not is_valid_handle(handle):
            return _plain(request, 400, "a valid handle is required")
        realm = self.realm

        def told(_: int) -> "Deferred[tuple[int, str]]":
            return realm.directory.get(handle).addCallback(
                lambda record: (200, "delivered" if record is not None and record.email_enabled else "counted"))

        answer = realm.services.accounts.add_unread_mail(
            handle, _form(request, "from_name") or _form(request, "from_addr"), _form(request, "from_addr"),
            _form(request, "subject"))
        return _answer_later(request, answer.addCallback(told).addErrback(_service_failed(handle, "mail push")))


#: Operator actions on one account that online sessions must hear of:
#: ``POST /accounts/<handle>/<action>`` (form field ``state`` on|off for mail and mobile).
#: Creating accounts and setting passwords need no server: msnp6-admin writes those itself.
ACCOUNT_ACTIONS = frozenset({"verify", "unverify", "delete", "mail", "mobile"})


class AccountActions(Resource):
    """The admin CLI's way into a running server: the change goes through the same services as
    the protocol handlers, so online sessions see it at once. Private network only (no auth)."""

    isLeaf = True

    def __init__(self, realm: Any) -> None:
        super().__init__()
        self.realm = realm

    def render_POST(self, request: Request) -> Any:
        path = request.postpath or []
        if len(path) != 2 or path[1].decode("ascii", "replace") not in ACCOUNT_ACTIONS:
            return _plain(request, 404, "POST /accounts/<handle>/<action>")
        handle = normalize_handle(path[0].decode("utf-8", "replace"))
        action = path[1].decode("ascii")
        if not is_valid_handle(handle):
            return _plain(request, 400, "a valid handle is required")
        accounts = self.realm.services.accounts
        state = _form(request, "state")
        if action in ("mail", "mobile") and state not in ("on", "off"):
            return _plain(request, 400, "state must be on or off")
        if action in ("verify", "unverify"):
            done = accounts.set_verified(handle, action == "verify")
        elif action == "delete":
            done = accounts.delete(handle)
        elif action == "mail":
            done = accounts.set_email_enabled(handle, state == "on")
        else:
            done = accounts.set_mobile_enabled(handle, state == "on")
        log.info("admin: {action} {handle}", action=action, handle=handle)
        return _answer_later(request, done.addCallbacks(lambda _: (200, "ok"), _service_failed(handle, action)))


class AdminSite(Site):
    # Probes and scrapes every few seconds would drown the log in access lines.
    noisy = False

    def log(self, request: Any) -> None:
        pass


def admin_site(realm: Any, metrics: Metrics, reactor: Any) -> Site:
    root = Resource()
    root.putChild(b"healthz", Healthz())
    root.putChild(b"readyz", Readyz(ReadinessCheck(realm, reactor)))
    root.putChild(b"metrics", MetricsPage(metrics))
    root.putChild(b"mail", MailPush(realm))
    root.putChild(b"accounts", AccountActions(realm))
    return AdminSite(root)
