"""Accounts and contact lists in SQL (SQLAlchemy 2; schema by Alembic)."""
from .records import AccountRecord, ListEntryRecord
from .store import DuplicateHandle, ListChange, ListRefused, Store, StoreCore

__all__ = ["AccountRecord", "DuplicateHandle", "ListChange", "ListEntryRecord", "ListRefused", "Store", "StoreCore"]
