"""MSNP7 contact groups: the groups of each account, and the group ids of each FL entry.

Existing FL entries go to group 0 ("Other Contacts"), which exists without a row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_groups",
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["accounts.id"], name="fk_contact_groups_owner", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("owner_id", "group_id"),
    )
    with op.batch_alter_table("list_entries") as batch:
        batch.add_column(sa.Column("group_ids", sa.String(90), nullable=True))
    op.execute("UPDATE list_entries SET group_ids = '0' WHERE list = 'FL'")


def downgrade() -> None:
    with op.batch_alter_table("list_entries") as batch:
        batch.drop_column("group_ids")
    op.drop_table("contact_groups")
