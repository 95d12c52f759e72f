"""Invoices on PostgreSQL leave 15% of each page free (``fillfactor`` 85). Every day
reconcile rewrites the open amount, costs and status of the invoices it allocated to
(about 200,000 at 250k debtors), and validate those that changed at the source. No
indexed column changes then, so PostgreSQL can keep the row's new version on its page
without a new entry in any of the table's three indexes (a heap-only tuple), but only
when the page has room. With full pages none had: 200,000 random invoices of a million
took 4.6-4.9 s with 0.2% heap-only; with fillfactor 85, 2.0-2.1 s with 81%, for 12% more
space (docs/performance.md, "Second session of 2026-12-06"). SQLite has no such
setting.

The setting governs pages written from now on; a ledger's existing pages get the room
as rows move (or at once with ``VACUUM FULL invoices``, which locks the table).

Revision ID: 0014
Revises: 0013
"""
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE invoices SET (fillfactor = 85)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE invoices RESET (fillfactor)")
