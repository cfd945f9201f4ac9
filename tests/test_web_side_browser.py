"""The web side in a real browser: Debian's headless chromium, driven through chromedriver by
selenium. A protocol client logs in through the DS and asks ``URL PROFILE``; the browser opens
the auto-submitting form a client writes for that reply (notification.md 4.16), lands on the
profile page signed in, edits the member-directory entry, and another client's ``FND`` finds it.
A screenshot of each page is kept in ``test-artifacts/browser/`` (or ``$MSNP6_TEST_ARTIFACTS/browser/``).

Without chromium, chromedriver or selenium the test is skipped, except in CI (``CI=true``),
where ``.ci/run`` installs them and their absence is a failure."""
from __future__ import annotations

import hashlib
import html
import http.client
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import html5lib
import pytest
from conftest import Accounts

from msnp6.auth import CredentialKey
from msnp6.store.schema import open_database
from msnp6.store.store import StoreCore
from msnp6.testing import MsnpClient, ServerProcess

ROOT = Path(__file__).resolve().parents[1]
#: Debian's packages (chromium, chromium-driver); selenium is told both paths, so its manager
#: never looks for (or downloads) a browser or a driver.
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: How long the browser may take to reach a page (a bound on waiting, not a speed check).
PAGE_WAIT = 30


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def artifacts() -> Path:
    base = os.environ.get("MSNP6_TEST_ARTIFACTS")
    folder = (Path(base) if base else ROOT / "test-artifacts") / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (the test extra)")
    if missing:
        why = f"the browser test needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if in_ci():
            pytest.fail(why)
        pytest.skip(why)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # --no-sandbox: CI and containers run as root, where chromium's sandbox refuses to start.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1024,768", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(key_file, tmp_path_factory) -> Iterator[tuple[ServerProcess, Accounts]]:
    """A server with the web side, on SQLite (the browser adds nothing store-specific)."""
    workdir = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{workdir / 'msnp6.sqlite3'}"
    accounts = Accounts(StoreCore(open_database(url)), CredentialKey.load(key_file))
    proc = ServerProcess(url, key_file, workdir / "server", web=True)
    proc.start()
    yield proc, accounts
    proc.stop()


def log_in(server: ServerProcess, handle: str, password: str) -> tuple[MsnpClient, dict[str, str]]:
    """Through the DS, as a client does: its XFR names the NS; returns the session and the
    profile MSG's headers (MSPAuth, LoginTime, sid, kv)."""
    with server.client("ds") as ds:
        ds.negotiate()
        ds.send(f"USR {ds.next_trid()} MD5 I {handle}")
        words = ds.recv().words
    assert words[:3] == ["XFR", words[1], "NS"], words
    host, port = words[3].rsplit(":", 1)
    c = MsnpClient(host, int(port))
    c.auto_challenge = True
    profile = c.login(handle, password)
    assert profile.payload is not None
    c.sync(0)
    c.command("CHG {t} NLN")
    return c, dict(re.findall(r"^([\w-]+): (.*?)\r$", profile.payload.decode("utf-8"), re.M))


def client_page(handle: str, password: str, headers: dict[str, str], reply: list[str]) -> str:
    """The page a client writes for ``URL t redirect login-url psid`` and opens in the browser:
    a form of hidden fields posted to the login URL as the page loads (the shape Gaim and
    Kopete write; notification.md 4.16 lists the fields)."""
    redirect, login_url, psid = reply
    sl = str(int(time.time()) - int(headers["LoginTime"]))
    creds = hashlib.md5(f"{headers['MSPAuth']}{sl}{password}".encode()).hexdigest()
    fields = [("mode", "ttl"), ("login", handle), ("username", handle), ("sid", headers["sid"]),
              ("kv", headers.get("kv", "")), ("id", psid), ("sl", sl),
              ("rru" if redirect.startswith("/") else "ru", redirect), ("auth", headers["MSPAuth"]),
              ("creds", creds), ("svc", "mail"), ("js", "yes")]
    hidden = "".join(f"<input type=\"hidden\" name=\"{name}\" value=\"{html.escape(value)}\">\n"
                     for name, value in fields)
    return ("<html>\n<head>\n</head>\n<body onload=\"document.pform.submit(); \">\n"
            f"<form name=\"pform\" action=\"{html.escape(login_url)}\" method=\"POST\">\n{hidden}"
            "</form></body>\n</html>\n")


def raw_page(server: ServerProcess, path: str, cookie: str) -> bytes:
    """The bytes the server sends for ``path`` (the browser's DOM is a re-serialisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.ports["web"], timeout=10)
    conn.request("GET", path, headers={"cookie": cookie})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 200, (path, response.status)
    return body


def valid_html5(body: bytes) -> None:
    """html5lib's strict parser raises on every parse error the HTML5 standard defines."""
    html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(body)


def test_the_client_s_form_signs_the_browser_in_and_a_profile_edit_reaches_fnd(browser, site, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, accounts = site
    out = artifacts()
    password = "brow5er pass"
    handle = accounts.create(password=password)
    client, headers = log_in(server, handle, password)
    t, lines = client.command("URL {t} PROFILE 1033")
    words = lines[0].split()
    base = f"http://127.0.0.1:{server.ports['web']}"
    assert words == ["URL", str(t), f"{base}/profile?lc=1033", f"{base}/ppsecure/md5auth.srf?lc=1033", "507"]

    with MsnpClient("127.0.0.1", server.ports["ns"]) as finder:
        finder.auto_challenge = True
        finder.login(accounts.create(), "hunter2")
        surname = f"Browser{secrets.token_hex(3)}"
        query = f"FND {{t}} fname=* lname={surname} city=* state=* country=US"
        assert finder.command(query)[1][0].endswith(" 0 0")

        # The form page: shown once with script off (it would submit at once), then for real.
        form = tmp_path / "hotmail-login.html"
        form.write_text(client_page(handle, password, headers, words[2:]), encoding="utf-8")
        (out / "form.html").write_text(form.read_text(encoding="utf-8"), encoding="utf-8")
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
        browser.get(form.as_uri())
        assert browser.find_element(By.NAME, "creds").get_attribute("value") and browser.current_url == form.as_uri()
        browser.save_screenshot(str(out / "form.png"))
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
        browser.get(form.as_uri())

        wait = WebDriverWait(browser, PAGE_WAIT)
        wait.until(lambda d: d.current_url.startswith(f"{base}/profile"))
        assert browser.current_url == f"{base}/profile?lc=1033"
        assert browser.find_element(By.TAG_NAME, "h1").text == "Your member-directory entry"
        assert f"Signed in as {handle}." in browser.find_element(By.TAG_NAME, "body").text
        cookie = browser.get_cookie("msnp6_web")
        assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        session = f"msnp6_web={cookie['value']}"
        browser.save_screenshot(str(out / "profile.png"))
        valid_html5(raw_page(server, "/profile?lc=1033", session))

        # Typed as a person would; non-ASCII on purpose (the browser posts UTF-8).
        for name, value in (("first", "Zoë"), ("last", surname), ("city", "New York"), ("state", "ny"),
                            ("country", "us")):
            box = browser.find_element(By.ID, name)
            box.clear()
            box.send_keys(value)
        listed = browser.find_element(By.ID, "listed")
        if not listed.is_selected():
            listed.click()
        browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        wait.until(lambda d: d.current_url == f"{base}/profile?saved=1")
        assert "Saved." in browser.find_element(By.TAG_NAME, "body").text
        assert browser.find_element(By.ID, "first").get_attribute("value") == "Zoë"
        assert browser.find_element(By.ID, "state").get_attribute("value") == "NY"
        assert browser.find_element(By.ID, "listed").is_selected()
        browser.save_screenshot(str(out / "saved.png"))
        valid_html5(raw_page(server, "/profile?saved=1", session))

        t, found = finder.command(query)
        assert found == [f"FND {t} 1 1 fname=Zo%C3%AB lname={surname} city=New%20York state=NY country=US"]
    client.close()
    for shot in ("form.png", "profile.png", "saved.png"):
        assert (out / shot).read_bytes().startswith(b"\x89PNG"), shot
