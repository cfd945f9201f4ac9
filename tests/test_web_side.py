"""The web side's sessions and replay guard (on a fake clock) and its pages' HTML (the sign-in itself:
test_web_side_e2e.py)."""
from __future__ import annotations

from html.parser import HTMLParser

import attrs
import html5lib
import pytest
from twisted.internet.task import Clock

from msnp6.store.records import AccountRecord
from msnp6.webside import pages
from msnp6.webside.mailbox import mailbox_page, no_mailbox_page
from msnp6.webside.md5auth import posted_handle
from msnp6.webside.mobile import settings_page
from msnp6.webside.password import password_page
from msnp6.webside.sessions import ReplayGuard, WebSessions
from msnp6.wire.directory import Hit


def test_a_session_ends_at_its_expiry():
    clock = Clock()
    sessions = WebSessions(clock, ttl=60)
    session_id, session = sessions.create("a@example.com", "t$$")
    assert sessions.get(session_id) is session and len(session.csrf) >= 32
    assert sessions.get("not-" + session_id) is None and sessions.get(None) is None
    clock.advance(59)
    assert sessions.get(session_id) is session
    clock.advance(1)
    assert sessions.get(session_id) is None


def test_each_session_has_its_own_id_and_token():
    sessions = WebSessions(Clock())
    (one, a), (two, b) = sessions.create("a@example.com", "t$$"), sessions.create("a@example.com", "t$$")
    assert one != two and a.csrf != b.csrf


def test_a_used_post_is_remembered_while_it_could_pass():
    clock = Clock()
    guard = ReplayGuard(clock, keep=1200)
    guard.use("a@example.com", "auth", "5", "creds")
    assert guard.seen("a@example.com", "auth", "5", "creds")
    assert not guard.seen("a@example.com", "auth", "6", "creds")
    clock.advance(1200)
    guard.use("b@example.com", "auth", "5", "creds")  # prunes what expired
    assert not guard.seen("a@example.com", "auth", "5", "creds")


# -- the pages' HTML -----------------------------------------------------------------------------

#: HTML5's void elements: no end tag.
VOID = {"meta", "input", "br", "link", "img", "hr"}


class Structure(HTMLParser):
    """Checks what a validator would for these simple pages: nesting, unique ids, labels that
    point at a field, a doctype, a lang and a charset."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.ids: list[str] = []
        self.label_targets: list[str] = []
        self.doctype = ""
        self.seen: set[str] = set()
        self.text = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.seen.add(tag)
        if "id" in values:
            self.ids.append(values["id"] or "")
        if tag == "label":
            self.label_targets.append(values.get("for") or "")
        if tag == "html":
            assert values.get("lang") == "en"
        if tag == "script":
            raise AssertionError("no script")
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, (self.open, tag)
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text += data


def check(body: bytes) -> Structure:
    # html5lib's strict parser raises on any parse error the HTML5 standard defines.
    html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(body)
    parser = Structure()
    parser.feed(body.decode("utf-8"))
    parser.close()
    assert parser.doctype == "DOCTYPE html" and not parser.open
    assert {"html", "head", "meta", "title", "body", "h1"} <= parser.seen
    assert len(parser.ids) == len(set(parser.ids)) and set(parser.label_targets) <= set(parser.ids)
    return parser


def test_every_page_is_well_formed_and_escapes_what_it_shows():
    hostile = "<b>&\"'x@example.com"
    entry = Hit(hostile, '"><script>', "</p>", "<i>", "WA", "US")
    profile = check(pages.profile(hostile, entry, "tok\"en", saved=True))
    assert {"form", "input", "label"} <= profile.seen and hostile in profile.text
    assert b"<script>" not in pages.profile(hostile, entry, "t")
    check(pages.profile("a@example.com", None, "t"))
    check(pages.index(None))
    check(pages.index(hostile))
    check(pages.signed_out())
    check(pages.error("Sign-in refused", hostile))
    for service in pages.ORIGINAL:
        check(pages.not_offered(service, hostile))


def test_the_phone_page_is_well_formed_and_shows_numbers_decoded():
    hostile = "<b>&\"'x@example.com"
    account = AccountRecord(1, hostile, hostile, True, 3, "AL", "AL", "555%200100", "%22%3E%3Cscript%3E", None,
                            True, False, False, 0, 0, b"")
    shown = check(settings_page(hostile, account, "tok\"en", saved=True))
    assert {"form", "input", "label"} <= shown.seen and hostile in shown.text
    body = settings_page(hostile, account, "t", saved=False)
    assert b'value="555 0100"' in body and b"<script>" not in body and b"checked" in body


def test_the_password_page_is_well_formed():
    hostile = "<b>&\"'x@example.com"
    shown = check(password_page(hostile, "tok\"en", saved=True))
    assert {"form", "input", "label"} <= shown.seen and hostile in shown.text
    assert b"changed" not in password_page("a@example.com", "t", saved=False)


def test_the_mailbox_page_is_well_formed():
    hostile = "<b>&\"'x@example.com"
    account = AccountRecord(1, hostile, hostile, True, 3, "AL", "AL", None, None, None, False, False, False, 4, 2, b"")
    shown = check(mailbox_page(hostile, account, "tok\"en", cleared=True))
    assert {"form", "input", "ul", "li"} <= shown.seen and hostile in shown.text
    assert "Unread in the inbox: 4" in shown.text and "not switched on" in shown.text


def test_the_compose_and_message_pages_are_well_formed():
    hostile = "<b>&\"'x@example.com"
    account = AccountRecord(1, hostile, hostile, True, 3, "AL", "AL", None, None, None, False, False, True, 4, 2, b"")
    for service in ("COMPOSE", "MESSAGE"):
        shown = check(no_mailbox_page("No mail", service, hostile, account, "bob@example.com"))
        assert {"ul", "li", "a"} <= shown.seen and "form" not in shown.seen and hostile in shown.text
        assert pages.ORIGINAL[service] in shown.text and "Unread in the inbox: 4" in shown.text
        assert "not switched on" not in shown.text
    assert "To write to bob@example.com" in check(
        no_mailbox_page("No mail", "COMPOSE", "a@example.com", account, "bob@example.com")).text
    # Only an address is echoed back; anything else the query carries is left out.
    body = no_mailbox_page("No mail", "COMPOSE", "a@example.com", account, "<script>@x")
    assert b"<script>" not in body and b"To write to" not in body


@pytest.mark.parametrize("login,username,expected", [
    ("Ann@Example.com", "", "ann@example.com"),
    ("ann@example.com", "bob@example.com", "ann@example.com"),   # login wins when it is a handle
    ("ann", "Ann@example.com", "ann@example.com"),                # Kopete's short login
    ("ann", "", "ann"),                                           # refused later as a bad form
])
def test_the_posted_handle(login, username, expected):
    assert posted_handle(login, username) == expected


def test_the_signup_pages_are_well_formed_and_never_show_the_password():
    from msnp6.webside.signup import Form, closed_page, created_page, signup_page

    hostile = "<b>&\"'x@example.com"
    form = Form(hostile, "<i>name</i>", "pass<word>", "pass<word>", "c0de-secret")
    for mode in ("open", "invite"):
        shown = check(signup_page(mode, "tok\"en", form, "a <problem>"))
        assert {"form", "input", "label"} <= shown.seen and "a <problem>" in shown.text
        body = signup_page(mode, "t", form, "x")
        assert b"pass&lt;word&gt;" not in body and b"pass<word>" not in body and b"c0de-secret" not in body
        assert (b'name="invite"' in body) == (mode == "invite")
    closed = check(closed_page())
    assert "form" not in closed.seen and "closed on this network" in closed.text
    assert hostile in check(created_page(hostile)).text
    assert b'href="/signup"' in pages.index(None, signup=True) and b'href="/signup"' not in pages.index(None)


def test_a_signup_form_is_checked_before_the_database():
    from msnp6.webside.signup import BAD_INVITE, Form

    def problem(mode: str = "open", **fields: str) -> str | None:
        values = {"handle": "new@example.com", "name": "", "password": "pw", "again": "pw", "invite": ""}
        values.update(fields)
        return Form(**values).problem(mode)

    assert problem() is None and problem("invite", invite="abc") is None
    assert "not valid" in (problem(handle="new@example") or "")
    assert "differ" in (problem(again="pW") or "")
    assert "empty" in (problem(password="", again="") or "")
    assert "friendly name" in (problem(name="tab\there") or "")
    assert "needed" in (problem("invite") or "")
    assert problem("invite", invite="x" * 65) == BAD_INVITE
    assert Form("a@example.com", "", "p", "p", "").friendly_name == "a@example.com"


def test_signup_is_off_unless_the_option_or_its_variable_says_otherwise(monkeypatch):
    from twisted.python import usage

    from msnp6.tap import Options, make_config

    def parsed(*args: str) -> Options:
        options = Options()
        options.parseOptions(list(args))
        return options

    monkeypatch.delenv("MSNP6_SIGNUP", raising=False)
    assert parsed()["signup"] == "off" and make_config(parsed()).signup == "off"
    monkeypatch.setenv("MSNP6_SIGNUP", "invite")
    assert make_config(parsed()).signup == "invite"
    assert parsed("--signup", "open")["signup"] == "open"  # the flag wins
    with pytest.raises(usage.UsageError, match="--signup must be one of: open, invite, off"):
        parsed("--signup", "yes")


def test_the_mail_pages_are_well_formed_and_escape_what_they_show():
    from msnp6.webside import reset, verify

    hostile = "<b>&\"'x@example.com"
    account = AccountRecord(1, hostile, hostile, False, 3, "AL", "AL", None, None, None, False, False, True, 4, 2, b"")
    shown = [verify.send_page(hostile, account, "tok\"en", sent) for sent in (False, True)]
    shown += [verify.send_page(hostile, attrs.evolve(account, verified=True), "t", False),
              verify.confirm_page(hostile, "tok\"en"), verify.link_refused(), reset.request_page(),
              reset.confirm_page(hostile, "tok\"en"), reset.link_refused(), pages.mail_off("E-mail <off>")]
    for body in shown:
        structure = check(body)
        assert b"<b>&" not in body and b'tok"en' not in body
        assert hostile in structure.text or "form" in structure.seen or "not valid" in structure.text \
            or "not configured" in structure.text
