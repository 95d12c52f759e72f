"""Schuldenknooppunt messages and answers, payment arrangements, Wgs signals

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("preferences") as batch_op:
        batch_op.add_column(
            sa.Column("wgs_refused", sa.Boolean(), server_default="0", nullable=False)
        )
    op.create_table(
        "skp_messages",
        sa.Column("creditor_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(32)),
        sa.Column("sent_on", sa.Date()),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("debtor_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("answer_due", sa.Date()),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("handled_at", sa.DateTime(timezone=True)),
        sa.ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
        sa.PrimaryKeyConstraint("creditor_id", "message_id"),
    )
    op.create_index("ix_skp_messages_status", "skp_messages", ["creditor_id", "status"])
    op.create_table(
        "skp_replies",
        sa.Column("creditor_id", sa.String(64), nullable=False),
        sa.Column("reply_id", sa.String(64), nullable=False),
        sa.Column("in_reply_to", sa.String(128)),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("debtor_id", sa.String(64)),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
        sa.PrimaryKeyConstraint("creditor_id", "reply_id"),
    )
    op.create_table(
        "arrangements",
        sa.Column("creditor_id", sa.String(64), nullable=False),
        sa.Column("arrangement_id", sa.String(64), nullable=False),
        sa.Column("debtor_id", sa.String(64), nullable=False),
        sa.Column("origin", sa.String(32), nullable=False),
        sa.Column("source_message_id", sa.String(128)),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("instalments", sa.JSON(), nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
        sa.PrimaryKeyConstraint("creditor_id", "arrangement_id"),
    )
    op.create_index("ix_arrangements_debtor", "arrangements", ["creditor_id", "debtor_id"])
    op.create_table(
        "wgs_signals",
        sa.Column("creditor_id", sa.String(64), nullable=False),
        sa.Column("signal_id", sa.String(64), nullable=False),
        sa.Column("debtor_id", sa.String(64), nullable=False),
        sa.Column("signal_date", sa.Date(), nullable=False),
        sa.Column("arrears_cents", sa.BigInteger(), nullable=False),
        sa.Column("arisen_on", sa.Date(), nullable=False),
        sa.Column("days_late", sa.Integer(), nullable=False),
        sa.Column("crisis", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("export_file", sa.String(255)),
        sa.Column("outcome", sa.String(64)),
        sa.Column("outcome_on", sa.Date()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
        sa.PrimaryKeyConstraint("creditor_id", "signal_id"),
        sa.UniqueConstraint("creditor_id", "debtor_id", "signal_date"),
    )


def downgrade() -> None:
    op.drop_table("wgs_signals")
    op.drop_index("ix_arrangements_debtor", "arrangements")
    op.drop_table("arrangements")
    op.drop_table("skp_replies")
    op.drop_index("ix_skp_messages_status", "skp_messages")
    op.drop_table("skp_messages")
    with op.batch_alter_table("preferences") as batch_op:
        batch_op.drop_column("wgs_refused")
