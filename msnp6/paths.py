"""Where the embedded defaults live: $MSNP6_HOME, else $XDG_DATA_HOME/msnp6, else ~/.local/share/msnp6."""
from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    if os.environ.get("MSNP6_HOME"):
        return Path(os.environ["MSNP6_HOME"])
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(xdg) / "msnp6"


def default_db_url() -> str:
    return os.environ.get("MSNP6_DB") or f"sqlite:///{data_dir() / 'msnp6.sqlite3'}"


def default_key_file() -> Path:
    return Path(os.environ.get("MSNP6_KEY_FILE") or data_dir() / "credential.key")


def default_admin_token_file(key_file: Path) -> Path:
    """Next to the credential key: both are the server's secrets, on the same volume."""
    return Path(os.environ.get("MSNP6_ADMIN_TOKEN_FILE") or key_file.parent / "admin-token")
