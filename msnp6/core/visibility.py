"""The one visibility rule (notification.md 2.1): BL wins, then AL, then BLP."""
from __future__ import annotations

from collections.abc import Container


def allows(viewer: str, blp: str, allow_list: Container[str], block_list: Container[str]) -> bool:
    """Whether an owner with these privacy settings lets ``viewer`` see and reach them."""
    if viewer in block_list:
        return False
    return viewer in allow_list or blp == "AL"
