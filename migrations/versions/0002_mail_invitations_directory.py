"""Unread mail counts, recorded e-mail invitations, the opt-in member directory.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("inbox_unread", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("folders_unread", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "invitations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sender", sa.String(129), nullable=False),
        #: An e-mail address, or the handle of a directory hit (never shown to the sender).
        sa.Column("recipient", sa.String(129), nullable=False),
        sa.Column("lcid", sa.String(16), nullable=False),
        sa.Column("sender_name", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "directory_entries",
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", ondelete="CASCADE", name="fk_directory_entries_account"),
            primary_key=True,
        ),
        sa.Column("first_name", sa.Text(), nullable=False),
        sa.Column("last_name", sa.Text(), nullable=False),
        sa.Column("city", sa.Text(), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("country", sa.String(8), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("directory_entries")
    op.drop_table("invitations")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("folders_unread")
        batch.drop_column("inbox_unread")
