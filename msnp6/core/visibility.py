"""The one visibility rule (notification.md 2.1): BL wins, then AL, then BLP."""
from __future__ import annotations

from collections.abc import Container, Iterable


def allows(viewer: str, blp: str, allow_list: Container[str], block_list: Container[str]) -> bool:
    """Whether an owner with these privacy settings lets ``viewer`` see and reach them."""
    return allows_marked(blp, viewer in allow_list, viewer in block_list)


def allows_marked(blp: str, on_allow_list: bool, on_block_list: bool) -> bool:
    """``allows``, told where the viewer stands (a login's snapshot reads that from SQL)."""
    return not on_block_list and (on_allow_list or blp == "AL")


def allowed(viewers: Iterable[str], blp: str, allow_list: Container[str], block_list: Container[str]) -> list[str]:
    """The ``viewers`` that ``allows`` lets in, in one pass (presence fan-out to a whole RL)."""
    if blp == "AL":
        return [v for v in viewers if v not in block_list]
    return [v for v in viewers if v not in block_list and v in allow_list]
