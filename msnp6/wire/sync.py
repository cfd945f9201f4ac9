"""The SYN list dump (notification.md 4.7), formatted without I/O so it can be tested byte-exact."""
from __future__ import annotations

from ..store.records import LISTS, ContactInfo, SyncSnapshot
from .dialects import Dialect
from .lines import format_line
from .names import encode_name

PHONE_KEYS = ("PHH", "PHW", "PHM")


def _opt(value: str | None) -> tuple[str, ...]:
    return (value,) if value else ()


def own_properties(snapshot: SyncSnapshot) -> list[tuple[str, tuple[str, ...]]]:
    a = snapshot.account
    return [
        ("PHH", _opt(a.phone_home)),
        ("PHW", _opt(a.phone_work)),
        ("PHM", _opt(a.phone_mobile)),
        ("MOB", ("Y" if a.mobile_allowed else "N",)),
        ("MBE", ("Y" if a.mobile_enabled else "N",)),
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


def dump(trid: int, snapshot: SyncSnapshot, dialect: Dialect) -> list[bytes]:
    """Every line of a full SYN answer, in MSNP5/6 order (MSNP3/4: no PRP/BPR)."""
    account, ver = snapshot.account, snapshot.account.list_version
    out = [
        format_line("SYN", trid, ver),
        format_line("GTC", trid, ver, account.gtc),
        format_line("BLP", trid, ver, account.blp),
    ]
    if dialect.phone_properties:
        out += [format_line("PRP", trid, ver, key, *value) for key, value in own_properties(snapshot)]
    for name in LISTS:
        entries = snapshot.lists[name]
        if not entries:
            out.append(format_line("LST", trid, name, ver, 0, 0))
            continue
        total = len(entries)
        for i, entry in enumerate(entries, 1):
            out.append(format_line("LST", trid, name, ver, i, total, entry.contact, encode_name(entry.name)))
            if name == "FL" and dialect.phone_properties:
                out += bpr_lines(ver, entry.contact, snapshot.contacts.get(entry.contact))
    return out
