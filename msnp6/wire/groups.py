"""MSNP7 contact groups (notification.md 4.18): ids, names and the id list an FL entry carries."""
from __future__ import annotations

from collections.abc import Iterable

from .numbers import parse_number

#: Group ids run 0..29; group 0 ("Other Contacts") always exists and cannot be removed.
MAX_GROUPS = 30
DEFAULT_GROUP = 0
DEFAULT_GROUP_NAME = "Other Contacts"
#: ADG refuses longer names with 229. REG's bound is 61 or 127 bytes (unconfirmed): we apply
#: ADG's to both, so a rename never makes a name ADG would have refused.
MAX_GROUP_NAME_BYTES = 61
#: A name this long (encoded) is abuse rather than a mistake: the connection is dropped.
ABSURD_GROUP_NAME_BYTES = 387
#: The ids of an FL entry in no group but the default one (shared: most entries are there).
IN_DEFAULT: tuple[int, ...] = (DEFAULT_GROUP,)


def parse_group_id(text: str) -> int | None:
    """A group id as a client sends it: a decimal number (ASCII digits, the one number parser),
    None when it is not one."""
    return parse_number(text)


def in_range(group: int) -> bool:
    return 0 <= group < MAX_GROUPS


def format_ids(groups: Iterable[int]) -> str:
    """The comma-separated id list of an FL entry (``LST`` and the ``group_ids`` column)."""
    return ",".join(str(g) for g in sorted(groups)) or str(DEFAULT_GROUP)


def parse_ids(text: str | None) -> tuple[int, ...]:
    """The stored id list back as a tuple (sorted, default group when empty)."""
    if not text or text == "0":
        return IN_DEFAULT
    return tuple(sorted(int(g) for g in text.split(",")))
