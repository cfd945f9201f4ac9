"""One online session as the rest of the network may see it."""
from __future__ import annotations

import attrs

from ..core.visibility import allows


@attrs.frozen(slots=True)
class PresenceRecord:
    handle: str
    #: The node holding the session, and the session's own id (a later login has another).
    node: str
    session: str
    account_id: int
    #: The dialect the session speaks (MSNP3..MSNP6): decides e.g. whether it can take an IPG.
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

    @property
    def visible(self) -> bool:
        return self.status is not None and self.status != "HDN"

    def allows(self, viewer: str) -> bool:
        """This user's privacy lets ``viewer`` see and reach them."""
        return allows(viewer, self.blp, self.allow, self.block)

    def seen_by(self, viewer: str) -> bool:
        """``sees(viewer, self)``: online, not hidden, and allowing the viewer."""
        return self.visible and self.allows(viewer)
