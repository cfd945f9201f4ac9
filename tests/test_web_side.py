"""The web side's sessions and replay guard, on a fake clock (the sign-in itself:
test_web_side_e2e.py)."""
from __future__ import annotations

from twisted.internet.task import Clock

from msnp6.webside.sessions import ReplayGuard, WebSessions


def test_a_session_ends_at_its_expiry():
    clock = Clock()
    sessions = WebSessions(clock, ttl=60)
    session_id, session = sessions.create("a@example.com", "t$$")
    assert sessions.get(session_id) is session and len(session.csrf) >= 32
    assert sessions.get("not-" + session_id) is None and sessions.get(None) is None
    clock.advance(59)
    assert sessions.get(session_id) is session
    clock.advance(1)
    assert sessions.get(session_id) is None


def test_each_session_has_its_own_id_and_token():
    sessions = WebSessions(Clock())
    (one, a), (two, b) = sessions.create("a@example.com", "t$$"), sessions.create("a@example.com", "t$$")
    assert one != two and a.csrf != b.csrf


def test_a_used_post_is_remembered_while_it_could_pass():
    clock = Clock()
    guard = ReplayGuard(clock, keep=1200)
    guard.use("a@example.com", "auth", "5", "creds")
    assert guard.seen("a@example.com", "auth", "5", "creds")
    assert not guard.seen("a@example.com", "auth", "6", "creds")
    clock.advance(1200)
    guard.use("b@example.com", "auth", "5", "creds")  # prunes what expired
    assert not guard.seen("a@example.com", "auth", "5", "creds")
