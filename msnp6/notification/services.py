"""Service commands: URL (web-service links), SND/SDC (e-mail invitations), FND (member
directory), PAG (mobile pages, delivered as IPG), and the Hotmail new-mail push."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ..directory.record import PresenceRecord
from ..events import PageArrived
from ..wire import mobile
from ..wire.dialects import SUPPORTED
from ..wire.directory import BadSearch, Hit, hit_args, parse_search
from ..wire.errors import Disconnect, ErrorCode, ProtocolError
from ..wire.hotmail import initial_mail_payload
from ..wire.lines import Command
from ..wire.names import is_valid_handle, normalize_handle
from ..wire.numbers import parse_number

if TYPE_CHECKING:
    from .protocol import NotificationProtocol
    from .state import SessionState

log = Logger()

#: Passport site ids: Hotmail is 2 (reference 4.16); 507 is Messenger's own site id (profile sid),
#: used for the Messenger-side services, whose real ids are not documented.
HOTMAIL_SITE = 2
MESSENGER_SITE = 507

#: FND results above this are refused with 301 (the result is never split).
MAX_DIRECTORY_RESULTS = 50


@attrs.frozen(slots=True)
class UrlService:
    #: Where the login form sends the browser: a path on the mail site, or a path on the
    #: operator's web base (made absolute).
    path: str
    site: int
    mail_relative: bool = False
    #: Appends the optional parameter (an address or an LCID) to the path.
    with_param: Callable[[str], str] | None = None


URL_SERVICES: dict[str, UrlService] = {
    "INBOX": UrlService("/cgi-bin/HoTMaiL", HOTMAIL_SITE, mail_relative=True),
    "FOLDERS": UrlService("/cgi-bin/folders", HOTMAIL_SITE, mail_relative=True),
    "COMPOSE": UrlService("/cgi-bin/compose", HOTMAIL_SITE, True, lambda to: f"?mailto=1&to={to}"),
    "MESSAGE": UrlService("/cgi-bin/getmsg", HOTMAIL_SITE, True, lambda msg: f"?msg={msg}"),
    "PERSON": UrlService("person", MESSENGER_SITE),
    "PROFILE": UrlService("profile", MESSENGER_SITE, with_param=lambda lcid: f"?lc={lcid}"),
    "PASSWORD": UrlService("password", MESSENGER_SITE),
    "MOBILE": UrlService("mobile", MESSENGER_SITE),
    "CHGMOB": UrlService("mobile/settings", MESSENGER_SITE),
    "N2PACCOUNT": UrlService("n2p/account", MESSENGER_SITE, with_param=lambda lcid: f"?lc={lcid}"),
    "N2PFUND": UrlService("n2p/fund", MESSENGER_SITE),
    "ADDRBOOK": UrlService("addressbook", MESSENGER_SITE),
    "ADVSEARCH": UrlService("search/advanced", MESSENGER_SITE),
    "INTSEARCH": UrlService("search/interests", MESSENGER_SITE),
}


def handle_url(conn: "NotificationProtocol", command: Command) -> None:
    """``URL t SERVICE [param]`` -> ``URL t redirect login-url site-id``."""
    if command.trid is None or not command.args:
        raise Disconnect("malformed URL")
    service = URL_SERVICES.get(command.args[0])
    if service is None:
        raise ProtocolError(ErrorCode.INVALID_PARAMETER)
    config = conn.realm.config
    param = command.args[1] if len(command.args) > 1 else None
    path = service.path + (service.with_param(param) if param and service.with_param else "")
    redirect = path if service.mail_relative else config.web_url(path)
    login_url = config.web_url("ppsecure/md5auth.srf?lc=1033")
    assert conn.dialect is not None
    site = (service.site,) if conn.dialect.url_site_id else ()  # MSNP2's reply has two parameters
    conn.send("URL", command.trid, redirect, login_url, *site)


# -- invitations -------------------------------------------------------------------------------


def _record_invitation(conn: "NotificationProtocol", command: Command, recipient: str, lcid: str,
                       body: str) -> "Deferred[None]":
    assert conn.state is not None
    state = conn.state

    def allowed(ok: bool) -> "Deferred[None]":
        if not ok:
            conn.realm.limited("invitation", state.handle)
            raise ProtocolError(ErrorCode.CHANGING_TOO_RAPIDLY)
        log.info("{sender} invites {recipient} by e-mail", sender=state.handle, recipient=recipient)
        d = conn.realm.store.record_invitation(state.handle, recipient, lcid, state.name, body)
        return d.addCallback(lambda _: conn.send(command.name, command.trid, "OK"))

    return conn.realm.windows.allow("invitation", state.handle).addCallback(allowed)


def handle_snd(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    """``SND t email [lcid [library [client-id]]]``: recorded for the operator; no mail is sent."""
    if command.trid is None or not command.args:
        raise Disconnect("malformed SND")
    email = normalize_handle(command.args[0])
    if not is_valid_handle(email):
        raise ProtocolError(ErrorCode.INVALID_PARAMETER)
    return _record_invitation(conn, command, email, command.arg(1) or "", "")


def handle_sdc(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    """``SDC t email-or-FND-index lcid MSMSGS MSMSGS X X my-name length`` + optional text."""
    if command.trid is None or len(command.args) < 3:
        raise Disconnect("malformed SDC")
    target = command.args[0]
    index = parse_number(target)
    if index is not None:  # an index into this connection's last FND results
        if not 1 <= index <= len(conn.directory_hits):
            raise ProtocolError(ErrorCode.INVALID_PARAMETER)
        recipient = conn.directory_hits[index - 1].handle
    else:
        recipient = normalize_handle(target)
        if not is_valid_handle(recipient):
            raise ProtocolError(ErrorCode.INVALID_PARAMETER)
    payload = command.payload or b""
    if b"\x00" in payload:  # no invitation text holds one, and PostgreSQL cannot store it
        raise ProtocolError(ErrorCode.INVALID_PARAMETER)
    body = payload.decode("utf-8", "replace")
    return _record_invitation(conn, command, recipient, command.args[1], body)


# -- member directory --------------------------------------------------------------------------


def handle_fnd(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    """``FND t fname= lname= city= state= country=`` over the accounts that opted in."""
    if command.trid is None:
        raise Disconnect("malformed FND")
    try:
        search = parse_search(command.args)
    except BadSearch:
        raise ProtocolError(ErrorCode.INVALID_PARAMETER) from None
    trid = command.trid

    def found(hits: list[Hit]) -> None:
        if len(hits) > MAX_DIRECTORY_RESULTS:
            raise ProtocolError(ErrorCode.TOO_MANY_FND_RESULTS)
        conn.directory_hits = hits
        if not hits:
            conn.send("FND", trid, 0, 0)
            return
        for i, hit in enumerate(hits, 1):
            conn.send("FND", trid, i, len(hits), *hit_args(hit))

    return conn.realm.store.search_directory(search, MAX_DIRECTORY_RESULTS).addCallback(found)


# -- mobile pages ------------------------------------------------------------------------------


def handle_pag(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    """``PAG t target length`` + page. No positive reply; the target gets an ``IPG`` if they allow
    pages (``MOB Y``) from this sender, are online with an MSNP6 client (a revival has no SMS
    gateway); otherwise 217, which does not tell which."""
    if command.trid is None or len(command.args) != 2:
        raise Disconnect("malformed PAG")
    assert conn.state is not None and conn.dialect is not None
    target_handle = normalize_handle(command.args[0])
    if not is_valid_handle(target_handle):
        raise ProtocolError(ErrorCode.INVALID_PARAMETER)
    try:
        page = mobile.parse_page(command.payload or b"")
    except mobile.BadPage:
        raise ProtocolError(ErrorCode.INVALID_PARAMETER) from None
    me, mine, trid = conn.state.handle, conn.dialect, command.trid

    def deliver(target: PresenceRecord | None) -> None:
        dialect = SUPPORTED.get(target.dialect) if target is not None else None
        # Offline, hidden, blocking or unable to take pages all look the same (217), as for CAL:
        # a page must not reveal who hides.
        if (target is None or dialect is None or not dialect.incoming_pages or not target.mobile_allowed
                or not target.seen_by(me)):
            raise ProtocolError(ErrorCode.PRINCIPAL_NOT_ONLINE)
        conn.realm.bus.publish([target_handle], PageArrived(me, conn.account_id, page.text))

    def allowed(ok: bool) -> "Deferred[None] | None":
        if not ok:
            conn.realm.limited("page", me)
            raise ProtocolError(ErrorCode.CHANGING_TOO_RAPIDLY)
        if len(page.text) > mobile.MAX_PAGE_TEXT:
            # Too long for a device: reported back as a failed page, the way the service did.
            if not mine.incoming_pages:
                raise ProtocolError(ErrorCode.INVALID_PARAMETER)
            conn.send_payload("IPG", (), mobile.ipg_payload(
                to_handle=me, to_id=conn.account_id, from_handle=target_handle, from_id=0, text="",
                site_url=conn.realm.config.web_url("mobile/"), notification_id=trid, message_id=407))
            return None
        return conn.realm.directory.get(target_handle).addCallback(deliver)

    return conn.realm.windows.allow("page", me).addCallback(allowed)


# -- Hotmail -------------------------------------------------------------------------------------


def send_initial_mail(conn: "NotificationProtocol", state: "SessionState") -> None:
    """After the profile, for accounts with a mailbox: the unread counts (MSNP3+)."""
    assert conn.dialect is not None
    if state.email_enabled and conn.dialect.initial_mail_notice:
        conn.send_payload("MSG", ("Hotmail", "Hotmail"), initial_mail_payload(
            state.inbox_unread, state.folders_unread, conn.realm.config.web_url("")))
