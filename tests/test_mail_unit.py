"""E-mail without a server: the link tokens, the option values, the composed message, and the
sender against twisted.mail's SMTP server in this process (and against a port nobody serves)."""
from __future__ import annotations

import os
import secrets

import pytest
from twisted.internet.task import Clock
from twisted.logger import formatEvent
from twisted.python import usage

from msnp6.auth import CredentialKey, CredentialKeyring
from msnp6.mail.mailer import Mailer, compose
from msnp6.mail.settings import MailSettings, SettingError, mail_settings, parse_mail_from, parse_relay
from msnp6.tap import Options
from msnp6.testing import ReactorPump, free_port
from msnp6.testing_smtp import catching_factory, read_caught
from msnp6.webside.tokens import LIFETIMES, MAX_TOKEN, RESET, SUBKEY, VERIFY, LinkTokens, credential_binding

HANDLE = "ann@example.com"


def keyring() -> CredentialKeyring:
    return CredentialKeyring([CredentialKey(secrets.token_bytes(32))])


@pytest.fixture
def clock() -> Clock:
    c = Clock()
    c.advance(1_700_000_000)
    return c


# -- tokens ------------------------------------------------------------------------------------


def test_a_token_names_its_handle_and_purpose(clock):
    tokens = LinkTokens(keyring(), clock)
    token = tokens.make(VERIFY, HANDLE)
    assert token.isascii() and "/" not in token and "+" not in token and len(token) < MAX_TOKEN
    assert tokens.check(token, VERIFY) == HANDLE
    assert tokens.check(token, RESET) is None  # a verification link resets nothing


def test_a_token_expires(clock):
    tokens = LinkTokens(keyring(), clock)
    verify, reset = tokens.make(VERIFY, HANDLE), tokens.make(RESET, HANDLE, b"bound")
    clock.advance(LIFETIMES[RESET] - 1)
    assert tokens.check(reset, RESET, b"bound") == HANDLE
    clock.advance(1)
    assert tokens.check(reset, RESET, b"bound") is None
    assert tokens.check(verify, VERIFY) == HANDLE
    clock.advance(LIFETIMES[VERIFY] - LIFETIMES[RESET])
    assert tokens.check(verify, VERIFY) is None
    assert tokens.check(tokens.make(VERIFY, HANDLE, lifetime=-1), VERIFY) is None


def test_a_reset_token_dies_with_the_credential_it_was_bound_to(clock):
    keys = keyring()
    tokens = LinkTokens(keys, clock)
    old = keys.seal(HANDLE, "old")
    token = tokens.make(RESET, HANDLE, credential_binding(old))
    assert tokens.check(token, RESET, credential_binding(old)) == HANDLE
    # The same password sealed again is another credential: the link is dead all the same.
    assert tokens.check(token, RESET, credential_binding(keys.seal(HANDLE, "old"))) is None
    assert tokens.check(token, RESET) is None


def test_a_changed_token_is_refused(clock):
    tokens = LinkTokens(keyring(), clock)
    token = tokens.make(VERIFY, HANDLE)
    payload, _, tag = token.partition(".")
    other = tokens.make(VERIFY, "bob@example.com")
    flipped = tag[:5] + ("A" if tag[5] != "A" else "B") + tag[6:]
    for bad in [f"{other.partition('.')[0]}.{tag}", f"{payload}.{flipped}", payload, f"{payload}.", "",
                "." * 3, "x" * (MAX_TOKEN + 1), "é.é", f"{payload}.{tag}=="]:
        assert tokens.check(bad, VERIFY) is None, bad


def test_a_token_of_another_server_key_is_refused(clock):
    assert LinkTokens(keyring(), clock).check(LinkTokens(keyring(), clock).make(VERIFY, HANDLE), VERIFY) is None


def test_during_a_key_rotation_a_link_signed_with_the_old_key_still_works(clock):
    old, new = CredentialKey(secrets.token_bytes(32)), CredentialKey(secrets.token_bytes(32))
    keys = CredentialKeyring([old])
    tokens = LinkTokens(keys, clock)
    token = tokens.make(VERIFY, HANDLE)
    keys.add(new, newest=True)
    assert tokens.check(token, VERIFY) == HANDLE
    assert tokens.check(tokens.make(VERIFY, HANDLE), VERIFY) == HANDLE
    assert LinkTokens(CredentialKeyring([new]), clock).check(token, VERIFY) is None


def test_the_signing_key_is_a_subkey_of_its_own():
    secret = secrets.token_bytes(32)
    key = CredentialKey(secret)
    assert len(key.subkey(SUBKEY)) == 32 and key.subkey(SUBKEY) == CredentialKey(secret).subkey(SUBKEY)
    assert key.subkey(SUBKEY) not in (secret, key.subkey("another purpose"))


# -- option values -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:2525", ("127.0.0.1", 2525)), ("mail.internal", ("mail.internal", 25)),
    ("[::1]:587", ("::1", 587)), ("[::1]", ("::1", 25)), (" localhost:25 ", ("localhost", 25)),
])
def test_parse_relay(text, expected):
    assert parse_relay(text) == expected


@pytest.mark.parametrize("text", ["host:", ":25", "host:0", "host:65536", "host:x", "a b:25", "[::1", "[::1]x",
                                  "smtp://host:25"])
def test_a_bad_relay_is_refused(text):
    with pytest.raises(SettingError, match="--smtp-relay is HOST:PORT"):
        parse_relay(text)


def test_parse_mail_from():
    assert parse_mail_from("messenger@example.org") == ("messenger@example.org", "messenger@example.org")
    assert parse_mail_from("Messenger <m@example.org>") == ("Messenger <m@example.org>", "m@example.org")
    for bad in ["nobody", "a@b\r\nBcc: x@y", "<@example.org>", "two words@example.org"]:
        with pytest.raises(SettingError):
            parse_mail_from(bad)


def test_mail_settings_need_a_sender_with_a_relay():
    assert mail_settings("", "") is None and mail_settings("", "m@example.org") is None
    assert mail_settings("127.0.0.1:25", "m@example.org") == MailSettings("127.0.0.1", 25, "m@example.org",
                                                                           "m@example.org")
    with pytest.raises(SettingError, match="--smtp-relay needs --mail-from"):
        mail_settings("127.0.0.1:25", " ")


def test_options_and_their_environment_twins(monkeypatch):
    for name in list(os.environ):
        if name.startswith("MSNP6_"):
            monkeypatch.delenv(name)
    options = Options()
    options.parseOptions(["--db", "sqlite://"])
    assert options["mail"] is None
    monkeypatch.setenv("MSNP6_SMTP_RELAY", "127.0.0.1:2525")
    monkeypatch.setenv("MSNP6_MAIL_FROM", "m@example.org")
    options = Options()
    options.parseOptions(["--db", "sqlite://", "--mail-from", "Messenger <x@example.org>"])
    assert options["mail"] == MailSettings("127.0.0.1", 2525, "Messenger <x@example.org>", "x@example.org")
    monkeypatch.delenv("MSNP6_MAIL_FROM")
    with pytest.raises(usage.UsageError, match="--smtp-relay needs --mail-from"):
        Options().parseOptions(["--db", "sqlite://"])


# -- the message and the sender ----------------------------------------------------------------

SETTINGS = MailSettings("127.0.0.1", 25, "Messenger <m@example.org>", "m@example.org")


def test_compose_gives_the_headers_and_a_plain_text_body():
    raw = compose(SETTINGS, HANDLE, "Hello", "One line.\nhttp://example.org/x?token=" + "a" * 300 + "\n",
                  1_700_000_000)
    assert b"\r" not in raw  # twisted.mail's client makes the CRLFs
    head, _, body = raw.partition(b"\n\n")
    headers = dict(line.split(": ", 1) for line in head.decode().splitlines())
    assert headers["From"] == "Messenger <m@example.org>" and headers["To"] == HANDLE
    assert headers["Subject"] == "Hello" and headers["Date"] == "Tue, 14 Nov 2023 22:13:20 +0000"
    assert headers["Message-ID"].endswith("@example.org>") and headers["Content-Type"].startswith("text/plain")
    assert b"token=" + b"a" * 300 + b"\n" in body  # the link in one piece


def test_the_sender_hands_the_mail_to_an_smtp_server(reactor_pump: ReactorPump, tmp_path):
    port = reactor_pump.reactor.listenTCP(0, catching_factory(tmp_path), interface="127.0.0.1")
    try:
        settings = MailSettings("127.0.0.1", port.getHost().port, SETTINGS.sender, SETTINGS.envelope)
        mailer = Mailer(settings, reactor_pump.reactor, timeout=10)
        assert reactor_pump.call(mailer.send, HANDLE, "Hello", "Body line\n.leading dot\n", "test") is True
        [caught] = read_caught(tmp_path)
        assert (caught.mail_from, caught.rcpt_to) == ("m@example.org", HANDLE)
        assert caught.text == "Body line\n.leading dot\n" and caught.message["Subject"] == "Hello"
    finally:
        reactor_pump.call(port.stopListening)


def test_a_relay_that_cannot_be_reached_is_one_log_line_without_the_mail(reactor_pump: ReactorPump, logged):
    settings = MailSettings("127.0.0.1", free_port(), SETTINGS.sender, SETTINGS.envelope)
    mailer = Mailer(settings, reactor_pump.reactor, timeout=10)
    assert reactor_pump.call(mailer.send, HANDLE, "Hello", "http://example.org/?token=s3cret\n", "test") is False
    lines = [formatEvent(e) for e in logged if e.get("log_namespace") == "msnp6.mail.mailer"]
    assert len(lines) == 1 and lines[0].startswith(f"test mail to {HANDLE} not sent: the relay 127.0.0.1:")
    assert "could not be reached" in lines[0]
    assert not any("s3cret" in formatEvent(e) for e in logged)
