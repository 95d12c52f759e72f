"""Payments as the creditor's own system booked them

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

from ledger.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erp_payments",
        sa.Column("creditor_id", sa.String(length=64), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("debtor_id", sa.String(length=64), nullable=False),
        sa.Column("invoice_id", sa.String(length=64), nullable=True),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=True),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("source_version", sa.String(length=64), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"], name=op.f("fk_erp_payments_creditor_id_creditors")),
        sa.PrimaryKeyConstraint("creditor_id", "payment_id", name=op.f("pk_erp_payments")),
    )
    with op.batch_alter_table("erp_payments") as batch_op:
        batch_op.create_index("ix_erp_payments_debtor", ["creditor_id", "debtor_id"], unique=False)


def downgrade() -> None:
    op.drop_table("erp_payments")
