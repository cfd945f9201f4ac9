"""The SYN list dump (notification.md 4.7), formatted without I/O so it can be tested byte-exact."""
from __future__ import annotations

from collections.abc import Mapping

import attrs

from ..store.records import LISTS, ContactInfo
from .dialects import Dialect
from .groups import DEFAULT_GROUP, DEFAULT_GROUP_NAME, IN_DEFAULT, format_ids
from .lines import format_line
from .names import encode_name

PHONE_KEYS = ("PHH", "PHW", "PHM")


def _opt(value: str | None) -> tuple[str, ...]:
    return (value,) if value else ()


@attrs.frozen
class Listing:
    """Everything a SYN dump shows of one account."""

    version: int
    gtc: str
    blp: str
    phones: Mapping[str, str | None]
    mobile_allowed: bool
    mobile_enabled: bool
    #: FL/AL/BL/RL: contact -> stored (decoded) name, in order.
    lists: Mapping[str, Mapping[str, str]]
    #: What the account may see of each FL contact's phone data.
    contacts: Mapping[str, ContactInfo]
    #: MSNP7 groups: id -> (decoded) name, in id order, group 0 included.
    groups: Mapping[int, str] = attrs.field(factory=lambda: {DEFAULT_GROUP: DEFAULT_GROUP_NAME})
    #: FL contacts in groups other than just group 0: handle -> sorted ids.
    fl_groups: Mapping[str, tuple[int, ...]] = attrs.field(factory=dict)


def own_properties(listing: Listing) -> list[tuple[str, tuple[str, ...]]]:
    return [
        *((key, _opt(listing.phones.get(key))) for key in PHONE_KEYS),
        ("MOB", ("Y" if listing.mobile_allowed else "N",)),
        ("MBE", ("Y" if listing.mobile_enabled else "N",)),
    ]


def _property(key: str, value: str | None) -> str:
    return f"{key} {value}\r\n" if value else f"{key}\r\n"


#: A contact's BPR properties when it does not let the viewer see them: blank, MOB N.
_HIDDEN = ("PHH\r\n", "PHW\r\n", "PHM\r\n", "MOB N\r\n")


def _bpr_text(version: int, handle: str, info: ContactInfo | None) -> list[str]:
    """The four BPR lines of a contact (text); blank (MOB N) unless they allow the viewer.
    Written out rather than through ``format_line``: a SYN dump has four per FL contact."""
    head = f"BPR {version} {handle} "
    if info is None or not info.allows_viewer:
        return [head + tail for tail in _HIDDEN]
    return [head + _property("PHH", info.phone_home), head + _property("PHW", info.phone_work),
            head + _property("PHM", info.phone_mobile), head + ("MOB Y\r\n" if info.mobile_allowed else "MOB N\r\n")]


def bpr_lines(version: int, handle: str, info: ContactInfo | None) -> list[bytes]:
    return [line.encode("utf-8") for line in _bpr_text(version, handle, info)]


def group_lines(trid: int, listing: Listing) -> list[bytes]:
    """``LSG t ver i n id name 0``, one per group (MSNP7)."""
    total, ver = len(listing.groups), listing.version
    return [format_line("LSG", trid, ver, i, total, group, encode_name(name), 0)
            for i, (group, name) in enumerate(listing.groups.items(), 1)]


def list_lines(trid: int, name: str, listing: Listing, dialect: Dialect, with_bpr: bool) -> list[bytes]:
    """``LST`` lines of one list (an empty list is one ``0 0`` line); BPR after FL entries; on
    MSNP7, an FL line ends with the contact's group ids. Written out rather than through
    ``format_line``: a login's dump is some 150 lines."""
    entries, ver = listing.lists[name], listing.version
    if not entries:
        return [format_line("LST", trid, name, ver, 0, 0)]
    total = len(entries)
    head = f"LST {trid} {name} {ver} "
    grouped = name == "FL" and dialect.groups
    bpr = with_bpr and name == "FL" and dialect.phone_properties
    fl_groups, contacts = listing.fl_groups, listing.contacts
    out: list[str] = []
    for i, (contact, stored) in enumerate(entries.items(), 1):
        if grouped:
            ids = format_ids(fl_groups.get(contact, IN_DEFAULT))
            out.append(f"{head}{i} {total} {contact} {encode_name(stored)} {ids}\r\n")
        else:
            out.append(f"{head}{i} {total} {contact} {encode_name(stored)}\r\n")
        if bpr:
            out += _bpr_text(ver, contact, contacts.get(contact))
    return [line.encode("utf-8") for line in out]


def dump(trid: int, listing: Listing, dialect: Dialect) -> list[bytes]:
    """Every line of a full SYN answer, in MSNP5/6 order (MSNP2-4: no PRP/BPR; MSNP7: the LSG
    lines between the PRP lines and the lists)."""
    ver = listing.version
    out = [
        format_line("SYN", trid, ver),
        format_line("GTC", trid, ver, listing.gtc),
        format_line("BLP", trid, ver, listing.blp),
    ]
    if dialect.phone_properties:
        out += [format_line("PRP", trid, ver, key, *value) for key, value in own_properties(listing)]
    if dialect.groups:
        out += group_lines(trid, listing)
    for name in LISTS:
        out += list_lines(trid, name, listing, dialect, with_bpr=True)
    return out
