"""One online session as the rest of the network may see it."""
from __future__ import annotations

import json
from typing import Any

import attrs

from ..core.visibility import allows


@attrs.frozen(slots=True)
class PresenceRecord:
    handle: str
    #: The node holding the session, and the session's own id (a later login has another).
    node: str
    session: str
    account_id: int
    #: The dialect the session speaks (MSNP2..MSNP7): decides e.g. whether it can take an IPG.
    dialect: str
    #: None until the first CHG (the user counts as offline until then); HDN shows as offline.
    status: str | None
    name: str
    #: What the visibility rule needs: BLP and the allow/block lists.
    blp: str
    allow: frozenset[str]
    block: frozenset[str]
    #: What an FL contact's BPR lines show (PHH/PHW/PHM in wire form, MOB).
    phone_home: str | None
    phone_work: str | None
    phone_mobile: str | None
    mobile_allowed: bool
    email_enabled: bool
    #: When the session logged in (seconds since the epoch, its node's clock): after a Redis
    #: outage, of two sessions of one account the later one stays.
    since: float = 0.0
    #: The client's own version from its CVR (None until it sends one), and where it connects
    #: from (ip:port): what ``msnp6-admin who`` shows.
    client_version: str | None = None
    address: str = ""
    #: The MSPAuth ticket and LoginTime the session's profile message gave it: what the web
    #: side's md5auth.srf checks a browser's post against, on whichever node serves it. Never
    #: shown (``msnp6-admin who`` prints selected fields).
    mspauth: str = ""
    login_time: int = 0

    @property
    def visible(self) -> bool:
        return self.status is not None and self.status != "HDN"

    def allows(self, viewer: str) -> bool:
        """This user's privacy lets ``viewer`` see and reach them."""
        return allows(viewer, self.blp, self.allow, self.block)

    def seen_by(self, viewer: str) -> bool:
        """``sees(viewer, self)``: online, not hidden, and allowing the viewer."""
        return self.visible and self.allows(viewer)


#: The fields held as sets (JSON has none: they travel as sorted lists).
_SET_FIELDS = ("allow", "block")


def to_json(record: PresenceRecord) -> str:
    """The record as one JSON object of its fields (how a shared directory stores it)."""
    fields: dict[str, Any] = attrs.asdict(record, recurse=False)
    for name in _SET_FIELDS:
        fields[name] = sorted(fields[name])
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


def from_json(text: str) -> PresenceRecord:
    """The record ``to_json`` wrote. Unknown keys are ignored (a newer node may add fields);
    ValueError if a field is missing or the text is no JSON object."""
    fields = json.loads(text)
    if not isinstance(fields, dict):
        raise ValueError("a presence record is a JSON object")
    try:
        values = {f.name: fields[f.name] for f in attrs.fields(PresenceRecord)
                  if f.name in fields or f.default is attrs.NOTHING}
    except KeyError as missing:
        raise ValueError(f"a presence record lacks {missing}") from None
    for name in _SET_FIELDS:
        values[name] = frozenset(values[name])
    return PresenceRecord(**values)
