"""Write-backs by (creditor_id, status, id): write back takes the next batch of planned
changes in id order, and with (creditor_id, status) alone every batch found all the
planned changes left and sorted them for its LIMIT (206,612 changes at 250k debtors:
103 batches, each over what the batches before it had not yet taken). SQLite's index
already held the rowid in order; PostgreSQL's did not.

Revision ID: 0012
Revises: 0011
"""
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_write_backs_status", "write_backs")
    op.create_index("ix_write_backs_status", "write_backs", ["creditor_id", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_write_backs_status", "write_backs")
    op.create_index("ix_write_backs_status", "write_backs", ["creditor_id", "status"])
