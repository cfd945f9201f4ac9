"""The Hotmail items. ``/cgi-bin/HoTMaiL`` and ``/cgi-bin/folders`` (INBOX, FOLDERS): this network
has no mailbox, only the unread counts an operator's ``msnp6-admin mail notify`` raises; the page
shows them and can mark everything read. ``/cgi-bin/compose`` and ``/cgi-bin/getmsg`` (COMPOSE,
MESSAGE) say there is no mail to write or read here, with the counts and the way to that page."""
from __future__ import annotations

from html import escape

from twisted.internet.defer import Deferred
from twisted.web.server import Request

from ..store.records import AccountRecord
from ..wire.names import is_valid_handle
from . import pages
from .account import AccountPage, SignedInPage
from .http import field
from .sessions import WebSession

#: Where the form posts (the INBOX path; FOLDERS shows the same page).
PATH = "/cgi-bin/HoTMaiL"


def notices_off(account: AccountRecord) -> str:
    """A line saying Messenger does not show the counts, when mail notices are off ("" if on)."""
    return ("" if account.email_enabled else
            "<p>Mail notices are not switched on for this account, so Messenger does not show these counts.</p>\n")


def unread(account: AccountRecord) -> str:
    return (f"<ul>\n<li>Unread in the inbox: {account.inbox_unread}</li>\n"
            f"<li>Unread in other folders: {account.folders_unread}</li>\n</ul>\n")


def mailbox_page(handle: str, account: AccountRecord, csrf: str, cleared: bool) -> bytes:
    note = "<p><strong>Marked as read.</strong></p>\n" if cleared else ""
    return pages.page("Your mail", (
        f"<p>Signed in as {escape(handle)}. This network has no mailbox: these counts come from the "
        "notices the operator sends, and Messenger shows them when you sign in.</p>\n"
        f"{notices_off(account)}{note}{unread(account)}"
        + pages.form(PATH, csrf, "", "Mark all read")))


def no_mailbox_page(title: str, service: str, handle: str, account: AccountRecord, to: str) -> bytes:
    """COMPOSE or MESSAGE: nothing to write from or read in; ``to``, an address to write to, or ""."""
    to_line = (f"<p>To write to {escape(to)}, use your own e-mail program.</p>\n"
               if to and is_valid_handle(to) else "")
    return pages.page(title, (
        f"<p>Signed in as {escape(handle)}. On the original network this menu item opened "
        f"{escape(pages.ORIGINAL[service])}. This network has no mailbox: no message can be written "
        "or read here. The operator's mail notices only raise the unread counts Messenger shows.</p>\n"
        f"{to_line}{notices_off(account)}{unread(account)}"
        f"<p><a href=\"{PATH}\">Your unread mail counts</a> (mark them read there)</p>"))


class Mailbox(AccountPage):
    what = "mailbox"

    def show(self, request: Request, session: WebSession) -> "Deferred[bytes]":
        cleared = field(request, "cleared") == "1"

        return self.with_account(session, lambda account: mailbox_page(session.handle, account, session.csrf, cleared))

    def save(self, request: Request, session: WebSession) -> "Deferred[str]":
        return self.side.accounts.clear_unread_mail(session.handle).addCallback(lambda _: f"{PATH}?cleared=1")


class NoMailbox(SignedInPage):
    """A mail item with nothing behind it; subclasses name the ``service`` and the page's ``title``."""

    service = ""
    title = ""

    def show(self, request: Request, session: WebSession) -> "Deferred[bytes]":
        to = field(request, "to").strip()
        return self.with_account(session, lambda account: no_mailbox_page(
            self.title, self.service, session.handle, account, to))


class Compose(NoMailbox):
    what = "compose page"
    service = "COMPOSE"
    title = "No mail to write from"


class ReadMessage(NoMailbox):
    what = "message page"
    service = "MESSAGE"
    title = "No message to read"
