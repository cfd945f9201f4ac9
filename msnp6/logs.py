"""Log output: twistd's text format by default, or one flat JSON object per line for shippers.

The code logs with twisted.logger and named fields (``conn``, ``service``, ``peer``...); the JSON
format keeps those fields as keys next to the rendered message, so a shipper can index them.
"""
from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import IO, Any

from twisted.logger import FileLogObserver, ILogObserver, formatEvent

# Keys the legacy twisted.python.log bridge adds; the rendered message already carries them.
_LEGACY_KEYS = frozenset({"message", "format", "isError", "system", "time", "why", "failure", "printed"})


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def event_as_json(event: dict[str, Any]) -> str:
    """One log event as a single-line JSON object: time, level, namespace, message, fields."""
    record: dict[str, Any] = {
        k: _jsonable(v) for k, v in event.items() if not k.startswith("log_") and k not in _LEGACY_KEYS
    }
    level = event.get("log_level")
    record.update(
        time=datetime.fromtimestamp(event.get("log_time", 0), UTC).isoformat(timespec="milliseconds"),
        level=getattr(level, "name", "info"),
        namespace=event.get("log_namespace", "?"),
        system=event.get("log_system", "-"),
        message=formatEvent(event),
    )
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def json_observer(out: IO[str]) -> ILogObserver:
    return FileLogObserver(out, event_as_json)  # flushes after every event


def json_stdout_observer() -> ILogObserver:
    """A twistd ``--logger`` factory (``--log-format json`` names it): JSON lines on stdout."""
    return json_observer(sys.stdout)


#: What twistd's ``--logger`` gets for each ``--log-format``; None keeps twistd's own text
#: observer (and its ``--logfile``).
LOGGERS: dict[str, str | None] = {"text": None, "json": f"{__name__}.json_stdout_observer"}
