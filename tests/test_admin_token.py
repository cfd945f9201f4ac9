"""The admin port's token over real sockets: the state-changing endpoints refuse requests without
it, with a wrong one, from another origin or with a form body; /mail answers the same for
unknown accounts; msnp6-admin finds and sends the token and says clearly when it is refused."""
from __future__ import annotations

import json
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Accounts
from twisted.internet.task import Clock

from msnp6.auth import CredentialKey
from msnp6.store.schema import open_database
from msnp6.store.store import StoreCore
from msnp6.testing import ServerProcess, free_port, run_admin


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[tuple[ServerProcess, Accounts]]:
    folder = tmp_path_factory.mktemp("admin-token")
    url = f"sqlite:///{folder / 'db.sqlite3'}"
    key_file = folder / "key" / "credential.key"
    key_file.parent.mkdir()
    accounts = Accounts(StoreCore(open_database(url)), CredentialKey.load(key_file, create=True))
    proc = ServerProcess(url, key_file, folder / "run", admin=True)
    proc.start()
    yield proc, accounts
    proc.stop()


@pytest.fixture
def server(setup) -> ServerProcess:
    return setup[0]


@pytest.fixture
def accounts(setup) -> Accounts:
    return setup[1]


def post(server: ServerProcess, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
         token: str | None = "server") -> tuple[int, str]:
    """(status, body) of a POST on the admin port (no body and no type when ``body`` is empty);
    ``token`` "server": the server's own."""
    sent = dict(headers or {})
    if token == "server":
        token = server.admin_token
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://127.0.0.1:{server.ports['admin']}{path}", data=body or None,
                                     headers=sent, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def mail(handle: str) -> bytes:
    return json.dumps({"handle": handle, "from_name": "Hotmail Staff", "from_addr": "staff@example.com",
                       "subject": "Verify your password"}).encode()


JSON = {"Content-Type": "application/json"}


def test_a_cross_site_form_post_changes_nothing(server, accounts):
    """What a hostile page in the operator's browser can send: a form, no Authorization header."""
    handle = accounts.create()
    form = f"handle={handle}&from_name=Hotmail+Staff&from_addr=staff%40example.com&subject=Verify".encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"}
    status, body = post(server, "/mail", form, headers, token=None)
    assert (status, body) == (401, "the admin token is required (Authorization: Bearer ...)\n")
    assert post(server, f"/accounts/{handle}/unverify", b"", headers, token=None)[0] == 401
    account = accounts.store.get_account(handle)
    assert account.inbox_unread == 0 and account.verified


def test_no_token_and_a_wrong_token_get_401(server, accounts):
    handle = accounts.create()
    for token in (None, "", "x" * 40, f"{server.admin_token}x", server.admin_token[:-1]):
        status, body = post(server, "/mail", mail(handle), JSON, token=token)
        assert status == 401, (token, status, body)
        status, _ = post(server, f"/accounts/{handle}/delete", b"", token=token)
        assert status == 401
    assert post(server, "/mail", mail(handle), {**JSON, "Authorization": f"Basic {server.admin_token}"},
                token=None)[0] == 401
    account = accounts.store.get_account(handle)
    assert account is not None and account.inbox_unread == 0


def test_another_origin_or_a_form_body_is_refused_even_with_the_token(server, accounts):
    handle = accounts.create()
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Origin": f"http://127.0.0.1:{server.ports['admin'] + 1}"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
        status, body = post(server, "/mail", mail(handle), {**JSON, **headers})
        assert (status, body) == (403, "cross-origin requests are refused\n"), headers
    multipart = (f'--x\r\nContent-Disposition: form-data; name="handle"\r\n\r\n{handle}\r\n--x--\r\n').encode()
    for content_type, body in (("application/x-www-form-urlencoded", f"handle={handle}".encode()),
                               ("multipart/form-data; boundary=x", multipart),
                               ("text/plain;charset=UTF-8", mail(handle)),
                               ("application/octet-stream", mail(handle))):
        status, _ = post(server, "/mail", body, {"Content-Type": content_type})
        assert status == 415, content_type
    assert post(server, "/mail", mail(handle))[0] == 415  # a body without a type
    assert accounts.store.get_account(handle).inbox_unread == 0
    # The same request from the port's own origin, as JSON, goes through.
    own = {"Origin": f"http://127.0.0.1:{server.ports['admin']}", "Sec-Fetch-Site": "same-origin"}
    assert post(server, "/mail", mail(handle), {**JSON, **own}) == (200, "accepted\n")
    assert post(server, f"/accounts/{handle}/unverify") == (200, "ok\n")  # an empty body needs no type
    account = accounts.store.get_account(handle)
    assert account.inbox_unread == 1 and not account.verified


def test_mail_answers_the_same_for_unknown_accounts(server, accounts):
    handle = accounts.create()
    known = post(server, "/mail", mail(handle), JSON)
    unknown = post(server, "/mail", mail("ghost-never-made@example.com"), JSON)
    assert known == unknown == (200, "accepted\n")
    assert accounts.store.get_account(handle).inbox_unread == 1
    assert post(server, "/mail", mail("not a handle"), JSON)[0] == 400
    assert post(server, "/mail", b"[1, 2]", JSON)[0] == 400
    # A NUL (PostgreSQL cannot store one) is a bad field, not a 500 from the database.
    nul = json.dumps({"handle": handle, "from_name": "a\u0000b", "subject": "x"}).encode()
    assert post(server, "/mail", nul, JSON) == (400, "a field holds a NUL character\n")
    assert accounts.store.get_account(handle).inbox_unread == 1
    # The operator's own actions still say when there is no such account (only they can ask).
    assert post(server, "/accounts/ghost-never-made@example.com/verify") == (404, "no account ghost-never-made@example.com\n")


def test_read_only_pages_stay_open(server):
    for path in ("/healthz", "/readyz", "/metrics"):
        with urllib.request.urlopen(f"http://127.0.0.1:{server.ports['admin']}{path}", timeout=30) as r:
            assert r.status == 200, path


def test_refusals_are_logged_once_per_address_and_never_the_token(server, accounts):
    handle = accounts.create()
    guess = "guessed-token-0123456789"
    before = server.log().count("admin: refused")
    for _ in range(5):
        post(server, "/mail", mail(handle), JSON, token=guess)
    post(server, "/accounts/x@example.com/delete", b"", {"Origin": "http://evil.example"})
    log = server.log()
    assert log.count("admin: refused") - before <= 1  # earlier tests may have opened the window
    assert "admin: refused" in log
    assert guess not in log and server.admin_token not in log


def test_refusal_log_window():
    from msnp6.web import RefusalLog

    logged: list[str] = []
    clock = Clock()
    refusals = RefusalLog(clock, window=60, limit=2)

    class Request:
        method = b"POST"
        uri = b"/mail\x1b[31m"

    from twisted.logger import globalLogPublisher

    def observe(event: dict) -> None:
        if event.get("log_namespace") == "msnp6.web":
            from twisted.logger import formatEvent

            logged.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    try:
        for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.1"):
            refusals.refused(address, 401, "wrong admin token", Request())  # type: ignore[arg-type]
        clock.advance(61)
        refusals.refused("10.0.0.1", 401, "wrong admin token", Request())  # type: ignore[arg-type]
        refusals.refused("10.0.0.3", 401, "wrong admin token", Request())  # type: ignore[arg-type]
    finally:
        globalLogPublisher.removeObserver(observe)
    assert [line.split(" from ")[1].split(":")[0] for line in logged] == ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.3"]
    assert "\\x1b[31m" in logged[0] and "\x1b" not in "".join(logged)


# -- msnp6-admin ----------------------------------------------------------------------------------


def cli(server: ServerProcess, *args: str, env: dict[str, str] | None = None):
    url = f"http://127.0.0.1:{server.ports['admin']}"
    db = server.db
    assert db is not None and server.key_file is not None
    return run_admin([*args, "--admin-url", url], db, server.key_file, env=env)


def test_msnp6_admin_sends_the_token(server, accounts):
    handle = accounts.create()
    r = cli(server, "user", "unverify", handle, "--admin-token-file", str(server.admin_token_file))
    assert (r.returncode, r.stdout.strip()) == (0, f"{handle} unverified"), r.stderr
    assert r.stderr == ""  # through the server, not the database
    assert server.admin_token is not None
    r = cli(server, "mail", "notify", handle, "--from-addr", "x@example.com",
            env={"MSNP6_ADMIN_TOKEN": server.admin_token})
    assert (r.returncode, r.stdout.strip()) == (0, f"{handle}: accepted"), r.stderr
    account = accounts.store.get_account(handle)
    assert not account.verified and account.inbox_unread == 1


def test_msnp6_admin_with_a_wrong_or_no_token_fails_clearly(server, accounts, tmp_path):
    handle = accounts.create()
    wrong = tmp_path / "wrong-token"
    wrong.write_text("a-wrong-token-of-enough-length\n")
    r = cli(server, "user", "delete", handle, "--admin-token-file", str(wrong))
    assert r.returncode == 1 and r.stdout == ""
    assert "the server refused the admin token (wrong admin token)" in r.stderr and str(wrong) in r.stderr
    assert "writing the database directly" not in r.stderr  # the server answered: no fallback
    assert accounts.store.get_account(handle) is not None
    missing = tmp_path / "no-such-file"
    r = cli(server, "mail", "notify", handle, "--from-addr", "x@example.com",
            "--admin-token-file", str(missing))
    assert r.returncode == 1 and f"no token ({missing} does not exist)" in r.stderr, r.stderr
    r = cli(server, "user", "verify", handle, env={"MSNP6_ADMIN_TOKEN": "short"})
    assert r.returncode == 1 and "must be 16 to 256 printable ASCII characters" in r.stderr
    assert accounts.store.get_account(handle).inbox_unread == 0


# -- where the token lives ------------------------------------------------------------------------


def _admin_port_server(folder: Path, env: dict[str, str] | None = None) -> ServerProcess:
    """A server whose admin port takes its token from the defaults (no --admin-token-file)."""
    key_file = folder / "key" / "credential.key"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    CredentialKey.load(key_file, create=True)
    proc = ServerProcess(f"sqlite:///{folder / 'db.sqlite3'}", key_file, folder / "run", env=env)
    proc.ports["admin"] = free_port()
    return proc


def test_the_server_makes_its_token_next_to_the_key_and_msnp6_admin_finds_it(tmp_path, monkeypatch):
    for variable in ("MSNP6_ADMIN_TOKEN", "MSNP6_ADMIN_TOKEN_FILE"):
        monkeypatch.delenv(variable, raising=False)
    proc = _admin_port_server(tmp_path)
    assert proc.key_file is not None and proc.db is not None
    accounts = Accounts(StoreCore(open_database(proc.db)), CredentialKey.load(proc.key_file))
    handle = accounts.create()
    proc.start()
    try:
        made = proc.key_file.parent / "admin-token"
        assert stat.S_IMODE(made.stat().st_mode) == 0o600 and len(made.read_text().strip()) >= 32
        r = run_admin(["user", "unverify", handle, "--admin-url", f"http://127.0.0.1:{proc.ports['admin']}"],
                      proc.db, proc.key_file)
        assert (r.returncode, r.stderr) == (0, ""), r.stderr
        assert f"admin token in {made}" in proc.log() and made.read_text().strip() not in proc.log()
    finally:
        proc.stop()
    assert not accounts.store.get_account(handle).verified
    proc.restart()  # the same token on the next start
    try:
        r = run_admin(["user", "verify", handle, "--admin-url", f"http://127.0.0.1:{proc.ports['admin']}"],
                      proc.db, proc.key_file)
        assert r.returncode == 0, r.stderr
    finally:
        proc.stop()


def test_the_token_from_the_environment_wins_over_the_file(tmp_path):
    token = "an-environment-token-0123456789"
    proc = _admin_port_server(tmp_path, env={"MSNP6_ADMIN_TOKEN": token})
    proc.start()
    try:
        assert not (tmp_path / "key" / "admin-token").exists()
        assert post(proc, "/mail", mail("someone@example.com"), JSON, token=token) == (200, "accepted\n")
        assert "admin token in $MSNP6_ADMIN_TOKEN" in proc.log() and token not in proc.log()
    finally:
        proc.stop()


def test_a_malformed_token_refuses_to_start(tmp_path):
    proc = _admin_port_server(tmp_path, env={"MSNP6_ADMIN_TOKEN": "too short"})
    with pytest.raises(RuntimeError) as failed:
        proc.start()
    assert "exited with 2" in str(failed.value)
    assert "the admin token in $MSNP6_ADMIN_TOKEN must be 16 to 256 printable ASCII characters" in str(failed.value)
