"""The web side's HTML: plain HTML5 that needs no script, every value escaped."""
from __future__ import annotations

from html import escape

from ..notification.services import URL_SERVICES
from ..wire.directory import Hit

#: What each service the ``URL`` replies name was on the original network (PROFILE is served).
ORIGINAL = {
    "INBOX": "the Hotmail inbox",
    "FOLDERS": "the Hotmail folder list",
    "COMPOSE": "writing a Hotmail message",
    "MESSAGE": "reading one Hotmail message",
    "PERSON": "a member's public profile page",
    "PASSWORD": "the Passport password change page",
    "MOBILE": "MSN Mobile: sending messages to a phone",
    "CHGMOB": "MSN Mobile: the phone and pager settings",
    "N2PACCOUNT": "the Net2Phone account for calls from the PC to a telephone",
    "N2PFUND": "adding funds to the Net2Phone account",
    "ADDRBOOK": "the Hotmail address book",
    "ADVSEARCH": "the advanced member-directory search",
    "INTSEARCH": "the member search by interests",
}

#: The directory entry's fields: form name, label, longest value (state and country are codes).
FIELDS = (("first", "First name", 64), ("last", "Last name", 64), ("city", "City", 64),
          ("state", "State (US, two letters)", 8), ("country", "Country (two letters, e.g. US)", 8))


def e(text: str) -> str:
    return escape(text, quote=True)


def form(action: str, csrf: str, fields: str, submit: str) -> str:
    """A form posting to this site's ``action`` with the web session's CSRF token; ``fields``
    is ready HTML (ending in a newline), ``submit`` the button's label."""
    return (f"<form method=\"post\" action=\"{e(action)}\">\n"
            f"<input type=\"hidden\" name=\"csrf\" value=\"{e(csrf)}\">\n{fields}"
            f"<p><input type=\"submit\" value=\"{e(submit)}\"></p>\n</form>")


def page(title: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{e(title)}</title>\n</head>\n<body>\n<h1>{e(title)}</h1>\n{body}\n"
        "<p><a href=\"/\">Home</a></p>\n</body>\n</html>\n"
    ).encode()


def error(title: str, text: str) -> bytes:
    return page(title, f"<p>{e(text)}</p>")


def index(handle: str | None, signup: bool = False) -> bytes:
    """``signup``: sign-up is open (or by invite): link to it."""
    who = f"<p>Signed in as {e(handle)}.</p>" if handle else (
        "<p>Not signed in. Messenger signs you in when you open one of its menu items.</p>")
    join = "<li><a href=\"/signup\">Make a new account</a></li>\n" if signup else ""
    return page("Messenger services", who + "\n<ul>\n" + join + "<li><a href=\"/profile\">Your member-directory entry</a></li>\n"
                "<li><a href=\"/mobile/settings\">Your phone numbers and paging</a></li>\n"
                "<li><a href=\"/password\">Change your password</a></li>\n"
                "<li><a href=\"/cgi-bin/HoTMaiL\">Your unread mail counts</a></li>\n"
                "<li><a href=\"/verify/send\">Verify your e-mail address</a></li>\n"
                "<li><a href=\"/reset\">Forgot your password?</a></li>\n"
                "</ul>")


def mail_off(title: str) -> bytes:
    """What the e-mail pages say when the operator has set up no mail relay."""
    return page(title, "<p>E-mail is not configured on this network, so it cannot send you a link. "
                "Ask the operator of this network: they can verify your address or set a new "
                "password for you.</p>")


def not_offered(service: str, handle: str | None) -> bytes:
    who = f"<p>Signed in as {e(handle)}.</p>\n" if handle else ""
    return page(f"{service}: not offered here", who + (
        f"<p>On the original network this menu item opened {e(ORIGINAL[service])}. "
        "This network does not offer it yet.</p>"))


def signed_out() -> bytes:
    return page("Not signed in", "<p>Open this page from Messenger's menu (the item for your "
                "profile): the client signs you in. A web session lasts an hour, and only while Messenger "
                "stays signed in.</p>")


def profile(handle: str, entry: Hit | None, csrf: str, saved: bool = False) -> bytes:
    values = dict(zip(("first", "last", "city", "state", "country"),
                      (entry.first_name, entry.last_name, entry.city, entry.state, entry.country)
                      if entry else ("",) * 5, strict=True))
    rows = "\n".join(
        f"<p><label for=\"{name}\">{e(label)}</label><br>"
        f"<input id=\"{name}\" name=\"{name}\" maxlength=\"{size}\" value=\"{e(values[name])}\"></p>"
        for name, label, size in FIELDS)
    checked = " checked" if entry else ""
    note = "<p><strong>Saved.</strong></p>\n" if saved else ""
    return page("Your member-directory entry", (
        f"<p>Signed in as {e(handle)}. Listed members can be found by name with Messenger's "
        "Find a Contact (the member directory); your e-mail address is never shown there.</p>\n"
        + note + form("/profile", csrf, (
            f"{rows}\n<p><input type=\"checkbox\" id=\"listed\" name=\"listed\" value=\"1\"{checked}>"
            "<label for=\"listed\">List me in the member directory</label></p>\n"), "Save")))


def service_paths() -> dict[str, str]:
    """Each served path (no leading slash) -> its service name, from the URL replies' table."""
    return {s.path.lstrip("/"): name for name, s in URL_SERVICES.items()}
