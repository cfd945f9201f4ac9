"""Sign-up on the web side (``--signup open|invite|off``) over real sockets, on SQLite and
PostgreSQL: the form, its CSRF cookie, the ``signup-address`` limit, invite codes made by
``msnp6-admin invite create`` (run for real), and the new account logging in through the
dispatch server, unverified (``USR ... OK handle name 0``) until ``msnp6-admin user verify``.

Each test posts from a loopback address of its own (127.0.0.N), so the per-address limit of one
test does not spill into another's."""
from __future__ import annotations

import hashlib
import http.client
import itertools
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import attrs
import pytest
from sqlalchemy import update

from msnp6.store.models import invites
from msnp6.store.schema import open_database
from msnp6.testing import MsnpClient, ServerProcess, run_admin
from msnp6.webside.signup import BAD_INVITE, NOT_CREATED
from msnp6.wire.names import encode_name

_addresses = (f"127.0.{n // 200}.{n % 200 + 2}" for n in itertools.count(1))


def address() -> str:
    """A loopback address no other test of this module posts from."""
    return next(_addresses)


def handle() -> str:
    return f"new-{secrets.token_hex(4)}@example.com"


def _server(database, key_file, tmp_path_factory, name: str, args: list[str],
            env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    proc = ServerProcess(database.url, key_file, tmp_path_factory.mktemp(f"signup-{name}-{database.backend}"),
                         web=True, extra_args=args, env={"MSNP6_SIGNUP": "", **(env or {})})
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def closed_server(database, key_file, tmp_path_factory) -> Iterator[ServerProcess]:
    yield from _server(database, key_file, tmp_path_factory, "off", [])  # the default


@pytest.fixture(scope="module")
def open_server(database, key_file, tmp_path_factory) -> Iterator[ServerProcess]:
    yield from _server(database, key_file, tmp_path_factory, "open",
                       ["--signup", "open", "--limit", "signup-address=2/3600"])


@pytest.fixture(scope="module")
def invite_server(database, key_file, tmp_path_factory) -> Iterator[ServerProcess]:
    # Through the environment twin, as a container sets it.
    yield from _server(database, key_file, tmp_path_factory, "invite", ["--limit", "signup-address=100/3600"],
                       env={"MSNP6_SIGNUP": "invite"})


@attrs.frozen
class Answer:
    status: int
    body: str
    set_cookie: str | None


def fetch(server: ServerProcess, method: str, path: str, source: str, fields: dict[str, str] | None = None,
          cookie: str | None = None) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", server.ports["web"], timeout=10, source_address=(source, 0))
    headers = {"content-type": "application/x-www-form-urlencoded"} if fields is not None else {}
    if cookie:
        headers["cookie"] = cookie
    conn.request(method, path, body=urlencode(fields) if fields is not None else None, headers=headers)
    response = conn.getresponse()
    answer = Answer(response.status, response.read().decode("utf-8"), response.headers.get("set-cookie"))
    conn.close()
    return answer


@attrs.frozen
class Browser:
    """One browser at one address, holding the sign-up cookie its first GET of the form set."""

    server: ServerProcess
    source: str
    cookie: str
    csrf: str

    @classmethod
    def open(cls, server: ServerProcess, source: str | None = None) -> "Browser":
        source = source or address()
        page = fetch(server, "GET", "/signup", source)
        assert page.status == 200 and page.set_cookie is not None, page
        assert "HttpOnly" in page.set_cookie and "SameSite=strict" in page.set_cookie.replace("Strict", "strict")
        found = re.search(r'name="csrf" value="([^"]+)"', page.body)
        assert found is not None, page.body
        return cls(server, source, page.set_cookie.split(";", 1)[0], found.group(1))

    def post(self, account: str, password: str = "hunter2", again: str | None = None, name: str = "",
             invite: str | None = None, csrf: str | None = None, cookie: str | None = None) -> Answer:
        fields = {"csrf": self.csrf if csrf is None else csrf, "handle": account, "password": password,
                  "again": password if again is None else again, "name": name}
        if invite is not None:
            fields["invite"] = invite
        return fetch(self.server, "POST", "/signup", self.source, fields, self.cookie if cookie is None else cookie)


def exists(accounts, account: str) -> bool:
    return accounts.store.get_account(account) is not None


def usr_ok(server: ServerProcess, account: str, password: str) -> list[str]:
    """A login through the dispatch server (XFR to the notification server): the USR OK words."""
    with MsnpClient("127.0.0.1", server.ports["ds"]) as ds:
        ds.negotiate()
        t = ds.next_trid()
        ds.send(f"USR {t} MD5 I {account}")
        xfr = ds.recv().words
    assert xfr[:3] == ["XFR", str(t), "NS"], xfr
    host, port = xfr[3].split(":")
    with MsnpClient(host, int(port)) as ns:
        t, ok = ns.attempt(account, password)
        return ok.words


def invite_codes(database, key_file, *args: str) -> list[str]:
    made = run_admin(["invite", "create", *args], database.url, key_file)
    assert made.returncode == 0, made.stderr
    return made.stdout.split()


# -- off ---------------------------------------------------------------------------------------------


def test_sign_up_off_says_so_and_makes_nothing(closed_server, accounts):
    source = address()
    page = fetch(closed_server, "GET", "/signup", source)
    assert page.status == 200 and "Sign-up is closed on this network" in page.body and "<form" not in page.body
    assert 'href="/signup"' not in fetch(closed_server, "GET", "/", source).body
    account = handle()
    posted = fetch(closed_server, "POST", "/signup", source,
                   {"csrf": "x", "handle": account, "password": "pw", "again": "pw"}, "msnp6_signup=x")
    assert posted.status == 403 and "closed" in posted.body
    assert not exists(accounts, account)


# -- open --------------------------------------------------------------------------------------------


def test_an_open_sign_up_is_unverified_until_the_operator_verifies_it(open_server, database, key_file, accounts):
    assert 'href="/signup"' in fetch(open_server, "GET", "/", address()).body
    browser = Browser.open(open_server)
    assert 'name="invite"' not in fetch(open_server, "GET", "/signup", browser.source, cookie=browser.cookie).body
    account, password = handle(), "s3cret-pass"
    made = browser.post(account.upper(), password, name="Nina N.")
    assert made.status == 200, made.body
    assert "Account created" in made.body and password not in made.body
    stored = accounts.store.get_account(account)  # lower-cased, as every handle is
    assert stored is not None and not stored.verified and stored.friendly_name == "Nina N."

    words = usr_ok(open_server, account, password)
    assert words[2:] == ["OK", account, encode_name("Nina N."), "0"], words
    verified = run_admin(["user", "verify", account], database.url, key_file)
    assert verified.returncode == 0, verified.stderr
    assert usr_ok(open_server, account, password)[2:] == ["OK", account, encode_name("Nina N."), "1"]

    log = open_server.log()
    assert re.search(rf"audit: signup {re.escape(account)} from {re.escape(browser.source)}:\d+ \(open\)", log)
    assert password not in log


def test_an_empty_name_is_the_address(open_server, accounts):
    account = handle()
    assert Browser.open(open_server).post(account).status == 200
    assert accounts.store.get_account(account).friendly_name == account


def test_form_mistakes_show_the_form_again_without_the_password(open_server, accounts):
    browser = Browser.open(open_server)
    account = handle()
    differ = browser.post(account, "first-pass", again="other-pass", name="Olga")
    assert differ.status == 400 and "the two passwords differ" in differ.body
    assert f'value="{account}"' in differ.body and 'value="Olga"' in differ.body
    assert "first-pass" not in differ.body and "other-pass" not in differ.body
    assert 'name="csrf"' in differ.body
    for bad in ("not-an-address", "a@b", "x" * 130 + "@example.com"):
        refused = browser.post(bad)
        assert refused.status == 400 and "The e-mail address is not valid" in refused.body
    empty = browser.post(account, "")
    assert empty.status == 400 and "the password is empty" in empty.body
    control = browser.post(account, name="bad\x01name")
    assert control.status == 400 and "friendly name" in control.body
    assert not exists(accounts, account)
    # None of these reached the database, so none counted: two sign-ups still fit the limit.
    assert browser.post(account).status == 200


def test_a_taken_handle_gets_the_same_words_as_any_refusal(open_server, accounts):
    taken = accounts.create(password="original")
    before = accounts.store.get_account(taken)
    answer = Browser.open(open_server).post(taken, "attacker-pass")
    assert answer.status == 400 and NOT_CREATED in answer.body
    assert "exist" not in answer.body.lower() and "taken" not in answer.body.lower()
    assert accounts.store.get_account(taken) == before


def test_a_post_without_its_csrf_cookie_is_refused(open_server, accounts):
    browser = Browser.open(open_server)
    account = handle()
    for csrf, cookie in (("", browser.cookie), ("wrong" + browser.csrf[5:], browser.cookie),
                         (browser.csrf, "other=1"), (browser.csrf, "msnp6_signup=" + secrets.token_urlsafe(32))):
        refused = browser.post(account, csrf=csrf, cookie=cookie)
        assert refused.status == 403 and "nothing was created" in refused.body, (csrf, cookie)
    assert not exists(accounts, account)
    assert browser.post(account).status == 200


def test_the_address_limit_counts_every_attempt_that_reaches_the_database(open_server, accounts):
    browser = Browser.open(open_server)  # --limit signup-address=2/3600
    taken = accounts.create()
    assert browser.post(taken).status == 400  # refused, but counted: it could probe
    first = handle()
    assert browser.post(first).status == 200
    third = handle()
    over = browser.post(third)
    assert over.status == 429 and "Too many sign-up attempts" in over.body
    assert exists(accounts, first) and not exists(accounts, third)
    assert f"limit signup-address (2/3600) reached by {browser.source}" in open_server.log()
    # Another address has its own count.
    assert Browser.open(open_server).post(third).status == 200


# -- invite ------------------------------------------------------------------------------------------


def test_an_invite_code_is_needed_and_works_once(invite_server, database, key_file, accounts):
    browser = Browser.open(invite_server)
    assert 'name="invite"' in fetch(invite_server, "GET", "/signup", browser.source, cookie=browser.cookie).body
    assert 'href="/signup"' in fetch(invite_server, "GET", "/", browser.source).body
    account = handle()
    missing = browser.post(account)
    assert missing.status == 400 and "invite code is needed" in missing.body
    made_up = browser.post(account, invite=secrets.token_urlsafe(16))
    assert made_up.status == 403 and BAD_INVITE in made_up.body
    assert not exists(accounts, account)

    code, spare = invite_codes(database, key_file, "--count", "2", "--note", "for the e2e test")
    assert len(code) >= 16 and code != spare
    made = browser.post(account, invite=f" {code} ")
    assert made.status == 200, made.body
    assert not accounts.store.get_account(account).verified
    assert re.search(rf"audit: signup {re.escape(account)} from \S+ \(invite\)", invite_server.log())

    again = browser.post(handle(), invite=code)
    assert again.status == 403 and BAD_INVITE in again.body

    listed = run_admin(["invite", "list"], database.url, key_file)
    assert listed.returncode == 0, listed.stderr
    assert code not in listed.stdout and spare not in listed.stdout
    rows = {line.split("\t")[0]: line.split("\t") for line in listed.stdout.splitlines()}
    used = rows[hashlib.sha256(code.encode()).hexdigest()[:12]]
    assert used[4] == account and used[3] != "unused" and used[2] == "never" and used[5] == "for the e2e test"
    assert rows[hashlib.sha256(spare.encode()).hexdigest()[:12]][3:5] == ["unused", "-"]


def test_an_expired_invite_is_refused(invite_server, database, key_file, accounts):
    code, = invite_codes(database, key_file, "--expires-days", "1")
    listed = run_admin(["invite", "list"], database.url, key_file).stdout
    row = next(line.split("\t") for line in listed.splitlines()
               if line.startswith(hashlib.sha256(code.encode()).hexdigest()[:12]))
    assert row[2] != "never"
    engine = open_database(database.url)
    with engine.begin() as conn:  # a day has passed
        conn.execute(update(invites).where(invites.c.code_hash == hashlib.sha256(code.encode()).hexdigest())
                     .values(expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    engine.dispose()
    account = handle()
    answer = Browser.open(invite_server).post(account, invite=code)
    assert answer.status == 403 and BAD_INVITE in answer.body
    assert not exists(accounts, account)


def test_an_account_that_cannot_be_made_leaves_its_invite_unused(invite_server, database, key_file, accounts):
    code, = invite_codes(database, key_file)
    browser = Browser.open(invite_server)
    taken = accounts.create()
    assert browser.post(taken, invite=code).status == 400
    account = handle()
    assert browser.post(account, invite=code).status == 200
    assert exists(accounts, account)
