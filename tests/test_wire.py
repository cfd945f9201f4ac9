"""The sans-IO wire layer: parsing, payload lengths, names, dialects, payloads (fuzzed with hypothesis).

Framing over a connection is tested in test_framing.py."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msnp6.auth import CredentialKey, challenge_answer_ok, md5_login_ok
from msnp6.store.records import ContactInfo
from msnp6.wire import sync
from msnp6.wire.dialects import SUPPORTED, negotiate
from msnp6.wire.errors import FramingError
from msnp6.wire.hotmail import Profile, profile_payload
from msnp6.wire.lines import Command, format_error, format_line, format_payload, has_raw_control, parse
from msnp6.wire.names import InvalidText, decode_name, encode_name, is_valid_handle
from msnp6.wire.payload import declared_length


def test_parse_liberal_forms():
    assert parse(b"USR 3 MD5 I a@b.com \r") == Command("USR", 3, ("MD5", "I", "a@b.com"))
    assert parse(b"PNG") == Command("PNG", None, ())
    assert parse(b"OUT") == Command("OUT", None, ())
    assert parse(b"VER MSNP6") == Command("VER", None, ("MSNP6",))
    assert parse(b"SYN 99999999999 0").trid is None  # over 2^32-1 is no TrID
    assert parse(b"") == Command("", None, ())


def test_format():
    assert format_line("VER", 1, "MSNP6", "CVR0") == b"VER 1 MSNP6 CVR0\r\n"
    assert format_line("QNG", None) == b"QNG\r\n"
    assert format_error(911, 4) == b"911 4\r\n"
    assert format_payload("MSG", ("Hotmail", "Hotmail"), b"abc") == b"MSG Hotmail Hotmail 3\r\nabc"


def test_declared_length():
    assert declared_length(parse(b"QRY 7 msmsgs@msnmsgr.com 32"), 8192) == 32
    assert declared_length(parse(b"MSG 1 N 1664"), 1664) == 1664
    assert declared_length(parse(b"MSG 1 N 0"), 1664) == 0


@pytest.mark.parametrize("line", [b"MSG 1 N 1665", b"QRY 1 id x", b"MSG 1", b"MSG", b"MSG 1 N -5",
                                  "MSG 1 N \u0661".encode(), b"MSG 1 N 1e3"])
def test_declared_length_refuses(line):
    with pytest.raises(FramingError):
        declared_length(parse(line), 1664)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 2000))
def test_declared_length_is_a_length_under_the_cap_or_framing_error(line, cap):
    command = parse(line.replace(b"\n", b""))
    try:
        length = declared_length(command, cap)
    except FramingError:
        return
    assert 0 <= length <= cap and command.args[-1] == str(length).zfill(len(command.args[-1]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["PNG", "CHG", "SYN", "ADD"]), st.integers(0, 2**32 - 1),
                          st.lists(st.text("ABCxyz09@.%", min_size=1, max_size=8), max_size=4)), max_size=10))
def test_parse_roundtrips_formatted_lines(commands):
    for name, trid, args in commands:
        line = format_line(name, trid, *args)
        assert parse(line[:-2]) == parse(line[:-1]) == Command(name, trid, tuple(args))


@given(st.text(max_size=200).filter(lambda name: "\x00" not in name))
def test_names_roundtrip_and_stay_ascii(name):
    wire = encode_name(name)
    assert wire.isascii() and " " not in wire and "\r" not in wire and "\n" not in wire
    assert decode_name(wire) == name


@given(st.text(alphabet=st.characters(max_codepoint=0x17F), max_size=40))
def test_a_name_is_escaped_byte_by_byte_with_or_without_the_plain_shortcut(name):
    expected = "".join(chr(b) if 0x20 < b < 0x7F and b != 0x25 else f"%{b:02X}" for b in name.encode("utf-8"))
    assert encode_name(name) == expected


def test_a_nul_in_a_name_is_refused_raw_or_encoded():
    for wire in ("a%00b", "a\x00b", "%00"):
        with pytest.raises(InvalidText):
            decode_name(wire)


@pytest.mark.parametrize("line, bad", [
    (b"REA 5 a@b.c x\x00y", True), (b"REA 5 a@b.c x\ry", True), (b"CHG 1 NLN\x1b[2J", True),
    (b"PNG\x7f", True), (b"USR 1 MD5 I a@b.c\r", False), (b"USR\t1 MD5 I a@b.c", False),
    ("REA 5 a@b.c Zoë".encode(), False), (b"", False),
])
def test_raw_control_bytes_in_a_command_line(line, bad):
    assert has_raw_control(line) is bad


def test_names_examples():
    assert encode_name("Alice A.") == "Alice%20A."
    assert encode_name("Zoë 100%") == "Zo%C3%AB%20100%25"
    assert decode_name("Caf%E9") == "Café"  # Latin-1 from an old client


@pytest.mark.parametrize("handle,ok", [
    ("alice@example.com", True), ("a.b+c@mail.example.co.uk", True), ("a@b", False), ("x@", False),
    ("no-at", False), ("a@@b.com", False), ("a b@c.com", False), ("a" * 120 + "@example.com", False),
])
def test_handles(handle, ok):
    assert is_valid_handle(handle) is ok


def test_negotiation():
    n = negotiate(["MSNP7", "MSNP6", "MSNP5", "MSNP4", "CVR0"])
    assert n.echo == ("MSNP7", "MSNP6", "MSNP5", "MSNP4", "CVR0") and n.dialect == SUPPORTED["MSNP7"]
    assert negotiate(["MSNP2", "CVR0"]).dialect == SUPPORTED["MSNP2"]
    assert negotiate(["MSNP5"]).echo == ("MSNP5",)
    assert negotiate(["CVR0"]).dialect is None
    assert negotiate(["MSNP8", "CVR0"]).dialect is None
    assert negotiate(["msnp6", "MSNP6"]).echo == ("MSNP6",)


def test_profile_matches_the_reference_example_byte_for_byte():
    payload = profile_payload(Profile(login_time=1041379200, email_enabled=True, member_id=42,
                                      preferred_email="alice@example.com", mspauth="7d2f0c8e51b94a36$$",
                                      country="US"))
    assert len(payload) == 348
    assert payload.startswith(b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\n"
                              b"LoginTime: 1041379200\r\nEmailEnabled: 1\r\nMemberIdHigh: 0\r\nMemberIdLow: 42\r\n")
    assert payload.endswith(b"Flags: 1027\r\nsid: 507\r\nkv: 2\r\nMSPAuth: 7d2f0c8e51b94a36$$\r\n\r\n")


def test_reference_vectors():
    # dispatch-and-switchboard.md 3 and versions.md 4.
    assert md5_login_ok("mypassword", "1013928519.693957190", "6f3963009fc8a9d2b2ff137da0905c55")
    assert md5_login_ok("mypassword", "1013928519.693957190", "6F3963009FC8A9D2B2FF137DA0905C55")
    assert not md5_login_ok("other", "1013928519.693957190", "6f3963009fc8a9d2b2ff137da0905c55")
    assert challenge_answer_ok("msmsgs@msnmsgr.com", ("11111111111111111111",), b"3b6666b60157322b6fc6e41a115968f5")


def test_sealing_binds_the_handle(tmp_path):
    key = CredentialKey.load(tmp_path / "k", create=True)
    blob = key.seal("a@example.com", "pw")
    assert b"pw" not in blob and key.unseal("a@example.com", blob) == "pw"
    assert key.seal("a@example.com", "pw") != blob  # fresh nonce


def _listing(lists, contacts=None, version=12, phm=None) -> sync.Listing:
    return sync.Listing(version=version, gtc="A", blp="AL", phones={"PHH": None, "PHW": None, "PHM": phm},
                        mobile_allowed=False, mobile_enabled=False, lists=lists, contacts=contacts or {})


def test_sync_dump_matches_the_reference_example():
    lists = {
        "FL": {"bob@example.com": "Bob B.", "carol@example.com": "carol@example.com"},
        "AL": {"bob@example.com": "Bob B.", "carol@example.com": "carol@example.com"},
        "BL": {},
        "RL": {"bob@example.com": "Bob B."},
    }
    contacts = {"bob@example.com": ContactInfo("bob@example.com", None, None, None, False, True)}
    lines = sync.dump(5, _listing(lists, contacts, phm="555%200100"), SUPPORTED["MSNP6"])
    assert b"".join(lines).decode().split("\r\n")[:-1] == [
        "SYN 5 12", "GTC 5 12 A", "BLP 5 12 AL", "PRP 5 12 PHH", "PRP 5 12 PHW", "PRP 5 12 PHM 555%200100",
        "PRP 5 12 MOB N", "PRP 5 12 MBE N",
        "LST 5 FL 12 1 2 bob@example.com Bob%20B.",
        "BPR 12 bob@example.com PHH", "BPR 12 bob@example.com PHW", "BPR 12 bob@example.com PHM",
        "BPR 12 bob@example.com MOB N",
        "LST 5 FL 12 2 2 carol@example.com carol@example.com",
        "BPR 12 carol@example.com PHH", "BPR 12 carol@example.com PHW", "BPR 12 carol@example.com PHM",
        "BPR 12 carol@example.com MOB N",
        "LST 5 AL 12 1 2 bob@example.com Bob%20B.", "LST 5 AL 12 2 2 carol@example.com carol@example.com",
        "LST 5 BL 12 0 0", "LST 5 RL 12 1 1 bob@example.com Bob%20B.",
    ]


def test_sync_dump_shows_an_allowing_contact_s_phones():
    lists = {"FL": {"bob@example.com": "Bob"}, "AL": {}, "BL": {}, "RL": {}}
    contacts = {"bob@example.com": ContactInfo("bob@example.com", "555%200100", None, "555%200199", True, True)}
    lines = sync.dump(3, _listing(lists, contacts), SUPPORTED["MSNP6"])
    assert [l.decode() for l in lines[8:]] == [
        "LST 3 FL 12 1 1 bob@example.com Bob\r\n", "BPR 12 bob@example.com PHH 555%200100\r\n",
        "BPR 12 bob@example.com PHW\r\n", "BPR 12 bob@example.com PHM 555%200199\r\n",
        "BPR 12 bob@example.com MOB Y\r\n", "LST 3 AL 12 0 0\r\n", "LST 3 BL 12 0 0\r\n", "LST 3 RL 12 0 0\r\n"]
    assert sync.bpr_lines(12, "bob@example.com", None) == [
        b"BPR 12 bob@example.com PHH\r\n", b"BPR 12 bob@example.com PHW\r\n", b"BPR 12 bob@example.com PHM\r\n",
        b"BPR 12 bob@example.com MOB N\r\n"]


def test_sync_dump_for_msnp4_has_no_phone_lines():
    lists = {"FL": {"bob@example.com": "Bob"}, "AL": {}, "BL": {}, "RL": {}}
    lines = sync.dump(2, _listing(lists, version=3), SUPPORTED["MSNP4"])
    assert [l.decode().strip() for l in lines] == [
        "SYN 2 3", "GTC 2 3 A", "BLP 2 3 AL", "LST 2 FL 3 1 1 bob@example.com Bob",
        "LST 2 AL 3 0 0", "LST 2 BL 3 0 0", "LST 2 RL 3 0 0"]
