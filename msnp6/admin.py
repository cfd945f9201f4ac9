"""``msnp6-admin``: migrate the schema and manage accounts."""
from __future__ import annotations

import argparse
import getpass
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Sequence

from .auth import CredentialKey, CredentialKeyError
from .paths import default_db_url, default_key_file
from .store.engine import make_engine
from .store.schema import SchemaNotAtHead, open_database, schema_state, upgrade
from .store.store import DuplicateHandle, StoreCore
from .wire.names import MAX_ENCODED_NAME_BYTES, encode_name, is_valid_handle, normalize_handle

MAX_PASSWORD = 128


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
    for action, text in (
        ("passwd", "set a new password (from a prompt or stdin)"),
        ("verify", "mark the e-mail address verified"),
        ("unverify", "mark the e-mail address unverified"),
        ("delete", "delete the account and take it off every list"),
    ):
        user.add_parser(action, help=text).add_argument("handle")
    user.add_parser("list", help="list accounts")
    for action, text in (
        ("mail", "turn the Hotmail features (mail notices, inbox links) on or off"),
        ("mobile", "turn the mobile device flag (PRP MBE) on or off"),
    ):
        toggle = user.add_parser(action, help=text)
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
    notify.add_argument("--admin-url", default=None,
                        help="the server's admin port [default: $MSNP6_ADMIN_URL, else http://127.0.0.1:8180]")
    invitations = sub.add_parser("invitations", help="e-mail invitations users asked for (SND/SDC), newest first")
    invitations.add_argument("--limit", type=int, default=100)
    return p


def _read_password(handle: str) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(f"Password for {handle}: ")
        if getpass.getpass("Again: ") != first:
            raise AdminError("the passwords differ")
        password = first
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise AdminError("the password is empty")
    if len(password) > MAX_PASSWORD or any(ord(c) < 0x20 for c in password):
        raise AdminError(f"the password must be at most {MAX_PASSWORD} printable characters")
    return password


def _handle(raw: str) -> str:
    handle = normalize_handle(raw)
    if not is_valid_handle(handle):
        raise AdminError(f"{raw!r} is not a valid handle (an e-mail address such as alice@example.com)")
    return handle


def _key(args: argparse.Namespace) -> CredentialKey:
    return CredentialKey.load(Path(args.key_file or default_key_file()), create=True)


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    url = args.db or default_db_url()
    try:
        if args.command == "mail":
            return _mail_notify(args)
        if args.command == "migrate":
            engine = make_engine(url)
            upgrade(engine)
            print(f"schema at {schema_state(engine).current}")
            return 0
        store = StoreCore(open_database(url))
        if args.command == "invitations":
            for inv in store.list_invitations(args.limit):
                print(f"{inv.created_at:%Y-%m-%d %H:%M}\t{inv.sender}\t{inv.recipient}\t{inv.body!r}")
            return 0
        return _user(args, store)
    except (AdminError, SchemaNotAtHead, CredentialKeyError) as e:
        print(f"msnp6-admin: {e}", file=sys.stderr)
        return 1


def _mail_notify(args: argparse.Namespace) -> int:
    """Ask the running server (its admin port) to count and announce one new message."""
    base = args.admin_url or os.environ.get("MSNP6_ADMIN_URL") or "http://127.0.0.1:8180"
    form = urllib.parse.urlencode({"handle": _handle(args.handle), "from_name": args.from_name,
                                   "from_addr": args.from_addr, "subject": args.subject}).encode()
    try:
        with urllib.request.urlopen(base.rstrip("/") + "/mail", data=form, timeout=10) as response:
            print(f"{args.handle}: {response.read().decode().strip()}")
            return 0
    except urllib.error.HTTPError as e:
        raise AdminError(f"{args.handle}: {e.read().decode().strip() or e.reason}") from None
    except OSError as e:
        raise AdminError(f"cannot reach the server's admin port at {base} ({e}); is --admin set?") from None


def _user(args: argparse.Namespace, store: StoreCore) -> int:
    if args.action == "list":
        for a in store.list_accounts():
            flags = "verified" if a.verified else "unverified"
            print(f"{a.handle}\t{encode_name(a.friendly_name)}\t{flags}\tversion {a.list_version}")
        return 0
    handle = _handle(args.handle)
    if args.action == "add":
        name = args.name if args.name is not None else handle
        if not name.strip() or len(encode_name(name)) > MAX_ENCODED_NAME_BYTES:
            raise AdminError(f"the friendly name must be 1 to {MAX_ENCODED_NAME_BYTES} bytes once encoded")
        if store.get_account(handle) is not None:
            raise AdminError(f"{handle} already exists")
        sealed = _key(args).seal(handle, _read_password(handle))
        try:
            store.create_account(handle, name, sealed, verified=not args.unverified)
        except DuplicateHandle:
            raise AdminError(f"{handle} already exists") from None
        print(f"created {handle}")
        return 0
    if store.get_account(handle) is None:
        raise AdminError(f"no account {handle}")
    if args.action == "passwd":
        store.set_credential(handle, _key(args).seal(handle, _read_password(handle)))
        print(f"password of {handle} changed")
    elif args.action in ("verify", "unverify"):
        store.set_verified(handle, args.action == "verify")
        print(f"{handle} {args.action}ed")
    elif args.action == "delete":
        store.delete_account(handle)
        print(f"deleted {handle}")
    elif args.action == "mail":
        store.set_email_enabled(handle, args.state == "on")
        print(f"mail for {handle} {args.state}")
    elif args.action == "mobile":
        store.set_mobile_enabled(handle, args.state == "on")
        print(f"mobile device for {handle} {args.state}")
    elif args.action == "directory":
        if args.remove:
            store.remove_directory(handle)
            print(f"{handle} left the member directory")
        else:
            if not (args.first or args.last):
                raise AdminError("a directory entry needs --first or --last")
            store.set_directory(handle, args.first, args.last, args.city, args.state, args.country)
            print(f"{handle} listed in the member directory")
    return 0


def main() -> None:
    raise SystemExit(run())
