"""The MSNP dialects this server speaks and what each one changes on the wire.

Every difference between MSNP2 and MSNP7 is a property here (versions.md, notification.md 5); the
rest of the server asks the session's dialect, never compares version numbers itself.
"""
from __future__ import annotations

from collections.abc import Sequence

import attrs

CVR0 = "CVR0"

#: NS commands a client may send after login, by the dialect that introduced them (versions.md 2).
#: IMS (MSNP3+, WebTV only) is not served: it stays an unknown command for every dialect.
_BASE_COMMANDS = frozenset({
    "ADD", "BLP", "CHG", "CVR", "FND", "GTC", "INF", "LST", "OUT", "PNG", "REA", "REM", "SND", "SYN",
    "URL", "USR", "VER", "XFR",
})
_COMMANDS_SINCE: dict[int, frozenset[str]] = {
    5: frozenset({"PRP", "PAG", "SDC"}),
    6: frozenset({"QRY"}),
    7: frozenset({"ADG", "RMG", "REG"}),
}


@attrs.frozen(slots=True)
class Dialect:
    name: str
    number: int

    @property
    def commands(self) -> frozenset[str]:
        """The NS commands this dialect's clients may send after login; any other is unknown."""
        known = set(_BASE_COMMANDS)
        for since, names in _COMMANDS_SINCE.items():
            if self.number >= since:
                known |= names
        return frozenset(known)

    @property
    def groups(self) -> bool:
        """Contact groups (MSNP7): LSG in SYN, group ids on LST/ADD/REM FL, ADG/RMG/REG. Older
        dialects see a flat FL and never a group id."""
        return self.number >= 7

    @property
    def full_profile(self) -> bool:
        """The profile MSG carries the Passport field set (MSNP3+); MSNP2's has LoginTime only."""
        return self.number >= 3

    @property
    def initial_mail_notice(self) -> bool:
        """``text/x-msmsgsinitialemailnotification`` after login is MSNP3+. What MSNP2 servers sent
        instead is unconfirmed (notification.md 5): MSNP2 gets no initial notice."""
        return self.number >= 3

    @property
    def mail_notice_type(self) -> str:
        """The new-mail MSG's content type: MSNP2's ``application/x-msmsgsemailnotification``
        (unconfirmed, single source), ``text/x-msmsgsemailnotification`` from MSNP3."""
        return "text/x-msmsgsemailnotification" if self.number >= 3 else "application/x-msmsgsemailnotification"

    @property
    def mail_notice_id(self) -> bool:
        """The new-mail notice's ``id: 2`` field arrived with MSNP3."""
        return self.number >= 3

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
        """URL replies carry the Passport site id (allowed from MSNP3, required from MSNP5;
        MSNP2's reply has two parameters)."""
        return self.number >= 3

    @property
    def store_unavailable_error(self) -> int:
        """A login the database could not serve: 915 is new in MSNP6; older clients know 601."""
        return 915 if self.number >= 6 else 601

    @property
    def shutting_down_error(self) -> int:
        """A login while the server is going down: 916 is new in MSNP6; MSNP3-5 clients know 604
        (the 1.0 client had no handler for it, errors.md: MSNP2 gets 601, server unavailable)."""
        if self.number >= 6:
            return 916
        return 604 if self.number >= 3 else 601

    def xfr_ns_args(self, address: str, current: str) -> tuple[str, ...]:
        """Arguments after ``XFR t NS``: MSNP3-6 append a constant 0, MSNP7 also the address the
        client is talking to now; MSNP2 sends the address alone."""
        if self.number <= 2:
            return (address,)
        if self.number >= 7:
            return (address, "0", current)
        return (address, "0")


#: Dialects we serve, best first: the whole MD5 era, MSN Messenger 1.0 (MSNP2) to 4.7 (MSNP7).
SUPPORTED: dict[str, Dialect] = {
    d.name: d for d in (Dialect(f"MSNP{n}", n) for n in (7, 6, 5, 4, 3, 2))
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
