"""Credential sealing, MD5 login salts and the MSNP6 client challenge.

The database keeps each password sealed (AES-256-GCM) with a key that lives outside it, so a dump
alone lets nobody log in; every login gets a fresh salt, so a sniffed answer cannot be replayed.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_FORMAT = b"\x01"
_NONCE = 12
_KEY_ID = 8


class CredentialKeyError(Exception):
    """The credential key is missing, unreadable or malformed."""


class SealedWithOtherKey(Exception):
    """The credential was sealed with a different server key."""


class CredentialKey:
    """The server key that seals passwords. Unsealing is a few microseconds of AES."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise CredentialKeyError("the credential key must be 32 bytes")
        self._aead = AESGCM(key)
        self._secret = key
        self.key_id = hashlib.sha256(b"msnp6-key-id" + key).digest()[:_KEY_ID]

    @classmethod
    def load(cls, path: Path, create: bool = False) -> "CredentialKey":
        """Read a key file (64 hex characters); create one (mode 0600) when asked and missing."""
        if not path.exists():
            if not create:
                raise CredentialKeyError(f"credential key file {path} does not exist")
            _create_key_file(path)
        try:
            return cls(bytes.fromhex(path.read_text().strip()))
        except (ValueError, OSError) as e:
            raise CredentialKeyError(f"cannot read credential key file {path}: {e}") from e

    def subkey(self, purpose: str) -> bytes:
        """A 32-byte key for one ``purpose`` (HKDF-SHA256 of this key): other uses of the server's
        secret (signed mail links) never hold the sealing key itself, and one purpose's key
        says nothing about another's."""
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                    info=b"msnp6 subkey: " + purpose.encode("ascii")).derive(self._secret)

    def seal(self, handle: str, password: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        sealed = self._aead.encrypt(nonce, password.encode("utf-8"), handle.encode("utf-8"))
        return _FORMAT + self.key_id + nonce + sealed

    def unseal(self, handle: str, blob: bytes) -> str:
        """The password; the handle is authenticated data, so blobs cannot move between accounts."""
        if blob[:1] != _FORMAT or blob[1 : 1 + _KEY_ID] != self.key_id:
            raise SealedWithOtherKey(handle)
        nonce = blob[1 + _KEY_ID : 1 + _KEY_ID + _NONCE]
        return self._aead.decrypt(nonce, blob[1 + _KEY_ID + _NONCE :], handle.encode("utf-8")).decode(
            "utf-8"
        )


class CredentialKeyring:
    """The keys a server holds: during a rotation (msnp6.store.rotation) both the old and the new.
    A credential is unsealed with the key whose id it carries; new passwords are sealed with the
    newest key, the rotation's new one once it is known."""

    def __init__(self, keys: "list[CredentialKey]", newest: CredentialKey | None = None) -> None:
        if not keys:
            raise CredentialKeyError("a keyring needs at least one key")
        self._keys = {key.key_id: key for key in keys}
        self.newest = newest if newest is not None else keys[0]
        self._keys[self.newest.key_id] = self.newest

    @property
    def key_id(self) -> bytes:
        """The id of the key new passwords are sealed with."""
        return self.newest.key_id

    @property
    def key_ids(self) -> frozenset[bytes]:
        return frozenset(self._keys)

    def holds(self, key_id: bytes | None) -> bool:
        return key_id in self._keys

    def add(self, key: CredentialKey, newest: bool = False) -> None:
        self._keys[key.key_id] = key
        if newest:
            self.newest = key

    def key(self, key_id: bytes) -> CredentialKey | None:
        """The held key ``key_id``, or None."""
        return self._keys.get(key_id)

    def prefer(self, key_id: bytes) -> None:
        """Seal new passwords with the held key ``key_id``."""
        self.newest = self._keys[key_id]

    def seal(self, handle: str, password: str) -> bytes:
        return self.newest.seal(handle, password)

    def unseal(self, handle: str, blob: bytes) -> str:
        """The password; SealedWithOtherKey when no key here sealed it."""
        key = self._keys.get(sealed_key_id(blob) or b"")
        if key is None:
            raise SealedWithOtherKey(handle)
        return key.unseal(handle, blob)


def sealed_prefix(key_id: bytes) -> bytes:
    """How every credential sealed with the key ``key_id`` begins (format byte and key id)."""
    return _FORMAT + key_id


def sealed_key_id(blob: bytes) -> bytes | None:
    """The id of the key that sealed ``blob`` (None if it is no sealed credential)."""
    if blob[:1] != _FORMAT or len(blob) < 1 + _KEY_ID:
        return None
    return bytes(blob[1 : 1 + _KEY_ID])


def _create_key_file(path: Path) -> None:
    """Write a new key whole under a temporary name, then link it into place: processes starting
    together on one volume (a cluster's nodes) all end up reading the one key that was linked
    first, never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
    finally:
        temporary.unlink(missing_ok=True)


def new_salt() -> str:
    """A fresh login salt shaped like the real service's (``1013928519.693957190``)."""
    return f"{int(time.time())}.{secrets.randbelow(10**9):09d}"


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _digest_matches(expected_hex: str, answer: bytes) -> bool:
    """Constant-time comparison on bytes: ``compare_digest`` raises on a non-ASCII str, and an
    answer is whatever a client sent. Either hex case is accepted (bytes.lower is ASCII only)."""
    return hmac.compare_digest(expected_hex.encode("ascii"), answer.lower())


def md5_login_ok(password: str, salt: str, answer: str) -> bool:
    """The client proves ``md5(salt + password)``."""
    return _digest_matches(md5_hex(salt + password), answer.encode("utf-8", "surrogateescape"))


# MSNP6-MSNP10 challenge key pairs: public client id -> private key (protocol reference 4.23).
CHALLENGE_KEYS: dict[str, str] = {
    "msmsgs@msnmsgr.com": "Q1P7W2E4J9R8U3S5",
    "PROD0038W!61ZTF9": "VT6PX?UQTM4WM%YR",
    "PROD0058#7IL2{QD": "QHDCY@7R1TB6W?5B",
    "PROD0061VRRZH@4F": "JXQ6J@TUOGYV@N0M",
    "PROD00504RLUG%WL": "I2EBK%PYNLZL5_J4",
    "PROD0076ENE8*@AW": "CEQJ8}OE0!WTSWII",
}


def new_challenge() -> str:
    """20 decimal digits, the shape seen in practice."""
    return f"{secrets.randbelow(10**20):020d}"


def challenge_answer_ok(client_id: str, challenges: tuple[str, ...], answer: bytes) -> bool:
    """True when ``answer`` is md5(challenge + key) for one of the outstanding challenges."""
    key = CHALLENGE_KEYS.get(client_id)
    if key is None:
        return False
    answer = answer.strip()
    return any(_digest_matches(md5_hex(c + key), answer) for c in challenges)
