"""Write-backs by (creditor_id, status, id): write back takes the next batch of planned
changes as ``creditor_id = ? AND status = 'planned' AND id > <the last taken> ORDER BY
id LIMIT n``, which is this index's range in its order. SQLite's index on (creditor_id,
status) already held the rowid in order; PostgreSQL's did not, though with the last id
in the query its planner found a fast way without it too (``bench.write_back``: 200,000
changes over 400,000 of earlier days, 8.7 s with either index). What made the stage slow
was the query, not the index: asking for ``planned`` and ``sending`` sorted every change
still to go for each batch, and on PostgreSQL a scan from the first id stepped over the
dead index entries of every batch taken before (25.4 s).

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
