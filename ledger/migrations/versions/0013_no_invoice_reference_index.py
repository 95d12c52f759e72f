"""No index on invoices (creditor_id, payment_reference): nothing reads invoices by their
payment reference. The matcher reads a creditor's open items once and looks references
up in memory (``transforms.matching``); messages, the portal and write back read
invoices by id or by debtor. The index cost every write of a new invoice an entry at a
random place: promoting a million new invoices on SQLite took 7.3-7.9 s without it
against 10.9-11.5 s with it (docs/performance.md, "Sixth session of 2026-12-05"). An
operator looking an invoice up by its reference in SQL scans the creditor's invoices.

Revision ID: 0013
Revises: 0012
"""
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_invoices_reference", "invoices")


def downgrade() -> None:
    op.create_index("ix_invoices_reference", "invoices", ["creditor_id", "payment_reference"])
