"""FND: member-directory search parameters and result lines."""
from __future__ import annotations

from collections.abc import Sequence

import attrs

from .names import InvalidText, decode_name, encode_name

FIELDS = ("fname", "lname", "city", "state", "country")
ANY = "*"


class BadSearch(ValueError):
    pass


@attrs.frozen(slots=True)
class Search:
    """Decoded search values; None means ``*`` (any)."""

    fname: str | None
    lname: str | None
    city: str | None
    state: str | None
    country: str | None


def parse_search(args: Sequence[str]) -> Search:
    """``fname=F lname=L city=C state=ST country=CC`` (all five, ``*`` = any)."""
    values: dict[str, str | None] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in FIELDS or key in values:
            raise BadSearch(f"bad FND parameter {arg[:32]!r}")
        try:
            values[key] = None if value in ("", ANY) else decode_name(value).strip()
        except InvalidText:
            raise BadSearch(f"a NUL in FND parameter {key}") from None
    if set(values) != set(FIELDS):
        raise BadSearch("FND needs fname, lname, city, state and country")
    search = Search(**values)
    if search.fname is None and search.lname is None:
        raise BadSearch("a search needs a first or a last name")
    if (search.country or "").upper() != "US" and (search.city is not None or search.state is not None):
        raise BadSearch("city and state are only searchable in the US")
    return search


@attrs.frozen(slots=True)
class Hit:
    handle: str
    first_name: str
    last_name: str
    city: str
    state: str
    country: str


def hit_args(hit: Hit) -> tuple[str, ...]:
    """What a result line shows: the names and place, never the handle."""
    return (
        f"fname={encode_name(hit.first_name)}", f"lname={encode_name(hit.last_name)}",
        f"city={encode_name(hit.city) or ANY}", f"state={encode_name(hit.state) or ANY}",
        f"country={encode_name(hit.country) or ANY}",
    )
