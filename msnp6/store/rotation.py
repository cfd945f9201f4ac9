"""Credential key rotation: re-seal every stored password with a new key, in batches, while the
servers keep running.

The rotation is recorded in the ``settings`` row ``credential_key_rotation`` (which key it goes
from and to, and where both key files are) before anything is re-sealed, so that every server and
``msnp6-admin`` learns of the new key from the database: they unseal with either key and seal new
passwords with the new one. Each batch is one transaction and writes a credential only if it is
still the one read (compare-and-set), so a password changed meanwhile is never overwritten. An
interrupted rotation resumes when run again with the same new key.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import attrs
from cryptography.exceptions import InvalidTag
from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..auth import (
    CredentialKey,
    CredentialKeyError,
    CredentialKeyring,
    SealedWithOtherKey,
    sealed_key_id,
    sealed_prefix,
)
from .models import accounts, settings

#: The settings row that records the rotation.
ROTATION_SETTING = "credential_key_rotation"

#: The format byte and the key id that open every sealed credential.
_PREFIX = func.substr(accounts.c.credential, 1, 9)


class RotationError(Exception):
    """A rotation cannot start or go on; the text says why and what to do."""


@attrs.frozen
class Rotation:
    """A rotation from one credential key to another, as recorded in the database."""

    from_id: bytes
    to_id: bytes
    from_file: str
    to_file: str

    def to_json(self) -> str:
        return json.dumps({"from": self.from_id.hex(), "to": self.to_id.hex(),
                           "from_file": self.from_file, "to_file": self.to_file}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Rotation":
        try:
            value = json.loads(text)
            return cls(bytes.fromhex(value["from"]), bytes.fromhex(value["to"]),
                       str(value["from_file"]), str(value["to_file"]))
        except (ValueError, KeyError, TypeError) as e:
            raise CredentialKeyError(f"the recorded credential key rotation ({ROTATION_SETTING}) is malformed: {e}") from None


def _read_row(conn: Connection) -> str | None:
    return conn.execute(select(settings.c.value).where(settings.c.name == ROTATION_SETTING)).scalar_one_or_none()


def read_rotation(engine: Engine) -> Rotation | None:
    with engine.connect() as conn:
        text = _read_row(conn)
    return Rotation.from_json(text) if text is not None else None


def key_counts(engine: Engine) -> dict[bytes | None, int]:
    """How many credentials each key sealed (None: credentials in no known format)."""
    counts: dict[bytes | None, int] = {}
    with engine.connect() as conn:
        for prefix, n in conn.execute(select(_PREFIX, func.count()).group_by(_PREFIX)):
            key_id = sealed_key_id(bytes(prefix)) if prefix is not None else None
            counts[key_id] = counts.get(key_id, 0) + int(n)
    return counts


def remaining(engine: Engine, key_id: bytes) -> int:
    """Credentials not sealed with the key ``key_id``."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(_PREFIX != sealed_prefix(key_id))).scalar_one())


def begin(engine: Engine, keyring: CredentialKeyring, key_file: Path, new_key: CredentialKey,
          new_file: Path) -> tuple[Rotation, bool]:
    """Record the rotation from the key in ``key_file`` (``keyring``: what key_for loaded from
    it) to ``new_key``, or find it recorded already. (the rotation, True when it resumes one.)"""
    recorded = read_rotation(engine)
    if recorded is not None and recorded.to_id == new_key.key_id:
        return recorded, True
    counts = key_counts(engine)
    if recorded is not None and any(key_id != recorded.to_id for key_id in counts):
        left = sum(n for key_id, n in counts.items() if key_id != recorded.to_id)
        raise RotationError(
            f"a rotation to key id {recorded.to_id.hex()} ({recorded.to_file}) is not finished: {left} "
            f"credentials are still sealed with another key. Finish it first (msnp6-admin key rotate "
            f"--new-key-file {recorded.to_file}), then rotate again")
    if new_key.key_id == keyring.key_id:
        raise RotationError(f"{new_file} holds key id {new_key.key_id.hex()}, the key the passwords are sealed "
                            "with already: give a new file for --new-key-file")
    unknown = sorted(key_id.hex() if key_id else "(no key id)" for key_id in counts if not keyring.holds(key_id))
    if unknown:
        raise RotationError(f"some credentials are sealed with key id {', '.join(unknown)}, which {key_file} "
                            "does not hold: they cannot be re-sealed")
    rotation = Rotation(keyring.key_id, new_key.key_id, os.path.abspath(key_file), os.path.abspath(new_file))
    meanwhile = RotationError("another rotation was recorded meanwhile: see msnp6-admin key show")
    try:
        with engine.begin() as conn:
            if recorded is None:
                conn.execute(insert(settings).values(name=ROTATION_SETTING, value=rotation.to_json()))
                return rotation, False
            # Replace the finished rotation, unless another was recorded meanwhile (compare-and-set).
            text = _read_row(conn)
            if text is None or Rotation.from_json(text) != recorded or conn.execute(
                    update(settings).where(settings.c.name == ROTATION_SETTING, settings.c.value == text)
                    .values(value=rotation.to_json())).rowcount != 1:
                raise meanwhile
    except IntegrityError:
        raise meanwhile from None
    return rotation, False


def reseal_batch(engine: Engine, keyring: CredentialKeyring, new_key: CredentialKey, size: int) -> tuple[int, int]:
    """Re-seal up to ``size`` credentials not sealed with ``new_key``, in one transaction.
    (re-sealed, looked at): a credential changed since it was read is left for a later batch."""
    query = (select(accounts.c.id, accounts.c.handle, accounts.c.credential)
             .where(_PREFIX != sealed_prefix(new_key.key_id)).order_by(accounts.c.id).limit(size))
    resealed = 0
    with engine.begin() as conn:
        rows = conn.execute(query).all()
        for account_id, handle, blob in rows:
            blob = bytes(blob)
            try:
                password = keyring.unseal(handle, blob)
            except SealedWithOtherKey:
                key_id = sealed_key_id(blob)
                raise RotationError(f"the credential of {handle} is sealed with key id "
                                    f"{key_id.hex() if key_id else '(none)'}, which is not one of the rotation's keys") from None
            except InvalidTag:
                raise RotationError(f"the credential of {handle} does not open with its key: set a new password "
                                    f"(msnp6-admin user passwd {handle}) and run again") from None
            resealed += conn.execute(update(accounts)
                                     .where(accounts.c.id == account_id, accounts.c.credential == blob)
                                     .values(credential=new_key.seal(handle, password))).rowcount
    return resealed, len(rows)


def reseal_all(engine: Engine, keyring: CredentialKeyring, new_key: CredentialKey, size: int, pause: float,
               progress: Callable[[int, int], None]) -> int:
    """Re-seal batch after batch until no credential is sealed with another key; ``progress``
    hears (re-sealed so far, remaining) after each batch. The number re-sealed."""
    total = 0
    while True:
        resealed, seen = reseal_batch(engine, keyring, new_key, size)
        if not seen:
            return total
        total += resealed
        left = remaining(engine, new_key.key_id)
        progress(total, left)
        if not left:
            return total
        if pause:
            time.sleep(pause)


@attrs.frozen
class RotationKeys:
    """What a running server found: the recorded rotation, the keys it did not hold yet, and
    why a key could not be loaded (for its log)."""

    rotation: Rotation | None
    keys: tuple[CredentialKey, ...] = ()
    problems: tuple[str, ...] = ()


def rotation_keys(engine: Engine, known: frozenset[bytes], wanted: bytes | None = None) -> RotationKeys:
    """Read the recorded rotation and load its new key if ``known`` lacks it, and its old key too
    when a credential sealed with it (``wanted``) was met. Blocking: run in the store's pool."""
    rotation = read_rotation(engine)
    if rotation is None:
        return RotationKeys(None)
    keys: list[CredentialKey] = []
    problems: list[str] = []
    for key_id, path in ((rotation.to_id, rotation.to_file), (rotation.from_id, rotation.from_file)):
        if key_id in known or (key_id != rotation.to_id and key_id != wanted):
            continue
        try:
            key = CredentialKey.load(Path(path))
        except CredentialKeyError as e:
            problems.append(f"the credential key rotation needs key id {key_id.hex()}: {e}")
            continue
        if key.key_id != key_id:
            problems.append(f"the credential key rotation records key id {key_id.hex()} in {path}, "
                            f"but that file holds key id {key.key_id.hex()}")
            continue
        keys.append(key)
    return RotationKeys(rotation, tuple(keys), tuple(problems))
