"""Who makes a change: the account acting, as the services need it."""
from __future__ import annotations

import attrs


@attrs.frozen(slots=True)
class Actor:
    account_id: int
    handle: str
    #: The actor's friendly name (an RL entry made by ADD FL carries it).
    name: str
