"""Indexes on (creditor_id, bucket) for debtors and invoices: a partition's rows are
read as ``bucket IN (p, p+n, ...)`` through them, where ``bucket % n = p`` read every
row of the creditor once per partition (8 partitions: 8 scans of every invoice)

Revision ID: 0010
Revises: 0009
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_debtors_bucket", "debtors", ["creditor_id", "bucket"])
    op.create_index("ix_invoices_bucket", "invoices", ["creditor_id", "bucket"])


def downgrade() -> None:
    op.drop_index("ix_invoices_bucket", "invoices")
    op.drop_index("ix_debtors_bucket", "debtors")
