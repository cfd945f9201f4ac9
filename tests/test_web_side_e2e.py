"""The web side (``--web``) over real sockets: a logged-in client's ``URL PROFILE`` reply, the
md5auth.srf post it builds (notification.md 4.16), the profile page behind the web session,
its CSRF guard, and the member directory FND then searches. Every refused post is a 403 that
changes nothing and counts toward the login limits."""
from __future__ import annotations

import hashlib
import html
import http.client
import re
import secrets
import time
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

import attrs
import pytest

from msnp6.notification.services import URL_SERVICES
from msnp6.testing import MsnpClient, ServerProcess, TwoNodeServer, free_port, run_admin
from msnp6.webside.md5auth import local_target
from msnp6.webside.pages import ORIGINAL
from msnp6.webside.site import PAGES

#: Few failures lock an account out, so the lock-out test stays short; the address limit is
#: high, since every test posts from 127.0.0.1.
ACCOUNT_LIMIT = 3


@pytest.fixture(scope="module")
def web_server(database, key_file, tmp_path_factory) -> Iterator[ServerProcess]:
    # The admin port too: msnp6-admin mail notify goes through it.
    proc = ServerProcess(database.url, key_file, tmp_path_factory.mktemp(f"web-{database.backend}"), web=True,
                         admin=True, extra_args=["--limit", f"login-account={ACCOUNT_LIMIT}/600",
                                     "--limit", "login-address=1000/600"])
    proc.start()
    yield proc
    proc.stop()


@attrs.frozen
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str

    def cookie(self) -> str | None:
        value = self.headers.get("set-cookie")
        return value.split(";", 1)[0] if value else None


def request(port: int, method: str, path: str, fields: dict[str, str] | None = None,
            cookie: str | None = None) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/x-www-form-urlencoded"} if fields is not None else {}
    if cookie:
        headers["cookie"] = cookie
    conn.request(method, path, body=urlencode(fields) if fields is not None else None, headers=headers)
    response = conn.getresponse()
    answer = Answer(response.status, response.headers, response.read().decode("utf-8"))
    conn.close()
    return answer


@attrs.frozen
class Online:
    client: MsnpClient
    handle: str
    password: str
    mspauth: str
    login_time: int


def online(server: ServerProcess, accounts, password: str = "hunter2", mail: bool = False) -> Online:
    """A new account, logged in and online; ``mail``: with mail notices on (the initial one read)."""
    handle = accounts.create(password=password)
    if mail:
        accounts.store.set_email_enabled(handle, True)
    c = server.client()
    c.auto_challenge = True
    profile = c.login(handle, password)
    assert profile.payload is not None
    if mail:
        assert b"Inbox-Unread: 0\r\n" in c.recv().payload
    headers = dict(re.findall(r"^([\w-]+): (.*?)\r$", profile.payload.decode("utf-8"), re.M))
    c.sync(0)
    c.command("CHG {t} NLN")
    return Online(c, handle, password, headers["MSPAuth"], int(headers["LoginTime"]))


def url_reply(user: Online, service: str = "PROFILE", param: str | None = "1033") -> tuple[str, str, str]:
    t, lines = user.client.command(f"URL {{t}} {service}" + (f" {param}" if param else ""))
    words = lines[0].split()
    assert words[:2] == ["URL", str(t)], lines
    return words[2], words[3], words[4]


def client_form(user: Online, redirect: str, psid: str, sl: int | None = None, **override: str) -> dict[str, str]:
    """The form the client writes for a URL reply (notification.md 4.16)."""
    sl = int(time.time()) - user.login_time if sl is None else sl
    form = {
        "mode": "ttl", "login": user.handle, "username": user.handle, "sid": "507", "kv": "",
        "id": psid, "sl": str(sl), ("rru" if redirect.startswith("/") else "ru"): redirect,
        "auth": user.mspauth, "creds": hashlib.md5(f"{user.mspauth}{sl}{user.password}".encode()).hexdigest(),
        "svc": "mail", "js": "yes",
    }
    form.update(override)
    return form


def post_login(server: ServerProcess, login_url: str, form: dict[str, str]) -> Answer:
    parts = urlsplit(login_url)
    assert parts.port == server.ports["web"]
    return request(server.ports["web"], "POST", f"{parts.path}?{parts.query}", form)


def sign_in(server: ServerProcess, user: Online, service: str = "PROFILE") -> tuple[str, Answer]:
    """The client's way in: URL PROFILE (or ``service``), the post, the redirect followed with the cookie."""
    redirect, login_url, psid = url_reply(user, service)
    answer = post_login(server, login_url, client_form(user, redirect, psid))
    assert answer.status == 302, answer
    cookie = answer.cookie()
    assert cookie is not None
    page = request(server.ports["web"], "GET", answer.headers["location"], cookie=cookie)
    assert page.status == 200
    return cookie, page


def with_csrf(fields: dict[str, str], token: str | None) -> dict[str, str]:
    """``fields`` with its CSRF token replaced by ``token`` (None: left out)."""
    fields = {k: v for k, v in fields.items() if k != "csrf"}
    if token is not None:
        fields["csrf"] = token
    return fields


def sign_in_on(web: ServerProcess, user: Online, base: str) -> tuple[Answer, tuple[str, str, str]]:
    """``user``'s URL reply (from whichever node holds the session) points at ``web``'s base;
    its client post signs a browser in there. The page it lands on, and the URL reply."""
    redirect, login_url, psid = url_reply(user)
    assert login_url == f"{base}ppsecure/md5auth.srf?lc=1033"
    answer = post_login(web, login_url, client_form(user, redirect, psid))
    assert answer.status == 302, answer.body
    page = request(web.ports["web"], "GET", answer.headers["location"], cookie=answer.cookie())
    assert f"Signed in as {user.handle}" in page.body
    return page, (redirect, login_url, psid)


def csrf_of(page: Answer) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.body)
    assert found is not None, page.body
    return found.group(1)


def fnd(client: MsnpClient, last: str) -> list[str]:
    _, lines = client.command(f"FND {{t}} fname=* lname={last} city=* state=* country=US")
    return lines


def audit_reasons(server: ServerProcess, handle: str) -> list[str]:
    return re.findall(rf"audit: login failed {re.escape(handle)} from \S+: 403 (\w+)", server.log())


# -- the client's way in -----------------------------------------------------------------------


def test_url_replies_point_at_the_web_listener(web_server, accounts):
    user = online(web_server, accounts)
    base = f"http://127.0.0.1:{web_server.ports['web']}"
    assert url_reply(user) == (f"{base}/profile?lc=1033", f"{base}/ppsecure/md5auth.srf?lc=1033", "507")
    assert url_reply(user, "INBOX", None) == ("/cgi-bin/HoTMaiL", f"{base}/ppsecure/md5auth.srf?lc=1033", "2")


def test_signed_in_profile_edit_is_found_by_fnd(web_server, accounts):
    user = online(web_server, accounts)
    redirect, login_url, psid = url_reply(user)
    answer = post_login(web_server, login_url, client_form(user, redirect, psid))
    assert answer.status == 302
    assert answer.headers["location"] == "/profile?lc=1033"
    set_cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie and "secure" not in set_cookie
    assert f"audit: web login ok {user.handle} from 127.0.0.1:" in web_server.log()

    page = request(web_server.ports["web"], "GET", answer.headers["location"], cookie=answer.cookie())
    assert page.status == 200 and page.body.startswith("<!DOCTYPE html>")
    assert f"Signed in as {user.handle}" in page.body
    surname = f"Web{secrets.token_hex(4)}"
    saved = request(web_server.ports["web"], "POST", "/profile", {
        "csrf": csrf_of(page), "first": "Ann", "last": surname, "city": "Seattle", "state": "wa",
        "country": "us", "listed": "1"}, cookie=answer.cookie())
    assert saved.status == 303 and saved.headers["location"] == "/profile?saved=1"

    other = online(web_server, accounts)
    assert fnd(other.client, surname)[0].endswith(f"1 1 fname=Ann lname={surname} city=Seattle state=WA country=US")
    again = request(web_server.ports["web"], "GET", "/profile", cookie=answer.cookie())
    assert f'value="{surname}"' in again.body and "checked" in again.body

    # Unlisting through the same form takes the entry out of the directory.
    request(web_server.ports["web"], "POST", "/profile", {"csrf": csrf_of(again), "first": "Ann", "last": surname},
            cookie=answer.cookie())
    assert fnd(other.client, surname)[0].endswith(" 0 0")


@pytest.mark.parametrize("service, param, path, title", [
    ("COMPOSE", "bob@example.com", "/cgi-bin/compose?mailto=1&to=bob@example.com", "No mail to write from"),
    ("COMPOSE", None, "/cgi-bin/compose", "No mail to write from"),
    ("MESSAGE", "1", "/cgi-bin/getmsg?msg=1", "No message to read"),
])
def test_compose_and_message_say_there_is_no_mailbox(web_server, accounts, service, param, path, title):
    user = online(web_server, accounts, mail=True)
    redirect, login_url, psid = url_reply(user, service, param)
    assert (redirect, psid) == (path, "2")
    answer = post_login(web_server, login_url, client_form(user, redirect, psid))
    assert answer.status == 302 and answer.headers["location"] == path
    page = request(web_server.ports["web"], "GET", path, cookie=answer.cookie())
    assert page.status == 200 and f"<h1>{title}</h1>" in page.body and f"Signed in as {user.handle}" in page.body
    assert "This network has no mailbox" in page.body and ORIGINAL[service] in page.body
    assert unread_of(page) == (0, 0) and '<a href="/cgi-bin/HoTMaiL">' in page.body and "<form" not in page.body
    assert ("To write to bob@example.com" in page.body) == (param == "bob@example.com")
    # Nothing to post here; signed out, the page is the one every account page shows.
    assert request(web_server.ports["web"], "POST", path, {}, cookie=answer.cookie()).status == 405
    signed_out = request(web_server.ports["web"], "GET", path)
    assert signed_out.status == 200 and "Not signed in" in signed_out.body and "Unread" not in signed_out.body


def test_compose_shows_the_counts_the_operator_s_notices_raised(web_server, accounts, database, key_file):
    user = online(web_server, accounts, mail=True)
    mail_notify(web_server, database, key_file, user)
    cookie, page = sign_in(web_server, user, "COMPOSE")
    assert unread_of(page) == (1, 0)
    inbox = request(web_server.ports["web"], "GET", "/cgi-bin/HoTMaiL", cookie=cookie)
    request(web_server.ports["web"], "POST", "/cgi-bin/HoTMaiL", {"csrf": csrf_of(inbox)}, cookie=cookie)
    assert unread_of(request(web_server.ports["web"], "GET", "/cgi-bin/getmsg?msg=1", cookie=cookie)) == (0, 0)
    user.client.send("OUT")
    # Once the Messenger session is gone, so is the page (as the server handles OUT).
    wait_for(lambda: "Not signed in" in request(web_server.ports["web"], "GET", "/cgi-bin/compose",
                                                cookie=cookie).body)


def test_every_url_service_has_a_page(web_server):
    for name, service in URL_SERVICES.items():
        page = request(web_server.ports["web"], "GET", "/" + service.path.lstrip("/"))
        assert page.status == 200, name
        if name in PAGES:
            assert "Not signed in" in page.body
        else:
            assert html.escape(ORIGINAL[name]) in page.body and "does not offer it yet" in page.body, name


def test_no_redirect_to_another_host(web_server, accounts):
    user = online(web_server, accounts)
    _, login_url, psid = url_reply(user)
    answer = post_login(web_server, login_url, client_form(user, "http://evil.example/steal", psid))
    assert answer.status == 302 and answer.headers["location"] == "/profile"


@pytest.mark.parametrize("target,expected", [
    ("/profile?lc=1033", "/profile?lc=1033"),
    ("http://web.example:8080/profile?lc=1", "/profile?lc=1"),
    ("http://web.example:8080//evil.example/", "/profile"),
    ("https://web.example:8080/profile", "/profile"),
    ("http://evil.example/profile", "/profile"),
    ("//evil.example/x", "/profile"),
    ("/\\evil.example", "/profile"),
    ("/a\r\nSet-Cookie: x=1", "/profile"),
    ("javascript:alert(1)", "/profile"),
    ("", "/profile"),
])
def test_local_target(target, expected):
    assert local_target(target, "http://web.example:8080/") == expected


# -- refused posts -----------------------------------------------------------------------------


def _forged(user: Online, redirect: str, psid: str) -> dict[str, str]:
    return client_form(user, redirect, psid, auth=secrets.token_hex(16) + "$$")


def _stale(user: Online, redirect: str, psid: str) -> dict[str, str]:
    return client_form(user, redirect, psid, sl=int(time.time()) - user.login_time + 3600)


@pytest.mark.parametrize("make,reason", [
    (lambda u, r, p: client_form(u, r, p, creds="0" * 32), "web_bad_creds"),
    (lambda u, r, p: client_form(attrs.evolve(u, password="wrong"), r, p), "web_bad_creds"),
    (_forged, "web_bad_auth"),
    (_stale, "web_stale_sl"),
    (lambda u, r, p: client_form(u, r, p, sl="-5"), "web_bad_sl"),
])
def test_a_wrong_post_is_refused(web_server, accounts, make, reason):
    user = online(web_server, accounts)
    redirect, login_url, psid = url_reply(user)
    answer = post_login(web_server, login_url, make(user, redirect, psid))
    assert answer.status == 403 and answer.cookie() is None and "refused" in answer.body
    assert audit_reasons(web_server, user.handle) == [reason]


def test_kopete_s_form_with_the_short_login_signs_in_by_username(web_server, accounts):
    """Kopete puts the part before the ``@`` in ``login`` and the whole handle in ``username``."""
    user = online(web_server, accounts)
    redirect, login_url, psid = url_reply(user)
    answer = post_login(web_server, login_url, client_form(user, redirect, psid, login=user.handle.split("@")[0]))
    assert answer.status == 302 and answer.cookie() is not None


def test_a_replayed_post_is_refused(web_server, accounts):
    user = online(web_server, accounts)
    redirect, login_url, psid = url_reply(user)
    form = client_form(user, redirect, psid)
    assert post_login(web_server, login_url, form).status == 302
    again = post_login(web_server, login_url, form)
    assert again.status == 403 and again.cookie() is None
    assert audit_reasons(web_server, user.handle) == ["web_replay"]


def test_a_post_for_someone_elses_session_is_refused(web_server, accounts):
    user, other = online(web_server, accounts), online(web_server, accounts)
    redirect, login_url, psid = url_reply(user)
    # The other user's real MSPAuth, with creds made from it and the right password: still not
    # this handle's session.
    form = client_form(attrs.evolve(other, handle=user.handle, password=user.password), redirect, psid)
    assert post_login(web_server, login_url, form).status == 403
    assert audit_reasons(web_server, user.handle) == ["web_bad_auth"]


def test_failures_lock_the_account_out(web_server, accounts):
    user = online(web_server, accounts)
    redirect, login_url, psid = url_reply(user)
    for _ in range(ACCOUNT_LIMIT):
        assert post_login(web_server, login_url, client_form(user, redirect, psid, creds="f" * 32)).status == 403
    # Now even the right post is refused, and so is a protocol login with the right password.
    assert post_login(web_server, login_url, client_form(user, redirect, psid)).status == 403
    assert audit_reasons(web_server, user.handle) == ["web_bad_creds"] * ACCOUNT_LIMIT + ["locked_out"]
    c = web_server.client()
    _, answer = c.attempt(user.handle, user.password)
    assert answer.words[0] == "911"


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_profile_post_without_the_csrf_token_changes_nothing(web_server, accounts, token):
    user = online(web_server, accounts)
    cookie, page = sign_in(web_server, user)
    surname = f"Csrf{secrets.token_hex(4)}"
    fields = {"first": "Bo", "last": surname, "country": "US", "listed": "1"}
    if token is not None:
        fields["csrf"] = token
    assert request(web_server.ports["web"], "POST", "/profile", fields, cookie=cookie).status == 403
    # Nor does a right token without the session cookie.
    fields["csrf"] = csrf_of(page)
    assert request(web_server.ports["web"], "POST", "/profile", fields).status == 403
    assert fnd(user.client, surname)[0].endswith(" 0 0")


def test_the_web_session_ends_with_the_messenger_session(web_server, accounts):
    user = online(web_server, accounts)
    cookie, page = sign_in(web_server, user)
    user.client.send("OUT")
    watcher = online(web_server, accounts)
    surname = f"Gone{secrets.token_hex(4)}"
    fields = {"csrf": csrf_of(page), "first": "Cy", "last": surname, "country": "US", "listed": "1"}
    # The session's record leaves the directory as the server handles OUT: wait for the page to say so.
    wait_for(lambda: "Not signed in" in request(web_server.ports["web"], "GET", "/profile", cookie=cookie).body)
    assert request(web_server.ports["web"], "POST", "/profile", fields, cookie=cookie).status == 403
    assert fnd(watcher.client, surname)[0].endswith(" 0 0")


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- a cluster: the web side in another process than the session ---------------------------------


def test_the_web_side_signs_in_a_session_held_by_another_process(database, key_file, tmp_path, redis_server,
                                                                 accounts):
    if database.backend != "postgresql":
        pytest.skip("the cluster runs on PostgreSQL (its processes share the database)")
    common = ["--bus", f"redis://127.0.0.1:{redis_server.port}/7", "--node-ttl", "3"]
    web = ServerProcess(database.url, key_file, tmp_path / "web", [*common, "--roles", "web", "--node", "web"],
                        services=(), web=True)
    base = f"http://127.0.0.1:{web.ports['web']}/"
    node = ServerProcess(database.url, key_file, tmp_path / "a",
                         [*common, "--roles", "ns,sb", "--node", "a", "--web-base-url", base], services=("ns", "sb"))
    web.start()
    try:
        node.start()
        try:
            user = online(node, accounts)
            _, (redirect, login_url, psid) = sign_in_on(web, user, base)
            # The session's MSPAuth is one thing; a made-up one is still refused there.
            assert post_login(web, login_url, _forged(user, redirect, psid)).status == 403
        finally:
            node.stop()
    finally:
        web.stop()


def test_both_nodes_of_a_process_point_at_its_web_listener(database, key_file, tmp_path, accounts):
    proc = TwoNodeServer(database.url, key_file, tmp_path, web=True)
    proc.start()
    try:
        on_a, on_b = online(proc, accounts), online(proc, accounts)
        for user in (on_a, on_b):
            redirect, login_url, psid = url_reply(user)
            assert login_url == f"http://127.0.0.1:{proc.ports['web']}/ppsecure/md5auth.srf?lc=1033"
            assert post_login(proc, login_url, client_form(user, redirect, psid)).status == 302
    finally:
        proc.stop()


def test_the_web_listener_from_the_environment(database, key_file, tmp_path, accounts):
    port = free_port()
    proc = ServerProcess(database.url, key_file, tmp_path, env={"MSNP6_WEB": f"tcp:{port}:interface=127.0.0.1"})
    proc.start()
    try:
        user = online(proc, accounts)
        _, login_url, _ = url_reply(user)
        assert login_url == f"http://127.0.0.1:{port}/ppsecure/md5auth.srf?lc=1033"
        assert request(port, "GET", "/profile").status == 200
    finally:
        proc.stop()


# -- the account pages: phone numbers and paging (MOBILE, CHGMOB) -------------------------------


def add_to_fl(user: Online, contact: Online) -> list[str]:
    """``user`` puts ``contact`` on FL (``contact`` allows everyone by default): the lines after the reply."""
    t, lines = user.client.command(f"ADD {{t}} FL {contact.handle} {contact.handle}")
    assert lines[0].startswith(f"ADD {t} FL "), lines
    return lines[1:] + user.client.fence()


def phone_form(page: Answer, **values: str) -> dict[str, str]:
    return {"csrf": csrf_of(page), "phh": "", "phw": "", "phm": "", **values}


def test_the_phone_page_goes_through_prp_s_write_path(web_server, accounts):
    owner = online(web_server, accounts)
    watcher = online(web_server, accounts)
    add_to_fl(watcher, owner)
    owner.client.fence()  # its ADD 0 RL
    cookie, page = sign_in(web_server, owner, "CHGMOB")
    assert "Your phone numbers and paging" in page.body and 'value=""' in page.body

    saved = request(web_server.ports["web"], "POST", "/mobile/settings", phone_form(page, phh="555 0100"),
                    cookie=cookie)
    assert saved.status == 303 and saved.headers["location"] == "/mobile/settings?saved=1"
    # The watcher hears of it as of a PRP: a BPR at its own next list version (ADD FL made it 1).
    bpr = watcher.client.recv_until(lambda r: r.line.startswith("BPR "))
    assert [r.line for r in bpr] == [f"BPR 2 {owner.handle} PHH 555%200100"]
    assert watcher.client.fence() == []  # only the changed property moved
    again = request(web_server.ports["web"], "GET", saved.headers["location"], cookie=cookie)
    assert 'value="555 0100"' in again.body and "Saved." in again.body

    # The owner's online session follows (the protocol has no line for it): a new watcher's
    # ADD FL shows the new number, read from that session's record.
    newcomer = online(web_server, accounts)
    shown = [line for line in add_to_fl(newcomer, owner) if line.startswith("BPR ")]
    assert f"BPR 1 {owner.handle} PHH 555%200100" in shown, shown

    # Saving the same values again changes nothing; clearing the number and allowing pages does.
    page = request(web_server.ports["web"], "GET", "/mobile/settings", cookie=cookie)
    request(web_server.ports["web"], "POST", "/mobile/settings", phone_form(page, mob="Y"), cookie=cookie)
    lines = [r.line for r in watcher.client.recv_until(lambda r: r.line.startswith("BPR ") and " MOB " in r.line)]
    assert lines == [f"BPR 3 {owner.handle} PHH", f"BPR 4 {owner.handle} MOB Y"]

    # And the next login's SYN dump carries what the page saved.
    owner.client.close()
    again_online = web_server.client()
    again_online.login(owner.handle, owner.password)
    dump = [r.line for r in again_online.sync(0)]
    assert any(line.startswith("PRP ") and line.endswith(" PHH") for line in dump), dump
    assert any(line.startswith("PRP ") and line.endswith(" MOB Y") for line in dump), dump
    again_online.close()


@pytest.mark.parametrize("value", ["5" * 96, "%" * 32, "555\t0100"])
def test_the_phone_page_refuses_what_prp_refuses(web_server, accounts, value):
    owner = online(web_server, accounts)
    cookie, page = sign_in(web_server, owner, "CHGMOB")
    refused = request(web_server.ports["web"], "POST", "/mobile/settings", phone_form(page, phm=value), cookie=cookie)
    assert refused.status == 400
    assert 'value=""' in request(web_server.ports["web"], "GET", "/mobile/settings", cookie=cookie).body


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_phone_post_without_the_csrf_token_changes_nothing(web_server, accounts, token):
    owner = online(web_server, accounts)
    cookie, page = sign_in(web_server, owner, "CHGMOB")
    fields = with_csrf(phone_form(page, phh="555 0100", mob="Y"), token)
    assert request(web_server.ports["web"], "POST", "/mobile/settings", fields, cookie=cookie).status == 403
    fields["csrf"] = csrf_of(page)  # nor a right token without the session cookie
    assert request(web_server.ports["web"], "POST", "/mobile/settings", fields).status == 403
    after = request(web_server.ports["web"], "GET", "/mobile/settings", cookie=cookie).body
    assert 'value="555 0100"' not in after and "checked" not in after


# -- the account pages: the password ------------------------------------------------------------


def password_form(page: Answer, old: str, new: str, again: str | None = None) -> dict[str, str]:
    return {"csrf": csrf_of(page), "old": old, "new": new, "again": new if again is None else again}


def login_code(server: ServerProcess, handle: str, password: str) -> str:
    """The first word of the server's answer to a protocol login with ``password``."""
    with server.client() as c:
        _, answer = c.attempt(handle, password)
        return answer.line.split()[0]


def test_the_password_page_changes_the_login_password(web_server, accounts):
    user = online(web_server, accounts)
    cookie, page = sign_in(web_server, user, "PASSWORD")
    assert "Change your password" in page.body and 'type="password"' in page.body
    saved = request(web_server.ports["web"], "POST", "/password", password_form(page, user.password, "n3w pass"),
                    cookie=cookie)
    assert saved.status == 303 and saved.headers["location"] == "/password?saved=1"
    assert f"audit: password changed {user.handle} from 127.0.0.1:" in web_server.log()
    assert "n3w pass" not in web_server.log()
    assert login_code(web_server, user.handle, "n3w pass") == "USR"
    assert login_code(web_server, user.handle, user.password) == "911"


def test_a_wrong_old_password_is_a_failed_sign_in(web_server, accounts):
    user = online(web_server, accounts)
    cookie, page = sign_in(web_server, user, "PASSWORD")
    refused = request(web_server.ports["web"], "POST", "/password", password_form(page, "guess", "n3w pass"),
                      cookie=cookie)
    assert refused.status == 403 and "current password is wrong" in refused.body
    assert audit_reasons(web_server, user.handle) == ["web_wrong_password"]
    # Counted toward the account's login limit: with it used up, even the right password waits,
    # on the page and at a protocol login alike.
    for _ in range(ACCOUNT_LIMIT - 1):
        request(web_server.ports["web"], "POST", "/password", password_form(page, "guess", "n3w pass"), cookie=cookie)
    locked = request(web_server.ports["web"], "POST", "/password", password_form(page, user.password, "n3w pass"),
                     cookie=cookie)
    assert locked.status == 403 and "Too many wrong passwords" in locked.body
    assert audit_reasons(web_server, user.handle) == ["web_wrong_password"] * ACCOUNT_LIMIT + ["locked_out"]
    assert login_code(web_server, user.handle, user.password) != "USR"
    assert login_code(web_server, user.handle, "n3w pass") != "USR"


@pytest.mark.parametrize(("new", "again"), [("n3w pass", "n3w pas"), ("", ""), ("x" * 129, None), ("a\tb", None)])
def test_the_password_page_keeps_admin_s_rules(web_server, accounts, new, again):
    user = online(web_server, accounts)
    cookie, page = sign_in(web_server, user, "PASSWORD")
    refused = request(web_server.ports["web"], "POST", "/password", password_form(page, user.password, new, again),
                      cookie=cookie)
    assert refused.status == 400
    assert login_code(web_server, user.handle, user.password) == "USR"


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_password_post_without_the_csrf_token_changes_nothing(web_server, accounts, token):
    user = online(web_server, accounts)
    cookie, page = sign_in(web_server, user, "PASSWORD")
    fields = with_csrf(password_form(page, user.password, "n3w pass"), token)
    assert request(web_server.ports["web"], "POST", "/password", fields, cookie=cookie).status == 403
    fields["csrf"] = csrf_of(page)  # nor a right token without the session cookie
    assert request(web_server.ports["web"], "POST", "/password", fields).status == 403
    assert login_code(web_server, user.handle, "n3w pass") == "911"


# -- the account pages: the unread mail counts (INBOX, FOLDERS) ----------------------------------


def mail_notify(server: ServerProcess, database, key_file, user: Online) -> None:
    """One operator's mail notice for ``user``, and the new-mail MSG it brings their session."""
    r = run_admin(["mail", "notify", user.handle, "--from", "Bob", "--from-addr", "bob@example.com", "--subject", "Hi",
                   "--admin-url", f"http://127.0.0.1:{server.ports['admin']}",
                   "--admin-token-file", str(server.admin_token_file)], database.url, key_file)
    assert r.returncode == 0, r.stderr
    notice = user.client.recv_until(lambda reply: reply.line.startswith("MSG Hotmail"))[-1]
    assert b"text/x-msmsgsemailnotification" in (notice.payload or b"")


def unread_of(page: Answer) -> tuple[int, int]:
    found = re.search(r"Unread in the inbox: (\d+)</li>\n<li>Unread in other folders: (\d+)<", page.body)
    assert found is not None, page.body
    return int(found.group(1)), int(found.group(2))


def test_the_mailbox_page_shows_the_counts_and_marks_them_read(web_server, accounts, database, key_file):
    user = online(web_server, accounts, mail=True)
    mail_notify(web_server, database, key_file, user)
    cookie, page = sign_in(web_server, user, "INBOX")
    assert unread_of(page) == (1, 0)
    assert unread_of(request(web_server.ports["web"], "GET", "/cgi-bin/folders", cookie=cookie)) == (1, 0)

    cleared = request(web_server.ports["web"], "POST", "/cgi-bin/HoTMaiL", {"csrf": csrf_of(page)}, cookie=cookie)
    assert cleared.status == 303 and cleared.headers["location"] == "/cgi-bin/HoTMaiL?cleared=1"
    after = request(web_server.ports["web"], "GET", cleared.headers["location"], cookie=cookie)
    assert unread_of(after) == (0, 0) and "Marked as read." in after.body
    # The protocol has no notice for a count that went down (the active-mail notice is
    # unconfirmed for MSNP6): the session hears nothing, and the next login shows 0.
    assert user.client.fence() == []
    user.client.close()
    with web_server.client() as again:
        again.login(user.handle, user.password)
        assert b"Inbox-Unread: 0\r\nFolders-Unread: 0\r\n" in (again.recv().payload or b"")


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_mailbox_post_without_the_csrf_token_changes_nothing(web_server, accounts, database, key_file, token):
    user = online(web_server, accounts, mail=True)
    mail_notify(web_server, database, key_file, user)
    cookie, page = sign_in(web_server, user, "INBOX")
    fields = {} if token is None else {"csrf": token}
    assert request(web_server.ports["web"], "POST", "/cgi-bin/HoTMaiL", fields, cookie=cookie).status == 403
    assert request(web_server.ports["web"], "POST", "/cgi-bin/HoTMaiL", {"csrf": csrf_of(page)}).status == 403
    assert unread_of(request(web_server.ports["web"], "GET", "/cgi-bin/HoTMaiL", cookie=cookie)) == (1, 0)
