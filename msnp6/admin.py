"""``msnp6-admin``: migrate the schema and manage accounts."""
from __future__ import annotations

import argparse
import csv
import getpass
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from . import accounts_import
from .admin_token import AdminTokenError, load_token, token_source
from .auth import CredentialKey, CredentialKeyError, CredentialKeyring
from .bus.memory import MemoryBus
from .paths import default_db_url, default_key_file
from .refusal import database_reason
from .services import AccountService, NoSuchAccount
from .services.accounts import MAX_REASON, name_problem, password_problem, valid_reason
from .services.invites import code_hash, new_code
from .store import rotation
from .store.engine import make_engine, refresh_statistics
from .store.schema import SchemaNotAtHead, open_database, schema_state, upgrade
from .store.sealing import key_for
from .store.store import DirectStore, DuplicateHandle
from .wire.names import encode_name, is_valid_handle, normalize_handle

T = TypeVar("T")


class AdminError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="msnp6-admin", description="Administer an msnp6 server.")
    p.add_argument("--db", default=None, help="database URL [default: $MSNP6_DB, else the embedded SQLite file]")
    p.add_argument("--key-file", default=None, help="credential key file [default: $MSNP6_KEY_FILE, else in the data dir]")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="upgrade the database schema to the newest revision")
    user = sub.add_parser("user", help="manage accounts").add_subparsers(dest="action", required=True)
    add = user.add_parser("add", help="create an account (password from a prompt or stdin)")
    add.add_argument("handle")
    add.add_argument("--name", help="friendly name [default: the handle]")
    add.add_argument("--unverified", action="store_true", help="mark the e-mail address unverified")
    user.add_parser("passwd", help="set a new password (from a prompt or stdin)").add_argument("handle")
    for action, text in (
        ("verify", "mark the e-mail address verified"),
        ("unverify", "mark the e-mail address unverified"),
        ("delete", "delete the account and take it off every list"),
    ):
        _online(user.add_parser(action, help=text)).add_argument("handle")
    user.add_parser("list", help="list accounts")
    bulk = user.add_parser("import", help="create accounts from a CSV file: handle,password,name[,verified]; "
                           "bad lines are reported and skipped")
    bulk.add_argument("file", help="the CSV file, or - for standard input")
    bulk.add_argument("--batch-size", type=_positive(int), default=500, help="accounts per transaction [500]")
    disable = _online(user.add_parser(
        "disable", help="refuse the account's logins (911, as for a wrong password) and end its session"))
    disable.add_argument("handle")
    disable.add_argument("--reason", default="", help="why (kept with the account; shown by user show)")
    _online(user.add_parser("enable", help="let a disabled account log in again")).add_argument("handle")
    user.add_parser("show", help="the account: flags, disabled, list sizes, created, last login").add_argument("handle")
    for action, text in (
        ("mail", "turn the Hotmail features (mail notices, inbox links) on or off"),
        ("mobile", "turn the mobile device flag (PRP MBE) on or off"),
    ):
        toggle = _online(user.add_parser(action, help=text))
        toggle.add_argument("handle")
        toggle.add_argument("state", choices=["on", "off"])
    directory = user.add_parser("directory", help="list the account in the member directory (FND), or --remove")
    directory.add_argument("handle")
    directory.add_argument("--first", default="")
    directory.add_argument("--last", default="")
    directory.add_argument("--city", default="")
    directory.add_argument("--state", default="")
    directory.add_argument("--country", default="US")
    directory.add_argument("--remove", action="store_true")
    mail = sub.add_parser("mail", help="Hotmail notices").add_subparsers(dest="action", required=True)
    notify = mail.add_parser("notify", help="one new message: the unread count goes up and an online user is told")
    notify.add_argument("handle")
    notify.add_argument("--from", dest="from_name", default="", help="sender's display name")
    notify.add_argument("--from-addr", required=True, help="sender's address")
    notify.add_argument("--subject", default="")
    _server_option(notify)
    session = sub.add_parser("session", help="online sessions").add_subparsers(dest="action", required=True)
    kick = _server_option(session.add_parser("kick", help="end the account's session on whichever node holds it"))
    kick.add_argument("handle")
    _server_option(sub.add_parser("who", help="every online session: handle, node, dialect, client version, "
                                              "address, since, status"))
    key = sub.add_parser("key", help="the credential key").add_subparsers(dest="action", required=True)
    rotate = key.add_parser("rotate", help="re-seal every password with a new key, in batches, servers running")
    rotate.add_argument("--new-key-file", required=True, help="the new key (made, mode 0600, if missing)")
    rotate.add_argument("--batch-size", type=_positive(int), default=500, help="passwords per transaction [default: 500]")
    rotate.add_argument("--pause", type=_positive(float, zero=True), default=0.0,
                        help="seconds between batches, to spread the load [default: 0]")
    for action in ("show", "status"):
        key.add_parser(action, help="the key file's id, the key ids in the database, the recorded rotation")
    invite = sub.add_parser("invite", help="sign-up invite codes (--signup invite)").add_subparsers(
        dest="action", required=True)
    make = invite.add_parser("create", help="make invite codes and print them (only their hashes are kept)")
    make.add_argument("--count", type=_positive(int), default=1, help="how many codes [default: 1]")
    make.add_argument("--expires-days", type=_positive(float), default=None,
                      help="days until they expire [default: never]")
    make.add_argument("--note", default="", help="what they are for (shown by invite list)")
    invite.add_parser("list", help="every invite: hash prefix, created, expires, used, used by, note")
    invitations = sub.add_parser("invitations", help="e-mail invitations users asked for (SND/SDC), newest first")
    invitations.add_argument("--limit", type=int, default=100)
    return p


def _positive(kind: type[int] | type[float], zero: bool = False) -> Any:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value < 0 or (value == 0 and not zero):
            raise ValueError(text)
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its error
    return parse


def _server_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """For the commands only a running server can answer."""
    parser.add_argument("--admin-url", default=None,
                        help="the server's admin port [default: $MSNP6_ADMIN_URL, else http://127.0.0.1:8180]")
    return _token_option(parser)


def _online(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--admin-url", default=None,
        help="the running server's admin port, so online users see the change at once [default: "
             "$MSNP6_ADMIN_URL; without one, or when it does not answer, the database is written "
             "directly and online users see the change at their next login]")
    return _token_option(parser)


def _token_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--admin-token-file", default=None,
        help="the admin port's token, as the server reads it [default: the token in $MSNP6_ADMIN_TOKEN, "
             "else the file $MSNP6_ADMIN_TOKEN_FILE, else admin-token next to the key file]")
    return parser


def _read_password(handle: str) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(f"Password for {handle}: ")
        if getpass.getpass("Again: ") != first:
            raise AdminError("the passwords differ")
        password = first
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    problem = password_problem(password)
    if problem is not None:
        raise AdminError(problem)
    return password


def _handle(raw: str) -> str:
    handle = normalize_handle(raw)
    if not is_valid_handle(handle):
        raise AdminError(f"{raw!r} is not a valid handle (an e-mail address such as alice@example.com)")
    return handle


def _key(args: argparse.Namespace, store: DirectStore) -> CredentialKeyring:
    """The keys of the database's passwords (a new one only for a database without any); they seal
    with a recorded rotation's new key."""
    return key_for(store.core.engine, Path(args.key_file or default_key_file()))


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    url = args.db or default_db_url()
    try:
        if args.command == "mail":
            return _mail_notify(args)
        if args.command == "session":
            return _kick(args)
        if args.command == "who":
            return _who(args)
        if args.command == "migrate":
            engine = make_engine(url)
            upgrade(engine)
            print(f"schema at {schema_state(engine).current}")
            return 0
        if args.command == "user" and args.action in ONLINE_ACTIONS and _through_server(args):
            return 0
        store = DirectStore(open_database(url))
        if args.command == "key":
            return _key_command(args, store)
        if args.command == "invite":
            return _invite(args, store)
        if args.command == "invitations":
            for inv in store.core.list_invitations(args.limit):
                print(f"{inv.created_at:%Y-%m-%d %H:%M}\t{inv.sender}\t{inv.recipient}\t{inv.body!r}")
            return 0
        return _user(args, store)
    except (AdminError, SchemaNotAtHead, CredentialKeyError, AdminTokenError, rotation.RotationError) as e:
        print(f"msnp6-admin: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.command == "key":
            print("msnp6-admin: interrupted; run the same command again to go on", file=sys.stderr)
        return 130
    except Exception as e:
        # An unreachable database or refused credentials: one line (it runs before every start
        # of the systemd unit and the compose stack), no traceback.
        reason = database_reason(e, url)
        if reason is None:
            raise
        print(f"msnp6-admin: {reason}", file=sys.stderr)
        return 1


def _key_command(args: argparse.Namespace, store: DirectStore) -> int:
    engine = store.core.engine
    key_file = Path(args.key_file or default_key_file())
    if args.action in ("show", "status"):
        return _key_show(engine, key_file)
    keyring = key_for(engine, key_file, create=False)
    new_file = Path(args.new_key_file)
    new_key = CredentialKey.load(new_file, create=True)
    recorded, resumed = rotation.begin(engine, keyring, key_file, new_key, new_file)
    keyring.add(new_key, newest=True)
    print(f"{'resuming the' if resumed else 'recorded the'} rotation from key id {recorded.from_id.hex()} "
          f"({recorded.from_file}) to key id {recorded.to_id.hex()} ({recorded.to_file})", flush=True)

    def progress(done: int, left: int) -> None:
        print(f"re-sealed {done}, {left} remaining", flush=True)

    done = rotation.reseal_all(engine, keyring, new_key, args.batch_size, args.pause, progress)
    print(f"done: {done} re-sealed now, every password is sealed with key id {new_key.key_id.hex()}.\n"
          f"Next: point --key-file ($MSNP6_KEY_FILE) of every server and msnp6-admin at {recorded.to_file} "
          f"and restart them one by one (running servers already use both keys). Keep {recorded.from_file} "
          "until then; remove it once none reads it.")
    return 0


def _key_show(engine: Any, key_file: Path) -> int:
    counts = rotation.key_counts(engine)
    recorded = rotation.read_rotation(engine)
    if key_file.exists():
        file_id = CredentialKey.load(key_file).key_id
        usable = not counts or file_id in counts or (recorded is not None and file_id == recorded.to_id)
        print(f"key file {key_file}: key id {file_id.hex()}{'' if usable else ' (not a key the database uses)'}")
    else:
        print(f"key file {key_file}: missing")
    if not counts:
        print("no passwords stored")
    for key_id, n in sorted(counts.items(), key=lambda item: -item[1]):
        print(f"key id {key_id.hex() if key_id else '(none: not a sealed credential)'}: {n} passwords")
    if recorded is None:
        print("no key rotation recorded")
    else:
        left = sum(n for key_id, n in counts.items() if key_id != recorded.to_id)
        state = f"unfinished, {left} passwords to re-seal" if left else "finished"
        print(f"rotation from key id {recorded.from_id.hex()} ({recorded.from_file}) to key id "
              f"{recorded.to_id.hex()} ({recorded.to_file}): {state}")
    return 0


def _server_url(args: argparse.Namespace) -> str:
    return str(args.admin_url or os.environ.get("MSNP6_ADMIN_URL") or "http://127.0.0.1:8180").rstrip("/")


def _unreachable(base: str, e: OSError) -> AdminError:
    return AdminError(f"cannot reach the server's admin port at {base} ({e}); is --admin set?")


def _mail_notify(args: argparse.Namespace) -> int:
    """Ask the running server (its admin port) to count and announce one new message. It answers
    ``accepted`` whether or not the account exists (web.MailPush); its log says what happened."""
    base = _server_url(args)
    fields = {"handle": _handle(args.handle), "from_name": args.from_name, "from_addr": args.from_addr,
              "subject": args.subject}
    try:
        print(f"{args.handle}: {_post(base + '/mail', fields, args)}")
        return 0
    except AdminError as e:
        raise AdminError(f"{args.handle}: {e}") from None
    except OSError as e:
        raise _unreachable(base, e) from None


def _kick(args: argparse.Namespace) -> int:
    """End the account's online session, on whichever node it is (the server's bus carries it)."""
    base, handle = _server_url(args), _handle(args.handle)
    try:
        answer = _post(f"{base}/sessions/{urllib.parse.quote(handle)}/kick", {}, args)
    except AdminError as e:
        raise AdminError(f"{handle}: {e}") from None
    except OSError as e:
        raise _unreachable(base, e) from None
    print(f"{handle}: {answer}")
    return 0


def _who(args: argparse.Namespace) -> int:
    """One line per online session, from the presence directory (every node's, in a cluster)."""
    base = _server_url(args)
    try:
        sessions = json.loads(_request(base + "/sessions", None, args))
    except OSError as e:
        raise _unreachable(base, e) from None
    for s in sessions:
        print("\t".join([s["handle"], s["node"], s["dialect"], s["client_version"] or "-", s["address"] or "-",
                         s["since"], s["status"] or "-"]))
    return 0


#: The user commands online sessions must hear of: through the running server when it answers.
ONLINE_ACTIONS = frozenset({"verify", "unverify", "delete", "mail", "mobile", "disable", "enable"})


def _post(url: str, fields: dict[str, str], args: argparse.Namespace) -> str:
    """POST a JSON object to the admin port with the admin token; AdminError for an answer other
    than 200 (a clear one for a refused token), OSError when unreachable."""
    return _request(url, fields, args)


def _request(url: str, fields: dict[str, str] | None, args: argparse.Namespace) -> str:
    """POST ``fields`` (GET when None) to the admin port with the admin token; the answer's text."""
    source = token_source(args.admin_token_file, Path(args.key_file or default_key_file()))
    token = load_token(source)
    headers = {"content-type": "application/json"} if fields is not None else {}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(fields).encode() if fields is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if fields is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.read().decode().strip())
    except urllib.error.HTTPError as e:
        answer = e.read().decode("utf-8", "replace").strip() or str(e.reason)
        if e.code == 401:
            found = f"the token in {source.describe()}" if token is not None else f"no token ({source.describe()} does not exist)"
            raise AdminError(
                f"the server refused the admin token ({answer}): sent {found}. Use the server's token: "
                "--admin-token-file, $MSNP6_ADMIN_TOKEN or $MSNP6_ADMIN_TOKEN_FILE (the server keeps it "
                "in admin-token next to its key file unless told otherwise)") from None
        raise AdminError(answer) from None


def _through_server(args: argparse.Namespace) -> bool:
    """Ask the running server to make the change (True), or say why not and let the caller write
    the database (False)."""
    base = args.admin_url or os.environ.get("MSNP6_ADMIN_URL")
    if not base:
        return False
    handle = _handle(args.handle)
    action = args.action
    fields = {"state": args.state} if action in ("mail", "mobile") else {}
    if action == "disable":
        fields["reason"] = args.reason
    url = f"{base.rstrip('/')}/accounts/{urllib.parse.quote(handle)}/{action}"
    try:
        _post(url, fields, args)
    except AdminError as e:
        raise AdminError(f"{handle}: {e}") from None
    except OSError as e:
        print(f"msnp6-admin: the server at {base} does not answer ({e}); writing the database directly "
              "(online users see it at their next login)", file=sys.stderr)
        return False
    print(_DONE[action](handle, getattr(args, "state", "")))
    return True


_DONE = {
    "verify": lambda h, s: f"{h} verified",
    "unverify": lambda h, s: f"{h} unverified",
    "delete": lambda h, s: f"deleted {h}",
    "mail": lambda h, s: f"mail for {h} {s}",
    "mobile": lambda h, s: f"mobile device for {h} {s}",
    "disable": lambda h, s: f"{h} disabled",
    "enable": lambda h, s: f"{h} enabled",
}


def _resolved(d: "Deferred[T]") -> T:
    """The result of a Deferred that has already fired (DirectStore runs on this thread)."""
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the store answered later than at once"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return cast(T, results[0])


def _user(args: argparse.Namespace, store: DirectStore) -> int:
    """The user commands without a running server: the same services the server runs, on a bus
    nobody listens to (nobody is online to tell)."""
    if args.action == "list":
        for a in _resolved(store.list_accounts()):
            flags = "verified" if a.verified else "unverified"
            print(f"{a.handle}\t{encode_name(a.friendly_name)}\t{flags}\tversion {a.list_version}")
        return 0
    if args.action == "import":
        return _import(args, store)
    handle = _handle(args.handle)
    if args.action == "add":
        name = args.name if args.name is not None else handle
        problem = name_problem(name)
        if problem is not None:
            raise AdminError(problem)
        if _resolved(store.get_account(handle)) is not None:
            raise AdminError(f"{handle} already exists")
        accounts = AccountService(store, MemoryBus(), _key(args, store))
        try:
            _resolved(accounts.create(handle, name, _read_password(handle), verified=not args.unverified))
        except DuplicateHandle:
            raise AdminError(f"{handle} already exists") from None
        print(f"created {handle}")
        return 0
    if args.action == "show":
        return _show(store, handle)
    if _resolved(store.get_account(handle)) is None:
        raise AdminError(f"no account {handle}")
    accounts = AccountService(store, MemoryBus(), _key(args, store) if args.action == "passwd" else None)
    try:
        if args.action == "passwd":
            _resolved(accounts.set_password(handle, _read_password(handle)))
            print(f"password of {handle} changed")
        elif args.action in ("verify", "unverify"):
            _resolved(accounts.set_verified(handle, args.action == "verify"))
        elif args.action == "delete":
            _resolved(accounts.delete(handle))
        elif args.action == "mail":
            _resolved(accounts.set_email_enabled(handle, args.state == "on"))
        elif args.action == "mobile":
            _resolved(accounts.set_mobile_enabled(handle, args.state == "on"))
        elif args.action == "disable":
            _resolved(accounts.disable(handle, _reason(args.reason)))
        elif args.action == "enable":
            _resolved(accounts.enable(handle))
        elif args.action == "directory":
            if args.remove:
                _resolved(accounts.remove_directory(handle))
                print(f"{handle} left the member directory")
            else:
                if not (args.first or args.last):
                    raise AdminError("a directory entry needs --first or --last")
                _resolved(accounts.set_directory(handle, args.first, args.last, args.city, args.state, args.country))
                print(f"{handle} listed in the member directory")
    except NoSuchAccount:
        raise AdminError(f"no account {handle}") from None
    if args.action in _DONE:
        print(_DONE[args.action](handle, getattr(args, "state", "")))
    return 0


def _import(args: argparse.Namespace, store: DirectStore) -> int:
    """Report each rejected line on stderr as it goes, the totals on stdout; exit status 1 when
    any line was left out (the others are in)."""
    accounts = AccountService(store, MemoryBus(), _key(args, store))
    created = rejected = 0
    try:
        source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8-sig", newline="")
    except OSError as e:
        raise AdminError(f"cannot read {args.file}: {e.strerror}") from None
    with source:
        try:
            for batch, bad in accounts_import.batches(accounts_import.parse(source), args.batch_size):
                left_out: list[str] = _resolved(accounts.create_many(
                    [(r.handle, r.name, r.password, r.verified) for r in batch]))
                existed = set(left_out)
                lines = sorted([(b.line, b.reason) for b in bad] + [
                    (r.line, f"{r.handle} already exists") for r in batch if r.handle in existed])
                for line, reason in lines:
                    print(f"line {line}: {reason}", file=sys.stderr)
                created += len(batch) - len(existed)
                rejected += len(lines)
        except UnicodeDecodeError:
            raise AdminError(f"{args.file} is not UTF-8 text; {created} accounts were created before it") from None
        except csv.Error as e:
            raise AdminError(f"{args.file}: {e}; {created} accounts were created before it") from None
    if created:
        refresh_statistics(store.core.engine)
    print(f"created {created} accounts, rejected {rejected} lines")
    return 1 if rejected else 0


#: The most codes one ``invite create`` makes.
MAX_INVITES = 1000


def _invite(args: argparse.Namespace, store: DirectStore) -> int:
    """``invite create`` prints new codes, one a line (the database keeps their hashes only);
    ``invite list`` one tab-separated line per invite, oldest first."""
    if args.action == "list":
        for i in _resolved(store.list_invites()):
            print("\t".join([i.code_hash[:12], _when(i.created_at), _when(i.expires_at),
                             _when(i.used_at) if i.used_at is not None else "unused", i.used_by or "-",
                             i.note or "-"]))
        return 0
    if args.count > MAX_INVITES:
        raise AdminError(f"at most {MAX_INVITES} codes at once")
    note = _reason(args.note, "note")
    until = datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days is not None else None
    codes = [new_code() for _ in range(args.count)]
    _resolved(store.create_invites([code_hash(c) for c in codes], note, until))
    for code in codes:
        print(code)
    return 0


def _reason(text: str, what: str = "reason") -> str:
    if not valid_reason(text):
        raise AdminError(f"the {what} must be at most {MAX_REASON} printable characters")
    return text


def _when(value: datetime | None) -> str:
    """A stored time in UTC, ISO format (SQLite hands back naive ones, stored as UTC)."""
    if value is None:
        return "never"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _show(store: DirectStore, handle: str) -> int:
    details = _resolved(store.account_details(handle))
    if details is None:
        raise AdminError(f"no account {handle}")
    a = details.account
    disabled = "no"
    if details.disabled_at is not None:
        disabled = f"since {_when(details.disabled_at)}"
        if details.disabled_reason:
            disabled += f": {details.disabled_reason}"
    onoff = {True: "on", False: "off"}
    for label, value in (
        ("handle", a.handle),
        ("name", encode_name(a.friendly_name)),
        ("verified", "yes" if a.verified else "no"),
        ("disabled", disabled),
        ("mail", onoff[a.email_enabled]),
        ("mobile", onoff[a.mobile_enabled]),
        ("list version", str(a.list_version)),
        ("lists", " ".join(f"{name} {n}" for name, n in details.list_sizes.items())),
        ("created", _when(details.created_at)),
        ("last login", _when(details.last_login_at)),
    ):
        print(f"{label}:\t{value}")
    return 0


def main() -> None:
    raise SystemExit(run())
