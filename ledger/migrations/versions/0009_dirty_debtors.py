"""Dirty debtors: the ledger marks, by trigger, every debtor whose assessment inputs change

Assess reads, per debtor: the debtor, its invoices, allocations (reversals), holds,
contacts and their events, arrangements and preferences. A trigger on each of those
tables appends the debtor to ``dirty_debtors`` on every insert, update and delete (an
update marks the old and the new debtor), whichever code path writes, so a second
assessment the same day can take only the debtors marked since the first. A debtor
that already has an unclaimed mark gets no second one. Appends only: no row is locked
or updated, so concurrent writers cannot deadlock on it.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: table -> how a row of it names its debtor ({r} is NEW or OLD)
WATCHED = {
    "debtors": "{r}.debtor_id",
    "invoices": "{r}.debtor_id",
    "holds": "{r}.debtor_id",
    "contacts": "{r}.debtor_id",
    "arrangements": "{r}.debtor_id",
    "preferences": "{r}.debtor_id",
    "contact_events": (
        "(SELECT c.debtor_id FROM contacts c"
        " WHERE c.creditor_id = {r}.creditor_id AND c.message_id = {r}.message_id)"
    ),
    "allocations": (
        "(SELECT i.debtor_id FROM invoices i"
        " WHERE i.creditor_id = {r}.creditor_id AND i.invoice_id = {r}.invoice_id)"
    ),
}
OPS = {"INSERT": ("NEW",), "UPDATE": ("OLD", "NEW"), "DELETE": ("OLD",)}


def _mark(row: str, table: str, false: str) -> str:
    who = WATCHED[table].format(r=row)
    return (
        "INSERT INTO dirty_debtors (creditor_id, debtor_id, claimed)"
        f" SELECT {row}.creditor_id, x.d, {false} FROM (SELECT {who} AS d) AS x"
        " WHERE x.d IS NOT NULL AND NOT EXISTS (SELECT 1 FROM dirty_debtors m"
        f" WHERE m.creditor_id = {row}.creditor_id AND m.debtor_id = x.d"
        f" AND m.claimed = {false});"
    )


def upgrade() -> None:
    op.create_table(
        "dirty_debtors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("creditor_id", sa.String(64), nullable=False),
        sa.Column("debtor_id", sa.String(64), nullable=False),
        sa.Column("claimed", sa.Boolean(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dirty_debtors")),
    )
    op.create_index("ix_dirty_debtors", "dirty_debtors", ["creditor_id", "debtor_id", "claimed"])
    # what exists today is unassessed as far as the marks know: the first assessment of
    # the day is a full one anyway, so no marks are needed for it
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            new = _mark("NEW", table, "false")
            old = _mark("OLD", table, "false")
            op.execute(
                f"CREATE FUNCTION vangnet_mark_dirty_{table}() RETURNS trigger"
                " LANGUAGE plpgsql AS $$ BEGIN"
                f" IF TG_OP IN ('INSERT', 'UPDATE') THEN {new} END IF;"
                f" IF TG_OP IN ('UPDATE', 'DELETE') THEN {old} END IF;"
                " RETURN NULL; END $$"
            )
            op.execute(
                f"CREATE TRIGGER dirty_{table} AFTER INSERT OR UPDATE OR DELETE ON {table}"
                f" FOR EACH ROW EXECUTE FUNCTION vangnet_mark_dirty_{table}()"
            )
    else:
        for table in WATCHED:
            for what, rows in OPS.items():
                body = " ".join(_mark(r, table, "0") for r in rows)
                op.execute(
                    f"CREATE TRIGGER dirty_{table}_{what.lower()} AFTER {what} ON {table}"
                    f" FOR EACH ROW BEGIN {body} END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS dirty_{table} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS vangnet_mark_dirty_{table}()")
    else:
        for table in WATCHED:
            for what in OPS:
                op.execute(f"DROP TRIGGER IF EXISTS dirty_{table}_{what.lower()}")
    op.drop_index("ix_dirty_debtors", "dirty_debtors")
    op.drop_table("dirty_debtors")
