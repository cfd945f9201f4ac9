"""Rules a reviewer would check by grep, checked here so they stay true."""
from __future__ import annotations

import re
from pathlib import Path

import msnp6

ROOT = Path(msnp6.__file__).parent
PROTOCOL_MODULES = [*sorted((ROOT / "notification").glob("*.py")), ROOT / "switchboard.py"]


def test_protocol_handlers_never_look_up_another_connection():
    """Cross-user decisions read the presence directory and act through the bus; the local
    session registry is for metrics and shutdown only."""
    for path in PROTOCOL_MODULES:
        text = path.read_text()
        assert not re.search(r"\bsessions\.get\(|\bsessions\[|\bother\.(state|status|dialect)\b", text), path


def test_wire_format_is_free_of_twisted():
    for path in sorted((ROOT / "wire").glob("*.py")):
        assert "twisted" not in path.read_text(), path


def test_events_carry_no_connections_or_callables():
    from msnp6.events import EVENT_TYPES

    for cls in EVENT_TYPES.values():
        for field in cls.__attrs_attrs__:
            assert field.type in ("str", "int", "bool", "str | None", "int | None"), (cls, field.name, field.type)
