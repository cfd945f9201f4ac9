"""The credential key is tied to the database: the server and msnp6-admin refuse a key other than
the one that sealed the stored passwords, and refuse to make a new key when passwords exist."""
from __future__ import annotations

import subprocess

import pytest

from msnp6.auth import CredentialKey
from msnp6.store.engine import make_engine
from msnp6.store.sealing import key_for, sealed_key_ids
from msnp6.testing import ServerProcess, run_admin


def refused_start(database, key_path, tmp_path) -> subprocess.CompletedProcess[str]:
    proc = ServerProcess(database.url, key_path, tmp_path / "server")
    proc.workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(proc.command(), cwd=proc.workdir, capture_output=True, text=True, timeout=60)


def test_the_database_knows_which_key_sealed_its_passwords(database, key_file, accounts):
    accounts.create()  # sealed with the session's key
    engine = make_engine(database.url)
    assert sealed_key_ids(engine) == {CredentialKey.load(key_file).key_id}
    assert key_for(engine, key_file).key_id == CredentialKey.load(key_file).key_id


def test_a_server_with_another_key_refuses_to_start_and_names_the_expected_one(database, key_file, accounts, tmp_path):
    accounts.create()
    other = tmp_path / "other.key"
    CredentialKey.load(other, create=True)
    done = refused_start(database, other, tmp_path)
    assert done.returncode == 2
    expected = CredentialKey.load(key_file).key_id.hex()
    assert f"key id {expected}" in done.stderr and str(other) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_key_file_is_not_replaced_while_passwords_exist(database, key_file, accounts, tmp_path):
    accounts.create()
    missing = tmp_path / "keys" / "credential.key"
    done = refused_start(database, missing, tmp_path)
    assert done.returncode == 2
    assert "is missing" in done.stderr and str(missing) in done.stderr, done.stderr
    assert not missing.exists()


def test_msnp6_admin_refuses_a_wrong_or_missing_key(database, key_file, accounts, tmp_path):
    accounts.create()
    other = tmp_path / "other.key"
    CredentialKey.load(other, create=True)
    for key_path in (other, tmp_path / "nowhere" / "credential.key"):
        done = run_admin(["user", "add", "frank@example.com"], database.url, key_path, stdin="secret\n")
        assert done.returncode == 1 and "key id" in done.stderr, done.stderr
        assert "created" not in done.stdout
    assert not (tmp_path / "nowhere").exists()
    listed = run_admin(["user", "list"], database.url, key_file)
    assert "frank@example.com" not in listed.stdout


def test_an_empty_database_gets_a_new_key(tmp_path):
    from msnp6.store.schema import upgrade

    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    upgrade(make_engine(url))
    key_path = tmp_path / "new" / "credential.key"
    done = run_admin(["user", "add", "first@example.com"], url, key_path, stdin="secret\n")
    assert done.returncode == 0 and key_path.exists(), done.stderr
    assert sealed_key_ids(make_engine(url)) == {CredentialKey.load(key_path).key_id}
    with pytest.raises(Exception, match="key id"):
        key_for(make_engine(url), tmp_path / "another.key")
