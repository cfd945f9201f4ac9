"""``/cgi-bin/HoTMaiL`` and ``/cgi-bin/folders`` (INBOX, FOLDERS): this network has no mailbox,
only the unread counts an operator's ``msnp6-admin mail notify`` raises; the page shows them and
can mark everything read."""
from __future__ import annotations

from html import escape

from twisted.internet.defer import Deferred
from twisted.web.server import Request

from ..store.records import AccountRecord
from . import pages
from .account import AccountPage
from .http import field
from .sessions import WebSession

#: Where the form posts (the INBOX path; FOLDERS shows the same page).
PATH = "/cgi-bin/HoTMaiL"


def mailbox_page(handle: str, account: AccountRecord, csrf: str, cleared: bool) -> bytes:
    note = "<p><strong>Marked as read.</strong></p>\n" if cleared else ""
    off = ("" if account.email_enabled else
           "<p>Mail notices are not switched on for this account, so Messenger does not show these counts.</p>\n")
    return pages.page("Your mail", (
        f"<p>Signed in as {escape(handle)}. This network has no mailbox: these counts come from the "
        "notices the operator sends, and Messenger shows them when you sign in.</p>\n"
        f"{off}{note}<ul>\n<li>Unread in the inbox: {account.inbox_unread}</li>\n"
        f"<li>Unread in other folders: {account.folders_unread}</li>\n</ul>\n"
        + pages.form(PATH, csrf, "", "Mark all read")))


class Mailbox(AccountPage):
    what = "mailbox"

    def show(self, request: Request, session: WebSession) -> "Deferred[bytes]":
        cleared = field(request, "cleared") == "1"

        return self.with_account(session, lambda account: mailbox_page(session.handle, account, session.csrf, cleared))

    def save(self, request: Request, session: WebSession) -> "Deferred[str]":
        return self.side.accounts.clear_unread_mail(session.handle).addCallback(lambda _: f"{PATH}?cleared=1")
