"""User handles (e-mail addresses) and URL-encoded friendly names."""
from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

#: The 1999 draft caps a handle at 129 bytes and an encoded friendly name at 387 bytes.
MAX_HANDLE_BYTES = 129
MAX_ENCODED_NAME_BYTES = 387

# local@domain.tld: a dot in the domain (``a@b`` is malformed per the reference), no spaces or
# control characters, no second ``@``.
_HANDLE = re.compile(
    r"^[A-Za-z0-9!#$&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
)


def normalize_handle(handle: str) -> str:
    return handle.strip().lower()


def is_valid_handle(handle: str) -> bool:
    return len(handle.encode("utf-8")) <= MAX_HANDLE_BYTES and _HANDLE.match(handle) is not None


def _must_escape(byte: int) -> bool:
    # Space, %, control bytes and everything above 0x7F: the draft says non-7-bit bytes must be
    # %-encoded, and old 3.x/4.x clients are safest with pure ASCII on the wire.
    return byte <= 0x20 or byte == 0x25 or byte >= 0x7F


_ESCAPES = [f"%{b:02X}" if _must_escape(b) else chr(b) for b in range(256)]


#: A name with none of the bytes ``_must_escape`` names is its own wire form (most names are).
_NOTHING_TO_ESCAPE = re.compile(r"[\x21-\x24\x26-\x7e]*")


def encode_name(name: str) -> str:
    """Stored (decoded) friendly name -> wire form."""
    if _NOTHING_TO_ESCAPE.fullmatch(name):
        return name
    return "".join(_ESCAPES[b] for b in name.encode("utf-8"))


class InvalidText(ValueError):
    """Percent-decoded text holding a NUL: no client means one, and PostgreSQL cannot store it."""


def decode_name(wire: str) -> str:
    """Wire form -> stored name. Invalid UTF-8 falls back to Latin-1, as some old clients sent.
    Raises InvalidText for a ``%00``."""
    raw = unquote_to_bytes(wire)
    if b"\x00" in raw:
        raise InvalidText("a NUL in percent-encoded text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def encoded_name_fits(name: str) -> bool:
    """Length check on a decoded name, encoded the way we will send it."""
    return len(encode_name(name)) <= MAX_ENCODED_NAME_BYTES
