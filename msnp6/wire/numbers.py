"""The one parser for numbers in command arguments: plain ASCII decimal digits, nothing else.

Python's ``int()`` also takes other Unicode digits (``'١٢'``), ``'1_000'``, ``' 12'``, ``'+3'``
and raises on ``'²'`` although ``'²'.isdigit()``; none of that is MSNP. Every argument that is a
number goes through here, so a malformed one is refused the same way everywhere.
"""
from __future__ import annotations

#: TrIDs, list versions and session ids are unsigned 32-bit (notification.md 1.2, 1.3).
MAX_UINT32 = 2**32 - 1

#: More digits than this are refused before any conversion (bounded work on hostile input).
_MAX_DIGITS = 20

def parse_number(text: str, maximum: int = MAX_UINT32) -> int | None:
    """``text`` as a number from 0 to ``maximum``, or None when it is anything else."""
    # For an ASCII string, isdigit() is exactly 0-9.
    if not text or len(text) > _MAX_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= maximum else None
