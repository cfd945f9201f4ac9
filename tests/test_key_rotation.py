"""Credential key rotation (msnp6-admin key rotate): every password is re-sealed with a new key in
batches while servers run; the servers unseal with either key throughout, learn of a rotation
that began after they started, and seal new passwords with the new key."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from sqlalchemy import select, update

from msnp6.auth import CredentialKey, CredentialKeyError, CredentialKeyring, SealedWithOtherKey, sealed_key_id
from msnp6.store.engine import make_engine
from msnp6.store.models import accounts, settings
from msnp6.store.rotation import ROTATION_SETTING, Rotation, key_counts
from msnp6.store.schema import open_database, upgrade
from msnp6.store.sealing import key_for
from msnp6.store.store import StoreCore
from msnp6.testing import ClockStore, ServerProcess, run_admin, send_login, take_lines, unit_realm


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@attrs.define
class Fresh:
    """A database of its own (a rotation changes the key, so not the session's), its first key
    and some accounts: handle -> password."""

    url: str
    folder: Path
    old_key: Path
    users: dict[str, str]

    @property
    def new_key(self) -> Path:
        return self.folder / "keys" / "new.key"

    def counts(self) -> dict[bytes | None, int]:
        engine = make_engine(self.url)
        try:
            return key_counts(engine)
        finally:
            engine.dispose()

    def key_of(self, handle: str) -> bytes | None:
        engine = make_engine(self.url)
        try:
            with engine.connect() as conn:
                blob = conn.execute(select(accounts.c.credential).where(accounts.c.handle == handle)).scalar_one()
            return sealed_key_id(bytes(blob))
        finally:
            engine.dispose()

    def server(self, key_file: Path, name: str) -> ServerProcess:
        return ServerProcess(self.url, key_file, self.folder / name, extra_args=["--challenge-timeout", "3"])

    def rotate(self, *extra: str) -> list[str]:
        return [str(Path(sys.executable).parent / "msnp6-admin"), "--db", self.url, "--key-file", str(self.old_key),
                "key", "rotate", "--new-key-file", str(self.new_key), *extra]


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fresh]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rotation.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_schema_url")()
    upgrade(make_engine(url))
    old_key = tmp_path / "keys" / "old.key"
    key = CredentialKey.load(old_key, create=True)
    core = StoreCore(open_database(url))
    users = {f"rot{i}@example.com": f"secret-{i}" for i in range(10)}
    for handle, password in users.items():
        core.create_account(handle, handle, key.seal(handle, password))
    core.engine.dispose()
    yield Fresh(url, tmp_path, old_key, users)


def log_in(server: ServerProcess, handle: str, password: str) -> None:
    with server.client() as client:
        client.login(handle, password)


def mixed(fresh: Fresh, old: bytes, new: bytes, at_least: int = 2) -> bool:
    counts = fresh.counts()
    return counts.get(old, 0) > 0 and counts.get(new, 0) >= at_least


def interrupted_rotation(fresh: Fresh) -> tuple[bytes, bytes]:
    """Start a slow rotation, SIGKILL it once both keys sealed passwords; (old id, new id)."""
    old = CredentialKey.load(fresh.old_key).key_id
    rotating = subprocess.Popen(fresh.rotate("--batch-size", "1", "--pause", "0.3"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: fresh.new_key.exists(), "the new key file")
        new = CredentialKey.load(fresh.new_key).key_id
        wait_for(lambda: mixed(fresh, old, new), "passwords sealed with both keys")
    finally:
        rotating.send_signal(signal.SIGKILL)
        rotating.wait()
    assert mixed(fresh, old, new)  # interrupted before the end
    return old, new


def test_logins_work_before_during_and_after_a_rotation(fresh):
    server = fresh.server(fresh.old_key, "server")
    server.start()
    try:
        handles = list(fresh.users)
        for handle in handles:
            log_in(server, handle, fresh.users[handle])
        old = CredentialKey.load(fresh.old_key).key_id
        rotating = subprocess.Popen(fresh.rotate("--batch-size", "1", "--pause", "0.2"),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: fresh.new_key.exists(), "the new key file")
        new = CredentialKey.load(fresh.new_key).key_id
        wait_for(lambda: fresh.counts().get(new, 0) >= 1, "the first re-sealed password")
        for handle in handles:  # as the rotation goes on (test_an_interrupted_rotation... stops it midway)
            log_in(server, handle, fresh.users[handle])
        # A password set during the rotation is sealed with the new key (msnp6-admin accepts the
        # new key file as soon as the rotation is recorded; the old one: see the next test).
        changed = handles[-1]
        fresh.users[changed] = "changed-during-rotation"
        done = run_admin(["user", "passwd", changed], fresh.url, fresh.new_key, stdin=fresh.users[changed] + "\n")
        assert done.returncode == 0, done.stderr
        assert fresh.key_of(changed) == new
        while rotating.poll() is None:
            for handle in handles:
                log_in(server, handle, fresh.users[handle])
        out, err = rotating.communicate()
        assert rotating.returncode == 0, err
        assert "re-sealed" in out and str(fresh.new_key) in out
        assert fresh.counts() == {new: len(handles)}
        assert old != new
        for handle in handles:
            log_in(server, handle, fresh.users[handle])
    finally:
        server.stop()


def test_an_interrupted_rotation_resumes_and_the_old_key_is_then_refused(fresh):
    server = fresh.server(fresh.old_key, "server")
    server.start()
    try:
        old, new = interrupted_rotation(fresh)
        by_key = {fresh.key_of(handle): handle for handle in fresh.users}
        assert set(by_key) == {old, new}
        for handle in by_key.values():  # one sealed with each key, against a server that began before
            log_in(server, handle, fresh.users[handle])
        # msnp6-admin given the old key file seals a new password with the rotation's new key.
        changed = next(h for h in fresh.users if fresh.key_of(h) == old and h != by_key[old])
        fresh.users[changed] = "changed-midway"
        done = run_admin(["user", "passwd", changed], fresh.url, fresh.old_key, stdin=fresh.users[changed] + "\n")
        assert done.returncode == 0, done.stderr
        assert fresh.key_of(changed) == new
        log_in(server, changed, fresh.users[changed])
    finally:
        server.stop()
    # A server started now with the new key file reads the old one from the recorded rotation.
    midway = fresh.server(fresh.new_key, "midway")
    midway.start()
    try:
        for handle in by_key.values():
            log_in(midway, handle, fresh.users[handle])
    finally:
        midway.stop()

    again = subprocess.run(fresh.rotate("--batch-size", "2"), capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stdout
    assert fresh.counts() == {new: len(fresh.users)}

    after = fresh.server(fresh.new_key, "after")
    after.start()
    try:
        for handle, password in fresh.users.items():
            log_in(after, handle, password)
    finally:
        after.stop()
    refused = fresh.server(fresh.old_key, "refused")
    refused.workdir.mkdir(parents=True)
    done = subprocess.run(refused.command(), cwd=refused.workdir, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"key id {new.hex()}" in done.stderr and str(fresh.old_key) in done.stderr, done.stderr


def test_a_second_rotation_to_another_key_waits_for_the_first(fresh):
    old, new = interrupted_rotation(fresh)
    other = fresh.folder / "keys" / "other.key"
    done = run_admin(["key", "rotate", "--new-key-file", str(other)], fresh.url, fresh.old_key)
    assert done.returncode == 1
    assert "not finished" in done.stderr and str(fresh.new_key) in done.stderr, done.stderr
    assert mixed(fresh, old, new, at_least=1)  # nothing re-sealed with the other key
    assert CredentialKey.load(other).key_id not in fresh.counts()
    shown = run_admin(["key", "show"], fresh.url, fresh.old_key)
    assert shown.returncode == 0, shown.stderr
    assert f"key id {old.hex()}: " in shown.stdout and f"key id {new.hex()}: " in shown.stdout
    assert f"to key id {new.hex()}" in shown.stdout and "unfinished" in shown.stdout
    # Once the first rotation is finished, a rotation to yet another key may start.
    assert subprocess.run(fresh.rotate(), capture_output=True, timeout=60).returncode == 0
    done = run_admin(["key", "rotate", "--new-key-file", str(other)], fresh.url, fresh.new_key)
    assert done.returncode == 0, done.stderr
    assert fresh.counts() == {CredentialKey.load(other).key_id: len(fresh.users)}


# -- the keyring and a server meeting a rotation that began after it started -------------------


def test_the_keyring_unseals_with_the_key_that_sealed_and_seals_with_the_newest(tmp_path):
    a, b = (CredentialKey.load(tmp_path / name, create=True) for name in ("a", "b"))
    keyring = CredentialKeyring([a])
    sealed_a = a.seal("x@example.com", "one")
    with pytest.raises(SealedWithOtherKey):
        keyring.unseal("x@example.com", b.seal("x@example.com", "two"))
    keyring.add(b, newest=True)
    assert keyring.unseal("x@example.com", sealed_a) == "one"
    assert keyring.unseal("x@example.com", b.seal("x@example.com", "two")) == "two"
    assert sealed_key_id(keyring.seal("x@example.com", "three")) == b.key_id
    keyring.prefer(a.key_id)
    assert sealed_key_id(keyring.seal("x@example.com", "four")) == a.key_id


def _record(engine, rotation: Rotation) -> None:
    with engine.begin() as conn:
        conn.execute(settings.insert().values(name=ROTATION_SETTING, value=rotation.to_json()))


def test_a_running_server_learns_a_rotation_from_a_login_and_from_its_periodic_read(tmp_path):
    realm = unit_realm(tmp_path, {"alice@example.com": "Alice", "bob@example.com": "Bob"})
    old = CredentialKey.load(tmp_path / "key")
    new_file = tmp_path / "new.key"
    new = CredentialKey.load(new_file, create=True)
    engine = realm.store.core.engine
    _record(engine, Rotation(old.key_id, new.key_id, str(tmp_path / "key"), str(new_file)))
    with engine.begin() as conn:
        conn.execute(update(accounts).where(accounts.c.handle == "bob@example.com")
                     .values(credential=new.seal("bob@example.com", "pw")))
    ns, t = send_login(realm, "bob@example.com")
    assert take_lines(t)[0].startswith("USR 4 OK bob@example.com")
    assert realm.key.holds(new.key_id) and realm.key.key_id == new.key_id

    # Without any login: the periodic read, every 10 s once the service runs.
    other = unit_realm(tmp_path / "other", {"carol@example.com": "Carol"})
    other_old = CredentialKey.load(tmp_path / "other" / "key")
    _record(other.store.core.engine, Rotation(other_old.key_id, new.key_id, "", str(new_file)))
    other.keys.startService()
    other.clock.advance(9.9)
    assert other.key.key_id == other_old.key_id
    other.clock.advance(0.1)
    assert sealed_key_id(other.key.seal("carol@example.com", "pw")) == new.key_id
    other.keys.stopService()


def test_a_server_started_midway_needs_the_other_key_file(tmp_path):
    realm = unit_realm(tmp_path, {"alice@example.com": "Alice"})
    old_file, new_file = tmp_path / "key", tmp_path / "new.key"
    old, new = CredentialKey.load(old_file), CredentialKey.load(new_file, create=True)
    engine = realm.store.core.engine
    _record(engine, Rotation(old.key_id, new.key_id, str(old_file), str(new_file)))
    keyring = key_for(engine, old_file)
    assert keyring.key_ids == {old.key_id, new.key_id} and keyring.key_id == new.key_id
    os.rename(new_file, tmp_path / "moved.key")
    with pytest.raises(CredentialKeyError, match=str(new_file)):
        key_for(engine, old_file)


def test_logins_meeting_an_unknown_key_share_one_read_under_the_store_deadline(tmp_path):
    realm = unit_realm(tmp_path, {"bob@example.com": "Bob"}, store_factory=ClockStore, store_timeout=2.0)
    old = CredentialKey.load(tmp_path / "key")
    new_file = tmp_path / "new.key"
    new = CredentialKey.load(new_file, create=True)
    engine = realm.store.core.engine
    _record(engine, Rotation(old.key_id, new.key_id, str(tmp_path / "key"), str(new_file)))
    with engine.begin() as conn:
        conn.execute(update(accounts).where(accounts.c.handle == "bob@example.com")
                     .values(credential=new.seal("bob@example.com", "pw")))
    realm.store.stall("rotation_keys")
    first, second = (_login_on_clock(realm) for _ in range(2))
    realm.clock.advance(0)
    assert realm.store.asked.count("rotation_keys") == 1
    realm.clock.advance(2.0)
    for t in (first, second):
        assert take_lines(t) == ["915 4"] and t.disconnecting  # the store failed: unavailable, not a wrong password
    realm.store.resume()
    t = _login_on_clock(realm)
    realm.clock.advance(0)
    realm.clock.advance(0)
    assert take_lines(t)[0].startswith("USR 4 OK bob@example.com")


def _login_on_clock(realm):
    from msnp6.notification import NotificationProtocol
    from msnp6.testing import connect, md5_hex

    ns = NotificationProtocol(realm)
    t = connect(ns)
    ns.dataReceived(b"VER 1 MSNP6 CVR0\r\nINF 2\r\nUSR 3 MD5 I bob@example.com\r\n")
    salt = take_lines(t)[2].split()[4]
    ns.dataReceived(f"USR 4 MD5 S {md5_hex(salt + 'pw')}\r\n".encode())
    return t


def test_every_node_of_a_cluster_accepts_both_keys(request, tmp_path, redis_server):
    """Separate processes on PostgreSQL and Redis, started before the rotation: each node learns
    the new key by itself."""
    from msnp6.testing_cluster import ClusterServer

    url = request.getfixturevalue("pg_schema_url")()
    upgrade(make_engine(url))
    fresh = Fresh(url, tmp_path, tmp_path / "keys" / "old.key", {f"node{i}@example.com": f"pw-{i}" for i in range(8)})
    key = CredentialKey.load(fresh.old_key, create=True)
    core = StoreCore(open_database(url))
    for handle, password in fresh.users.items():
        core.create_account(handle, handle, key.seal(handle, password))
    core.engine.dispose()
    cluster = ClusterServer(url, fresh.old_key, tmp_path / "cluster", f"redis://127.0.0.1:{redis_server.port}/6",
                            extra_args=["--challenge-timeout", "3"])
    cluster.start()
    try:
        old, new = interrupted_rotation(fresh)
        for node in cluster.nodes.values():
            for handle, password in fresh.users.items():
                with node.client("ns") as client:
                    client.login(handle, password)
        done = subprocess.run(fresh.rotate(), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert fresh.counts() == {new: len(fresh.users)}
        for node in cluster.nodes.values():
            for handle, password in fresh.users.items():
                with node.client("ns") as client:
                    client.login(handle, password)
    finally:
        cluster.stop()
