"""Which credential key sealed the database's credentials, and whether a key file is that key.

Every sealed credential carries the id of the key that sealed it (``msnp6.auth``: a digest of the
key, never the key), so the database itself records which key it needs. A server or
``msnp6-admin`` given another key, or no key file while credentials exist, would answer every
login with 911 or seal new passwords nobody can check: both refuse instead, naming the key id the
database expects and the file they looked at.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, func, select

from ..auth import CredentialKey, CredentialKeyError, sealed_key_id
from .models import accounts


def sealed_key_ids(engine: Engine) -> set[bytes]:
    """The ids of the keys that sealed the stored credentials (normally one)."""
    # The format byte and the key id open every credential: one distinct prefix per key.
    query = select(func.substr(accounts.c.credential, 1, 9)).distinct()
    with engine.connect() as conn:
        return {key_id for (prefix,) in conn.execute(query)
                if prefix is not None and (key_id := sealed_key_id(bytes(prefix))) is not None}


def key_for(engine: Engine, path: Path, create: bool = True) -> CredentialKey:
    """The key in ``path`` if it sealed the database's credentials (or there are none yet); a
    new key in ``path`` only when the file is missing and nothing is sealed. CredentialKeyError
    otherwise, saying which key id the database expects and where the key was looked for."""
    ids = sealed_key_ids(engine)
    expected = " or ".join(sorted(i.hex() for i in ids))
    if not path.exists() and ids:
        raise CredentialKeyError(
            f"the credential key file {path} is missing, but the database holds passwords sealed with "
            f"key id {expected}: restore that key file (--key-file, $MSNP6_KEY_FILE) instead of "
            "starting with a new key, which could open none of them")
    key = CredentialKey.load(path, create=create)
    if ids and key.key_id not in ids:
        raise CredentialKeyError(
            f"the credential key in {path} has key id {key.key_id.hex()}, but the database's passwords "
            f"are sealed with key id {expected}: point --key-file ($MSNP6_KEY_FILE) at that key")
    return key
