"""The one write path: list, privacy, name, phone and account changes.

The rules live here once, and so do the events that tell the people a change concerns. The
notification handlers, ``msnp6-admin``, the admin HTTP port (and later the web pages) all call
these services; a handler keeps only the protocol: parsing, the reply, its own session's memory.
"""
from __future__ import annotations

import attrs

from .accounts import AccountService, NoSuchAccount
from .actor import Actor
from .lists import ListService

__all__ = ["AccountService", "Actor", "ListService", "NoSuchAccount", "Services"]


@attrs.frozen
class Services:
    lists: ListService
    accounts: AccountService
