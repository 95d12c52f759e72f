"""Collection costs booked after the 14-day letter; promises to pay; A/B variants

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch_op:
        batch_op.add_column(sa.Column("variant", sa.String(64), nullable=True))
    op.create_table(
        "token_revocations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("creditor_id", sa.String(64), nullable=False),
        sa.Column("debtor_id", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(32)),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_token_revocations", "token_revocations", ["creditor_id", "debtor_id"])
    op.create_table(
        "experiment_stops",
        sa.Column("creditor_id", sa.String(64), nullable=False),
        sa.Column("experiment", sa.String(64), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
        sa.PrimaryKeyConstraint("creditor_id", "experiment", "variant"),
    )
    with op.batch_alter_table("preferences") as batch_op:
        batch_op.add_column(sa.Column("promise_until", sa.Date(), nullable=True))
    op.create_table(
        "cost_bookings",
        sa.Column("creditor_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("debtor_id", sa.String(64), nullable=False),
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
        sa.PrimaryKeyConstraint("creditor_id", "message_id"),
    )


def downgrade() -> None:
    op.drop_index("ix_token_revocations", "token_revocations")
    op.drop_table("token_revocations")
    op.drop_table("experiment_stops")
    with op.batch_alter_table("contacts") as batch_op:
        batch_op.drop_column("variant")
    op.drop_table("cost_bookings")
    with op.batch_alter_table("preferences") as batch_op:
        batch_op.drop_column("promise_until")
