"""E-mail links over real sockets: a real msnp6 server (``--web``, ``--smtp-relay``) hands its mails
to a real SMTP server started here (twisted.mail's, msnp6.testing_smtp); the test reads each mail
from it, follows its link over HTTP, and checks what the protocol then says: a verified account's
next login ends in ``1`` and its online session may rename itself; a reset password is the one a
login takes. Reset requests say the same for every address."""
from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from test_login_e2e import ds_redirect
from test_web_side_e2e import Online, csrf_of, login_code, request, sign_in, wait_for
from twisted.internet.task import Clock

from msnp6.auth import CredentialKey, CredentialKeyring
from msnp6.testing import ServerProcess
from msnp6.testing_smtp import Caught, SmtpCatcher
from msnp6.webside.tokens import RESET, LinkTokens, credential_binding

SENDER = "Messenger <messenger@example.org>"


@pytest.fixture(scope="module")
def catcher(tmp_path_factory) -> Iterator[SmtpCatcher]:
    smtp = SmtpCatcher(tmp_path_factory.mktemp("smtp") / "box")
    smtp.start()
    yield smtp
    smtp.stop()


@pytest.fixture(scope="module")
def mail_server(database, key_file, tmp_path_factory, catcher) -> Iterator[ServerProcess]:
    proc = ServerProcess(database.url, key_file, tmp_path_factory.mktemp(f"mail-{database.backend}"), web=True,
                         extra_args=["--smtp-relay", f"127.0.0.1:{catcher.port}", "--mail-from", SENDER,
                                     "--limit", "login-address=1000/600", "--limit", "mail-address=1000/3600"])
    proc.start()
    yield proc
    proc.stop()


def online_as(server: ServerProcess, handle: str, password: str = "hunter2") -> tuple[Online, str]:
    """``handle`` logged in (through the DS's redirect) and online; and its USR OK line."""
    assert ds_redirect(server, handle) == f"XFR 3 NS 127.0.0.1:{server.ports['ns']} 0"
    c = server.client()
    c.auto_challenge = True
    _, ok = c.attempt(handle, password)
    profile = c.recv()
    headers = dict(re.findall(r"^([\w-]+): (.*?)\r$", (profile.payload or b"").decode("utf-8"), re.M))
    c.sync(0)
    c.command("CHG {t} NLN")
    return Online(c, handle, password, headers["MSPAuth"], int(headers["LoginTime"])), ok.line


def link_in(mail: Caught, server: ServerProcess, path: str) -> str:
    """The link of ``path`` in the mail, checked to point at the server's web listener; as a path."""
    found = re.findall(r"^(http://\S+)$", mail.text, re.M)
    assert len(found) == 1, mail.text
    parts = urlsplit(found[0])
    assert (parts.hostname, parts.port, parts.path) == ("127.0.0.1", server.ports["web"], path), found
    return f"{parts.path}?{parts.query}"


def token_of(link: str) -> str:
    return link.partition("?token=")[2]


def assert_headers(mail: Caught, to: str, subject: str) -> None:
    message = mail.message
    assert mail.mail_from == "messenger@example.org" and mail.rcpt_to == to
    assert (message["From"], message["To"], message["Subject"]) == (SENDER, to, subject)
    assert message["Date"] and re.fullmatch(r"<\S+@example\.org>", message["Message-ID"])
    assert message.get_content_type() == "text/plain"


def post_reset(server: ServerProcess, address: str):
    return request(server.ports["web"], "POST", "/reset", {"address": address})


# -- verification ------------------------------------------------------------------------------


def test_the_verification_link_verifies_and_the_online_session_follows(mail_server, catcher, accounts):
    handle = accounts.create(verified=False)
    user, ok = online_as(mail_server, handle)
    assert ok.endswith(f" OK {handle} {handle} 0")
    t, lines = user.client.command(f"REA {{t}} {handle} Renamed")
    assert lines == [f"209 {t}"]  # an unverified account may not rename

    cookie, _ = sign_in(mail_server, user)
    page = request(mail_server.ports["web"], "GET", "/verify/send", cookie=cookie)
    assert "not verified yet" in page.body
    asked = request(mail_server.ports["web"], "POST", "/verify/send", {"csrf": csrf_of(page)}, cookie=cookie)
    assert asked.status == 303 and asked.headers["location"] == "/verify/send?sent=1"

    mail = catcher.wait_for(handle)[0]
    assert_headers(mail, handle, "Confirm your e-mail address for Messenger")
    link = link_in(mail, mail_server, "/verify")
    # Opening the link (as a mail scanner would) changes nothing: it shows the button.
    shown = request(mail_server.ports["web"], "GET", link)
    assert shown.status == 200 and "Confirm my address" in shown.body
    assert csrf_of(shown) == token_of(link)
    assert not accounts.store.get_account(handle).verified

    done = request(mail_server.ports["web"], "POST", "/verify", {"csrf": token_of(link)})
    assert done.status == 200 and f"{handle} is verified" in done.body
    # The one write path told the online session: its name is unlocked at once.
    t, lines = user.client.command(f"REA {{t}} {handle} Renamed")
    assert lines[0].startswith(f"REA {t} ") and lines[0].endswith(f" {handle} Renamed"), lines
    assert "Your address is verified" in request(mail_server.ports["web"], "GET", "/verify/send", cookie=cookie).body
    # And the next login says so.
    again, ok = online_as(mail_server, handle)
    assert ok.endswith(f" OK {handle} Renamed 1")
    again.client.close()

    log = mail_server.log()
    assert re.search(rf"audit: verification mail {re.escape(handle)} from 127\.0\.0\.1:\d+: sent", log)
    assert re.search(rf"audit: verified {re.escape(handle)} from 127\.0\.0\.1:\d+", log)
    assert token_of(link) not in log


@pytest.mark.parametrize("token", ["", "x.y", "bm90IGEgdG9rZW4.AAAA"])
def test_a_wrong_verification_link_is_refused(mail_server, token):
    assert request(mail_server.ports["web"], "GET", f"/verify?token={token}").status == 403
    assert request(mail_server.ports["web"], "POST", "/verify", {"csrf": token}).status == 403


def test_a_tampered_verification_link_is_refused(mail_server, catcher, accounts):
    handle = accounts.create(verified=False)
    user, _ = online_as(mail_server, handle)
    cookie, _ = sign_in(mail_server, user)
    page = request(mail_server.ports["web"], "GET", "/verify/send", cookie=cookie)
    request(mail_server.ports["web"], "POST", "/verify/send", {"csrf": csrf_of(page)}, cookie=cookie)
    token = token_of(link_in(catcher.wait_for(handle)[0], mail_server, "/verify"))
    payload, _, tag = token.partition(".")
    other = accounts.create(verified=False)
    # Another handle under the same tag, or the tag changed: refused, nothing verified.
    forged = [f"{token_for_handle(payload, other)}.{tag}", f"{payload}.{tag[:-2]}{'AA' if tag[-2:] != 'AA' else 'BB'}"]
    for bad in forged:
        assert request(mail_server.ports["web"], "POST", "/verify", {"csrf": bad}).status == 403
    assert not accounts.store.get_account(other).verified and not accounts.store.get_account(handle).verified


def token_for_handle(payload: str, handle: str) -> str:
    """``payload`` (base64url) with its handle replaced."""
    text = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    changed = "\n".join([*text.split("\n")[:4], handle]).encode()
    return base64.urlsafe_b64encode(changed).rstrip(b"=").decode()


# -- password reset ----------------------------------------------------------------------------


def test_the_reset_link_sets_the_password_once(mail_server, catcher, accounts):
    handle = accounts.create(password="old pass")
    ghost = f"ghost-{secrets.token_hex(4)}@example.com"
    # The same page, byte for byte, for an address without an account; only the account gets mail.
    nobody = post_reset(mail_server, ghost)
    somebody = post_reset(mail_server, handle)
    assert (nobody.status, nobody.body) == (somebody.status, somebody.body) == (200, somebody.body)
    assert "If an account exists for that address" in somebody.body

    mail = catcher.wait_for(handle)[0]
    assert_headers(mail, handle, "Reset your Messenger password")
    link = link_in(mail, mail_server, "/reset/confirm")
    wait_for(lambda: f"audit: password reset requested {ghost} from " in mail_server.log())
    assert catcher.to(ghost) == []
    assert re.search(rf"password reset requested {re.escape(ghost)} from \S+: no_account", mail_server.log())

    page = request(mail_server.ports["web"], "GET", link)
    assert page.status == 200 and 'type="password"' in page.body and csrf_of(page) == token_of(link)
    fields = {"csrf": token_of(link), "new": "n3w pass", "again": "n3w pass"}
    assert request(mail_server.ports["web"], "POST", "/reset/confirm", {**fields, "again": "other"}).status == 400
    done = request(mail_server.ports["web"], "POST", "/reset/confirm", fields)
    assert done.status == 200 and "Your password was changed" in done.body
    assert login_code(mail_server, handle, "old pass") == "911"
    assert login_code(mail_server, handle, "n3w pass") == "USR"

    # Used once, the link is dead: the credential it was bound to is gone.
    assert request(mail_server.ports["web"], "GET", link).status == 403
    again = request(mail_server.ports["web"], "POST", "/reset/confirm", {**fields, "new": "3rd pass", "again": "3rd pass"})
    assert again.status == 403 and login_code(mail_server, handle, "3rd pass") == "911"

    log = mail_server.log()
    assert re.search(rf"password reset requested {re.escape(handle)} from \S+: mailed", log)
    assert re.search(rf"audit: password reset {re.escape(handle)} from 127\.0\.0\.1:\d+", log)
    assert token_of(link) not in log and "n3w pass" not in log


def test_an_expired_or_tampered_reset_link_is_refused(mail_server, accounts, key_file):
    handle = accounts.create(password="old pass")
    credential = accounts.store.get_account(handle).credential
    clock = Clock()
    clock.advance(time.time())
    tokens = LinkTokens(CredentialKeyring([CredentialKey.load(key_file)]), clock)
    binding = credential_binding(credential)
    expired = tokens.make(RESET, handle, binding, lifetime=-60)
    fresh = tokens.make(RESET, handle, binding)
    payload, _, tag = fresh.partition(".")
    tampered = f"{payload}.{'A' if tag[0] != 'A' else 'B'}{tag[1:]}"
    for bad in (expired, tampered, tokens.make(RESET, handle, b"another credential")):
        assert request(mail_server.ports["web"], "GET", f"/reset/confirm?token={bad}").status == 403
        answer = request(mail_server.ports["web"], "POST", "/reset/confirm",
                         {"csrf": bad, "new": "n3w pass", "again": "n3w pass"})
        assert answer.status == 403 and "not valid" in answer.body
    assert login_code(mail_server, handle, "old pass") == "USR"
    # The same token, unexpired and untouched, works: the refusals were for expiry and tampering.
    assert request(mail_server.ports["web"], "GET", f"/reset/confirm?token={fresh}").status == 200


def test_no_reset_mail_for_a_disabled_account_and_no_mail_bombing(mail_server, catcher, accounts):
    disabled = accounts.create()
    accounts.store.set_disabled(disabled, True)
    target = accounts.create()
    first = post_reset(mail_server, disabled)
    answers = [post_reset(mail_server, target) for _ in range(5)]
    assert {(a.status, a.body) for a in [first, *answers]} == {(200, first.body)}
    wait_for(lambda: mail_server.log().count(f"password reset requested {target} ") == 5)
    assert len(catcher.wait_for(target, 3)) == 3  # mail-account: 3 an hour
    log = mail_server.log()
    assert re.findall(rf"password reset requested {re.escape(target)} from \S+: (\w+)", log) == \
        ["mailed"] * 3 + ["rate_limited"] * 2
    assert re.search(rf"password reset requested {re.escape(disabled)} from \S+: disabled", log)
    assert catcher.to(disabled) == [] and len(catcher.to(target)) == 3


def test_a_reset_request_needs_an_address(mail_server):
    answer = post_reset(mail_server, "not an address")
    assert answer.status == 400


# -- without a relay ---------------------------------------------------------------------------


def test_without_a_relay_the_pages_say_so(database, key_file, tmp_path, accounts):
    proc = ServerProcess(database.url, key_file, tmp_path, web=True)
    proc.start()
    try:
        port = proc.ports["web"]
        for path in ("/reset", "/verify?token=x", "/reset/confirm?token=x"):
            page = request(port, "GET", path)
            assert page.status == 200 and "E-mail is not configured on this network" in page.body, path
        assert request(port, "POST", "/reset", {"address": accounts.create()}).status == 503
        user, _ = online_as(proc, accounts.create(verified=False))
        cookie, _ = sign_in(proc, user)
        page = request(port, "GET", "/verify/send", cookie=cookie)
        assert "E-mail is not configured on this network" in page.body and 'name="csrf"' not in page.body
        index = request(port, "GET", "/").body
        assert 'href="/verify/send"' in index and 'href="/reset"' in index
    finally:
        proc.stop()


def test_sign_up_mails_the_new_address_its_verification_link(database, key_file, tmp_path, catcher):
    """Sign-up with a relay: the new account is unverified, its address gets the link at once,
    and the link verifies it (the next login through the DS ends in ``1``)."""
    from test_signup_e2e import Browser

    proc = ServerProcess(database.url, key_file, tmp_path / "server", web=True,
                         extra_args=["--signup", "open", "--smtp-relay", f"127.0.0.1:{catcher.port}",
                                     "--mail-from", SENDER])
    proc.start()
    try:
        browser = Browser.open(proc)
        assert "until you open the link we mail to that address" in request(proc.ports["web"], "GET", "/signup").body
        handle = f"signup-{secrets.token_hex(4)}@example.com"
        made = browser.post(handle, password="s1gn-up")
        assert made.status == 200 and "until you open the link we mail to that address" in made.body
        user, ok = online_as(proc, handle, "s1gn-up")
        assert ok.endswith(f" OK {handle} {handle} 0")
        user.client.close()

        mail = catcher.wait_for(handle)[0]
        assert_headers(mail, handle, "Confirm your e-mail address for Messenger")
        link = link_in(mail, proc, "/verify")
        done = request(proc.ports["web"], "POST", "/verify", {"csrf": token_of(link)})
        assert done.status == 200 and f"{handle} is verified" in done.body
        again, ok = online_as(proc, handle, "s1gn-up")
        assert ok.endswith(f" OK {handle} {handle} 1")
        again.client.close()
        assert re.search(rf"audit: verification mail {re.escape(handle)} from {re.escape(browser.source)}:\d+: sent",
                         proc.log())
    finally:
        proc.stop()
