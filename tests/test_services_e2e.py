"""URL, Hotmail notices, mobile pages (PAG -> IPG), e-mail invitations (SND/SDC) and the member
directory (FND), over real TCP against a running server."""
from __future__ import annotations

import secrets

import pytest
from conftest import TOPOLOGIES, one_or_two_nodes

from msnp6.testing import MsnpClient


@pytest.fixture(params=TOPOLOGIES)
def apart(request, server):
    """For the tests where one user reaches another (pages, invitations): one node, or the two
    users on two nodes (in one process, and as separate processes over Redis)."""
    return one_or_two_nodes(request, server)


def online(server, accounts, name="User", versions="MSNP6 MSNP5 MSNP4 CVR0", **flags) -> tuple[MsnpClient, str]:
    handle = accounts.create(name=name)
    for setting, value in flags.items():
        getattr(accounts.store, setting)(handle, value)
    c = server.client()
    c.auto_challenge = True
    c.login(handle, "hunter2", versions)
    c.sync(0)
    c.command("CHG {t} NLN")
    return c, handle


@pytest.mark.parametrize("service,param,redirect,site", [
    ("INBOX", None, "/cgi-bin/HoTMaiL", "2"),
    ("FOLDERS", None, "/cgi-bin/folders", "2"),
    ("COMPOSE", "bob@example.com", "/cgi-bin/compose?mailto=1&to=bob@example.com", "2"),
    ("COMPOSE", None, "/cgi-bin/compose", "2"),
    ("PROFILE", "0x0409", "http://127.0.0.1/profile?lc=0x0409", "507"),
    ("PERSON", None, "http://127.0.0.1/person", "507"),
    ("PASSWORD", None, "http://127.0.0.1/password", "507"),
    ("MOBILE", None, "http://127.0.0.1/mobile", "507"),
    ("CHGMOB", None, "http://127.0.0.1/mobile/settings", "507"),
    ("N2PACCOUNT", "0x0409", "http://127.0.0.1/n2p/account?lc=0x0409", "507"),
    ("N2PFUND", None, "http://127.0.0.1/n2p/fund", "507"),
])
def test_url_services(server, accounts, service, param, redirect, site):
    c, _ = online(server, accounts)
    t, lines = c.command(f"URL {{t}} {service}" + (f" {param}" if param else ""))
    assert lines == [f"URL {t} {redirect} http://127.0.0.1/ppsecure/md5auth.srf?lc=1033 {site}"]


def test_unknown_url_service_gets_201(server, accounts):
    c, _ = online(server, accounts)
    t, lines = c.command("URL {t} NOSUCHTHING")
    assert lines == [f"201 {t}"]


def test_initial_mail_notice_only_with_mail_enabled(server, accounts):
    handle = accounts.create()
    accounts.store.set_email_enabled(handle, True)
    for _ in range(3):
        accounts.store.add_unread_mail(handle)
    with server.client() as c:
        profile = c.login(handle, "hunter2")
        assert b"EmailEnabled: 1\r\n" in profile.payload
        notice = c.recv()
        body = (b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinitialemailnotification; charset=UTF-8\r\n\r\n"
                b"Inbox-Unread: 3\r\nFolders-Unread: 0\r\nInbox-URL: /cgi-bin/HoTMaiL\r\n"
                b"Folders-URL: /cgi-bin/folders\r\nPost-URL: http://127.0.0.1/\r\n\r\n")
        assert notice.line == f"MSG Hotmail Hotmail {len(body)}" and notice.payload == body
    with server.client() as c:
        profile = c.login(accounts.create(), "hunter2")
        assert b"EmailEnabled: 0\r\n" in profile.payload
        assert c.fence() == []


PAGE = b'<PHONE pri="1"><LOC>HOME</LOC><NUM>15550100</NUM></PHONE><TEXT xml:space="preserve">call me &amp; soon</TEXT>'


def test_page_is_delivered_as_ipg(apart, accounts):
    alice, alice_h = online(apart, accounts, "Alice")
    bob, bob_h = online(apart, accounts, "Bob")
    bob.command("PRP {t} MOB Y")
    alice.fence()
    alice.send(f"PAG 9 {bob_h} {len(PAGE)}", PAGE)
    assert alice.fence() == []  # no positive reply
    ipg = bob.recv()
    alice_id = accounts.store.get_account(alice_h).id
    bob_id = accounts.store.get_account(bob_h).id
    expected = (
        f'<NOTIFICATION id="0" siteid="111100400" siteurl="http://127.0.0.1/mobile/">'
        f'<TO name="{bob_h}" pid="0x00000000:0x{bob_id:08x}"><VIA agent="mobile"/></TO>'
        f'<FROM pid="0x00000000:0x{alice_id:08x}" name="{alice_h}"/>'
        f'<MSG pri="1" id="1"><ACTION url="2wayIM.asp"/><SUBSCR url="2wayIM.asp"/><CAT id="110110001"/>'
        f'<BODY lang="1033"><TEXT>call me &amp; soon</TEXT></BODY></MSG></NOTIFICATION>'
    ).encode()
    assert ipg.line == f"IPG {len(expected)}" and ipg.payload == expected


def test_page_refusals(apart, accounts):
    alice, alice_h = online(apart, accounts, "Alice")
    no_mob, no_mob_h = online(apart, accounts, "NoMob")
    blocker, blocker_h = online(apart, accounts, "Blocker")
    blocker.command("PRP {t} MOB Y")
    blocker.command(f"ADD {{t}} BL {alice_h} x")
    old, old_h = online(apart, accounts, "Old", versions="MSNP5 MSNP4 CVR0")
    old.command("PRP {t} MOB Y")
    offline = accounts.create()
    for i, target in enumerate([no_mob_h, blocker_h, old_h, offline, "nobody-here@example.com"], start=20):
        alice.send(f"PAG {i} {target} {len(PAGE)}", PAGE)
        alice.expect(f"217 {i}")
    alice.send(f"PAG 30 a@b {len(PAGE)}", PAGE)
    alice.expect("201 30")
    alice.send(f"PAG 31 {no_mob_h} 5", b"hello")
    alice.expect("201 31")
    for target in (no_mob, blocker, old):
        assert target.fence() == []


def test_too_long_page_is_reported_back_with_407(server, accounts):
    alice, alice_h = online(server, accounts, "Alice")
    bob, bob_h = online(server, accounts, "Bob")
    bob.command("PRP {t} MOB Y")
    long_page = b'<TEXT xml:space="preserve">' + b"x" * 161 + b"</TEXT>"
    alice.send(f"PAG 12 {bob_h} {len(long_page)}", long_page)
    report = alice.recv()
    assert report.name == "IPG" and b'<NOTIFICATION id="12"' in report.payload
    assert b'<MSG pri="1" id="407">' in report.payload and b"<TEXT></TEXT>" in report.payload
    assert bob.fence() == []


def test_paging_too_fast_gets_800(server, accounts):
    alice, _ = online(server, accounts, "Alice")
    codes = []
    for i in range(12):
        alice.send(f"PAG {i + 40} nobody-{i}@example.com {len(PAGE)}", PAGE)
        codes.append(alice.recv().words[0])
    assert codes == ["217"] * 10 + ["800", "800"]


def test_msnp4_client_has_no_pag(server, accounts):
    c, _ = online(server, accounts, versions="MSNP4 CVR0")
    c.send(f"PAG 5 x@example.com {len(PAGE)}", PAGE)
    c.expect("200 5")


def test_snd_and_sdc_are_recorded_for_the_operator(server, accounts):
    c, me = online(server, accounts, "Inviter")
    friend = f"friend-{secrets.token_hex(3)}@example.org"
    t, lines = c.command(f"SND {{t}} {friend} 0x0409 MSMSGS MSMSGS")
    assert lines == [f"SND {t} OK"]
    body = b"Come and chat with me!"
    c.send(f"SDC 21 other-{friend} 0x0409 MSMSGS MSMSGS X X Inviter {len(body)}", body)
    c.expect("SDC 21 OK")
    t, lines = c.command("SND {t} not-an-address")
    assert lines == [f"201 {t}"]
    recorded = {(i.recipient, i.body) for i in accounts.store.list_invitations() if i.sender == me}
    assert recorded == {(friend, ""), (f"other-{friend}", "Come and chat with me!")}


def _listed(accounts, first, last, city="", state="", country="US") -> str:
    handle = accounts.create()
    accounts.store.set_directory(handle, first, last, city, state, country)
    return handle


def test_fnd_searches_the_opt_in_directory_and_sdc_invites_a_hit(apart, accounts):
    surname = f"Zed{secrets.token_hex(3)}"
    ann = _listed(accounts, "Ann", surname, "Seattle", "WA", "US")
    _listed(accounts, "Bo", surname, "", "", "GB")
    accounts.create(name=f"Unlisted {surname}")
    c, me = online(apart, accounts, "Searcher")
    t, lines = c.command(f"FND {{t}} fname=* lname={surname} city=* state=* country=US")
    assert lines == [f"FND {t} 1 1 fname=Ann lname={surname} city=Seattle state=WA country=US"]
    t, lines = c.command(f"FND {{t}} fname=ann lname={surname.lower()} city=Seattle state=wa country=us")
    assert lines[0].startswith(f"FND {t} 1 1 fname=Ann")
    t, lines = c.command(f"FND {{t}} fname=Nobody lname={surname} city=* state=* country=*")
    assert lines == [f"FND {t} 0 0"]
    t, lines = c.command(f"FND {{t}} fname=* lname={surname} city=* state=* country=*")
    assert len(lines) == 2 and all(l.startswith(f"FND {t} ") and " 2 fname=" in l for l in lines)
    ann_index = 1 + [l.split()[4] for l in lines].index("fname=Ann")
    c.send(f"SDC 60 {ann_index} 0x0409 MSMSGS MSMSGS X X Searcher 0")
    c.expect("SDC 60 OK")
    assert any(i.sender == me and i.recipient == ann for i in accounts.store.list_invitations())


@pytest.mark.parametrize("args", [
    "fname=* lname=* city=* state=* country=US",          # too wide
    "fname=Ann lname=Lee city=Paris state=* country=FR",  # city outside the US
    "fname=Ann lname=Lee",                                # fields missing
    "fname=Ann lname=Lee city=* state=* country=* x=1",   # unknown field
])
def test_fnd_bad_parameters_get_201(server, accounts, args):
    c, _ = online(server, accounts)
    t, lines = c.command(f"FND {{t}} {args}")
    assert lines == [f"201 {t}"]


def test_fnd_with_too_many_results_gets_301(server, accounts):
    surname = f"Many{secrets.token_hex(3)}"
    for i in range(51):
        _listed(accounts, f"P{i}", surname)
    c, _ = online(server, accounts)
    t, lines = c.command(f"FND {{t}} fname=* lname={surname} city=* state=* country=*")
    assert lines == [f"301 {t}"]
