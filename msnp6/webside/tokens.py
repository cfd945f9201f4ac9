"""The tokens in mailed links: self-contained, signed, expiring, so no table holds them.

A token is ``base64url(payload) "." base64url(tag)``. The payload names the format, the purpose
(``verify`` or ``reset``), the id of the server key whose subkey signed it, the expiry (Unix
seconds) and the handle; the tag is HMAC-SHA256 over the payload and a *binding* the token does
not carry: the caller supplies it again when checking. A reset link is bound to a hash of the
account's sealed credential, so it dies the moment the password changes (single use, with no
record of used links); a verification link is bound to nothing (using it twice changes nothing).

The signing key is a subkey of the server's credential key for this purpose only (never the
sealing key itself); during a key rotation a link signed with the old key still checks as long
as this server holds that key.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import Any

import attrs

from ..auth import CredentialKeyring
from ..wire.names import is_valid_handle

VERIFY, RESET = "verify", "reset"
PURPOSES = (VERIFY, RESET)
#: How long each kind of link works (seconds).
LIFETIMES = {VERIFY: 48 * 3600.0, RESET: 3600.0}
#: The subkey's purpose name (auth.CredentialKey.subkey).
SUBKEY = "mail-links"
_FORMAT = "1"
#: Longer tokens are not looked at (a handle is at most 129 bytes: far below).
MAX_TOKEN = 1024
#: What a token looks like: two unpadded base64url parts (nothing else is decoded, so one
#: token has one spelling).
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def credential_binding(credential: bytes) -> bytes:
    """What a reset link is bound to: the account's sealed credential as it is now."""
    return hashlib.sha256(b"msnp6 reset binding\0" + credential).digest()


@attrs.frozen(slots=True)
class Claim:
    """A token that parsed, names ``purpose`` and has not expired: its tag still to check."""

    purpose: str
    handle: str
    expires: int
    key_id: bytes
    payload: bytes
    tag: bytes


class LinkTokens:
    def __init__(self, keyring: CredentialKeyring, clock: Any) -> None:
        self.keyring = keyring
        self.clock = clock

    def make(self, purpose: str, handle: str, binding: bytes = b"", lifetime: float | None = None) -> str:
        """A token for ``handle``, working for ``lifetime`` seconds (default: LIFETIMES)."""
        assert purpose in PURPOSES
        expires = int(self.clock.seconds() + (LIFETIMES[purpose] if lifetime is None else lifetime))
        key = self.keyring.newest
        payload = "\n".join((_FORMAT, purpose, key.key_id.hex(), str(expires), handle)).encode("ascii")
        return f"{_b64(payload)}.{_b64(self._tag(key.subkey(SUBKEY), payload, binding))}"

    def claim(self, token: str, purpose: str) -> Claim | None:
        """What ``token`` claims, if it is well formed, for ``purpose``, unexpired and signed with
        a key this server holds; None otherwise. Its tag is not checked yet (``genuine``)."""
        if len(token) > MAX_TOKEN or not _SHAPE.fullmatch(token):
            return None
        encoded, _, encoded_tag = token.partition(".")
        try:
            payload, tag = _unb64(encoded), _unb64(encoded_tag)
            fields = payload.decode("ascii").split("\n")
            key_id = bytes.fromhex(fields[2]) if len(fields) == 5 else b""
        except (binascii.Error, ValueError):
            return None
        if len(fields) != 5 or fields[0] != _FORMAT or fields[1] != purpose:
            return None
        _, _, _, expires, handle = fields
        if not (expires.isdigit() and len(expires) <= 12) or not is_valid_handle(handle):
            return None
        if int(expires) <= self.clock.seconds() or self.keyring.key(key_id) is None:
            return None
        return Claim(purpose, handle, int(expires), key_id, payload, tag)

    def genuine(self, claim: Claim, binding: bytes = b"") -> bool:
        """Did this server sign ``claim`` with this ``binding``? (A constant-time compare.)"""
        key = self.keyring.key(claim.key_id)
        if key is None:
            return False
        return hmac.compare_digest(self._tag(key.subkey(SUBKEY), claim.payload, binding), claim.tag)

    def check(self, token: str, purpose: str, binding: bytes = b"") -> str | None:
        """The handle of a genuine, unexpired ``purpose`` token bound to ``binding``, or None."""
        claim = self.claim(token, purpose)
        return claim.handle if claim is not None and self.genuine(claim, binding) else None

    @staticmethod
    def _tag(subkey: bytes, payload: bytes, binding: bytes) -> bytes:
        return hmac.new(subkey, payload + b"\0" + binding, hashlib.sha256).digest()
