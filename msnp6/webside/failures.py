"""What a refused web sign-in does, on md5auth.srf and the password page alike: the failure
counts toward the login limits (as a wrong password at ``USR`` does) and gets an audit line."""
from __future__ import annotations

from typing import Any

from twisted.web.server import Request

from .. import audit
from ..core.windows import ACCOUNT
from .http import host, peer


def over_limit(realm: Any, request: Request, handle: str, over: str) -> None:
    """The account or the address is over its login limit: refused unchecked."""
    realm.limited(over, handle if over == ACCOUNT else host(request))
    realm.count("login_failed")
    audit.login_failed(handle, peer(request), 403, "locked_out" if over == ACCOUNT else "rate_limited")


def failed(realm: Any, request: Request, handle: str, reason: str) -> None:
    """A wrong password, forged post...: counted, then audited with ``reason``."""
    realm.windows.login_failed(handle, host(request))
    realm.count("login_failed")
    audit.login_failed(handle, peer(request), 403, reason)
