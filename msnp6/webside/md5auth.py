"""Checking a client's md5auth.srf post (notification.md 4.16): ``creds`` =
md5hex(MSPAuth + sl + password), ``auth`` the MSPAuth its online session was given, ``sl`` the
seconds since that session's LoginTime."""
from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

import attrs

from ..directory.record import PresenceRecord
from ..store.records import AccountRecord
from ..wire.names import is_valid_handle, normalize_handle

#: How far ``sl`` may be from now - LoginTime (seconds), either way: clock skew between the
#: session's node and this one, and the time the browser took. Older posts are stale.
SL_SKEW = 600


@attrs.frozen(slots=True)
class Post:
    handle: str
    auth: str
    sl: str
    creds: str
    #: ``rru`` (a path) or ``ru`` (an absolute URL): where the browser goes once signed in.
    target: str


def posted_handle(login: str, username: str) -> str:
    """The account a post signs in: ``login`` is the whole handle (notification.md 4.16), but
    Kopete sends only its part before the ``@`` there and the whole one as ``username``."""
    handle = normalize_handle(login)
    return handle if is_valid_handle(handle) or not username else normalize_handle(username)


def creds_for(mspauth: str, sl: str, password: str) -> str:
    return hashlib.md5((mspauth + sl + password).encode("utf-8")).hexdigest()


def why_refused(post: Post, record: PresenceRecord | None, account: AccountRecord | None,
                password: str | None, now: float) -> str | None:
    """The audit's reason to refuse this post, or None. ``password``: the account's, unsealed
    (None if it could not be)."""
    if record is None or not record.mspauth or not hmac.compare_digest(record.mspauth.encode(), post.auth.encode()):
        return "web_bad_auth"
    if not (post.sl.isascii() and post.sl.isdigit() and len(post.sl) <= 10):
        return "web_bad_sl"
    if abs(now - record.login_time - int(post.sl)) > SL_SKEW:
        return "web_stale_sl"
    if account is None or password is None:
        return "web_bad_creds"
    if not hmac.compare_digest(creds_for(post.auth, post.sl, password).encode(), post.creds.lower().encode()):
        return "web_bad_creds"
    if account.disabled:
        return "disabled"
    return None


def local_target(target: str, base_url: str, default: str = "/profile") -> str:
    """Where to send the browser: a path of this site only. An absolute URL counts if it is
    under ``base_url`` (same scheme, host and port); anything else goes to ``default``."""
    if not target:
        return default
    if target.startswith("/"):
        path = target
    else:
        given, base = urlsplit(target), urlsplit(base_url)
        if (given.scheme, given.netloc) != (base.scheme, base.netloc):
            return default
        path = given.path + (f"?{given.query}" if given.query else "")
    # "//host" and "/\\host" are other hosts to a browser; control characters could split headers.
    if (not path.isascii() or not path.startswith("/") or path.startswith("//") or "\\" in path
            or any(ord(c) < 0x21 or ord(c) == 0x7F for c in path)):
        return default
    return path
