"""Which credential key sealed the database's credentials, and whether a key file is that key.

Every sealed credential carries the id of the key that sealed it (``msnp6.auth``: a digest of the
key, never the key), so the database itself records which key it needs. A server or
``msnp6-admin`` given another key, or no key file while credentials exist, would answer every
login with 911 or seal new passwords nobody can check: both refuse instead, naming the key id the
database expects and the file they looked at. During a key rotation (msnp6.store.rotation) the
database expects two keys, and the new one also afterwards.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, func, select

from ..auth import CredentialKey, CredentialKeyError, CredentialKeyring, sealed_key_id
from .models import accounts
from .rotation import read_rotation


def sealed_key_ids(engine: Engine) -> set[bytes]:
    """The ids of the keys that sealed the stored credentials (normally one)."""
    # The format byte and the key id open every credential: one distinct prefix per key.
    query = select(func.substr(accounts.c.credential, 1, 9)).distinct()
    with engine.connect() as conn:
        return {key_id for (prefix,) in conn.execute(query)
                if prefix is not None and (key_id := sealed_key_id(bytes(prefix))) is not None}


def key_for(engine: Engine, path: Path, create: bool = True) -> CredentialKeyring:
    """The keys for the database's credentials: the key in ``path`` if it sealed them (or there
    are none yet), or is the new key of a recorded rotation (msnp6.store.rotation); a new key in
    ``path`` only when the file is missing and nothing is sealed. During a rotation the keyring
    also holds the rotation's other key, read from the file the rotation recorded, and seals with
    the new one. CredentialKeyError otherwise, saying which key id the database expects and where
    the key was looked for."""
    ids = sealed_key_ids(engine)
    rotation = read_rotation(engine)
    accepted = ids | ({rotation.to_id} if rotation is not None else set())
    expected = " or ".join(sorted(i.hex() for i in accepted))
    if not path.exists() and accepted:
        raise CredentialKeyError(
            f"the credential key file {path} is missing, but the database holds passwords sealed with "
            f"key id {expected}: restore that key file (--key-file, $MSNP6_KEY_FILE) instead of "
            "starting with a new key, which could open none of them")
    key = CredentialKey.load(path, create=create)
    if accepted and key.key_id not in accepted:
        raise CredentialKeyError(
            f"the credential key in {path} has key id {key.key_id.hex()}, but the database's passwords "
            f"are sealed with key id {expected}: point --key-file ($MSNP6_KEY_FILE) at that key")
    if rotation is None:
        return CredentialKeyring([key])
    keyring = CredentialKeyring([key])
    # The new key always (new passwords are sealed with it); the old one while passwords need it.
    for key_id, other in ((rotation.to_id, rotation.to_file), (rotation.from_id, rotation.from_file)):
        if key_id == key.key_id or (key_id == rotation.from_id and key_id not in ids):
            continue
        try:
            loaded = CredentialKey.load(Path(other))
        except CredentialKeyError as e:
            raise CredentialKeyError(
                f"a credential key rotation from key id {rotation.from_id.hex()} to {rotation.to_id.hex()} is "
                f"recorded, and key id {key_id.hex()} is needed: {e}. Make that file readable here, at "
                "the path the rotation recorded (msnp6-admin key show)") from None
        if loaded.key_id != key_id:
            raise CredentialKeyError(
                f"the recorded credential key rotation expects key id {key_id.hex()} in {other}, but that file "
                f"holds key id {loaded.key_id.hex()}")
        keyring.add(loaded, newest=key_id == rotation.to_id)
    if key.key_id == rotation.to_id:
        keyring.add(key, newest=True)
    return keyring
