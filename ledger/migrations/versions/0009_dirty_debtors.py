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


def _who(row: str, table: str) -> str:
    return WATCHED[table].format(r=row)


def _unmarked(row: str, table: str, false: str) -> str:
    """The row names a debtor that has no unclaimed mark yet."""
    who = _who(row, table)
    return (
        f"{who} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM dirty_debtors m"
        f" WHERE m.creditor_id = {row}.creditor_id AND m.debtor_id = {who}"
        f" AND m.claimed = {false})"
    )


def _insert(row: str, table: str, false: str) -> str:
    return (
        "INSERT INTO dirty_debtors (creditor_id, debtor_id, claimed)"
        f" VALUES ({row}.creditor_id, {_who(row, table)}, {false});"
    )


#: SQLite: one trigger per table, operation and row (an update's old row only when it
#: named another debtor), each with its condition in WHEN, so a write whose debtor is
#: already marked (three of every four invoices of a first load) runs no statement
SQLITE_TRIGGERS = {
    "insert": ("INSERT", "NEW", ""),
    "update": ("UPDATE", "NEW", ""),
    "update_old": ("UPDATE", "OLD", "{old} IS NOT {new} AND "),
    "delete": ("DELETE", "OLD", ""),
}


def create_pg_row_trigger(table: str) -> None:
    """PostgreSQL: one trigger on the table, its function run for every row written
    (migration 0011 replaces it with statement-level triggers; its downgrade calls this)."""
    new = f"IF {_unmarked('NEW', table, 'false')} THEN {_insert('NEW', table, 'false')} END IF;"
    old = f"IF {_unmarked('OLD', table, 'false')} THEN {_insert('OLD', table, 'false')} END IF;"
    op.execute(
        f"CREATE FUNCTION vangnet_mark_dirty_{table}() RETURNS trigger"
        " LANGUAGE plpgsql AS $$ BEGIN"
        f" IF TG_OP IN ('INSERT', 'UPDATE') THEN {new} END IF;"
        f" IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND"
        f" {_who('OLD', table)} IS DISTINCT FROM {_who('NEW', table)}) THEN {old} END IF;"
        " RETURN NULL; END $$"
    )
    op.execute(
        f"CREATE TRIGGER dirty_{table} AFTER INSERT OR UPDATE OR DELETE ON {table}"
        f" FOR EACH ROW EXECUTE FUNCTION vangnet_mark_dirty_{table}()"
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
            create_pg_row_trigger(table)
    else:
        for table in WATCHED:
            for name, (what, row, extra) in SQLITE_TRIGGERS.items():
                cond = extra.format(old=_who("OLD", table), new=_who("NEW", table))
                op.execute(
                    f"CREATE TRIGGER dirty_{table}_{name} AFTER {what} ON {table} FOR EACH ROW"
                    f" WHEN {cond}{_unmarked(row, table, '0')}"
                    f" BEGIN {_insert(row, table, '0')} END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS dirty_{table} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS vangnet_mark_dirty_{table}()")
    else:
        for table in WATCHED:
            for name in SQLITE_TRIGGERS:
                op.execute(f"DROP TRIGGER IF EXISTS dirty_{table}_{name}")
    op.drop_index("ix_dirty_debtors", "dirty_debtors")
    op.drop_table("dirty_debtors")
