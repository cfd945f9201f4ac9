"""Limits without a network: the --limit / MSNP6_LIMITS syntax, the cost of cookie and window
expiry as live entries grow (counted with a clock that counts, not timed), and refusal logging."""
from __future__ import annotations

import pytest
from twisted.logger import globalLogPublisher
from twisted.python import usage

from msnp6.core.limits import INFO, NAMES, Limit, LimitError, Limits, parse_item, parse_list
from msnp6.core.ratelimit import Refusals, WindowCounter
from msnp6.core.realm import Config, Realm
from msnp6.core.tickets import TicketBook
from msnp6.core.windows import RATE_NAMES, MemoryWindows
from msnp6.tap import Options
from msnp6.testing import ClockStore, send_login, take_lines, unit_realm

# -- syntax --------------------------------------------------------------------------------------


def test_every_limit_has_a_default_and_the_documented_names():
    assert NAMES == ("login-account", "login-address", "connections-address", "prelogin-total", "cal", "rename",
                     "page", "invitation", "xfr-sb", "signup-address", "cookies-user", "fl", "al", "bl",
                     "mail-address", "mail-account", "sb-participants")
    limits = Limits()
    assert limits["cal"] == Limit(20, 10) and limits["rename"] == Limit(5, 30) and limits["fl"] == Limit(600)
    assert all(limits[info.name] == info.default for info in INFO)


@pytest.mark.parametrize("item, name, limit", [
    ("cal=3/60", "cal", Limit(3, 60.0)),
    (" xfr-sb = 30/0.5 ", "xfr-sb", Limit(30, 0.5)),
    ("fl=2", "fl", Limit(2)),
    ("prelogin-total=10000", "prelogin-total", Limit(10000)),
])
def test_items_parse(item, name, limit):
    assert parse_item(item) == (name, limit)


@pytest.mark.parametrize("item, named", [
    ("bogus=3/10", "'bogus'"),
    ("cal", "'cal'"),
    ("cal=3", "'cal' is a rate"),            # a rate needs its window
    ("fl=3/10", "'fl' is a cap"),            # a cap has none
    ("cal=x/10", "'x'"),
    ("cal=3/y", "'y'"),
    ("cal=0/10", "'0'"),
    ("cal=3/-1", "'-1'"),
    ("cal=3/nan", "'nan'"),
    ("fl=1.5", "'1.5'"),
    ("fl=\u0663", "'\u0663'"),                # an Arabic-Indic 3: int() would take it
])
def test_malformed_items_are_refused_by_name(item, named):
    with pytest.raises(LimitError, match=named.replace(".", r"\.")):
        parse_item(item)


def test_later_items_win_and_the_rest_keep_their_defaults():
    limits = Limits().overridden(parse_list("cal=5/10,,rename=1/60 , cal=7/20"))
    assert limits["cal"] == Limit(7, 20) and limits["rename"] == Limit(1, 60)
    assert limits["page"] == Limits()["page"]


def test_options_take_repeated_limits_over_the_environment(monkeypatch):
    monkeypatch.setenv("MSNP6_LIMITS", "cal=50/10,rename=1/60")
    options = Options()
    options.parseOptions(["--limit", "cal=2/600", "--limit", "fl=3"])
    limits = options["limits"]
    assert limits["cal"] == Limit(2, 600) and limits["rename"] == Limit(1, 60) and limits["fl"] == Limit(3)


@pytest.mark.parametrize("args, env, named", [
    (["--limit", "nope=1"], "", "nope"),
    (["--limit", "cal=1"], "", "cal"),
    ([], "al=0", "al"),
])
def test_options_refuse_bad_limits_naming_them(monkeypatch, args, env, named):
    monkeypatch.setenv("MSNP6_LIMITS", env)
    with pytest.raises(usage.UsageError, match=named):
        Options().parseOptions(args)


# -- cost of expiry, counted ------------------------------------------------------------------------


class CountingClock:
    """A clock whose times count every comparison made with them, and every call: the entries an
    expiry scan looks at, whatever shape the scan has."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.operations = 0
        clock = self

        class Time(float):
            def _count(self) -> None:
                clock.operations += 1

            def __lt__(self, other: object) -> bool:
                self._count()
                return float(self) < other  # type: ignore[operator]

            def __le__(self, other: object) -> bool:
                self._count()
                return float(self) <= other  # type: ignore[operator]

            def __gt__(self, other: object) -> bool:
                self._count()
                return float(self) > other  # type: ignore[operator]

            def __ge__(self, other: object) -> bool:
                self._count()
                return float(self) >= other  # type: ignore[operator]

        self._time = Time

    def seconds(self) -> float:
        self.operations += 1
        return self._time(self.now)

    def cost(self, action) -> int:
        before = self.operations
        action()
        return self.operations - before


def test_issuing_a_cookie_costs_the_same_however_many_are_live():
    clock = CountingClock(1_000_000.0)
    book = TicketBook(clock, lifetime=120)

    def issue_costs(live: int) -> int:
        while len(book) < live:  # many users' cookies, all live (the per-user cap is the handler's)
            book.issue(f"u{len(book)}@example.com", "MSNP6")
        return max(clock.cost(lambda: book.issue("me@example.com", "MSNP6")) for _ in range(20))

    # A handful of operations, then as many with eight times the cookies: the old scan looked at
    # every live cookie on each issue once past 1,024.
    small = issue_costs(1_500)
    assert small <= 10
    assert issue_costs(12_000) <= small
    clock.now += 121  # all expire, dropped from the front
    book.issue("me@example.com", "MSNP6")
    assert len(book) == 1


def test_recording_an_event_costs_the_same_however_many_keys_are_live():
    clock = CountingClock(1_000_000.0)
    counter = WindowCounter(clock, limit=5, window=60)

    def record_costs(keys: int, start: int) -> int:
        for n in range(start, keys):
            counter.record(f"key{n}")
        return max(clock.cost(lambda: counter.record("me")) for _ in range(20))

    # A handful of operations, then as many with three times the keys: the old record re-checked
    # every key on each call once past 10,000 (checked first, as the old cost grows quadratically).
    small = record_costs(10_050, 0)
    assert small <= 10
    assert record_costs(30_000, 10_050) <= small


def test_window_counter_expires():
    clock = CountingClock(100.0)
    counter = WindowCounter(clock, limit=2, window=10)
    assert counter.allow("a") and counter.allow("b")
    clock.now += 5
    assert counter.allow("a") and not counter.allow("a") and counter.count("b") == 1
    clock.now += 5  # the first two events leave the window; the second "a" stays
    assert counter.count("a") == 1 and counter.count("b") == 0 and counter.allow("a")
    assert not counter.allow("a")


def test_memory_windows_count_each_rate_limit_per_key_on_the_clock():
    clock = CountingClock(100.0)
    limits = Limits().overridden(["cal=2/10", "rename=1/30", "login-account=2/60", "login-address=3/60"])
    windows = MemoryWindows(clock, limits)
    assert RATE_NAMES == ("login-account", "login-address", "cal", "rename", "page", "invitation", "xfr-sb",
                          "signup-address", "mail-address", "mail-account")

    def allowed(name: str, key: str) -> bool:
        answers: list[bool] = []
        windows.allow(name, key).addCallback(answers.append)
        return answers[0]  # in memory the answer is there at once

    assert [allowed("cal", "a") for _ in range(3)] == [True, True, False]
    assert allowed("cal", "b") and allowed("rename", "a") and not allowed("rename", "a")
    clock.now += 10  # the cal window; rename's is longer
    assert allowed("cal", "a") and not allowed("rename", "a")


def test_memory_windows_count_login_failures_only_and_name_the_account_limit_first():
    clock = CountingClock(100.0)
    windows = MemoryWindows(clock, Limits().overridden(["login-account=2/60", "login-address=3/60"]))
    check = windows.login_check("a@example.com", "10.0.0.1")
    assert check is windows  # no Deferred on the login path in memory
    for _ in range(5):  # checks alone count nothing
        assert check.blocked("a@example.com", "10.0.0.1") is None
    windows.login_failed("a@example.com", "10.0.0.1")
    windows.login_failed("a@example.com", "10.0.0.1")
    assert check.blocked("a@example.com", "10.0.0.1") == "login-account"
    windows.login_failed("b@example.com", "10.0.0.1")
    assert check.blocked("c@example.com", "10.0.0.1") == "login-address"
    assert check.blocked("c@example.com", "10.0.0.2") is None
    clock.now += 60
    assert check.blocked("a@example.com", "10.0.0.1") is None


def test_held_cookies_are_counted_per_user_until_used_or_expired():
    clock = CountingClock(100.0)
    book = TicketBook(clock, lifetime=120)
    first = book.issue("a@example.com", "MSNP6")
    book.issue("a@example.com", "MSNP6")
    book.issue("b@example.com", "MSNP6", session_id=7)  # a ring: held for b, not requested by b
    assert book.held_by("a@example.com") == 2 and book.held_by("b@example.com") == 0
    assert book.redeem(first.cookie, "a@example.com") is not None
    assert book.held_by("a@example.com") == 1
    clock.now += 121
    assert book.held_by("a@example.com") == 0 and len(book) == 0


# -- refusals ---------------------------------------------------------------------------------------


def test_refusals_are_counted_each_time_and_logged_once_per_offender_per_window():
    clock = CountingClock(100.0)
    limits = Limits()
    refusals = Refusals(clock, limits)
    lines: list[dict] = []
    globalLogPublisher.addObserver(lines.append)
    try:
        for _ in range(50):
            refusals.refused("cal", "a@example.com", limits["cal"])
        refusals.refused("cal", "b@example.com", limits["cal"])
        clock.now += 10  # the cal window
        refusals.refused("cal", "a@example.com", limits["cal"])
    finally:
        globalLogPublisher.removeObserver(lines.append)
    logged = [e["offender"] for e in lines if e.get("limit") == "cal"]
    assert refusals.counts["cal"] == 52
    assert logged == ["a@example.com", "b@example.com", "a@example.com"]


def test_connection_caps_admit_until_full():
    class Conn:
        def __init__(self, host: str, service: str = "ns") -> None:
            self.host, self.service = host, service

    realm = Realm(Config(limits=Limits().replace(connections_address=Limit(2), prelogin_total=Limit(3))),
                  CountingClock(0.0), store=None, key=None)  # type: ignore[arg-type]
    a1, a2 = Conn("10.0.0.1"), Conn("10.0.0.1")
    for c in (a1, a2):
        assert realm.admit(c.host)
        realm.connection_opened(c)
    assert not realm.admit("10.0.0.1") and realm.admit("10.0.0.2")
    realm.connection_opened(Conn("10.0.0.2"))
    assert not realm.admit("10.0.0.3")  # three not logged in yet
    realm.login_finished(a1)
    assert realm.admit("10.0.0.3")
    realm.connection_closed(a2)
    assert realm.admit("10.0.0.1")
    assert realm.refusals.counts == {"connections-address": 1, "prelogin-total": 1}


# -- login limits while the database is slow (lookups still out when the answers arrive) --------


def _answer_pending(realm, handle: str, password: str):
    """A connection that sent USR S while its account lookup has not come back yet (every
    StringTransport has the same peer address: one NAT)."""
    return send_login(realm, handle, password)[1]


def _settle(realm) -> None:
    for _ in range(4):  # the lookups, then the list loads of those that logged in
        realm.clock.advance(0)


def test_logins_in_flight_from_one_address_do_not_count_against_it(tmp_path):
    handles = [f"user{i}@example.com" for i in range(6)]
    realm = unit_realm(tmp_path, {h: h for h in handles}, store_factory=ClockStore,
                       limits=Limits().overridden(["login-address=3/300"]))
    transports = [_answer_pending(realm, h, "pw") for h in handles]  # twice the limit, all at once
    _settle(realm)
    for handle, t in zip(handles, transports, strict=True):
        assert take_lines(t)[0].startswith(f"USR 4 OK {handle} ")
    assert realm.refusals.counts["login-address"] == 0


def test_pipelined_failures_are_each_counted_before_the_next_answer_is_checked(tmp_path):
    handle = "victim@example.com"
    realm = unit_realm(tmp_path, {handle: "Victim"}, store_factory=ClockStore,
                       limits=Limits().overridden(["login-account=3/300"]))
    guesses = [_answer_pending(realm, handle, f"guess{i}") for i in range(5)]
    right = _answer_pending(realm, handle, "pw")  # after the limit: never checked
    _settle(realm)
    assert [take_lines(t) for t in (*guesses, right)] == [["911 4"]] * 6
    assert realm.refusals.counts["login-account"] == 3
