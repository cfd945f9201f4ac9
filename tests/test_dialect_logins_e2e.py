"""A login per dialect, MSNP2 to MSNP7, the way each era's client does it: through the dispatch
server to the notification server, over real TCP (SQLite and PostgreSQL)."""
from __future__ import annotations

import pytest

from msnp6.testing import MsnpClient, md5_hex

#: What each official client offers (versions.md 1), by the dialect it gets.
OFFERS = {
    2: "MSNP2 CVR0",                        # MSN Messenger 1.0
    3: "MSNP3 MSNP2 CVR0",                  # 2.0
    4: "MSNP4 MSNP3 CVR0",                  # 2.1 / 2.2
    5: "MSNP5 MSNP4 CVR0",                  # 3.0 / 3.5
    6: "MSNP6 MSNP5 MSNP4 CVR0",            # 3.6
    7: "MSNP7 MSNP6 MSNP5 MSNP4 CVR0",      # 4.5 - 4.7
}


def _negotiate(c: MsnpClient, offer: str) -> None:
    c.send(f"VER 1 {offer}")
    c.expect(f"VER 1 {offer}")  # every offered dialect is served: the whole list comes back
    c.send("INF 2")
    c.expect("INF 2 MD5")


@pytest.mark.parametrize("number", sorted(OFFERS))
def test_login_through_the_dispatch_server(server, accounts, number):
    offer, ns, ds = OFFERS[number], f"127.0.0.1:{server.ports['ns']}", f"127.0.0.1:{server.ports['ds']}"
    handle = accounts.create(name="Carol C.")
    with server.client("ds") as c:
        _negotiate(c, offer)
        c.send(f"USR 3 MD5 I {handle}")
        c.expect({2: f"XFR 3 NS {ns}", 7: f"XFR 3 NS {ns} 0 {ds}"}.get(number, f"XFR 3 NS {ns} 0"))
        c.expect_closed()

    with server.client() as c:
        c.auto_challenge = True  # MSNP6+ get a CHL about a second after the first CHG
        _negotiate(c, offer)
        c.send(f"USR 3 MD5 I {handle}")
        salt = c.recv().words[4]
        c.send(f"USR 4 MD5 S {md5_hex(salt + 'hunter2')}")
        c.expect(f"USR 4 OK {handle} Carol%20C." + (" 1" if number >= 6 else ""))
        profile = c.recv()
        assert profile.line.startswith("MSG Hotmail Hotmail ") and profile.payload is not None
        fields = profile.payload.split(b"\r\n\r\n")[0].split(b"\r\n")[2:]
        if number == 2:
            assert [f.split(b":")[0] for f in fields] == [b"LoginTime"]
        else:
            assert b"MSPAuth" in [f.split(b":")[0] for f in fields] and len(fields) == 18

        dump = [r.line for r in c.sync(0)]
        names = [line.split()[0] for line in dump]
        expected = ["SYN", "GTC", "BLP", *["PRP"] * (5 if number >= 5 else 0), *["LSG"] * (number >= 7),
                    "LST", "LST", "LST", "LST"]
        assert names == expected, dump

        c.send("CHG 6 NLN")
        c.expect("CHG 6 NLN")
        c.send("URL 7 INBOX")
        url = c.recv().words
        assert url[:3] == ["URL", "7", "/cgi-bin/HoTMaiL"] and len(url) == (4 if number == 2 else 5), url
        # Commands a dialect does not have are unknown to it (200), whatever a newer one does.
        for trid, line, since in ((8, "PRP 8 PHH 555", 5), (9, "ADG 9 Friends 0", 7)):
            c.send(line)
            reply = c.recv()
            assert (reply.line == f"200 {trid}") is (number < since), reply.line
        c.send("OUT")
        c.expect("OUT")
        c.expect_closed()
