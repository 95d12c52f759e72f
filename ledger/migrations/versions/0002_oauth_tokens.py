"""OAuth tokens of API sources (Exact Online), shared by workers under a row lock

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

from ledger.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_tokens",
        sa.Column("creditor_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=False),
        sa.Column("access_expiry", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"], name=op.f("fk_oauth_tokens_creditor_id_creditors")),
        sa.PrimaryKeyConstraint("creditor_id", "source", name=op.f("pk_oauth_tokens")),
    )


def downgrade() -> None:
    op.drop_table("oauth_tokens")
