"""NS login stage: USR MD5 I / S, the profile message, and OUT OTH for an older session."""
from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, NoReturn

from cryptography.exceptions import InvalidTag
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from .. import audit
from ..auth import SealedWithOtherKey, md5_login_ok, new_salt, sealed_key_id
from ..core.windows import ACCOUNT, LoginCheck
from ..negotiation import login_handle, require_version
from ..store.faults import log_store_failure
from ..store.records import AccountRecord, SyncSnapshot
from ..wire.errors import Disconnect, ErrorCode, ProtocolError
from ..wire.hotmail import Profile, profile_payload
from ..wire.lines import Command
from ..wire.names import encode_name
from .services import send_initial_mail
from .state import SessionState

if TYPE_CHECKING:
    from ..core.realm import Realm
    from .protocol import NotificationProtocol

log = Logger()


def handle_usr(conn: "NotificationProtocol", command: Command) -> "Deferred[None] | None":
    """``USR t MD5 I handle`` -> ``USR t MD5 S salt``; ``USR t MD5 S answer`` -> ``USR t OK ...``."""
    require_version(conn, command)
    if command.arg(0) != "MD5":
        raise Disconnect(f"USR with package {command.arg(0)!r}")
    stage = command.arg(1)
    if conn.realm.draining:
        assert conn.dialect is not None
        code = conn.dialect.shutting_down_error
        audit.login_failed(conn.login_handle or _tried(command), conn.peer, code, "shutting_down")
        raise ProtocolError(code, close=True)
    if stage == "I":
        if conn.login_handle is not None:
            raise ProtocolError(ErrorCode.NOT_EXPECTED, close=True)
        _usr_initial(conn, command)
        return None
    if stage == "S":
        if conn.login_handle is None:
            raise ProtocolError(ErrorCode.NOT_EXPECTED, close=True)
        return _usr_response(conn, command)
    raise Disconnect(f"USR MD5 {stage!r}")


def _tried(command: Command) -> str:
    """The handle a USR I named, as the client sent it (for the audit: escaped there)."""
    return command.args[2] if len(command.args) > 2 else ""


def _usr_initial(conn: "NotificationProtocol", command: Command) -> None:
    try:
        handle = login_handle(command)
    except ProtocolError as e:
        audit.login_failed(_tried(command), conn.peer, e.code, "invalid_handle")
        raise
    conn.login_handle = handle
    # A fresh salt for every attempt, known account or not: nothing tells them apart. It does not
    # depend on the account, so it goes out at once; USR S waits for the lookup instead.
    conn.salt = new_salt()
    conn.account_lookup = (conn.realm.store.get_account(handle).addCallback(_with_its_key, conn.realm)
                           .addErrback(_lookup_failed, handle))
    conn.send("USR", command.trid, "MD5", "S", conn.salt)


def _with_its_key(account: AccountRecord | None, realm: "Realm") -> "AccountRecord | Deferred[AccountRecord] | None":
    """The account once the server holds the key that sealed its credential. A key it does not
    hold means a key rotation began after it started (msnp6.keyring): it learns the rotation's
    keys from the database first, once, and the answer is checked with what it then holds."""
    if account is None:
        return None
    key_id = sealed_key_id(account.credential)
    if key_id is None or realm.key.holds(key_id):
        return account
    return realm.keys.learn(key_id).addCallback(lambda _: account)


class _StoreUnavailable:
    """What an account lookup yields when the database failed (kept as a value, not a Failure,
    so a client that never sends USR S leaves no unhandled error behind)."""


_UNAVAILABLE = _StoreUnavailable()


def _lookup_failed(failure: Failure, handle: str) -> _StoreUnavailable:
    log_store_failure(log, failure, "login of {handle}: the store failed", handle=handle)
    return _UNAVAILABLE


def _store_failed(conn: "NotificationProtocol", failure: Failure, handle: str) -> Failure:
    """The database failed during a login: log it, answer "server unavailable" and close."""
    if failure.check(ProtocolError):
        return failure
    log_store_failure(log, failure, "login of {handle}: the store failed", handle=handle)
    return Failure(_unavailable(conn))


def _unavailable(conn: "NotificationProtocol") -> ProtocolError:
    assert conn.dialect is not None
    code = conn.dialect.store_unavailable_error
    audit.login_failed(conn.login_handle or "", conn.peer, code, "store_unavailable")
    return ProtocolError(code, close=True)


def _usr_response(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    if len(command.args) != 3:
        raise Disconnect("USR MD5 S with the wrong number of parameters")
    handle, answer = conn.login_handle, command.args[2]
    assert handle is not None and conn.salt is not None and conn.account_lookup is not None
    realm, address = conn.realm, conn.host
    lookup, conn.account_lookup = conn.account_lookup, None

    # The limits are asked now (the shared counter, if any, while the lookup is out) and read
    # when the answer is compared.
    check = realm.windows.login_check(handle, address)

    def verify(account: AccountRecord | _StoreUnavailable | None, check: LoginCheck) -> "Deferred[None] | None":
        if isinstance(account, _StoreUnavailable):
            raise _unavailable(conn)
        # Checking the limits, comparing the answer and counting a failure happen in one reactor
        # turn, so every failure is counted before the next answer is checked, however many
        # arrive pipelined on parallel connections. Answers merely in flight do not count: a
        # crowd behind one NAT logging in at once after a restart is not locked out.
        over = check.blocked(handle, address)
        if over is not None:
            _refuse(conn, handle, over, handle if over == ACCOUNT else address)
        # A disabled account gets the answer a wrong password gets, counted the same way, and
        # its password is checked all the same: nothing tells a stranger it exists or is banned
        # (MSNP6 clients have no handler for the codes that would say so; errors.md).
        failure = _why_refused(conn, account, answer)
        if failure is not None:
            realm.windows.login_failed(handle, address)
            realm.count("login_failed")
            audit.login_failed(handle, conn.peer, ErrorCode.AUTHENTICATION_FAILED, failure)
            raise ProtocolError(ErrorCode.AUTHENTICATION_FAILED, close=True)
        assert account is not None
        return _complete_login(conn, command, account)

    if isinstance(check, Deferred):
        pending = check  # both answers in: the lookup, then the counts
        return lookup.addCallback(lambda account: pending.addCallback(lambda ready: verify(account, ready)))
    return lookup.addCallback(verify, check)


def _refuse(conn: "NotificationProtocol", handle: str, limit: str, offender: str) -> NoReturn:
    """Too many login attempts for the account or from the address: 911 and close, unchecked."""
    conn.realm.limited(limit, offender)
    conn.realm.count("login_failed")
    audit.login_failed(handle, conn.peer, ErrorCode.AUTHENTICATION_FAILED,
                       "locked_out" if limit == ACCOUNT else "rate_limited")
    raise ProtocolError(ErrorCode.AUTHENTICATION_FAILED, close=True)


def _why_refused(conn: "NotificationProtocol", account: AccountRecord | None, answer: str) -> str | None:
    """The audit's reason to refuse this login, or None to let it in."""
    if account is None:
        return "unknown_account"
    password_ok = _password_ok(conn, account, answer)
    if account.disabled:
        return "disabled"
    return None if password_ok else "bad_password"


def _password_ok(conn: "NotificationProtocol", account: AccountRecord, answer: str) -> bool:
    # Unsealing is a few microseconds of AES-GCM and one MD5: cheaper than a thread hop.
    try:
        password = conn.realm.key.unseal(account.handle, account.credential)
    except (SealedWithOtherKey, InvalidTag):
        log.error("credential of {handle} was sealed with another server key", handle=account.handle)
        return False
    assert conn.salt is not None
    return md5_login_ok(password, conn.salt, answer)


def _complete_login(conn: "NotificationProtocol", command: Command, account: AccountRecord) -> "Deferred[None] | None":
    """Register the session first, then load its lists: changes made by others in between are
    queued on the connection and applied on top when their version is newer than the load.
    A client that hung up meanwhile leaves nothing behind: no session, no directory record."""
    realm = conn.realm
    if conn.closing:
        return None
    conn.cancel_login_deadline()
    conn.salt = None
    conn.register(account.handle)

    def loaded(snapshot: SyncSnapshot | None) -> None:
        if conn.closing:
            return  # hung up while the lists loaded: on_connection_lost unregistered it
        # Deleted or disabled meanwhile: the snapshot reads the account again after the session
        # registered, so a disable is either seen here or its event reaches the session.
        if snapshot is None or snapshot.account.disabled:
            audit.login_failed(account.handle, conn.peer, ErrorCode.AUTHENTICATION_FAILED,
                               "unknown_account" if snapshot is None else "disabled")
            conn.unregister()
            raise ProtocolError(ErrorCode.AUTHENTICATION_FAILED, close=True)
        state = SessionState.from_snapshot(snapshot)
        conn.mspauth = secrets.token_hex(16) + "$$"
        conn.login_time = int(realm.clock.seconds())
        assert conn.dialect is not None
        ok = ["OK", state.handle, encode_name(state.name)]
        if conn.dialect.verified_flag:
            ok.append("1" if state.verified else "0")
        conn.send("USR", command.trid, *ok)
        conn.send_payload("MSG", ("Hotmail", "Hotmail"), profile_payload(Profile(
            login_time=conn.login_time, email_enabled=state.email_enabled, member_id=account.id,
            preferred_email=state.handle, mspauth=conn.mspauth), full=conn.dialect.full_profile))
        send_initial_mail(conn, state)
        conn.logged_in(account.id, state)
        realm.count("login_ok")
        realm.last_logins.note(account.id)
        audit.login_ok(state.handle, conn.peer, realm.node.name, conn.dialect.name)

    def failed(failure: Failure) -> Failure:
        conn.unregister()
        return _store_failed(conn, failure, account.handle)

    return realm.store.get_snapshot(account.id, conn.dialect is not None and conn.dialect.groups).addCallbacks(loaded, failed)
