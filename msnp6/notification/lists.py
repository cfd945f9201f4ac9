"""SYN: report the list version, and dump everything when the client's cache is stale."""
from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred

from ..store.records import SyncSnapshot
from ..wire import sync
from ..wire.errors import Disconnect
from ..wire.lines import Command

if TYPE_CHECKING:
    from .protocol import NotificationProtocol


def handle_syn(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    if command.trid is None or len(command.args) != 1 or not command.args[0].isdigit():
        raise Disconnect("malformed SYN")
    cached = int(command.args[0])

    def answer(snapshot: SyncSnapshot | None) -> None:
        if snapshot is None:
            raise Disconnect("account deleted while logged in")
        conn.account = snapshot.account
        conn.synced = True
        # 0 means "no cache": always dump, even for a new account still at version 0.
        if cached and snapshot.account.list_version == cached:
            conn.send("SYN", command.trid, cached)
            return
        assert conn.dialect is not None
        conn.write(b"".join(sync.dump(command.trid, snapshot, conn.dialect)))

    return conn.realm.store.get_snapshot(conn.account.id).addCallback(answer)
