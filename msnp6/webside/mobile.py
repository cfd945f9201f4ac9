"""``/mobile`` and ``/mobile/settings`` (MOBILE, CHGMOB): the phone numbers and "others may page
me" (MOB), changed through the same service call ``PRP`` uses, so watchers get their ``BPR`` and
an online session of the owner's follows at once."""
from __future__ import annotations

from html import escape

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.web.server import Request

from ..core.visibility import allowed
from ..services.actor import Actor
from ..services.lists import MAX_PHONE_BYTES, valid_property
from ..store.records import AccountRecord, SyncSnapshot
from ..wire.names import InvalidText, decode_name, encode_name
from . import pages
from .account import AccountPage, Refused
from .http import field
from .sessions import WebSession

log = Logger()

#: The phone numbers: form name and PRP key, label.
PHONES = (("phh", "PHH", "Home phone"), ("phw", "PHW", "Work phone"), ("phm", "PHM", "Mobile phone"))


def wire_phone(text: str) -> str | None:
    """A number as typed -> its PRP wire form (percent-encoded, as clients send it); None clears."""
    text = text.strip()
    return encode_name(text) if text else None


def shown_phone(wire: str | None) -> str:
    if not wire:
        return ""
    try:
        return decode_name(wire)
    except InvalidText:
        return wire


def settings_page(handle: str, account: AccountRecord, csrf: str, saved: bool) -> bytes:
    stored = {"PHH": account.phone_home, "PHW": account.phone_work, "PHM": account.phone_mobile}
    rows = "\n".join(
        f"<p><label for=\"{name}\">{escape(label)}</label><br>"
        f"<input id=\"{name}\" name=\"{name}\" value=\"{escape(shown_phone(stored[key]))}\"></p>"
        for name, key, label in PHONES)
    checked = " checked" if account.mobile_allowed else ""
    mobile = ("" if account.mobile_enabled else
              "<p>Paging to a phone is not switched on for this account on this network.</p>\n")
    note = "<p><strong>Saved.</strong></p>\n" if saved else ""
    return pages.page("Your phone numbers and paging", (
        f"<p>Signed in as {escape(handle)}. Contacts who have you on their list and whom your privacy "
        "settings allow see these numbers in Messenger.</p>\n"
        + mobile + note + pages.form("/mobile/settings", csrf, (
            f"{rows}\n<p><input type=\"checkbox\" id=\"mob\" name=\"mob\" value=\"Y\"{checked}>"
            "<label for=\"mob\">Others may page me</label></p>\n"), "Save")))


class MobileSettings(AccountPage):
    what = "phone settings"

    def show(self, request: Request, session: WebSession) -> "Deferred[bytes]":
        saved = field(request, "saved") == "1"

        return self.with_account(session, lambda account: settings_page(session.handle, account, session.csrf, saved))

    def check(self, request: Request) -> str | None:
        for name, key, label in PHONES:
            text = field(request, name).strip()
            if not text.isprintable():
                return f"{label}: printable characters only."
            if not valid_property(key, wire_phone(text)):
                return f"{label}: too long (at most {MAX_PHONE_BYTES} bytes once encoded)."
        return None

    def save(self, request: Request, session: WebSession) -> "Deferred[str]":
        wanted = {key: wire_phone(field(request, name)) for name, key, _ in PHONES}
        wanted["MOB"] = "Y" if field(request, "mob") == "Y" else "N"
        store = self.side.realm.store

        def snapshot(account: AccountRecord | None) -> "Deferred[SyncSnapshot | None]":
            if account is None:
                raise Refused(403, pages.signed_out())
            return store.get_snapshot(account.id)

        def change(snap: SyncSnapshot | None) -> "Deferred[object]":
            if snap is None:
                raise Refused(403, pages.signed_out())
            a = snap.account
            now = {"PHH": a.phone_home, "PHW": a.phone_work, "PHM": a.phone_mobile,
                   "MOB": "Y" if a.mobile_allowed else "N"}
            # As PRP: shown to the RL members the owner's privacy allows.
            lists = {name: [e.contact for e in snap.lists[name]] for name in ("RL", "AL", "BL")}
            watchers = allowed(lists["RL"], a.blp, set(lists["AL"]), set(lists["BL"]))
            actor = Actor(a.id, a.handle, a.friendly_name)
            changed = [key for key in ("PHH", "PHW", "PHM", "MOB") if wanted[key] != now[key]]

            def one(_: object, key: str) -> "Deferred[int]":
                result: Deferred[int] = self.side.lists.set_property(actor, key, wanted[key], watchers,
                                                                     elsewhere=True)
                return result

            d: Deferred[object] = succeed(None)
            for key in changed:  # one at a time: each bumps the list version once
                d.addCallback(one, key)
            return d

        def done(_: object) -> str:
            log.info("web: {handle} saved their phone settings", handle=session.handle)
            return "/mobile/settings?saved=1"

        return store.get_account(session.handle).addCallback(snapshot).addCallback(change).addCallback(done)
