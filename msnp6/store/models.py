"""Table definitions. The Alembic migrations build exactly this schema (a test checks it)."""
from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("handle", name="uq_accounts_handle"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Lower-cased e-mail address, at most 129 bytes.
    handle: Mapped[str] = mapped_column(String(129))
    #: Decoded (UTF-8) friendly name; encoded on the wire.
    friendly_name: Mapped[str] = mapped_column(Text)
    verified: Mapped[bool] = mapped_column(Boolean, default=True)
    #: One counter for FL/AL/BL/RL, BLP, GTC, the own name and phone numbers.
    list_version: Mapped[int] = mapped_column(BigInteger, default=0)
    blp: Mapped[str] = mapped_column(String(2), default="AL")
    gtc: Mapped[str] = mapped_column(String(1), default="A")
    #: Phone numbers as the client sent them (URL-encoded wire form), None when unset.
    phone_home: Mapped[str | None] = mapped_column(String(95), nullable=True)
    phone_work: Mapped[str | None] = mapped_column(String(95), nullable=True)
    phone_mobile: Mapped[str | None] = mapped_column(String(95), nullable=True)
    #: PRP MOB: others may page me. PRP MBE: mobile device enabled (server-set).
    mobile_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    mobile_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    email_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: What the Hotmail notices report (there is no real mailbox behind them).
    inbox_unread: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    folders_unread: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The password sealed with the server key (msnp6.auth); never plaintext, never an MD5.
    credential: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Set while an operator has disabled (banned) the account: its logins are refused.
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The last successful login (``msnp6-admin user show``).
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ListEntry(Base):
    __tablename__ = "list_entries"
    __table_args__ = (
        UniqueConstraint("owner_id", "list", "contact", name="uq_list_entries_owner_list_contact"),
        # Reverse lookups: who has this handle on their FL/AL/BL.
        Index("ix_list_entries_contact_list", "contact", "list"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("accounts.id", ondelete="CASCADE", name="fk_list_entries_owner"), index=True
    )
    #: FL, AL, BL or RL.
    list: Mapped[str] = mapped_column(String(2))
    contact: Mapped[str] = mapped_column(String(129))
    #: The name stored for this entry (decoded); the handle when the client gave none.
    name: Mapped[str] = mapped_column(Text)
    #: FL only: the MSNP7 groups the contact is in, comma-separated ids ("0" = Other Contacts).
    #: A column, not a table: a set of at most 30 small ids, always read and written whole, that
    #: the SYN load gets in the same statement as the list. None on AL/BL/RL entries (an FL entry
    #: with None, e.g. written by benchmarks/seed.py, is in group 0).
    group_ids: Mapped[str | None] = mapped_column(String(90), nullable=True)


class ContactGroup(Base):
    """An MSNP7 contact group of an account. Group 0 ("Other Contacts") exists without a row; it
    has one only once renamed."""

    __tablename__ = "contact_groups"

    owner_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("accounts.id", ondelete="CASCADE", name="fk_contact_groups_owner"), primary_key=True
    )
    #: 0..29 (notification.md 1.3).
    group_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: Decoded (UTF-8); encoded on the wire.
    name: Mapped[str] = mapped_column(Text)


class Invitation(Base):
    """An e-mail invitation a user asked for (SND/SDC). The server sends no mail: operators read
    these with ``msnp6-admin invitations``."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender: Mapped[str] = mapped_column(String(129))
    recipient: Mapped[str] = mapped_column(String(129))
    lcid: Mapped[str] = mapped_column(String(16))
    sender_name: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Invite(Base):
    """A sign-up invite code (``--signup invite``) made by ``msnp6-admin invite create``. Only
    the code's SHA-256 is kept: the operator hands the code out, nobody can read it back."""

    __tablename__ = "invites"
    __table_args__ = (UniqueConstraint("code_hash", name="uq_invites_code_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Hex SHA-256 of the code as handed out.
    code_hash: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: None: never expires.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: Set, with the new account's handle, when a sign-up redeems it (once).
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    used_by: Mapped[str | None] = mapped_column(String(129), nullable=True)


class DirectoryEntry(Base):
    """An account that opted in to the member directory (FND)."""

    __tablename__ = "directory_entries"

    account_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("accounts.id", ondelete="CASCADE", name="fk_directory_entries_account"), primary_key=True
    )
    first_name: Mapped[str] = mapped_column(Text)
    last_name: Mapped[str] = mapped_column(Text)
    city: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(8))
    country: Mapped[str] = mapped_column(String(8))


class Setting(Base):
    """One server-wide setting the database must carry (e.g. a credential key rotation in
    progress), as a name and a text (JSON) value."""

    __tablename__ = "settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# Core tables for the store's statements (typed as Table: __table__ is declared as FromClause).
accounts = cast(Table, Account.__table__)
list_entries = cast(Table, ListEntry.__table__)
contact_groups = cast(Table, ContactGroup.__table__)
invitations = cast(Table, Invitation.__table__)
invites = cast(Table, Invite.__table__)
directory_entries = cast(Table, DirectoryEntry.__table__)
settings = cast(Table, Setting.__table__)
