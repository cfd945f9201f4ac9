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


def contact_properties(info: ContactInfo | None) -> list[tuple[str, tuple[str, ...]]]:
    """The four BPR properties of a contact; blank (MOB N) unless they allow the viewer."""
    if info is None or not info.allows_viewer:
        return [("PHH", ()), ("PHW", ()), ("PHM", ()), ("MOB", ("N",))]
    return [
        ("PHH", _opt(info.phone_home)),
        ("PHW", _opt(info.phone_work)),
        ("PHM", _opt(info.phone_mobile)),
        ("MOB", ("Y" if info.mobile_allowed else "N",)),
    ]


def bpr_lines(version: int, handle: str, info: ContactInfo | None) -> list[bytes]:
    return [format_line("BPR", None, version, handle, key, *value) for key, value in contact_properties(info)]


def group_lines(trid: int, listing: Listing) -> list[bytes]:
    """``LSG t ver i n id name 0``, one per group (MSNP7)."""
    total, ver = len(listing.groups), listing.version
    return [format_line("LSG", trid, ver, i, total, group, encode_name(name), 0)
            for i, (group, name) in enumerate(listing.groups.items(), 1)]


def list_lines(trid: int, name: str, listing: Listing, dialect: Dialect, with_bpr: bool) -> list[bytes]:
    """``LST`` lines of one list (an empty list is one ``0 0`` line); BPR after FL entries; on
    MSNP7, an FL line ends with the contact's group ids."""
    entries, ver = listing.lists[name], listing.version
    if not entries:
        return [format_line("LST", trid, name, ver, 0, 0)]
    out = []
    total = len(entries)
    grouped = name == "FL" and dialect.groups
    for i, (contact, stored) in enumerate(entries.items(), 1):
        if grouped:
            ids = format_ids(listing.fl_groups.get(contact, IN_DEFAULT))
            out.append(format_line("LST", trid, name, ver, i, total, contact, encode_name(stored), ids))
        else:
            out.append(format_line("LST", trid, name, ver, i, total, contact, encode_name(stored)))
        if with_bpr and name == "FL" and dialect.phone_properties:
            out += bpr_lines(ver, contact, listing.contacts.get(contact))
    return out


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
