"""``msnp6-admin user import``: accounts from a CSV file of another server's users.

One line per account: ``handle,password,friendly name[,verified]`` (a first line starting with
``handle`` is a header). A bad line is reported with its number and why, and the others go on;
the accounts are created in batches, one transaction each."""
from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

import attrs

from .services.accounts import name_problem, password_problem
from .wire.names import is_valid_handle, normalize_handle

#: The spellings of the optional fourth column (empty: verified, as ``user add`` makes them).
VERIFIED = {"": True, "1": True, "true": True, "yes": True, "verified": True,
            "0": False, "false": False, "no": False, "unverified": False}


@attrs.frozen(slots=True)
class Row:
    line: int
    handle: str
    name: str
    password: str = attrs.field(repr=False)
    verified: bool


@attrs.frozen(slots=True)
class Rejected:
    line: int
    reason: str


def shown(text: str) -> str:
    """A value from the file as the report prints it: quoted, escaped, cut short."""
    return ascii(text if len(text) <= 80 else text[:80] + "...")


def parse(lines: Iterable[str]) -> Iterator[Row | Rejected]:
    """Each line of the CSV as a Row to create or the reason it cannot be; a handle seen on an
    earlier line of the file is rejected here (one existing in the database is the store's)."""
    seen: dict[str, int] = {}
    reader = csv.reader(lines)
    for fields in reader:
        line = reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        if line == 1 and fields[0].strip().lower() == "handle":
            continue
        if len(fields) not in (3, 4):
            yield Rejected(line, f"expected handle,password,name[,verified], got {len(fields)} fields")
            continue
        raw_handle, password, name = fields[0], fields[1], fields[2]
        handle = normalize_handle(raw_handle.strip())
        flag = fields[3].strip().lower() if len(fields) == 4 else ""
        if not is_valid_handle(handle):
            yield Rejected(line, f"bad handle {shown(raw_handle)}")
        elif handle in seen:
            yield Rejected(line, f"duplicate: {handle} is on line {seen[handle]} too")
        elif (problem := password_problem(password)) is not None:
            yield Rejected(line, f"{handle}: {problem}")
        elif (problem := name_problem(name)) is not None:
            yield Rejected(line, f"{handle}: {problem}")
        elif flag not in VERIFIED:
            yield Rejected(line, f"{handle}: the verified flag must be 1/0, true/false or yes/no, "
                                 f"not {shown(fields[3])}")
        else:
            seen[handle] = line
            yield Row(line, handle, name, password, VERIFIED[flag])


def batches(rows: Iterable[Row | Rejected], size: int) -> Iterator[tuple[list[Row], list[Rejected]]]:
    """The rows in groups of at most ``size`` accounts, each with the lines rejected on the way."""
    batch: list[Row] = []
    rejected: list[Rejected] = []
    for row in rows:
        if isinstance(row, Rejected):
            rejected.append(row)
            continue
        batch.append(row)
        if len(batch) == size:
            yield batch, rejected
            batch, rejected = [], []
    if batch or rejected:
        yield batch, rejected
