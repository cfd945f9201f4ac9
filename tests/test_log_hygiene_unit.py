"""The one number parser, the log escaping and trace redaction, byte-wise answer checks, and one
log line (not a traceback) per command during a database outage."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.exc import OperationalError
from twisted.logger import formatEvent

from msnp6.auth import challenge_answer_ok, md5_hex, md5_login_ok
from msnp6.notification import NotificationProtocol
from msnp6.store.faults import outage_reason
from msnp6.store.store import StoreTimeout
from msnp6.testing import send_login, take_lines, unit_realm
from msnp6.wire import trace
from msnp6.wire.lines import Command, format_line, format_payload, parse
from msnp6.wire.numbers import MAX_UINT32, parse_number

ALICE, BOB = "alice@example.com", "bob@example.com"


# -- numbers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,value", [("0", 0), ("7", 7), ("0042", 42), (str(MAX_UINT32), MAX_UINT32)])
def test_plain_ascii_numbers(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", [
    "", "\u00b2", "\u0661\u0662", "\uff11", "1_000", " 12", "12 ", "+3", "-3", "1.0", "0x10", "1e3",
    str(MAX_UINT32 + 1), "9" * 5000,
])
def test_anything_else_is_no_number(text):
    assert parse_number(text) is None


def test_maximum():
    assert parse_number("1664", maximum=1664) == 1664 and parse_number("1665", maximum=1664) is None


@given(st.text(max_size=12))
def test_a_number_is_exactly_what_its_ascii_digits_say(text):
    value = parse_number(text)
    if value is None:
        assert not (text.isascii() and text.isdigit()) or int(text) > MAX_UINT32
    else:
        assert text.isascii() and text.isdigit() and int(text) == value


def test_trid_uses_the_same_parser():
    assert parse("SYN \u0661 0".encode()) == Command("SYN", None, ("\u0661", "0"))
    assert parse(b"SYN 1_0 0").trid is None


# -- escaping --------------------------------------------------------------------------------------


def test_escape_keeps_printable_ascii():
    assert trace.escape("USR 3 MD5 I a@b.com") == "USR 3 MD5 I a@b.com"


@pytest.mark.parametrize("raw,shown", [
    ("a\x00b", "a\\x00b"),
    ("\x1b[2J", "\\x1b[2J"),
    ("line\r\nfake log line", "line\\x0d\\x0afake log line"),
    ("caf\u00e9 \u202e", "caf\\xe9 \\u202e"),
    ("back\\slash", "back\\\\slash"),
    (b"\xc3\xa9\xff\x00", "\\xe9\\xff\\x00"),
])
def test_escape_shows_everything_else_as_escapes(raw, shown):
    assert trace.escape(raw) == shown


def test_escape_is_bounded():
    assert trace.escape("x" * 1000, limit=10) == "x" * 10 + "...(+990)"
    assert trace.escape(b"y" * 50, limit=5) == "yyyyy...(+45)"


@given(st.text() | st.binary())
def test_escaped_text_is_one_printable_ascii_line(raw):
    shown = trace.escape(raw)
    assert shown.isascii() and shown.isprintable()


# -- the trace -------------------------------------------------------------------------------------


@pytest.mark.parametrize("line,shown", [
    (b"USR 4 MD5 S 0123456789abcdef0123456789abcdef", "USR 4 MD5 S <hidden>"),
    (b"USR 3 MD5 I alice@example.com", "USR 3 MD5 I alice@example.com"),
    (b"USR 1 alice@example.com 1234.5678.9", "USR 1 alice@example.com <hidden>"),
    (b"ANS 7 bob@example.com 1234.5678.9 42", "ANS 7 bob@example.com <hidden> 42"),
    (b"QRY 9 msmsgs@msnmsgr.com 32", "QRY 9 msmsgs@msnmsgr.com 32"),
    (b"CHG 5 NLN \x1b", "CHG 5 NLN \\x1b"),
])
def test_received_lines_hide_answers_and_cookies(line, shown):
    assert trace.received(parse(line)) == shown


def test_sent_shows_every_line_without_cookies_or_payloads():
    profile = b"MIME-Version: 1.0\r\nMSPAuth: deadbeef$$\r\n\r\n"
    data = b"".join([
        format_line("SYN", 5, 3), format_line("GTC", 5, 3, "A"),
        format_line("XFR", 6, "SB", "127.0.0.1:1865", "CKI", "111.222.333"),
        format_line("RNG", None, 9, "127.0.0.1:1865", "CKI", "444.555.666", "a@b.com", "A"),
        format_payload("MSG", ("Hotmail", "Hotmail"), profile),
        format_line("LST", 5, "RL", 3, 0, 0),
    ])
    assert trace.sent(data) == [
        "SYN 5 3", "GTC 5 3 A",
        "XFR 6 SB 127.0.0.1:1865 CKI <hidden>",
        "RNG 9 127.0.0.1:1865 CKI <hidden> a@b.com A",
        f"MSG Hotmail Hotmail {len(profile)}",
        "LST 5 RL 3 0 0",
    ]


# -- answers compared as bytes ---------------------------------------------------------------------


def test_login_answers_of_any_text_are_just_wrong():
    right = md5_hex("salt" + "pw")
    assert md5_login_ok("pw", "salt", right) and md5_login_ok("pw", "salt", right.upper())
    for answer in ("\u00e9" * 32, "\x00", "", right + "\u00e9", "\udcff"):
        assert not md5_login_ok("pw", "salt", answer)


def test_challenge_answers_of_any_bytes_are_just_wrong():
    right = md5_hex("123" + "Q1P7W2E4J9R8U3S5").encode()
    assert challenge_answer_ok("msmsgs@msnmsgr.com", ("123",), right + b"\r\n")
    for answer in ("\u00e9".encode() * 16, b"\xff" * 32, b"\x00" * 32, b""):
        assert not challenge_answer_ok("msmsgs@msnmsgr.com", ("123",), answer)


# -- database outages ------------------------------------------------------------------------------


def _outage() -> OperationalError:
    return OperationalError("SELECT * FROM accounts WHERE handle = %(h)s", {"h": BOB},
                            ConnectionRefusedError("connection refused\nIs the server running?"))


def test_outage_reason_is_one_line_without_the_statement():
    reason = outage_reason(_outage())
    assert reason == "database unavailable: ConnectionRefusedError: connection refused"
    assert outage_reason(StoreTimeout("get_account", 5)) == "get_account did not answer within 5 s"
    assert outage_reason(ZeroDivisionError()) is None


@pytest.fixture
def realm(tmp_path):
    return unit_realm(tmp_path, {ALICE: "Alice", BOB: "Bob"})


def _login(realm) -> tuple[NotificationProtocol, object]:
    return send_login(realm, ALICE)


def _fail(*args, **kwargs):
    raise _outage()


def test_a_command_failing_in_an_outage_logs_one_line(realm, logged, monkeypatch):
    ns, t = _login(realm)
    assert take_lines(t)[0].startswith(f"USR 4 OK {ALICE} ")
    monkeypatch.setattr(realm.store.core, "add_entry", _fail)
    for trid in (5, 6):
        ns.dataReceived(f"ADD {trid} FL {BOB} Bob\r\n".encode())
    assert take_lines(t) == ["500 5", "500 6"] and not t.disconnecting
    texts = [formatEvent(e) for e in logged if e.get("log_namespace") != "msnp6.audit"]
    assert not [e for e in logged if e.get("log_failure") is not None], texts
    reason = "database unavailable: ConnectionRefusedError: connection refused"
    assert texts == [f"conn {ns.conn_id} ns: ADD failed: {reason}"] * 2
    assert not [line for line in texts if BOB in line or "SELECT" in line]


def test_a_login_failing_in_an_outage_logs_one_line(realm, logged, monkeypatch):
    monkeypatch.setattr(realm.store.core, "get_account", _fail)
    _, t = _login(realm)
    assert take_lines(t) == ["915 4"] and t.disconnecting
    texts = [formatEvent(e) for e in logged if e.get("log_namespace") != "msnp6.audit"]
    assert not [e for e in logged if e.get("log_failure") is not None], texts
    assert texts == [f"login of {ALICE}: the store failed: database unavailable: "
                     "ConnectionRefusedError: connection refused"]


def test_a_real_bug_still_logs_its_traceback(realm, logged, monkeypatch):
    ns, t = _login(realm)
    take_lines(t)

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(realm.store.core, "add_entry", bug)
    ns.dataReceived(f"ADD 5 FL {BOB} Bob\r\n".encode())
    assert take_lines(t) == ["500 5"]
    failures = [e["log_failure"] for e in logged if e.get("log_failure") is not None]
    assert len(failures) == 1 and failures[0].check(ZeroDivisionError)


def test_a_bug_during_login_closes_the_connection(realm, logged, monkeypatch):
    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(realm.key, "unseal", bug)
    ns, t = _login(realm)
    assert take_lines(t) == ["500 4"] and t.disconnecting and ns.handle is None
