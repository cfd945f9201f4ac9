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


def profile_payload(p: Profile, full: bool = True) -> bytes:
    """The ``text/x-msmsgsprofile`` message sent after ``USR OK``: the field set of MSNP3-MSNP7,
    or (``full`` False, MSNP2) ``LoginTime`` alone (notification.md 4.4)."""
    head = "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\n"
    if not full:
        return (head + f"LoginTime: {p.login_time}\r\n\r\n").encode("utf-8")
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
    body = "".join(f"{k}: {v}\r\n" for k, v in fields)
    return (head + body + "\r\n").encode("utf-8")


def _header_value(value: str) -> str:
    """Header values travel as one line; non-ASCII text becomes an RFC 2047 encoded word."""
    value = " ".join(value.splitlines())
    if value.isascii():
        return value
    from email.header import Header

    return Header(value, "utf-8").encode()


def _message(content_type: str, fields: list[tuple[str, str]]) -> bytes:
    head = f"MIME-Version: 1.0\r\nContent-Type: {content_type}; charset=UTF-8\r\n\r\n"
    return (head + "".join(f"{k}: {_header_value(v)}\r\n" for k, v in fields) + "\r\n").encode("utf-8")


def initial_mail_payload(inbox_unread: int, folders_unread: int, post_url: str) -> bytes:
    """``text/x-msmsgsinitialemailnotification``: the unread counts, once after login (MSNP3+)."""
    return _message("text/x-msmsgsinitialemailnotification", [
        ("Inbox-Unread", str(inbox_unread)),
        ("Folders-Unread", str(folders_unread)),
        ("Inbox-URL", "/cgi-bin/HoTMaiL"),
        ("Folders-URL", "/cgi-bin/folders"),
        ("Post-URL", post_url),
    ])


@attrs.frozen(slots=True)
class MailNotice:
    from_name: str
    from_addr: str
    subject: str
    message_url: str
    post_url: str
    dest_folder: str = "ACTIVE"


def new_mail_payload(n: MailNotice, content_type: str = "text/x-msmsgsemailnotification",
                     with_id: bool = True) -> bytes:
    """One new message arrived. ``content_type`` and ``with_id`` come from the dialect (MSNP2:
    ``application/x-msmsgsemailnotification``, no ``id``; MSNP3+ adds ``id: 2``)."""
    fields = [
        ("From", n.from_name),
        ("Message-URL", n.message_url),
        ("Post-URL", n.post_url),
        ("Subject", n.subject),
        ("Dest-Folder", n.dest_folder),
        ("From-Addr", n.from_addr),
    ]
    return _message(content_type, [*fields, ("id", "2")] if with_id else fields)
