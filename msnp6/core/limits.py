"""The operator-tunable limits: one value type with the defaults, and the ``--limit`` /
``MSNP6_LIMITS`` syntax (``NAME=N/SECONDS`` for a rate, ``NAME=N`` for a cap)."""
from __future__ import annotations

from collections.abc import Iterable

import attrs


@attrs.frozen(slots=True)
class Limit:
    #: Events allowed per ``window`` seconds (a rate), or things held at once (a cap: no window).
    count: int
    window: float | None = None

    def __str__(self) -> str:
        if self.window is None:
            return str(self.count)
        return f"{self.count}/{self.window:g}"


@attrs.frozen(slots=True)
class LimitInfo:
    name: str
    default: Limit
    #: What is counted, and what the offender gets: for the README table and ``--help``.
    counts: str
    answer: str


#: Every limit, in the order the README lists them. Rates have a default window; caps have none.
INFO: tuple[LimitInfo, ...] = (
    LimitInfo("login-account", Limit(10, 300), "failed `USR MD5 S` answers per account, each counted before the next is checked", "`911`, close"),
    LimitInfo("login-address", Limit(100, 300), "failed `USR MD5 S` answers per client address (NAT puts many people behind one)", "`911`, close"),
    LimitInfo("connections-address", Limit(128), "open DS+NS+SB connections per client address", "new connection closed at once, nothing sent"),
    LimitInfo("prelogin-total", Limit(5000), "connections of this node not logged in yet (DS connections always count)", "new connection closed at once, nothing sent"),
    LimitInfo("cal", Limit(20, 10), "switchboard `CAL`s per account", "`713`"),
    LimitInfo("rename", Limit(5, 30), "own renames (`REA`) per account", "`800`"),
    LimitInfo("page", Limit(10, 60), "mobile pages (`PAG`) per account", "`800`"),
    LimitInfo("invitation", Limit(20, 3600), "e-mail invitations (`SND`/`SDC`) per account", "`800`"),
    LimitInfo("xfr-sb", Limit(30, 60), "`XFR SB` requests per account", "`800`"),
    LimitInfo("signup-address", Limit(5, 3600), "web sign-up attempts per client address that reach the database, created or refused", "a `429` page"),
    LimitInfo("cookies-user", Limit(20), "live (unused, unexpired) `XFR SB` cookies per account", "`800`"),
    LimitInfo("fl", Limit(600), "forward list entries", "`210`"),
    LimitInfo("al", Limit(1000), "allow list entries", "`210`"),
    LimitInfo("bl", Limit(1000), "block list entries", "`210`"),
    LimitInfo("mail-address", Limit(20, 3600), "mails asked for on the web side (password resets, verification) per client address", "a `429` page"),
    LimitInfo("mail-account", Limit(3, 3600), "reset and verification mails asked for per e-mail address (with an account or not)", "no mail, the same page"),
    LimitInfo("sb-participants", Limit(20), "people in (or invited to) one switchboard session", "`280` to the `CAL`"),
)

NAMES: tuple[str, ...] = tuple(info.name for info in INFO)
_DEFAULTS = {info.name: info.default for info in INFO}


class LimitError(ValueError):
    """A ``--limit`` / ``MSNP6_LIMITS`` item that is not ``NAME=N[/SECONDS]`` with a known name."""


@attrs.frozen(slots=True)
class Limits:
    """Every limit, by name; the ones not given keep their default."""

    values: dict[str, Limit] = attrs.field(factory=lambda: dict(_DEFAULTS))

    def __getitem__(self, name: str) -> Limit:
        return self.values[name]

    def replace(self, **limits: Limit) -> "Limits":
        """A copy with some limits changed (keyword names use ``_`` for ``-``)."""
        changed = {name.replace("_", "-"): value for name, value in limits.items()}
        unknown = set(changed) - set(_DEFAULTS)
        if unknown:
            raise LimitError(f"unknown limit {sorted(unknown)[0]!r}")
        return Limits({**self.values, **changed})

    def overridden(self, items: Iterable[str]) -> "Limits":
        """A copy with ``NAME=N[/SECONDS]`` items applied in order (a later one wins)."""
        values = dict(self.values)
        for item in items:
            name, limit = parse_item(item)
            values[name] = limit
        return Limits(values)


def parse_item(item: str) -> tuple[str, Limit]:
    name, sep, value = item.strip().partition("=")
    name = name.strip()
    if not sep:
        raise LimitError(f"limit {item!r}: expected NAME=N or NAME=N/SECONDS")
    if name not in _DEFAULTS:
        raise LimitError(f"unknown limit {name!r} (known: {', '.join(NAMES)})")
    rate = _DEFAULTS[name].window is not None
    count_text, slash, window_text = value.strip().partition("/")
    if rate and not slash:
        raise LimitError(f"limit {name!r} is a rate: give it as {name}=N/SECONDS")
    if not rate and slash:
        raise LimitError(f"limit {name!r} is a cap without a window: give it as {name}=N")
    count = _number(name, count_text, int)
    window = _number(name, window_text, float) if rate else None
    return name, Limit(int(count), window)


def _number(name: str, text: str, kind: type[int] | type[float]) -> float:
    try:
        # ASCII digits only: int() would take other scripts' digits too.
        if not text.isascii():
            raise ValueError
        number = kind(text)
    except ValueError:
        raise LimitError(f"limit {name!r}: {text!r} is not a number") from None
    if not 0 < number < float("inf"):
        raise LimitError(f"limit {name!r}: {text!r} must be more than 0")
    return number


def parse_list(text: str) -> list[str]:
    """``MSNP6_LIMITS``: comma-separated items; empty ones are ignored."""
    return [item for item in (part.strip() for part in text.split(",")) if item]
