"""Mobile pages: the PAG payload a client sends and the IPG document the target receives."""
from __future__ import annotations

import re
from xml.sax.saxutils import escape, quoteattr

import attrs

#: Pages were SMS-sized; a longer text is reported back as undeliverable (IPG id 407).
MAX_PAGE_TEXT = 160

_TEXT = re.compile(r"<TEXT(?:\s[^>]*)?>(.*?)</TEXT>", re.S)
_NUM = re.compile(r"<NUM>([^<]{0,32})</NUM>")
_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'", "&#59;": ";", "&#94;": "^"}
_ENTITY = re.compile("|".join(re.escape(e) for e in _ENTITIES))


class BadPage(ValueError):
    pass


@attrs.frozen(slots=True)
class Page:
    text: str
    callback_number: str | None = None


def parse_page(payload: bytes) -> Page:
    """``[<PHONE ...><NUM>n</NUM></PHONE>]<TEXT xml:space="preserve">text</TEXT>``.

    Read with two narrow patterns rather than an XML parser: the payload is a fragment (no root
    element) and only these two values matter.
    """
    try:
        doc = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadPage("not UTF-8") from e
    text = _TEXT.search(doc)
    if text is None:
        raise BadPage("no TEXT element")
    number = _NUM.search(doc)
    return Page(_ENTITY.sub(lambda m: _ENTITIES[m.group(0)], text.group(1)), number.group(1) if number else None)


def pid(member_id: int) -> str:
    """A Passport id as ``0x<high>:0x<low>``."""
    return f"0x{member_id >> 32:08x}:0x{member_id & 0xFFFFFFFF:08x}"


def ipg_payload(*, to_handle: str, to_id: int, from_handle: str, from_id: int, text: str, site_url: str,
                notification_id: int = 0, message_id: int = 1) -> bytes:
    """The ``<NOTIFICATION>`` document of an ``IPG``; message id 407 with empty text reports a page
    that was too long."""
    return (
        f'<NOTIFICATION id="{notification_id}" siteid="111100400" siteurl={quoteattr(site_url)}>'
        f'<TO name={quoteattr(to_handle)} pid="{pid(to_id)}"><VIA agent="mobile"/></TO>'
        f'<FROM pid="{pid(from_id)}" name={quoteattr(from_handle)}/>'
        f'<MSG pri="1" id="{message_id}"><ACTION url="2wayIM.asp"/><SUBSCR url="2wayIM.asp"/>'
        f'<CAT id="110110001"/><BODY lang="1033"><TEXT>{escape(text)}</TEXT></BODY></MSG></NOTIFICATION>'
    ).encode()
