"""Indexes for the debt-help round's per-debtor look-ups (Statusverzoek and Statusbericht
SE ask for each held debtor's latest message and reply: without them each look-up read
every message, and a round grew with held debtors x messages)

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_skp_messages_debtor", "skp_messages", ["creditor_id", "debtor_id"])
    op.create_index("ix_skp_replies_debtor", "skp_replies", ["creditor_id", "debtor_id"])


def downgrade() -> None:
    op.drop_index("ix_skp_replies_debtor", "skp_replies")
    op.drop_index("ix_skp_messages_debtor", "skp_messages")
