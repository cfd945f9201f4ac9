"""The admin port's token: what the state-changing endpoints require (``Authorization: Bearer``).

Where it comes from, first match wins, the same for the server and ``msnp6-admin``:
``--admin-token-file PATH``, then ``$MSNP6_ADMIN_TOKEN`` (the token itself, for containers), then
``$MSNP6_ADMIN_TOKEN_FILE``, then ``admin-token`` next to the credential key file. The server
creates a missing file (mode 0600, a random token) the way it creates the key file.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import attrs

from .paths import default_admin_token_file

TOKEN_VARIABLE = "MSNP6_ADMIN_TOKEN"

#: Shorter tokens could be guessed over the network; longer ones are surely a wrong file.
MIN_LENGTH = 16
MAX_LENGTH = 256


class AdminTokenError(Exception):
    """The admin token is missing, unreadable or malformed."""


@attrs.frozen
class TokenSource:
    """Where the token is read: ``path`` None means ``$MSNP6_ADMIN_TOKEN``."""

    path: Path | None

    def describe(self) -> str:
        return f"${TOKEN_VARIABLE}" if self.path is None else str(self.path)


def token_source(explicit_file: str | None, key_file: Path) -> TokenSource:
    if explicit_file:
        return TokenSource(Path(explicit_file))
    if os.environ.get(TOKEN_VARIABLE):
        return TokenSource(None)
    return TokenSource(default_admin_token_file(key_file))


def check_token(token: str, where: str) -> str:
    if not MIN_LENGTH <= len(token) <= MAX_LENGTH or not all("!" <= c <= "~" for c in token):
        raise AdminTokenError(
            f"the admin token in {where} must be {MIN_LENGTH} to {MAX_LENGTH} printable ASCII characters "
            "without spaces")
    return token


def load_token(source: TokenSource, create: bool = False) -> str | None:
    """The token; None when its file does not exist and ``create`` is false."""
    if source.path is None:
        return check_token(os.environ.get(TOKEN_VARIABLE, "").strip(), source.describe())
    path = source.path
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: read theirs
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        if create:
            raise AdminTokenError(f"admin token file {path} disappeared while it was created") from None
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise AdminTokenError(f"cannot read admin token file {path}: {e}") from None
    return check_token(text.strip(), str(path))
