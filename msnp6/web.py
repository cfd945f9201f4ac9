"""The admin HTTP port (``--admin``): ``/healthz``, ``/readyz``, Prometheus ``/metrics``,
``POST /mail`` for ``msnp6-admin mail notify``, ``POST /accounts/<handle>/<action>`` for the
``msnp6-admin user`` commands, and ``GET /sessions`` and ``POST /sessions/<handle>/kick`` for
``msnp6-admin who`` and ``session kick``. Every command it runs leaves an audit line
(msnp6.audit).

Meant for a load balancer, an orchestrator, Prometheus and the operator on a private network,
never for clients. The read-only pages are open; the state-changing ones want the admin token
(``AdminGuard``), so a browser on the operator's machine cannot be made to post to them.
"""
from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred, TimeoutError, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from . import audit
from .directory.record import PresenceRecord
from .directory.redis import DirectoryUnavailable
from .events import SessionKicked
from .http_body import BoundedSite
from .metrics import Metrics
from .services import NoSuchAccount
from .services.accounts import MAX_REASON, valid_reason
from .store.faults import log_store_failure
from .store.schema import current_revision, head_revision
from .wire.names import is_valid_handle, normalize_handle

log = Logger()

#: How long /readyz waits for the database before it answers 503.
READY_TIMEOUT = 5.0

#: A refused address is logged once in this many seconds, not once per request.
REFUSAL_LOG_WINDOW = 60.0

#: The largest JSON body the POST endpoints read.
MAX_BODY = 16 * 1024

#: Bodies a cross-site HTML form (or a no-preflight fetch) can send.
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})


def _plain(request: Request, code: int, text: str, content_type: bytes = b"text/plain; charset=utf-8") -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", content_type)
    request.setHeader(b"cache-control", b"no-store")
    return (text + "\n").encode("utf-8")


def _caller(request: Request) -> str:
    """The admin client's address (ip:port), for the audit log."""
    address = request.getClientAddress()
    return f"{getattr(address, 'host', '?')}:{getattr(address, 'port', '?')}"


class ReadinessCheck:
    """Is the database reachable and its schema at the Alembic head?

    The query runs in the store's thread pool, never on the reactor thread. Probes that arrive
    while one query is out share its answer, so a slow database does not fill the pool with them.
    """

    def __init__(self, realm: Any, reactor: Any, timeout: float = READY_TIMEOUT,
                 listening: Callable[[], bool] = lambda: True) -> None:
        self.realm = realm
        self.reactor = reactor
        self.timeout = timeout
        #: Are all the listeners bound? (msnp6.startup.Startup.ready)
        self.listening = listening
        self.head = head_revision()  # read from disk once, not on every probe
        self._waiting: list[Deferred[str | None]] | None = None

    def check(self) -> "Deferred[str | None]":
        """Fires with None when ready, else with the reason (it never fails)."""
        if getattr(self.realm, "draining", False):
            return succeed("shutting down")
        if not self.listening():
            return succeed("starting: not every listener is bound yet")
        problem = self.realm.cluster_problem()
        if problem is not None:
            return succeed(problem)
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


def _answer_later(request: Request, answer: "Deferred[tuple[int, str]]",
                  content_type: bytes = b"text/plain; charset=utf-8") -> Any:
    """Finish ``request`` with the (status, text) ``answer`` fires with, unless the client left.
    ``content_type``: that of a 200 answer (an error is plain text)."""
    gone: list[bool] = []
    request.notifyFinish().addErrback(lambda _: gone.append(True))

    def respond(result: tuple[int, str]) -> None:
        if not gone:
            status, text = result
            request.write(_plain(request, status, text, content_type if status == 200 else b"text/plain; charset=utf-8"))
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


class BadBody(Exception):
    """The POST body is not a small JSON object of strings."""


def _fields(request: Request) -> dict[str, str]:
    """The JSON object of a POST body ({} for an empty one); AdminGuard has checked its type."""
    content = request.content
    body = content.read(MAX_BODY + 1) if content is not None else b""
    if len(body) > MAX_BODY:
        raise BadBody(f"the body must be at most {MAX_BODY} bytes")
    if not body.strip():
        return {}
    try:
        fields = json.loads(body)
    except ValueError:
        raise BadBody("the body must be a JSON object") from None
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise BadBody("the body must be a JSON object of strings")
    if any("\x00" in v for v in fields.values()):  # PostgreSQL cannot store one
        raise BadBody("a field holds a NUL character")
    return fields


def _field(fields: dict[str, str], name: str, limit: int = 256) -> str:
    return fields.get(name, "")[:limit]


def _service_failed(handle: str, what: str) -> Callable[[Failure], tuple[int, str]]:
    def failed(failure: Failure) -> tuple[int, str]:
        if failure.check(NoSuchAccount):
            return 404, f"no account {handle}"
        log_store_failure(log, failure, "{action} for {handle} failed", action=what, handle=handle)
        return 500, "the store failed"

    return failed


class MailPush(Resource):
    """``POST /mail`` (JSON fields handle, from_name, from_addr, subject): one new message for an
    account. 200 ``accepted`` whether the account exists, is online or has mail on: a mail
    gateway calls this for addresses strangers chose, and passing its answers on must not tell
    them which accounts exist or who is online. The outcome goes to the log. 400 for bad fields,
    500 when the store fails (for every handle alike)."""

    isLeaf = True

    def __init__(self, realm: Any) -> None:
        super().__init__()
        self.realm = realm

    def render_POST(self, request: Request) -> Any:
        try:
            fields = _fields(request)
        except BadBody as e:
            return _plain(request, 400, str(e))
        handle = normalize_handle(_field(fields, "handle"))
        if not is_valid_handle(handle):
            return _plain(request, 400, "a valid handle is required")
        realm = self.realm
        caller = _caller(request)

        def told(_: int) -> "Deferred[tuple[int, str]]":
            def outcome(record: Any) -> tuple[int, str]:
                shown = record is not None and record.email_enabled
                audit.operator("mail_notify", handle, caller, "delivered" if shown else "counted")
                return 200, "accepted"

            return realm.directory.get(handle).addCallback(outcome)

        def unknown(failure: Failure) -> tuple[int, str]:
            failure.trap(NoSuchAccount)
            audit.operator("mail_notify", handle, caller, "no such account")
            return 200, "accepted"

        from_addr = _field(fields, "from_addr")
        answer = realm.services.accounts.add_unread_mail(
            handle, _field(fields, "from_name") or from_addr, from_addr, _field(fields, "subject"))
        answer.addCallbacks(told, unknown).addErrback(_service_failed(handle, "mail push"))
        return _answer_later(request, answer)


#: Operator actions on one account that online sessions must hear of:
#: ``POST /accounts/<handle>/<action>`` (JSON field ``state`` on|off for mail and mobile,
#: ``reason`` for disable). Creating accounts and setting passwords need no server:
#: msnp6-admin writes those itself.
ACCOUNT_ACTIONS = frozenset({"verify", "unverify", "delete", "mail", "mobile", "disable", "enable"})


class AccountActions(Resource):
    """The admin CLI's way into a running server: the change goes through the same services as
    the protocol handlers, so online sessions see it at once. 404 for no such account: only the
    token's holder, who may list the accounts anyway, gets to ask."""

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
        try:
            fields = _fields(request)
        except BadBody as e:
            return _plain(request, 400, str(e))
        state, reason = _field(fields, "state"), fields.get("reason", "")
        accounts = self.realm.services.accounts
        if action in ("mail", "mobile") and state not in ("on", "off"):
            return _plain(request, 400, "state must be on or off")
        if not valid_reason(reason):
            return _plain(request, 400, f"the reason must be at most {MAX_REASON} printable characters")
        if action == "disable":
            done = accounts.disable(handle, reason)
        elif action == "enable":
            done = accounts.enable(handle)
        elif action in ("verify", "unverify"):
            done = accounts.set_verified(handle, action == "verify")
        elif action == "delete":
            done = accounts.delete(handle)
        elif action == "mail":
            done = accounts.set_email_enabled(handle, state == "on")
        else:
            done = accounts.set_mobile_enabled(handle, state == "on")
        caller = _caller(request)

        def audited(result: tuple[int, str]) -> tuple[int, str]:
            outcome = {200: "ok", 404: "no such account"}.get(result[0], "failed")
            audit.operator(action, handle, caller, outcome, reason if action == "disable" else "")
            return result

        done.addCallbacks(lambda _: (200, "ok"), _service_failed(handle, action)).addCallback(audited)
        return _answer_later(request, done)


class Sessions(Resource):
    """``GET /sessions``: every online session in the presence directory (every node's, in a
    cluster), as a JSON list: what ``msnp6-admin who`` prints. ``POST /sessions/<handle>/kick``:
    end that account's session on whichever node holds it (through the bus); 404 ``not online``
    when there is none. Both want the token: the list shows client addresses."""

    isLeaf = True

    def __init__(self, realm: Any) -> None:
        super().__init__()
        self.realm = realm

    def render_GET(self, request: Request) -> Any:
        if [p for p in request.postpath or [] if p]:
            return _plain(request, 404, "GET /sessions")
        caller = _caller(request)

        def listed(records: list[PresenceRecord]) -> tuple[int, str]:
            audit.operator("who", "-", caller, f"{len(records)} sessions")
            return 200, json.dumps([session_row(r) for r in records], ensure_ascii=False)

        answer = self.realm.directory.list_all().addCallbacks(listed, _directory_failed)
        return _answer_later(request, answer, b"application/json")

    def render_POST(self, request: Request) -> Any:
        path = request.postpath or []
        if len(path) != 2 or path[1] != b"kick":
            return _plain(request, 404, "POST /sessions/<handle>/kick")
        handle = normalize_handle(path[0].decode("utf-8", "replace"))
        if not is_valid_handle(handle):
            return _plain(request, 400, "a valid handle is required")
        realm, caller = self.realm, _caller(request)

        def found(record: PresenceRecord | None) -> tuple[int, str]:
            audit.kick(handle, caller, record is not None)
            if record is None:
                return 404, "not online"
            realm.bus.publish([handle], SessionKicked())
            return 200, f"signed out on node {record.node}"

        answer = realm.directory.get(handle).addCallbacks(found, _directory_failed)
        return _answer_later(request, answer)


def session_row(record: PresenceRecord) -> dict[str, Any]:
    """One online session as ``GET /sessions`` lists it."""
    return {
        "handle": record.handle, "node": record.node, "dialect": record.dialect,
        "client_version": record.client_version, "address": record.address,
        "since": datetime.fromtimestamp(record.since, UTC).isoformat(timespec="seconds"),
        "status": record.status,
    }


def _directory_failed(failure: Failure) -> tuple[int, str]:
    failure.trap(DirectoryUnavailable)
    log.warn("admin: the presence directory failed: {error}", error=failure.getErrorMessage())
    return 503, "the presence directory is unavailable"


class RefusalLog:
    """Logs a refused request once per address per window, so a flood of them cannot flood the
    log. Remembers at most ``limit`` addresses; expired ones are dropped first."""

    def __init__(self, clock: Any, window: float = REFUSAL_LOG_WINDOW, limit: int = 4096) -> None:
        self.clock = clock
        self.window = window
        self.limit = limit
        self._quiet_until: dict[str, float] = {}

    def refused(self, address: str, status: int, reason: str, request: Request) -> None:
        now = self.clock.seconds()
        if self._quiet_until.get(address, 0.0) > now:
            return
        if len(self._quiet_until) >= self.limit:
            self._quiet_until = {a: t for a, t in self._quiet_until.items() if t > now}
            if len(self._quiet_until) >= self.limit:
                self._quiet_until.clear()
        self._quiet_until[address] = now + self.window
        log.warn("admin: refused {method} {path} from {address}: {status} {reason} "
                 "(further refusals of this address are not logged for {window:g} s)",
                 method=_escaped(request.method), path=_escaped(request.uri), address=address,
                 status=status, reason=reason, window=self.window)


def _escaped(raw: bytes | None, limit: int = 120) -> str:
    """Client bytes made safe for one log line."""
    return (raw or b"")[:limit].decode("latin-1").encode("unicode_escape").decode("ascii")


def _media_type(request: Request) -> str:
    raw = request.getHeader(b"content-type") or b""
    return raw.split(b";", 1)[0].strip().lower().decode("latin-1")


def _has_body(request: Request) -> bool:
    content = request.content
    if content is None:
        return False
    content.seek(0, 2)
    size = content.tell()
    content.seek(0)
    return size > 0


def _own_origin(origin: bytes, host: bytes | None) -> bool:
    """Does ``origin`` (the Origin header) name this port as the browser reached it (Host)?"""
    return host is not None and origin.lower() in (b"http://" + host.lower(), b"https://" + host.lower())


class AdminGuard(Resource):
    """In front of a state-changing resource: the request must carry ``Authorization: Bearer
    <token>`` (a header no cross-site form can set; compared in constant time), must not come
    from another origin (``Origin``, ``Sec-Fetch-Site``), and a POST body must be JSON or empty
    (no form or text/plain body, which a page can send without a preflight). Anything else gets
    401, 403 or 415 with a short body, logged once per address per window."""

    isLeaf = True

    def __init__(self, inner: Resource, token: str, refusals: RefusalLog) -> None:
        super().__init__()
        self.inner = inner
        self._token = token.encode("ascii")
        self.refusals = refusals

    def render(self, request: Request) -> Any:
        refusal = self._refusal(request)
        if refusal is None:
            return self.inner.render(request)
        status, reason = refusal
        self.refusals.refused(str(getattr(request.getClientAddress(), "host", "?")), status, reason, request)
        if status == 401:
            request.setHeader(b"www-authenticate", b'Bearer realm="msnp6-admin"')
        return _plain(request, status, reason)

    def _refusal(self, request: Request) -> tuple[int, str] | None:
        scheme, _, given = (request.getHeader(b"authorization") or b"").partition(b" ")
        if scheme.lower() != b"bearer" or not given.strip():
            return 401, "the admin token is required (Authorization: Bearer ...)"
        if not hmac.compare_digest(given.strip(), self._token):
            return 401, "wrong admin token"
        origin = request.getHeader(b"origin")
        if origin is not None and not _own_origin(origin, request.getHeader(b"host")):
            return 403, "cross-origin requests are refused"
        fetch_site = request.getHeader(b"sec-fetch-site")
        if fetch_site is not None and fetch_site.lower() not in (b"same-origin", b"none"):
            return 403, "cross-origin requests are refused"
        if request.method == b"POST":
            media_type = _media_type(request)
            if media_type in FORM_TYPES or (media_type != "application/json" and _has_body(request)):
                return 415, "the body must be JSON (content-type: application/json) or empty"
        return None


def admin_site(realm: Any, metrics: Metrics, reactor: Any, token: str,
               listening: Callable[[], bool] = lambda: True) -> Site:
    """The admin port. /healthz, /readyz and /metrics are open (probes and scrapers, read-only,
    no account data); /mail, /accounts and /sessions want ``token``. ``listening``: are all the listeners
    bound (/readyz answers 503 until they are)?"""
    refusals = RefusalLog(reactor)
    root = Resource()
    root.putChild(b"healthz", Healthz())
    root.putChild(b"readyz", Readyz(ReadinessCheck(realm, reactor, listening=listening)))
    root.putChild(b"metrics", MetricsPage(metrics))
    root.putChild(b"mail", AdminGuard(MailPush(realm), token, refusals))
    root.putChild(b"accounts", AdminGuard(AccountActions(realm), token, refusals))
    root.putChild(b"sessions", AdminGuard(Sessions(realm), token, refusals))
    return BoundedSite(root, max_body=MAX_BODY)
