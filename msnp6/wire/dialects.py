"""The MSNP dialects this server speaks and what each one changes on the wire."""
from __future__ import annotations

from collections.abc import Sequence

import attrs

CVR0 = "CVR0"


@attrs.frozen(slots=True)
class Dialect:
    name: str
    number: int

    @property
    def verified_flag(self) -> bool:
        """``USR t OK handle name verified`` (MSNP6+)."""
        return self.number >= 6

    @property
    def phone_properties(self) -> bool:
        """PRP/BPR, PAG, NOT and SDC exist (MSNP5+)."""
        return self.number >= 5

    @property
    def challenges(self) -> bool:
        """CHL/QRY exist (MSNP6+); never send CHL to an older client."""
        return self.number >= 6

    @property
    def incoming_pages(self) -> bool:
        """IPG exists (MSNP6+)."""
        return self.number >= 6

    @property
    def url_site_id(self) -> bool:
        """URL replies carry the Passport site id (required from MSNP5)."""
        return self.number >= 3

    @property
    def store_unavailable_error(self) -> int:
        """A login the database could not serve: 915 is new in MSNP6; older clients know 601."""
        return 915 if self.number >= 6 else 601

    @property
    def shutting_down_error(self) -> int:
        """A login while the server is going down: 916 is new in MSNP6; older clients know 604."""
        return 916 if self.number >= 6 else 604

    def xfr_ns_args(self, address: str, current: str) -> tuple[str, ...]:
        """Arguments after ``XFR t NS``: MSNP3-6 append a constant 0."""
        if self.number <= 2:
            return (address,)
        if self.number >= 7:
            return (address, "0", current)
        return (address, "0")


#: Dialects we serve, best first. MSNP7 is left out on purpose: it needs contact groups (LSG,
#: ADG...), and every client that offers MSNP7 also offers MSNP6, so 4.x clients fall back to it.
SUPPORTED: dict[str, Dialect] = {
    d.name: d for d in (Dialect("MSNP6", 6), Dialect("MSNP5", 5), Dialect("MSNP4", 4), Dialect("MSNP3", 3))
}


@attrs.frozen(slots=True)
class Negotiation:
    """``echo``: what goes back in the VER reply; ``dialect``: the one in force (None: no match)."""

    echo: tuple[str, ...]
    dialect: Dialect | None


def negotiate(offered: Sequence[str]) -> Negotiation:
    """List echo: every offered dialect we support, in the client's order, CVR0 included.

    Matching is case-insensitive and the answer is upper case. CVR0 alone is no match: we do not
    serve the CVQ sub-protocol.
    """
    echo: list[str] = []
    chosen: Dialect | None = None
    for token in offered:
        upper = token.upper()
        if upper in echo:
            continue
        if upper == CVR0:
            echo.append(upper)
        elif upper in SUPPORTED:
            echo.append(upper)
            if chosen is None:  # the client's most preferred; clients read the first as in force
                chosen = SUPPORTED[upper]
    if chosen is None:
        return Negotiation((), None)
    return Negotiation(tuple(echo), chosen)
