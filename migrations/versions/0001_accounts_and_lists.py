"""Accounts (sealed credentials, list version, privacy, phones) and list entries.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("handle", sa.String(129), nullable=False),
        sa.Column("friendly_name", sa.Text(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("list_version", sa.BigInteger(), nullable=False),
        sa.Column("blp", sa.String(2), nullable=False),
        sa.Column("gtc", sa.String(1), nullable=False),
        sa.Column("phone_home", sa.String(95), nullable=True),
        sa.Column("phone_work", sa.String(95), nullable=True),
        sa.Column("phone_mobile", sa.String(95), nullable=True),
        sa.Column("mobile_allowed", sa.Boolean(), nullable=False),
        sa.Column("mobile_enabled", sa.Boolean(), nullable=False),
        sa.Column("email_enabled", sa.Boolean(), nullable=False),
        sa.Column("credential", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("handle", name="uq_accounts_handle"),
    )
    op.create_table(
        "list_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "owner_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", ondelete="CASCADE", name="fk_list_entries_owner"),
            nullable=False,
        ),
        sa.Column("list", sa.String(2), nullable=False),
        sa.Column("contact", sa.String(129), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.UniqueConstraint("owner_id", "list", "contact", name="uq_list_entries_owner_list_contact"),
    )
    op.create_index("ix_list_entries_owner_id", "list_entries", ["owner_id"])
    op.create_index("ix_list_entries_contact_list", "list_entries", ["contact", "list"])


def downgrade() -> None:
    op.drop_index("ix_list_entries_contact_list", table_name="list_entries")
    op.drop_index("ix_list_entries_owner_id", table_name="list_entries")
    op.drop_table("list_entries")
    op.drop_table("accounts")
