"""Why the server cannot start, said once: one line in the chosen log format and an exit status.

twistd builds the service tree (and so opens the database and reads the key) before its logger
starts, so a fault there would reach the terminal as a raw traceback in no log format at all.
Expected faults (an unreachable database, refused credentials, a schema not at head, the wrong
key, bad option values) become one line naming the reason, without a traceback: in text on
stderr, in JSON on stdout with the other JSON records. Unexpected faults keep their traceback,
in JSON inside the one record.
"""
from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn

from sqlalchemy.exc import ArgumentError, DBAPIError
from twisted.application import service
from twisted.logger import Logger, LogLevel

from .logs import event_as_json
from .startup import exit_now, without_password

#: A configuration the server refuses (bad options, a schema not at head, the wrong key, refused
#: credentials): restarting will not help (systemd: RestartPreventExitStatus=2).
REFUSED = 2
#: Something around the server failed (the database is unreachable, a port is taken) or an
#: unexpected fault: a restart may succeed.
FAILED = 1

NAMESPACE = "msnp6.startup"

log = Logger(namespace=NAMESPACE)


class CannotStart(Exception):
    """An expected start-up fault: ``str()`` is the reason, ``code`` the exit status."""

    def __init__(self, reason: str, code: int = REFUSED) -> None:
        super().__init__(reason)
        self.code = code


def format_line(message: str, log_format: str, failure_text: str | None = None) -> str:
    """``message`` as one error record of ``log_format`` (json, else text), newline included;
    ``failure_text`` (a traceback) goes in a field of the same JSON record."""
    if log_format == "json":
        escaped = message.replace("{", "{{").replace("}", "}}")  # a format string, not a field
        event = {"log_level": LogLevel.error, "log_namespace": NAMESPACE, "log_system": "-",
                 "log_time": time.time(), "log_format": escaped}
        if failure_text is not None:
            event["traceback"] = failure_text
        return event_as_json(event)
    text = message if failure_text is None else f"{message}\n{failure_text.rstrip()}"
    return text + "\n"


def refuse(message: str, log_format: str, code: int, failure_text: str | None = None) -> NoReturn:
    """Print ``message`` (JSON on stdout, text on stderr) and exit with ``code`` at once."""
    stream = sys.stdout if log_format == "json" else sys.stderr
    stream.write(format_line(message, log_format, failure_text))
    exit_now(code)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else ""


def database_reason(error: BaseException, url: str) -> CannotStart | None:
    """An error opening the database at ``url`` as a reason, or None if it is not one we know."""
    shown = without_password(url)
    if isinstance(error, ArgumentError):
        return CannotStart(f"--db / $MSNP6_DB is not a database URL: {_first_line(str(error))}")
    if isinstance(error, DBAPIError):
        detail = _first_line(str(error.orig)) or type(error.orig).__name__
        # psycopg: 'connection failed: connection to server at "h", port 1 failed: Connection refused'
        detail = detail.rpartition(" failed: ")[2] if " failed: " in detail else detail
        detail = detail.removeprefix("FATAL:").strip()
        detail = detail[:1].lower() + detail[1:]
        lowered = detail.lower()
        if "password" in lowered or "authentication" in lowered or "role" in lowered:
            return CannotStart(f"the database at {shown} refused the login: {detail}")
        if "does not exist" in lowered or "permission denied" in lowered:
            return CannotStart(f"the database at {shown} cannot be used: {detail}")
        if url.startswith("sqlite"):
            return CannotStart(f"the database at {shown} cannot be opened: {detail}")
        return CannotStart(f"the database at {shown} is unreachable: {detail}", FAILED)
    if isinstance(error, OSError) and error.strerror:
        where = f" {error.filename}" if error.filename else ""
        return CannotStart(f"the database at {shown} cannot be opened:{where}: {error.strerror.lower()}")
    return None


@contextmanager
def refusing(log_format: str) -> Iterator[None]:
    """Run the start-up steps inside: a CannotStart, or any other exception, ends the process
    with one line (a traceback only for the unexpected)."""
    try:
        yield
    except CannotStart as e:
        refuse(f"msnp6 cannot start: {e}", log_format, e.code)
    except Exception as e:
        if log_format != "json":
            raise  # twistd prints it, as it always has
        refuse(f"msnp6 cannot start: unexpected {type(e).__name__}: {_first_line(str(e))}", log_format,
               FAILED, traceback.format_exc())


def log_format_in(args: Sequence[str], default: str) -> str:
    """The --log-format named in ``args`` (the last one wins, as in option parsing), else ``default``."""
    found = default
    for i, arg in enumerate(args):
        if arg == "--log-format" and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith("--log-format="):
            found = arg.partition("=")[2]
    return found


class Guarded(service.MultiService):
    """The top of the service tree. twistd's logger runs by the time services start, so a fault
    there is logged once (in JSON, one record with the traceback in a field) and the process
    exits 1, rather than Python printing the traceback line by line into the log."""

    def startService(self) -> None:
        try:
            super().startService()
        except Exception:
            log.failure("msnp6 cannot start: a service failed to start")
            exit_now(FAILED)
