"""The MSNP2-MSNP7 dialect table and the per-dialect formats, byte for byte (no I/O)."""
from __future__ import annotations

import pytest

from msnp6.store.records import ContactInfo
from msnp6.wire import sync
from msnp6.wire.dialects import SUPPORTED, negotiate
from msnp6.wire.groups import format_ids, parse_group_id, parse_ids
from msnp6.wire.hotmail import MailNotice, Profile, new_mail_payload, profile_payload

MSNP7, MSNP6, MSNP2 = SUPPORTED["MSNP7"], SUPPORTED["MSNP6"], SUPPORTED["MSNP2"]
BOB, CAROL = "bob@example.com", "carol@example.com"
BOB_INFO = ContactInfo(BOB, "555%200100", None, None, True, True)


def _listing(lists, groups=None, fl_groups=None, version=12) -> sync.Listing:
    return sync.Listing(version=version, gtc="A", blp="AL", phones={"PHH": None, "PHW": None, "PHM": None},
                        mobile_allowed=False, mobile_enabled=False, lists=lists, contacts={BOB: BOB_INFO},
                        groups=groups or {0: "Other Contacts"}, fl_groups=fl_groups or {})


def _text(lines: list[bytes]) -> list[str]:
    data = b"".join(lines)
    assert data.endswith(b"\r\n")
    return data.decode().split("\r\n")[:-1]


EMPTY = {"FL": {}, "AL": {}, "BL": {}, "RL": {}}
PRP = ["PRP 5 12 PHH", "PRP 5 12 PHW", "PRP 5 12 PHM", "PRP 5 12 MOB N", "PRP 5 12 MBE N"]
BOB_BPR = [f"BPR 12 {BOB} PHH 555%200100", f"BPR 12 {BOB} PHW", f"BPR 12 {BOB} PHM", f"BPR 12 {BOB} MOB Y"]
CAROL_BPR = [f"BPR 12 {CAROL} PHH", f"BPR 12 {CAROL} PHW", f"BPR 12 {CAROL} PHM", f"BPR 12 {CAROL} MOB N"]


def test_msnp7_dump_of_an_empty_account_has_group_0_only():
    assert _text(sync.dump(5, _listing(EMPTY), MSNP7)) == [
        "SYN 5 12", "GTC 5 12 A", "BLP 5 12 AL", *PRP,
        "LSG 5 12 1 1 0 Other%20Contacts 0",
        "LST 5 FL 12 0 0", "LST 5 AL 12 0 0", "LST 5 BL 12 0 0", "LST 5 RL 12 0 0",
    ]


def test_msnp7_dump_with_groups_and_a_contact_in_two_of_them():
    lists = {"FL": {BOB: "Bob B.", CAROL: CAROL}, "AL": {BOB: "Bob B."}, "BL": {}, "RL": {BOB: "Bob B."}}
    groups = {0: "Other Contacts", 1: "Co-workers", 3: "Friends & Family"}
    listing = _listing(lists, groups, fl_groups={BOB: (1, 3)})
    assert _text(sync.dump(5, listing, MSNP7)) == [
        "SYN 5 12", "GTC 5 12 A", "BLP 5 12 AL", *PRP,
        "LSG 5 12 1 3 0 Other%20Contacts 0",
        "LSG 5 12 2 3 1 Co-workers 0",
        "LSG 5 12 3 3 3 Friends%20&%20Family 0",
        f"LST 5 FL 12 1 2 {BOB} Bob%20B. 1,3", *BOB_BPR,
        f"LST 5 FL 12 2 2 {CAROL} {CAROL} 0", *CAROL_BPR,
        f"LST 5 AL 12 1 1 {BOB} Bob%20B.",
        "LST 5 BL 12 0 0",
        f"LST 5 RL 12 1 1 {BOB} Bob%20B.",
    ]
    # LST FL alone (no BPR) carries the group column too; the other lists never do.
    assert _text(sync.list_lines(9, "FL", listing, MSNP7, with_bpr=False)) == [
        f"LST 9 FL 12 1 2 {BOB} Bob%20B. 1,3", f"LST 9 FL 12 2 2 {CAROL} {CAROL} 0"]


def test_the_same_listing_is_flat_for_msnp6():
    lists = {"FL": {BOB: "Bob B."}, "AL": {}, "BL": {}, "RL": {}}
    listing = _listing(lists, {0: "Other Contacts", 1: "Co-workers"}, fl_groups={BOB: (1,)})
    assert _text(sync.dump(5, listing, MSNP6)) == [
        "SYN 5 12", "GTC 5 12 A", "BLP 5 12 AL", *PRP,
        f"LST 5 FL 12 1 1 {BOB} Bob%20B.", *BOB_BPR,
        "LST 5 AL 12 0 0", "LST 5 BL 12 0 0", "LST 5 RL 12 0 0",
    ]


def test_msnp2_dump_has_no_phone_lines_and_no_groups():
    lists = {"FL": {BOB: "Bob B."}, "AL": {BOB: "Bob B."}, "BL": {}, "RL": {BOB: "Bob B."}}
    listing = _listing(lists, {0: "Other Contacts", 1: "Co-workers"}, fl_groups={BOB: (1,)}, version=3)
    assert _text(sync.dump(2, listing, MSNP2)) == [
        "SYN 2 3", "GTC 2 3 A", "BLP 2 3 AL",
        f"LST 2 FL 3 1 1 {BOB} Bob%20B.", f"LST 2 AL 3 1 1 {BOB} Bob%20B.", "LST 2 BL 3 0 0",
        f"LST 2 RL 3 1 1 {BOB} Bob%20B.",
    ]


def test_negotiation_prefers_msnp7_and_accepts_msnp2():
    n = negotiate(["MSNP7", "MSNP6", "MSNP5", "MSNP4", "CVR0"])
    assert n.dialect == MSNP7 and n.echo == ("MSNP7", "MSNP6", "MSNP5", "MSNP4", "CVR0")
    n = negotiate(["MSNP2", "CVR0"])
    assert n.dialect == MSNP2 and n.echo == ("MSNP2", "CVR0")
    assert negotiate(["MSNP1", "CVR0"]).dialect is None


@pytest.mark.parametrize(("name", "args"), [
    ("MSNP2", ("10.0.0.2:1863",)),
    ("MSNP3", ("10.0.0.2:1863", "0")),
    ("MSNP6", ("10.0.0.2:1863", "0")),
    ("MSNP7", ("10.0.0.2:1863", "0", "10.0.0.1:1863")),
])
def test_xfr_ns_form_per_dialect(name, args):
    assert SUPPORTED[name].xfr_ns_args("10.0.0.2:1863", "10.0.0.1:1863") == args


def test_commands_per_dialect():
    groups, phones, challenge = {"ADG", "RMG", "REG"}, {"PRP", "PAG", "SDC"}, {"QRY"}
    assert groups <= MSNP7.commands and not groups & MSNP6.commands
    assert phones <= SUPPORTED["MSNP5"].commands and not phones & SUPPORTED["MSNP4"].commands
    assert challenge <= MSNP6.commands and not challenge & SUPPORTED["MSNP5"].commands
    assert not (groups | phones | challenge) & MSNP2.commands
    assert {"ADD", "REM", "SYN", "LST", "CHG", "XFR", "URL", "SND", "FND"} <= MSNP2.commands
    # What must never reach older clients (notification.md 5).
    assert [d.name for d in SUPPORTED.values() if d.challenges] == ["MSNP7", "MSNP6"]
    assert [d.name for d in SUPPORTED.values() if d.phone_properties] == ["MSNP7", "MSNP6", "MSNP5"]
    assert [d.name for d in SUPPORTED.values() if d.verified_flag] == ["MSNP7", "MSNP6"]
    assert [d.name for d in SUPPORTED.values() if not d.url_site_id] == ["MSNP2"]


def test_msnp2_login_errors_are_codes_its_client_knows():
    assert (MSNP2.store_unavailable_error, MSNP2.shutting_down_error) == (601, 601)
    assert (SUPPORTED["MSNP3"].shutting_down_error, MSNP7.shutting_down_error) == (604, 916)


def test_msnp2_profile_has_login_time_only():
    profile = Profile(login_time=1041379200, email_enabled=True, member_id=42, preferred_email="a@example.com",
                      mspauth="x$$")
    assert profile_payload(profile, full=MSNP2.full_profile) == (
        b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\n"
        b"LoginTime: 1041379200\r\n\r\n")


def test_msnp2_new_mail_notice_type_and_no_id():
    notice = MailNotice("Bob", BOB, "Hi", "/cgi-bin/getmsg?msg=1", "http://mail.example.net/")
    assert new_mail_payload(notice, MSNP2.mail_notice_type, MSNP2.mail_notice_id) == (
        b"MIME-Version: 1.0\r\nContent-Type: application/x-msmsgsemailnotification; charset=UTF-8\r\n\r\n"
        b"From: Bob\r\nMessage-URL: /cgi-bin/getmsg?msg=1\r\nPost-URL: http://mail.example.net/\r\n"
        b"Subject: Hi\r\nDest-Folder: ACTIVE\r\nFrom-Addr: bob@example.com\r\n\r\n")
    assert new_mail_payload(notice, MSNP6.mail_notice_type, MSNP6.mail_notice_id).endswith(b"id: 2\r\n\r\n")
    assert not MSNP2.initial_mail_notice and SUPPORTED["MSNP3"].initial_mail_notice


def test_group_id_lists():
    assert format_ids((3, 0, 12)) == "0,3,12" and format_ids(()) == "0"
    assert parse_ids("0,3,12") == (0, 3, 12) and parse_ids(None) == (0,) and parse_ids("0") == (0,)
    assert [parse_group_id(t) for t in ("0", "29", "x", "-1", "1" * 21, "²", "١", "+1", " 1")] == [0, 29] + [None] * 7
