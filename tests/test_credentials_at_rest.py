"""What the database holds is not enough to log in: sealed passwords, fresh salts, no MD5s."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import text

from msnp6.auth import CredentialKey, SealedWithOtherKey

PASSWORD = "correct horse battery"


def _dump(engine) -> bytes:
    """Every value of every row of every table, as bytes."""
    out = b""
    with engine.connect() as conn:
        for table in ("accounts", "list_entries", "alembic_version"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                for value in row:
                    raw = bytes(value) if isinstance(value, (bytes, memoryview)) else str(value).encode()
                    out += raw + b"\x00"
    return out


def test_database_holds_nothing_that_logs_in_without_the_key(server, accounts, tmp_path):
    handle = accounts.create(password=PASSWORD)
    dump = _dump(accounts.store.engine)
    assert handle.encode() in dump  # the dump really covers the account
    # Neither the password nor any digest of it that could stand in for it.
    assert PASSWORD.encode() not in dump
    for digest in (hashlib.md5(PASSWORD.encode()), hashlib.sha1(PASSWORD.encode()), hashlib.sha256(PASSWORD.encode())):
        assert digest.hexdigest().encode() not in dump and digest.digest() not in dump

    account = accounts.store.get_account(handle)
    # The sealed blob opens with the server key only, and only for its own account.
    assert accounts.key.unseal(handle, account.credential) == PASSWORD
    other_key = CredentialKey.load(tmp_path / "other.key", create=True)
    with pytest.raises(SealedWithOtherKey):
        other_key.unseal(handle, account.credential)
    with pytest.raises(InvalidTag):  # the handle is authenticated data
        accounts.key.unseal("someone-else@example.com", account.credential)

    # Someone holding the dump tries the values it contains as the MD5 login answer.
    with server.client() as c:
        assert c.attempt(handle, account.credential.hex())[1].line == "911 4"
        c.expect_closed()


def test_key_file_is_private_and_outside_the_database(key_file: Path, database):
    assert key_file.stat().st_mode & 0o077 == 0
    assert len(bytes.fromhex(key_file.read_text().strip())) == 32
    assert str(key_file) not in database.url


def test_processes_making_the_key_at_once_all_read_the_same_one(tmp_path):
    import multiprocessing

    path = tmp_path / "shared" / "credential.key"
    with multiprocessing.get_context("fork").Pool(6) as pool:
        for _ in range(10):
            if path.exists():
                path.unlink()
            ids = pool.map(_load_key_id, [str(path)] * 12)
            assert len(set(ids)) == 1
    assert [p.name for p in path.parent.iterdir()] == ["credential.key"]  # no temporary files left


def _load_key_id(path: str) -> bytes:
    from pathlib import Path

    from msnp6.auth import CredentialKey

    return CredentialKey.load(Path(path), create=True).key_id
