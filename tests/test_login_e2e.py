"""The MSNP6 login over real TCP sockets against a running twistd msnp6 (SQLite and PostgreSQL)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from msnp6.store.models import accounts as accounts_table
from msnp6.testing import MsnpClient, md5_hex

SALT = re.compile(r"^\d{10}\.\d{9}$")


def ds_redirect(server, handle: str, versions: str = "MSNP6 MSNP5 MSNP4 CVR0", echo: str | None = None) -> str:
    with server.client("ds") as ds:
        ds.send(f"VER 1 {versions}")
        ds.expect(f"VER 1 {echo or versions}")
        ds.send("INF 2")
        ds.expect("INF 2 MD5")
        ds.send(f"USR 3 MD5 I {handle}")
        xfr = ds.recv()
        ds.expect_closed()
    return xfr.line


def test_reference_transcript(server, accounts):
    """DS redirect, login, profile MSG, SYN dump, CHG, CHL/QRY, PNG, OUT (versions.md 4, notification.md 1.4)."""
    handle = accounts.create(name="Alice A.", password="hunter2")
    assert ds_redirect(server, handle) == f"XFR 3 NS 127.0.0.1:{server.ports['ns']} 0"

    c = server.client("ns")
    c.send("VER 1 MSNP6 MSNP5 MSNP4 CVR0")
    c.expect("VER 1 MSNP6 MSNP5 MSNP4 CVR0")
    c.send("INF 2")
    c.expect("INF 2 MD5")
    c.send(f"USR 3 MD5 I {handle}")
    usr = c.recv().words
    assert usr[:4] == ["USR", "3", "MD5", "S"] and SALT.match(usr[4])
    c.send(f"USR 4 MD5 S {md5_hex(usr[4] + 'hunter2')}")
    c.expect(f"USR 4 OK {handle} Alice%20A. 1")
    profile = c.recv()
    length = int(profile.words[3])
    assert profile.words[:3] == ["MSG", "Hotmail", "Hotmail"] and len(profile.payload) == length
    text = profile.payload.decode()
    assert text.startswith("MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\n")
    assert f"preferredEmail: {handle}\r\n" in text and text.endswith("$$\r\n\r\n")
    assert re.search(r"\r\nLoginTime: \d+\r\n", text) and "\r\nsid: 507\r\n" in text

    c.send("SYN 5 0")
    c.expect_lines([
        "SYN 5 0", "GTC 5 0 A", "BLP 5 0 AL",
        "PRP 5 0 PHH", "PRP 5 0 PHW", "PRP 5 0 PHM", "PRP 5 0 MOB N", "PRP 5 0 MBE N",
        "LST 5 FL 0 0 0", "LST 5 AL 0 0 0", "LST 5 BL 0 0 0", "LST 5 RL 0 0 0",
    ])
    c.send("CHG 6 NLN")
    c.expect("CHG 6 NLN")
    chl = c.recv()
    assert chl.words[:2] == ["CHL", "0"] and re.fullmatch(r"\d{20}", chl.words[2])
    c.send("QRY 7 msmsgs@msnmsgr.com 32", md5_hex(chl.words[2] + "Q1P7W2E4J9R8U3S5").encode())
    c.expect("QRY 7")
    c.send("PNG")
    c.expect("QNG")
    c.send("OUT")
    c.expect("OUT")
    c.expect_closed()


def test_syn_with_current_version_answers_only_syn(server, accounts):
    handle = accounts.create()
    with accounts.store.engine.begin() as conn:
        conn.execute(update(accounts_table).where(accounts_table.c.handle == handle).values(list_version=41))
    with server.client() as c:
        c.login(handle, "hunter2")
        c.send("SYN 9 41")
        c.expect("SYN 9 41")
        c.send("PNG")
        c.expect("QNG")  # nothing else came between


def test_unverified_account_gets_verified_bit_zero(server, accounts):
    handle = accounts.create(verified=False)
    with server.client() as c:
        assert c.attempt(handle, "hunter2")[1].line == f"USR 4 OK {handle} {handle} 0"


def test_msnp5_client_gets_no_verified_bit_and_no_challenge(server, accounts):
    handle = accounts.create(name="Old")
    with server.client() as c:
        assert c.attempt(handle, "hunter2", "MSNP5 MSNP4 CVR0")[1].line == f"USR 4 OK {handle} Old"
        c.recv()  # profile
        c.send("CHG 5 NLN")
        c.expect("CHG 5 NLN")
        c.expect_silence(1.5)  # no CHL for MSNP5


def test_msnp7_client_gets_msnp7_and_its_referral_form(server, accounts):
    handle = accounts.create()
    line = ds_redirect(server, handle, "MSNP7 MSNP6 MSNP5 MSNP4 CVR0")
    assert line == f"XFR 3 NS 127.0.0.1:{server.ports['ns']} 0 127.0.0.1:{server.ports['ds']}"
    with server.client() as c:
        c.send("VER 1 MSNP7 MSNP6 MSNP5 MSNP4 CVR0")
        c.expect("VER 1 MSNP7 MSNP6 MSNP5 MSNP4 CVR0")


def test_ver_matching_is_case_insensitive(server):
    with server.client() as c:
        c.send("VER 1 msnp6 cvr0")
        c.expect("VER 1 MSNP6 CVR0")


# -- login errors ------------------------------------------------------------------------------


def test_wrong_password_gets_911_and_close(server, accounts):
    handle = accounts.create(password="right")
    with server.client() as c:
        assert c.attempt(handle, "wrong")[1].line == "911 4"
        c.expect_closed()


def test_unknown_account_gets_a_real_looking_salt_then_911(server):
    with server.client() as c:
        c.negotiate()
        assert SALT.match(c.request_salt("nobody-here@example.com"))
        c.send("USR 4 MD5 S 0123456789abcdef0123456789abcdef")
        c.expect("911 4")
        c.expect_closed()


@pytest.mark.parametrize("service", ["ds", "ns"])
@pytest.mark.parametrize("handle", ["no-at-sign", "a@b", "x@", "two@@example.com", "a" * 130 + "@example.com"])
def test_malformed_handle_gets_911_and_close(server, service, handle):
    with server.client(service) as c:
        c.negotiate()
        c.send(f"USR 3 MD5 I {handle}")
        c.expect("911 3")
        c.expect_closed()


@pytest.mark.parametrize("service", ["ds", "ns"])
@pytest.mark.parametrize("line", ["SYN 2 0", "CHG 2 NLN", "CAL 2 bob@example.com", "PNG", "XYZ 2"])
def test_command_before_login_closes_without_answer(server, service, line):
    with server.client(service) as c:
        c.negotiate()
        c.send(line)
        c.expect_closed()


def test_command_before_ver_closes(server):
    with server.client() as c:
        c.send("INF 1")
        c.expect_closed()


@pytest.mark.parametrize("service", ["ds", "ns"])
def test_second_ver_gets_715_and_close(server, service):
    with server.client(service) as c:
        c.negotiate()
        c.send("VER 3 MSNP6 CVR0")
        c.expect("715 3")
        c.expect_closed()


def test_second_ver_after_login_gets_715_and_close(server, accounts):
    with server.client() as c:
        c.login(accounts.create(), "hunter2")
        c.send("VER 9 MSNP6 CVR0")
        c.expect("715 9")
        c.expect_closed()


@pytest.mark.parametrize("service", ["ds", "ns"])
@pytest.mark.parametrize("offer", ["MSNP1 CVR0", "MSNP8 CVR0", "CVR0", "MSNP13"])
def test_no_common_version_gets_ver_0_and_close(server, service, offer):
    with server.client(service) as c:
        c.send(f"VER 1 {offer}")
        c.expect("VER 1 0")
        c.expect_closed()


def test_ver_without_trid_closes(server):
    with server.client() as c:
        c.send("VER MSNP6 CVR0")
        c.expect_closed()


def test_cvr_before_usr_gets_731_and_between_usrs_715(server, accounts):
    cvr = "0x0409 win 4.10 i386 MSMSGS 4.6.0082 MSMSGS"
    with server.client() as c:
        c.negotiate()
        c.send(f"CVR 3 {cvr}")
        c.expect("731 3")
        c.expect_closed()
    with server.client() as c:
        c.negotiate()
        c.send(f"USR 3 MD5 I {accounts.create()}")
        c.recv()
        c.send(f"CVR 4 {cvr}")
        c.expect("715 4")
        c.expect_closed()


def test_cvr_after_login_recommends_the_clients_own_version(server, accounts):
    with server.client() as c:
        c.login(accounts.create(), "hunter2")
        c.send("CVR 9 0x0409 win 4.10 i386 MSMSGS 3.6.0039 MSMSGS")
        words = c.recv().words
        assert words[:5] == ["CVR", "9", "3.6.0039", "3.6.0039", "3.6.0039"] and len(words) == 7


def test_usr_md5_s_on_the_dispatch_server_gets_715(server):
    with server.client("ds") as c:
        c.negotiate()
        c.send("USR 3 MD5 S 0123456789abcdef0123456789abcdef")
        c.expect("715 3")
        c.expect_closed()


def test_usr_after_login_gets_207_and_stays(server, accounts):
    handle = accounts.create()
    with server.client() as c:
        c.login(handle, "hunter2")
        c.send(f"USR 9 MD5 I {handle}")
        c.expect("207 9")
        c.send("PNG")
        c.expect("QNG")


def test_unknown_command_after_login_gets_200_and_stays(server, accounts):
    with server.client() as c:
        c.login(accounts.create(), "hunter2")
        c.send("ZZZ 9 what")
        c.expect("200 9")
        c.send("PNG")
        c.expect("QNG")


# -- challenges ----------------------------------------------------------------------------------


def _online(server, accounts) -> tuple[MsnpClient, str]:
    c = server.client()
    c.login(accounts.create(), "hunter2")
    c.send("CHG 5 NLN")
    c.expect("CHG 5 NLN")
    chl = c.recv()
    assert chl.name == "CHL"
    return c, chl.words[2]


def test_wrong_qry_gets_540_and_close(server, accounts):
    c, _ = _online(server, accounts)
    c.send("QRY 6 msmsgs@msnmsgr.com 32", b"ffffffffffffffffffffffffffffffff")
    c.expect("540 6")
    c.expect_closed()


def test_qry_with_unknown_client_id_gets_540(server, accounts):
    c, challenge = _online(server, accounts)
    c.send("QRY 6 someone@else.com 32", md5_hex(challenge + "Q1P7W2E4J9R8U3S5").encode())
    c.expect("540 6")
    c.expect_closed()


@pytest.mark.parametrize("client_id,key", [
    ("msmsgs@msnmsgr.com", "Q1P7W2E4J9R8U3S5"),
    ("PROD0038W!61ZTF9", "VT6PX?UQTM4WM%YR"),
    ("PROD0058#7IL2{QD", "QHDCY@7R1TB6W?5B"),
    ("PROD0061VRRZH@4F", "JXQ6J@TUOGYV@N0M"),
    ("PROD00504RLUG%WL", "I2EBK%PYNLZL5_J4"),
    ("PROD0076ENE8*@AW", "CEQJ8}OE0!WTSWII"),
])
def test_qry_accepted_for_every_reference_key_pair(server, accounts, client_id, key):
    c, challenge = _online(server, accounts)
    c.send(f"QRY 6 {client_id} 32", md5_hex(challenge + key).encode())
    c.expect("QRY 6")
    c.close()


def test_missing_qry_gets_540_and_close_after_the_timeout(server, accounts):
    c, _ = _online(server, accounts)  # the test server allows 3 s
    c.expect("540 0", timeout=10)
    c.expect_closed()


# -- sessions and framing ------------------------------------------------------------------------


def test_second_login_sends_out_oth_to_the_first(server, accounts):
    handle = accounts.create()
    first = server.client()
    first.login(handle, "hunter2")
    second = server.client()
    second.login(handle, "hunter2")
    first.expect("OUT OTH")
    first.expect_closed()
    second.send("PNG")
    second.expect("QNG")


def test_replayed_login_answer_is_refused(server, accounts):
    handle = accounts.create()
    with server.client() as c:
        c.negotiate()
        salt = c.request_salt(handle)
        answer = md5_hex(salt + "hunter2")
        c.send(f"USR 4 MD5 S {answer}")
        c.expect(f"USR 4 OK {handle} {handle} 1")
    with server.client() as c:
        c.negotiate()
        assert c.request_salt(handle) != salt  # a fresh salt every time
        c.send(f"USR 4 MD5 S {answer}")
        c.expect("911 4")


def test_repeated_failures_lock_the_account_for_a_while(server, accounts):
    handle = accounts.create()
    for _ in range(10):
        with server.client() as c:
            assert c.attempt(handle, "wrong")[1].line == "911 4"
    with server.client() as c:  # even the right password is refused now
        assert c.attempt(handle, "hunter2")[1].line == "911 4"


def test_bare_lf_and_trailing_spaces_are_accepted(server, accounts):
    handle = accounts.create()
    with server.client() as c:
        c.send_raw(b"VER 1 MSNP6 MSNP5 CVR0 \nINF 2\n")
        c.expect("VER 1 MSNP6 MSNP5 CVR0")
        c.expect("INF 2 MD5")
        c.send_raw(f"USR 3 MD5 I {handle}  \n".encode())
        salt = c.recv().words[4]
        c.send_raw(f"USR 4 MD5 S {md5_hex(salt + 'hunter2')}\n".encode())
        c.expect(f"USR 4 OK {handle} {handle} 1")


def test_pipelined_commands_are_answered_in_order(server, accounts):
    with server.client() as c:
        c.login(accounts.create(), "hunter2")
        c.send_raw(b"SYN 5 0\r\nPNG\r\nCHG 6 BSY\r\nZZZ 7\r\n")
        replies = [c.recv().line for _ in range(14)]
        assert replies[0] == "SYN 5 0" and replies[11] == "LST 5 RL 0 0 0"
        assert replies[12:] == ["QNG", "CHG 6 BSY"]
        c.expect("200 7")


def test_over_long_line_closes_the_connection(server):
    with server.client() as c:
        c.send("VER 1 " + "MSNP6 " * 2000)
        c.expect_closed()


def test_other_connections_survive_a_misbehaving_one(server, accounts):
    with server.client() as good:
        good.login(accounts.create(), "hunter2")
        with server.client() as bad:
            bad.send_raw(b"\x00\xff garbage\r\n" * 3 + b"X" * 10000)
            bad.expect_closed()
        good.send("PNG")
        good.expect("QNG")


def test_dispatch_out_closes(server):
    with server.client("ds") as c:
        c.send("OUT")
        c.expect_closed()


def test_a_client_that_never_reads_is_dropped_and_others_carry_on(server, accounts):
    """Pings whose answers are never read: once over a megabyte of output waits unsent, the
    server drops that client instead of buffering without bound."""
    import socket
    import time

    with server.client() as good:
        good.login(accounts.create(), "hunter2")
        lazy = server.client()
        lazy.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        lazy.login(accounts.create(), "hunter2")
        lazy.sock.settimeout(5)
        dropped = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # bounded: at most a minute, ~5 MB a second
            try:
                lazy.sock.sendall(b"PNG\r\n" * 1000)
            except (ConnectionResetError, BrokenPipeError):
                dropped = True
                break
        lazy.close()
        assert dropped, "the server kept buffering for a client that never reads"
        good.send("PNG")
        good.expect("QNG")
    assert "not reading its output; dropping it" in server.log()
