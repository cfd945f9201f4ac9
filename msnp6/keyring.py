"""Keeps a running server's credential keyring current while a key rotation goes on.

``msnp6-admin key rotate`` records the rotation in the database and starts re-sealing passwords
with the new key, while servers that started before it hold only the old key. They learn of it in
two ways: a login that meets a credential sealed with a key they do not hold reads the recorded
rotation and loads that key from its recorded file before the answer is checked; and a periodic
read (every ``interval`` seconds) picks up the new key, so new passwords get sealed with it. Both
read through the store's thread pool, under its deadline, never on the reactor thread.
"""
from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from .auth import CredentialKeyring
from .store.faults import log_store_failure
from .store.rotation import RotationKeys, rotation_keys

log = Logger()


class KeyringRefresh(service.Service):
    """Reads the recorded rotation into ``keyring``: on demand (``learn``) and, once started as
    a service, every ``interval`` seconds."""

    name = "keyring-refresh"

    def __init__(self, keyring: CredentialKeyring, store: Any, clock: Any, interval: float = 10.0) -> None:
        self.keyring = keyring
        self.store = store
        self.clock = clock
        self.interval = interval
        self._learning: Deferred[None] | None = None
        self._waiting: list[Deferred[None]] = []
        self._refreshing = False
        self._loop: LoopingCall | None = None
        #: Problems already logged (an unreadable key file is logged once, not every interval).
        self._told: set[str] = set()

    def learn(self, key_id: bytes | None) -> "Deferred[None]":
        """Read the rotation and load its keys, the old one too since a credential sealed with
        ``key_id`` was met. Logins arriving meanwhile share the one read. Fails as the store does."""
        waiter: Deferred[None] = Deferred()
        self._waiting.append(waiter)
        if self._learning is None:
            self._learning = self._read(key_id)
            self._learning.addBoth(self._learned)
        return waiter

    def _learned(self, result: Failure | None) -> None:
        self._learning = None
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(None)

    def refresh(self) -> "Deferred[None] | None":
        """The periodic read (skipped while the previous one is out); store failures are logged."""
        if self._refreshing:
            return None
        self._refreshing = True

        def done(result: Failure | None) -> None:
            self._refreshing = False
            if isinstance(result, Failure):
                log_store_failure(log, result, "reading the credential key rotation failed")

        return self._read(None).addBoth(done)

    def _read(self, wanted: bytes | None) -> "Deferred[None]":
        found: Deferred[RotationKeys] = self.store.run(
            rotation_keys, self.store.core.engine, self.keyring.key_ids, wanted)
        return found.addCallback(self._apply)

    def _apply(self, found: RotationKeys) -> None:
        for problem in found.problems:
            if problem not in self._told:
                self._told.add(problem)
                log.error("{problem}", problem=problem)
        for key in found.keys:
            self.keyring.add(key)
            log.info("credential key {key_id} loaded for the recorded key rotation", key_id=key.key_id.hex())
        rotation = found.rotation
        if rotation is not None and self.keyring.holds(rotation.to_id) and self.keyring.key_id != rotation.to_id:
            self.keyring.prefer(rotation.to_id)
            log.info("new passwords are sealed with credential key {key_id} (key rotation)",
                     key_id=rotation.to_id.hex())

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.refresh)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False)

    def stopService(self) -> Any:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return None
