"""The audit log: one structured line per login (web sign-ins too), failed login, logout, kick,
operator command and web sign-up.

Every line is logged through twisted.logger in the namespace ``msnp6.audit`` with its facts as
named fields (``audit`` names the event), so ``--log-format json`` gives each as a JSON key and a
shipper can select ``namespace == "msnp6.audit"``. Never a password, MD5 answer, salt, cookie or
token: the functions take none. Text that came from the wire (a handle tried at login) or from an
operator (a reason) is escaped first, so it cannot forge a line or carry control characters.

Field names avoid the keys the JSON format drops (``why``, ``message``, ``system``...): the
cause of a logout or a failure is ``reason``.
"""
from __future__ import annotations

from twisted.logger import Logger

from .wire import trace

NAMESPACE = "msnp6.audit"

log = Logger(namespace=NAMESPACE)

#: Why a session ended (``logout``'s ``reason``).
LOGOUT_REASONS = frozenset({"out", "hangup", "other_login", "shutdown", "kicked", "disabled", "deleted"})


def _safe(text: str, limit: int = 200) -> str:
    return trace.escape(text, limit=limit)


def login_ok(account: str, address: str, node: str, dialect: str) -> None:
    log.info("audit: login ok {account} from {address} on {node} ({dialect})", audit="login_ok",
             account=_safe(account), address=address, node=node, dialect=dialect)


def login_failed(handle: str, address: str, code: int, reason: str) -> None:
    """``handle``: what the client tried (from the wire); ``code``: the error sent."""
    log.info("audit: login failed {account} from {address}: {code} {reason}", audit="login_failed",
             account=_safe(handle), address=address, code=code, reason=reason)


def logout(account: str, address: str, node: str, reason: str) -> None:
    log.info("audit: logout {account} from {address} on {node}: {reason}", audit="logout",
             account=_safe(account), address=address, node=node, reason=reason)


def kick(account: str, caller: str, online: bool) -> None:
    """An operator asked to end ``account``'s session (``online``: there was one)."""
    log.info("audit: kick {account} by {caller}: {outcome}", audit="kick", account=_safe(account),
             caller=caller, online=online, outcome="signed out" if online else "not online")


def operator(action: str, account: str, caller: str, outcome: str, detail: str = "") -> None:
    """A command the admin port ran for ``caller`` (its address); ``detail``: e.g. the reason
    given for a disable (operator text, escaped)."""
    log.info("audit: operator {action} {account} by {caller}: {outcome}", audit="operator", action=action,
             account=_safe(account), caller=caller, outcome=outcome, detail=_safe(detail))


def web_login_ok(account: str, address: str) -> None:
    """A browser signed in on the web side (md5auth.srf) for ``account``'s online session."""
    log.info("audit: web login ok {account} from {address}", audit="web_login_ok", account=_safe(account),
             address=address)


def password_changed(account: str, address: str) -> None:
    """``account`` changed their password on the web side (the old one given again)."""
    log.info("audit: password changed {account} from {address}", audit="password_changed",
             account=_safe(account), address=address)


def signup(account: str, address: str, mode: str) -> None:
    """A new account made on the web side's sign-up page (``mode``: open or invite)."""
    log.info("audit: signup {account} from {address} ({mode})", audit="signup", account=_safe(account),
             address=address, mode=mode)


def verification_sent(account: str, address: str, outcome: str) -> None:
    """A verification mail for ``account`` was asked for (by the web page at ``address``, or by
    sign-up); ``outcome``: ``sent``, ``not_sent`` (the relay failed) or ``rate_limited``."""
    log.info("audit: verification mail {account} from {address}: {outcome}", audit="verification_sent",
             account=_safe(account), address=address, outcome=outcome)


def verified(account: str, address: str) -> None:
    """``account``'s e-mail address was verified through its mailed link."""
    log.info("audit: verified {account} from {address}", audit="verified", account=_safe(account),
             address=address)


def reset_requested(account: str, address: str, outcome: str) -> None:
    """A password reset mail was asked for ``account`` (as typed, escaped): ``outcome`` is
    ``mailed``, ``no_account``, ``disabled`` or ``rate_limited`` (the page says the same for all)."""
    log.info("audit: password reset requested {account} from {address}: {outcome}", audit="reset_requested",
             account=_safe(account), address=address, outcome=outcome)


def password_reset(account: str, address: str) -> None:
    """``account``'s password was set through its mailed reset link."""
    log.info("audit: password reset {account} from {address}", audit="password_reset", account=_safe(account),
             address=address)
