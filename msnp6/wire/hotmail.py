"""Payloads of the server's ``MSG Hotmail Hotmail`` messages (byte-exact, CRLF line ends)."""
from __future__ import annotations

import attrs


@attrs.frozen(slots=True)
class Profile:
    login_time: int
    email_enabled: bool
    member_id: int
    preferred_email: str
    mspauth: str
    lang_preference: int = 1033
    country: str = ""
    kv: int = 2


def profile_payload(p: Profile) -> bytes:
    """The ``text/x-msmsgsprofile`` message sent after ``USR OK`` (field set of MSNP3-MSNP7)."""
    member_high, member_low = p.member_id >> 32, p.member_id & 0xFFFFFFFF
    if member_low >= 2**31:
        member_low -= 2**32  # the real service sent the low half as a signed 32-bit number
    fields = [
        ("LoginTime", str(p.login_time)),
        ("EmailEnabled", "1" if p.email_enabled else "0"),
        ("MemberIdHigh", str(member_high)),
        ("MemberIdLow", str(member_low)),
        ("lang_preference", str(p.lang_preference)),
        ("preferredEmail", p.preferred_email),
        ("country", p.country),
        ("PostalCode", ""),
        ("Gender", ""),
        ("Kid", "0"),
        ("Age", ""),
        ("BDayPre", ""),
        ("Birthday", ""),
        ("Wallet", ""),
        ("Flags", "1027"),
        ("sid", "507"),
        ("kv", str(p.kv)),
        ("MSPAuth", p.mspauth),
    ]
    head = "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\n"
    body = "".join(f"{k}: {v}\r\n" for k, v in fields)
    return (head + body + "\r\n").encode("utf-8")
